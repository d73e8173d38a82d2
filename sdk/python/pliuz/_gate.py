"""The gate itself, shared by :func:`pliuz.gated` and the framework adapters.

One gated call: redact → create (idempotent) → wait → check the outcome →
restore redacted values → claim the execution → run → report the outcome.

The create carries the call's claim id: when the policy approves the request at
once, the server claims the execution for it in the same commit and answers
``executing`` with that claim, and the separate claim request is skipped (one
durable write before the body runs instead of two).

The claim is what makes the body run at most once: the server hands it to one
caller only (any other process attached to the same request gets 409
``execution_claimed`` and does not run the body). A request that was claimed
and never reported (the process died, the report could not be delivered) stays
``executing``: every later attempt is told "outcome unknown — check before
retrying" and never runs it again. The report does not hold up the caller:
it is queued and retried in the background for ``client.report_timeout``
seconds (:mod:`pliuz._reports`); until it lands the outcome is kept in this
process (:func:`undelivered_reports`), and a report that cannot be delivered is
logged as an error.

The flow is written once, as a generator of steps (:mod:`pliuz._flow`); the
sync and async clients run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from . import _flow
from ._flow import Announce, Flow, QueueReport, RequestOptions, RunBody, Shielded, create_body
from ._reports import Report, deliver, delivered_here, keep, kept_report, undelivered_reports
from .errors import (
    PliuzAlreadyExecutedError,
    PliuzArgumentsError,
    PliuzCancelledError,
    PliuzConfigurationError,
    PliuzConflictError,
    PliuzDecisionError,
    PliuzError,
    PliuzExecutionExpiredError,
    PliuzExpiredError,
    PliuzOutcomeUnknownError,
    PliuzRejectedError,
    PliuzRespondedError,
    PliuzTimeoutError,
)
from .idempotency import idempotency_key
from .models import Approval
from .redaction import Redacted, redact, restore

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._client import AsyncPliuzClient, OnPending, PliuzClient, _BaseClient

__all__ = [
    "PreparedCall",
    "ask",
    "gate",
    "prepare_call",
    "raise_for_outcome",
    "reconcile",
    "undelivered_reports",
    "warn_misconfigured",
]

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
    #: The body of ``POST /api/v1/approvals``.
    body: dict[str, Any]


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
    options = RequestOptions(
        policy=policy, tool_schema=tool_schema, call_id=call_id, session_id=session_id,
        originator=originator, context_messages=context_messages,
        client_metadata=metadata or None, idempotency_key=key,
    )  # fmt: skip
    return PreparedCall(tool_name, args, masked, key, create_body(tool_name, masked.args, options))


def warn_misconfigured(tool_name: str, exc: BaseException) -> None:
    """Log a configuration error of a gated call, once per exception, at WARNING.

    A wrong key or policy name is the developer's mistake, not a human's
    decision: it must be seen even when the model is only told "not run".
    Python's last-resort handler prints it on stderr when logging is not set up.
    """
    if not isinstance(exc, PliuzConfigurationError) or getattr(exc, "_pliuz_warned", False):
        return
    exc._pliuz_warned = True  # type: ignore[attr-defined]
    log.warning(
        "pliuz: %s was NOT run because Pliuz is misconfigured (nobody was asked): %s",
        tool_name,
        exc,
    )


def raise_for_outcome(approval: Approval) -> None:
    """Raise the matching outcome error unless ``approval`` is ``approved``.

    ``rejected`` → :class:`~pliuz.PliuzRejectedError` (with ``reason``),
    ``responded`` → :class:`~pliuz.PliuzRespondedError` (with ``response``),
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
    if status == "responded":
        by = approval.decision.by if approval.decision else None
        raise PliuzRespondedError(
            f"{name} was answered" + (f" by {by}" if by else "") + " instead of being run",
            response=approval.reason or "",
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
    return _approved_args(approval, prepared)


def _approved_args(approval: Approval, prepared: PreparedCall) -> dict[str, Any]:
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
# slot -> (lock, number of callers holding or waiting for it)
_key_locks: dict[Hashable, tuple[Any, int]] = {}


def _enter_slot(slot: Hashable, new_lock: Callable[[], Any]) -> Any:
    with _guard:
        lock, users = _key_locks.get(slot) or (new_lock(), 0)
        _key_locks[slot] = (lock, users + 1)
    return lock


def _leave_slot(slot: Hashable) -> None:
    with _guard:
        lock, users = _key_locks[slot]
        if users <= 1:
            del _key_locks[slot]
        else:
            _key_locks[slot] = (lock, users - 1)


@contextlib.contextmanager
def _key_lock_sync(key: str) -> Iterator[None]:
    lock: threading.Lock = _enter_slot(key, threading.Lock)
    try:
        with lock:
            yield
    finally:
        _leave_slot(key)


@contextlib.asynccontextmanager
async def _key_lock_async(key: str) -> AsyncIterator[None]:
    slot = (id(asyncio.get_running_loop()), key)  # an asyncio.Lock belongs to one loop
    lock: asyncio.Lock = _enter_slot(slot, asyncio.Lock)
    try:
        async with lock:
            yield
    finally:
        _leave_slot(slot)


# ---------------------------------------------------------------------------
# Claims held by this process
# ---------------------------------------------------------------------------

# approval id -> claim id, for a body that paused (e.g. a LangGraph interrupt
# inside the tool) without finishing: its re-run in this process keeps the claim.
_held_claims: dict[str, str] = {}


def _ran_here(report: Report, approval: Approval) -> PliuzAlreadyExecutedError:
    pending = "" if report.last_error is None else " (its report is still undelivered)"
    return PliuzAlreadyExecutedError(
        f"{report.tool_name} already ran in this process for this request ({approval.id}), "
        f"outcome {report.outcome}{pending}; not running it again",
        approval=approval,
    )


def _args_and_claim(
    approval: Approval, prepared: PreparedCall, claim_id: str
) -> tuple[dict[str, Any], str]:
    """The arguments to run with and the claim id to claim with.

    Normally the request must be ``approved`` and this call's ``claim_id`` is used. A
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
        return _approved_args(approval, prepared), held
    return final_args(approval, prepared), claim_id


def _claimed_for(approval: Approval, claim_id: str) -> bool:
    """Whether the server granted this call the execution with its create."""
    execution = approval.execution
    return (
        approval.status == "executing" and execution is not None and execution.claim_id == claim_id
    )


# idempotency key -> claim id sent with a create that got no answer: it may have
# landed and claimed, so the next call of this process with that key sends the same id
# and finds its own claim instead of "outcome unknown".
_unanswered_creates: dict[str, str] = {}


def _create_claim_id(key: str) -> str:
    with _guard:
        return _unanswered_creates.pop(key, None) or _new_claim_id()


def _unanswered_creates_put(key: str, claim_id: str) -> None:
    with _guard:
        _unanswered_creates[key] = claim_id


def _hold_claim(approval_id: str, claim_id: str) -> None:
    with _guard:
        _held_claims[approval_id] = claim_id


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


def _left(deadline: float | None, floor: float = 0.0) -> float | None:
    return None if deadline is None else max(floor, deadline - time.monotonic())


#: The claim always gets at least this long, even when a decision arrived at
#: the very end of ``timeout_s``: a claim cut off half-way would leave the call
#: "outcome unknown" although the tool never ran.
CLAIM_MIN_S = 1.0

#: Bound on the clean-up request sent while the caller's task is being cancelled.
CANCEL_ON_CANCELLATION_TIMEOUT_S = 5.0


# ---------------------------------------------------------------------------
# The gated call, once
# ---------------------------------------------------------------------------


class GateOptions(TypedDict, total=False):
    """How one gated call behaves (see :func:`pliuz.gated`)."""

    timeout_s: float | None
    cancel_on_timeout: bool
    report_output: bool
    report_excerpt: Callable[[Any], str | None] | None
    #: Exceptions of the body that mean "paused, not finished" (a LangGraph
    #: interrupt): no report is sent and the claim stays held for the re-run.
    unreported: tuple[type[BaseException], ...]
    #: Exceptions of the body that mean "it may have run, nobody knows": no report is
    #: sent and the claim is not held, so the request stays ``executing`` (outcome
    #: unknown) and nothing runs it again (the Claude Agent SDK adapter, whose tools
    #: run outside the body).
    unknown_outcome: tuple[type[BaseException], ...]


def gate(
    cfg: _BaseClient,
    prepared: PreparedCall,
    *,
    timeout_s: float | None = None,
    cancel_on_timeout: bool = False,
    report_output: bool = True,
    report_excerpt: Callable[[Any], str | None] | None = None,
    unreported: tuple[type[BaseException], ...] = (),
    unknown_outcome: tuple[type[BaseException], ...] = (),
) -> Flow[Any]:
    """create (claiming if approved at once) → wait → check the outcome → claim → run the
    body → queue the report."""
    deadline = _flow.deadline_in(timeout_s)
    claim_id = _create_claim_id(prepared.idempotency_key)
    try:
        approval = yield from _flow.create(cfg, {**prepared.body, "claim_id": claim_id}, deadline)
    except BaseException:
        _unanswered_creates_put(prepared.idempotency_key, claim_id)
        raise
    log.debug(
        "pliuz: %s approval %s is %s (replay=%s)",
        prepared.tool_name, approval.id, approval.status, approval.is_replay,
    )  # fmt: skip

    def finished(outcome: Literal["success", "error"], ms: int, output: str | None) -> QueueReport:
        report = Report(approval.id, prepared.tool_name, claim_id, outcome, ms, output)
        with _guard:
            _held_claims.pop(approval.id, None)
        keep(report)  # kept until the server has it
        return QueueReport(report)

    if _claimed_for(approval, claim_id):
        try:
            args = _approved_args(approval, prepared)
        except PliuzError as exc:
            # The server holds this call's claim: say the body never ran, or the
            # request would stay "outcome unknown".
            yield finished("error", 0, f"not run: {exc}")
            raise
    else:
        if approval.status == "pending":
            yield Announce(approval)
            approval = yield from _await_decision(cfg, approval, deadline, cancel_on_timeout)
        approval = yield from reconcile(cfg, approval)
        args, claim_id = _args_and_claim(approval, prepared, claim_id)
        yield from _claim(cfg, approval, claim_id, deadline)
    started = time.monotonic()

    try:
        result = yield RunBody(args)
    except GeneratorExit:
        raise
    except PliuzArgumentsError as exc:
        yield finished("error", 0, f"not run: {exc}")
        raise
    except BaseException as exc:
        if isinstance(exc, unreported):
            _hold_claim(approval.id, claim_id)
        elif isinstance(exc, unknown_outcome):
            with _guard:
                _held_claims.pop(approval.id, None)  # a re-presented claim must not re-run it
        else:
            yield finished("error", _ms(started), _describe_failure(exc))
        raise
    yield finished("success", _ms(started), _success_text(result, report_output, report_excerpt))
    return result


def reconcile(cfg: _BaseClient, approval: Approval) -> Flow[Approval]:
    """An ``executing`` request whose tool ran in this process, its report on the way:
    deliver the report now and raise :class:`~pliuz.PliuzAlreadyExecutedError` (run
    nothing), or, if it landed meanwhile, return the request as the server has it now."""
    if approval.status != "executing":
        return approval
    claimed = approval.execution.claim_id if approval.execution else None
    kept = kept_report(approval.id, claimed)
    if kept is not None:
        delivered = yield from deliver(cfg, kept, time.monotonic() + cfg.report_timeout)
        # The state after the report, as seen by this call (which re-attached: a replay).
        seen = approval if delivered is None else delivered.model_copy(update={"is_replay": True})
        raise _ran_here(kept, seen)
    if delivered_here(approval.id, claimed):
        fresh = yield from _flow.get(cfg, approval.id, None, None)
        return fresh.model_copy(update={"is_replay": approval.is_replay})
    return approval


def _await_decision(
    cfg: _BaseClient, approval: Approval, deadline: float | None, cancel_on_timeout: bool
) -> Flow[Approval]:
    try:
        return (yield from _flow.wait_for_decision(cfg, approval, _left(deadline)))
    except PliuzTimeoutError:
        if cancel_on_timeout:
            cancel = _flow.cancel(cfg, approval.id, "client timeout")
            yield Shielded(cancel, cfg.timeout, f"cancel {approval.id} after timeout")
        raise
    except asyncio.CancelledError:
        # The caller gave up on the call (a cancelled stream, a tool timeout): withdraw the
        # request so nobody approves a call that will never run.
        why = "the agent cancelled the tool call while it waited for approval"
        yield Shielded(
            _flow.cancel(cfg, approval.id, why), CANCEL_ON_CANCELLATION_TIMEOUT_S,
            f"cancel {approval.id} after the call was cancelled",
        )  # fmt: skip
        raise


def _claim(
    cfg: _BaseClient, approval: Approval, claim_id: str, deadline: float | None
) -> Flow[Approval]:
    at_least = _flow.deadline_in(_left(deadline, CLAIM_MIN_S))
    try:
        return (yield from _flow.claim(cfg, approval.id, claim_id, at_least))
    except PliuzConflictError as exc:
        try:
            fresh: Approval | None = yield from _flow.get(cfg, approval.id, None, at_least)
        except PliuzError:
            fresh = None
        raise _claim_refused(exc, approval, fresh) from None
    except PliuzError:
        # The claim got no answer: it may have landed. The body has not run, so a
        # retry of this call in this process re-presents it (the server answers 200
        # to its own claim) instead of finding it "outcome unknown".
        _hold_claim(approval.id, claim_id)
        raise


def ask(cfg: _BaseClient, prepared: PreparedCall) -> Flow[Approval]:
    """Create the request of ``prepared`` (or re-attach to it), nothing more."""
    return _flow.create(cfg, prepared.body, None)


def run_gated_sync(
    client: PliuzClient,
    prepared: PreparedCall,
    execute: Callable[[dict[str, Any]], T],
    **options: Unpack[GateOptions],
) -> T:
    """Run one gated call with a blocking client."""
    with _key_lock_sync(prepared.idempotency_key):
        result: T = client._drive(gate(client, prepared, **options), execute)
        return result


async def run_gated_async(
    client: AsyncPliuzClient,
    prepared: PreparedCall,
    execute: Callable[[dict[str, Any]], Awaitable[T]],
    *,
    on_pending: OnPending | None = None,
    **options: Unpack[GateOptions],
) -> T:
    """Run one gated call on the running event loop (``on_pending``: told when it waits)."""
    async with _key_lock_async(prepared.idempotency_key):
        result: T = await client._drive(gate(client, prepared, **options), execute, on_pending)
        return result


def _new_claim_id() -> str:
    from ._client import new_claim_id  # the client module imports this one

    return new_claim_id()


def _ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))
