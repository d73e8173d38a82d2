"""The agent-restart scenario shared by the framework adapters' restart tests.

An agent process (a script whose one gated tool, ``counted_refund``, appends to
``$COUNTER_FILE``) is SIGKILLed while it waits for approval, started again on
the same session, approved, and started a third time: it must re-attach to
the same request and the tool must run exactly once.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from server import Human, PliuzServer


def log_pliuz_debug() -> None:
    """In the agent process: the SDK's debug lines (``replay=...``) on stderr, for the test."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    logging.getLogger("pliuz").setLevel(logging.DEBUG)


def count_refund(order_id: str, amount_cents: int) -> str:
    """The gated tool's body in the agent process: one line in COUNTER_FILE per execution."""
    with open(os.environ["COUNTER_FILE"], "a", encoding="utf-8") as f:
        f.write(f"{order_id}\n")
    return f"refunded {amount_cents} on {order_id}"


def wait_for_text(path: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path}:\n{path.read_text(errors='replace')}")


def check_restart_runs_once(
    server: PliuzServer,
    human: Human,
    tmp_path: Path,
    *,
    agent_script: Path,
    session_variable: str,
    session: str,
    order_id: str,
    call_id: str,
) -> None:
    """Run ``agent_script`` three times (killed mid-wait, approved, replayed) on ``session``,
    passed in ``$<session_variable>``; its model calls ``counted_refund(order_id, 4321)``
    with ``call_id``."""
    counter = tmp_path / "counter.txt"
    counter.touch()
    env = {**os.environ, **server.agent_env(), "COUNTER_FILE": str(counter)}
    env[session_variable] = session

    def start_agent(log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            return subprocess.Popen(
                [sys.executable, str(agent_script)], stdout=out, stderr=subprocess.STDOUT, env=env
            )

    first_log = tmp_path / "agent1.log"
    first = start_agent(first_log)
    (a,) = human.wait_pending(tool="counted_refund", session=session)
    assert a["call_id"] == call_id
    wait_for_text(first_log, "replay=False")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second_log = tmp_path / "agent2.log"
    second = start_agent(second_log)
    wait_for_text(second_log, f"approval {a['id']} is pending (replay=True)")
    # Still exactly one request for this call: the restart did not ask twice.
    mine = [x["id"] for x in human.list(tool="counted_refund") if x["session_id"] == session]
    assert mine == [a["id"]]
    assert counter.read_text() == ""
    human.decide_ok(a["id"], "approve")
    assert second.wait(timeout=60) == 0, second_log.read_text()
    assert counter.read_text().splitlines() == [order_id]
    assert f"TOOL OUTPUT: refunded 4321 on {order_id}" in second_log.read_text()
    assert human.get(a["id"])["status"] == "executed"

    # Third start, same call: the request was already executed, so the tool is not run again.
    third_log = tmp_path / "agent3.log"
    third = start_agent(third_log)
    assert third.wait(timeout=60) == 0, third_log.read_text()
    assert counter.read_text().splitlines() == [order_id]
    out = third_log.read_text()
    assert "already executed" in out and f"refunded 4321 on {order_id}" in out
