"""Pieces shared by the framework adapters (private).

What the model is told when a gated tool did not run, and the wrappers that
let a tool's own failures pass through the gate unchanged.
"""

from __future__ import annotations

from typing import Any

from .._gate import excerpt, warn_misconfigured
from ..errors import (
    PliuzAlreadyExecutedError,
    PliuzArgumentsError,
    PliuzCancelledError,
    PliuzConfigurationError,
    PliuzConnectionError,
    PliuzError,
    PliuzExecutionExpiredError,
    PliuzExpiredError,
    PliuzOutcomeUnknownError,
    PliuzRejectedError,
    PliuzRespondedError,
    PliuzServerError,
    PliuzTimeoutError,
)

__all__ = ["HandledToolFailure", "ToolRaised", "message_for", "not_run"]


def not_run(name: str, why: str) -> str:
    return f"The tool call {name} was NOT executed: {why}"


def message_for(name: str, exc: PliuzError, timeout_s: float | None) -> str:
    """What the model is told when the gate did not let the tool run."""
    if isinstance(exc, PliuzConfigurationError):
        warn_misconfigured(name, exc)
        return not_run(
            name, f"the approval layer is misconfigured ({exc}); nobody was asked to approve it."
        )
    if isinstance(exc, PliuzRejectedError):
        by = exc.approval.decision.by if exc.approval and exc.approval.decision else None
        who = f" by {by}" if by else ""
        reason = exc.reason or "no reason given"
        return (
            f"The tool call {name} was rejected{who} and was NOT executed. "
            f"Reason: {reason}. Do not retry this call unchanged."
        )
    if isinstance(exc, PliuzRespondedError):
        # The person answered in the tool's place: their message is the result.
        return exc.response
    if isinstance(exc, PliuzExpiredError):
        return not_run(name, "the approval request expired before anyone decided.")
    if isinstance(exc, PliuzCancelledError):
        why = exc.approval.reason if exc.approval else None
        return not_run(name, "the approval request was cancelled" + (f" ({why})." if why else "."))
    if isinstance(exc, PliuzTimeoutError):
        limit = f" within {timeout_s:g} seconds" if timeout_s is not None else ""
        return not_run(name, f"no approval decision arrived{limit}.")
    if isinstance(exc, PliuzAlreadyExecutedError):
        execution = exc.approval.execution if exc.approval else None
        detail = ""
        if execution is not None:
            detail = f" Recorded outcome: {execution.outcome}."
            if execution.output_excerpt:
                detail += f" Output: {execution.output_excerpt}"
        return (
            f"The tool call {name} was already executed earlier for this same request "
            f"and was not run again.{detail}"
        )
    if isinstance(exc, PliuzOutcomeUnknownError):
        return (
            f"The tool call {name} was NOT executed now: the same call was already started "
            "earlier and its outcome was never reported, so the outcome is unknown — check "
            "whether it happened before retrying. Do not retry this call unchanged."
        )
    if isinstance(exc, PliuzExecutionExpiredError):
        return not_run(
            name, "it was approved, but not started within the time the policy allows after "
            "approval; a new approval is needed.",
        )  # fmt: skip
    if isinstance(exc, (PliuzConnectionError, PliuzServerError)):
        return not_run(
            name, "the approval server could not be reached, so the call could not be approved."
        )
    if isinstance(exc, PliuzArgumentsError):
        return not_run(name, f"the approved arguments are not valid for this tool ({exc}).")
    return not_run(name, f"the approval request failed ({exc}).")


class ToolRaised(Exception):
    """A PliuzError raised by the tool body (which did run): propagate it unchanged."""

    def __init__(self, error: PliuzError) -> None:
        super().__init__(str(error))
        self.error = error
        self.report_text = f"{type(error).__name__}: {error}"


class HandledToolFailure(Exception):
    """The wrapped tool failed and the SDK turned the error into a model-visible string."""

    def __init__(self, result: Any) -> None:
        super().__init__(excerpt(result))
        self.result = result
        self.report_text = f"tool failed: {excerpt(result)}"
