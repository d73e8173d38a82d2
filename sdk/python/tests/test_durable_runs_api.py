"""pliuz.runs.RunsAPI (the synchronous twin) over the real server: the whole run lifecycle."""

from __future__ import annotations

import uuid

import pytest
from server import Human, PliuzServer

from pliuz import PliuzClient, PliuzConflictError, PliuzNotFoundError, PliuzValidationError
from pliuz.runs import PliuzLeaseLostError, RunsAPI, state_sha256


def test_sync_runs_api_lifecycle(server: PliuzServer, human: Human) -> None:
    with PliuzClient(server.agent_key, server.base_url) as client:
        runs = RunsAPI(client)
        a = client.create_approval(
            "pay_invoice", {"invoice": f"INV-{uuid.uuid4().hex[:6]}"},
            session_id=f"api-{uuid.uuid4().hex[:6]}",
        )  # fmt: skip
        state = '{"opaque": "state", "n": 1}'
        run = runs.create(state, approval_ids=[a.id], metadata={"ticket": 7})
        assert run.status == "waiting" and run.state_sha256 == state_sha256(state)
        assert run.metadata == {"ticket": 7} and run.approval_ids == [a.id]
        assert runs.get(run.id).id == run.id
        with pytest.raises(PliuzConflictError) as not_ready:
            runs.claim(run.id)
        assert not_ready.value.code == "run_not_ready"

        human.decide_ok(a.id, "approve")
        assert runs.get(run.id, wait=5).status == "ready"
        assert run.id in [r.id for r in runs.list_runs(status="ready")]
        claimed = runs.claim(run.id, lease_seconds=30)
        assert claimed.state == state and claimed.run.status == "running"
        assert [x.id for x in claimed.approvals] == [a.id]
        with pytest.raises(PliuzConflictError) as taken:
            runs.claim(run.id)
        assert taken.value.code == "run_claimed"
        assert runs.heartbeat(run.id, claimed.lease_token, lease_seconds=60).status == "running"
        with pytest.raises(PliuzLeaseLostError):
            runs.heartbeat(run.id, "not-the-token")

        again = '{"opaque": "state", "n": 2}'
        paused = runs.pause(run.id, claimed.lease_token, again, approval_ids=[a.id])
        assert paused.state_sha256 == state_sha256(again) and paused.pause_count == 2
        claimed = runs.claim(run.id)
        assert claimed.state == again
        done = runs.complete(run.id, claimed.lease_token, output_sha256=state_sha256("out"))
        assert done.status == "completed"
        with pytest.raises(PliuzConflictError) as finished:
            runs.claim(run.id)
        assert finished.value.code == "run_completed"

        with pytest.raises(PliuzNotFoundError):
            runs.get(str(uuid.uuid4()))
        with pytest.raises(PliuzValidationError) as too_big:
            runs.create("x" * (8 * 1024 * 1024 + 1), approval_ids=[a.id])
        assert too_big.value.status == 413
