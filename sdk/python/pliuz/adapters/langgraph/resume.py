"""Resuming a graph paused on Pliuz approvals (:func:`resume_when_decided`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from ... import _flow
from ..._client import _BaseClient
from ..._flow import Flow
from ._common import INTERRUPT_TYPE, ClientValue, async_client, sync_client

__all__ = ["aresume_when_decided", "pending_approvals", "resume_when_decided"]


def pending_approvals(state: Any) -> dict[str, dict[str, Any]]:
    """``{interrupt_id: interrupt value}`` for the Pliuz interrupts of a ``StateSnapshot``."""
    out: dict[str, dict[str, Any]] = {}
    for intr in getattr(state, "interrupts", ()) or ():
        value = getattr(intr, "value", None)
        if isinstance(value, Mapping) and value.get("type") == INTERRUPT_TYPE:
            out[str(intr.id)] = dict(value)
    return out


def _decisions(
    cfg: _BaseClient, pending: dict[str, dict[str, Any]], timeout: float | None
) -> Flow[dict[str, Any]]:
    """Wait for every pending approval; the resume value answering each interrupt."""
    deadline = _flow.deadline_in(timeout)
    resume: dict[str, Any] = {}
    for interrupt_id, value in pending.items():
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        approval_id = str(value["approval_id"])
        approval = yield from _flow.wait_for_decision(cfg, approval_id, left)
        resume[interrupt_id] = {"approval_id": approval.id, "status": approval.status}
    return resume


def resume_when_decided(
    graph: Any,
    config: RunnableConfig,
    *,
    client: ClientValue = None,
    timeout: float | None = None,
    **invoke_kwargs: Any,
) -> Any:
    """Wait until every Pliuz approval the graph is paused on is decided, then resume it.

    Reads the paused thread's interrupts (``graph.get_state(config)``), waits
    on Pliuz for each ``pliuz_approval`` one, and calls
    ``graph.invoke(Command(resume={interrupt_id: {...}}), config)``: only
    those interrupts are answered. Returns what ``invoke`` returns, or ``None``
    if the thread is not paused on a Pliuz approval. Raises
    :class:`~pliuz.PliuzTimeoutError` after ``timeout`` seconds.
    """
    pending = pending_approvals(graph.get_state(config))
    if not pending:
        return None
    with sync_client(client) as c:
        resume = c._drive(_decisions(c, pending, timeout))
    return graph.invoke(Command(resume=resume), config, **invoke_kwargs)


async def aresume_when_decided(
    graph: Any,
    config: RunnableConfig,
    *,
    client: ClientValue = None,
    timeout: float | None = None,
    **invoke_kwargs: Any,
) -> Any:
    """Async :func:`resume_when_decided` (``aget_state`` / ``ainvoke``)."""
    pending = pending_approvals(await graph.aget_state(config))
    if not pending:
        return None
    async with async_client(client) as c:
        resume = await c._drive(_decisions(c, pending, timeout))
    return await graph.ainvoke(Command(resume=resume), config, **invoke_kwargs)
