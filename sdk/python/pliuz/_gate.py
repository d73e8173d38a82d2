"""The gate itself, shared by :func:`pliuz.gated` and the framework adapters.

One gated call: redact → create (idempotent) → wait → check the outcome →
restore redacted values → claim the execution → run → report the outcome.

The claim is what makes the body run at most once: the server hands it to one
caller only (any other process attached to the same request gets 409
``execution_claimed`` and does not run the body). A request that was claimed
and never reported (the process died, the report could not be delivered) stays
``executing``: every later attempt is told "outcome unknown — check before
retrying" and never runs it again. The report is retried for
``client.report_timeout`` seconds; until it lands the outcome is kept in this
process (:func:`undelivered_reports`), and a report that cannot be delivered is
logged as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._retry import is_transient, retry_delay
from .errors import (
    PliuzAlreadyExecutedError,
    PliuzAPIError,
    PliuzArgumentsError,
    PliuzCancelledError,
    PliuzConflictError,
    PliuzDecisionError,
    PliuzError,
    PliuzExecutionExpiredError,
    PliuzExpiredError,
    PliuzOutcomeUnknownError,
    PliuzRejectedError,
    PliuzTimeoutError,
)
from .idempotency import idempotency_key
from .models import Approval
from .redaction import Redacted, redact, restore

if TYPE_CHECKING:
    from ._client import AsyncPliuzClient, PliuzClient

__all__ = ["PreparedCall", "prepare_call", "raise_for_outcome", "undelivered_reports"]

log = logging.getLogger("pliuz")

T = TypeVar("T")

OUTPUT_EXCERPT_CHARS = 500


@dataclass(frozen=True)
class PreparedCall:
    """Everything needed to ask for approval of one call."""

    tool_name: str
    args: dict[str, Any]
    redacted: Redacted
    idempotency_key: str
    request: dict[str, Any]


def prepare_call(
    tool_name: str,
    args: dict[str, Any],
    *,
    secret: str | None,
    policy: str | None = None,
    redact_paths: Sequence[str] = (),
    tool_schema: dict[str, Any] | None = None,
    call_id: str | None = None,
    session_id: str | None = None,
    originator: str | None = None,
    context_messages: list[Any] | None = None,
    client_metadata: dict[str, Any] | None = None,
    idempotency_key_override: str | None = None,
) -> PreparedCall:
    """Redact the arguments and build the create request and its idempotency key."""
    try:
        json.dumps(args)
    except (TypeError, ValueError) as exc:
        raise PliuzArgumentsError(
            f"arguments of {tool_name!r} are not JSON serializable: {exc}"
        ) from exc
    masked = redact(args, redact_paths)
    key = idempotency_key_override or idempotency_key(
        tool_name, args, session_id=session_id, call_id=call_id, secret=secret
    )
    metadata = dict(client_metadata or {})
    if masked.originals:
        metadata.setdefault("redacted_paths", masked.paths)
    request: dict[str, Any] = {
        "tool_name": tool_name,
        "tool_args": masked.args,
        "policy": policy,
        "tool_schema": tool_schema,
        "call_id": call_id,
        "session_id": session_id,
        "originator": originator,
        "context_messages": context_messages,
        "client_metadata": metadata or None,
        "idempotency_key": key,
    }
    return PreparedCall(tool_name, args, masked, key, request)


def raise_for_outcome(approval: Approval) -> None:
    """Raise the matching outcome error unless ``approval`` is ``approved``.

    ``rejected`` → :class:`~pliuz.PliuzRejectedError` (with ``reason``),
    ``expired`` → :class:`~pliuz.PliuzExpiredError`, ``cancelled`` →
    :class:`~pliuz.PliuzCancelledError`, ``executed`` →
    :class:`~pliuz.PliuzAlreadyExecutedError`, ``executing`` →
    :class:`~pliuz.PliuzOutcomeUnknownError`, ``pending`` →
    :class:`~pliuz.PliuzTimeoutError`.
    """
    status = approval.status
    name = approval.tool_name
    if status == "approved":
        return
    if status == "rejected":
        reason = approval.reason
        by = approval.decision.by if approval.decision else None
        raise PliuzRejectedError(
            f"{name} was rejected"
            + (f" by {by}" if by else "")
            + (f": {reason}" if reason else ""),
            reason=reason,
            approval=approval,
        )
    if status == "expired":
        raise PliuzExpiredError(
            f"the approval request for {name} expired before anyone decided", approval=approval
        )
    if status == "cancelled":
        reason = approval.reason
        raise PliuzCancelledError(
            f"the approval request for {name} was cancelled" + (f": {reason}" if reason else ""),
            approval=approval,
        )
    if status == "executing":
        raise _unknown(approval)
    if status == "executed":
        raise PliuzAlreadyExecutedError(
            f"{name} was already executed for this request ({approval.id}); not running it again",
            approval=approval,
        )
    raise PliuzTimeoutError(f"the approval request for {name} is still pending", approval=approval)


def _unknown(approval: Approval) -> PliuzOutcomeUnknownError:
    claim = approval.execution
    when = f" at {claim.claimed_at.isoformat()}" if claim and claim.claimed_at else ""
    return PliuzOutcomeUnknownError(
        f"{approval.tool_name} was already started for this request ({approval.id}){when} "
        "and its outcome was never reported: outcome unknown — check before retrying. "
        "It is not run again.",
        approval=approval,
    )


def final_args(approval: Approval, prepared: PreparedCall) -> dict[str, Any]:
    """The arguments to run with: approved ``final_args`` with redacted originals restored."""
    raise_for_outcome(approval)
    approved = approval.final_args if approval.final_args is not None else approval.tool_args
    return restore(approved, prepared.redacted)


def excerpt(value: Any, limit: int = OUTPUT_EXCERPT_CHARS) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _success_text(
    result: T, report_output: bool, report_excerpt: Callable[[T], str | None] | None
) -> str | None:
    if not report_output:
        return None
    if report_excerpt is not None:
        return report_excerpt(result)
    return excerpt(result)


def _describe_failure(exc: BaseException) -> str:
    text = getattr(exc, "report_text", None)  # set by adapters that already formatted it
    return excerpt(text if isinstance(text, str) else f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------
# One in-flight call per idempotency key and process: two concurrent identical
# calls would otherwise both see "approved" and both run. The second one waits,
# then re-attaches and sees "executed".
# ---------------------------------------------------------------------------

_guard = threading.Lock()
_thread_locks: dict[str, tuple[threading.Lock, int]] = {}
_async_locks: dict[tuple[int, str], tuple[asyncio.Lock, int]] = {}


@contextlib.contextmanager
def _key_lock_sync(key: str) -> Iterator[None]:
    with _guard:
        lock, users = _thread_locks.get(key, (threading.Lock(), 0))
        _thread_locks[key] = (lock, users + 1)
    try:
        with lock:
            yield
    finally:
        with _guard:
            lock, users = _thread_locks[key]
            if users <= 1:
                del _thread_locks[key]
            else:
                _thread_locks[key] = (lock, users - 1)


@contextlib.asynccontextmanager
async def _key_lock_async(key: str) -> AsyncIterator[None]:
    slot = (id(asyncio.get_running_loop()), key)
    with _guard:
        lock, users = _async_locks.get(slot, (asyncio.Lock(), 0))
        _async_locks[slot] = (lock, users + 1)
    try:
        async with lock:
            yield
    finally:
        with _guard:
            lock, users = _async_locks[slot]
            if users <= 1:
                del _async_locks[slot]
            else:
                _async_locks[slot] = (lock, users - 1)


# ---------------------------------------------------------------------------
# Claims and reports kept in this process
# ---------------------------------------------------------------------------


@dataclass
class _Report:
    """An execution outcome on its way to the server (kept until it lands)."""

    approval_id: str
    tool_name: str
    claim_id: str
    outcome: Literal["success", "error"]
    latency_ms: int
    output: str | None
    last_error: str | None = None


# approval id -> report not yet acknowledged by the server.
_undelivered: dict[str, _Report] = {}
# approval id -> claim id, for a body that paused (e.g. a LangGraph interrupt
# inside the tool) without finishing: its re-run in this process keeps the claim.
_held_claims: dict[str, str] = {}


def undelivered_reports() -> list[dict[str, Any]]:
    """Execution reports this process could not deliver (yet).

    Each is ``{"approval_id", "tool_name", "claim_id", "outcome", "latency_ms",
    "output_excerpt", "last_error"}``. The tool **did** run; until the report
    lands the server shows the request as ``executing`` (outcome unknown). A
    later gated call on the same request in this process re-sends it.
    """
    with _guard:
        reports = list(_undelivered.values())
    return [
        {"approval_id": r.approval_id, "tool_name": r.tool_name, "claim_id": r.claim_id,
         "outcome": r.outcome, "latency_ms": r.latency_ms, "output_excerpt": r.output,
         "last_error": r.last_error}
        for r in reports
    ]  # fmt: skip


def _kept_report(approval: Approval) -> _Report | None:
    claim_id = approval.execution.claim_id if approval.execution else None
    with _guard:
        report = _undelivered.get(approval.id)
    return report if report is not None and report.claim_id == claim_id else None


def _ran_here(report: _Report, approval: Approval) -> PliuzAlreadyExecutedError:
    pending = "" if report.last_error is None else " (its report is still undelivered)"
    return PliuzAlreadyExecutedError(
        f"{report.tool_name} already ran in this process for this request ({approval.id}), "
        f"outcome {report.outcome}{pending}; not running it again",
        approval=approval,
    )


def _args_and_claim(approval: Approval, prepared: PreparedCall) -> tuple[dict[str, Any], str]:
    """The arguments to run with and the claim id to claim with.

    Normally the request must be ``approved`` and a fresh claim id is used. A
    body of this process that paused without finishing (a LangGraph interrupt
    inside the tool) left its claim held: its re-run re-presents that claim.
    """
    claim = approval.execution.claim_id if approval.execution else None
    with _guard:
        held = _held_claims.get(approval.id)
        if held is not None and (approval.status != "executing" or held != claim):
            del _held_claims[approval.id]  # not (or no longer) ours
            held = None
    if held is not None:
        approved = approval.final_args if approval.final_args is not None else approval.tool_args
        return restore(approved, prepared.redacted), held
    return final_args(approval, prepared), _new_claim_id()


def _hold_unanswered_claim(approval: Approval, claim_id: str) -> None:
    # The claim got no answer: it may have landed. The body has not run, so a
    # retry of this call in this process re-presents it (the server answers 200
    # to its own claim) instead of finding it "outcome unknown".
    with _guard:
        _held_claims[approval.id] = claim_id


def _claim_refused(
    exc: PliuzConflictError, approval: Approval, fresh: Approval | None
) -> PliuzError:
    """What a refused claim means for the caller (the body does not run)."""
    seen = fresh or approval
    if exc.code == "execution_expired":
        return PliuzExecutionExpiredError(
            f"{approval.tool_name} was approved but not started in time: {exc.detail}",
            approval=seen,
        )
    if exc.code == "execution_claimed":
        if fresh is not None and fresh.status == "executed":
            try:
                raise_for_outcome(fresh)
            except PliuzDecisionError as outcome:
                return outcome
        return _unknown(seen)
    if fresh is not None and fresh.status != "approved":
        try:
            raise_for_outcome(fresh)
        except PliuzDecisionError as outcome:
            return outcome
    return exc


def _report_failed(report: _Report, exc: PliuzError, seconds: float) -> None:
    report.last_error = str(exc)
    log.error(
        "pliuz: the execution report of %s (approval %s, claim %s) could not be delivered "
        "within %gs: %s. The tool DID run (outcome %s); until the report lands the server "
        "shows the call as 'executing' (outcome unknown). The outcome is kept in this "
        "process (pliuz.undelivered_reports()).",
        report.tool_name, report.approval_id, report.claim_id, seconds, exc, report.outcome,
    )  # fmt: skip


def _give_up(exc: PliuzError, left: float) -> bool:
    # A refusal (4xx) will not change by retrying; time's up ends the rest.
    return left <= 0 or (isinstance(exc, PliuzAPIError) and not is_transient(exc))


def _left(deadline: float | None, floor: float = 0.0) -> float | None:
    return None if deadline is None else max(floor, deadline - time.monotonic())


#: The claim always gets at least this long, even when a decision arrived at
#: the very end of ``timeout_s``: a claim cut off half-way would leave the call
#: "outcome unknown" although the tool never ran.
CLAIM_MIN_S = 1.0


# ---------------------------------------------------------------------------
# Sync flow
# ---------------------------------------------------------------------------


def run_gated_sync(
    client: PliuzClient,
    prepared: PreparedCall,
    execute: Callable[[dict[str, Any]], T],
    *,
    timeout_s: float | None,
    cancel_on_timeout: bool = False,
    report_output: bool = True,
    report_excerpt: Callable[[T], str | None] | None = None,
    unreported: tuple[type[BaseException], ...] = (),
) -> T:
    with _key_lock_sync(prepared.idempotency_key):
        return _run_gated_sync(
            client, prepared, execute, timeout_s=timeout_s,
            cancel_on_timeout=cancel_on_timeout, report_output=report_output,
            report_excerpt=report_excerpt, unreported=unreported,
        )  # fmt: skip


def _run_gated_sync(
    client: PliuzClient,
    prepared: PreparedCall,
    execute: Callable[[dict[str, Any]], T],
    *,
    timeout_s: float | None,
    cancel_on_timeout: bool,
    report_output: bool,
    report_excerpt: Callable[[T], str | None] | None,
    unreported: tuple[type[BaseException], ...],
) -> T:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    approval = client.create_approval(**prepared.request, timeout=_left(deadline))
    log.debug(
        "pliuz: %s approval %s is %s (replay=%s)",
        prepared.tool_name,
        approval.id,
        approval.status,
        approval.is_replay,
    )
    if approval.status == "pending":
        try:
            approval = client.wait_for_decision(approval, timeout=_left(deadline))
        except PliuzTimeoutError:
            if cancel_on_timeout:
                _cancel_quietly_sync(client, approval.id)
            raise
    if approval.status == "executing" and (kept := _kept_report(approval)) is not None:
        _deliver_sync(client, kept)
        raise _ran_here(kept, approval)
    args, claim_id = _args_and_claim(approval, prepared)
    _claim_sync(client, approval, claim_id, deadline)
    started = time.monotonic()

    def finish(outcome: Literal["success", "error"], ms: int, output: str | None) -> None:
        _finish_sync(
            client, _Report(approval.id, prepared.tool_name, claim_id, outcome, ms, output)
        )

    try:
        result = execute(args)
    except PliuzArgumentsError as exc:
        finish("error", 0, f"not run: {exc}")
        raise
    except BaseException as exc:
        if isinstance(exc, unreported):
            with _guard:
                _held_claims[approval.id] = claim_id
        else:
            finish("error", _ms(started), _describe_failure(exc))
        raise
    finish("success", _ms(started), _success_text(result, report_output, report_excerpt))
    return result


def _claim_sync(
    client: PliuzClient, approval: Approval, claim_id: str, deadline: float | None
) -> Approval:
    try:
        return client.claim_execution(
            approval.id, claim_id=claim_id, timeout=_left(deadline, CLAIM_MIN_S)
        )
    except PliuzConflictError as exc:
        try:
            fresh: Approval | None = client.get_approval(
                approval.id, timeout=_left(deadline, CLAIM_MIN_S)
            )
        except PliuzError:
            fresh = None
        raise _claim_refused(exc, approval, fresh) from None
    except PliuzError:
        _hold_unanswered_claim(approval, claim_id)
        raise


def _finish_sync(client: PliuzClient, report: _Report) -> None:
    with _guard:
        _held_claims.pop(report.approval_id, None)
        _undelivered[report.approval_id] = report  # kept until the server has it
    _deliver_sync(client, report)


def _deliver_sync(client: PliuzClient, report: _Report) -> None:
    limit = client.report_timeout
    deadline = time.monotonic() + limit
    attempt = 0
    while True:
        try:
            client.report_execution(
                report.approval_id, report.outcome, claim_id=report.claim_id,
                latency_ms=report.latency_ms, output_excerpt=report.output,
                timeout=max(0.001, deadline - time.monotonic()),
            )  # fmt: skip
        except PliuzError as exc:
            left = deadline - time.monotonic()
            if _give_up(exc, left):
                _report_failed(report, exc, limit)
                return
            time.sleep(min(retry_delay(exc, attempt), left))
            attempt += 1
            continue
        with _guard:
            _undelivered.pop(report.approval_id, None)
        return


def _cancel_quietly_sync(client: PliuzClient, approval_id: str) -> None:
    try:
        client.cancel_approval(approval_id, reason="client timeout")
    except PliuzError as exc:
        log.warning("pliuz: could not cancel %s after timeout: %s", approval_id, exc)


# ---------------------------------------------------------------------------
# Async flow
# ---------------------------------------------------------------------------


async def run_gated_async(
    client: AsyncPliuzClient,
    prepared: PreparedCall,
    execute: Callable[[dict[str, Any]], Awaitable[T]],
    *,
    timeout_s: float | None,
    cancel_on_timeout: bool = False,
    report_output: bool = True,
    report_excerpt: Callable[[T], str | None] | None = None,
    unreported: tuple[type[BaseException], ...] = (),
    on_pending: Callable[[Approval], Awaitable[None] | None] | None = None,
) -> T:
    async with _key_lock_async(prepared.idempotency_key):
        return await _run_gated_async(
            client, prepared, execute, timeout_s=timeout_s,
            cancel_on_timeout=cancel_on_timeout, report_output=report_output,
            report_excerpt=report_excerpt, unreported=unreported, on_pending=on_pending,
        )  # fmt: skip


async def _run_gated_async(
    client: AsyncPliuzClient,
    prepared: PreparedCall,
    execute: Callable[[dict[str, Any]], Awaitable[T]],
    *,
    timeout_s: float | None,
    cancel_on_timeout: bool,
    report_output: bool,
    report_excerpt: Callable[[T], str | None] | None,
    unreported: tuple[type[BaseException], ...],
    on_pending: Callable[[Approval], Awaitable[None] | None] | None = None,
) -> T:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    approval = await client.create_approval(**prepared.request, timeout=_left(deadline))
    log.debug(
        "pliuz: %s approval %s is %s (replay=%s)",
        prepared.tool_name,
        approval.id,
        approval.status,
        approval.is_replay,
    )
    if approval.status == "pending":
        if on_pending is not None:
            announced = on_pending(approval)
            if announced is not None:
                await announced
        try:
            approval = await client.wait_for_decision(approval, timeout=_left(deadline))
        except PliuzTimeoutError:
            if cancel_on_timeout:
                await _cancel_quietly_async(client, approval.id)
            raise
        except asyncio.CancelledError:
            # The caller gave up on the call (a cancelled stream, a tool timeout): withdraw the
            # request so nobody approves a call that will never run.
            await _cancel_after_cancellation(client, approval.id)
            raise
    if approval.status == "executing" and (kept := _kept_report(approval)) is not None:
        await _deliver_async(client, kept)
        raise _ran_here(kept, approval)
    args, claim_id = _args_and_claim(approval, prepared)
    await _claim_async(client, approval, claim_id, deadline)
    started = time.monotonic()

    async def finish(outcome: Literal["success", "error"], ms: int, output: str | None) -> None:
        report = _Report(approval.id, prepared.tool_name, claim_id, outcome, ms, output)
        await _finish_async(client, report)

    try:
        result = await execute(args)
    except PliuzArgumentsError as exc:
        await finish("error", 0, f"not run: {exc}")
        raise
    except BaseException as exc:
        if isinstance(exc, unreported):
            with _guard:
                _held_claims[approval.id] = claim_id
        else:
            await finish("error", _ms(started), _describe_failure(exc))
        raise
    await finish("success", _ms(started), _success_text(result, report_output, report_excerpt))
    return result


async def _claim_async(
    client: AsyncPliuzClient, approval: Approval, claim_id: str, deadline: float | None
) -> Approval:
    try:
        return await client.claim_execution(
            approval.id, claim_id=claim_id, timeout=_left(deadline, CLAIM_MIN_S)
        )
    except PliuzConflictError as exc:
        try:
            fresh: Approval | None = await client.get_approval(
                approval.id, timeout=_left(deadline, CLAIM_MIN_S)
            )
        except PliuzError:
            fresh = None
        raise _claim_refused(exc, approval, fresh) from None
    except PliuzError:
        _hold_unanswered_claim(approval, claim_id)
        raise


async def _finish_async(client: AsyncPliuzClient, report: _Report) -> None:
    with _guard:
        _held_claims.pop(report.approval_id, None)
        _undelivered[report.approval_id] = report
    await _deliver_async(client, report)


async def _deliver_async(client: AsyncPliuzClient, report: _Report) -> None:
    limit = client.report_timeout
    deadline = time.monotonic() + limit
    attempt = 0
    while True:
        try:
            await client.report_execution(
                report.approval_id, report.outcome, claim_id=report.claim_id,
                latency_ms=report.latency_ms, output_excerpt=report.output,
                timeout=max(0.001, deadline - time.monotonic()),
            )  # fmt: skip
        except PliuzError as exc:
            left = deadline - time.monotonic()
            if _give_up(exc, left):
                _report_failed(report, exc, limit)
                return
            await asyncio.sleep(min(retry_delay(exc, attempt), left))
            attempt += 1
            continue
        with _guard:
            _undelivered.pop(report.approval_id, None)
        return


async def _cancel_quietly_async(client: AsyncPliuzClient, approval_id: str) -> None:
    try:
        await client.cancel_approval(approval_id, reason="client timeout")
    except PliuzError as exc:
        log.warning("pliuz: could not cancel %s after timeout: %s", approval_id, exc)


def _new_claim_id() -> str:
    from ._client import new_claim_id  # the client module imports this one

    return new_claim_id()


#: Bound on the clean-up request sent while the caller's task is being cancelled.
CANCEL_ON_CANCELLATION_TIMEOUT_S = 5.0


async def _cancel_after_cancellation(client: AsyncPliuzClient, approval_id: str) -> None:
    task = asyncio.ensure_future(
        client.cancel_approval(
            approval_id, reason="the agent cancelled the tool call while it waited for approval"
        )
    )
    try:
        await asyncio.wait_for(asyncio.shield(task), CANCEL_ON_CANCELLATION_TIMEOUT_S)
    except (PliuzError, asyncio.TimeoutError, asyncio.CancelledError) as exc:
        log.warning("pliuz: could not cancel %s after the call was cancelled: %r", approval_id, exc)


def _ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))
