"""Typed errors. Every exception raised by the SDK derives from :class:`PliuzError`.

HTTP failures are mapped from the RFC 9457 problem+json ``code`` field::

    try:
        client.create_approval(tool_name="issue_refund", tool_args={...})
    except pliuz.PliuzNoMatchingPolicyError as e:
        print(e.detail)          # what to fix, for people
    except pliuz.PliuzAPIError as e:
        print(e.status, e.code)  # for programs

Outcomes of waiting for a decision are errors too, so that a gated function
never runs by accident: :class:`PliuzRejectedError` (carries ``.reason``),
:class:`PliuzRespondedError` (carries ``.response``, the answer for the model),
:class:`PliuzExpiredError`, :class:`PliuzCancelledError`,
:class:`PliuzTimeoutError`, :class:`PliuzAlreadyExecutedError`,
:class:`PliuzOutcomeUnknownError` and :class:`PliuzExecutionExpiredError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from .models import Approval, Question

__all__ = [
    "PliuzAPIError",
    "PliuzAlreadyExecutedError",
    "PliuzArgsChangedError",
    "PliuzArgumentsError",
    "PliuzAuthenticationError",
    "PliuzCancelledError",
    "PliuzConfigurationError",
    "PliuzConflictError",
    "PliuzConnectionError",
    "PliuzDecisionError",
    "PliuzError",
    "PliuzExecutionExpiredError",
    "PliuzExpiredError",
    "PliuzForbiddenError",
    "PliuzIdempotencyConflictError",
    "PliuzMissingAPIKeyError",
    "PliuzNoMatchingPolicyError",
    "PliuzNotFoundError",
    "PliuzOutcomeUnknownError",
    "PliuzQuestionExpiredError",
    "PliuzRateLimitError",
    "PliuzRejectedError",
    "PliuzRespondedError",
    "PliuzServerError",
    "PliuzTimeoutError",
    "PliuzUnknownPolicyError",
    "PliuzValidationError",
]


class PliuzError(Exception):
    """Base class of every error raised by the Pliuz SDK."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PliuzConfigurationError(PliuzError):
    """The caller is set up wrongly: no or an invalid API key, an unknown policy, or no
    policy for the tool. Not a human's decision — nobody was asked. Gated calls log a
    warning naming the problem (logger ``pliuz``); the tool does not run."""


class PliuzMissingAPIKeyError(PliuzConfigurationError):
    """No API key was given (``api_key=...`` or ``PLIUZ_API_KEY``)."""


class PliuzConnectionError(PliuzError):
    """The server could not be reached (DNS, refused connection, timeout, dropped connection)."""


class PliuzAPIError(PliuzError):
    """The server answered with an error status. Subclasses refine it by ``code``.

    Attributes: ``status`` (HTTP status), ``code`` (stable problem code, e.g.
    ``"validation"``), ``title``, ``detail`` (human readable), ``errors`` (per
    field, for validation errors), ``body`` (the decoded problem document) and
    ``response`` (the :class:`httpx.Response`).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        body: Any = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.body = body
        self.response = response


class PliuzAuthenticationError(PliuzAPIError, PliuzConfigurationError):
    """401 ``unauthorized``: missing, unknown or revoked API key."""


class PliuzForbiddenError(PliuzAPIError):
    """403 ``forbidden``: authenticated, but not allowed to do this."""


class PliuzNotFoundError(PliuzAPIError):
    """404 ``not_found``: no such approval, or not one of yours."""


class PliuzConflictError(PliuzAPIError):
    """409: the state does not allow this.

    Codes: ``invalid_transition``, ``already_voted``, ``concurrent_create`` (retried by
    :meth:`~pliuz.PliuzClient.create_approval`), ``execution_claimed``,
    ``execution_expired``, ``execution_not_claimed``, ``claim_mismatch``.
    """


class PliuzArgsChangedError(PliuzConflictError):
    """409 ``args_changed``: the arguments were edited since the decider reviewed them.

    Nothing was decided. Fetch the approval again, review its current arguments
    and decide with its new ``args_digest``.
    """


class PliuzIdempotencyConflictError(PliuzConflictError):
    """409 ``idempotency_conflict``: the idempotency key was used before with other arguments."""


class PliuzValidationError(PliuzAPIError):
    """400/413/415/422: the request is malformed or invalid.

    Covers ``malformed_json``, ``payload_too_large``, ``unsupported_media_type``,
    ``validation``, ``unknown_policy``, ``decision_not_allowed`` and
    ``schema_violation``; ``errors`` lists each field problem.
    """


class PliuzNoMatchingPolicyError(PliuzValidationError, PliuzConfigurationError):
    """422 ``no_matching_policy``: no policy covers this tool and there is no default policy."""


class PliuzUnknownPolicyError(PliuzValidationError, PliuzConfigurationError):
    """``unknown_policy``: the ``policy=`` named is not loaded on the server."""


class PliuzRateLimitError(PliuzAPIError):
    """429 ``rate_limited``. ``retry_after`` holds the server's hint in seconds, if any."""

    retry_after: float | None = None


class PliuzServerError(PliuzAPIError):
    """5xx (``internal``, ``unavailable``): server-side failure; safe requests are retried."""


# ----------------------------------------------------------------------------
# Outcomes: the approval settled (or did not) without permission to run.
# ----------------------------------------------------------------------------


