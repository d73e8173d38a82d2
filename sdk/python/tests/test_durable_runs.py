"""Durable runs end to end: process A pauses the seed's agent and exits; a human decides over
the API; process B — a new interpreter — resumes the run. Real server, real Runner."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from agents import Agent, RunConfig, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from durable_helpers import AgentAPI, DurableCase
from durable_proc import support
from pydantic import BaseModel
from server import Human, PliuzServer

from pliuz.adapters.openai_agents import Runs, RunsResult, gated_tool


def run_support_in_process(model: ScriptedModel, session: str) -> RunsResult:
    """The seed's support agent asked for a refund, here and now, on ``session``."""
    config = RunConfig(model=model, tracing_disabled=True, group_id=session)
    return Runs().run_sync(support, "refund", run_config=config)


def test_approve_then_resume_in_another_process(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    case = DurableCase(server, tmp_path)
    started = case.start(AMOUNT="5000")
    assert started["status"] == "waiting" and len(started["approvals"]) == 1
    (a,) = human.wait_pending(tool="issue_refund", session=case.session)
    assert a["id"] == started["approvals"][0]
    assert a["tool_args"] == {"order_id": case.order, "amount_cents": 5000}
    assert a["call_id"] and a["session_id"] == case.session
    assert case.ledger_rows() == []  # the process exited; nothing ran
    assert AgentAPI(server).run(started["run_id"])["status"] == "waiting"

    human.decide_ok(a["id"], "approve")
    assert AgentAPI(server).run(started["run_id"])["status"] == "ready"
    done = case.resume(started["run_id"])
    assert done["status"] == "completed" and done["final_output"] == "All refunds handled."
    assert case.ledger_rows() == case.refund_of(5000)
    assert f"Refunded 5000 cents on order {case.order}." in done["tool_outputs"].values()
    assert human.get(a["id"])["status"] == "executed"
    run = AgentAPI(server).run(started["run_id"])
    assert run["status"] == "completed"
    # Still exactly one request for this call: resuming did not ask again.
    mine = [x["id"] for x in human.list(tool="issue_refund") if x["session_id"] == case.session]
    assert mine == [a["id"]]


def test_edit_runs_with_the_edited_args(server: PliuzServer, human: Human, tmp_path: Path) -> None:
    case = DurableCase(server, tmp_path)
    started = case.start(AMOUNT="7000")
    (a,) = human.wait_pending(tool="issue_refund", session=case.session)
    human.decide_ok(
        a["id"], "edit", final_args={"order_id": case.order, "amount_cents": 2500}, reason="cap"
    )
    done = case.resume(started["run_id"])
    assert done["status"] == "completed"
    assert case.ledger_rows() == case.refund_of(2500)
    assert f"Refunded 2500 cents on order {case.order}." in done["tool_outputs"].values()


def test_reject_never_runs_and_the_model_gets_the_reason(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    case = DurableCase(server, tmp_path)
    started, a = case.start_decided(human, "reject", reason="duplicate of ticket 881")
    done = case.resume(started["run_id"])
    assert done["status"] == "completed"
    assert case.ledger_rows() == []
    assert "duplicate of ticket 881" in done["last_input"]
    assert "NOT executed" in done["last_input"]
    assert human.get(a["id"])["status"] == "rejected"


def test_expiry_is_told_to_the_model(server: PliuzServer, human: Human, tmp_path: Path) -> None:
    case = DurableCase(server, tmp_path, scenario="quick")
    started = case.start()
    (a,) = human.wait_pending(tool="quick_tool", session=case.session)
    deadline = time.monotonic() + 30
    while AgentAPI(server).run(started["run_id"])["status"] != "ready":
        assert time.monotonic() < deadline, "the run never became ready after the expiry"
        time.sleep(0.2)
    done = case.resume(started["run_id"])
    assert done["status"] == "completed"
    assert "expired" in done["last_input"]
    assert case.ledger_rows() == []
    assert human.get(a["id"])["status"] == "expired"


def test_two_calls_and_a_nested_agent_tool_wait_for_every_decision(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    case = DurableCase(server, tmp_path, scenario="as_tool")
    started = case.start(AMOUNT="3000")
    assert len(started["approvals"]) == 3  # two direct calls and one inside agent.as_tool()
    pending = human.wait_pending(3, tool="issue_refund", session=case.session)
    by_order = {a["tool_args"]["order_id"]: a for a in pending}
    assert set(by_order) == {case.order, case.order + "-b", case.order + "-c"}

    human.decide_ok(by_order[case.order]["id"], "approve")
    human.decide_ok(by_order[case.order + "-b"]["id"], "reject", reason="not this one")
    assert AgentAPI(server).run(started["run_id"])["status"] == "waiting"
    early = case.resume(started["run_id"], RESUME_WAIT="0")  # not ready: returns at once
    assert early["status"] == "waiting" and case.ledger_rows() == []

    human.decide_ok(by_order[case.order + "-c"]["id"], "approve")
    done = case.resume(started["run_id"])
    assert done["status"] == "completed", done
    rows = sorted(case.ledger_rows(), key=lambda r: str(r["order_id"]))
    assert rows == [
        {"order_id": case.order, "amount_cents": 3000},
        {"order_id": case.order + "-c", "amount_cents": 3002},
    ]
    assert "not this one" in done["last_input"]


def test_call_reached_through_a_handoff(server: PliuzServer, human: Human, tmp_path: Path) -> None:
    case = DurableCase(server, tmp_path, scenario="handoff")
    started, _ = case.start_decided(human, "approve", AMOUNT="4100")
    done = case.resume(started["run_id"])
    assert done["status"] == "completed"
    assert case.ledger_rows() == case.refund_of(4100)


def test_server_sigkill_between_pause_and_resume(own_server: PliuzServer, tmp_path: Path) -> None:
    human = Human(own_server)
    case = DurableCase(own_server, tmp_path)
    started = case.start(AMOUNT="6000")
    (a,) = human.wait_pending(tool="issue_refund", session=case.session)
    own_server.kill()
    own_server.start()
    human.decide_ok(a["id"], "approve")
    done = case.resume(started["run_id"])
    assert done["status"] == "completed"
    assert case.ledger_rows() == case.refund_of(6000)


def test_two_resumers_race_and_the_tool_runs_once(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    case = DurableCase(server, tmp_path)
    started, _ = case.start_decided(human, "approve", AMOUNT="5100")
    procs = [case.spawn("resume", started["run_id"]) for _ in range(2)]
    outcomes = []
    for proc, log in procs:
        code = proc.wait(timeout=60)
        outcomes.append((code, log.read_text(errors="replace")))
    winners = [text for code, text in outcomes if code == 0 and '"status": "completed"' in text]
    losers = [text for code, text in outcomes if code != 0]
    assert len(winners) == 1, outcomes
    assert len(losers) == 1 and ("run_claimed" in losers[0] or "completed" in losers[0]), outcomes
    assert case.ledger_rows() == case.refund_of(5100)
    assert AgentAPI(server).run(started["run_id"])["status"] == "completed"


def test_resumer_killed_after_the_tool_ran_does_not_run_it_again(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    case = DurableCase(server, tmp_path, LEASE_SECONDS="10")
    started, _ = case.approved_then_resumer_killed(human, 5200, KILL_AFTER_TOOL="1")
    assert AgentAPI(server).run(started["run_id"])["status"] == "running"
    # The dead resumer's lease runs out; the next one takes over and must not refund twice.
    told = case.taken_over_without_refunding_again(started["run_id"], 5200)
    # Whether the report landed before the kill decides which of the two the model is told.
    assert "already executed" in told or "outcome is unknown" in told, told


def test_resumer_killed_between_the_tool_and_its_report_leaves_outcome_unknown(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    case = DurableCase(server, tmp_path, LEASE_SECONDS="10")
    started, a = case.approved_then_resumer_killed(human, 5250, KILL_IN_TOOL="1")
    # Claimed, never reported: the server says so and nobody may claim it again.
    approval = human.get(a["id"])
    assert approval["status"] == "executing", approval
    assert approval["execution"]["outcome"] is None, approval
    # The body did not run a second time, and the model was told why.
    told = case.taken_over_without_refunding_again(started["run_id"], 5250)
    assert "NOT executed" in told and "outcome is unknown" in told, told
    assert human.get(a["id"])["status"] == "executing"


def test_heartbeats_keep_the_lease_during_a_long_tool(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    case = DurableCase(server, tmp_path, LEASE_SECONDS="10")
    started, _ = case.start_decided(human, "approve", AMOUNT="5300")
    slow, slow_log = case.spawn("resume", started["run_id"], SLOW_TOOL="18")
    api = AgentAPI(server)
    deadline = time.monotonic() + 30
    while api.run(started["run_id"])["status"] != "running":
        assert time.monotonic() < deadline, slow_log.read_text()
        time.sleep(0.1)
    time.sleep(12)  # past the 10 s lease: only heartbeats keep it
    rival = api.request("POST", f"/runs/{started['run_id']}/claim", json={"lease_seconds": 10})
    assert rival.status_code == 409 and rival.json()["code"] == "run_claimed", rival.text
    done = case.result(slow, slow_log)
    assert done["status"] == "completed"
    assert case.ledger_rows() == case.refund_of(5300)


def test_unreadable_arguments_are_answered_without_a_request(
    server: PliuzServer, human: Human, tmp_path: Path, agent_env: dict[str, str]
) -> None:
    case = DurableCase(server, tmp_path, scenario="bad_args")
    started = case.start(AMOUNT="5600")
    assert len(started["approvals"]) == 1  # only the readable call waits for a human
    (a,) = human.wait_pending(tool="issue_refund", session=case.session)
    human.decide_ok(a["id"], "approve")
    done = case.resume(started["run_id"])
    assert done["status"] == "completed"
    outputs = list(done["tool_outputs"].values())
    assert any("arguments are not a JSON object" in o for o in outputs), outputs
    assert case.ledger_rows() == case.refund_of(5600)

    # Nothing else to decide: the run goes on by itself and never pauses.
    session = f"bad-{uuid.uuid4().hex[:8]}"
    model = ScriptedModel(
        [[function_call("issue_refund", "{oops", call_id="bad_1")], [assistant_message("sorry")]]
    )
    result = run_support_in_process(model, session)
    assert result.status == "finished" and result.run_id is None
    assert result.final_output == "sorry"
    assert [x for x in human.list(tool="issue_refund") if x["session_id"] == session] == []


def test_auto_approved_call_runs_at_once_without_a_stored_run(
    server: PliuzServer, human: Human, tmp_path: Path, agent_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("PLIUZ_EXAMPLE_LEDGER", str(ledger))
    session = f"auto-{uuid.uuid4().hex[:8]}"
    model = ScriptedModel(
        [
            [function_call("issue_refund", {"order_id": "S-1", "amount_cents": 900},
                           call_id="auto_1")],
            [assistant_message("refunded")],
        ]
    )  # fmt: skip
    result = run_support_in_process(model, session)
    assert result.status == "finished" and result.run_id is None
    assert result.final_output == "refunded"
    assert ledger.read_text().splitlines() == ['{"order_id": "S-1", "amount_cents": 900}']
    (a,) = [x for x in human.list(tool="issue_refund") if x["session_id"] == session]
    assert a["status"] == "executed" and a["decision"]["by"] == "policy:refunds"


class Card(BaseModel):
    number: str
    holder: str


def test_edit_with_redacted_values_restores_them_in_the_resumed_run(
    server: PliuzServer, human: Human, agent_env: dict[str, str]
) -> None:
    ran: list[tuple[str, int, dict[str, str]]] = []

    @gated_tool(redact=["card.number"])
    @function_tool
    async def pay_invoice(invoice_id: str, amount_cents: int, card: Card) -> str:
        """Pay an invoice with a card."""
        ran.append((invoice_id, amount_cents, card.model_dump()))
        return "paid"

    agent = Agent(name="Billing", tools=[pay_invoice])
    session = f"redact-{uuid.uuid4().hex[:8]}"
    args = {"invoice_id": "INV-9", "amount_cents": 9000,
            "card": {"number": "4111111111111111", "holder": "Ada"}}  # fmt: skip
    start_model = ScriptedModel([[function_call("pay_invoice", args, call_id="r_1")]])
    config = RunConfig(model=start_model, tracing_disabled=True, group_id=session)
    started = Runs().run_sync(agent, "pay", run_config=config)
    (a,) = started.approvals
    assert a.tool_args["card"] == {"number": "[REDACTED]", "holder": "Ada"}
    assert "4111111111111111" not in str(human.get(a.id))
    edited = {**a.tool_args, "amount_cents": 4500,
              "card": {"number": "[REDACTED]", "holder": "Ada Lovelace"}}  # fmt: skip
    human.decide_ok(a.id, "edit", final_args=edited)
    assert started.run_id is not None

    resume_model = ScriptedModel([[assistant_message("done")]])
    config = RunConfig(model=resume_model, tracing_disabled=True, group_id=session)
    done = Runs().resume_sync(started.run_id, agent, run_config=config)
    assert done.status == "completed"
    assert ran == [("INV-9", 4500, {"number": "4111111111111111", "holder": "Ada Lovelace"})]
