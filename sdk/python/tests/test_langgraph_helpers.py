"""Shared pieces for the LangGraph adapter tests (no tests here).

``ScriptedChatModel`` is a real ``BaseChatModel`` that answers from a script
(tool calls, then text) and records every message list it was given: the
agent loop runs for real, without any network.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field


class ScriptedChatModel(BaseChatModel):
    """Plays ``script`` turn by turn; a turn is a list of tool calls or a final text."""

    script: list[Any]
    seen: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[Any] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, BaseMessage]:
        self.bound_tools = list(tools)
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn = len(self.seen)
        self.seen.append(list(messages))
        step = self.script[turn] if turn < len(self.script) else "done"
        if isinstance(step, str):
            msg = AIMessage(content=step)
        else:
            msg = AIMessage(
                content="",
                tool_calls=[
                    {"name": name, "args": args, "id": call_id, "type": "tool_call"}
                    for name, args, call_id in step
                ],
            )
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def tool_messages(self) -> dict[str, ToolMessage]:
        """tool_call_id -> the ToolMessage the model was given."""
        out: dict[str, ToolMessage] = {}
        for messages in self.seen:
            for m in messages:
                if isinstance(m, ToolMessage):
                    out[m.tool_call_id] = m
        return out


def thread() -> dict[str, Any]:
    """A fresh run config with its own ``thread_id``."""
    return {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:10]}"}}


def thread_and_session() -> tuple[dict[str, Any], str]:
    """A fresh run config and its ``thread_id`` (the session of the requests it makes)."""
    config = thread()
    return config, config["configurable"]["thread_id"]
