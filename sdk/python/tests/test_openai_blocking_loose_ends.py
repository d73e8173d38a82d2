"""Blocking mode (a gated call waits inside the run): what happens when the SDK gives up on the
call, what a streamed run shows while it waits, and output guardrails vs. the execution report.
Real server, real Runner with a scripted model."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from agents import Agent, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from agents.tool_guardrails import ToolGuardrailFunctionOutput, tool_output_guardrail
from server import Human

from pliuz.adapters.openai_agents import PliuzApprovalPendingEvent, gated_tool, run_streamed


def wait_status(human: Human, approval_id: str, status: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        a = human.get(approval_id)
        if a["status"] == status:
            return a
        assert time.monotonic() < deadline, f"{approval_id} is {a['status']}, expected {status}"
        time.sleep(0.1)


def test_stream_shows_the_wait_and_cancel_withdraws_the_request(
    agent_env: dict[str, str], human: Human
) -> None:
    ran: list[str] = []

    @gated_tool()
    @function_tool
    def transfer(account: str, amount_cents: int) -> str:
        """Move money."""
        ran.append(account)
        return "moved"

    session = f"stream-{uuid.uuid4().hex[:8]}"
    model = ScriptedModel(
        [[function_call("transfer", {"account": "ACC-1", "amount_cents": 900}, call_id="st_1")]]
    )
    agent = Agent(name="Streamer", tools=[transfer])

    async def scenario() -> PliuzApprovalPendingEvent:
        result = run_streamed(
            agent, "go", run_config=RunConfig(model=model, tracing_disabled=True, group_id=session)
        )
        seen: PliuzApprovalPendingEvent | None = None
        async for event in result.stream_events():
            if isinstance(event, PliuzApprovalPendingEvent):
                seen = event
                result.cancel()  # the user closed the chat while the call waited
        assert seen is not None, "no pliuz.approval_pending event on the stream"
        await asyncio.sleep(0.2)
        return seen

    event = asyncio.run(scenario())
    assert event.type == "pliuz.approval_pending" and event.tool_name == "transfer"
    assert event.call_id == "st_1"
    assert event.inbox_url == f"{agent_env['PLIUZ_BASE_URL']}/requests/{event.approval_id}"
    (pending,) = [
        a for a in human.list(tool="transfer") if a["session_id"] == session
    ]  # the event names the request the inbox shows
    assert pending["id"] == event.approval_id
    cancelled = wait_status(human, event.approval_id, "cancelled")
    assert "cancelled the tool call" in (cancelled["decision"]["reason"] or "")
    assert ran == []


def test_tool_timeout_cancels_the_request(agent_env: dict[str, str], human: Human) -> None:
    @gated_tool()
    @function_tool(timeout=1.0)
    async def send_email(to: str) -> str:
        """Send an email."""
        return "sent"

    session = f"timeout-{uuid.uuid4().hex[:8]}"
    model = ScriptedModel(
        [
            [function_call("send_email", {"to": "a@example.com"}, call_id="to_1")],
            [assistant_message("gave up")],
        ]
    )
    result = asyncio.run(
        Runner.run(
            Agent(name="Mailer", tools=[send_email]),
            "go",
            run_config=RunConfig(model=model, tracing_disabled=True, group_id=session),
        )
    )
    assert result.final_output == "gave up"
    assert "timed out" in str(model.last_call.input if model.last_call else "")
    (a,) = [x for x in human.list(tool="send_email") if x["session_id"] == session]
    cancelled = wait_status(human, a["id"], "cancelled")
    assert "cancelled the tool call" in (cancelled["decision"]["reason"] or "")


def test_withholding_output_guardrail_keeps_output_out_of_the_report(
    agent_env: dict[str, str], human: Human
) -> None:
    @tool_output_guardrail
    def no_card_numbers(data: Any) -> ToolGuardrailFunctionOutput:
        if "4111" in str(data.output):
            return ToolGuardrailFunctionOutput.reject_content("output withheld: card number")
        return ToolGuardrailFunctionOutput.allow()

    def make_tool(secret: str) -> Any:
        @gated_tool()
        @function_tool(tool_output_guardrails=[no_card_numbers])
        def lookup(customer: str) -> str:
            """Look a customer up."""
            return f"{customer}: {secret}"

        return lookup

    for secret, withheld in (("card 4111 1111 1111 1111", True), ("plan gold", False)):
        session = f"guard-{uuid.uuid4().hex[:8]}"
        model = ScriptedModel(
            [
                [function_call("lookup", {"customer": "C-9"}, call_id="g_1")],
                [assistant_message("ok")],
            ]
        )
        agent = Agent(name="Guarded", tools=[make_tool(secret)])

        def approve(session: str = session) -> None:
            (a,) = human.wait_pending(tool="lookup", session=session)
            human.decide_ok(a["id"], "approve")

        t = human.in_background(approve)
        result = asyncio.run(
            Runner.run(
                agent, "go",
                run_config=RunConfig(model=model, tracing_disabled=True, group_id=session),
            )
        )  # fmt: skip
        t.join(30)
        assert result.final_output == "ok"
        (a,) = [x for x in human.list(tool="lookup") if x["session_id"] == session]
        a = wait_status(human, a["id"], "executed")
        report = a["execution"]["output_excerpt"] or ""
        model_saw = str(model.last_call.input if model.last_call else "")
        if withheld:
            assert "4111" not in report and "no_card_numbers" in report
            assert "4111" not in model_saw and "output withheld: card number" in model_saw
        else:
            assert report == "C-9: plan gold" and "plan gold" in model_saw
