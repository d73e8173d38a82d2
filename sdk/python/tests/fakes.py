"""An in-memory stand-in for the Pliuz API, for unit tests of the client logic.

It follows docs/api.md closely enough to exercise the SDK's control flow
(idempotent create, long-poll GET, execution report, cancel, problem+json
errors) and lets a test inject failures. The real server is exercised by the
integration tests (test_server_*.py).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def problem(status: int, code: str, detail: str = "nope", **extra: Any) -> httpx.Response:
    body = {"type": f"https://pliuz.dev/problems/{code}", "title": code, "status": status,
            "detail": detail, "code": code, **extra}  # fmt: skip
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


class FakePliuz:
    def __init__(self) -> None:
        self.approvals: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        self.requests: list[httpx.Request] = []
        # The caller and the background report senders send at the same time; the server
        # makes each change in one transaction, so one request is handled at a time here.
        self._serial = threading.RLock()
        # Each entry is consumed by one request: an exception to raise or a response to return.
        self.inject: list[Exception | httpx.Response] = []
        # Called on every GET of a pending approval (lets a test decide "while waiting"; once
        # decided, a request is never decided again, as on the server).
        self.on_get: Callable[[dict[str, Any]], None] | None = None
        self.auto: str | None = None  # "approved" / "rejected" at create
        # Claim an auto-approved request for the create's ``claim_id``, as the server does.
        self.claim_on_create = False

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def decide(self, approval_id: str, outcome: str, *, reason: str | None = None,
               final_args: dict[str, Any] | None = None) -> None:  # fmt: skip
        a = self.approvals[approval_id]
        a["status"] = outcome
        if outcome == "approved":
            a["final_args"] = final_args if final_args is not None else a["tool_args"]
        a["decision"] = {"outcome": outcome, "by": "user:bob@example.com", "reason": reason,
                         "edited": final_args is not None, "at": _now()}  # fmt: skip

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._serial:
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.inject:
            item = self.inject.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        if not request.headers.get("authorization", "").startswith("Bearer pliuz_ak_"):
            return problem(401, "unauthorized")
        path = request.url.path
        parts = path.removeprefix("/api/v1/approvals").strip("/").split("/")
        if request.method == "POST" and parts == [""]:
            return self._create(json.loads(request.content))
        approval = self.approvals.get(parts[0])
        if approval is None:
            return problem(404, "not_found")
        if request.method == "GET" and len(parts) == 1:
            if self.on_get is not None and approval["status"] == "pending":
                self.on_get(approval)
            return httpx.Response(200, json=approval)
        if request.method == "POST" and parts[1:] == ["execution"]:
            return self._execution(approval, json.loads(request.content))
        if request.method == "POST" and parts[1:] == ["cancel"]:
            if approval["status"] != "pending":
                return problem(409, "invalid_transition")
            approval["status"] = "cancelled"
            approval["decision"] = {"outcome": "cancelled", "by": "agent:bot", "at": _now()}
            return httpx.Response(200, json=approval)
        return problem(404, "not_found")

    def _execution(self, approval: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
        """The claim (``started``) and the report, as in docs/api.md."""
        status = approval["status"]
        claim = (approval.get("execution") or {}).get("claim_id")
        if body["outcome"] == "started":
            if status == "executing" and body.get("claim_id") == claim:
                return httpx.Response(200, json=approval)
            if status in ("executing", "executed"):
                return problem(409, "execution_claimed", "outcome unknown, check before retrying")
            if status != "approved":
                return problem(409, "invalid_transition")
            approval["status"] = "executing"
            approval["execution"] = {"claim_id": body.get("claim_id") or str(uuid.uuid4()),
                                     "claimed_at": _now()}  # fmt: skip
            return httpx.Response(200, json=approval)
        if status == "approved":
            return problem(409, "execution_not_claimed")
        if body.get("claim_id") != claim:
            return problem(409, "claim_mismatch")
        if status == "executed":
            if approval["execution"]["outcome"] == body["outcome"]:
                return httpx.Response(200, json=approval)
            return problem(409, "invalid_transition")
        if status != "executing":
            return problem(409, "invalid_transition")
        approval["status"] = "executed"
        approval["execution"] = {**approval["execution"], **body, "reported_at": _now()}
        return httpx.Response(200, json=approval)

    def _create(self, body: dict[str, Any]) -> httpx.Response:
        if not isinstance(body.get("tool_args"), dict):
            return problem(422, "validation", errors=[{"field": "tool_args", "message": "bad"}])
        key = body.get("idempotency_key")
        if key and key in self.by_key:
            existing = self.approvals[self.by_key[key]]
            if existing["tool_args"] != body["tool_args"]:
                return problem(409, "idempotency_conflict")
            return httpx.Response(200, json={**existing, "is_replay": True})
        aid = str(uuid.uuid4())
        expires = datetime.now(timezone.utc) + timedelta(minutes=30)
        approval = {
            "id": aid, "status": "pending", "final_args": None, "decision": None,
            "execution": None, "approvals": [], "required_approvals": 1,
            "created_at": _now(), "expires_at": expires.isoformat(), "is_replay": False,
            "policy": body.get("policy") or "default", "agent": "bot", **body,
        }  # fmt: skip
        self.approvals[aid] = approval
        if key:
            self.by_key[key] = aid
        if self.auto:
            self.decide(aid, self.auto, reason="policy says so")
            approval["decision"]["by"] = "policy:default"
        claim_id = approval.pop("claim_id", None)
        if self.claim_on_create and claim_id and approval["status"] == "approved":
            self._execution(approval, {"outcome": "started", "claim_id": claim_id})
        return httpx.Response(201, json=approval)
