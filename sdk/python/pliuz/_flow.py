"""The API protocol, written once and free of I/O (a "sans-I/O" core).

Every operation — one request with its retries, create, the long-poll wait for
a decision, claim, report, and the whole gated call in :mod:`pliuz._gate` — is
a generator that *yields steps* (send this HTTP request, sleep this long, run
the tool body) and *receives* their results; a failed step is thrown back into
it. Two thin drivers execute the steps: :class:`~pliuz.PliuzClient` with
blocking calls and :class:`~pliuz.AsyncPliuzClient` with awaits, the way
httpx runs its auth flows. Retries, backoff, deadlines and the gate's rules
therefore exist once, for both.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ._retry import is_transient, retry_delay
from .errors import (
    PliuzAPIError,
    PliuzConflictError,
    PliuzConnectionError,
    PliuzError,
    PliuzTimeoutError,
    error_from_response,
)
from .models import Approval, ApprovalList

if TYPE_CHECKING:
    from ._client import _BaseClient
    from ._reports import Report

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: A protocol operation: yields steps, receives their results, returns ``T``.
Flow = Generator["Step", Any, T]

#: Without a timeout and without a known expiry, give up after the server was
#: unreachable for this long.
MAX_UNREACHABLE_S = 600.0

#: A create that raced an identical one (409 ``concurrent_create``) is retried
#: this many times; the retry finds the other request and re-attaches to it.
CONCURRENT_CREATE_RETRIES = 5


# ---------------------------------------------------------------------------
# Steps (what a driver must do) — answered with the value noted on each
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send one HTTP request to ``/api/v1{path}``; answered with the :class:`httpx.Response`."""

    method: str
    path: str
    json: Any
    params: dict[str, Any] | None
    timeout: httpx.Timeout | float
    #: Bound on the whole request in seconds (httpx's timeouts are per phase).
    bound: float | None


@dataclass(frozen=True)
class Sleep:
    """Wait this many seconds; answered with ``None``."""

    seconds: float


@dataclass(frozen=True)
class RunBody:
    """Run the gated tool with these arguments; answered with its result."""

    args: dict[str, Any]


@dataclass(frozen=True)
class Announce:
    """The request is pending (adapters show it); answered with ``None``."""

    approval: Approval


@dataclass(frozen=True)
class Shielded:
    """Run ``flow`` to its end even while the caller is being cancelled (at most
    ``limit`` seconds); its errors are logged, not raised. Answered with ``None``."""

    flow: Flow[Any]
    limit: float
    what: str


@dataclass(frozen=True)
class QueueReport:
    """Deliver an execution report without holding up the caller; answered with ``None``."""

    report: Report


Step = Send | Sleep | RunBody | Announce | Shielded | QueueReport


class Stepper(Generic[T]):
    """Walks a flow for a driver: ``while s.next(): s.answer(perform(s.step))`` (or ``s.fail``)."""

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self._answer: Any = None
        self._failure: BaseException | None = None
        self.step: Step = Sleep(0)
        self.result: T

    def next(self) -> bool:
        """Advance to the next step; ``False`` once the flow returned (see :attr:`result`)."""
        failure, self._failure = self._failure, None
        answer, self._answer = self._answer, None
        try:
            self.step = (
                self._flow.throw(failure) if failure is not None else self._flow.send(answer)
            )
        except StopIteration as done:
            self.result = done.value
            return False
        return True

    def answer(self, value: Any) -> None:
        self._answer = value

    def fail(self, exc: BaseException) -> None:
        self._failure = exc


# ---------------------------------------------------------------------------
# Request bodies, built once
# ---------------------------------------------------------------------------


class RequestFields(TypedDict, total=False):
    """What an agent tells about a request besides the tool call: the optional
    fields of ``POST /api/v1/approvals`` that the adapters' keywords take too."""

    policy: str | None
    tool_schema: dict[str, Any] | None
    session_id: str | None
    originator: str | None
    context_messages: list[Any] | None
    client_metadata: dict[str, Any] | None


class RequestOptions(RequestFields, total=False):
    """The optional fields of an approval request (``POST /api/v1/approvals``)."""

    call_id: str | None
    idempotency_key: str | None
    #: Claimed for this id at once if the policy approves the request on creation.
    claim_id: str | None


class ListFilters(TypedDict, total=False):
    """The filters and paging of ``GET /api/v1/approvals``."""

    status: str | None
    policy: str | None
    agent: str | None
    tool: str | None
    limit: int | None
    cursor: str | None


def drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def create_body(
    tool_name: str, tool_args: dict[str, Any], options: RequestOptions
) -> dict[str, Any]:
    """The body of ``POST /api/v1/approvals`` (the one place it is built)."""
    _known(options, RequestOptions)
    return drop_none({"tool_name": tool_name, "tool_args": tool_args, **options})


class ExecutionDetails(TypedDict, total=False):
    """The optional fields of an execution report."""

    claim_id: str | None
    latency_ms: int | None
    output_excerpt: str | None


class DecisionOptions(TypedDict, total=False):
    """What a decision is bound to and carries."""

    args_digest: str | None
    reason: str | None
    final_args: dict[str, Any] | None


