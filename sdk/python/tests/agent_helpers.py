"""Helpers to drive the real ``openai-agents`` Runner with a scripted model (no network)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

from agents import Agent, RunConfig, Runner
from agents.result import RunResult
from agents.testing import ScriptedModel

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)


def run(
    agent: Agent[Any], model: ScriptedModel | None = None, *, group_id: str | None = None,
    context: Any = None, prompt: str = "go",
) -> RunResult:  # fmt: skip
    config = RunConfig(model=model, tracing_disabled=True, group_id=group_id)
    return asyncio.run(Runner.run(agent, prompt, run_config=config, context=context))


def run_in_background(
    agent: Agent[Any], model: ScriptedModel | None = None, **kw: Any
) -> concurrent.futures.Future[RunResult]:
    return _pool.submit(run, agent, model, **kw)


def tool_outputs(model: ScriptedModel) -> dict[str, str]:
    """call_id -> tool output text, from every input the model was given."""
    out: dict[str, str] = {}
    for call in model.calls:
        items = call.input if isinstance(call.input, list) else []
        for item in items:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                output = item.get("output")
                out[str(item.get("call_id"))] = output if isinstance(output, str) else str(output)
    return out


def last_input_text(model: ScriptedModel) -> str:
    call = model.last_call
    assert call is not None
    return str(call.input)
