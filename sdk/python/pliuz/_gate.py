"""The gate itself, shared by :func:`pliuz.gated` and the framework adapters.

One gated call: redact → create (idempotent) → wait → check the outcome →
restore redacted values → run → report the execution.
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

from .errors import (
    PliuzAlreadyExecutedError,
    PliuzArgumentsError,
    PliuzCancelledError,
    PliuzError,
    PliuzExpiredError,
    PliuzRejectedError,
    PliuzTimeoutError,
)
from .idempotency import idempotency_key
from .models import Approval
from .redaction import Redacted, redact, restore

if TYPE_CHECKING:
    from ._client import AsyncPliuzClient, PliuzClient

__all__ = ["PreparedCall", "prepare_call", "raise_for_outcome"]

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
    :class:`~pliuz.PliuzAlreadyExecutedError`, ``pending`` →
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
    if status == "executed":
        raise PliuzAlreadyExecutedError(
            f"{name} was already executed for this request ({approval.id}); not running it again",
            approval=approval,
        )
    raise PliuzTimeoutError(f"the approval request for {name} is still pending", approval=approval)


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
    approval = client.create_approval(**prepared.request)
    log.debug(
        "pliuz: %s approval %s is %s (replay=%s)",
        prepared.tool_name,
        approval.id,
        approval.status,
        approval.is_replay,
    )
    if approval.status == "pending":
        try:
            approval = client.wait_for_decision(approval, timeout=timeout_s)
        except PliuzTimeoutError:
            if cancel_on_timeout:
                _cancel_quietly_sync(client, approval.id)
            raise
    args = final_args(approval, prepared)
    started = time.monotonic()
    try:
        result = execute(args)
    except PliuzArgumentsError as exc:
        _report_sync(client, approval.id, "error", 0, f"not run: {exc}")
        raise
    except BaseException as exc:
        if not isinstance(exc, unreported):
            _report_sync(client, approval.id, "error", _ms(started), _describe_failure(exc))
        raise
    _report_sync(
        client, approval.id, "success", _ms(started),
        _success_text(result, report_output, report_excerpt),
    )  # fmt: skip
    return result


def _report_sync(
    client: PliuzClient,
    approval_id: str,
    outcome: Literal["success", "error"],
    latency_ms: int,
    output: str | None,
) -> None:
    try:
        client.report_execution(approval_id, outcome, latency_ms=latency_ms, output_excerpt=output)
    except PliuzError as exc:  # the tool already ran: never turn that into a failure
        log.warning("pliuz: could not report execution of %s: %s", approval_id, exc)


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
    approval = await client.create_approval(**prepared.request)
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
            approval = await client.wait_for_decision(approval, timeout=timeout_s)
        except PliuzTimeoutError:
            if cancel_on_timeout:
                await _cancel_quietly_async(client, approval.id)
            raise
        except asyncio.CancelledError:
            # The caller gave up on the call (a cancelled stream, a tool timeout): withdraw the
            # request so nobody approves a call that will never run.
            await _cancel_after_cancellation(client, approval.id)
            raise
    args = final_args(approval, prepared)
    started = time.monotonic()
    try:
        result = await execute(args)
    except PliuzArgumentsError as exc:
        await _report_async(client, approval.id, "error", 0, f"not run: {exc}")
        raise
    except BaseException as exc:
        if not isinstance(exc, unreported):
            await _report_async(client, approval.id, "error", _ms(started), _describe_failure(exc))
        raise
    text = _success_text(result, report_output, report_excerpt)
    await _report_async(client, approval.id, "success", _ms(started), text)
    return result


async def _report_async(
    client: AsyncPliuzClient,
    approval_id: str,
    outcome: Literal["success", "error"],
    latency_ms: int,
    output: str | None,
) -> None:
    try:
        await client.report_execution(
            approval_id, outcome, latency_ms=latency_ms, output_excerpt=output
        )
    except PliuzError as exc:
        log.warning("pliuz: could not report execution of %s: %s", approval_id, exc)


async def _cancel_quietly_async(client: AsyncPliuzClient, approval_id: str) -> None:
    try:
        await client.cancel_approval(approval_id, reason="client timeout")
    except PliuzError as exc:
        log.warning("pliuz: could not cancel %s after timeout: %s", approval_id, exc)


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
