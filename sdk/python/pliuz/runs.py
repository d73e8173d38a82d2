"""Durable runs: the ``/api/v1/runs`` resource (a paused agent run's stored state).

A run holds an opaque serialized state (for the OpenAI Agents SDK, the
``RunState.to_string()``), the approvals and questions it waits on and a lease. The
framework-level flow (pause, resume, worker) lives in
:mod:`pliuz.adapters.openai_agents_durable`; this module is the typed API:

    from pliuz import AsyncPliuzClient
    from pliuz.runs import AsyncRunsAPI

    runs = AsyncRunsAPI(AsyncPliuzClient())
    run = await runs.create(state, approval_ids=[a.id])
    claimed = await runs.claim(run.id)        # lease + state, digest checked

Every stored state's SHA-256 is in the audit log (``run.paused``); :meth:`claim`
checks the state it receives against that digest and refuses a mismatch, so
nothing unverified is ever handed to a deserializer.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from ._client import AsyncPliuzClient, PliuzClient, _BaseClient
from ._flow import Flow, _known, parse, request
from .errors import PliuzAPIError, PliuzError
from .models import Approval, Question

if TYPE_CHECKING:
    from typing_extensions import Required, Unpack

__all__ = [
    "AsyncRunsAPI",
    "ClaimedRun",
    "Completion",
    "NewRun",
    "Paused",
    "PliuzLeaseLostError",
    "PliuzRunError",
    "PliuzRunStateIntegrityError",
    "Run",
    "RunList",
    "RunStatus",
    "RunsAPI",
    "state_sha256",
]

RunStatus = Literal["waiting", "ready", "running", "completed", "failed"]
"""``waiting`` → ``ready`` (every approval settled, every question answered or expired) →
``running`` (leased) → ``completed`` or ``failed`` (or ``waiting``/``ready`` again when it
paused once more)."""

DEFAULT_LEASE_S = 300
MAX_RUN_WAIT_S = 60


class PliuzRunError(PliuzError):
    """A durable run cannot be paused, resumed or completed as asked."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class PliuzRunStateIntegrityError(PliuzRunError):
    """The stored state does not match the SHA-256 the server recorded for it.

    The state was not deserialized. Someone or something changed the stored
    snapshot (or the record of its digest): investigate before resuming.
    """


class PliuzLeaseLostError(PliuzRunError):
    """This process no longer holds the run's lease (it expired and another resumer took it)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Run(_Model):
    """A stored run, as returned by every runs endpoint (never contains the state)."""

    id: str
    agent: str | None = None
    status: RunStatus
    approval_ids: list[str] = Field(default_factory=list)
    question_ids: list[str] = Field(default_factory=list)
    state_sha256: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    lease_expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    pause_count: int = 0


class RunList(_Model):
    items: list[Run] = Field(default_factory=list)


class ClaimedRun(_Model):
    """The answer to a claim: the run (``running``), its lease, its state, its approvals and
    its questions (with their answers)."""

    run: Run
    lease_token: str
    state: str
    state_sha256: str
    approvals: list[Approval] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)


def state_sha256(state: str) -> str:
    """Hex SHA-256 of a state string's UTF-8 bytes (what the server and audit log record)."""
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def verify_claimed(claimed: ClaimedRun) -> ClaimedRun:
    """Refuse a claimed state whose digest differs from the recorded one."""
    actual = state_sha256(claimed.state)
    recorded = {claimed.state_sha256.lower(), claimed.run.state_sha256.lower()}
    if len(recorded) != 1 or not hmac.compare_digest(actual, recorded.pop()):
        raise PliuzRunStateIntegrityError(
            f"run {claimed.run.id}: the stored state's SHA-256 is {actual}, but the server "
            f"recorded {claimed.run.state_sha256} for it (run.paused in the audit log). The "
            "state was not loaded; check the audit log and the storage before resuming.",
            run_id=claimed.run.id,
        )
    return claimed


def _wait_params(wait: int | None) -> dict[str, Any]:
    return {"wait": max(0, min(MAX_RUN_WAIT_S, int(wait)))} if wait else {}


