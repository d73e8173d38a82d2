"""Exactly-once execution through the SDK, against the real server (issue 9).

- Two agent processes (separate interpreters) on one approved call: the body
  runs exactly once, over 50 trials.
- The server dies right after the body ran, so the report cannot land: the
  caller still gets its result, the error is logged, and a rerun of the call
  (another process) does not run it again — it is told the outcome is unknown.
- The server comes back while the report is being retried: the report lands.
- A hung connection (accepts, never answers): ``timeout_s`` holds within 1 s.
- ``execute_within`` passed: the claim is refused and the body does not run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import run, tool_outputs
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from server import Human, PliuzServer, config_text, running

import pliuz
from pliuz import AsyncPliuzClient, PliuzClient, gated
from pliuz.adapters.openai_agents import gated_tool

HERE = Path(__file__).parent


class Worker:
    """A long-lived agent interpreter fed one call per line (cheap trials)."""

    def __init__(self, server: PliuzServer, counter: Path, mode: str) -> None:
        env = {**os.environ, **server.agent_env(), "COUNTER_FILE": str(counter)}
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "claim_worker.py"), mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, bufsize=1,
        )  # fmt: skip
        assert self.readline() == "READY"

    def send(self, call: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(call) + "\n")
        self.proc.stdin.flush()

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


def test_two_agent_processes_on_one_approved_call_run_it_exactly_once(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    counter = tmp_path / "runs"
    counter.touch()
    workers = [Worker(server, counter, "sync"), Worker(server, counter, "async")]
    trials = 50
    started = time.monotonic()
    try:
        for n in range(trials):
            # amount_cents <= 1000: the "refunds" policy approves it at once, so
            # both processes race straight for the same approved request.
            call = {"session": f"race-{uuid.uuid4().hex}", "order_id": f"R-{n}",
                    "amount_cents": 500}  # fmt: skip
            for w in workers:
                w.send(call)
            answers = [w.readline() for w in workers]
            ran = [a for a in answers if a.startswith("RAN ")]
            assert len(ran) == 1, f"trial {n}: {answers}"
            (other,) = [a for a in answers if not a.startswith("RAN ")]
            # The loser never ran the body: it found the request claimed or executed.
            assert other.startswith(f"NOT_RUN {call['session']} Pliuz"), other
            assert "OutcomeUnknownError" in other or "AlreadyExecutedError" in other, other
    finally:
        for w in workers:
            w.close()
    lines = counter.read_text().splitlines()
    assert len(lines) == trials and len(set(lines)) == trials  # once per call, never twice
    assert time.monotonic() - started < 60
    executed = human.list(tool="issue_refund", status="executed")
    assert sum(1 for a in executed if str(a.get("session_id", "")).startswith("race-")) >= trials


def _one_refund_then(final: str) -> ScriptedModel:
    """The model of agent_proc.py: one counted_refund call (same call id), then ``final``."""
    call = function_call("counted_refund", {"order_id": "K-1", "amount_cents": 4321},
                         call_id="proc_call_1")  # fmt: skip
    return ScriptedModel([[call], [assistant_message(final)]])


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[PliuzServer]:
    with running(tmp_path / "srv", kill=True) as srv:
        yield srv


def test_report_failure_then_rerun_does_not_run_again_and_shows_unknown(
    restartable: PliuzServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv = restartable
    human = Human(srv)
    counter = tmp_path / "counter"
    session = f"crash-{uuid.uuid4().hex}"

    # The first run, in this process, through the OpenAI Agents adapter: the
    # server is killed right after the tool body ran, so its report cannot land.
    @gated_tool(client=lambda: AsyncPliuzClient(srv.agent_key, srv.base_url, report_timeout=1.5))
    @function_tool
    def counted_refund(order_id: str, amount_cents: int) -> str:
        """Refund, counting executions."""
        with open(counter, "a", encoding="utf-8") as f:
            f.write(f"{order_id}\n")
        srv.kill()
        return f"refunded {amount_cents} on {order_id}"

    model = _one_refund_then("finished")
    approver = human.in_background(
        lambda: human.decide_ok(human.wait_pending(tool="counted_refund")[0]["id"], "approve")
    )
    with caplog.at_level(logging.ERROR, logger="pliuz"):
        t0 = time.monotonic()
        result = run(Agent(name="Crashy", tools=[counted_refund]), model, group_id=session)
        took = time.monotonic() - t0
    approver.join(30)
    # The tool ran; the model got its output; the undelivered report was logged, not dropped.
    assert tool_outputs(model)["proc_call_1"] == "refunded 4321 on K-1"
    assert result.final_output == "finished" and took < 20
    assert "could not be delivered" in caplog.text and "DID run" in caplog.text
    kept = [r for r in pliuz.undelivered_reports() if r["tool_name"] == "counted_refund"]
    assert kept and kept[-1]["outcome"] == "success"
    approval_id = kept[-1]["approval_id"]

    # The server comes back; the server shows the call as claimed, outcome unknown.
    srv.start()
    a = human.get(approval_id)
    assert a["status"] == "executing" and a["execution"]["outcome"] is None
    assert a["execution"]["claim_id"] == kept[-1]["claim_id"]

    # A rerun of the same call in another process: not run again, the model is told why.
    env = {**os.environ, **srv.agent_env(), "COUNTER_FILE": str(counter), "SESSION_ID": session}
    out = subprocess.run(
        [sys.executable, str(HERE / "agent_proc.py")], env=env, capture_output=True, text=True,
        timeout=60,
    ).stdout  # fmt: skip
    assert "outcome is unknown" in out and "check" in out, out
    assert counter.read_text().splitlines() == ["K-1"]
    assert human.get(approval_id)["status"] == "executing"

    # This process still holds the outcome: re-attaching delivers it and runs nothing.
    model2 = _one_refund_then("done")
    run(Agent(name="Crashy", tools=[counted_refund]), model2, group_id=session)
    assert "already executed" in tool_outputs(model2)["proc_call_1"]
    assert counter.read_text().splitlines() == ["K-1"]
    a = human.get(approval_id)
    assert a["status"] == "executed" and a["execution"]["outcome"] == "success"
    assert not [r for r in pliuz.undelivered_reports() if r["approval_id"] == approval_id]


def test_the_report_is_retried_until_the_server_is_back(
    restartable: PliuzServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv = restartable
    runs: list[str] = []
    client = PliuzClient(srv.agent_key, srv.base_url, report_timeout=30)

    @gated(client=client, session_id=f"back-{uuid.uuid4().hex}")
    def issue_refund(order_id: str, amount_cents: int) -> str:
        runs.append(order_id)
        srv.kill()  # down right after the tool ran ...
        threading.Timer(1.0, srv.start).start()  # ... and back a moment later
        return "refunded"

    with caplog.at_level(logging.WARNING, logger="pliuz"):
        assert issue_refund("B-1", 300) == "refunded"
        pliuz.flush_reports()  # the report is sent in the background
    assert runs == ["B-1"]
    assert "could not be delivered" not in caplog.text
    (a,) = [a for a in Human(srv).list(tool="issue_refund") if a["tool_args"]["order_id"] == "B-1"]
    assert a["status"] == "executed" and a["execution"]["outcome"] == "success"
    client.close()


class HungServer:
    """A TCP listener that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)  # held open, never read from or written to

    def close(self) -> None:
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def hung() -> Iterator[HungServer]:
    h = HungServer()
    yield h
    h.close()


