"""Schemathesis checks for Pliuz: every error response is RFC 9457 problem+json."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.check
def problem_json_errors(ctx: Any, response: Any, case: Any) -> None:
    """Any 4xx/5xx answer is application/problem+json with status and detail."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    assert content_type == "application/problem+json", (
        f"{response.status_code} answered with content-type {content_type!r}"
    )
    body = json.loads(response.content)
    assert body.get("status") == response.status_code, (
        f"status field {body.get('status')!r}"
    )
    assert isinstance(body.get("detail"), str) and body["detail"], "no detail"
