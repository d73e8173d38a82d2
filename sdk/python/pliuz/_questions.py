"""Questions to a person, as sans-I/O flows (see :mod:`pliuz._flow`): ask, the
long-poll wait for the answer, answer; run by both clients' drivers."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from ._flow import (
    Flow,
    LongPoll,
    Resource,
    Sleep,
    _known,
    deadline_in,
    drop_none,
    parse,
    poll,
    request,
)
from .errors import (
    PliuzConnectionError,
    PliuzError,
    PliuzQuestionExpiredError,
    PliuzTimeoutError,
)
from .models import Answer, Question

if TYPE_CHECKING:
    from ._client import _BaseClient

#: A choice as given: its value (also its label) or ``{"value": ..., "label": ...}``.
ChoiceLike = str | Mapping[str, str]


class QuestionOptions(TypedDict, total=False):
    """The optional fields of a question (``POST /api/v1/questions``)."""

    choices: Sequence[ChoiceLike] | None
    allow_free_text: bool | None
    policy: str | None
    originator: str | None
    idempotency_key: str | None
    expires_in_seconds: int | None


def question_body(text: str, options: QuestionOptions) -> dict[str, Any]:
    """The body of ``POST /api/v1/questions`` (the one place it is built)."""
    _known(options, QuestionOptions)
    choices = options.get("choices")
    body: dict[str, Any] = {**options, "text": text}
    if choices is not None:
        body["choices"] = [c if isinstance(c, str) else dict(c) for c in choices]
    return drop_none(body)


QUESTIONS = Resource("/questions", Question)
ask = QUESTIONS.create
get = QUESTIONS.get


def wait_for_answer(
    cfg: _BaseClient, question: str | Question, timeout: float | None
) -> Flow[Question]:
    """Long-poll until the question leaves ``pending``; an expired question raises
    :class:`~pliuz.PliuzQuestionExpiredError`."""
    question_id, last = (
        (question.id, question) if isinstance(question, Question) else (question, None)
    )
    deadline = deadline_in(timeout)
    polls = LongPoll()
    while True:
        if last is not None and last.status == "answered":
            return last
        if last is not None and last.status == "expired":
            raise PliuzQuestionExpiredError(
                f"question {question_id} expired: nobody answered in time", question=last
            )
        limit = deadline if deadline is not None else cfg._expiry_deadline(last)
        left = None if limit is None else limit - time.monotonic()
        if left is not None and left <= 0 and polls.tried:
            if polls.unreachable_since is not None and timeout is None:
                raise PliuzConnectionError(
                    f"question {question_id}: the Pliuz server stayed unreachable past its expiry"
                )
            raise PliuzTimeoutError(f"question {question_id} still unanswered")
        wait, poll_deadline = polls.next_wait(cfg, limit, left)
        started = time.monotonic()
        try:
            data = yield from poll(cfg, f"/questions/{question_id}", wait, poll_deadline)
        except PliuzTimeoutError:
            raise PliuzTimeoutError(f"question {question_id} still unanswered") from None
        except PliuzError as exc:
            delay = polls.delay_after(exc, limit)
            yield Sleep(delay if left is None else max(0.0, min(delay, left)))
            continue
        polls.reset()
        last = parse(Question, data)
        if last.status == "pending" and time.monotonic() - started < min(wait, 1) / 2:
            yield Sleep(0.25)  # the server did not hold the request: don't spin


def ask_and_wait(cfg: _BaseClient, body: dict[str, Any], timeout: float | None) -> Flow[Answer]:
    """Ask, then wait for the answer (``client.ask`` and :func:`pliuz.ask_human`)."""
    deadline = deadline_in(timeout)
    question = yield from ask(cfg, body, deadline)
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    answered = yield from wait_for_answer(cfg, question, left)
    if answered.answer is None:  # answered without an answer: a server bug
        raise PliuzError(f"question {answered.id} is answered but carries no answer")
    return answered.answer


def answer(cfg: _BaseClient, question_id: str, body: dict[str, Any]) -> Flow[Question]:
    data = yield from request(
        cfg, "POST", f"/questions/{question_id}/answer", json=body, retry=False
    )
    return parse(Question, data)
