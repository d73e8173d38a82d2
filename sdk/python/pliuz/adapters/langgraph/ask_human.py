"""A ready-made LangChain tool that asks a person (``ask_human_tool``): the model
calls it with a question (and optional choices) and gets the answer text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from .._ask_human import DEFAULT_DESCRIPTION, AskTool, AskToolOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ask_human_tool"]


class _AskArgs(BaseModel):
    question: str = Field(description="The question, complete and self-contained.")
    choices: list[str] | None = Field(
        default=None, description="Options to pick from; empty for a free-text answer."
    )


def ask_human_tool(**options: Unpack[AskToolOptions]) -> StructuredTool:
    """A tool (sync and async) whose answer is the person's reply; the question goes
    to ``policy``'s approvers. Nobody answering in time is told to the model."""
    asking = AskTool(**options)

    async def ask(question: str, choices: list[str] | None = None) -> str:
        return await asking.ask(question, choices)

    def ask_blocking(question: str, choices: list[str] | None = None) -> str:
        return asking.ask_blocking(question, choices)

    return StructuredTool.from_function(
        func=ask_blocking,
        coroutine=ask,
        name=asking.name,
        description=asking.description or DEFAULT_DESCRIPTION,
        args_schema=_AskArgs,
    )
