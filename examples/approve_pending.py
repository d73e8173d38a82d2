"""Approve the oldest pending request over the API, as a person (no browser needed).

    PLIUZ_API_KEY=$(pliuz --config pliuz.toml users token alice@example.com) \\
        python examples/approve_pending.py

The key is a person's API token (``pliuz users token EMAIL``), not the agent's
key: agents never decide. It waits up to ``--wait`` seconds (default 60) for a
request to show up, prints what it approves, and approves exactly the arguments
it showed (their digest is sent with the decision).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from pliuz import PliuzClient


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a request")
    args = parser.parse_args()
    deadline = time.monotonic() + args.wait
    with PliuzClient() as client:
        while True:
            pending = client.list_approvals(status="pending").items
            if pending:
                break
            if time.monotonic() > deadline:
                print(f"no pending request within {args.wait:g} s", file=sys.stderr)
                return 1
            time.sleep(0.5)
        oldest = pending[-1]  # the list is newest first
        print(f"Approving {oldest.id}: {oldest.tool_name}({json.dumps(oldest.tool_args)})")
        decided = client.decide(oldest, "approve")
        print(f"Now {decided.status}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
