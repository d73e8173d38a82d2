"""Human approval for an OpenAI Agents SDK refund tool, with Pliuz.

The middle block is the sample from the Pliuz integration page, verbatim.

Run it against a Pliuz server (``pliuz serve``) with an agent key::

    export PLIUZ_API_KEY=pliuz_ak_...        # pliuz agents create support-bot
    export PLIUZ_BASE_URL=http://127.0.0.1:8700
    export OPENAI_API_KEY=sk-...             # or PLIUZ_EXAMPLE_SCRIPTED=1 for no model at all
    python examples/openai_agents_refund.py

then approve, reject or edit the request in the inbox (or over the API).
With ``PLIUZ_EXAMPLE_SCRIPTED=1`` a scripted model (``agents.testing.ScriptedModel``)
asks for one refund, so the example runs offline.
"""

from __future__ import annotations

import json
import os


def charge_back(order_id: str, amount_cents: int) -> str:
    """Stand-in for the payment provider call. Appends to $PLIUZ_EXAMPLE_LEDGER if set."""
    ledger = os.environ.get("PLIUZ_EXAMPLE_LEDGER")
    if ledger:
        with open(ledger, "a", encoding="utf-8") as f:
            f.write(json.dumps({"order_id": order_id, "amount_cents": amount_cents}) + "\n")
    return f"Refunded {amount_cents} cents on order {order_id}."


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

    if os.environ.get("PLIUZ_EXAMPLE_SCRIPTED"):
        from agents.testing import ScriptedModel, assistant_message, function_call

        order_id = os.environ.get("PLIUZ_EXAMPLE_ORDER", "A-1")
        amount = int(os.environ.get("PLIUZ_EXAMPLE_AMOUNT", "5000"))
        model = ScriptedModel(
            [
                [
                    function_call(
                        "issue_refund",
                        {"order_id": order_id, "amount_cents": amount},
                        call_id=os.environ.get("PLIUZ_EXAMPLE_CALL_ID", "call_refund_1"),
                    )
                ],
                [assistant_message("I have handled the refund request.")],
            ]
        )
        result = Runner.run_sync(
            agent,
            f"Please refund {amount} cents on order {order_id}.",
            run_config=RunConfig(model=model, tracing_disabled=True),
        )
        for call in model.calls[1:]:
            for item in call.input if isinstance(call.input, list) else []:
                if isinstance(item, dict) and item.get("type") == "function_call_output":
                    print("TOOL OUTPUT:", item.get("output"))
    else:
        result = Runner.run_sync(agent, "Please refund 50 euros on order A-1.")
    print("FINAL:", result.final_output)


if __name__ == "__main__":
    main()
