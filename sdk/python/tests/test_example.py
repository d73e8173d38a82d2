"""examples/openai_agents_refund.py (the integration page sample) end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from server import REPO, Human, PliuzServer

EXAMPLE = REPO / "examples" / "openai_agents_refund.py"


def test_seed_sample_runs_end_to_end(server: PliuzServer, human: Human, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    order = f"EX-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ, **server.agent_env(), "PLIUZ_EXAMPLE_SCRIPTED": "1",
        "PLIUZ_EXAMPLE_LEDGER": str(ledger), "PLIUZ_EXAMPLE_ORDER": order,
        "PLIUZ_EXAMPLE_AMOUNT": "5000",
    }  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        (a,) = human.wait_pending(
            tool="issue_refund", where=lambda x: x["tool_args"].get("order_id") == order
        )
        assert a["policy"] == "refunds" and a["tool_args"]["amount_cents"] == 5000
        assert not ledger.exists()
        human.decide_ok(a["id"], "approve")
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert f"TOOL OUTPUT: Refunded 5000 cents on order {order}." in out
    assert "FINAL: I have handled the refund request." in out
    lines = ledger.read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"order_id": order, "amount_cents": 5000}]


def _example_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIUZ_", "OPENAI_"))}
    env.update(extra)
    return env


def test_offline_by_default_and_each_run_is_a_new_request(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    """No OPENAI_API_KEY and no switch: the scripted model, said so; two runs, two requests."""
    ledger = tmp_path / "ledger.jsonl"
    order = f"EX-{uuid.uuid4().hex[:6]}"
    env = _example_env(
        **server.agent_env(), PLIUZ_EXAMPLE_LEDGER=str(ledger), PLIUZ_EXAMPLE_ORDER=order
    )
    seen: set[str] = set()
    for run in (1, 2):
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            (a,) = human.wait_pending(
                tool="issue_refund",
                where=lambda x: x["tool_args"].get("order_id") == order and x["id"] not in seen,
            )
            seen.add(a["id"])
            human.decide_ok(a["id"], "approve")
            out, _ = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 0, out
        assert out.startswith("Model: scripted, offline"), out
        assert f"TOOL OUTPUT: Refunded 5000 cents on order {order}." in out
        assert len(ledger.read_text().splitlines()) == run
    assert len(seen) == 2


def test_a_misconfigured_example_prints_a_warning_naming_the_problem(
    server: PliuzServer,
) -> None:
    for key, named in ((None, "PLIUZ_API_KEY"), ("pliuz_ak_wrong", "401")):
        env = _example_env(PLIUZ_BASE_URL=server.base_url)
        if key is not None:
            env["PLIUZ_API_KEY"] = key
        proc = subprocess.run(
            [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
        )
        warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING pliuz")]
        assert len(warnings) == 1, proc.stderr
        assert "misconfigured" in warnings[0] and named in warnings[0], warnings
        assert "NOT executed" in proc.stdout, proc.stdout
