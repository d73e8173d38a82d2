"""Human approval for an OpenAI Agents SDK refund tool, with Pliuz.

The middle block is the sample from the Pliuz integration page, verbatim.

Run it against a Pliuz server (``pliuz serve``) with an agent key::

    export PLIUZ_API_KEY=pliuz_ak_...        # pliuz agents create support-bot
    python examples/openai_agents_refund.py  # PLIUZ_BASE_URL defaults to http://127.0.0.1:8700

then approve, reject or edit the request in the inbox (or with
``examples/approve_pending.py``).

The model: offline by default, a scripted model (``agents.testing.ScriptedModel``)
asks for one refund of 5000 cents on order A-1. With ``OPENAI_API_KEY`` set, an
OpenAI model decides instead (``PLIUZ_EXAMPLE_SCRIPTED=1`` keeps the scripted one).
The first line printed says which one runs.

Each run is a new model turn with a new tool call id, so it asks for a new
approval. Set ``PLIUZ_EXAMPLE_CALL_ID`` to repeat one call id: the SDK derives
the request's idempotency key from the tool, its arguments and the call id, so a
repeated call attaches to the same request and never runs the tool twice (once
executed, the model is told it already ran).
"""

from __future__ import annotations

import logging
import os
import uuid

from refund_ledger import charge_back


# --- sample from the integration page, verbatim -------------------------------
from agents import Agent, function_tool
from pliuz.adapters.openai_agents import gated_tool


# Stacks on @function_tool: the gate runs BEFORE the tool body.
@gated_tool(policy="refunds")
@function_tool
def issue_refund(order_id: str, amount_cents: int) -> str:
    """Issue a customer refund."""
    return charge_back(order_id, amount_cents)


agent = Agent(
    name="Support agent",
    tools=[issue_refund],
)
# When issue_refund is called, Pliuz pauses, routes the request to
# Slack or the web inbox, and only lets it execute on approve.
# Every approve / reject / edit lands in the tamper-evident audit trail.
# --- end of sample --------------------------------------------------------------


def main() -> None:
    from agents import RunConfig, Runner

    # Pliuz logs configuration mistakes (no or a wrong key, an unknown policy)
    # as warnings on the "pliuz" logger: show them.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if os.environ.get("OPENAI_API_KEY") and not os.environ.get("PLIUZ_EXAMPLE_SCRIPTED"):
        print("Model: OpenAI (OPENAI_API_KEY is set).", flush=True)
        result = Runner.run_sync(agent, "Please refund 50 euros on order A-1.")
        print("FINAL:", result.final_output)
        return

    from agents.testing import ScriptedModel, assistant_message, function_call

    print("Model: scripted, offline (set OPENAI_API_KEY to use an OpenAI model).", flush=True)
    order_id = os.environ.get("PLIUZ_EXAMPLE_ORDER", "A-1")
    amount = int(os.environ.get("PLIUZ_EXAMPLE_AMOUNT", "5000"))
    call_id = os.environ.get("PLIUZ_EXAMPLE_CALL_ID") or f"call_refund_{uuid.uuid4().hex[:12]}"
    model = ScriptedModel(
        [
            [
                function_call(
                    "issue_refund",
                    {"order_id": order_id, "amount_cents": amount},
                    call_id=call_id,
                )
            ],
            [assistant_message("I have handled the refund request.")],
        ]
    )
    print(f"Asking to refund {amount} cents on order {order_id}; waiting for a decision ...")
    result = Runner.run_sync(
        agent,
        f"Please refund {amount} cents on order {order_id}.",
        run_config=RunConfig(model=model, tracing_disabled=True),
    )
    for call in model.calls[1:]:
        for item in call.input if isinstance(call.input, list) else []:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                print("TOOL OUTPUT:", item.get("output"))
    print("FINAL:", result.final_output)


if __name__ == "__main__":
    main()
