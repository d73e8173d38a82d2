"""A gated call whose request the policy approves at once is claimed by its create: one
HTTP request before the body runs, against the real server (issue #13)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from server import Human, PliuzServer, join_checked

import pliuz
from pliuz import AsyncPliuzClient, PliuzClient, gated


def uid() -> str:
    return uuid.uuid4().hex[:8]


@pytest.mark.asyncio
async def test_an_auto_approved_async_call_runs_after_one_request(
    server: PliuzServer, human: Human
) -> None:
    sent: list[tuple[str, str]] = []

    async def record(request: httpx.Request) -> None:
        sent.append((request.method, request.url.path))

    http = httpx.AsyncClient(base_url=server.base_url, event_hooks={"request": [record]})
    client = AsyncPliuzClient(server.agent_key, server.base_url, http_client=http)
    before_body: list[list[tuple[str, str]]] = []

    @gated(client=client, session_id=uid())
    async def issue_refund(order_id: str, amount_cents: int) -> str:
        before_body.append(list(sent))
        return f"refunded {order_id}"

    order = uid()
    assert await issue_refund(order, 100) == f"refunded {order}"  # auto-approved: <= 1000
    assert before_body == [[("POST", "/api/v1/approvals")]]
    await client.aclose()
    (a,) = [a for a in human.list(tool="issue_refund") if a["tool_args"]["order_id"] == order]
    assert a["status"] == "executed", a
    assert a["execution"]["outcome"] == "success"
    assert a["execution"]["output_excerpt"] == f"refunded {order}"
    assert ("POST", f"/api/v1/approvals/{a['id']}/execution") in sent  # the report
    assert len(before_body) == 1


def test_a_pending_call_still_claims_after_the_decision(server: PliuzServer, human: Human) -> None:
    sent: list[tuple[str, str, bytes]] = []

    def record(request: httpx.Request) -> None:
        sent.append((request.method, request.url.path, request.read()))

    http = httpx.Client(event_hooks={"request": [record]})
    client = PliuzClient(server.agent_key, server.base_url, http_client=http)
    session = uid()
    ran: list[int] = []

    @gated(client=client, session_id=session)
    def transfer(to: str, amount_cents: int) -> str:
        ran.append(amount_cents)
        return "sent"

    t = human.in_background(
        lambda: human.decide_ok(human.wait_pending(tool="transfer", session=session)[0]["id"],
                                "approve")
    )  # fmt: skip
    assert transfer("acct-1", 700) == "sent"
    join_checked(t)
    assert ran == [700]
    pliuz.flush_reports()
    (a,) = [a for a in human.list(tool="transfer") if a["session_id"] == session]
    claims = [
        body for method, path, body in sent
        if path == f"/api/v1/approvals/{a['id']}/execution" and b'"started"' in body
    ]  # fmt: skip
    assert len(claims) == 1, sent
    assert a["status"] == "executed" and a["execution"]["outcome"] == "success"


def test_create_approval_takes_a_claim_id(server: PliuzServer) -> None:
    client = PliuzClient(server.agent_key, server.base_url)
    args = {"order_id": uid(), "amount_cents": 100}
    claimed = client.create_approval("issue_refund", args, claim_id="mine-1")
    assert claimed.status == "executing"
    assert claimed.execution is not None and claimed.execution.claim_id == "mine-1"
    waiting = client.create_approval("issue_refund", {**args, "amount_cents": 5000}, claim_id="x")
    assert waiting.status == "pending" and waiting.execution is None
    client.close()
