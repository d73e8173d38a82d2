"""Pliuz approval gates for LangGraph and LangChain tools.

Install from the repository: ``pip install "./sdk/python[langgraph]"``.

Two ways to put a human in front of an action; pick one per action.

**1. Gate a tool** (:func:`gated_tool` / :func:`wrap_tool`) — the default choice
for agents (``create_agent``, ``ToolNode``, any ``StateGraph`` that runs tools)::

    from langchain_core.tools import tool
    from pliuz.adapters.langgraph import gated_tool

    @gated_tool(policy="refunds")
    @tool
    def issue_refund(order_id: str, amount_cents: int) -> str:
        \"\"\"Issue a customer refund.\"\"\"
        return charge_back(order_id, amount_cents)

The model sees the same tool (name, description, argument schema). When it
calls the tool, the wrapper asks Pliuz for approval and **waits in place**
(the node blocks or awaits) until a human decides. On approval the original
tool runs with the final (possibly edited) arguments and the execution is
reported. Otherwise the tool does not run and the model gets a ``ToolMessage``
saying why (rejected with the reviewer's reason, expired, timed out, approval
server unreachable). It fails closed. The LangChain tool call id is the
request's ``call_id`` and the LangGraph ``thread_id`` its ``session_id``; both
are part of the idempotency key, so a re-run of the node (after a crash or a
restart) re-attaches to the same request and never runs the tool twice.
No checkpointer is needed.

**2. Pause the graph** (:func:`require_approval` / :func:`run_with_approval`
inside a node) — for graphs that should not hold a worker while a human
decides (hours, days) and already use a checkpointer. The helper creates (or
re-attaches to) the Pliuz request and, while it is pending, calls LangGraph's
``interrupt()`` so the run pauses and is checkpointed. Resume with
``Command(resume=...)`` (any value) or :func:`resume_when_decided`, which waits
on Pliuz and then resumes. On resume the decision is read **from Pliuz**, never
from the resume value: a forged resume cannot approve anything, it just pauses
the graph again.

**3. LangChain's human-in-the-loop middleware, decided in Pliuz**
(:class:`PliuzHumanInTheLoopMiddleware`) — a drop-in for
``langchain.agents.middleware.HumanInTheLoopMiddleware`` with the same
``interrupt_on`` and ``interrupt_mode``: approve, edit, reject and respond come
from Pliuz, asked once (see :mod:`~pliuz.adapters.langgraph.hitl`).
**4. Ask a person** (:func:`ask_human_tool`): a tool the model calls with a
question (and optional choices) that returns the person's answer.

The package: :mod:`~pliuz.adapters.langgraph.tools` (gated tools),
:mod:`~pliuz.adapters.langgraph.hitl` (the middleware),
:mod:`~pliuz.adapters.langgraph.interrupt` (pausing a node) and
:mod:`~pliuz.adapters.langgraph.resume` (resuming); import everything from here.
"""

from __future__ import annotations

from ._common import INTERRUPT_TYPE
from .ask_human import ask_human_tool
from .hitl import HumanInterrupt, PliuzHumanInTheLoopMiddleware
from .interrupt import (
    AskOptions,
    arequire_approval,
    arun_with_approval,
    require_approval,
    run_with_approval,
)
from .resume import aresume_when_decided, pending_approvals, resume_when_decided
from .tools import PliuzGatedTool, gated_tool, wrap_tool

__all__ = [
    "INTERRUPT_TYPE",
    "AskOptions",
    "HumanInterrupt",
    "PliuzGatedTool",
    "PliuzHumanInTheLoopMiddleware",
    "RunOptions",
    "arequire_approval",
    "aresume_when_decided",
    "arun_with_approval",
    "ask_human_tool",
    "gated_tool",
    "pending_approvals",
    "require_approval",
    "resume_when_decided",
    "run_with_approval",
    "wrap_tool",
]
