"""An agent process for the restart test: one gated tool call that bumps a file counter.

Environment: PLIUZ_API_KEY, PLIUZ_BASE_URL, COUNTER_FILE, SESSION_ID.
"""

from __future__ import annotations

import os

from agents import Agent, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from restart_scenario import count_refund, log_pliuz_debug

from pliuz.adapters.openai_agents import gated_tool

log_pliuz_debug()


@gated_tool()
@function_tool
def counted_refund(order_id: str, amount_cents: int) -> str:
    """Refund, counting executions in COUNTER_FILE."""
    return count_refund(order_id, amount_cents)


def main() -> None:
    model = ScriptedModel(
        [
            [
                function_call(
                    "counted_refund",
                    {"order_id": "K-1", "amount_cents": 4321},
                    call_id="proc_call_1",
                )
            ],
            [assistant_message("finished")],
        ]
    )
    agent = Agent(name="Restartable", tools=[counted_refund])
    result = Runner.run_sync(
        agent,
        "refund K-1",
        run_config=RunConfig(model=model, tracing_disabled=True, group_id=os.environ["SESSION_ID"]),
    )
    for call in model.calls:
        for item in call.input if isinstance(call.input, list) else []:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                print("TOOL OUTPUT:", item.get("output"), flush=True)
    print("FINAL:", result.final_output, flush=True)


if __name__ == "__main__":
    main()
