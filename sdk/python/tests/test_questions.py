"""Questions to a person ("human as a tool") end to end: the SDK against the real
server, a person answering over the API; the OpenAI Agents and LangGraph tools."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from agent_helpers import run_in_background, tool_outputs
from agents import Agent
from agents.testing import ScriptedModel, assistant_message, function_call
from server import PliuzServer

import pliuz
from pliuz import AsyncPliuzClient, PliuzClient
from pliuz.adapters.langgraph import ask_human_tool as langgraph_ask_human_tool
from pliuz.adapters.openai_agents import ask_human_tool


def uid() -> str:
    return uuid.uuid4().hex[:10]


def person(server: PliuzServer, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {token or server.user_token}"},
        timeout=10,
    )


def wait_question(server: PliuzServer, marker: str, timeout: float = 30.0) -> dict[str, Any]:
    """The pending question whose text contains ``marker``, as a person lists it."""
    deadline = time.monotonic() + timeout
    with person(server) as h:
        while time.monotonic() < deadline:
            r = h.get("/api/v1/questions")
            r.raise_for_status()
            for q in r.json()["items"]:
                if marker in q["text"]:
                    return dict(q)
            time.sleep(0.1)
    raise AssertionError(f"no pending question with {marker!r}; log:\n{server.log_tail()}")


def answer(server: PliuzServer, qid: str, token: str | None = None, **body: Any) -> httpx.Response:
    with person(server, token) as h:
        return h.post(f"/api/v1/questions/{qid}/answer", json=body)


def test_ask_gets_the_typed_answer_given_through_the_api(
    server: PliuzServer, agent_env: dict[str, str]
) -> None:
    marker = uid()
    result: dict[str, pliuz.Answer] = {}

    def ask() -> None:
        with PliuzClient() as c:
            result["a"] = c.ask(
                f"Refund to card or credit? {marker}",
                choices=["card", {"value": "credit", "label": "Store credit"}],
                allow_free_text=True,
                policy="payments",
                timeout=60,
            )

    import threading

    t = threading.Thread(target=ask)
    t.start()
    q = wait_question(server, marker)
    assert q["status"] == "pending" and q["agent"] == "support-bot"
    assert q["choices"] == [
        {"value": "card", "label": "card"},
        {"value": "credit", "label": "Store credit"},
    ]
    bad = answer(server, q["id"], choice="cash")
    assert bad.status_code == 422 and "not one of the choices" in bad.text
    ok = answer(server, q["id"], choice="credit", text="customer prefers it")
    assert ok.status_code == 200, ok.text
    t.join(60)
    a = result["a"]
    assert isinstance(a, pliuz.Answer)
    assert (a.choice, a.choice_label, a.text) == ("credit", "Store credit", "customer prefers it")
    assert a.answered_by == "user:bob@example.com" and a.answered_at is not None
    # Answered once: a second answer is refused.
    again = answer(server, q["id"], token=server.second_user_token, choice="card")
    assert again.status_code == 409, again.text


def test_async_ask_human_expires_with_a_typed_error(
    server: PliuzServer, agent_env: dict[str, str]
) -> None:
    async def go() -> None:
        async with AsyncPliuzClient() as c:
            with pytest.raises(pliuz.PliuzQuestionExpiredError) as e:
                await pliuz.ask_human_async(
                    f"Anyone there? {uid()}", client=c, policy="quick", timeout=30
                )
            assert e.value.question is not None and e.value.question.status == "expired"

    asyncio.run(go())


def test_a_non_approver_and_the_originator_may_not_answer(
    server: PliuzServer, agent_env: dict[str, str]
) -> None:
    email = f"eve-{uid()}@example.com"
    server.cli("users", "create", email, "--role", "approver", "--group", "sales",
               "--password-stdin", stdin="a long enough password here\n")  # fmt: skip
    outsider = server.cli("users", "token", email)
    with PliuzClient() as c:
        q = c.ask_question(
            f"Ship it? {uid()}", choices=["yes", "no"], policy="payments",
            originator="bob@example.com",
        )  # fmt: skip
    assert q.status == "pending" and q.allow_free_text is False
    r = answer(server, q.id, token=outsider, choice="yes")
    assert r.status_code == 404, r.text  # not theirs to see
    r = answer(server, q.id, choice="yes")  # bob: the originator
    assert r.status_code == 403 and "somebody else must answer" in r.text
    r = answer(server, q.id, token=server.second_user_token, text="free text")
    assert r.status_code == 422 and "not free text" in r.text
    r = answer(server, q.id, token=server.second_user_token, choice="no")
    assert r.status_code == 200, r.text
    with PliuzClient() as c:
        done = c.get_question(q.id)
    assert done.status == "answered" and done.answer is not None
    assert done.answer.choice == "no" and done.answer.answered_by == "user:dora@example.com"


def test_a_repeated_idempotency_key_returns_the_same_question(
    server: PliuzServer, agent_env: dict[str, str]
) -> None:
    key = uid()
    with PliuzClient() as c:
        first = c.ask_question("Which?", choices=["a"], policy="payments", idempotency_key=key)
        second = c.ask_question("Which?", choices=["a"], policy="payments", idempotency_key=key)
        assert second.id == first.id and second.is_replay
        with pytest.raises(pliuz.PliuzIdempotencyConflictError):
            c.ask_question("Other?", choices=["a"], policy="payments", idempotency_key=key)


def test_openai_agents_tool_returns_the_answer_to_the_model(
    server: PliuzServer, agent_env: dict[str, str]
) -> None:
    marker = uid()
    agent = Agent(name="Support", tools=[ask_human_tool(policy="payments")])
    model = ScriptedModel([
        [function_call("ask_human", {"question": f"Which warehouse? {marker}",
                                     "choices": ["north", "south"]}, call_id="q1")],
        [assistant_message("done")],
    ])  # fmt: skip
    fut = run_in_background(agent, model)
    q = wait_question(server, marker)
    assert [c["value"] for c in q["choices"]] == ["north", "south"]
    assert answer(server, q["id"], choice="south").status_code == 200
    result = fut.result(timeout=60)
    assert result.final_output == "done"
    assert tool_outputs(model)["q1"] == "bob@example.com answered: south"


def test_langgraph_tool_sync_and_async(server: PliuzServer, agent_env: dict[str, str]) -> None:
    tool = langgraph_ask_human_tool(policy="payments")
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        marker = uid()
        fut = pool.submit(tool.invoke, {"question": f"Why? {marker}"})
        q = wait_question(server, marker)
        assert q["allow_free_text"] is True and q["choices"] == []
        assert answer(server, q["id"], text="because").status_code == 200
        assert fut.result(timeout=60) == "bob@example.com answered: because"

        marker = uid()
        fut2 = pool.submit(
            asyncio.run, tool.ainvoke({"question": f"Pick {marker}", "choices": ["x", "y"]})
        )
        q = wait_question(server, marker)
        assert answer(server, q["id"], choice="x").status_code == 200
        assert fut2.result(timeout=60) == "bob@example.com answered: x"


def test_the_tools_tell_the_model_when_nobody_answered_or_the_policy_is_wrong(
    server: PliuzServer, agent_env: dict[str, str]
) -> None:
    expired = langgraph_ask_human_tool(policy="quick").invoke({"question": f"Hello? {uid()}"})
    assert expired == "Nobody answered the question in time. Do not assume an answer."
    wrong = langgraph_ask_human_tool(policy="no-such-policy").invoke({"question": "Hm?"})
    assert wrong.startswith("The question could not be asked (PliuzUnknownPolicyError)"), wrong
