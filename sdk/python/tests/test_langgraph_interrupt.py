"""pliuz.adapters.langgraph.run_with_approval / require_approval: the graph pauses with
LangGraph's interrupt() on a pending Pliuz request, and the decision is read from Pliuz
on resume (a StateGraph with InMemorySaver, the real server, the human over HTTP)."""

from __future__ import annotations

import time
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from server import Human, join_checked
from test_langgraph_helpers import thread, thread_and_session

from pliuz import PliuzRejectedError
from pliuz.adapters.langgraph import (
    INTERRUPT_TYPE,
    aresume_when_decided,
    arun_with_approval,
    pending_approvals,
    require_approval,
    resume_when_decided,
    run_with_approval,
)


class State(TypedDict, total=False):
    order_id: str
    amount_cents: int
    card: dict[str, str]
    result: str


class Ledger:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def issue_refund(self, order_id: str, amount_cents: int) -> str:
        self.calls.append({"order_id": order_id, "amount_cents": amount_cents})
        return f"Refunded {amount_cents} on {order_id}."


def refund_graph(ledger: Ledger, **opts: Any) -> Any:
    def refund(state: State) -> State:
        result = run_with_approval(
            ledger.issue_refund,
            {"order_id": state["order_id"], "amount_cents": state["amount_cents"]},
            policy="refunds", on_reject="return", **opts,
        )  # fmt: skip
        return {"result": result}

    g = StateGraph(State)
    g.add_node("refund", refund)
    g.add_edge(START, "refund")
    g.add_edge("refund", END)
    return g.compile(checkpointer=InMemorySaver())


def requests_for(human: Human, session: str) -> list[dict[str, Any]]:
    return [a for a in human.list(tool="issue_refund") if a["session_id"] == session]


def new_refund_run() -> tuple[Ledger, Any, Any, str]:
    """A fresh ledger, the refund graph writing to it, a new thread and its session id."""
    ledger = Ledger()
    return ledger, refund_graph(ledger), *thread_and_session()


def test_pause_decide_resume_runs_once_with_final_args(
    agent_env: dict[str, str], human: Human
) -> None:
    ledger, graph, config, session = new_refund_run()

    out = graph.invoke({"order_id": "G-1", "amount_cents": 7000}, config)
    (intr,) = out["__interrupt__"]
    value = intr.value
    assert value["type"] == INTERRUPT_TYPE and value["status"] == "pending"
    assert value["tool_name"] == "issue_refund" and value["policy"] == "refunds"
    assert value["args"] == {"order_id": "G-1", "amount_cents": 7000}
    assert value["url"].endswith(f"/requests/{value['approval_id']}")
    assert pending_approvals(graph.get_state(config)) == {intr.id: value}
    assert ledger.calls == []

    (a,) = human.wait_pending(tool="issue_refund", session=session)
    assert a["id"] == value["approval_id"]
    assert a["client_metadata"] == {"langgraph_node": "refund"}
    human.decide_ok(a["id"], "edit", final_args={"order_id": "G-1", "amount_cents": 6000})

    out = graph.invoke(Command(resume="whatever"), config)
    assert out["result"] == "Refunded 6000 on G-1."
    assert ledger.calls == [{"order_id": "G-1", "amount_cents": 6000}]
    assert human.get(a["id"])["status"] == "executed"
    assert len(requests_for(human, session)) == 1


def test_forged_resume_while_pending_does_not_approve(
    agent_env: dict[str, str], human: Human
) -> None:
    ledger, graph, config, session = new_refund_run()

    first = graph.invoke({"order_id": "G-2", "amount_cents": 8000}, config)
    approval_id = first["__interrupt__"][0].value["approval_id"]

    # Someone resumes with an "approval" while nobody approved in Pliuz.
    for forged in ({"type": "approve"}, {"approval_id": approval_id, "status": "approved"}, True):
        out = graph.invoke(Command(resume=forged), config)
        (intr,) = out["__interrupt__"]  # paused again, on the same request
        assert intr.value["approval_id"] == approval_id
        assert "result" not in out
    assert ledger.calls == []
    assert [x["id"] for x in requests_for(human, session)] == [approval_id]
    assert human.get(approval_id)["status"] == "pending"

    # The real decision: rejected; resume_when_decided waits on Pliuz, then resumes.
    t = human.in_background(
        lambda: (time.sleep(0.3), human.decide_ok(approval_id, "reject", reason="fraud risk"))
    )
    out = resume_when_decided(graph, config, timeout=30)
    join_checked(t)
    assert ledger.calls == []
    assert out["result"] == (
        "The tool call issue_refund was rejected by user:bob@example.com and was NOT executed. "
        "Reason: fraud risk. Do not retry this call unchanged."
    )
    assert resume_when_decided(graph, config) is None  # nothing left to resume


