"""Durable runs with the OpenAI Agents SDK and Pliuz: no process waits for the human.

The refund agent of ``openai_agents_refund.py`` (the same ``@gated_tool``), run
through :class:`pliuz.adapters.openai_agents.Runs`: starting a run pauses it at
the gated call and stores it in Pliuz; once the request is decided, any process
resumes it — a webhook handler, a worker (``python -m pliuz.worker``) or this
script::

    export PLIUZ_API_KEY=pliuz_ak_...        # pliuz agents create support-bot
    export PLIUZ_BASE_URL=http://127.0.0.1:8700
    export PLIUZ_EXAMPLE_SCRIPTED=1          # a scripted model: runs offline
    python examples/openai_agents_durable.py start     # prints RUN: <id>, then exits
    # ... approve, edit or reject the request in the inbox ...
    python examples/openai_agents_durable.py resume <id>

``start_refund`` and ``handle_webhook`` are what the web handlers of the SDK
README's "Durable runs" section call. Without ``PLIUZ_EXAMPLE_SCRIPTED`` the
agent uses your OpenAI model (``OPENAI_API_KEY``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from agents import Agent, RunConfig, function_tool
from pliuz import PliuzConflictError
from pliuz.adapters.openai_agents import Runs, gated_tool
from pliuz.runs import PliuzRunError
from pliuz.webhooks import verify

from refund_ledger import charge_back


@gated_tool(policy="refunds")
@function_tool
def issue_refund(order_id: str, amount_cents: int) -> str:
    """Issue a customer refund."""
    return charge_back(order_id, amount_cents)


agent = Agent(name="Support agent", tools=[issue_refund])
runs = Runs()  # PLIUZ_API_KEY / PLIUZ_BASE_URL


def run_config(phase: str, order_id: str = "", amount_cents: int = 0) -> RunConfig:
    """The model provider is not part of the stored state: each process passes its own."""
    if not os.environ.get("PLIUZ_EXAMPLE_SCRIPTED"):
        return RunConfig()
    from agents.testing import ScriptedModel, assistant_message, function_call

    if phase == "start":  # the model asks for the refund; the run pauses there
        args = {"order_id": order_id, "amount_cents": amount_cents}
        steps: list[Any] = [[function_call("issue_refund", args, call_id=f"call_{order_id}")]]
    else:  # after the decision the model sees the tool result and answers
        steps = [[assistant_message("I have handled the refund request.")]]
    return RunConfig(model=ScriptedModel(steps), tracing_disabled=True)


async def start_refund(order_id: str, amount_cents: int) -> dict[str, Any]:
    """POST /refunds: start the agent; answer at once with the paused run's id."""
    result = await runs.run(
        agent,
        f"Please refund {amount_cents} cents on order {order_id}.",
        run_config=run_config("start", order_id, amount_cents),
    )
    if result.run_id is None:  # finished without needing an approval
        return {"status": "done", "answer": result.final_output}
    return {
        "status": "awaiting_approval",
        "run_id": result.run_id,
        "approvals": [a.id for a in result.approvals],
    }


async def resume_refund(run_id: str) -> dict[str, Any]:
    """Continue a run whose approvals are settled (returns at once if it is not ready)."""
    result = await runs.resume(run_id, agent, wait=False, run_config=run_config("resume"))
    return {"run_id": run_id, "status": result.status, "answer": result.final_output}


async def handle_webhook(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """POST /pliuz/webhook: verify the signature, then resume the run that became ready.

    Raises :class:`~pliuz.webhooks.WebhookVerificationError` for a delivery not signed
    with this agent's secret (answer 400). A retried delivery whose run another process
    already took is answered without resuming it again.
    """
    event = verify(headers, body, os.environ["PLIUZ_WEBHOOK_SECRET"])
    if event.get("type") != "run.ready":
        return {"ignored": event.get("type")}
    run_id = str(event["data"]["run_id"])
    try:
        return await resume_refund(run_id)
    except PliuzConflictError:
        return {"run_id": run_id, "status": "taken by another resumer"}
    except PliuzRunError as exc:
        return {"run_id": run_id, "status": "not resumed", "why": str(exc)}


def main(argv: list[str]) -> None:
    if argv[:1] == ["start"]:
        order = os.environ.get("PLIUZ_EXAMPLE_ORDER", "A-1")
        amount = int(os.environ.get("PLIUZ_EXAMPLE_AMOUNT", "5000"))
        out = asyncio.run(start_refund(order, amount))
        print("RUN:", out.get("run_id"), json.dumps(out))
    elif argv[:1] == ["resume"] and len(argv) == 2:
        out = asyncio.run(resume_refund(argv[1]))
        print("STATUS:", out["status"])
        print("FINAL:", out["answer"])
    else:
        raise SystemExit("usage: openai_agents_durable.py start | resume RUN_ID")


if __name__ == "__main__":
    main(sys.argv[1:])