def test_timeout_s_holds_on_a_hung_connection(hung: HungServer) -> None:
    ran: list[int] = []
    client = PliuzClient("pliuz_ak_hung", hung.url)  # default per-request timeout: 30 s

    @gated(client=client, timeout_s=2)
    def issue_refund(order_id: str, amount_cents: int) -> None:
        ran.append(amount_cents)

    t0 = time.monotonic()
    with pytest.raises(pliuz.PliuzTimeoutError):
        issue_refund("H-1", 100)
    assert 1.9 <= time.monotonic() - t0 < 3.0
    assert ran == []

    t0 = time.monotonic()
    with pytest.raises(pliuz.PliuzTimeoutError):
        client.wait_for_decision("0193a5b2-7c1e-7d20-9a5e-2b0f8e6f1c11", timeout=2)
    assert 1.9 <= time.monotonic() - t0 < 3.0
    client.close()


def test_async_timeout_s_holds_on_a_hung_connection(hung: HungServer) -> None:
    ran: list[int] = []

    async def main() -> float:
        async with AsyncPliuzClient("pliuz_ak_hung", hung.url) as client:

            @gated(client=client, timeout_s=2)
            async def issue_refund(order_id: str, amount_cents: int) -> None:
                ran.append(amount_cents)

            t0 = time.monotonic()
            with pytest.raises(pliuz.PliuzTimeoutError):
                await issue_refund("H-2", 100)
            first = time.monotonic() - t0
            t0 = time.monotonic()
            with pytest.raises(pliuz.PliuzTimeoutError):
                await client.wait_for_decision("0193a5b2-7c1e-7d20-9a5e-2b0f8e6f1c12", timeout=2)
            return max(first, time.monotonic() - t0)

    assert 1.9 <= asyncio.run(main()) < 3.0
    assert ran == []


def test_an_approval_past_execute_within_is_not_run(tmp_path: Path) -> None:
    with running(tmp_path, config_text("policies", "brief"), kill=True) as srv:
        client = PliuzClient(srv.agent_key, srv.base_url)
        ran: list[str] = []
        session = f"late-{uuid.uuid4().hex}"

        @gated(client=client, session_id=session)
        def brief_refund(order_id: str) -> str:
            ran.append(order_id)
            return "refunded"

        # The same call was approved earlier (e.g. before the agent restarted) ...
        key = pliuz.idempotency_key(
            "brief_refund", {"order_id": "L-1"}, session_id=session, secret=srv.agent_key
        )
        first = client.create_approval("brief_refund", {"order_id": "L-1"}, idempotency_key=key)
        assert first.status == "approved" and first.execute_before is not None
        time.sleep(1.2)  # ... and its execution window has closed since.
        with pytest.raises(pliuz.PliuzExecutionExpiredError) as info:
            brief_refund("L-1")
        assert ran == [] and "execute_within" in str(info.value)
        assert Human(srv).get(first.id)["status"] == "approved"
        client.close()