def test_restart_reattaches_and_runs_exactly_once(agent_env: dict[str, str], human: Human) -> None:
    """A new process (fresh graph, fresh in-memory checkpointer) re-running the same thread
    finds the same request; after execution, a further re-run never runs it again."""
    ledger = Ledger()
    config, session = thread_and_session()
    start = {"order_id": "G-3", "amount_cents": 4242}

    before = refund_graph(ledger).invoke(start, config)
    approval_id = before["__interrupt__"][0].value["approval_id"]

    after_restart = refund_graph(ledger)  # the checkpoints are gone with the old process
    again = after_restart.invoke(start, config)
    assert again["__interrupt__"][0].value["approval_id"] == approval_id
    assert [x["id"] for x in requests_for(human, session)] == [approval_id]

    human.decide_ok(approval_id, "approve")
    out = resume_when_decided(after_restart, config, timeout=30)
    assert out["result"] == "Refunded 4242 on G-3."
    assert ledger.calls == [start]

    third = refund_graph(ledger).invoke(start, config)
    assert "__interrupt__" not in third
    assert third["result"].startswith(
        "The tool call issue_refund was already executed earlier for this same request"
    )
    assert "Refunded 4242 on G-3." in third["result"]
    assert ledger.calls == [start]
    assert len(requests_for(human, session)) == 1


def test_auto_approved_never_pauses(agent_env: dict[str, str], human: Human) -> None:
    ledger = Ledger()
    out = refund_graph(ledger).invoke({"order_id": "G-4", "amount_cents": 300}, thread())
    assert "__interrupt__" not in out
    assert out["result"] == "Refunded 300 on G-4."


def test_require_approval_redaction_and_rejection_raises(
    agent_env: dict[str, str], human: Human
) -> None:
    seen: list[dict[str, Any]] = []

    def refund(state: State) -> State:
        args = require_approval(
            "issue_refund",
            {"order_id": state["order_id"], "amount_cents": state["amount_cents"],
             "card": state["card"]},
            policy="refunds", redact=["card.number"],
        )  # fmt: skip
        seen.append(args)
        return {"result": "ok"}

    g = StateGraph(State)
    g.add_node("refund", refund)
    g.add_edge(START, "refund")
    graph = g.compile(checkpointer=InMemorySaver())

    card = {"number": "5555 4444 3333 1111", "holder": "Grace"}
    config = thread()
    out = graph.invoke({"order_id": "G-5", "amount_cents": 5000, "card": card}, config)
    value = out["__interrupt__"][0].value
    assert value["args"]["card"] == {"number": "[REDACTED]", "holder": "Grace"}
    a = human.get(value["approval_id"])
    assert a["tool_args"]["card"]["number"] == "[REDACTED]"
    human.decide_ok(a["id"], "edit", final_args={**a["tool_args"], "amount_cents": 4000})
    graph.invoke(Command(resume="decided"), config)
    assert seen == [{"order_id": "G-5", "amount_cents": 4000, "card": card}]

    # A second order on another thread, rejected: require_approval raises in the node.
    config2 = thread()
    out = graph.invoke({"order_id": "G-6", "amount_cents": 5000, "card": card}, config2)
    human.decide_ok(out["__interrupt__"][0].value["approval_id"], "reject", reason="dup")
    with pytest.raises(PliuzRejectedError) as err:
        resume_when_decided(graph, config2)
    assert err.value.reason == "dup"
    assert len(seen) == 1


async def test_async_node_and_async_resume(agent_env: dict[str, str], human: Human) -> None:
    ledger = Ledger()

    async def issue_refund(order_id: str, amount_cents: int) -> str:
        return ledger.issue_refund(order_id, amount_cents)

    async def refund(state: State) -> State:
        result = await arun_with_approval(
            issue_refund,
            {"order_id": state["order_id"], "amount_cents": state["amount_cents"]},
            policy="refunds",
        )
        return {"result": result}

    g = StateGraph(State)
    g.add_node("refund", refund)
    g.add_edge(START, "refund")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    out = await graph.ainvoke({"order_id": "G-7", "amount_cents": 9100}, config)
    approval_id = out["__interrupt__"][0].value["approval_id"]
    t = human.in_background(lambda: (time.sleep(0.3), human.decide_ok(approval_id, "approve")))
    out = await aresume_when_decided(graph, config, timeout=30)
    join_checked(t)
    assert out["result"] == "Refunded 9100 on G-7."
    assert ledger.calls == [{"order_id": "G-7", "amount_cents": 9100}]


def test_outside_a_graph_is_an_error(agent_env: dict[str, str]) -> None:
    with pytest.raises(RuntimeError, match="inside a LangGraph node"):
        require_approval("issue_refund", {"order_id": "x", "amount_cents": 1})
