"""The wheel a newcomer builds from the repository: licensed, and its README
(the package's long description) stands on its own outside the repository."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]


def test_wheel_has_the_license_and_a_self_contained_readme(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path),
         str(SDK)],
        check=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("pliuz-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        license_files = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert license_files, names
        assert "Apache License" in z.read(license_files[0]).decode()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        text = z.read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text
    # Relative links into the repository break on any page outside it.
    assert "](../" not in text and "](docs/" not in text
    assert "Never `pip install pliuz`" in text
