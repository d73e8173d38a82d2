"""What the ready-made "ask a human" tools share (private): their description,
the call itself (async and blocking), and what the model is told when nobody
answered."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .._client import AsyncPliuzClient
from .._questions import ChoiceLike
from .._shared import blocking_twin, shared_async_client, shared_client
from ..errors import PliuzError, PliuzQuestionExpiredError, PliuzTimeoutError
from ..models import Answer
from ..questions import ask_human, ask_human_async

log = logging.getLogger("pliuz")

DEFAULT_NAME = "ask_human"
DEFAULT_DESCRIPTION = (
    "Ask a person a question and wait for their answer. Use it when you need a fact, "
    "a preference or a decision only a person can give. Offer `choices` when the answer "
    "is one of a few options; leave them empty for a free-text answer."
)


def _unanswered(exc: PliuzError) -> str:
    """What the model is told when there is no answer: never an assumed one."""
    if isinstance(exc, PliuzQuestionExpiredError):
        return "Nobody answered the question in time. Do not assume an answer."
    if isinstance(exc, PliuzTimeoutError):
        return "No answer yet and this tool stopped waiting. Do not assume an answer."
    # A misconfiguration (key, policy) or an unreachable server: say so in the log too.
    log.warning("pliuz: could not ask a person: %r", exc)
    return f"The question could not be asked ({type(exc).__name__}): {exc}"


def _told(answer: Answer) -> str:
    by = (answer.answered_by or "a person").removeprefix("user:")
    return f"{by} answered: {answer.as_text}"


async def ask_for_tool(
    question: str,
    choices: Sequence[ChoiceLike] | None,
    *,
    policy: str | None,
    client: AsyncPliuzClient | None,
    timeout: float | None,
    allow_free_text: bool | None,
) -> str:
    try:
        answer = await ask_human_async(
            question,
            client=client or await shared_async_client(),
            timeout=timeout,
            choices=list(choices) if choices else None,
            allow_free_text=allow_free_text,
            policy=policy,
        )
    except PliuzError as exc:
        return _unanswered(exc)
    return _told(answer)


def ask_for_tool_blocking(
    question: str,
    choices: Sequence[ChoiceLike] | None,
    *,
    policy: str | None,
    client: AsyncPliuzClient | None,
    timeout: float | None,
    allow_free_text: bool | None,
) -> str:
    c = blocking_twin(client) if client is not None else shared_client()
    try:
        answer = ask_human(
            question,
            client=c,
            timeout=timeout,
            choices=list(choices) if choices else None,
            allow_free_text=allow_free_text,
            policy=policy,
        )
    except PliuzError as exc:
        return _unanswered(exc)
    return _told(answer)
