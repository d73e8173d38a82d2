"""PliuzClient / AsyncPliuzClient against the real server: lifecycle and error mapping."""

from __future__ import annotations

import threading
import uuid

import pytest
from server import Human, PliuzServer

import pliuz
from pliuz import AsyncPliuzClient, PliuzClient


def uid() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def client(server: PliuzServer) -> PliuzClient:
    return PliuzClient(server.agent_key, server.base_url)


def test_lifecycle_create_wait_approve_report(client: PliuzClient, human: Human) -> None:
    a = client.create_approval(
        "transfer", {"to": "acct-1", "amount_cents": 1234, "ref": uid()},
        call_id="call_x", session_id="s-1", originator="alice@example.com",
        context_messages=[{"role": "user", "content": "pay acct-1"}],
        client_metadata={"k": "v"}, idempotency_key=f"life-{uid()}",
    )  # fmt: skip
    assert a.status == "pending" and a.policy == "payments" and not a.is_replay
    assert a.call_id == "call_x" and a.session_id == "s-1" and a.expires_at is not None
    timer = threading.Timer(0.5, lambda: human.decide_ok(a.id, "approve"))
    timer.start()
    settled = client.wait_for_decision(a, timeout=20)
    timer.join()
    assert settled.status == "approved" and settled.final_args == a.tool_args
    assert settled.decision is not None and settled.decision.by == "user:bob@example.com"
    assert settled.execute_before is not None and settled.execute_before > settled.created_at
    with pytest.raises(pliuz.PliuzConflictError) as unclaimed:
        client.report_execution(a.id, "success", latency_ms=7)
    assert unclaimed.value.code == "execution_not_claimed"
    claimed = client.claim_execution(a.id)
    assert claimed.status == "executing" and claimed.execution is not None
    claim_id = claimed.execution.claim_id
    assert claim_id and claimed.execution.claimed_at is not None
    assert claimed.execution.outcome is None
    # Only one claim ever: a second caller is refused (the outcome is unknown to it).
    with pytest.raises(pliuz.PliuzConflictError) as second:
        client.claim_execution(a.id)
    assert second.value.code == "execution_claimed" and "unknown" in (second.value.detail or "")
    # The holder repeating its own claim (a retry) keeps it.
    assert client.claim_execution(a.id, claim_id=claim_id).execution == claimed.execution
    with pytest.raises(pliuz.PliuzConflictError) as wrong:
        client.report_execution(a.id, "success", claim_id="not-the-claim")
    assert wrong.value.code == "claim_mismatch"
    done = client.report_execution(
        a.id, "success", claim_id=claim_id, latency_ms=7, output_excerpt="ok"
    )
    assert done.status == "executed" and done.execution is not None
    assert done.execution.outcome == "success" and done.execution.claim_id == claim_id
    # A retried identical report is answered with the recorded state; a different one is not.
    assert client.report_execution(a.id, "success", claim_id=claim_id).execution == done.execution
    with pytest.raises(pliuz.PliuzConflictError) as info:
        client.report_execution(a.id, "error", claim_id=claim_id)
    assert info.value.code == "invalid_transition"
    with pytest.raises(pliuz.PliuzConflictError) as again:
        client.claim_execution(a.id)
    assert again.value.code == "execution_claimed"


def test_idempotent_replay_and_conflict(client: PliuzClient) -> None:
    key = f"idem-{uid()}"
    a = client.create_approval("transfer", {"to": "x", "n": 1}, idempotency_key=key)
    b = client.create_approval("transfer", {"to": "x", "n": 1}, idempotency_key=key)
    assert b.id == a.id and b.is_replay
    with pytest.raises(pliuz.PliuzIdempotencyConflictError) as info:
        client.create_approval("transfer", {"to": "x", "n": 2}, idempotency_key=key)
    assert info.value.status == 409 and info.value.code == "idempotency_conflict"


def test_auto_approve_by_policy(client: PliuzClient) -> None:
    a = client.create_approval("issue_refund", {"order_id": uid(), "amount_cents": 500})
    assert a.status == "approved" and a.decision is not None
    assert a.decision.by == "policy:refunds"
    assert client.wait_for_decision(a.id, timeout=5).status == "approved"


