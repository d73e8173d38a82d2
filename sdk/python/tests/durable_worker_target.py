"""What `python -m pliuz.worker durable_worker_target:agents` serves in the worker test."""

from __future__ import annotations

from typing import Any

from agents import RunConfig
from agents.testing import ScriptedModel, assistant_message
from durable_proc import slow_tool_if_asked, support

slow_tool_if_asked()
agents: list[Any] = [support]

# One answer per resumed run (the worker test resumes a few).
run_config = RunConfig(
    model=ScriptedModel([[assistant_message("All refunds handled.")] for _ in range(20)]),
    tracing_disabled=True,
)