def _known(options: Mapping[str, Any], allowed: type) -> None:
    unknown = set(options) - set(allowed.__annotations__)
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")


def execution_body(outcome: str, details: ExecutionDetails) -> dict[str, Any]:
    _known(details, ExecutionDetails)
    return drop_none({"outcome": outcome, **details})


def decision_body(
    approval: Approval | str, decision: str, options: DecisionOptions
) -> tuple[str, dict[str, Any]]:
    """The decision request: which approval, and the body bound to what was reviewed."""
    _known(options, DecisionOptions)
    args_digest = options.get("args_digest")
    if isinstance(approval, Approval):
        approval_id, digest = approval.id, args_digest or approval.args_digest
    else:
        approval_id, digest = approval, args_digest
    if not digest:
        raise ValueError(
            "a decision must say which arguments were reviewed: pass the Approval you "
            "looked at, or args_digest= from it (GET the approval first)"
        )
    body = drop_none({"decision": decision, **options, "args_digest": digest})
    return approval_id, body


# ---------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------


def deadline_in(timeout: float | None) -> float | None:
    """A monotonic deadline ``timeout`` seconds from now (``None``: no deadline)."""
    return time.monotonic() + timeout if timeout is not None else None


def remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def clip(timeout: httpx.Timeout | float, deadline: float | None) -> httpx.Timeout | float:
    """Per-request timeouts cut to what is left of the whole operation's deadline."""
    left = remaining(deadline)
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


def deadline_error(base_url: str, cause: BaseException | None = None) -> PliuzTimeoutError:
    why = f" ({cause!r})" if cause is not None else ""
    return PliuzTimeoutError(
        f"no answer from the Pliuz server at {base_url} before the deadline{why}"
    )


# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------


def decode(response: httpx.Response) -> Any:
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


