"""examples/langgraph_refund.py end to end, in both modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from server import REPO, Human, PliuzServer

EXAMPLE = REPO / "examples" / "langgraph_refund.py"


@pytest.mark.parametrize("mode", ["tool", "interrupt"])
def test_langgraph_example(server: PliuzServer, human: Human, tmp_path: Path, mode: str) -> None:
    ledger = tmp_path / "ledger.jsonl"
    order = f"LX-{uuid.uuid4().hex[:6]}"
    thread_id = f"ex-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ, **server.agent_env(), "PLIUZ_EXAMPLE_LEDGER": str(ledger),
        "PLIUZ_EXAMPLE_ORDER": order, "PLIUZ_EXAMPLE_AMOUNT": "5000",
        "PLIUZ_EXAMPLE_THREAD": thread_id,
    }  # fmt: skip
    args = [sys.executable, str(EXAMPLE)] + (["--interrupt"] if mode == "interrupt" else [])
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        (a,) = human.wait_pending(tool="issue_refund", session=thread_id)
        assert a["policy"] == "refunds" and a["tool_args"] == {
            "order_id": order, "amount_cents": 5000,
        }  # fmt: skip
        assert not ledger.exists()
        human.decide_ok(a["id"], "edit", final_args={"order_id": order, "amount_cents": 4000})
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    if mode == "tool":
        assert f"TOOL OUTPUT: Refunded 4000 cents on order {order}." in out
        assert "FINAL: I have handled the refund request." in out
    else:
        assert f"PAUSED: {a['id']}" in out
        assert f"RESULT: Refunded 4000 cents on order {order}." in out
    lines = ledger.read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"order_id": order, "amount_cents": 4000}]
