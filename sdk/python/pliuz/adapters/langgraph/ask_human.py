"""A ready-made LangChain tool that asks a person (``ask_human_tool``): the model
calls it with a question (and optional choices) and gets the answer text."""

from __future__ import annotations

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from ..._client import AsyncPliuzClient
from .._ask_human import DEFAULT_DESCRIPTION, ask_for_tool, ask_for_tool_blocking

__all__ = ["ask_human_tool"]


class _AskArgs(BaseModel):
    question: str = Field(description="The question, complete and self-contained.")
    choices: list[str] | None = Field(
        default=None, description="Options to pick from; empty for a free-text answer."
    )


def ask_human_tool(
    *,
    policy: str | None = None,
    name: str = "ask_human",
    description: str | None = None,
    client: AsyncPliuzClient | None = None,
    timeout: float | None = None,
    allow_free_text: bool | None = None,
) -> StructuredTool:
    """A tool (sync and async) whose answer is the person's reply; the question goes
    to ``policy``'s approvers. Nobody answering in time is told to the model."""

    async def ask(question: str, choices: list[str] | None = None) -> str:
        return await ask_for_tool(
            question, choices, policy=policy, client=client, timeout=timeout,
            allow_free_text=allow_free_text,
        )  # fmt: skip

    def ask_blocking(question: str, choices: list[str] | None = None) -> str:
        return ask_for_tool_blocking(
            question, choices, policy=policy, client=client, timeout=timeout,
            allow_free_text=allow_free_text,
        )  # fmt: skip

    return StructuredTool.from_function(
        func=ask_blocking,
        coroutine=ask,
        name=name,
        description=description or DEFAULT_DESCRIPTION,
        args_schema=_AskArgs,
    )
