"""The agent process dies mid-wait and starts again: it re-attaches to the same request
(idempotency key) and the tool runs exactly once; a third start never runs it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from server import Human, PliuzServer

HERE = Path(__file__).parent


def start_agent(
    server: PliuzServer, counter: Path, session: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **server.agent_env(), "COUNTER_FILE": str(counter), "SESSION_ID": session}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, str(HERE / "agent_proc.py")], stdout=out, stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip


def wait_for_text(path: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path}:\n{path.read_text(errors='replace')}")


def test_agent_restart_reattaches_and_runs_once(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    counter = tmp_path / "counter.txt"
    counter.touch()
    session = f"proc-{uuid.uuid4().hex[:8]}"

    first_log = tmp_path / "agent1.log"
    first = start_agent(server, counter, session, first_log)
    (a,) = human.wait_pending(tool="counted_refund", session=session)
    wait_for_text(first_log, "replay=False")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second_log = tmp_path / "agent2.log"
    second = start_agent(server, counter, session, second_log)
    wait_for_text(second_log, f"approval {a['id']} is pending (replay=True)")
    # Still exactly one request for this call: the restart did not ask twice.
    assert [x["id"] for x in human.list(tool="counted_refund") if x["session_id"] == session] == [
        a["id"]
    ]
    assert counter.read_text() == ""
    human.decide_ok(a["id"], "approve")
    assert second.wait(timeout=60) == 0, second_log.read_text()
    assert counter.read_text().splitlines() == ["K-1"]
    assert "TOOL OUTPUT: refunded 4321 on K-1" in second_log.read_text()
    assert human.get(a["id"])["status"] == "executed"

    # Third start, same call: the request was already executed, so the tool is not run again.
    third_log = tmp_path / "agent3.log"
    third = start_agent(server, counter, session, third_log)
    assert third.wait(timeout=60) == 0, third_log.read_text()
    assert counter.read_text().splitlines() == ["K-1"]
    out = third_log.read_text()
    assert "already executed" in out and "refunded 4321 on K-1" in out