def _create_body(state: str, new: NewRun) -> dict[str, Any]:
    _known(new, NewRun)
    body: dict[str, Any] = {"state": state, "approval_ids": new["approval_ids"]}
    if new.get("question_ids"):
        body["question_ids"] = new.get("question_ids")
    if new.get("metadata"):
        body["metadata"] = new.get("metadata")
    return body


def _complete_body(
    lease_token: str,
    outcome: Literal["completed", "failed"],
    output_sha256: str | None,
    error: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"lease_token": lease_token, "outcome": outcome}
    if output_sha256 is not None:
        body["output_sha256"] = output_sha256
    if error is not None:
        body["error"] = error[:2000]
    return body


def _lease_error(exc: PliuzAPIError, run_id: str) -> PliuzError:
    if exc.code == "lease_lost":
        return PliuzLeaseLostError(
            f"run {run_id}: this process lost the run's lease ({exc.detail or exc.message})",
            run_id=run_id,
        )
    return exc


class NewRun(TypedDict, total=False):
    """What a stored run waits on (:meth:`RunsAPI.create`): ``approval_ids`` (required),
    ``question_ids``, and its ``metadata``."""

    approval_ids: Required[list[str]]
    metadata: dict[str, Any] | None
    question_ids: list[str] | None


class Paused(TypedDict, total=False):
    """What a run paused again waits on (:meth:`RunsAPI.pause`): ``approval_ids``
    (required) and ``question_ids``."""

    approval_ids: Required[list[str]]
    question_ids: list[str] | None


class Completion(TypedDict, total=False):
    """How a run ended (:meth:`RunsAPI.complete`): ``outcome`` (default ``"completed"``),
    ``output_sha256``, ``error`` (kept to 2,000 characters)."""

    outcome: Literal["completed", "failed"]
    output_sha256: str | None
    error: str | None


# The runs protocol, once (sans-I/O, see pliuz._flow); the two classes below drive it.


def _create(cfg: _BaseClient, state: str, new: NewRun) -> Flow[Run]:
    data = yield from request(cfg, "POST", "/runs", json=_create_body(state, new), retry=False)
    return parse(Run, data)


def _get(cfg: _BaseClient, run_id: str, wait: int | None) -> Flow[Run]:
    data = yield from request(
        cfg, "GET", f"/runs/{run_id}", params=_wait_params(wait) or None, retry=True,
        timeout=cfg._long_poll_timeout(wait),
    )  # fmt: skip
    return parse(Run, data)


def _list(
    cfg: _BaseClient, status: RunStatus | None, wait: int | None, limit: int
) -> Flow[list[Run]]:
    params: dict[str, Any] = {"limit": max(1, min(100, limit)), **_wait_params(wait)}
    if status is not None:
        params["status"] = status
    data = yield from request(
        cfg, "GET", "/runs", params=params, retry=True, timeout=cfg._long_poll_timeout(wait)
    )
    return parse(RunList, data).items


def _claim(cfg: _BaseClient, run_id: str, lease_seconds: int) -> Flow[ClaimedRun]:
    data = yield from request(
        cfg, "POST", f"/runs/{run_id}/claim", json={"lease_seconds": lease_seconds}, retry=False
    )
    return verify_claimed(parse(ClaimedRun, data))


def _leased(
    cfg: _BaseClient, method: str, run_id: str, path: str, body: dict[str, Any], retry: bool
) -> Flow[Run]:
    """A request made under the run's lease: a lost lease is :class:`PliuzLeaseLostError`."""
    try:
        data = yield from request(cfg, method, f"/runs/{run_id}{path}", json=body, retry=retry)
    except PliuzAPIError as exc:
        raise _lease_error(exc, run_id) from exc
    return parse(Run, data)


def _heartbeat(cfg: _BaseClient, run_id: str, lease_token: str, lease_seconds: int) -> Flow[Run]:
    body = {"lease_token": lease_token, "lease_seconds": lease_seconds}
    return _leased(cfg, "POST", run_id, "/heartbeat", body, retry=True)


def _pause(
    cfg: _BaseClient, run_id: str, lease_token: str, state: str, paused: Paused
) -> Flow[Run]:
    _known(paused, Paused)
    body: dict[str, Any] = {
        "lease_token": lease_token, "state": state, "approval_ids": paused["approval_ids"],
    }  # fmt: skip
    if paused.get("question_ids"):
        body["question_ids"] = paused.get("question_ids")
    return _leased(cfg, "PUT", run_id, "", body, retry=False)


