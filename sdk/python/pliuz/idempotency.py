"""Deterministic idempotency keys.

The same tool, arguments, session and framework call id always give the same
key, so a retried or restarted call re-attaches to the request it created
before instead of asking a human twice::

    key = idempotency_key("issue_refund", {"order_id": "A-1"}, session_id="run-42")

The key is an HMAC-SHA256 keyed with the agent's API key: it is stable across
restarts of the same agent, but it reveals nothing about (possibly redacted)
argument values to the server, which only stores a hash of the API key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

__all__ = ["canonical_json", "idempotency_key"]

_PREFIX = "pz1_"


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys (stable across runs and dict orderings)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def idempotency_key(
    tool_name: str,
    tool_args: dict[str, Any],
    *,
    session_id: str | None = None,
    call_id: str | None = None,
    secret: str | None = None,
) -> str:
    """Return ``"pz1_" + 64 hex chars`` for this call (68 chars, within the 200-char limit)."""
    material = canonical_json(
        {"v": 1, "tool": tool_name, "args": tool_args, "session": session_id, "call": call_id}
    )
    # One-shot: no HMAC object built per call (it runs on every gated call).
    digest = hmac.digest((secret or "").encode(), material.encode(), hashlib.sha256).hex()
    return _PREFIX + digest
