"""The independent verifier (crosscheck.py) run as a command, the way an
auditor would run it: shared by the fixture and the server cross-checks."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parent / "crosscheck.py"


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    # Failure is an expected outcome here: callers assert on the return code.
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
    )


def check_with_trusted_keys(
    kind: str, target: pathlib.Path, keys_dir: pathlib.Path
) -> subprocess.CompletedProcess[str]:
    """`crosscheck.py KIND TARGET --keys KEYS_DIR/trusted_keys.txt`."""
    return run_check(kind, str(target), "--keys", str(keys_dir / "trusted_keys.txt"))


def export_without_entry(
    keys_dir: pathlib.Path, tmp: pathlib.Path, index: int
) -> pathlib.Path:
    """A copy of KEYS_DIR/export with the line of entry INDEX deleted, in TMP."""
    export = tmp / "export"
    shutil.copytree(keys_dir / "export", export)
    path = export / "entries.jsonl"
    lines = path.read_bytes().split(b"\n")
    del lines[index]
    path.write_bytes(b"\n".join(lines))
    return export
