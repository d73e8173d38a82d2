"""Durable runs: tampered state, other agents' runs, bad input, the worker, webhooks.
Real server, real Runner, separate interpreters."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from durable_helpers import HERE, AgentAPI, DurableCase, Receiver
from server import Human, PliuzServer

from pliuz import AsyncPliuzClient, PliuzNotFoundError
from pliuz.adapters.openai_agents import Runs
from pliuz.runs import ClaimedRun, PliuzRunError, PliuzRunStateIntegrityError, verify_claimed
from pliuz.webhooks import WebhookVerificationError, verify


def own_agent(server: PliuzServer) -> str:
    """A fresh agent key: its runs are this test's only."""
    return server.cli("agents", "create", f"bot-{uuid.uuid4().hex[:8]}")


def wait_run_status(api: AgentAPI, run_id: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while api.run(run_id)["status"] != status:
        assert time.monotonic() < deadline, f"run {run_id} never became {status}"
        time.sleep(0.2)


def test_tampered_state_is_refused_and_never_loaded(
    own_server: PliuzServer, tmp_path: Path
) -> None:
    human = Human(own_server)
    case = DurableCase(own_server, tmp_path)
    started, a = case.start_decided(human, "approve", AMOUNT="5300")
    with sqlite3.connect(own_server.data_dir / "pliuz.db", timeout=10) as db:
        changed = db.execute(
            "UPDATE runs SET state_sha256 = ? WHERE id = ?", ("0" * 64, started["run_id"])
        ).rowcount
    assert changed == 1
    proc, log = case.spawn("resume", started["run_id"])
    assert proc.wait(timeout=60) != 0
    out = log.read_text()
    # The server checks the digest before it hands the state out (and logs why it refused);
    # the SDK checks it again (see the next test). Either way nothing was deserialized or run.
    assert "SHA-256" in out or "does not match its recorded SHA-256" in own_server.log_tail(), out
    assert case.ledger_rows() == []  # nothing ran
    assert human.get(a["id"])["status"] == "approved"


def test_sdk_checks_the_digest_of_what_it_is_given(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    """Even if the server (or anything between) handed over another state, the SDK refuses it."""
    case = DurableCase(server, tmp_path)
    started, _ = case.start_decided(human, "approve")
    api = AgentAPI(server)
    r = api.request("POST", f"/runs/{started['run_id']}/claim", json={"lease_seconds": 10})
    assert r.status_code == 200, r.text
    claimed = ClaimedRun.model_validate(r.json())
    assert verify_claimed(claimed) is claimed  # the genuine state passes
    forged = claimed.model_copy(update={"state": claimed.state.replace("issue_refund", "x", 1)})
    with pytest.raises(PliuzRunStateIntegrityError, match="was not loaded"):
        verify_claimed(forged)


def test_other_agents_cannot_see_or_resume_a_run(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    case = DurableCase(server, tmp_path)
    started, _ = case.start_decided(human, "approve")
    other_key = server.cli("agents", "create", f"other-{case.session}")
    other = AgentAPI(server, other_key)
    assert other.request("GET", f"/runs/{started['run_id']}").status_code == 404
    r = other.request("POST", f"/runs/{started['run_id']}/claim", json={})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    proc, log = case.spawn("resume", started["run_id"], PLIUZ_API_KEY=other_key)
    assert proc.wait(timeout=60) != 0 and "not_found" in log.read_text()
    assert case.ledger_rows() == []
    # The owner still can.
    assert case.resume(started["run_id"])["status"] == "completed"


def test_bad_input_gets_clear_errors(server: PliuzServer, human: Human, tmp_path: Path) -> None:
    from durable_proc import support

    async def scenario() -> None:
        async with AsyncPliuzClient(**_client_kw(server)) as client:
            runs = Runs(client)
            with pytest.raises(PliuzNotFoundError):
                await runs.resume("01890000-0000-7000-8000-000000000000", support)
            case = DurableCase(server, tmp_path)
            started, _ = case.start_decided(human, "reject", reason="no")
            done = case.resume(started["run_id"])
            assert done["status"] == "completed"
            with pytest.raises(PliuzRunError, match="already completed"):
                await runs.resume(started["run_id"], support)
            with pytest.raises(ValueError, match="lease_seconds"):
                Runs(client, lease_seconds=5)

    asyncio.run(scenario())


def _client_kw(server: PliuzServer, key: str | None = None) -> dict[str, Any]:
    return {"api_key": key or server.agent_key, "base_url": server.base_url}


def test_worker_resumes_ready_runs_and_stops_gracefully(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    key = own_agent(server)  # a worker serves every ready run of its key: only this test's
    cases = [DurableCase(server, tmp_path / str(i), PLIUZ_API_KEY=key) for i in range(2)]
    for c in cases:
        c.tmp.mkdir()
        c.ledger = tmp_path / "ledger.jsonl"  # one ledger for the worker's process
    started = [c.start(AMOUNT=str(5400 + i)) for i, c in enumerate(cases)]
    ledger = str(tmp_path / "ledger.jsonl")
    env = {**os.environ, **server.agent_env(), "PLIUZ_API_KEY": key, "PLIUZ_EXAMPLE_LEDGER": ledger}
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pliuz.worker", "durable_worker_target:agents",
             "--run-config", "durable_worker_target:run_config", "--poll-wait", "2",
             "--concurrency", "2"],
            cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        for c in cases:
            (a,) = human.wait_pending(tool="issue_refund", session=c.session)
            human.decide_ok(a["id"], "approve")
        api = AgentAPI(server, key)
        for s in started:
            wait_run_status(api, s["run_id"], "completed")
        rows = cases[0].ledger_rows()
        assert sorted(r["amount_cents"] for r in rows) == [5400, 5401], rows
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()


def test_signed_run_ready_webhook_resumes_the_run(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    receiver = Receiver()
    try:
        name = f"hook-{os.getpid()}-{int(time.time() * 1000) % 100000}"
        key, secret = server.cli("agents", "create", name, "--webhook-url", receiver.url).split()
        assert secret.startswith("whsec_")
        case = DurableCase(server, tmp_path, PLIUZ_API_KEY=key)
        started, a = case.start_decided(human, "approve", AMOUNT="5500")
        headers, body = receiver.wait_for("run.ready")
        event = verify(headers, body, secret)
        assert event["data"]["run_id"] == started["run_id"]
        assert event["data"]["approval_ids"] == [a["id"]]
        with pytest.raises(WebhookVerificationError):
            verify(headers, body.replace(b"run.ready", b"run.xxxxx"), secret)
        with pytest.raises(WebhookVerificationError):
            verify(headers, body, "whsec_" + secret[len("whsec_") :][::-1])
        decided_headers, decided_body = receiver.wait_for("approval.decided")
        decided = verify(decided_headers, decided_body, secret)
        assert decided["data"]["approval_id"] == a["id"]
        # The webhook handler resumes the run it names.
        done = case.resume(str(event["data"]["run_id"]))
        assert done["status"] == "completed"
        assert case.ledger_rows() == case.refund_of(5500)
    finally:
        receiver.httpd.shutdown()


def test_worker_finishes_the_run_in_progress_on_sigterm(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    key = own_agent(server)
    case = DurableCase(server, tmp_path, PLIUZ_API_KEY=key)
    started, _ = case.start_decided(human, "approve", AMOUNT="5700")
    env = {**os.environ, **server.agent_env(), "PLIUZ_API_KEY": key,
           "PLIUZ_EXAMPLE_LEDGER": str(case.ledger), "SLOW_TOOL": "4"}  # fmt: skip
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pliuz.worker", "durable_worker_target:agents",
             "--run-config", "durable_worker_target:run_config", "--poll-wait", "2"],
            cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        api = AgentAPI(server, key)
        wait_run_status(api, started["run_id"], "running")
        worker.send_signal(signal.SIGTERM)  # mid-refund: stop taking runs, finish this one
        assert worker.wait(timeout=30) == 0, log.read_text()
        assert api.run(started["run_id"])["status"] == "completed"
        assert case.ledger_rows() == case.refund_of(5700)
    finally:
        if worker.poll() is None:
            worker.kill()
