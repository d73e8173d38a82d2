"""examples/openai_agents_durable.py end to end: start (process exits), approve, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from durable_helpers import AgentAPI
from server import REPO, Human, PliuzServer

EXAMPLE = REPO / "examples" / "openai_agents_durable.py"


def run_example(server: PliuzServer, env: dict[str, str], *args: str) -> str:
    res = subprocess.run(
        [sys.executable, str(EXAMPLE), *args], env={**os.environ, **server.agent_env(), **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_durable_example_runs_end_to_end(server: PliuzServer, human: Human, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    order = f"DX-{uuid.uuid4().hex[:6]}"
    env = {
        "PLIUZ_EXAMPLE_SCRIPTED": "1", "PLIUZ_EXAMPLE_LEDGER": str(ledger),
        "PLIUZ_EXAMPLE_ORDER": order, "PLIUZ_EXAMPLE_AMOUNT": "6400",
    }  # fmt: skip
    out = run_example(server, env, "start")
    run_id = out.split("RUN: ", 1)[1].split()[0]
    started = json.loads(out.split(run_id, 1)[1])
    assert started["status"] == "awaiting_approval"
    (a,) = human.wait_pending(
        tool="issue_refund", where=lambda x: x["tool_args"].get("order_id") == order
    )
    assert started["approvals"] == [a["id"]] and not ledger.exists()

    early = run_example(server, env, "resume", run_id)  # not decided yet: returns at once
    assert "STATUS: waiting" in early and not ledger.exists()

    human.decide_ok(a["id"], "approve")
    out = run_example(server, env, "resume", run_id)
    assert "STATUS: completed" in out
    assert "FINAL: I have handled the refund request." in out
    assert [json.loads(x) for x in ledger.read_text().splitlines()] == [
        {"order_id": order, "amount_cents": 6400}
    ]
    assert AgentAPI(server).run(run_id)["status"] == "completed"
    assert human.get(a["id"])["status"] == "executed"
