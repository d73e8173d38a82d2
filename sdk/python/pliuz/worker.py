"""Resume paused durable runs as they become ready: ``python -m pliuz.worker module:attr``.

``attr`` names an OpenAI Agents ``Agent``, a list of them, or a zero-argument
callable returning either (import-time side effects such as building a model
provider belong there). Runs are matched to agents by the starting agent's
name. The client comes from ``PLIUZ_API_KEY`` / ``PLIUZ_BASE_URL``. SIGINT or
SIGTERM stops taking new runs and exits once the runs in progress have
finished or paused again.

Options: ``--concurrency N`` (default 4), ``--poll-wait S`` (1-60, default 30),
``--lease-seconds S`` (default 300). For a ``RunConfig`` (model provider,
tracing) expose ``run_config`` next to the agents: ``module:attr`` with
``--run-config module:name``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["load_object", "main"]


def load_object(spec: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"expected module:attr, got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def _agents_from(obj: Any) -> list[Any]:
    from agents import Agent

    if callable(obj) and not isinstance(obj, Agent):
        obj = obj()
    items = [obj] if isinstance(obj, Agent) else list(obj) if isinstance(obj, (list, tuple)) else []
    if not items or not all(isinstance(a, Agent) for a in items):
        raise SystemExit("the worker target must be an Agent or a list of Agents")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pliuz.worker", description="Resume ready Pliuz durable runs."
    )
    parser.add_argument("target", help="module:attr naming an Agent or a list of Agents")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--poll-wait", type=int, default=30)
    parser.add_argument("--lease-seconds", type=int, default=300)
    parser.add_argument("--run-config", help="module:attr naming a RunConfig for every run")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format="%(asctime)s %(message)s"
    )
    sys.path.insert(0, "")  # like `python -m`: modules of the working directory
    agents = _agents_from(load_object(args.target))
    kwargs: dict[str, Any] = {}
    if args.run_config:
        kwargs["run_config"] = load_object(args.run_config)

    from .adapters.openai_agents import Runs

    runs = Runs(lease_seconds=args.lease_seconds)
    logging.getLogger("pliuz").info(
        "pliuz worker: serving %s", ", ".join(repr(a.name) for a in agents)
    )
    asyncio.run(
        runs.serve(
            agents,
            concurrency=args.concurrency,
            poll_wait=args.poll_wait,
            handle_signals=True,
            **kwargs,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
