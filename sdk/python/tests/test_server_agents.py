"""The OpenAI Agents adapter end to end: real Runner + scripted model + real pliuz server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from typing import Any

import pytest
from agent_helpers import last_input_text, run, run_in_background, tool_outputs
from agents import Agent, FunctionTool, RunResult, function_tool, handoff
from agents.testing import ScriptedModel, assistant_message, function_call
from pydantic import BaseModel
from server import Human, PliuzServer

import pliuz
from pliuz import AsyncPliuzClient
from pliuz.adapters.openai_agents import PliuzToolRejectedError, gated_tool, wrap_tool


def uid() -> str:
    return uuid.uuid4().hex[:10]


def script(*steps: list[Any]) -> ScriptedModel:
    return ScriptedModel(list(steps))


def done() -> list[Any]:
    return [assistant_message("done")]


@pytest.fixture
def ledger() -> list[tuple[str, Any]]:
    return []


def refund_tool(ledger: list[tuple[str, Any]], **gate: Any) -> FunctionTool:
    @gated_tool(policy="refunds", **gate)
    @function_tool
    def issue_refund(order_id: str, amount_cents: int) -> str:
        """Issue a customer refund."""
        ledger.append(("issue_refund", (order_id, amount_cents)))
        return f"refunded {amount_cents} on {order_id}"

    return issue_refund


def counting_tool(name: str, **gate: Any) -> tuple[FunctionTool, list[int]]:
    """A gated tool ``name(n: int)`` and the list of the ``n`` it really ran with."""
    ran: list[int] = []

    def body(n: int) -> str:
        ran.append(n)
        return "ran"

    return gated_tool(**gate)(function_tool(body, name_override=name)), ran


def one_refund_pending(
    human: Human, tool: FunctionTool, order_id: str, amount_cents: int, call_id: str
) -> tuple[ScriptedModel, concurrent.futures.Future[RunResult], dict[str, Any]]:
    """Run (in the background) an agent whose model calls ``tool`` once as
    ``issue_refund(order_id, amount_cents)``; its model, its run and the pending request."""
    session = uid()
    args = {"order_id": order_id, "amount_cents": amount_cents}
    model = script([function_call("issue_refund", args, call_id=call_id)], done())
    fut = run_in_background(Agent(name="Support", tools=[tool]), model, group_id=session)
    (a,) = human.wait_pending(tool="issue_refund", session=session)
    return model, fut, a


def test_wrapped_tool_looks_the_same_to_the_model(ledger: list[tuple[str, Any]]) -> None:
    @function_tool
    def issue_refund(order_id: str, amount_cents: int) -> str:
        """Issue a customer refund."""
        return "x"

    wrapped = wrap_tool(issue_refund, policy="refunds")
    assert isinstance(wrapped, FunctionTool) and wrapped is not issue_refund
    for field in ("name", "description", "params_json_schema", "strict_json_schema",
                  "is_enabled", "needs_approval", "timeout_seconds", "defer_loading"):  # fmt: skip
        assert getattr(wrapped, field) == getattr(issue_refund, field), field
    assert wrapped.on_invoke_tool is not issue_refund.on_invoke_tool


def test_approve(server: PliuzServer, human: Human, agent_env: dict[str, str],
                 ledger: list[tuple[str, Any]]) -> None:  # fmt: skip
    model, fut, a = one_refund_pending(human, refund_tool(ledger), "A-1", 5000, "c1")
    assert a["call_id"] == "c1" and a["policy"] == "refunds"
    assert a["tool_args"] == {"order_id": "A-1", "amount_cents": 5000}
    assert a["tool_schema"]["properties"]["amount_cents"]["type"] == "integer"
    assert ledger == []  # not before the decision
    human.decide_ok(a["id"], "approve")
    result = fut.result(timeout=60)
    assert result.final_output == "done"
    assert ledger == [("issue_refund", ("A-1", 5000))]
    assert tool_outputs(model)["c1"] == "refunded 5000 on A-1"
    final = human.get(a["id"])
    assert final["status"] == "executed" and final["execution"]["outcome"] == "success"
    assert "refunded 5000" in final["execution"]["output_excerpt"]


def test_reject_reason_reaches_the_model(server: PliuzServer, human: Human,
                                         agent_env: dict[str, str],
                                         ledger: list[tuple[str, Any]]) -> None:  # fmt: skip
    model, fut, a = one_refund_pending(human, refund_tool(ledger), "A-2", 9000, "c2")
    human.decide_ok(a["id"], "reject", reason="order A-2 was never delivered; escalate")
    fut.result(timeout=60)
    assert ledger == []
    out = tool_outputs(model)["c2"]
    assert "rejected" in out and "order A-2 was never delivered; escalate" in out
    assert "order A-2 was never delivered; escalate" in last_input_text(model)


def test_reject_can_raise(server: PliuzServer, human: Human, agent_env: dict[str, str],
                          ledger: list[tuple[str, Any]]) -> None:  # fmt: skip
    _, fut, a = one_refund_pending(human, refund_tool(ledger, on_reject="raise"), "A-3", 9000, "c3")
    human.decide_ok(a["id"], "reject", reason="fraud")
    with pytest.raises(PliuzToolRejectedError) as info:
        fut.result(timeout=60)
    assert isinstance(info.value, pliuz.PliuzRejectedError) and info.value.reason == "fraud"
    assert ledger == []


class Card(BaseModel):
    number: str
    holder: str


def test_edit_runs_with_edited_args_and_restores_redacted(
    server: PliuzServer, human: Human, agent_env: dict[str, str]
) -> None:
    session = uid()
    ran: list[tuple[str, int, Card]] = []

    @gated_tool(redact=["card.number"])
    @function_tool
    async def pay_invoice(invoice_id: str, amount_cents: int, card: Card) -> str:
        """Pay an invoice with a card."""
        ran.append((invoice_id, amount_cents, card))
        return "paid"

    agent = Agent(name="Billing", tools=[pay_invoice])
    args = {"invoice_id": "INV-7", "amount_cents": 7000,
            "card": {"number": "4111111111111111", "holder": "Ada"}}  # fmt: skip
    model = script([function_call("pay_invoice", args, call_id="c4")], done())
    fut = run_in_background(agent, model, group_id=session)
    (a,) = human.wait_pending(tool="pay_invoice", session=session)
    assert a["tool_args"]["card"] == {"number": "[REDACTED]", "holder": "Ada"}
    assert "4111111111111111" not in str(a)
    edited = {**a["tool_args"], "amount_cents": 3500,
              "card": {"number": "[REDACTED]", "holder": "Ada Lovelace"}}  # fmt: skip
    human.decide_ok(a["id"], "edit", final_args=edited)
    fut.result(timeout=60)
    assert ran == [("INV-7", 3500, Card(number="4111111111111111", holder="Ada Lovelace"))]
    assert tool_outputs(model)["c4"] == "paid"


def test_auto_approve_runs_at_once(server: PliuzServer, agent_env: dict[str, str],
                                   ledger: list[tuple[str, Any]]) -> None:  # fmt: skip
    agent = Agent(name="Support", tools=[refund_tool(ledger)])
    model = script(
        [function_call("issue_refund", {"order_id": uid(), "amount_cents": 999}, call_id="c5")],
        done(),
    )
    started = time.monotonic()
    run(agent, model, group_id=uid())  # no human anywhere
    assert time.monotonic() - started < 15
    assert len(ledger) == 1 and ledger[0][1][1] == 999
    assert tool_outputs(model)["c5"].startswith("refunded 999")


def test_expiry_tells_the_model_and_never_runs(
    server: PliuzServer, agent_env: dict[str, str]
) -> None:
    quick_tool, ran = counting_tool("quick_tool", policy="quick")
    model = script([function_call("quick_tool", {"n": 1}, call_id="c6")], done())
    run(Agent(name="Q", tools=[quick_tool]), model, group_id=uid())
    assert ran == []
    assert "expired" in tool_outputs(model)["c6"] and "NOT executed" in tool_outputs(model)["c6"]


def test_timeout_tells_the_model(server: PliuzServer, agent_env: dict[str, str]) -> None:
    transfer, ran = counting_tool("transfer", timeout_s=1.5, cancel_on_timeout=True)
    model = script([function_call("transfer", {"n": 1}, call_id="c7")], done())
    run(Agent(name="T", tools=[transfer]), model, group_id=uid())
    assert ran == [] and "no approval decision arrived" in tool_outputs(model)["c7"]


def test_server_unreachable_never_runs(ledger: list[tuple[str, Any]]) -> None:
    tool = refund_tool(
        ledger, client=lambda: AsyncPliuzClient("pliuz_ak_x", "http://127.0.0.1:9", max_retries=1)
    )
    model = script(
        [function_call("issue_refund", {"order_id": "A-9", "amount_cents": 5000}, call_id="c8")],
        done(),
    )
    run(Agent(name="Support", tools=[tool]), model)
    assert ledger == []
    assert "could not be reached" in tool_outputs(model)["c8"]


def test_parallel_calls_decided_differently(server: PliuzServer, human: Human,
                                            agent_env: dict[str, str],
                                            ledger: list[tuple[str, Any]]) -> None:  # fmt: skip
    session = uid()
    agent = Agent(name="Support", tools=[refund_tool(ledger)])
    model = script(
        [
            function_call("issue_refund", {"order_id": "P-1", "amount_cents": 5001}, call_id="p1"),
            function_call("issue_refund", {"order_id": "P-2", "amount_cents": 5002}, call_id="p2"),
        ],
        done(),
    )
    fut = run_in_background(agent, model, group_id=session)
    pending = human.wait_pending(2, tool="issue_refund", session=session)
    by_call = {a["call_id"]: a for a in pending}
    assert set(by_call) == {"p1", "p2"}
    human.decide_ok(by_call["p2"]["id"], "reject", reason="duplicate of P-1")
    human.decide_ok(by_call["p1"]["id"], "approve")
    fut.result(timeout=60)
    assert ledger == [("issue_refund", ("P-1", 5001))]
    outs = tool_outputs(model)
    assert outs["p1"] == "refunded 5001 on P-1"
    assert "rejected" in outs["p2"] and "duplicate of P-1" in outs["p2"]


def test_sync_and_async_tools_and_session_from_context(
    server: PliuzServer, human: Human, agent_env: dict[str, str]
) -> None:
    session = uid()
    ran: list[str] = []

    @gated_tool(originator=lambda ctx: ctx.context["user"], context_messages="conversation")
    @function_tool
    def send_email(to: str) -> str:
        """Send."""
        ran.append("sync:" + to)
        return "sent"

    @gated_tool()
    @function_tool
    async def delete_user(user_id: str) -> str:
        """Delete."""
        await asyncio.sleep(0)
        ran.append("async:" + user_id)
        return "deleted"

    model = script(
        [function_call("send_email", {"to": "x@example.com"}, call_id="s1"),
         function_call("delete_user", {"user_id": "u-1"}, call_id="s2")],
        done(),
    )  # fmt: skip
    ctx = {"session_id": session, "user": "carol@example.com"}
    fut = run_in_background(
        Agent(name="Ops", tools=[send_email, delete_user]), model, context=ctx,
        prompt="email x and delete u-1",
    )  # fmt: skip
    pending = human.wait_pending(2, session=session)
    for a in pending:
        if a["tool_name"] == "send_email":
            assert a["originator"] == "user:carol@example.com"  # stored typed and normalised
            assert {"role": "user", "content": "email x and delete u-1"} in a["context_messages"]
        human.decide_ok(a["id"], "approve")
    fut.result(timeout=60)
    assert sorted(ran) == ["async:u-1", "sync:x@example.com"]


def test_handoff_and_agent_as_tool(server: PliuzServer, human: Human,
                                   agent_env: dict[str, str],
                                   ledger: list[tuple[str, Any]]) -> None:  # fmt: skip
    session = uid()
    tool = refund_tool(ledger)
    # Handoff: triage hands off to billing, which calls the gated tool.
    billing = Agent(name="Billing", tools=[tool])
    triage = Agent(name="Triage", handoffs=[handoff(billing)])
    model = script(
        [function_call("transfer_to_billing", {}, call_id="h0")],
        [function_call("issue_refund", {"order_id": "H-1", "amount_cents": 6000}, call_id="h1")],
        done(),
    )
    fut = run_in_background(triage, model, group_id=session)
    (a,) = human.wait_pending(tool="issue_refund", session=session)
    assert a["call_id"] == "h1"
    human.decide_ok(a["id"], "approve")
    fut.result(timeout=60)
    assert ledger == [("issue_refund", ("H-1", 6000))]

    # Agent as tool: the manager calls a sub-agent whose tool is gated.
    inner_model = script(
        [function_call("issue_refund", {"order_id": "T-1", "amount_cents": 7000}, call_id="t1")],
        [assistant_message("sub-agent finished")],
    )
    sub = Agent(name="Refunder", tools=[tool], model=inner_model)
    outer_model = script([function_call("refunder", {"input": "refund T-1"}, call_id="o1")], done())
    manager = Agent(
        name="Manager",
        tools=[sub.as_tool(tool_name="refunder", tool_description="Refunds things")],
        model=outer_model,
    )
    fut = run_in_background(manager, None, group_id=session)
    (b,) = human.wait_pending(tool="issue_refund", session=session)
    assert b["call_id"] == "t1"
    human.decide_ok(b["id"], "reject", reason="not refundable")
    fut.result(timeout=60)
    assert ledger == [("issue_refund", ("H-1", 6000))]
    assert "not refundable" in tool_outputs(inner_model)["t1"]
    assert tool_outputs(outer_model)["o1"] == "sub-agent finished"


def test_server_restarted_mid_wait(
    own_server: PliuzServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in own_server.agent_env().items():
        monkeypatch.setenv(k, v)
    human = Human(own_server)
    ledger: list[tuple[str, Any]] = []
    session = uid()
    model = script(
        [function_call("issue_refund", {"order_id": "R-1", "amount_cents": 8000}, call_id="r1")],
        done(),
    )
    fut = run_in_background(Agent(name="S", tools=[refund_tool(ledger)]), model, group_id=session)
    (a,) = human.wait_pending(tool="issue_refund", session=session)
    own_server.kill()
    time.sleep(2.0)  # the agent's long poll fails and backs off
    assert not fut.done() and ledger == []
    own_server.start()
    (again,) = human.wait_pending(tool="issue_refund", session=session)
    assert again["id"] == a["id"]
    human.decide_ok(a["id"], "approve")
    fut.result(timeout=90)
    assert ledger == [("issue_refund", ("R-1", 8000))]
    assert human.get(a["id"])["status"] == "executed"


def test_wrap_tool_rejects_non_function_tools() -> None:
    with pytest.raises(TypeError, match="FunctionTool"):
        wrap_tool(lambda: None, policy="refunds")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        gated_tool(redact=["bad..path"])


def test_tool_error_is_reported_as_error(
    server: PliuzServer, human: Human, agent_env: dict[str, str]
) -> None:
    @gated_tool(policy="refunds")
    @function_tool
    def issue_refund(order_id: str, amount_cents: int) -> str:
        """Issue a customer refund."""
        raise RuntimeError("payment provider down")

    order = uid()
    model = script(
        [function_call("issue_refund", {"order_id": order, "amount_cents": 10}, call_id="e1")],
        done(),
    )
    run(Agent(name="Support", tools=[issue_refund]), model, group_id=uid())
    assert "error" in tool_outputs(model)["e1"].lower()  # the SDK's own failure text
    (a,) = [x for x in human.list(tool="issue_refund") if x["tool_args"]["order_id"] == order]
    assert a["status"] == "executed" and a["execution"]["outcome"] == "error"
    # The SDK formats the exception for the model; that text is what is reported.
    assert a["execution"]["output_excerpt"].startswith("tool failed: ")


def test_pliuz_error_raised_by_the_tool_body_is_not_mistaken_for_the_gate(
    server: PliuzServer, human: Human, agent_env: dict[str, str]
) -> None:
    from agents.exceptions import UserError

    @gated_tool(policy="refunds")
    @function_tool(failure_error_function=None)
    def issue_refund(order_id: str, amount_cents: int) -> str:
        """Issue a customer refund."""
        raise pliuz.PliuzRejectedError("a nested approval was rejected", reason="nested")

    order = uid()
    model = script(
        [function_call("issue_refund", {"order_id": order, "amount_cents": 10}, call_id="n1")],
        done(),
    )
    with pytest.raises(UserError) as info:
        run(Agent(name="Support", tools=[issue_refund]), model, group_id=uid())
    assert isinstance(info.value.__cause__, pliuz.PliuzRejectedError)
    (a,) = [x for x in human.list(tool="issue_refund") if x["tool_args"]["order_id"] == order]
    assert a["status"] == "executed" and a["execution"]["outcome"] == "error"


def test_quorum_of_two_keeps_waiting_until_the_second_approval(
    server: PliuzServer, human: Human, agent_env: dict[str, str]
) -> None:
    session = uid()
    ran: list[int] = []

    @gated_tool()
    @function_tool
    def wire_money(amount_cents: int) -> str:
        """Wire money."""
        ran.append(amount_cents)
        return "wired"

    model = script([function_call("wire_money", {"amount_cents": 10_000}, call_id="q1")], done())
    fut = run_in_background(Agent(name="Treasury", tools=[wire_money]), model, group_id=session)
    (a,) = human.wait_pending(tool="wire_money", session=session)
    human.decide_ok(a["id"], "approve")
    dup = human.decide(a["id"], "approve")
    assert dup.status_code == 409 and dup.json()["code"] == "already_voted"
    time.sleep(1.0)
    assert not fut.done() and ran == []  # one of two approvals: still waiting
    Human(server, server.second_user_token).decide_ok(a["id"], "approve")
    fut.result(timeout=60)
    assert ran == [10_000] and tool_outputs(model)["q1"] == "wired"
