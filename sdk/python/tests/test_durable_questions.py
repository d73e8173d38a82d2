"""Durable runs pause on questions: an ``ask_human_tool`` call under :class:`Runs` asks once,
the run is stored waiting on the question, a person answers over the API (or nobody does),
and a worker resumes the run; the model receives the answer. Real server, real Runner."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from agent_helpers import tool_outputs
from agents import Agent, RunConfig, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from server import Human, PliuzServer

from pliuz import PliuzClient
from pliuz.adapters.openai_agents import Runs, RunsResult, ask_human_tool, gated_tool
from pliuz.runs import RunsAPI


def person(server: PliuzServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.user_token}"},
        timeout=10,
    )


def pending_with(server: PliuzServer, marker: str) -> list[dict[str, Any]]:
    with person(server) as h:
        r = h.get("/api/v1/questions")
        r.raise_for_status()
        return [q for q in r.json()["items"] if marker in q["text"]]


def serve_until_one_result(agent: Agent[Any], model: ScriptedModel) -> RunsResult:
    """A worker (``Runs.serve``) that resumes the ready run and stops after it."""
    results: list[RunsResult] = []

    async def go() -> None:
        stop = asyncio.Event()

        def on_result(res: RunsResult) -> None:
            results.append(res)
            stop.set()

        config = RunConfig(model=model, tracing_disabled=True)
        worker = Runs().serve([agent], stop=stop, poll_wait=5, on_result=on_result,
                              run_config=config)  # fmt: skip
        await asyncio.wait_for(worker, timeout=60)

    asyncio.run(go())
    assert len(results) == 1, results
    return results[0]


def test_the_run_pauses_on_the_question_and_the_worker_gives_the_model_the_answer(
    server: PliuzServer, agent_env: dict[str, str]
) -> None:
    marker = uuid.uuid4().hex[:10]
    agent = Agent(name=f"Asker-{marker}", tools=[ask_human_tool(policy="payments")])
    session = f"dq-{marker}"
    start_model = ScriptedModel([
        [function_call("ask_human", {"question": f"Which warehouse? {marker}",
                                     "choices": ["north", "south"]}, call_id="q1")],
    ])  # fmt: skip
    config = RunConfig(model=start_model, tracing_disabled=True, group_id=session)
    started = Runs().run_sync(agent, "ship it", run_config=config)
    # Paused, not waiting inside the call: the run is stored and waits on the question.
    assert started.status == "waiting" and started.run_id is not None
    assert started.approvals == []
    (asked,) = started.questions
    assert asked.status == "pending"
    assert asked.idempotency_key == f"ask_human:{session}:q1"
    (q,) = pending_with(server, marker)
    assert q["id"] == asked.id
    assert [c["value"] for c in q["choices"]] == ["north", "south"]
    with PliuzClient() as c:
        run = RunsAPI(c).get(started.run_id)
        assert run.status == "waiting" and run.question_ids == [asked.id]

    with person(server) as h:
        r = h.post(f"/api/v1/questions/{asked.id}/answer", json={"choice": "south"})
        assert r.status_code == 200, r.text
    with PliuzClient() as c:
        assert RunsAPI(c).get(started.run_id, wait=10).status == "ready"

    resume_model = ScriptedModel([[assistant_message("shipping from south")]])
    done = serve_until_one_result(agent, resume_model)
    assert done.run_id == started.run_id
    assert done.status == "completed" and done.final_output == "shipping from south"
    assert tool_outputs(resume_model)["q1"] == "bob@example.com answered: south"
    # Asked exactly once: no other question with the marker, and the call's key still
    # names the one question (a replay, already answered).
    assert pending_with(server, marker) == []
    with PliuzClient() as c:
        again = c.ask_question(
            f"Which warehouse? {marker}", choices=["north", "south"], policy="payments",
            idempotency_key=f"ask_human:{session}:q1",
        )  # fmt: skip
        assert again.id == asked.id and again.status == "answered"


def test_a_question_nobody_answers_expires_and_the_model_is_told(
    server: PliuzServer, agent_env: dict[str, str]
) -> None:
    marker = uuid.uuid4().hex[:10]
    agent = Agent(name=f"Quick-{marker}", tools=[ask_human_tool(policy="quick")])
    start_model = ScriptedModel(
        [[function_call("ask_human", {"question": f"Anyone? {marker}"}, call_id="q9")]]
    )
    config = RunConfig(model=start_model, tracing_disabled=True, group_id=f"dq-{marker}")
    started = Runs().run_sync(agent, "hello", run_config=config)
    assert started.status == "waiting" and len(started.questions) == 1
    assert started.run_id is not None
    deadline = time.monotonic() + 30
    resume_model = ScriptedModel([[assistant_message("nobody there")]])
    # The question expires (policy "quick": 2s); the run becomes ready by itself.
    done = Runs().resume_sync(
        started.run_id, agent, wait_timeout=deadline - time.monotonic(),
        run_config=RunConfig(model=resume_model, tracing_disabled=True),
    )  # fmt: skip
    assert done.status == "completed", done
    assert tool_outputs(resume_model)["q9"] == (
        "Nobody answered the question in time. Do not assume an answer."
    )


def test_outside_durable_mode_the_tool_still_waits_in_the_call(
    server: PliuzServer, agent_env: dict[str, str]
) -> None:
    tool = ask_human_tool(policy="payments")
    # No Runs around the call: the SDK is told no approval is needed (the call waits).
    assert tool.needs_approval is False


def test_a_run_waits_for_its_approval_and_its_question_together(
    server: PliuzServer, human: Human, agent_env: dict[str, str]
) -> None:
    marker = uuid.uuid4().hex[:10]
    sent: list[str] = []

    @gated_tool(policy="payments")
    @function_tool
    def send_email(to: str) -> str:
        """Send an e-mail."""
        sent.append(to)
        return f"sent to {to}"

    agent = Agent(name=f"Both-{marker}", tools=[ask_human_tool(policy="payments"), send_email])
    session = f"dq-{marker}"
    start_model = ScriptedModel([[
        function_call("ask_human", {"question": f"Subject line? {marker}"}, call_id="a1"),
        function_call("send_email", {"to": f"{marker}@example.com"}, call_id="e1"),
    ]])  # fmt: skip
    config = RunConfig(model=start_model, tracing_disabled=True, group_id=session)
    started = Runs().run_sync(agent, "mail it", run_config=config)
    assert started.status == "waiting" and started.run_id is not None
    (approval,) = started.approvals
    (question,) = started.questions
    assert sent == []

    with person(server) as h:
        r = h.post(f"/api/v1/questions/{question.id}/answer", json={"text": "Hello there"})
        assert r.status_code == 200, r.text
    with PliuzClient() as c:
        # The question alone does not make it ready: the approval is still pending.
        assert RunsAPI(c).get(started.run_id, wait=1).status == "waiting"
    human.decide_ok(approval.id, "approve")

    resume_model = ScriptedModel([[assistant_message("mailed")]])
    done = Runs().resume_sync(
        started.run_id, agent, wait_timeout=30,
        run_config=RunConfig(model=resume_model, tracing_disabled=True, group_id=session),
    )  # fmt: skip
    assert done.status == "completed" and done.final_output == "mailed"
    outputs = tool_outputs(resume_model)
    assert outputs["a1"] == "bob@example.com answered: Hello there"
    assert outputs["e1"] == f"sent to {marker}@example.com"
    assert sent == [f"{marker}@example.com"]
