"""The examples' stand-in for a payment provider (shared by the runnable samples)."""

import json
import os


def charge_back(order_id: str, amount_cents: int) -> str:
    """Stand-in for the payment provider call. Appends to $PLIUZ_EXAMPLE_LEDGER if set."""
    ledger = os.environ.get("PLIUZ_EXAMPLE_LEDGER")
    if ledger:
        with open(ledger, "a", encoding="utf-8") as f:
            f.write(json.dumps({"order_id": order_id, "amount_cents": amount_cents}) + "\n")
    return f"Refunded {amount_cents} cents on order {order_id}."
