"""A LangGraph agent process dies while its gated tool waits for approval and starts again
on the same thread: it re-attaches to the same request (idempotency key from thread_id +
tool call id) and the tool runs exactly once; a third start never runs it again.

Run as a script, this file is that agent process (env: PLIUZ_API_KEY, PLIUZ_BASE_URL,
COUNTER_FILE, THREAD_ID).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).parent


def agent_main() -> None:
    import logging

    from langchain.agents import create_agent
    from langchain_core.messages import ToolMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver
    from test_langgraph_helpers import ScriptedChatModel

    from pliuz.adapters.langgraph import gated_tool

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    logging.getLogger("pliuz").setLevel(logging.DEBUG)

    @gated_tool()
    @tool
    def counted_refund(order_id: str, amount_cents: int) -> str:
        """Refund, counting executions in COUNTER_FILE."""
        with open(os.environ["COUNTER_FILE"], "a", encoding="utf-8") as f:
            f.write(f"{order_id}\n")
        return f"refunded {amount_cents} on {order_id}"

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


from server import Human, PliuzServer  # noqa: E402
from test_server_agent_restart import wait_for_text  # noqa: E402


def start_agent(
    server: PliuzServer, counter: Path, thread_id: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **server.agent_env(), "COUNTER_FILE": str(counter), "THREAD_ID": thread_id}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, str(Path(__file__))], stdout=out, stderr=subprocess.STDOUT, env=env
        )


def test_gated_tool_restart_reattaches_and_runs_once(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    counter = tmp_path / "counter.txt"
    counter.touch()
    thread_id = f"lg-proc-{uuid.uuid4().hex[:8]}"

    first_log = tmp_path / "agent1.log"
    first = start_agent(server, counter, thread_id, first_log)
    (a,) = human.wait_pending(tool="counted_refund", session=thread_id)
    assert a["call_id"] == "lg_call_1"
    wait_for_text(first_log, "replay=False")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second_log = tmp_path / "agent2.log"
    second = start_agent(server, counter, thread_id, second_log)
    wait_for_text(second_log, f"approval {a['id']} is pending (replay=True)")
    mine = [x["id"] for x in human.list(tool="counted_refund") if x["session_id"] == thread_id]
    assert mine == [a["id"]]  # the restart did not ask twice
    assert counter.read_text() == ""
    human.decide_ok(a["id"], "approve")
    assert second.wait(timeout=60) == 0, second_log.read_text()
    assert counter.read_text().splitlines() == ["L-1"]
    assert "TOOL OUTPUT: refunded 4321 on L-1" in second_log.read_text()
    assert human.get(a["id"])["status"] == "executed"

    third_log = tmp_path / "agent3.log"
    third = start_agent(server, counter, thread_id, third_log)
    assert third.wait(timeout=60) == 0, third_log.read_text()
    assert counter.read_text().splitlines() == ["L-1"]
    out = third_log.read_text()
    assert "already executed" in out and "refunded 4321 on L-1" in out
