"""Execution reports: kept in this process until the server has them, sent in the background.

A gated tool's outcome is reported after it ran. The caller does not wait for
that second durable write: the report is queued here and a background thread
delivers it, retried with the client's retry policy for ``report_timeout``
seconds. Until it lands the outcome is kept in :func:`undelivered_reports` and
the server shows the request as ``executing`` (claimed, outcome unknown), so a
report that never arrives (the process was killed first) is visible there, and
nobody runs the call again. Queued reports are flushed by
:meth:`PliuzClient.close` / :meth:`AsyncPliuzClient.aclose`,
:func:`flush_reports` and at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._flow import Flow, Sleep, execution_body, report
from ._retry import is_transient, retry_delay
from .errors import PliuzAPIError, PliuzError
from .models import Approval

if TYPE_CHECKING:
    from ._client import PliuzClient, _BaseClient

__all__ = ["Report", "flush_reports", "undelivered_reports"]

log = logging.getLogger("pliuz")


@dataclass
class Report:
    """An execution outcome on its way to the server (kept until it lands)."""

    approval_id: str
    tool_name: str
    claim_id: str
    outcome: Literal["success", "error"]
    latency_ms: int
    output: str | None
    last_error: str | None = None


_lock = threading.Lock()
# approval id -> report not yet acknowledged by the server.
_undelivered: dict[str, Report] = {}
# approval id -> claim id of the reports this process delivered last (bounded): a call
# that re-attached while one was on its way saw "executing" and must look again.
_delivered: collections.OrderedDict[str, str] = collections.OrderedDict()
DELIVERED_REMEMBERED = 4096


def delivered_here(approval_id: str, claim_id: str | None) -> bool:
    with _lock:
        return claim_id is not None and _delivered.get(approval_id) == claim_id


def keep(report: Report) -> None:
    with _lock:
        _undelivered[report.approval_id] = report


def kept_report(approval_id: str, claim_id: str | None) -> Report | None:
    """The report this process still holds for this claim, if any."""
    with _lock:
        kept = _undelivered.get(approval_id)
    return kept if kept is not None and kept.claim_id == claim_id else None


def undelivered_reports() -> list[dict[str, Any]]:
    """Execution reports this process has not delivered (yet).

    Each is ``{"approval_id", "tool_name", "claim_id", "outcome", "latency_ms",
    "output_excerpt", "last_error"}``. The tool **did** run; until the report
    lands the server shows the request as ``executing`` (outcome unknown). A
    report still being sent in the background is listed with ``last_error``
    ``None``; one that could not be delivered within ``report_timeout`` has
    the last error. A later gated call on the same request in this process
    re-sends it.
    """
    with _lock:
        reports = list(_undelivered.values())
    return [
        {"approval_id": r.approval_id, "tool_name": r.tool_name, "claim_id": r.claim_id,
         "outcome": r.outcome, "latency_ms": r.latency_ms, "output_excerpt": r.output,
         "last_error": r.last_error}
        for r in reports
    ]  # fmt: skip


def deliver(cfg: _BaseClient, kept: Report, deadline: float) -> Flow[Approval | None]:
    """Send one report until the server has it or ``deadline`` passes (then log it).

    Returns the server's answer (the ``executed`` approval), ``None`` if it was not delivered.
    """
    body = execution_body(
        kept.outcome,
        {"claim_id": kept.claim_id, "latency_ms": kept.latency_ms, "output_excerpt": kept.output},
    )
    attempt = 0
    while True:
        try:
            answer = yield from report(
                cfg, kept.approval_id, body, max(deadline, time.monotonic() + 0.001)
            )
        except PliuzError as exc:
            left = deadline - time.monotonic()
            # A refusal (4xx) will not change by retrying; time's up ends the rest.
            if left <= 0 or (isinstance(exc, PliuzAPIError) and not is_transient(exc)):
                _failed(kept, exc, cfg.report_timeout)
                return None
            yield Sleep(min(retry_delay(exc, attempt), left))
            attempt += 1
            continue
        with _lock:
            if _undelivered.get(kept.approval_id) is kept:
                del _undelivered[kept.approval_id]
            _delivered[kept.approval_id] = kept.claim_id
            if len(_delivered) > DELIVERED_REMEMBERED:
                _delivered.popitem(last=False)
        return answer


def _failed(kept: Report, exc: PliuzError, seconds: float) -> None:
    undeliverable(kept, f"within {seconds:g}s: {exc}")


def undeliverable(kept: Report, why: str) -> None:
    """Log a report that will not be sent (again) by this process; it stays kept."""
    kept.last_error = why
    log.error(
        "pliuz: the execution report of %s (approval %s, claim %s) could not be delivered "
        "%s. The tool DID run (outcome %s); until the report lands the server "
        "shows the call as 'executing' (outcome unknown). The outcome is kept in this "
        "process (pliuz.undelivered_reports()).",
        kept.tool_name, kept.approval_id, kept.claim_id, why, kept.outcome,
    )  # fmt: skip


#: Reports are delivered by up to this many threads, so that reports to a server that
#: does not answer (each retried for its report_timeout) do not hold up the others.
MAX_SENDERS = 8


class _Sender:
    """Background threads delivering queued reports, each with its own deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[PliuzClient, Report, float, int]] = collections.deque()
        # origin (id of the client the gated call used) -> reports queued or in flight
        self._pending: collections.Counter[int] = collections.Counter()
        self._threads = 0
        self._idle = 0

    def begin(self, origin: int) -> None:
        with self._cond:
            self._pending[origin] += 1

    def end(self, origin: int) -> None:
        with self._cond:
            self._pending[origin] -= 1
            if self._pending[origin] <= 0:
                del self._pending[origin]
            self._cond.notify_all()

    def submit(self, sender: PliuzClient, kept: Report, origin: int) -> None:
        deadline = time.monotonic() + sender.report_timeout
        with self._cond:
            self._queue.append((sender, kept, deadline, origin))
            self._pending[origin] += 1
            if self._idle == 0 and self._threads < MAX_SENDERS:
                # Daemons, so a hung server never blocks exit; atexit flushes the queue.
                threading.Thread(target=self._run, name="pliuz-reports", daemon=True).start()
                self._threads += 1
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                while not self._queue:
                    self._cond.wait()
                self._idle -= 1
                sender, kept, deadline, origin = self._queue.popleft()
            try:
                sender._drive(deliver(sender, kept, deadline))
            except Exception as exc:  # never let one report stop the others
                log.exception(
                    "pliuz: delivering the report of %s failed: %r", kept.approval_id, exc
                )
            finally:
                self.end(origin)

    def flush(self, origin: int | None = None, timeout: float | None = None) -> bool:
        def done() -> bool:
            return not self._pending if origin is None else origin not in self._pending

        with self._cond:
            return self._cond.wait_for(done, timeout)


