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

import atexit
import collections
import logging
import os
import threading
import time
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


class _Sender:
    """One background thread delivering queued reports in order, each with its own deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[PliuzClient, Report, float, int]] = collections.deque()
        # origin (id of the client the gated call used) -> reports queued or in flight
        self._pending: collections.Counter[int] = collections.Counter()
        self._thread: threading.Thread | None = None

    def submit(self, sender: PliuzClient, kept: Report, origin: int) -> None:
        deadline = time.monotonic() + sender.report_timeout
        with self._cond:
            self._queue.append((sender, kept, deadline, origin))
            self._pending[origin] += 1
            if self._thread is None:
                # A daemon, so a hung server never blocks exit; atexit flushes the queue.
                self._thread = threading.Thread(target=self._run, name="pliuz-reports", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                sender, kept, deadline, origin = self._queue.popleft()
            try:
                sender._drive(deliver(sender, kept, deadline))
            except Exception as exc:  # never let one report stop the others
                log.exception(
                    "pliuz: delivering the report of %s failed: %r", kept.approval_id, exc
                )
            finally:
                with self._cond:
                    self._pending[origin] -= 1
                    if self._pending[origin] <= 0:
                        del self._pending[origin]
                    self._cond.notify_all()

    def flush(self, origin: int | None = None, timeout: float | None = None) -> bool:
        def done() -> bool:
            return not self._pending if origin is None else origin not in self._pending

        with self._cond:
            return self._cond.wait_for(done, timeout)


_sender = _Sender()


def queue_report(sender: PliuzClient, kept: Report, origin: int) -> None:
    """Deliver ``kept`` through ``sender`` in the background (it stays kept until it lands)."""
    _sender.submit(sender, kept, origin)


def flush_reports(timeout: float | None = None, *, origin: int | None = None) -> bool:
    """Wait until the execution reports queued in this process were delivered or given up.

    Gated calls return as soon as the tool ran; their reports are sent in the
    background. Returns ``False`` if ``timeout`` seconds passed first. Each
    report is bounded by its client's ``report_timeout``, so this always ends.
    """
    return _sender.flush(origin, timeout)


def _after_fork_in_child() -> None:
    # The sending thread does not exist in the child; the parent delivers what it queued.
    global _sender
    _sender = _Sender()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush_reports)
