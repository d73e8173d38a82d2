"""The test vectors shared with the TypeScript SDK (sdk/test-vectors).

The same arguments must give the same idempotency key and the same masked and
restored arguments in both SDKs; sdk/typescript/test/vectors.test.ts checks the
same files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pliuz.errors import PliuzArgumentsError
from pliuz.idempotency import canonical_json, idempotency_key
from pliuz.redaction import parse_path, redact, restore

VECTORS = Path(__file__).resolve().parents[2] / "test-vectors"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


IDEMPOTENCY = _load("idempotency.json")["vectors"]
REDACTION = _load("redaction.json")


@pytest.mark.parametrize("vector", IDEMPOTENCY, ids=lambda v: str(v["tool"]))
def test_idempotency_vector(vector: dict[str, Any]) -> None:
    material = {
        "v": 1,
        "tool": vector["tool"],
        "args": vector["args"],
        "session": vector["session_id"],
        "call": vector["call_id"],
    }
    assert canonical_json(material) == vector["canonical"]
    key = idempotency_key(
        vector["tool"],
        vector["args"],
        session_id=vector["session_id"],
        call_id=vector["call_id"],
        secret=vector["secret"],
    )
    assert key == vector["key"]


def test_vectors_cover_distinct_keys() -> None:
    keys = [v["key"] for v in IDEMPOTENCY]
    # Key order does not matter (vectors 0 and 1 differ only by session), every other input does.
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("case", REDACTION["cases"], ids=lambda c: ",".join(c["paths"]))
def test_redaction_vector(case: dict[str, Any]) -> None:
    r = redact(case["args"], case["paths"])
    assert r.args == case["masked"]
    assert r.paths == case["redacted_paths"]
    if case.get("restore_error"):
        with pytest.raises(PliuzArgumentsError):
            restore(case["final"], r)
    else:
        assert restore(case["final"], r) == case["restored"]


def test_path_vectors() -> None:
    for path in REDACTION["valid_paths"]:
        parse_path(path)
    for path in REDACTION["invalid_paths"]:
        with pytest.raises(ValueError):
            parse_path(path)
