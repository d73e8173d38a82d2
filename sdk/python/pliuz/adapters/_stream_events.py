"""A visible stream event while a gated call waits (blocking mode, private plumbing).

The SDK has no public way for a tool to add an event to a streamed run, so
:func:`run_streamed` starts ``Runner.run_streamed`` inside a context that lets
the gated tools find the streamed result; the gate then puts a
:class:`PliuzApprovalPendingEvent` on the stream the caller is iterating.
"""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from agents import Agent, Runner
from agents.result import RunResultStreaming

from ..models import Approval

__all__ = ["PliuzApprovalPendingEvent", "emit_pending", "run_streamed"]

log = logging.getLogger("pliuz")


@dataclass(frozen=True)
class PliuzApprovalPendingEvent:
    """A gated call is waiting for a human: show ``inbox_url`` to whoever can act on it."""

    approval_id: str
    tool_name: str
    call_id: str | None
    inbox_url: str
    expires_at: datetime | None
    type: Literal["pliuz.approval_pending"] = "pliuz.approval_pending"


@dataclass
class _Sink:
    result: RunResultStreaming | None = None


_sink: contextvars.ContextVar[_Sink | None] = contextvars.ContextVar(
    "pliuz_stream_sink", default=None
)


def run_streamed(agent: Agent[Any], input: Any, **runner_kwargs: Any) -> RunResultStreaming:
    """``Runner.run_streamed`` whose ``stream_events()`` also yields
    :class:`PliuzApprovalPendingEvent` (``event.type == "pliuz.approval_pending"``) each time
    a gated call starts waiting for approval."""
    sink = _Sink()
    token = _sink.set(sink)
    try:
        # The run's task is created here and copies the context, so its tools see the sink.
        result = Runner.run_streamed(agent, input, **runner_kwargs)
    finally:
        _sink.reset(token)
    sink.result = result
    return result


def emit_pending(approval: Approval, call_id: str | None, base_url: str) -> None:
    """Announce a waiting call on the stream started by :func:`run_streamed`, if any."""
    inbox_url = f"{base_url}/requests/{approval.id}"
    log.info("pliuz: %s waits for approval %s: %s", approval.tool_name, approval.id, inbox_url)
    sink = _sink.get()
    queue = getattr(sink.result, "_event_queue", None) if sink is not None else None
    if queue is None:
        return
    event = PliuzApprovalPendingEvent(
        approval_id=approval.id,
        tool_name=approval.tool_name,
        call_id=call_id,
        inbox_url=inbox_url,
        expires_at=approval.expires_at,
    )
    try:
        queue.put_nowait(event)
    except Exception as exc:  # a full or closed queue must not break the call
        log.warning("pliuz: could not add the approval event to the stream: %r", exc)
