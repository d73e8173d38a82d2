"""The agent process dies mid-wait and starts again: it re-attaches to the same request
(idempotency key) and the tool runs exactly once; a third start never runs it again."""

from __future__ import annotations

import uuid
from pathlib import Path

from restart_scenario import check_restart_runs_once
from server import Human, PliuzServer

HERE = Path(__file__).parent


def test_agent_restart_reattaches_and_runs_once(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    check_restart_runs_once(
        server, human, tmp_path,
        agent_script=HERE / "agent_proc.py", session_variable="SESSION_ID",
        session=f"proc-{uuid.uuid4().hex[:8]}", order_id="K-1", call_id="proc_call_1",
    )  # fmt: skip