def test_cancel(client: PliuzClient) -> None:
    a = client.create_approval("transfer", {"to": uid()})
    c = client.cancel_approval(a.id, reason="changed my mind")
    assert c.status == "cancelled"
    with pytest.raises(pliuz.PliuzConflictError):
        client.cancel_approval(a.id)
    with pytest.raises(pliuz.PliuzCancelledError):
        pliuz.raise_for_outcome(client.get_approval(a.id))


def test_wait_timeout(client: PliuzClient) -> None:
    a = client.create_approval("transfer", {"to": uid()})
    with pytest.raises(pliuz.PliuzTimeoutError):
        client.wait_for_decision(a.id, timeout=1.5)


def test_error_mapping_against_the_server(server: PliuzServer, client: PliuzClient) -> None:
    with pytest.raises(pliuz.PliuzAuthenticationError) as e401:
        PliuzClient("pliuz_ak_not_a_real_key", server.base_url).get_approval(str(uuid.uuid4()))
    assert e401.value.code == "unauthorized"
    with pytest.raises(pliuz.PliuzNotFoundError):
        client.get_approval(str(uuid.uuid4()))
    with pytest.raises(pliuz.PliuzNoMatchingPolicyError) as e422:
        client.create_approval("no_such_tool_anywhere", {"a": 1})
    assert e422.value.code == "no_matching_policy" and e422.value.detail
    with pytest.raises(pliuz.PliuzValidationError) as unknown:
        client.create_approval("transfer", {"a": 1}, policy="no-such-policy")
    assert unknown.value.code == "unknown_policy"
    a = client.create_approval("transfer", {"to": uid()})
    with pytest.raises(pliuz.PliuzForbiddenError):
        client.decide(a, "approve")  # an agent key can never decide
    with pytest.raises(ValueError, match="which arguments were reviewed"):
        client.decide(a.id, "approve")  # no digest: refused before any request


def test_user_token_decides_through_the_sdk(server: PliuzServer, client: PliuzClient) -> None:
    a = client.create_approval("transfer", {"to": uid(), "amount_cents": 5})
    with PliuzClient(server.user_token, server.base_url) as human:
        page = human.list_approvals(status="pending", tool="transfer")
        assert a.id in {x.id for x in page.items}
        edited = human.decide(a, "edit", final_args={**a.tool_args, "amount_cents": 4})
        assert edited.status == "approved" and edited.final_args is not None
        assert edited.final_args["amount_cents"] == 4
        with pytest.raises(pliuz.PliuzConflictError):
            human.decide(edited, "reject", reason="too late")


def test_a_decision_on_arguments_not_reviewed_is_refused(
    server: PliuzServer, client: PliuzClient
) -> None:
    a = client.create_approval("transfer", {"to": uid(), "amount_cents": 5})
    with PliuzClient(server.user_token, server.base_url) as human:
        with pytest.raises(pliuz.PliuzArgsChangedError) as changed:
            human.decide(a.id, "approve", args_digest="0" * 64)
        assert changed.value.status == 409
        assert "changed since you reviewed" in str(changed.value.detail)
        assert human.get_approval(a.id).status == "pending"
        assert human.decide(human.get_approval(a.id), "approve").status == "approved"


@pytest.mark.asyncio
async def test_async_client_against_server(server: PliuzServer, human: Human) -> None:
    async with AsyncPliuzClient(server.agent_key, server.base_url) as c:
        a = await c.create_approval("transfer", {"to": uid()})
        threading.Timer(0.3, lambda: human.decide_ok(a.id, "reject", reason="nope")).start()
        settled = await c.wait_for_decision(a.id, timeout=20)
        assert settled.status == "rejected" and settled.reason == "nope"


def test_documented_fields_are_parsed(client: PliuzClient) -> None:
    a = client.create_approval("issue_refund", {"order_id": uid(), "amount_cents": 5000})
    assert a.allowed_decisions == ["approve", "reject", "edit"]
    assert a.args_digest is not None and len(a.args_digest) == 64
    assert a.proposed_args is None and a.required_approvals == 1
