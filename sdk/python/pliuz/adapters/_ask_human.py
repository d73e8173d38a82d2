"""What the ready-made "ask a human" tools share (private): their description,
the call itself (async and blocking), what the model is told when nobody
answered, and the durable mode's question (asked once per call, the run pauses)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from .._client import AsyncPliuzClient
from .._questions import ChoiceLike, QuestionOptions
from .._shared import blocking_twin, shared_async_client, shared_client
from ..errors import PliuzError, PliuzQuestionExpiredError, PliuzTimeoutError
from ..models import Answer, Question
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


#: Idempotency keys of questions asked by durable runs end with ``:<call id>``.
DURABLE_KEY_PREFIX = "ask_human:"


def durable_key(session: str | None, call_id: str) -> str:
    """The question's idempotency key for one tool call of a durable run.

    Asking again for the same call (a replayed ``needs_approval`` check, a retried
    pause) returns the same question instead of asking twice.
    """
    return f"{DURABLE_KEY_PREFIX}{session or ''}:{call_id}"


def call_id_of(question: Question) -> str | None:
    """The tool call a durable run's question was asked for, if it is one."""
    key = question.idempotency_key
    if not key or not key.startswith(DURABLE_KEY_PREFIX):
        return None
    return key.rsplit(":", 1)[-1] or None


def told_for(question: Question) -> str:
    """What the model is told about a settled question (durable mode's resumed call)."""
    if question.status == "answered" and question.answer is not None:
        return _told(question.answer)
    if question.status == "expired":
        return "Nobody answered the question in time. Do not assume an answer."
    return "No answer yet. Do not assume an answer."


async def ask_durable(
    client: AsyncPliuzClient,
    question: str,
    choices: Sequence[ChoiceLike] | None,
    *,
    key: str,
    policy: str | None,
    allow_free_text: bool | None,
) -> Question:
    """Open (or find again, by ``key``) the question without waiting for its answer."""
    return await client.ask_question(
        question,
        choices=list(choices) if choices else None,
        allow_free_text=allow_free_text,
        policy=policy,
        idempotency_key=key,
    )


class AskToolOptions(TypedDict, total=False):
    """The keywords of the adapters' ``ask_human_tool``."""

    policy: str | None
    name: str
    description: str | None
    client: AsyncPliuzClient | None
    timeout: float | None
    allow_free_text: bool | None


@dataclass(frozen=True)
class AskTool:
    """A ready-made tool's way of asking (:class:`AskToolOptions` with the defaults)."""

    policy: str | None = None
    name: str = DEFAULT_NAME
    description: str | None = None
    client: AsyncPliuzClient | None = None
    timeout: float | None = None
    allow_free_text: bool | None = None

    def _question(self, choices: Sequence[ChoiceLike] | None) -> QuestionOptions:
        return {
            "choices": list(choices) if choices else None,
            "allow_free_text": self.allow_free_text,
            "policy": self.policy,
        }

    async def ask(self, question: str, choices: Sequence[ChoiceLike] | None) -> str:
        """Ask and wait; the answer, or why there is none, as the model is told."""
        try:
            client = self.client or await shared_async_client()
            answer = await ask_human_async(
                question, client=client, timeout=self.timeout, **self._question(choices)
            )
        except PliuzError as exc:
            return _unanswered(exc)
        return _told(answer)

    def ask_blocking(self, question: str, choices: Sequence[ChoiceLike] | None) -> str:
        """:meth:`ask` for a synchronous invocation."""
        client = blocking_twin(self.client) if self.client is not None else shared_client()
        try:
            answer = ask_human(
                question, client=client, timeout=self.timeout, **self._question(choices)
            )
        except PliuzError as exc:
            return _unanswered(exc)
        return _told(answer)
