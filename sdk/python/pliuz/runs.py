"""Durable runs: the ``/api/v1/runs`` resource (a paused agent run's stored state).

A run holds an opaque serialized state (for the OpenAI Agents SDK, the
``RunState.to_string()``), the approvals it waits on and a lease. The
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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._client import AsyncPliuzClient, PliuzClient
from .errors import PliuzAPIError, PliuzError
from .models import Approval

__all__ = [
    "AsyncRunsAPI",
    "ClaimedRun",
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
"""``waiting`` → ``ready`` (every approval settled) → ``running`` (leased) → ``completed``
or ``failed`` (or ``waiting``/``ready`` again when it paused once more)."""

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
    state_sha256: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    lease_expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    pause_count: int = 0


class RunList(_Model):
    items: list[Run] = Field(default_factory=list)


class ClaimedRun(_Model):
    """The answer to a claim: the run (``running``), its lease, its state and its approvals."""

    run: Run
    lease_token: str
    state: str
    state_sha256: str
    approvals: list[Approval] = Field(default_factory=list)


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


def _parse(model: type[Any], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValueError as exc:
        raise PliuzError(
            f"unexpected response from the Pliuz server ({model.__name__}): {exc}"
        ) from exc


def _wait_params(wait: int | None) -> dict[str, Any]:
    return {"wait": max(0, min(MAX_RUN_WAIT_S, int(wait)))} if wait else {}


def _create_body(
    state: str, approval_ids: list[str], metadata: dict[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"state": state, "approval_ids": approval_ids}
    if metadata:
        body["metadata"] = metadata
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


class AsyncRunsAPI:
    """The runs endpoints over an :class:`~pliuz.AsyncPliuzClient` (agent key)."""

    def __init__(self, client: AsyncPliuzClient) -> None:
        self.client = client

    async def create(
        self, state: str, *, approval_ids: list[str], metadata: dict[str, Any] | None = None
    ) -> Run:
        """Store a paused run (``POST /api/v1/runs``)."""
        body = _create_body(state, approval_ids, metadata)
        data = await self.client._request("POST", "/runs", json=body, retry=False)
        run: Run = _parse(Run, data)
        return run

    async def get(self, run_id: str, *, wait: int | None = None) -> Run:
        """Fetch a run; with ``wait`` (s) a ``waiting`` run is long-polled until ready."""
        data = await self.client._request(
            "GET",
            f"/runs/{run_id}",
            params=_wait_params(wait) or None,
            retry=True,
            timeout=self.client._long_poll_timeout(wait),
        )
        run: Run = _parse(Run, data)
        return run

    async def list_runs(
        self, *, status: RunStatus | None = None, wait: int | None = None, limit: int = 50
    ) -> list[Run]:
        """This agent's runs; with ``status="ready"`` and ``wait``, long-polls for one."""
        params: dict[str, Any] = {"limit": max(1, min(100, limit)), **_wait_params(wait)}
        if status is not None:
            params["status"] = status
        data = await self.client._request(
            "GET", "/runs", params=params, retry=True, timeout=self.client._long_poll_timeout(wait)
        )
        page: RunList = _parse(RunList, data)
        return page.items

    async def claim(self, run_id: str, *, lease_seconds: int = DEFAULT_LEASE_S) -> ClaimedRun:
        """Take the run's lease and its state; the state's digest is verified."""
        data = await self.client._request(
            "POST", f"/runs/{run_id}/claim", json={"lease_seconds": lease_seconds}, retry=False
        )
        claimed: ClaimedRun = _parse(ClaimedRun, data)
        return verify_claimed(claimed)

    async def heartbeat(
        self, run_id: str, lease_token: str, *, lease_seconds: int = DEFAULT_LEASE_S
    ) -> Run:
        """Extend the lease; :class:`PliuzLeaseLostError` if it is no longer ours."""
        body = {"lease_token": lease_token, "lease_seconds": lease_seconds}
        try:
            data = await self.client._request(
                "POST", f"/runs/{run_id}/heartbeat", json=body, retry=True
            )
        except PliuzAPIError as exc:
            raise _lease_error(exc, run_id) from exc
        run: Run = _parse(Run, data)
        return run

    async def pause(
        self, run_id: str, lease_token: str, state: str, *, approval_ids: list[str]
    ) -> Run:
        """Store the run's new state under the same id (it paused again); releases the lease."""
        body = {"lease_token": lease_token, "state": state, "approval_ids": approval_ids}
        try:
            data = await self.client._request("PUT", f"/runs/{run_id}", json=body, retry=False)
        except PliuzAPIError as exc:
            raise _lease_error(exc, run_id) from exc
        run: Run = _parse(Run, data)
        return run

    async def complete(
        self,
        run_id: str,
        lease_token: str,
        *,
        outcome: Literal["completed", "failed"] = "completed",
        output_sha256: str | None = None,
        error: str | None = None,
    ) -> Run:
        """Mark the run finished (``completed`` or ``failed``)."""
        body = _complete_body(lease_token, outcome, output_sha256, error)
        try:
            data = await self.client._request(
                "POST", f"/runs/{run_id}/complete", json=body, retry=False
            )
        except PliuzAPIError as exc:
            raise _lease_error(exc, run_id) from exc
        run: Run = _parse(Run, data)
        return run


