"""Cross-check: the Rust crate writes a fixture, the independent Python
verifier must accept it and reject tampered copies."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import pytest
from verifier_cli import check_with_trusted_keys, export_without_entry, run_check

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("audit-fixture")
    # cargo honours CARGO_TARGET_DIR from the environment when it is set.
    subprocess.run(
        [
            "cargo",
            "run",
            "--quiet",
            "-p",
            "pliuz-audit",
            "--example",
            "make_fixture",
            "--",
            str(out),
        ],
        cwd=REPO,
        env=os.environ.copy(),
        check=True,
    )
    return out


def test_export_and_receipt_verify(fixture_dir):
    r = check_with_trusted_keys("export", fixture_dir / "export", fixture_dir)
    assert r.returncode == 0, r.stderr
    assert "export OK: 1000 entries" in r.stdout
    r = check_with_trusted_keys("receipt", fixture_dir / "receipt.json", fixture_dir)
    assert r.returncode == 0, r.stderr


def test_tampered_entry_byte_fails(fixture_dir, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(fixture_dir / "export", export)
    path = export / "entries.jsonl"
    data = bytearray(path.read_bytes())
    at = data.index(b"looks fine", 5000)  # inside a string: still valid, canonical JSON
    data[at + 6] ^= 0x01
    path.write_bytes(bytes(data))
    r = check_with_trusted_keys("export", export, fixture_dir)
    assert r.returncode == 1
    assert "root hash does not match" in r.stderr


def test_deleted_entry_fails(fixture_dir, tmp_path):
    export = export_without_entry(fixture_dir, tmp_path, 41)
    r = check_with_trusted_keys("export", export, fixture_dir)
    assert r.returncode == 1
    assert "entry 41: index field says 42" in r.stderr


def test_unknown_key_fails(fixture_dir, tmp_path):
    only_first = tmp_path / "keys.txt"
    only_first.write_text(
        (fixture_dir / "trusted_keys.txt").read_text().splitlines()[0] + "\n"
    )
    r = run_check("export", str(fixture_dir / "export"), "--keys", str(only_first))
    assert r.returncode == 1
    assert "no signature from a trusted key" in r.stderr


def test_tampered_receipt_fails(fixture_dir, tmp_path):
    receipt = json.loads((fixture_dir / "receipt.json").read_text())
    receipt["entries"][0]["entry"] = receipt["entries"][0]["entry"].replace(
        "refund-bot", "refund-bOt", 1
    )
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    r = check_with_trusted_keys("receipt", path, fixture_dir)
    assert r.returncode == 1
    assert "inclusion proof does not verify" in r.stderr
