"""Which mode a gated OpenAI Agents tool runs in (private).

:class:`~pliuz.adapters.openai_agents.Runs` sets a :class:`DurableScope` for
the duration of one ``Runner.run``; the gated tools see it through a context
variable (inherited by the SDK's tool tasks and by nested ``agent.as_tool()``
runs). Without a scope a gated tool blocks in the call (the blocking mode).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .._client import AsyncPliuzClient
from ..models import Approval, Question


@dataclass
class DurableScope:
    """State shared by the gated tools of one durable ``Runner.run``."""

    client: AsyncPliuzClient
    run_config: Any = None
    #: the session the run was started with (for requests when the RunConfig has no group_id).
    session_id: str | None = None
    #: call id -> the decided request a resumed call paused on.
    decided: dict[str, Approval] = field(default_factory=dict)
    #: call id -> the Pliuz request created for that call's interruption in this run.
    created: dict[str, Approval] = field(default_factory=dict)
    #: call id -> why its request could not be created (the call pauses anyway; fail closed).
    failures: dict[str, BaseException] = field(default_factory=dict)

    #: call id -> the question an ``ask_human_tool`` call asked (the run pauses on it).
    asked: dict[str, Question] = field(default_factory=dict)
    #: call id -> the settled (answered or expired) question a resumed ask call paused on.
    answers: dict[str, Question] = field(default_factory=dict)

    def record(self, call_id: str, approval: Approval) -> None:
        self.created[call_id] = approval


_current: contextvars.ContextVar[DurableScope | None] = contextvars.ContextVar(
    "pliuz_durable_scope", default=None
)


def current_scope() -> DurableScope | None:
    return _current.get()


@contextlib.contextmanager
def durable_scope(scope: DurableScope) -> Iterator[DurableScope]:
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
