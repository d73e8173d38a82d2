"""Ask a person ("human as a tool"): :func:`ask_human` and :func:`ask_human_async`.

::

    from pliuz import ask_human

    answer = ask_human(
        "Refund to the card on file or as store credit?",
        choices=["card", {"value": "credit", "label": "Store credit"}],
        policy="support",
    )
    answer.choice        # "card" / "credit"
    answer.text          # free text, when the question allows it
    answer.answered_by   # "user:EMAIL"

The policy's approvers answer (in the inbox, in Slack, or through the API); the
question's ``originator`` never may. Nobody answering in time raises
:class:`~pliuz.PliuzQuestionExpiredError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._client import AsyncPliuzClient, PliuzClient
from ._shared import shared_async_client, shared_client
from .models import Answer

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._questions import QuestionOptions

__all__ = ["ask_human", "ask_human_async"]


def ask_human(
    text: str,
    *,
    client: PliuzClient | None = None,
    timeout: float | None = None,
    **options: Unpack[QuestionOptions],
) -> Answer:
    """Ask a person and wait for the answer (blocking). ``client``: default, the
    process's client from ``PLIUZ_API_KEY`` / ``PLIUZ_BASE_URL``. Keywords as
    :meth:`pliuz.PliuzClient.ask_question`."""
    return (client or shared_client()).ask(text, timeout=timeout, **options)


async def ask_human_async(
    text: str,
    *,
    client: AsyncPliuzClient | None = None,
    timeout: float | None = None,
    **options: Unpack[QuestionOptions],
) -> Answer:
    """Asynchronous :func:`ask_human`."""
    c = client or await shared_async_client()
    return await c.ask(text, timeout=timeout, **options)
