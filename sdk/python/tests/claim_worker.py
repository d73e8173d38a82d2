"""An agent process for the exactly-once tests: runs one gated call per stdin line.

Each line is JSON ``{"session": ..., "order_id": ..., "amount_cents": ...}``; the
gated body appends the session to COUNTER_FILE. For each line it prints
``RAN <session>`` or ``NOT_RUN <session> <error class>: <message>``. ``argv[1]``
picks the ``sync`` or ``async`` gate. Environment: PLIUZ_API_KEY, PLIUZ_BASE_URL,
COUNTER_FILE.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pliuz
from pliuz import AsyncPliuzClient, PliuzClient, gated

COUNTER = os.environ["COUNTER_FILE"]
SESSION: dict[str, str] = {}


def _count() -> None:
    with open(COUNTER, "a", encoding="utf-8") as f:
        f.write(SESSION["id"] + "\n")


@gated(client=PliuzClient(), session_id=lambda: SESSION["id"])
def issue_refund(order_id: str, amount_cents: int) -> str:
    _count()
    return f"refunded {amount_cents} on {order_id}"


async def _async_refund(order_id: str, amount_cents: int) -> str:
    _count()
    return f"refunded {amount_cents} on {order_id}"


def main() -> None:
    mode = sys.argv[1]
    loop = asyncio.new_event_loop()
    async_client = AsyncPliuzClient()
    # The same tool name as the sync one, so the same call has the same idempotency key.
    refund_async = gated(
        client=async_client, session_id=lambda: SESSION["id"], tool_name="issue_refund"
    )(_async_refund)
    print("READY", flush=True)
    for line in sys.stdin:
        call = json.loads(line)
        SESSION["id"] = call["session"]
        try:
            if mode == "sync":
                issue_refund(call["order_id"], call["amount_cents"])
            else:
                loop.run_until_complete(refund_async(call["order_id"], call["amount_cents"]))
            print("RAN", call["session"], flush=True)
        except pliuz.PliuzError as exc:
            print("NOT_RUN", call["session"], f"{type(exc).__name__}: {exc}", flush=True)
    loop.run_until_complete(async_client.aclose())


if __name__ == "__main__":
    main()