_sender = _Sender()


def queue_report(sender: PliuzClient, kept: Report, origin: int) -> None:
    """Deliver ``kept`` through ``sender`` in the background (it stays kept until it lands)."""
    _sender.submit(sender, kept, origin)


# token -> (the event loop whose task delivers a report, origin, how to hand it over)
_in_loops: dict[int, tuple[asyncio.AbstractEventLoop, int, Callable[[], None]]] = {}
_tokens = itertools.count()


def report_started(
    origin: int, loop: asyncio.AbstractEventLoop, hand_over: Callable[[], None]
) -> int:
    """A task of ``loop`` delivers a report: flushes wait for it. ``hand_over`` gives the
    report to the reporting thread if the loop stops running first."""
    token = next(_tokens)
    with _lock:
        _in_loops[token] = (loop, origin, hand_over)
    _sender.begin(origin)
    return token


def report_finished(token: int, *, cancelled: bool) -> None:
    """The task ended; a cancelled one (its loop shut down) hands its report over."""
    with _lock:
        entry = _in_loops.pop(token, None)
    if entry is None:
        return  # already handed over by a flush
    _, origin, hand_over = entry
    if cancelled:
        hand_over()
    _sender.end(origin)


def _hand_over_stalled() -> None:
    # A loop that no longer runs (Runner.run_sync, run_until_complete, interpreter exit)
    # will not finish its tasks: the reporting thread takes their reports. If the loop
    # runs again, its task sends the same report once more, which the server accepts.
    # The loop of the calling thread, if any, is blocked by this very call: stalled too.
    try:
        blocked: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        blocked = None
    with _lock:
        stalled = [
            t for t, (loop, _, _) in _in_loops.items() if loop is blocked or not loop.is_running()
        ]
        entries = [_in_loops.pop(t) for t in stalled]
    for _, origin, hand_over in entries:
        hand_over()
        _sender.end(origin)


def flush_reports(timeout: float | None = None, *, origin: int | None = None) -> bool:
    """Wait until the execution reports of this process were delivered or given up.

    Gated calls return as soon as the tool ran; their reports are sent in the
    background (by the reporting thread, or by tasks of the caller's event
    loop). Returns ``False`` if ``timeout`` seconds passed first. Each report
    is bounded by its client's ``report_timeout``. Reports of event loops that
    are not running (or blocked by this call) are handed to the reporting
    thread; in a coroutine, prefer ``await client.aclose()``.
    """
    _hand_over_stalled()
    return _sender.flush(origin, timeout)


def _after_fork_in_child() -> None:
    # The sending thread does not exist in the child; the parent delivers what it queued.
    global _sender
    _sender = _Sender()
    _in_loops.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush_reports)