def _complete(cfg: _BaseClient, run_id: str, lease_token: str, completion: Completion) -> Flow[Run]:
    body = _complete_body(
        lease_token, completion.get("outcome", "completed"), completion.get("output_sha256"),
        completion.get("error"),
    )  # fmt: skip
    return _leased(cfg, "POST", run_id, "/complete", body, retry=False)


class AsyncRunsAPI:
    """The runs endpoints over an :class:`~pliuz.AsyncPliuzClient` (agent key)."""

    def __init__(self, client: AsyncPliuzClient) -> None:
        self.client = client

    async def create(self, state: str, **new: Unpack[NewRun]) -> Run:
        """Store a paused run (``POST /api/v1/runs``); it also waits on ``question_ids``."""
        return await self.client._drive(_create(self.client, state, new))

    async def get(self, run_id: str, *, wait: int | None = None) -> Run:
        """Fetch a run; with ``wait`` (s) a ``waiting`` run is long-polled until ready."""
        return await self.client._drive(_get(self.client, run_id, wait))

    async def list_runs(
        self, *, status: RunStatus | None = None, wait: int | None = None, limit: int = 50
    ) -> list[Run]:
        """This agent's runs; with ``status="ready"`` and ``wait``, long-polls for one."""
        return await self.client._drive(_list(self.client, status, wait, limit))

    async def claim(self, run_id: str, *, lease_seconds: int = DEFAULT_LEASE_S) -> ClaimedRun:
        """Take the run's lease and its state; the state's digest is verified."""
        return await self.client._drive(_claim(self.client, run_id, lease_seconds))

    async def heartbeat(
        self, run_id: str, lease_token: str, *, lease_seconds: int = DEFAULT_LEASE_S
    ) -> Run:
        """Extend the lease; :class:`PliuzLeaseLostError` if it is no longer ours."""
        return await self.client._drive(_heartbeat(self.client, run_id, lease_token, lease_seconds))

    async def pause(
        self, run_id: str, lease_token: str, state: str, **paused: Unpack[Paused]
    ) -> Run:
        """Store the run's new state under the same id (it paused again); releases the lease."""
        return await self.client._drive(_pause(self.client, run_id, lease_token, state, paused))

    async def complete(
        self, run_id: str, lease_token: str, **completion: Unpack[Completion]
    ) -> Run:
        """Mark the run finished: ``completed`` or ``failed`` (see :class:`Completion`)."""
        return await self.client._drive(_complete(self.client, run_id, lease_token, completion))


class RunsAPI:
    """Synchronous twin of :class:`AsyncRunsAPI` over a :class:`~pliuz.PliuzClient`."""

    def __init__(self, client: PliuzClient) -> None:
        self.client = client

    def create(self, state: str, **new: Unpack[NewRun]) -> Run:
        return self.client._drive(_create(self.client, state, new))

    def get(self, run_id: str, *, wait: int | None = None) -> Run:
        return self.client._drive(_get(self.client, run_id, wait))

    def list_runs(
        self, *, status: RunStatus | None = None, wait: int | None = None, limit: int = 50
    ) -> list[Run]:
        return self.client._drive(_list(self.client, status, wait, limit))

    def claim(self, run_id: str, *, lease_seconds: int = DEFAULT_LEASE_S) -> ClaimedRun:
        return self.client._drive(_claim(self.client, run_id, lease_seconds))

    def heartbeat(
        self, run_id: str, lease_token: str, *, lease_seconds: int = DEFAULT_LEASE_S
    ) -> Run:
        return self.client._drive(_heartbeat(self.client, run_id, lease_token, lease_seconds))

    def pause(self, run_id: str, lease_token: str, state: str, **paused: Unpack[Paused]) -> Run:
        return self.client._drive(_pause(self.client, run_id, lease_token, state, paused))

    def complete(self, run_id: str, lease_token: str, **completion: Unpack[Completion]) -> Run:
        return self.client._drive(_complete(self.client, run_id, lease_token, completion))