def parse(model: type[M], data: Any) -> M:
    """Validate a response body; an unexpected shape is a :class:`PliuzError`, never a crash."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PliuzError(
            f"unexpected response from the Pliuz server ({model.__name__}): {exc}"
        ) from exc


# ---------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------


def request(
    cfg: _BaseClient,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    retry: bool,
    timeout: httpx.Timeout | float | None = None,
    deadline: float | None = None,
) -> Flow[Any]:
    """One API request; safe ones (``retry``) are retried on transient errors with backoff."""
    attempt = 0
    while True:
        left = remaining(deadline)
        if left is not None and left <= 0:
            raise deadline_error(cfg.base_url)
        per_request = clip(timeout if timeout is not None else cfg.timeout, deadline)
        try:
            response = yield Send(method, path, json, params, per_request, left)
            return decode(response)
        except (httpx.TransportError, asyncio.TimeoutError) as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise deadline_error(cfg.base_url, exc) from exc
            err: PliuzError = PliuzConnectionError(
                f"cannot reach the Pliuz server at {cfg.base_url}: {exc!r}"
            )
            cause: BaseException = exc
        except PliuzAPIError as exc:
            err, cause = exc, exc
        if retry and attempt < cfg.max_retries and is_transient(err):
            delay = retry_delay(err, attempt)
            left = remaining(deadline)
            if left is not None and delay >= left:
                raise err  # no time left for another attempt
            yield Sleep(delay)
            attempt += 1
            continue
        if err is cause:
            raise err
        raise err from cause


def _is_concurrent_create(exc: PliuzConflictError) -> bool:
    # Older servers sent invalid_transition with this wording.
    return exc.code == "concurrent_create" or "created at the same moment" in (exc.detail or "")


@dataclass(frozen=True)
class Resource(Generic[M]):
    """A kind of server object created by ``POST path`` and read at ``path/<id>``."""

    path: str
    model: type[M]

    def create(self, cfg: _BaseClient, body: dict[str, Any], deadline: float | None) -> Flow[M]:
        """With an idempotency key the create is retried (also when the server reports a
        concurrent create of the same key, which the next attempt finds)."""
        retry = body.get("idempotency_key") is not None
        attempt = 0
        while True:
            try:
                data = yield from request(
                    cfg, "POST", self.path, json=body, retry=retry, deadline=deadline
                )
                return parse(self.model, data)
            except PliuzConflictError as exc:
                if (
                    not retry
                    or attempt >= CONCURRENT_CREATE_RETRIES
                    or not _is_concurrent_create(exc)
                ):
                    raise
            attempt += 1
            yield Sleep(0.02 * attempt)

    def get(
        self, cfg: _BaseClient, object_id: str, wait: int | None, deadline: float | None
    ) -> Flow[M]:
        """Read one; with ``wait`` the server may hold the request that long for a change."""
        data = yield from request(
            cfg, "GET", f"{self.path}/{object_id}", params={"wait": int(wait)} if wait else None,
            retry=True, timeout=cfg._long_poll_timeout(wait), deadline=deadline,
        )  # fmt: skip
        return parse(self.model, data)


APPROVALS = Resource("/approvals", Approval)
create = APPROVALS.create
get = APPROVALS.get


def _wait_seconds(left: float | None, poll_wait: int) -> int:
    if left is None:
        return poll_wait
    # Whole seconds the server may hold the poll; the read timeout is cut
    # to the deadline anyway, so this never extends the wait.
    return max(1, min(poll_wait, math.ceil(left)))


@dataclass
class LongPoll:
    """Where a long-poll wait stands: whether it looked once, its transient failures in a
    row, and since when the server is unreachable."""

    tried: bool = False
    attempt: int = 0
    unreachable_since: float | None = None

    def next_wait(
        self, cfg: _BaseClient, limit: float | None, left: float | None
    ) -> tuple[int, float | None]:
        """The seconds the next poll asks the server to hold it, and that poll's deadline.
        The first look is always taken (up to 1 s), even with timeout=0."""
        deadline = limit if limit is None or self.tried else max(limit, time.monotonic() + 1)
        self.tried = True
        return _wait_seconds(left, cfg.poll_wait), deadline

    def delay_after(self, exc: PliuzError, limit: float | None) -> float:
        """The pause before the next poll; ``exc`` itself when it is not transient, or when
        the server stayed unreachable too long with no expiry known to bound the wait."""
        if not is_transient(exc):
            raise exc
        now = time.monotonic()
        self.unreachable_since = self.unreachable_since or now
        if limit is None and now - self.unreachable_since > MAX_UNREACHABLE_S:
            raise exc  # no expiry known to bound the wait: give up eventually
        delay = retry_delay(exc, self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
        self.unreachable_since = None


def poll(cfg: _BaseClient, path: str, wait: int, deadline: float | None) -> Flow[Any]:
    """One long-poll ``GET path`` the server may hold for ``wait`` seconds (not retried)."""
    return request(
        cfg, "GET", path, params={"wait": wait}, retry=False,
        timeout=cfg._long_poll_timeout(wait), deadline=deadline,
    )  # fmt: skip


def wait_for_decision(
    cfg: _BaseClient, approval: str | Approval, timeout: float | None
) -> Flow[Approval]:
    """Long-poll until the approval leaves ``pending`` (:meth:`PliuzClient.wait_for_decision`)."""
    approval_id, last = (
        (approval.id, approval) if isinstance(approval, Approval) else (approval, None)
    )
    if last is not None and last.status != "pending":
        return last
    deadline = deadline_in(timeout)
    polls = LongPoll()
    while True:
        limit = deadline if deadline is not None else cfg._expiry_deadline(last)
        left = None if limit is None else limit - time.monotonic()
        unreachable = polls.unreachable_since is not None
        if left is not None and left <= 0 and polls.tried:
            raise _timeout_error(approval_id, last, timeout, unreachable)
        wait, poll_deadline = polls.next_wait(cfg, limit, left)
        started = time.monotonic()
        try:
            data = yield from poll(cfg, f"/approvals/{approval_id}", wait, poll_deadline)
        except PliuzTimeoutError:
            raise _timeout_error(approval_id, last, timeout, unreachable) from None
        except PliuzError as exc:
            delay = polls.delay_after(exc, limit)
            if left is not None and delay >= left and left > 0:
                if deadline is None:
                    raise
                yield Sleep(max(0.0, left))
                continue
            yield Sleep(delay)
            continue
        polls.reset()
        last = parse(Approval, data)
        if last.status != "pending":
            return last
        if time.monotonic() - started < min(wait, 1) / 2:
            yield Sleep(0.25)  # the server did not hold the request: don't spin


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


def claim(
    cfg: _BaseClient, approval_id: str, claim_id: str, deadline: float | None
) -> Flow[Approval]:
    data = yield from request(
        cfg, "POST", f"/approvals/{approval_id}/execution",
        json={"outcome": "started", "claim_id": claim_id}, retry=True, deadline=deadline,
    )  # fmt: skip
    return parse(Approval, data)


def report(
    cfg: _BaseClient, approval_id: str, body: dict[str, Any], deadline: float | None
) -> Flow[Approval]:
    # A report with its claim id is idempotent (a repeat is answered 200): safe to retry.
    data = yield from request(
        cfg, "POST", f"/approvals/{approval_id}/execution", json=body,
        retry=body.get("claim_id") is not None, deadline=deadline,
    )  # fmt: skip
    return parse(Approval, data)


def cancel(cfg: _BaseClient, approval_id: str, reason: str | None) -> Flow[Approval]:
    data = yield from request(
        cfg, "POST", f"/approvals/{approval_id}/cancel", json=drop_none({"reason": reason}),
        retry=False,
    )  # fmt: skip
    return parse(Approval, data)


def list_page(cfg: _BaseClient, filters: ListFilters) -> Flow[ApprovalList]:
    params = drop_none(dict(filters))
    data = yield from request(cfg, "GET", "/approvals", params=params, retry=True)
    return parse(ApprovalList, data)


def decide(cfg: _BaseClient, approval_id: str, body: dict[str, Any]) -> Flow[Approval]:
    data = yield from request(
        cfg, "POST", f"/approvals/{approval_id}/decision", json=body, retry=False
    )
    return parse(Approval, data)
