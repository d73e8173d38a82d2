"""What the ready-made "ask a human" tools share (private): their description,
the call itself (async and blocking), and what the model is told when nobody
answered."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .._client import AsyncPliuzClient
from .._questions import ChoiceLike
from .._shared import blocking_twin, shared_async_client, shared_client
from ..errors import PliuzError, PliuzQuestionExpiredError, PliuzTimeoutError
from ..models import Answer
from ..questions import ask_human, ask_human_async

DEFAULT_NAME = "ask_human"
DEFAULT_DESCRIPTION = (
    "Ask a person a question and wait for their answer. Use it when you need a fact, "
    "a preference or a decision only a person can give. Offer `choices` when the answer "
    "is one of a few options; leave them empty for a free-text answer."
)


def _told(ask: Callable[[], Answer]) -> str:
    """The answer as the model should read it; an unanswered question is told to
    the model, never raised."""
    try:
        answer = ask()
    except PliuzQuestionExpiredError:
        return "Nobody answered the question in time. Do not assume an answer."
    except PliuzTimeoutError:
        return "No answer yet and this tool stopped waiting. Do not assume an answer."
    except PliuzError as exc:
        return f"The question could not be asked ({type(exc).__name__}): {exc}"
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
        err = exc
        return _told(lambda: _raise(err))
    return _told(lambda: answer)


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
    return _told(
        lambda: ask_human(
            question,
            client=c,
            timeout=timeout,
            choices=list(choices) if choices else None,
            allow_free_text=allow_free_text,
            policy=policy,
        )
    )


def _raise(exc: PliuzError) -> Answer:
    raise exc
