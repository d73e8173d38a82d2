"""HTTP clients for the Pliuz API: :class:`PliuzClient` and :class:`AsyncPliuzClient`.

Both are configured from arguments or the environment (``PLIUZ_API_KEY``,
``PLIUZ_BASE_URL``, default ``http://127.0.0.1:8700``)::

    from pliuz import PliuzClient

    with PliuzClient() as client:
        approval = client.create_approval(
            tool_name="issue_refund",
            tool_args={"order_id": "A-1", "amount_cents": 5000},
            idempotency_key="refund-A-1",
        )
        approval = client.wait_for_decision(approval.id, timeout=600)
        if approval.status == "approved":
            claimed = client.claim_execution(approval.id)  # exactly one caller gets it
            ...  # run it with approval.final_args, then:
            client.report_execution(
                approval.id, "success", claim_id=claimed.execution.claim_id, latency_ms=12
            )

    async with AsyncPliuzClient() as client:
        approval = await client.create_approval(...)
        approval = await client.wait_for_decision(approval.id)
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from . import __version__ as _version
from ._retry import is_transient, retry_delay
from .errors import (
    PliuzAPIError,
    PliuzConflictError,
    PliuzConnectionError,
    PliuzError,
    PliuzMissingAPIKeyError,
    PliuzTimeoutError,
    error_from_response,
)
from .models import Approval, ApprovalList

__all__ = ["DEFAULT_BASE_URL", "AsyncPliuzClient", "PliuzClient"]

DEFAULT_BASE_URL = "http://127.0.0.1:8700"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_POLL_WAIT_S = 30
MAX_POLL_WAIT_S = 60
#: When ``timeout`` is None and the server cannot be reached, keep retrying
#: until this long after the request's ``expires_at`` (then raise).
EXPIRY_GRACE_S = 30.0

#: Without a timeout and without a known expiry, give up after the server was
#: unreachable for this long.
MAX_UNREACHABLE_S = 600.0

#: How long the final execution report is retried (the tool already ran, so
#: its outcome must reach the server) before it is logged as undelivered.
DEFAULT_REPORT_TIMEOUT_S = 30.0

#: A create that raced an identical one (409 ``concurrent_create``) is retried
#: this many times; the retry finds the other request and re-attaches to it.
CONCURRENT_CREATE_RETRIES = 5


def _is_concurrent_create(exc: PliuzConflictError) -> bool:
    # Older servers sent invalid_transition with this wording.
    return exc.code == "concurrent_create" or "created at the same moment" in (exc.detail or "")


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _clip(timeout: httpx.Timeout | float, deadline: float | None) -> httpx.Timeout | float:
    """Per-request timeouts cut to what is left of the whole operation's deadline."""
    left = _remaining(deadline)
    if left is None:
        return timeout
    left = max(0.001, left)
    if not isinstance(timeout, httpx.Timeout):
        return min(timeout, left)

    def cut(v: float | None) -> float:
        return left if v is None else min(v, left)

    return httpx.Timeout(
        connect=cut(timeout.connect), read=cut(timeout.read),
        write=cut(timeout.write), pool=cut(timeout.pool),
    )  # fmt: skip


