"""pliuz.adapters.langgraph.gated_tool against the real server and a real LangChain agent.

``create_agent`` (a LangGraph ``StateGraph`` with ``ToolNode``) and an
``InMemorySaver`` checkpointer, driven by ``ScriptedChatModel``; the human
decides over HTTP with the user token.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.messages import ToolMessage
from langchain_core.tools import InjectedToolCallId, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from server import Human, PliuzServer, free_port, join_checked
from test_langgraph_helpers import ScriptedChatModel, thread

from pliuz import PliuzClient, PliuzRejectedError
from pliuz.adapters.langgraph import PliuzGatedTool, gated_tool, wrap_tool


def agent_for(tools: list[Any], script: list[Any]) -> tuple[Any, ScriptedChatModel]:
    model = ScriptedChatModel(script=script)
    return create_agent(model, tools=tools, checkpointer=InMemorySaver()), model


def one_call(name: str, args: dict[str, Any], call_id: str) -> list[Any]:
    return [[(name, args, call_id)], "All done."]


def one_call_agent(
    gated: Any, args: dict[str, Any], call_id: str
) -> tuple[Any, ScriptedChatModel, Any]:
    """An agent whose model calls ``gated`` once, its model, and a new thread to run it on."""
    agent, model = agent_for([gated], one_call(gated.name, args, call_id))
    return agent, model, thread()


def test_schema_unchanged_and_stackable() -> None:
    @tool
    def issue_refund(order_id: str, amount_cents: int) -> str:
        """Issue a customer refund."""
        return "x"

    gated = gated_tool(policy="refunds")(issue_refund)
    assert isinstance(gated, PliuzGatedTool) and gated.wrapped is issue_refund
    assert gated.name == "issue_refund" and gated.description == "Issue a customer refund."
    assert convert_to_openai_tool(gated) == convert_to_openai_tool(issue_refund)
    with pytest.raises(TypeError):
        wrap_tool(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        gated_tool(redact=["a..b"])


def test_approve_runs_once_with_exact_args(agent_env: dict[str, str], human: Human) -> None:
    ran: list[tuple[str, int, str]] = []

    @gated_tool(policy="refunds")
    @tool
    def issue_refund(
        order_id: str, amount_cents: int, call_id: Annotated[str, InjectedToolCallId]
    ) -> str:
        """Issue a customer refund."""
        ran.append((order_id, amount_cents, call_id))
        return f"Refunded {amount_cents} on {order_id}."

    agent, model, config = one_call_agent(
        issue_refund, {"order_id": "LG-1", "amount_cents": 5000}, "c-ok"
    )
    session = config["configurable"]["thread_id"]
    seen: dict[str, Any] = {}

    def approve() -> None:
        (a,) = human.wait_pending(tool="issue_refund", session=session)
        seen.update(a)
        assert ran == []
        human.decide_ok(a["id"], "approve")

    t = human.in_background(approve)
    out = agent.invoke({"messages": [("user", "refund LG-1")]}, config)
    join_checked(t)

    assert ran == [("LG-1", 5000, "c-ok")]
    # Only the model's arguments are sent (not the injected call id); ids come from LangGraph.
    assert seen["tool_args"] == {"order_id": "LG-1", "amount_cents": 5000}
    assert seen["call_id"] == "c-ok" and seen["session_id"] == session
    assert seen["tool_schema"] == convert_to_openai_tool(issue_refund)["function"]["parameters"]
    msg = model.tool_messages()["c-ok"]
    assert msg.content == "Refunded 5000 on LG-1." and msg.status == "success"
    assert out["messages"][-1].content == "All done."
    final = human.get(seen["id"])
    assert final["status"] == "executed"
    assert final["execution"]["outcome"] == "success"
    assert final["execution"]["output_excerpt"] == "Refunded 5000 on LG-1."


def test_reject_reason_reaches_the_model(agent_env: dict[str, str], human: Human) -> None:
    ran: list[Any] = []

    @gated_tool(policy="payments")
    @tool
    def pay_invoice(invoice_id: str, amount_cents: int) -> str:
        """Pay an invoice."""
        ran.append(invoice_id)
        return "paid"

    agent, model, config = one_call_agent(
        pay_invoice, {"invoice_id": "INV-9", "amount_cents": 90}, "c-no"
    )

    def reject() -> None:
        (a,) = human.wait_pending(tool="pay_invoice", session=config["configurable"]["thread_id"])
        human.decide_ok(a["id"], "reject", reason="vendor is not on the allow list")

    t = human.in_background(reject)
    agent.invoke({"messages": [("user", "pay INV-9")]}, config)
    join_checked(t)

    assert ran == []
    msg = model.tool_messages()["c-no"]
    assert msg.status == "error" and msg.name == "pay_invoice"
    assert msg.content == (
        "The tool call pay_invoice was rejected by user:bob@example.com and was NOT executed. "
        "Reason: vendor is not on the allow list. Do not retry this call unchanged."
    )


def test_reject_raise_propagates_out_of_the_graph(agent_env: dict[str, str], human: Human) -> None:
    @gated_tool(policy="payments", on_reject="raise")
    @tool
    def transfer(to: str, amount_cents: int) -> str:
        """Transfer money."""
        raise AssertionError("must not run")

    agent, _, config = one_call_agent(transfer, {"to": "X", "amount_cents": 1}, "c-r")

    def reject() -> None:
        (a,) = human.wait_pending(tool="transfer", session=config["configurable"]["thread_id"])
        human.decide_ok(a["id"], "reject", reason="no")

    t = human.in_background(reject)
    with pytest.raises(PliuzRejectedError) as err:
        agent.invoke({"messages": [("user", "go")]}, config)
    join_checked(t)
    assert err.value.reason == "no"


async def test_edit_async_with_redaction_restored(agent_env: dict[str, str], human: Human) -> None:
    ran: list[dict[str, Any]] = []

    @gated_tool(policy="refunds", redact=["card.number"])
    @tool
    async def issue_refund(order_id: str, amount_cents: int, card: dict[str, str]) -> str:
        """Issue a customer refund to a card."""
        ran.append({"order_id": order_id, "amount_cents": amount_cents, "card": card})
        return f"Refunded {amount_cents}."

    card = {"number": "4111 1111 1111 1111", "holder": "Ada"}
    agent, model, config = one_call_agent(
        issue_refund, {"order_id": "LG-E", "amount_cents": 9000, "card": card}, "c-edit"
    )

    def edit() -> None:
        (a,) = human.wait_pending(tool="issue_refund", session=config["configurable"]["thread_id"])
        assert a["tool_args"]["card"] == {"number": "[REDACTED]", "holder": "Ada"}
        edited = {**a["tool_args"], "amount_cents": 2500}
        human.decide_ok(a["id"], "edit", final_args=edited, reason="partial refund")

    t = human.in_background(edit)
    await agent.ainvoke({"messages": [("user", "refund")]}, config)
    join_checked(t)

    assert ran == [{"order_id": "LG-E", "amount_cents": 2500, "card": card}]
    assert model.tool_messages()["c-edit"].content == "Refunded 2500."


def test_auto_approve_by_policy(agent_env: dict[str, str], human: Human) -> None:
    ran: list[int] = []

    @gated_tool(policy="refunds")
    @tool
    def issue_refund(order_id: str, amount_cents: int) -> str:
        """Issue a customer refund."""
        ran.append(amount_cents)
        return "small refund done"

    agent, model, config = one_call_agent(
        issue_refund, {"order_id": "LG-S", "amount_cents": 700}, "c-a"
    )
    agent.invoke({"messages": [("user", "small refund")]}, config)  # no human involved
    assert ran == [700]
    assert model.tool_messages()["c-a"].content == "small refund done"
    (a,) = [
        x for x in human.list(tool="issue_refund")
        if x["session_id"] == config["configurable"]["thread_id"]
    ]  # fmt: skip
    assert a["status"] == "executed" and a["decision"]["by"] == "policy:refunds"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_server_unreachable_tool_never_runs(mode: str) -> None:
    ran: list[Any] = []
    dead = PliuzClient(
        api_key="pliuz_ak_nothing", base_url=f"http://127.0.0.1:{free_port()}", max_retries=0
    )

    @gated_tool(policy="payments", client=dead)
    @tool
    def transfer(to: str, amount_cents: int) -> str:
        """Transfer money."""
        ran.append(to)
        return "sent"

    agent, model, config = one_call_agent(transfer, {"to": "Y", "amount_cents": 5}, "u")
    if mode == "sync":
        agent.invoke({"messages": [("user", "go")]}, config)
    else:
        await agent.ainvoke({"messages": [("user", "go")]}, config)
    assert ran == []
    msg = model.tool_messages()["u"]
    assert msg.status == "error"
    assert msg.content == (
        "The tool call transfer was NOT executed: the approval server could not be reached, "
        "so the call could not be approved."
    )
    dead.close()


def test_direct_invoke_and_tool_error(agent_env: dict[str, str], human: Human) -> None:
    """Outside an agent: a ToolCall gets a ToolMessage; a failing tool is reported as error."""
    from langchain_core.tools import StructuredTool, ToolException

    def _send(to: str) -> str:
        """Send an email."""
        raise ToolException("mailbox full")

    send_email = wrap_tool(
        StructuredTool.from_function(_send, name="send_email", handle_tool_error=True),
        policy="payments",
    )

    def approve() -> None:
        (a,) = human.wait_pending(tool="send_email", where=lambda x: x["call_id"] == "d-1")
        human.decide_ok(a["id"], "approve")

    t = human.in_background(approve)
    result = send_email.invoke(
        {"name": "send_email", "args": {"to": "a@b.c"}, "id": "d-1", "type": "tool_call"},
        thread(),
    )
    join_checked(t)
    assert isinstance(result, ToolMessage)
    assert result.status == "error" and result.content == "mailbox full"
    (a,) = [x for x in human.list(tool="send_email") if x["call_id"] == "d-1"]
    assert a["status"] == "executed" and a["execution"]["outcome"] == "error"
    assert "mailbox full" in a["execution"]["output_excerpt"]


def test_quick_expiry_tells_the_model(server: PliuzServer, agent_env: dict[str, str]) -> None:
    @gated_tool()
    @tool
    def quick_tool(x: int) -> str:
        """Quick."""
        raise AssertionError("must not run")

    agent, model = agent_for([quick_tool], one_call("quick_tool", {"x": 1}, "q"))
    agent.invoke({"messages": [("user", "go")]}, thread())
    assert model.tool_messages()["q"].content == (
        "The tool call quick_tool was NOT executed: "
        "the approval request expired before anyone decided."
    )


def test_tool_runtime_injection_still_works(agent_env: dict[str, str], human: Human) -> None:
    got: list[Any] = []

    @gated_tool(policy="payments")
    @tool
    def lookup(customer: str, runtime: ToolRuntime) -> str:
        """Look a customer up."""
        got.append((customer, runtime.tool_call_id, len(runtime.state["messages"])))
        return "found"

    agent, model, config = one_call_agent(lookup, {"customer": "ada"}, "rt")

    def approve() -> None:
        (a,) = human.wait_pending(tool="lookup", session=config["configurable"]["thread_id"])
        assert a["tool_args"] == {"customer": "ada"}
        human.decide_ok(a["id"], "approve")

    t = human.in_background(approve)
    agent.invoke({"messages": [("user", "who is ada")]}, config)
    join_checked(t)
    assert got == [("ada", "rt", 2)]
    assert model.tool_messages()["rt"].content == "found"
