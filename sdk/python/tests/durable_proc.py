"""A separate interpreter that starts or resumes a durable run of the seed's refund agent.

``python durable_proc.py start`` runs the agent through ``Runs.run`` until it
pauses and prints ``RESULT: {"run_id", "status", "approvals"}``;
``python durable_proc.py resume RUN_ID`` resumes it through ``Runs.resume``
and prints ``RESULT: {"status", "final_output", "tool_outputs", "last_input"}``.
Each process builds its own scripted model (the part of the conversation it
plays), as a real deployment builds its own model provider.

Environment: PLIUZ_API_KEY, PLIUZ_BASE_URL, PLIUZ_EXAMPLE_LEDGER (the refund
ledger), SCENARIO (single | two | as_tool | handoff | quick | bad_args), SESSION_ID,
SLOW_TOOL (seconds),
CALL_PREFIX (fresh call ids per test, as a real model sends), ORDER, AMOUNT,
KILL_AFTER_TOOL=1 (SIGKILL this process once the tool ran, before the run completes),
KILL_IN_TOOL=1 (SIGKILL this process inside the tool body, after its effect, before the report),
LEASE_SECONDS, RESUME_WAIT=0 (resume with wait=False).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from agents import Agent, RunConfig, function_tool
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

from pliuz.adapters.openai_agents import Runs, gated_tool

REPO = Path(__file__).resolve().parents[3]


def _seed() -> Any:
    sys.path.insert(0, str(REPO / "examples"))  # the seed imports its neighbour refund_ledger
    spec = importlib.util.spec_from_file_location(
        "openai_agents_refund", REPO / "examples" / "openai_agents_refund.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


seed = _seed()
support: Agent[Any] = seed.agent  # the seed's "Support agent" with the gated issue_refund


@gated_tool()
@function_tool
def quick_tool(note: str) -> str:
    """A tool whose policy expires in 2 seconds."""
    seed.charge_back(f"quick:{note}", 0)
    return f"quick {note}"


def slow_tool_if_asked() -> None:
    """SLOW_TOOL=N: the refund takes N seconds (longer than a lease, or than a stop signal)."""
    if not env("SLOW_TOOL"):
        return
    fast = seed.charge_back

    def slow(order_id: str, amount_cents: int) -> str:
        time.sleep(float(env("SLOW_TOOL")))
        return str(fast(order_id, amount_cents))

    seed.charge_back = slow


def die_in_tool_if_asked() -> None:
    """KILL_IN_TOOL=1: the refund happens, then the process dies before reporting it."""
    if not env("KILL_IN_TOOL"):
        return
    real = seed.charge_back

    def dying(order_id: str, amount_cents: int) -> str:
        real(order_id, amount_cents)
        os.kill(os.getpid(), signal.SIGKILL)
        return "unreachable"

    seed.charge_back = dying


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def call(n: int) -> str:
    return f"{env('CALL_PREFIX', 'call')}_{n}"


def refund(order: str, amount: int, n: int) -> Any:
    args = {"order_id": order, "amount_cents": amount}
    return function_call("issue_refund", args, call_id=call(n))


def starting_agent(scenario: str) -> Agent[Any]:
    if scenario == "as_tool":
        return Agent(
            name="Manager",
            tools=[support.tools[0], support.as_tool("support", "Handles one refund request.")],
        )
    if scenario == "handoff":
        return Agent(name="Triage", handoffs=[support])
    if scenario == "quick":
        return Agent(name="Quick agent", tools=[quick_tool])
    return support


def start_steps(scenario: str) -> list[Any]:
    order, amount = env("ORDER", "A-1"), int(env("AMOUNT", "5000"))
    if scenario == "two":
        return [[refund(order, amount, 1), refund(order + "-b", amount + 1, 2)]]
    if scenario == "as_tool":
        nested = function_call("support", {"input": f"refund {order}-c"}, call_id=call(3))
        return [
            [refund(order, amount, 1), refund(order + "-b", amount + 1, 2), nested],
            [refund(order + "-c", amount + 2, 4)],  # the nested Support agent's turn
        ]
    if scenario == "handoff":
        return [
            [function_call("transfer_to_support_agent", {}, call_id=call(5))],
            [refund(order, amount, 1)],
        ]
    if scenario == "quick":
        return [[function_call("quick_tool", {"note": order}, call_id=call(1))]]
    if scenario == "bad_args":  # one call the model garbled, one to decide
        return [[function_call("issue_refund", "{oops", call_id=call(9)), refund(order, amount, 1)]]
    return [[refund(order, amount, 1)]]


def resume_steps(scenario: str) -> list[Any]:
    final: list[Any] = []
    if env("KILL_AFTER_TOOL"):
        # The tool ran (and was reported); die before the run is completed.
        final.append(ModelStep.respond(lambda _call: os.kill(os.getpid(), signal.SIGKILL)))  # type: ignore[arg-type,return-value]
    if scenario == "as_tool":
        final.append([assistant_message("nested refund handled")])
    final.append([assistant_message("All refunds handled.")])
    return final


def tool_outputs(model: ScriptedModel) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in model.calls:
        for item in c.input if isinstance(c.input, list) else []:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                out[str(item.get("call_id"))] = str(item.get("output"))
    return out


def main() -> None:
    mode = sys.argv[1]
    scenario = env("SCENARIO", "single")
    agent = starting_agent(scenario)
    lease = int(env("LEASE_SECONDS", "60"))
    runs = Runs(lease_seconds=lease, heartbeat_every=max(1.0, lease / 4))
    slow_tool_if_asked()
    die_in_tool_if_asked()
    if mode == "start":  # the synchronous twin
        model = ScriptedModel(start_steps(scenario))
        config = RunConfig(model=model, tracing_disabled=True, group_id=env("SESSION_ID"))
        result = runs.run_sync(agent, f"Please refund order {env('ORDER', 'A-1')}.",
                               run_config=config)  # fmt: skip
        out: dict[str, Any] = {
            "run_id": result.run_id,
            "status": result.status,
            "approvals": [a.id for a in result.approvals],
        }
    else:
        model = ScriptedModel(resume_steps(scenario))
        config = RunConfig(model=model, tracing_disabled=True, group_id=env("SESSION_ID"))
        res = asyncio.run(
            runs.resume(sys.argv[2], agent, wait=env("RESUME_WAIT", "1") != "0", run_config=config)
        )
        last = model.last_call
        out = {
            "status": res.status,
            "final_output": res.final_output,
            "tool_outputs": tool_outputs(model),
            "last_input": str(last.input) if last is not None else None,
            "approvals": [a.id for a in res.approvals],
        }
    print("RESULT: " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
