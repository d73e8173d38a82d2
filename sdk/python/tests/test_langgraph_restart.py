"""A LangGraph agent process dies while its gated tool waits for approval and starts again
on the same thread: it re-attaches to the same request (idempotency key from thread_id +
tool call id) and the tool runs exactly once; a third start never runs it again.

Run as a script, this file is that agent process (env: PLIUZ_API_KEY, PLIUZ_BASE_URL,
COUNTER_FILE, THREAD_ID).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).parent


def agent_main() -> None:
    from langchain.agents import create_agent
    from langchain_core.messages import ToolMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver
    from restart_scenario import count_refund, log_pliuz_debug
    from test_langgraph_helpers import ScriptedChatModel

    from pliuz.adapters.langgraph import gated_tool

    log_pliuz_debug()

    @gated_tool()
    @tool
    def counted_refund(order_id: str, amount_cents: int) -> str:
        """Refund, counting executions in COUNTER_FILE."""
        return count_refund(order_id, amount_cents)

    model = ScriptedChatModel(
        script=[[("counted_refund", {"order_id": "L-1", "amount_cents": 4321}, "lg_call_1")], "ok"]
    )
    agent = create_agent(model, tools=[counted_refund], checkpointer=InMemorySaver())
    out = agent.invoke(
        {"messages": [("user", "refund L-1")]},
        {"configurable": {"thread_id": os.environ["THREAD_ID"]}},
    )
    for m in out["messages"]:
        if isinstance(m, ToolMessage):
            print("TOOL OUTPUT:", m.content, flush=True)
    print("FINAL:", out["messages"][-1].content, flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    agent_main()
    sys.exit(0)


from restart_scenario import check_restart_runs_once  # noqa: E402
from server import Human, PliuzServer  # noqa: E402


def test_gated_tool_restart_reattaches_and_runs_once(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    check_restart_runs_once(
        server, human, tmp_path,
        agent_script=Path(__file__), session_variable="THREAD_ID",
        session=f"lg-proc-{uuid.uuid4().hex[:8]}", order_id="L-1", call_id="lg_call_1",
    )  # fmt: skip
