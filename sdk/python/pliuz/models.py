"""Pydantic v2 models of the Pliuz HTTP API (``/api/v1``).

Unknown fields sent by newer servers are kept (``extra="allow"``) rather than
rejected, so an SDK release keeps working against a newer server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "TERMINAL_STATUSES",
    "Answer",
    "Approval",
    "ApprovalList",
    "ApprovalStatus",
    "Choice",
    "Decision",
    "Execution",
    "Question",
    "QuestionStatus",
    "Vote",
]

ApprovalStatus = Literal[
    "pending", "approved", "rejected", "responded", "expired", "cancelled", "executing", "executed"
]
"""``pending`` → ``approved``/``rejected``/``responded``/``expired``/``cancelled``
(``responded``: a person answered in the tool's place, where the policy allows it; the
tool never runs and the model gets the message, the decision's ``reason``); ``approved`` →
``executing`` (the execution was claimed) → ``executed`` (its outcome was reported).
An ``executing`` request whose report never arrived has an unknown outcome."""

TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"rejected", "responded", "expired", "cancelled", "executed"}
)
SETTLED_STATUSES: frozenset[str] = TERMINAL_STATUSES | {"approved", "executing"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Vote(_Model):
    """One approver's approval towards ``required_approvals``."""

    by: str
    at: datetime | None = None


class Decision(_Model):
    """How the request was settled.

    ``by`` is ``user:EMAIL``, ``policy:NAME``, ``agent:NAME`` or ``system``.
    """

    outcome: Literal["approved", "rejected", "responded", "expired", "cancelled"]
    by: str | None = None
    reason: str | None = None
    edited: bool = False
    at: datetime | None = None


class Execution(_Model):
    """The execution claim and, once reported, its outcome.

    ``outcome`` is ``None`` while the request is ``executing``: the claim holder
    started the tool and has not reported how it went.
    """

    claim_id: str | None = None
    claimed_at: datetime | None = None
    outcome: Literal["success", "error"] | None = None
    latency_ms: int | None = None
    output_excerpt: str | None = None
    reported_at: datetime | None = None


class Approval(_Model):
    """An approval request, as returned by every approval endpoint."""

    id: str
    status: ApprovalStatus
    tool_name: str
    tool_args: dict[str, Any] = Field(default_factory=dict)
    proposed_args: dict[str, Any] | None = None
    """Arguments an editor proposed while more approvals are needed (quorum > 1)."""
    final_args: dict[str, Any] | None = None
    """Set when approved: the arguments to run with (``tool_args`` unless edited)."""
    tool_schema: dict[str, Any] | None = None
    policy: str | None = None
    agent: str | None = None
    originator: str | None = None
    call_id: str | None = None
    session_id: str | None = None
    context_messages: list[Any] | None = None
    client_metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    args_digest: str | None = None
    """SHA-256 (hex) of the RFC 8785 JSON of ``{tool_name, tool_args}`` under review (the
    ``proposed_args`` once an approver edited them). A decision sends it back: it applies only
    to the arguments that were reviewed."""
    required_approvals: int | None = None
    allowed_decisions: list[str] | None = None
    approvals: list[Vote] = Field(default_factory=list)
    decision: Decision | None = None
    execution: Execution | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    decided_at: datetime | None = None
    execute_before: datetime | None = None
    """Set once approved: the execution must be claimed (started) before this."""
    is_replay: bool = False

    @property
    def is_settled(self) -> bool:
        """True once the request left ``pending`` (approved or terminal)."""
        return self.status != "pending"

    @property
    def is_terminal(self) -> bool:
        """True for ``rejected``, ``expired``, ``cancelled`` and ``executed``."""
        return self.status in TERMINAL_STATUSES

    @property
    def reason(self) -> str | None:
        """The decision's reason (what the model is told on rejection), if any."""
        return self.decision.reason if self.decision is not None else None


class ApprovalList(_Model):
    """A page of ``GET /api/v1/approvals``."""

    items: list[Approval] = Field(default_factory=list)
    next_cursor: str | None = None


QuestionStatus = Literal["pending", "answered", "expired"]
"""``pending`` → ``answered`` (a person answered) or ``expired`` (nobody did in time)."""


class Choice(_Model):
    """One option of a question: ``value`` is what the agent gets back, ``label`` what the
    person reads."""

    value: str
    label: str


class Answer(_Model):
    """A person's answer to a question: the chosen option and/or free text."""

    choice: str | None = None
    """The ``value`` of the chosen option, if any."""
    choice_label: str | None = None
    text: str | None = None
    """Free text, if any."""
    answered_by: str | None = None
    """``user:EMAIL``."""
    answered_at: datetime | None = None

    @property
    def as_text(self) -> str:
        """The answer as one string for a model: the choice's value, then the text."""
        parts = [p for p in (self.choice, self.text) if p]
        return ": ".join(parts)


class Question(_Model):
    """A question an agent asked a person (``/api/v1/questions``)."""

    id: str
    status: QuestionStatus
    text: str
    choices: list[Choice] = Field(default_factory=list)
    allow_free_text: bool = True
    policy: str | None = None
    agent: str | None = None
    originator: str | None = None
    idempotency_key: str | None = None
    answer: Answer | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    is_replay: bool = False
