"""examples/openai_agents_durable.py end to end: start (process exits), approve, resume."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from durable_helpers import AgentAPI, Receiver
from server import REPO, Human, PliuzServer

from pliuz.webhooks import WebhookVerificationError

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


def test_durable_example_webhook_handler_resumes_the_run(
    server: PliuzServer, human: Human, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver()
    try:
        name = f"example-hook-{uuid.uuid4().hex[:6]}"
        key, secret = server.cli("agents", "create", name, "--webhook-url", receiver.url).split()
        ledger = tmp_path / "ledger.jsonl"
        order = f"DW-{uuid.uuid4().hex[:6]}"
        env = {
            "PLIUZ_API_KEY": key, "PLIUZ_BASE_URL": server.base_url,
            "PLIUZ_EXAMPLE_SCRIPTED": "1", "PLIUZ_EXAMPLE_LEDGER": str(ledger),
            "PLIUZ_EXAMPLE_ORDER": order, "PLIUZ_EXAMPLE_AMOUNT": "6500",
            "PLIUZ_WEBHOOK_SECRET": secret,
        }  # fmt: skip
        out = run_example(server, env, "start")  # the web handler's process; it may exit
        run_id = out.split("RUN: ", 1)[1].split()[0]
        (a,) = human.wait_pending(
            tool="issue_refund", where=lambda x: x["tool_args"].get("order_id") == order
        )
        human.decide_ok(a["id"], "approve")
        headers, body = receiver.wait_for("run.ready")

        for k, v in env.items():
            monkeypatch.setenv(k, v)
        # The example imports its sibling module, as it does when run as a script.
        monkeypatch.syspath_prepend(str(EXAMPLE.parent))
        spec = importlib.util.spec_from_file_location("openai_agents_durable", EXAMPLE)
        assert spec is not None and spec.loader is not None
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)

        with pytest.raises(WebhookVerificationError):
            asyncio.run(example.handle_webhook(headers, body.replace(b"run.ready", b"run.readz")))
        assert not ledger.exists()
        done = asyncio.run(example.handle_webhook(headers, body))
        assert done == {
            "run_id": run_id,
            "status": "completed",
            "answer": "I have handled the refund request.",
        }
        assert [json.loads(x) for x in ledger.read_text().splitlines()] == [
            {"order_id": order, "amount_cents": 6500}
        ]
        # A retried delivery of the same event: nothing runs twice.
        again = asyncio.run(example.handle_webhook(headers, body))
        assert again["status"] == "not resumed" and "already completed" in again["why"]
        assert len(ledger.read_text().splitlines()) == 1
    finally:
        receiver.httpd.shutdown()
