"""Regenerate the shared test vectors from the Python SDK (the reference).

    .venv/bin/python sdk/test-vectors/generate.py

Both SDKs' tests read these files (sdk/python/tests/test_shared_vectors.py and
sdk/typescript/test/vectors.test.ts): the same inputs must give the same
idempotency key, the same canonical JSON and the same masked/restored arguments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pliuz.errors import PliuzArgumentsError
from pliuz.idempotency import canonical_json, idempotency_key
from pliuz.redaction import parse_path, redact, restore

HERE = Path(__file__).resolve().parent

IDEMPOTENCY_CASES: list[dict[str, Any]] = [
    {"tool": "issue_refund", "args": {"order_id": "A-1", "amount_cents": 5000}},
    {
        "tool": "issue_refund",
        "args": {"amount_cents": 5000, "order_id": "A-1"},
        "session": "run-42",
    },
    {
        "tool": "issue_refund",
        "args": {"order_id": "A-1"},
        "session": "run-42",
        "call": "call_7",
    },
    {"tool": "t", "args": {}, "secret": ""},
    {
        "tool": "pay",
        "args": {"z": 1, "a": {"y": [3, 2, 1], "b": None}, "m": True, "f": False},
    },
    {
        "tool": "unicode",
        "args": {"name": "Zoë Ørsted", "city": "東京", "emoji": "🎉", "rtl": "שלום"},
    },
    {
        "tool": "keys",
        "args": {"é": 1, "e": 2, "😀": 3, "\uffff": 4, "Z": 5, "a": 6, "": 7},
    },
    {
        "tool": "escapes",
        "args": {
            "q": 'say "hi"',
            "b": "back\\slash",
            "nl": "a\nb\tc\r",
            "ctl": "\u0001\u001f\u007f",
            "ls": "\u2028\u2029",
            "slash": "a/b",
        },
    },
    {
        "tool": "numbers",
        "args": {
            "i": 0,
            "neg": -17,
            "big": 9007199254740991,
            "f": 1.5,
            "tenth": 0.1,
            "small": 1e-05,
            "tiny": -2.5e-07,
            "mid": 123456.789,
            "third": 1 / 3,
            "edge": 0.0001,
        },
    },
    {
        "tool": "nested",
        "args": {
            "items": [{"sku": "X", "qty": 2}, {"qty": 1, "sku": "Y"}],
            "meta": {"tags": [], "note": ""},
        },
    },
]

SECRET = "pliuz_ak_test_0123456789abcdef"


def idempotency_vectors() -> list[dict[str, Any]]:
    out = []
    for case in IDEMPOTENCY_CASES:
        secret = case.get("secret", SECRET)
        session = case.get("session")
        call = case.get("call")
        material = {
            "v": 1,
            "tool": case["tool"],
            "args": case["args"],
            "session": session,
            "call": call,
        }
        out.append(
            {
                "tool": case["tool"],
                "args": case["args"],
                "session_id": session,
                "call_id": call,
                "secret": secret,
                "canonical": canonical_json(material),
                "key": idempotency_key(
                    case["tool"],
                    case["args"],
                    session_id=session,
                    call_id=call,
                    secret=secret,
                ),
            }
        )
    return out


REDACTION_CASES: list[dict[str, Any]] = [
    {
        "args": {"card": {"number": "4111111111111111", "exp": "12/30"}, "amount": 10},
        "paths": ["card.number"],
        "final": {"card": {"number": "[REDACTED]", "exp": "01/31"}, "amount": 12},
    },
    {
        "args": {"items": [{"ssn": "1", "n": "a"}, {"ssn": "2", "n": "b"}]},
        "paths": ["items[*].ssn"],
        "final": {
            "items": [{"ssn": "[REDACTED]", "n": "A"}, {"ssn": "edited", "n": "B"}]
        },
    },
    {
        "args": {"tokens": ["a", "b", "c"], "keep": "x"},
        "paths": ["tokens[*]", "tokens[1]"],
        "final": {"tokens": ["[REDACTED]", "[REDACTED]", "[REDACTED]"], "keep": "y"},
    },
    {
        "args": {"a": {"b": {"c": 1}}, "list": [[1, 2], [3, 4]]},
        "paths": ["a.b.c", "list[1][0]", "missing.path", "list[9]"],
        "final": {"a": {"b": None}, "list": [[1, 2], ["[REDACTED]", 4]]},
    },
    {
        "args": {"secret": {"nested": [1, 2]}, "other": 1},
        "paths": ["secret"],
        "final": {"other": 2},
    },
    {
        "args": {"items": [{"ssn": "1"}]},
        "paths": ["items[*].ssn"],
        "final": {"items": [{"ssn": "[REDACTED]"}, {"ssn": "[REDACTED]"}]},
    },
    {
        "args": {"items": [{"ssn": "1"}, {"ssn": "2"}]},
        "paths": ["items[*].ssn"],
        "final": {"items": []},
    },
    {
        "args": {"card": {"number": "4111"}},
        "paths": ["card.number"],
        "final": {"card": "removed"},
    },
]

INVALID_PATHS = ["", ".a", "a.", "a..b", "a[", "a[x]", "a[1]b", "[", "a b]"]
VALID_PATHS = ["a", "a.b", "a[0]", "a[*]", "a[*].b", "a[1][2].c", "[0]", "[*].x"]


def redaction_vectors() -> dict[str, Any]:
    cases = []
    for case in REDACTION_CASES:
        r = redact(case["args"], case["paths"])
        entry: dict[str, Any] = {
            "args": case["args"],
            "paths": case["paths"],
            "masked": r.args,
            "redacted_paths": r.paths,
            "final": case["final"],
        }
        try:
            entry["restored"] = restore(case["final"], r)
        except PliuzArgumentsError:
            entry["restore_error"] = True
        cases.append(entry)
    valid = []
    for p in VALID_PATHS:
        parse_path(p)
        valid.append(p)
    invalid = []
    for p in INVALID_PATHS:
        try:
            parse_path(p)
        except ValueError:
            invalid.append(p)
            continue
        raise AssertionError(f"{p!r} should be invalid")
    return {"cases": cases, "valid_paths": valid, "invalid_paths": invalid}


def main() -> None:
    (HERE / "idempotency.json").write_text(
        json.dumps({"vectors": idempotency_vectors()}, indent=2, ensure_ascii=False)
        + "\n"
    )
    (HERE / "redaction.json").write_text(
        json.dumps(redaction_vectors(), indent=2, ensure_ascii=False) + "\n"
    )


if __name__ == "__main__":
    main()
