"""Pliuz Python SDK: human approval for AI agent tool calls.

Plain functions::

    from pliuz import gated

    @gated(policy="refunds", redact=["card.number"])
    def issue_refund(order_id: str, amount_cents: int, card: dict) -> str: ...

OpenAI Agents SDK::

    from pliuz.adapters.openai_agents import gated_tool

    @gated_tool(policy="refunds")
    @function_tool
    def issue_refund(order_id: str, amount_cents: int) -> str: ...

Low level::

    from pliuz import PliuzClient, AsyncPliuzClient
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import errors
from ._client import DEFAULT_BASE_URL, AsyncPliuzClient, PliuzClient
from ._gate import raise_for_outcome
from ._reports import flush_reports, undelivered_reports
from .errors import *  # noqa: F403 (every error, listed once in errors.__all__)
from .gated import gated
from .idempotency import idempotency_key
from .models import Answer, Approval, ApprovalList, Choice, Decision, Execution, Question, Vote
from .questions import ask_human, ask_human_async
from .redaction import REDACTED

__all__ = [
    "DEFAULT_BASE_URL",
    "REDACTED",
    "Answer",
    "Approval",
    "ApprovalList",
    "AsyncPliuzClient",
    "Choice",
    "Decision",
    "Execution",
    "PliuzClient",
    "Question",
    "Vote",
    "__version__",
    "ask_human",
    "ask_human_async",
    "flush_reports",
    "gated",
    "idempotency_key",
    "raise_for_outcome",
    "undelivered_reports",
    *errors.__all__,
]