class RunsAPI:
    """Synchronous twin of :class:`AsyncRunsAPI` over a :class:`~pliuz.PliuzClient`."""

    def __init__(self, client: PliuzClient) -> None:
        self.client = client

    def create(
        self, state: str, *, approval_ids: list[str], metadata: dict[str, Any] | None = None
    ) -> Run:
        data = self.client._request(
            "POST", "/runs", json=_create_body(state, approval_ids, metadata), retry=False
        )
        run: Run = _parse(Run, data)
        return run

    def get(self, run_id: str, *, wait: int | None = None) -> Run:
        data = self.client._request(
            "GET",
            f"/runs/{run_id}",
            params=_wait_params(wait) or None,
            retry=True,
            timeout=self.client._long_poll_timeout(wait),
        )
        run: Run = _parse(Run, data)
        return run

    def list_runs(
        self, *, status: RunStatus | None = None, wait: int | None = None, limit: int = 50
    ) -> list[Run]:
        params: dict[str, Any] = {"limit": max(1, min(100, limit)), **_wait_params(wait)}
        if status is not None:
            params["status"] = status
        data = self.client._request(
            "GET", "/runs", params=params, retry=True, timeout=self.client._long_poll_timeout(wait)
        )
        page: RunList = _parse(RunList, data)
        return page.items

    def claim(self, run_id: str, *, lease_seconds: int = DEFAULT_LEASE_S) -> ClaimedRun:
        data = self.client._request(
            "POST", f"/runs/{run_id}/claim", json={"lease_seconds": lease_seconds}, retry=False
        )
        claimed: ClaimedRun = _parse(ClaimedRun, data)
        return verify_claimed(claimed)

    def heartbeat(
        self, run_id: str, lease_token: str, *, lease_seconds: int = DEFAULT_LEASE_S
    ) -> Run:
        body = {"lease_token": lease_token, "lease_seconds": lease_seconds}
        try:
            data = self.client._request("POST", f"/runs/{run_id}/heartbeat", json=body, retry=True)
        except PliuzAPIError as exc:
            raise _lease_error(exc, run_id) from exc
        run: Run = _parse(Run, data)
        return run

    def pause(self, run_id: str, lease_token: str, state: str, *, approval_ids: list[str]) -> Run:
        body = {"lease_token": lease_token, "state": state, "approval_ids": approval_ids}
        try:
            data = self.client._request("PUT", f"/runs/{run_id}", json=body, retry=False)
        except PliuzAPIError as exc:
            raise _lease_error(exc, run_id) from exc
        run: Run = _parse(Run, data)
        return run

    def complete(
        self,
        run_id: str,
        lease_token: str,
        *,
        outcome: Literal["completed", "failed"] = "completed",
        output_sha256: str | None = None,
        error: str | None = None,
    ) -> Run:
        body = _complete_body(lease_token, outcome, output_sha256, error)
        try:
            data = self.client._request("POST", f"/runs/{run_id}/complete", json=body, retry=False)
        except PliuzAPIError as exc:
            raise _lease_error(exc, run_id) from exc
        run: Run = _parse(Run, data)
        return run
