"""Human approval for a LangGraph refund agent, with Pliuz.

Two ways, both in this file:

1. ``gated_tool``: the refund tool of a ``create_agent`` agent waits in place for
   the decision (no checkpointer needed). Default mode.
2. ``run_with_approval`` inside a node: the graph pauses with ``interrupt()`` and
   a checkpointer while a human decides; ``resume_when_decided`` resumes it.
   ``--interrupt`` mode.

Run it against a Pliuz server (``pliuz serve``) with an agent key::

    pip install "./sdk/python[langgraph]" langchain   # from the repository root
    export PLIUZ_API_KEY=pliuz_ak_...        # pliuz agents create support-bot
    export PLIUZ_BASE_URL=http://127.0.0.1:8700
    python examples/langgraph_refund.py              # gated tool, scripted model
    python examples/langgraph_refund.py --interrupt  # pause / resume

then approve, reject or edit the request in the inbox (or over the API). The
model is scripted (it asks for one refund) so the example runs offline; swap in
any chat model (``init_chat_model("openai:gpt-4.1-mini")``) for a real agent.
Environment: ``PLIUZ_EXAMPLE_ORDER``, ``PLIUZ_EXAMPLE_AMOUNT``,
``PLIUZ_EXAMPLE_THREAD``, ``PLIUZ_EXAMPLE_LEDGER`` (a JSON-lines file of refunds).
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any, TypedDict

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from pliuz.adapters.langgraph import gated_tool, resume_when_decided, run_with_approval

from refund_ledger import charge_back

ORDER = os.environ.get("PLIUZ_EXAMPLE_ORDER", "A-1")
AMOUNT = int(os.environ.get("PLIUZ_EXAMPLE_AMOUNT", "5000"))
THREAD = os.environ.get("PLIUZ_EXAMPLE_THREAD") or f"ticket-{uuid.uuid4().hex[:8]}"


# --- 1. a gated tool: the gate runs BEFORE the tool body ----------------------


@gated_tool(policy="refunds")
@tool
def issue_refund(order_id: str, amount_cents: int) -> str:
    """Issue a customer refund."""
    return charge_back(order_id, amount_cents)


class ScriptedModel(BaseChatModel):
    """Asks for one refund, then answers. Replace with a real chat model."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        if any(isinstance(m, ToolMessage) for m in messages):
            reply = AIMessage(content="I have handled the refund request.")
        else:
            call = {"order_id": ORDER, "amount_cents": AMOUNT}
            reply = AIMessage(
                content="",
                tool_calls=[{"name": "issue_refund", "args": call, "id": "call_refund_1",
                             "type": "tool_call"}],
            )  # fmt: skip
        return ChatResult(generations=[ChatGeneration(message=reply)])


def run_agent() -> None:
    agent = create_agent(ScriptedModel(), tools=[issue_refund], checkpointer=InMemorySaver())
    out = agent.invoke(
        {"messages": [("user", f"Please refund {AMOUNT} cents on order {ORDER}.")]},
        {"configurable": {"thread_id": THREAD}},  # the thread is the Pliuz session
    )
    for m in out["messages"]:
        if isinstance(m, ToolMessage):
            print("TOOL OUTPUT:", m.content)
    print("FINAL:", out["messages"][-1].content)


# --- 2. pause the graph with interrupt() while a human decides ----------------


class Refund(TypedDict, total=False):
    order_id: str
    amount_cents: int
    result: str


def refund_node(state: Refund) -> Refund:
    result = run_with_approval(
        charge_back,
        {"order_id": state["order_id"], "amount_cents": state["amount_cents"]},
        tool_name="issue_refund",
        policy="refunds",
        on_reject="return",  # a rejection becomes a sentence instead of an exception
    )
    return {"result": result}


def run_graph() -> None:
    builder = StateGraph(Refund)
    builder.add_node("refund", refund_node)
    builder.add_edge(START, "refund")
    builder.add_edge("refund", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": THREAD}}

    out = graph.invoke({"order_id": ORDER, "amount_cents": AMOUNT}, config)
    for intr in out.get("__interrupt__", ()):
        print("PAUSED:", intr.value["approval_id"], intr.value["url"], flush=True)
        # A worker (or a webhook handler) can do this later, in another process with a
        # durable checkpointer; here we simply wait for the decision and resume.
        out = resume_when_decided(graph, config)
    print("RESULT:", out["result"])


if __name__ == "__main__":
    run_graph() if "--interrupt" in sys.argv[1:] else run_agent()