class PliuzDecisionError(PliuzError):
    """Base of the outcomes that mean "do not run the tool". ``approval`` is the last state seen."""

    def __init__(self, message: str, *, approval: Approval | None = None) -> None:
        super().__init__(message)
        self.approval = approval

    @property
    def approval_id(self) -> str | None:
        return self.approval.id if self.approval is not None else None


class PliuzRejectedError(PliuzDecisionError):
    """A human (or an ``auto_reject`` policy) rejected the request. ``reason`` says why."""

    def __init__(
        self, message: str, *, reason: str | None = None, approval: Approval | None = None
    ) -> None:
        super().__init__(message, approval=approval)
        self.reason = reason


class PliuzRespondedError(PliuzDecisionError):
    """A person answered in the tool's place (a ``respond`` decision): the tool does not
    run, and ``message`` is what the model gets instead of the tool's result."""

    def __init__(self, message: str, *, response: str, approval: Approval | None = None) -> None:
        super().__init__(message, approval=approval)
        self.response = response


class PliuzExpiredError(PliuzDecisionError):
    """Nobody decided before the policy's ``expires_in`` elapsed."""


class PliuzQuestionExpiredError(PliuzExpiredError):
    """Nobody answered the question before it expired. ``question`` is its last state."""

    def __init__(self, message: str, *, question: Question | None = None) -> None:
        super().__init__(message)
        self.question = question


class PliuzCancelledError(PliuzDecisionError):
    """The request was cancelled (by the agent or an administrator) before a decision."""


class PliuzTimeoutError(PliuzDecisionError):
    """The client-side ``timeout_s`` elapsed while the request was still pending.

    The request stays pending on the server (unless ``cancel_on_timeout`` was
    set); calling again with the same idempotency key re-attaches to it.
    """


class PliuzAlreadyExecutedError(PliuzDecisionError):
    """The idempotency key matched a request that was already executed.

    Raised instead of running the function a second time (for example after the
    agent process restarted between running the tool and finishing its turn).
    ``approval.execution`` holds the recorded outcome and output excerpt.
    """


class PliuzOutcomeUnknownError(PliuzDecisionError):
    """The request was already claimed for execution and no outcome was reported.

    Another caller (another process, or an earlier run that crashed or lost its
    connection) started the tool and never said how it went. The tool is **not**
    run again: check whether the action happened before retrying it as a new
    request. ``approval.execution.claimed_at`` says when it was started.
    """


class PliuzExecutionExpiredError(PliuzDecisionError):
    """The approval's execution window (policy ``execute_within``) closed before the
    tool was started; it can no longer run. Ask for a new approval."""


class PliuzArgumentsError(PliuzError):
    """The approved (possibly edited) arguments cannot be used: they do not bind to the
    function's signature, or a redacted value cannot be restored. The function is not run."""


_CODE_MAP: dict[str, type[PliuzAPIError]] = {
    "unauthorized": PliuzAuthenticationError,
    "forbidden": PliuzForbiddenError,
    "not_found": PliuzNotFoundError,
    "invalid_transition": PliuzConflictError,
    "already_voted": PliuzConflictError,
    "args_changed": PliuzArgsChangedError,
    "concurrent_create": PliuzConflictError,
    "execution_claimed": PliuzConflictError,
    "execution_expired": PliuzConflictError,
    "execution_not_claimed": PliuzConflictError,
    "claim_mismatch": PliuzConflictError,
    "idempotency_conflict": PliuzIdempotencyConflictError,
    "malformed_json": PliuzValidationError,
    "payload_too_large": PliuzValidationError,
    "unsupported_media_type": PliuzValidationError,
    "validation": PliuzValidationError,
    "unknown_policy": PliuzUnknownPolicyError,
    "decision_not_allowed": PliuzValidationError,
    "schema_violation": PliuzValidationError,
    "no_matching_policy": PliuzNoMatchingPolicyError,
    "rate_limited": PliuzRateLimitError,
    "internal": PliuzServerError,
    "unavailable": PliuzServerError,
}

_STATUS_MAP: dict[int, type[PliuzAPIError]] = {
    400: PliuzValidationError,
    401: PliuzAuthenticationError,
    403: PliuzForbiddenError,
    404: PliuzNotFoundError,
    409: PliuzConflictError,
    413: PliuzValidationError,
    415: PliuzValidationError,
    422: PliuzValidationError,
    429: PliuzRateLimitError,
}


def error_from_response(response: httpx.Response) -> PliuzAPIError:
    """Build the typed error for an error ``response`` (by problem ``code``, else by status)."""
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    code = problem.get("code") if isinstance(problem.get("code"), str) else None
    cls: type[PliuzAPIError] | None = _CODE_MAP.get(code) if code else None
    if cls is None:
        cls = PliuzServerError if status >= 500 else _STATUS_MAP.get(status, PliuzAPIError)
    title = problem.get("title") if isinstance(problem.get("title"), str) else None
    detail = problem.get("detail") if isinstance(problem.get("detail"), str) else None
    raw_errors = problem.get("errors")
    errors = [e for e in raw_errors if isinstance(e, dict)] if isinstance(raw_errors, list) else []
    summary = detail or title or (body if isinstance(body, str) and body else "") or "error"
    message = f"{status} {code or 'error'}: {summary}"
    err = cls(
        message,
        status=status,
        code=code,
        title=title,
        detail=detail,
        errors=errors,
        body=body,
        response=response,
    )
    if isinstance(err, PliuzRateLimitError):
        ra = response.headers.get("retry-after")
        try:
            err.retry_after = float(ra) if ra is not None else None
        except ValueError:
            err.retry_after = None
    return err
