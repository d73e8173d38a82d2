"""The plain ``gated`` decorator (sync and async functions) against the real server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from server import Human, PliuzServer, join_checked

import pliuz
from pliuz import AsyncPliuzClient, PliuzClient, gated


def uid() -> str:
    return uuid.uuid4().hex[:8]


def test_sync_gated_approve_then_never_twice(server: PliuzServer, human: Human) -> None:
    ran: list[tuple[str, int]] = []
    session = f"sess-{uid()}"

    @gated(
        policy="payments", session_id=session, client=PliuzClient(server.agent_key, server.base_url)
    )
    def transfer(to: str, amount_cents: int) -> str:
        ran.append((to, amount_cents))
        return f"sent {amount_cents} to {to}"

    def approve() -> None:
        (a,) = human.wait_pending(tool="transfer", session=session)
        assert a["session_id"] == session
        human.decide_ok(a["id"], "approve")

    t = human.in_background(approve)
    assert transfer("acct-9", 4200) == "sent 4200 to acct-9"
    join_checked(t)
    assert ran == [("acct-9", 4200)]
    with pytest.raises(pliuz.PliuzAlreadyExecutedError) as info:
        transfer("acct-9", 4200)
    assert ran == [("acct-9", 4200)]
    approval = info.value.approval
    assert approval is not None and approval.execution is not None
    assert approval.execution.output_excerpt == "sent 4200 to acct-9"


def test_sync_gated_reject_and_edit_with_redaction(server: PliuzServer, human: Human) -> None:
    ran: list[dict[str, Any]] = []
    client = PliuzClient(server.agent_key, server.base_url)
    session = uid()

    @gated(redact=["card.number"], client=client, session_id=session)
    def pay_invoice(invoice_id: str, amount_cents: int, card: dict[str, str]) -> str:
        ran.append({"invoice_id": invoice_id, "amount_cents": amount_cents, "card": card})
        return "paid"

    def reject() -> None:
        (a,) = human.wait_pending(tool="pay_invoice", session=session)
        assert a["tool_args"]["card"]["number"] == "[REDACTED]"
        human.decide_ok(a["id"], "reject", reason="invoice already paid")

    t = human.in_background(reject)
    with pytest.raises(pliuz.PliuzRejectedError) as info:
        pay_invoice("INV-1", 900, card={"number": "4111111111111111", "holder": "Al"})
    join_checked(t)
    assert info.value.reason == "invoice already paid" and ran == []

    def edit() -> None:
        (a,) = human.wait_pending(tool="pay_invoice", session=session)
        final = {**a["tool_args"], "amount_cents": 450}
        human.decide_ok(a["id"], "edit", final_args=final)

    t = human.in_background(edit)
    assert pay_invoice("INV-2", 900, card={"number": "4111111111111111", "holder": "Al"}) == "paid"
    join_checked(t)
    assert ran == [
        {"invoice_id": "INV-2", "amount_cents": 450,
         "card": {"number": "4111111111111111", "holder": "Al"}}
    ]  # fmt: skip
    # The card number never reached the server.
    for a in human.list(tool="pay_invoice"):
        assert "4111111111111111" not in str(a)


@pytest.mark.asyncio
async def test_async_gated_approve_and_expiry(server: PliuzServer, human: Human) -> None:
    ran: list[str] = []
    session = uid()

    @gated(client=AsyncPliuzClient(server.agent_key, server.base_url), session_id=session)
    async def send_email(to: str, body: str) -> str:
        ran.append(to)
        return "queued"

    t = human.in_background(
        lambda: human.decide_ok(
            human.wait_pending(tool="send_email", session=session)[0]["id"], "approve"
        )
    )
    assert await send_email("a@example.com", "hello") == "queued"
    join_checked(t)
    assert ran == ["a@example.com"]

    @gated(client=AsyncPliuzClient(server.agent_key, server.base_url), session_id=uid())
    async def quick_fn(x: int) -> int:
        ran.append("quick")
        return x

    with pytest.raises(pliuz.PliuzExpiredError):
        await quick_fn(1)  # policy "quick" expires in 2 s and nobody decides
    assert ran == ["a@example.com"]


def test_gated_server_unreachable_never_runs() -> None:
    ran: list[int] = []
    port_that_is_closed = "http://127.0.0.1:9"

    @gated(client=PliuzClient("pliuz_ak_x", port_that_is_closed, max_retries=1))
    def transfer(n: int) -> int:
        ran.append(n)
        return n

    with pytest.raises(pliuz.PliuzConnectionError):
        transfer(1)
    assert ran == []


def test_sync_gated_default_client_from_env_and_auto_approve(agent_env: dict[str, str]) -> None:
    ran: list[int] = []

    @gated(policy="refunds", session_id=uid())
    def issue_refund(order_id: str, amount_cents: int) -> str:
        ran.append(amount_cents)
        return "ok"

    assert issue_refund(uid(), 100) == "ok"  # auto_approve: amount_cents <= 1000, no human
    assert ran == [100]
