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