def _deadline_error(base_url: str, cause: BaseException | None = None) -> PliuzTimeoutError:
    why = f" ({cause!r})" if cause is not None else ""
    return PliuzTimeoutError(
        f"no answer from the Pliuz server at {base_url} before the deadline{why}"
    )


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class _BaseClient:
    api_key: str
    base_url: str
    timeout: float
    max_retries: int
    poll_wait: int
    report_timeout: float

    def _configure(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        poll_wait: int,
        report_timeout: float = DEFAULT_REPORT_TIMEOUT_S,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("PLIUZ_API_KEY")
        if not key:
            raise PliuzMissingAPIKeyError(
                "no Pliuz API key: pass api_key=... or set the PLIUZ_API_KEY environment variable "
                "(create one with `pliuz agents create NAME`)"
            )
        self.api_key = key
        url = base_url or os.environ.get("PLIUZ_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.poll_wait = max(1, min(MAX_POLL_WAIT_S, poll_wait))
        self.report_timeout = max(0.0, report_timeout)

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"pliuz-python/{_version}",
        }

    def _url(self, path: str) -> str:
        return f"{self.base_url}/api/v1{path}"

    def _long_poll_timeout(self, wait: int | None) -> httpx.Timeout:
        read = self.timeout + (wait or 0)
        return httpx.Timeout(self.timeout, read=read)

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        if not response.is_success:
            raise error_from_response(response)
        try:
            return response.json()
        except ValueError as exc:
            raise PliuzAPIError(
                f"{response.status_code}: the server answered with a body that is not JSON",
                status=response.status_code,
                body=response.text,
                response=response,
            ) from exc

    @staticmethod
    def _create_body(
        tool_name: str,
        tool_args: dict[str, Any],
        policy: str | None,
        tool_schema: dict[str, Any] | None,
        call_id: str | None,
        session_id: str | None,
        originator: str | None,
        context_messages: list[Any] | None,
        client_metadata: dict[str, Any] | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        return _drop_none(
            {
                "tool_name": tool_name,
                "tool_args": tool_args,
                "policy": policy,
                "tool_schema": tool_schema,
                "call_id": call_id,
                "session_id": session_id,
                "originator": originator,
                "context_messages": context_messages,
                "client_metadata": client_metadata,
                "idempotency_key": idempotency_key,
            }
        )

    @staticmethod
    def _wait_seconds(remaining: float | None, poll_wait: int) -> int:
        if remaining is None:
            return poll_wait
        # Whole seconds the server may hold the poll; the read timeout is cut
        # to the deadline anyway, so this never extends the wait.
        return max(1, min(poll_wait, math.ceil(remaining)))

    @staticmethod
    def _execution_body(
        outcome: str,
        claim_id: str | None,
        latency_ms: int | None,
        output_excerpt: str | None,
    ) -> dict[str, Any]:
        return _drop_none(
            {"outcome": outcome, "claim_id": claim_id, "latency_ms": latency_ms,
             "output_excerpt": output_excerpt}
        )  # fmt: skip

    @staticmethod
    def _wait_deadline(timeout: float | None) -> float | None:
        return time.monotonic() + timeout if timeout is not None else None

    @staticmethod
    def _expiry_deadline(approval: Approval | None) -> float | None:
        """Monotonic deadline derived from ``expires_at`` (+ grace) for waits without a timeout."""
        if approval is None or approval.expires_at is None:
            return None
        expires = approval.expires_at
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        delta = (expires - datetime.now(timezone.utc)).total_seconds()
        return time.monotonic() + delta + EXPIRY_GRACE_S


class PliuzClient(_BaseClient):
    """Synchronous client. Thread-safe; reuse one instance (it pools connections).

    Args:
        api_key: an agent key (``pliuz_ak_...``) or, for the human endpoints, a
            user token (``pliuz_ut_...``). Defaults to ``$PLIUZ_API_KEY``.
        base_url: server address. Defaults to ``$PLIUZ_BASE_URL`` or
            ``http://127.0.0.1:8700``.
        timeout: per-request timeout in seconds (long polls add their ``wait``).
        max_retries: retries of safe requests (GETs, creates with an
            idempotency key) on connection errors, 5xx and 429, with
            exponential backoff and jitter.
        poll_wait: seconds each long poll of :meth:`wait_for_decision` asks the
            server to hold (1-60).
        report_timeout: how long the gate keeps retrying the final execution
            report after the tool ran (default 30 s) before logging it as
            undelivered (see :func:`pliuz.undelivered_reports`).
        http_client: a custom :class:`httpx.Client` (proxies, TLS, transports).

    Every ``timeout`` of an operation (``wait_for_decision(timeout=...)``,
    ``create_approval(timeout=...)``, ``gated(timeout_s=...)``) is a deadline for
    the whole operation, retries and hung connections included: each HTTP
    request's own timeouts are cut to what is left of it.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        poll_wait: int = DEFAULT_POLL_WAIT_S,
        report_timeout: float = DEFAULT_REPORT_TIMEOUT_S,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._configure(api_key, base_url, timeout, max_retries, poll_wait, report_timeout)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)

    # -- plumbing -----------------------------------------------------------

    def close(self) -> None:
        """Close the underlying connection pool (if this client created it)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> PliuzClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool,
        timeout: httpx.Timeout | float | None = None,
        deadline: float | None = None,
    ) -> Any:
        attempt = 0
        while True:
            left = _remaining(deadline)
            if left is not None and left <= 0:
                raise _deadline_error(self.base_url)
            try:
                response = self._http.request(
                    method,
                    self._url(path),
                    json=json,
                    params=params,
                    headers=self._headers(),
                    timeout=_clip(timeout if timeout is not None else self.timeout, deadline),
                )
                return self._decode(response)
            except httpx.TransportError as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise _deadline_error(self.base_url, exc) from exc
                err: PliuzError = PliuzConnectionError(
                    f"cannot reach the Pliuz server at {self.base_url}: {exc!r}"
                )
                cause: BaseException = exc
            except PliuzAPIError as exc:
                err, cause = exc, exc
            if retry and attempt < self.max_retries and is_transient(err):
                delay = retry_delay(err, attempt)
                left = _remaining(deadline)
                if left is not None and delay >= left:
                    raise err  # no time left for another attempt
                time.sleep(delay)
                attempt += 1
                continue
            if err is cause:
                raise err
            raise err from cause

    # -- agent endpoints ----------------------------------------------------

    def create_approval(
        self,
        tool_name: str,
        tool_args: dict[str, Any],
        *,
        policy: str | None = None,
        tool_schema: dict[str, Any] | None = None,
        call_id: str | None = None,
        session_id: str | None = None,
        originator: str | None = None,
        context_messages: list[Any] | None = None,
        client_metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Approval:
        """Ask for approval of one tool call (``POST /api/v1/approvals``).

        Returns the approval: ``pending``, or already ``approved`` / ``rejected``
        when a policy condition decided it. With an ``idempotency_key`` the
        request is retried on transient errors and when an identical request
        was created at the same moment (409 ``concurrent_create``), and a repeat
        returns the existing approval with ``is_replay=True`` whatever its state.
        ``timeout`` bounds the whole call (:class:`~pliuz.PliuzTimeoutError`).
        """
        body = self._create_body(
            tool_name, tool_args, policy, tool_schema, call_id, session_id,
            originator, context_messages, client_metadata, idempotency_key,
        )  # fmt: skip
        deadline = self._wait_deadline(timeout)
        retry = idempotency_key is not None
        attempt = 0
        while True:
            try:
                data = self._request(
                    "POST", "/approvals", json=body, retry=retry, deadline=deadline
                )
                return _parse(Approval, data)
            except PliuzConflictError as exc:
                if (
                    not retry
                    or attempt >= CONCURRENT_CREATE_RETRIES
                    or not _is_concurrent_create(exc)
                ):
                    raise
            attempt += 1
            time.sleep(0.02 * attempt)

    def get_approval(
        self, approval_id: str, *, wait: int | None = None, timeout: float | None = None
    ) -> Approval:
        """Fetch an approval. With ``wait`` (0-60 s) the server holds the request
        until the approval settles or ``wait`` elapses (long poll). ``timeout``
        bounds the whole call, retries included."""
        params = {"wait": int(wait)} if wait else None
        data = self._request(
            "GET",
            f"/approvals/{approval_id}",
            params=params,
            retry=True,
            timeout=self._long_poll_timeout(wait),
            deadline=self._wait_deadline(timeout),
        )
        return _parse(Approval, data)

    def wait_for_decision(
        self, approval: str | Approval, *, timeout: float | None = None
    ) -> Approval:
        """Long-poll until the approval leaves ``pending`` and return it.

        ``approval`` is an id or an :class:`~pliuz.models.Approval` (pass the
        object returned by :meth:`create_approval`: its ``expires_at`` bounds
        retries when no ``timeout`` is given).

        The returned approval may be ``approved``, ``rejected``, ``expired``,
        ``cancelled`` or ``executed``; inspect ``status`` (or use
        :func:`pliuz.raise_for_outcome`). Connection errors and 5xx answers
        while waiting (for example a server restart) are retried with backoff
        until ``timeout``. Raises :class:`~pliuz.PliuzTimeoutError` if still
        pending after ``timeout`` seconds. Without a timeout it waits until the
        server settles the request (policies always expire); if the server
        stays unreachable past ``expires_at`` it raises
        :class:`~pliuz.PliuzConnectionError`.
        """
        approval_id, last = _split(approval)
        if last is not None and last.status != "pending":
            return last
        deadline = self._wait_deadline(timeout)
        attempt = 0
        unreachable_since: float | None = None
        tried = False
        while True:
            limit = deadline if deadline is not None else self._expiry_deadline(last)
            remaining = None if limit is None else limit - time.monotonic()
            if remaining is not None and remaining <= 0 and tried:
                raise _timeout_error(approval_id, last, timeout, unreachable_since is not None)
            # The first look is always taken (up to 1 s), even with timeout=0.
            poll_deadline = limit if limit is None or tried else max(limit, time.monotonic() + 1)
            tried = True
            wait = self._wait_seconds(remaining, self.poll_wait)
            started = time.monotonic()
            try:
                data = self._request(
                    "GET",
                    f"/approvals/{approval_id}",
                    params={"wait": wait},
                    retry=False,
                    timeout=self._long_poll_timeout(wait),
                    deadline=poll_deadline,
                )
            except PliuzTimeoutError:
                raise _timeout_error(
                    approval_id, last, timeout, unreachable_since is not None
                ) from None
            except PliuzError as exc:
                if not is_transient(exc):
                    raise
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if limit is None and now - unreachable_since > MAX_UNREACHABLE_S:
                    raise  # no expiry known to bound the wait: give up eventually
                delay = retry_delay(exc, attempt)
                attempt += 1
                if remaining is not None and delay >= remaining and remaining > 0:
                    if deadline is None:
                        raise
                    time.sleep(max(0.0, remaining))
                    continue
                time.sleep(delay)
                continue
            attempt = 0
            unreachable_since = None
            last = _parse(Approval, data)
            if last.status != "pending":
                return last
            if time.monotonic() - started < min(wait, 1) / 2:
                time.sleep(0.25)  # the server did not hold the request: don't spin

    def claim_execution(
        self, approval_id: str, *, claim_id: str | None = None, timeout: float | None = None
    ) -> Approval:
        """Claim the right to run an approved call (``approved`` → ``executing``).

        Exactly one caller ever gets it; run the tool only after this returns,
        then :meth:`report_execution` with ``approval.execution.claim_id``.
        ``claim_id`` (default: a new random one) makes retries safe: the claim is
        retried on transient errors and a repeat of the same id is answered 200.
        Raises :class:`~pliuz.PliuzConflictError` with ``code``
        ``execution_claimed`` (someone else claimed it: the outcome is unknown,
        check before retrying; or it was already executed) or
        ``execution_expired`` (past ``execute_before``).
        """
        body = {"outcome": "started", "claim_id": claim_id or new_claim_id()}
        data = self._request(
            "POST", f"/approvals/{approval_id}/execution", json=body, retry=True,
            deadline=self._wait_deadline(timeout),
        )  # fmt: skip
        return _parse(Approval, data)

    def report_execution(
        self,
        approval_id: str,
        outcome: Literal["success", "error"],
        *,
        claim_id: str | None = None,
        latency_ms: int | None = None,
        output_excerpt: str | None = None,
        timeout: float | None = None,
    ) -> Approval:
        """Report how the claimed call went; the status becomes ``executed``.

        ``claim_id`` is the one :meth:`claim_execution` returned. A repeat of the
        same report is answered 200 (so it is retried on transient errors); a
        report without a claim, with another claim's id or with a different
        outcome is 409 (:class:`~pliuz.PliuzConflictError`).
        """
        body = self._execution_body(outcome, claim_id, latency_ms, output_excerpt)
        data = self._request(
            "POST", f"/approvals/{approval_id}/execution", json=body,
            retry=claim_id is not None, deadline=self._wait_deadline(timeout),
        )  # fmt: skip
        return _parse(Approval, data)

    def cancel_approval(self, approval_id: str, *, reason: str | None = None) -> Approval:
        """Cancel a ``pending`` approval (409 :class:`~pliuz.PliuzConflictError` otherwise)."""
        data = self._request(
            "POST", f"/approvals/{approval_id}/cancel", json=_drop_none({"reason": reason}),
            retry=False,
        )  # fmt: skip
        return _parse(Approval, data)

    # -- human endpoints (user token) ----------------------------------------

    def list_approvals(
        self,
        *,
        status: str | None = None,
        policy: str | None = None,
        agent: str | None = None,
        tool: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ApprovalList:
        """List approvals visible to this user token, newest first (one page)."""
        params = _drop_none(
            {"status": status, "policy": policy, "agent": agent, "tool": tool,
             "limit": limit, "cursor": cursor}
        )  # fmt: skip
        data = self._request("GET", "/approvals", params=params, retry=True)
        return _parse(ApprovalList, data)

    def decide(
        self,
        approval: Approval | str,
        decision: Literal["approve", "reject", "edit"],
        *,
        args_digest: str | None = None,
        reason: str | None = None,
        final_args: dict[str, Any] | None = None,
    ) -> Approval:
        """Approve, reject or edit (with ``final_args``) as a human approver.

        A decision applies only to the arguments you reviewed: pass the
        :class:`Approval` you looked at (its ``args_digest`` is sent), or an
        id together with ``args_digest``. If an approver edited the arguments
        since, the server refuses with :class:`PliuzArgsChangedError`.
        """
        approval_id, body = _decision_body(approval, decision, args_digest, reason, final_args)
        data = self._request("POST", f"/approvals/{approval_id}/decision", json=body, retry=False)
        return _parse(Approval, data)


class AsyncPliuzClient(_BaseClient):
    """Asynchronous twin of :class:`PliuzClient` (same arguments, awaitable methods).

    Bound to the event loop it is first used on; create one per loop.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        poll_wait: int = DEFAULT_POLL_WAIT_S,
        report_timeout: float = DEFAULT_REPORT_TIMEOUT_S,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._configure(api_key, base_url, timeout, max_retries, poll_wait, report_timeout)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        """Close the underlying connection pool (if this client created it)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncPliuzClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool,
        timeout: httpx.Timeout | float | None = None,
        deadline: float | None = None,
    ) -> Any:
        attempt = 0
        while True:
            left = _remaining(deadline)
            if left is not None and left <= 0:
                raise _deadline_error(self.base_url)
            try:
                call = self._http.request(
                    method,
                    self._url(path),
                    json=json,
                    params=params,
                    headers=self._headers(),
                    timeout=_clip(timeout if timeout is not None else self.timeout, deadline),
                )
                # httpx's timeouts are per phase; this bounds the whole request.
                response = await (call if left is None else asyncio.wait_for(call, left))
                return self._decode(response)
            except (httpx.TransportError, asyncio.TimeoutError) as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise _deadline_error(self.base_url, exc) from exc
                err: PliuzError = PliuzConnectionError(
                    f"cannot reach the Pliuz server at {self.base_url}: {exc!r}"
                )
                cause: BaseException = exc
            except PliuzAPIError as exc:
                err, cause = exc, exc
            if retry and attempt < self.max_retries and is_transient(err):
                delay = retry_delay(err, attempt)
                left = _remaining(deadline)
                if left is not None and delay >= left:
                    raise err  # no time left for another attempt
                await asyncio.sleep(delay)
                attempt += 1
                continue
            if err is cause:
                raise err
            raise err from cause

    async def create_approval(
        self,
        tool_name: str,
        tool_args: dict[str, Any],
        *,
        policy: str | None = None,
        tool_schema: dict[str, Any] | None = None,
        call_id: str | None = None,
        session_id: str | None = None,
        originator: str | None = None,
        context_messages: list[Any] | None = None,
        client_metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Approval:
        """Async :meth:`PliuzClient.create_approval`."""
        body = self._create_body(
            tool_name, tool_args, policy, tool_schema, call_id, session_id,
            originator, context_messages, client_metadata, idempotency_key,
        )  # fmt: skip
        deadline = self._wait_deadline(timeout)
        retry = idempotency_key is not None
        attempt = 0
        while True:
            try:
                data = await self._request(
                    "POST", "/approvals", json=body, retry=retry, deadline=deadline
                )
                return _parse(Approval, data)
            except PliuzConflictError as exc:
                if (
                    not retry
                    or attempt >= CONCURRENT_CREATE_RETRIES
                    or not _is_concurrent_create(exc)
                ):
                    raise
            attempt += 1
            await asyncio.sleep(0.02 * attempt)

    async def get_approval(
        self, approval_id: str, *, wait: int | None = None, timeout: float | None = None
    ) -> Approval:
        """Async :meth:`PliuzClient.get_approval`."""
        params = {"wait": int(wait)} if wait else None
        data = await self._request(
            "GET",
            f"/approvals/{approval_id}",
            params=params,
            retry=True,
            timeout=self._long_poll_timeout(wait),
            deadline=self._wait_deadline(timeout),
        )
        return _parse(Approval, data)

    async def wait_for_decision(
        self, approval: str | Approval, *, timeout: float | None = None
    ) -> Approval:
        """Async :meth:`PliuzClient.wait_for_decision`."""
        approval_id, last = _split(approval)
        if last is not None and last.status != "pending":
            return last
        deadline = self._wait_deadline(timeout)
        attempt = 0
        unreachable_since: float | None = None
        tried = False
        while True:
            limit = deadline if deadline is not None else self._expiry_deadline(last)
            remaining = None if limit is None else limit - time.monotonic()
            if remaining is not None and remaining <= 0 and tried:
                raise _timeout_error(approval_id, last, timeout, unreachable_since is not None)
            # The first look is always taken (up to 1 s), even with timeout=0.
            poll_deadline = limit if limit is None or tried else max(limit, time.monotonic() + 1)
            tried = True
            wait = self._wait_seconds(remaining, self.poll_wait)
            started = time.monotonic()
            try:
                data = await self._request(
                    "GET",
                    f"/approvals/{approval_id}",
                    params={"wait": wait},
                    retry=False,
                    timeout=self._long_poll_timeout(wait),
                    deadline=poll_deadline,
                )
            except PliuzTimeoutError:
                raise _timeout_error(
                    approval_id, last, timeout, unreachable_since is not None
                ) from None
            except PliuzError as exc:
                if not is_transient(exc):
                    raise
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if limit is None and now - unreachable_since > MAX_UNREACHABLE_S:
                    raise  # no expiry known to bound the wait: give up eventually
                delay = retry_delay(exc, attempt)
                attempt += 1
                if remaining is not None and delay >= remaining and remaining > 0:
                    if deadline is None:
                        raise
                    await asyncio.sleep(max(0.0, remaining))
                    continue
                await asyncio.sleep(delay)
                continue
            attempt = 0
            unreachable_since = None
            last = _parse(Approval, data)
            if last.status != "pending":
                return last
            if time.monotonic() - started < min(wait, 1) / 2:
                await asyncio.sleep(0.25)

    async def claim_execution(
        self, approval_id: str, *, claim_id: str | None = None, timeout: float | None = None
    ) -> Approval:
        """Async :meth:`PliuzClient.claim_execution`."""
        body = {"outcome": "started", "claim_id": claim_id or new_claim_id()}
        data = await self._request(
            "POST", f"/approvals/{approval_id}/execution", json=body, retry=True,
            deadline=self._wait_deadline(timeout),
        )  # fmt: skip
        return _parse(Approval, data)

    async def report_execution(
        self,
        approval_id: str,
        outcome: Literal["success", "error"],
        *,
        claim_id: str | None = None,
        latency_ms: int | None = None,
        output_excerpt: str | None = None,
        timeout: float | None = None,
    ) -> Approval:
        """Async :meth:`PliuzClient.report_execution`."""
        body = self._execution_body(outcome, claim_id, latency_ms, output_excerpt)
        data = await self._request(
            "POST", f"/approvals/{approval_id}/execution", json=body,
            retry=claim_id is not None, deadline=self._wait_deadline(timeout),
        )  # fmt: skip
        return _parse(Approval, data)

    async def cancel_approval(self, approval_id: str, *, reason: str | None = None) -> Approval:
        """Async :meth:`PliuzClient.cancel_approval`."""
        data = await self._request(
            "POST", f"/approvals/{approval_id}/cancel", json=_drop_none({"reason": reason}),
            retry=False,
        )  # fmt: skip
        return _parse(Approval, data)

    async def list_approvals(
        self,
        *,
        status: str | None = None,
        policy: str | None = None,
        agent: str | None = None,
        tool: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ApprovalList:
        """Async :meth:`PliuzClient.list_approvals`."""
        params = _drop_none(
            {"status": status, "policy": policy, "agent": agent, "tool": tool,
             "limit": limit, "cursor": cursor}
        )  # fmt: skip
        data = await self._request("GET", "/approvals", params=params, retry=True)
        return _parse(ApprovalList, data)

    async def decide(
        self,
        approval: Approval | str,
        decision: Literal["approve", "reject", "edit"],
        *,
        args_digest: str | None = None,
        reason: str | None = None,
        final_args: dict[str, Any] | None = None,
    ) -> Approval:
        """Async :meth:`PliuzClient.decide`."""
        approval_id, body = _decision_body(approval, decision, args_digest, reason, final_args)
        data = await self._request(
            "POST", f"/approvals/{approval_id}/decision", json=body, retry=False
        )
        return _parse(Approval, data)


M = TypeVar("M", bound=BaseModel)


def _decision_body(
    approval: Approval | str,
    decision: str,
    args_digest: str | None,
    reason: str | None,
    final_args: dict[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    """The decision request: which approval, and the body bound to what was reviewed."""
    if isinstance(approval, Approval):
        approval_id, digest = approval.id, args_digest or approval.args_digest
    else:
        approval_id, digest = approval, args_digest
    if not digest:
        raise ValueError(
            "a decision must say which arguments were reviewed: pass the Approval you "
            "looked at, or args_digest= from it (GET the approval first)"
        )
    body = _drop_none(
        {"decision": decision, "args_digest": digest, "reason": reason, "final_args": final_args}
    )
    return approval_id, body


def new_claim_id() -> str:
    """A fresh, unguessable claim id (what :meth:`PliuzClient.claim_execution` sends)."""
    return uuid.uuid4().hex


def _parse(model: type[M], data: Any) -> M:
    """Validate a response body; an unexpected shape is a :class:`PliuzError`, never a crash."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PliuzError(
            f"unexpected response from the Pliuz server ({model.__name__}): {exc}"
        ) from exc


def _split(approval: str | Approval) -> tuple[str, Approval | None]:
    if isinstance(approval, Approval):
        return approval.id, approval
    return approval, None


def _timeout_error(
    approval_id: str, last: Approval | None, timeout: float | None, unreachable: bool
) -> PliuzError:
    if timeout is None and unreachable:
        return PliuzConnectionError(
            f"approval {approval_id}: the Pliuz server stayed unreachable past the request's expiry"
        )
    if timeout is None:
        return PliuzTimeoutError(
            f"approval {approval_id} is still pending well past its expiry", approval=last
        )
    return PliuzTimeoutError(
        f"approval {approval_id} still pending after {timeout:g}s", approval=last
    )
