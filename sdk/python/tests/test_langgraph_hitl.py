"""PliuzHumanInTheLoopMiddleware against the real server and a real LangChain agent.

``create_agent`` with the middleware and an ``InMemorySaver``, driven by
``ScriptedChatModel`` (a real chat model answering from a script, no network);
the human decides over HTTP with the user token, exactly once per call.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from langchain.agents import create_agent
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from server import Human, join_checked
from test_langgraph_helpers import ScriptedChatModel, thread, thread_and_session

from pliuz import PliuzClient
from pliuz.adapters.langgraph import PliuzHumanInTheLoopMiddleware

NOTE = {"to": "ops@example.com", "text": "the report is ready"}


def tools(ran: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    @tool
    def send_note(to: str, text: str) -> str:
        """Send a short note to a colleague."""
        ran.append(("send_note", {"to": to, "text": text}))
        return f"sent to {to}"

    @tool
    def ask_user(question: str) -> str:
        """Ask the user a question."""
        ran.append(("ask_user", {"question": question}))
        return "the tool itself answered"

    @tool
    def orphan_tool(x: int) -> str:
        """A tool no Pliuz policy covers."""
        ran.append(("orphan_tool", {"x": x}))
        return "orphan ran"

    return [send_note, ask_user, orphan_tool]


def agent(
    ran: list[tuple[str, dict[str, Any]]], script: list[Any], **hitl: Any
) -> tuple[Any, ScriptedChatModel]:
    model = ScriptedChatModel(script=script)
    interrupt_on = hitl.pop("interrupt_on", {"send_note": True, "ask_user": True})
    middleware = PliuzHumanInTheLoopMiddleware(interrupt_on, **hitl)
    built = create_agent(
        model, tools=tools(ran), middleware=[middleware], checkpointer=InMemorySaver()
    )
    return built, model


def decide_one(human: Human, session: str, decision: str, **kw: Any) -> dict[str, Any]:
    (a,) = human.wait_pending(session=session)
    return human.decide_ok(a["id"], decision, **kw)


def run_with_human(
    built: Any, config: dict[str, Any], human: Human, human_part: Any
) -> dict[str, Any]:
    """Invoke the agent while ``human_part`` decides in Pliuz, in the background."""
    t = human.in_background(human_part)
    out: dict[str, Any] = built.invoke({"messages": [("user", "go")]}, config)
    join_checked(t)
    return out


def run_deciding_one(
    built: Any, config: dict[str, Any], human: Human, decision: str, **kw: Any
) -> dict[str, Any]:
    """Invoke the agent while the human makes ``decision`` on the one request it waits on."""
    session = config["configurable"]["thread_id"]
    return run_with_human(built, config, human, lambda: decide_one(human, session, decision, **kw))


def test_approve_runs_the_tool_once_with_its_args(agent_env: dict[str, str], human: Human) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []
    built, model = agent(ran, [[("send_note", NOTE, "hn-ok")], "Done."])
    config, session = thread_and_session()
    decided: dict[str, Any] = {}

    def approve() -> None:
        (a,) = human.wait_pending(session=session)
        assert ran == []
        assert a["tool_name"] == "send_note" and a["tool_args"] == NOTE
        assert a["call_id"] == "hn-ok"
        assert a["client_metadata"]["langchain_allowed_decisions"] == [
            "approve", "edit", "reject", "respond"
        ]  # fmt: skip
        decided.update(human.decide_ok(a["id"], "approve"))

    out = run_with_human(built, config, human, approve)
    assert ran == [("send_note", NOTE)]
    # Asked once: the person decided in Pliuz, the graph never paused for a second answer.
    assert "__interrupt__" not in out
    msg = model.tool_messages()["hn-ok"]
    assert msg.content == "sent to ops@example.com" and msg.status == "success"
    final = human.get(decided["id"])
    assert final["status"] == "executed"
    assert final["execution"]["outcome"] == "success"


def test_edit_runs_the_tool_with_the_edited_args(agent_env: dict[str, str], human: Human) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []
    built, model = agent(ran, [[("send_note", NOTE, "hn-edit")], "Done."])
    config = thread()
    edited = {"to": "lead@example.com", "text": "the report is ready"}

    out = run_deciding_one(built, config, human, "edit", final_args=edited, reason="to the lead")
    assert "__interrupt__" not in out
    assert ran == [("send_note", edited)]
    content = str(model.tool_messages()["hn-edit"].content)
    # LangChain's own edit notice tells the model what actually ran.
    assert "a human reviewer replaced this tool call" in content
    assert "lead@example.com" in content and content.endswith("sent to lead@example.com")


def test_reject_does_not_run_and_the_model_sees_the_reason(
    agent_env: dict[str, str], human: Human
) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []
    built, model = agent(ran, [[("send_note", NOTE, "hn-rej")], "Done."])
    config = thread()

    run_deciding_one(built, config, human, "reject", reason="not today")
    assert ran == []
    msg = model.tool_messages()["hn-rej"]
    assert msg.status == "error"
    assert msg.content == "User rejected the tool call for `send_note` with reason: not today"


def test_respond_does_not_run_and_the_model_gets_the_message(
    agent_env: dict[str, str], human: Human
) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []
    built, model = agent(ran, [[("ask_user", {"question": "Which room?"}, "hn-resp")], "Done."])
    config, session = thread_and_session()
    decided: dict[str, Any] = {}

    def respond() -> None:
        decided.update(decide_one(human, session, "respond", reason="Room 4, at ten."))

    run_with_human(built, config, human, respond)
    assert ran == []
    msg = model.tool_messages()["hn-resp"]
    # Exactly LangChain's respond: the message is the tool's result.
    assert msg.content == "Room 4, at ten." and msg.status == "success"
    final = human.get(decided["id"])
    assert final["status"] == "responded"
    assert final["decision"]["outcome"] == "responded"
    assert final["decision"]["reason"] == "Room 4, at ten."
    # A responded request can never be claimed for execution.
    with httpx.Client(base_url=agent_env["PLIUZ_BASE_URL"], timeout=10) as h:
        r = h.post(
            f"/api/v1/approvals/{decided['id']}/execution",
            json={"outcome": "started"},
            headers={"Authorization": f"Bearer {agent_env['PLIUZ_API_KEY']}"},
        )
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "responded" in r.json()["detail"]


def test_batched_two_calls_are_one_round(agent_env: dict[str, str], human: Human) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []
    turn = [("send_note", NOTE, "hn-b1"), ("ask_user", {"question": "When?"}, "hn-b2")]
    built, model = agent(ran, [turn, "Done."])
    config, session = thread_and_session()

    def both() -> None:
        # Both requests are open at once, before anyone decided or anything ran.
        items = human.wait_pending(2, session=session)
        assert ran == []
        by_tool = {a["tool_name"]: a for a in items}
        human.decide_ok(by_tool["ask_user"]["id"], "respond", reason="Friday.")
        assert ran == []  # still one round: nothing runs before every call is decided
        human.decide_ok(by_tool["send_note"]["id"], "approve")

    out = run_with_human(built, config, human, both)
    assert "__interrupt__" not in out
    assert ran == [("send_note", NOTE)]
    msgs = model.tool_messages()
    assert msgs["hn-b2"].content == "Friday."
    assert msgs["hn-b1"].content == "sent to ops@example.com"
    # The model was called twice: the turn with the calls, then once with both results.
    assert len(model.seen) == 2


async def test_async_agent_batched_and_per_call(agent_env: dict[str, str], human: Human) -> None:
    for mode, ids in (("batched", ("hn-a1", "hn-a2")), ("per_call", ("hn-a3", "hn-a4"))):
        ran: list[tuple[str, dict[str, Any]]] = []
        turn = [("send_note", NOTE, ids[0]), ("ask_user", {"question": "Lunch?"}, ids[1])]
        built, model = agent(ran, [turn, "Done."], interrupt_mode=mode)
        config, session = thread_and_session()

        def decide_all(session: str = session) -> None:
            for _ in range(2):
                a = human.wait_pending(session=session)[0]
                if a["tool_name"] == "ask_user":
                    human.decide_ok(a["id"], "respond", reason="Yes, at one.")
                else:
                    human.decide_ok(a["id"], "edit", final_args={**NOTE, "text": "edited"})

        t = human.in_background(decide_all)
        out = await built.ainvoke({"messages": [("user", "go")]}, config)
        join_checked(t)
        assert "__interrupt__" not in out, mode
        assert ran == [("send_note", {**NOTE, "text": "edited"})], mode
        msgs = model.tool_messages()
        assert msgs[ids[1]].content == "Yes, at one.", mode
        assert str(msgs[ids[0]].content).endswith("sent to ops@example.com"), mode


def test_per_call_decides_and_runs_each_call_on_its_own(
    agent_env: dict[str, str], human: Human
) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []
    turn = [("send_note", NOTE, "hn-p1"), ("ask_user", {"question": "Lunch?"}, "hn-p2")]
    built, model = agent(ran, [turn, "Done."], interrupt_mode="per_call")
    config, session = thread_and_session()

    def one_by_one() -> None:
        (note,) = human.wait_pending(session=session, tool="send_note")
        human.decide_ok(note["id"], "approve")
        # Per call: the approved call runs while the other is still undecided
        # (batched mode would hold it until every call of the turn is decided).
        deadline = time.monotonic() + 20
        while not ran and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ran == [("send_note", NOTE)]
        (ask,) = human.wait_pending(session=session, tool="ask_user")
        human.decide_ok(ask["id"], "reject", reason="no lunch")

    out = run_with_human(built, config, human, one_by_one)
    assert "__interrupt__" not in out
    assert ran == [("send_note", NOTE)]
    msgs = model.tool_messages()
    assert msgs["hn-p1"].content == "sent to ops@example.com"
    rejected = "User rejected the tool call for `ask_user` with reason: no lunch"
    assert msgs["hn-p2"].content == rejected
    assert all(isinstance(m, ToolMessage) for m in msgs.values())


def test_pause_mode_interrupts_with_agent_inbox_values_and_reads_pliuz_on_resume(
    agent_env: dict[str, str], human: Human
) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []
    interrupt_on = {
        "send_note": {"allowed_decisions": ["approve", "reject"], "description": "Check it"}
    }
    built, model = agent(
        ran, [[("send_note", NOTE, "hn-pause")], "Done."],
        interrupt_on=interrupt_on, wait_s=0.5, inbox_url="https://pliuz.example",
    )  # fmt: skip
    config, session = thread_and_session()

    out = built.invoke({"messages": [("user", "go")]}, config)
    assert ran == []
    (intr,) = out["__interrupt__"]
    (value,) = intr.value
    (pending,) = human.wait_pending(session=session)
    assert value["action_request"] == {"action": "send_note", "args": NOTE}
    assert value["config"] == {
        "allow_ignore": True, "allow_respond": False, "allow_edit": False, "allow_accept": True
    }  # fmt: skip
    assert value["description"].startswith("Check it")
    assert f"https://pliuz.example/requests/{pending['id']}" in value["description"]

    # A resume before anyone decided decides nothing: it pauses again.
    out = built.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
    assert "__interrupt__" in out and ran == []

    human.decide_ok(pending["id"], "approve")
    out = built.invoke(Command(resume="decided in Pliuz"), config)
    assert "__interrupt__" not in out
    assert ran == [("send_note", NOTE)]
    assert model.tool_messages()["hn-pause"].content == "sent to ops@example.com"


def test_a_decision_the_tool_config_does_not_allow_fails_closed(
    agent_env: dict[str, str], human: Human
) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []
    interrupt_on = {"ask_user": {"allowed_decisions": ["approve", "reject"]}}
    built, model = agent(
        ran, [[("ask_user", {"question": "Now?"}, "hn-no")], "Done."], interrupt_on=interrupt_on
    )
    config = thread()

    run_deciding_one(built, config, human, "respond", reason="yes")
    assert ran == []
    msg = model.tool_messages()["hn-no"]
    assert msg.status == "error"
    assert "'respond' is not allowed for this tool" in str(msg.content)


def test_a_policy_without_respond_refuses_it(agent_env: dict[str, str], human: Human) -> None:
    # "payments" lists approve, reject and edit only.
    with httpx.Client(base_url=agent_env["PLIUZ_BASE_URL"], timeout=10) as h:
        r = h.post(
            "/api/v1/approvals",
            json={"tool_name": "pay_invoice", "tool_args": {"invoice": "hn-1"}},
            headers={"Authorization": f"Bearer {agent_env['PLIUZ_API_KEY']}"},
        )
    assert r.status_code in (200, 201), r.text
    refused = human.decide(r.json()["id"], "respond", reason="no")
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "does not allow the decision 'respond'" in refused.json()["detail"]
    assert human.get(r.json()["id"])["status"] == "pending"


def test_a_call_pliuz_cannot_ask_about_fails_closed_without_stopping_the_others(
    agent_env: dict[str, str], human: Human
) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []
    turn = [("send_note", NOTE, "hn-o1"), ("orphan_tool", {"x": 1}, "hn-o2")]
    built, model = agent(
        ran, [turn, "Done."], interrupt_on={"send_note": True, "orphan_tool": True}
    )
    config = thread()

    run_deciding_one(built, config, human, "approve")
    assert ran == [("send_note", NOTE)]
    msgs = model.tool_messages()
    assert msgs["hn-o1"].content == "sent to ops@example.com"
    assert msgs["hn-o2"].status == "error"
    assert "orphan_tool was NOT executed" in str(msgs["hn-o2"].content)
    assert "misconfigured" in str(msgs["hn-o2"].content)


def test_a_wrong_api_key_fails_closed_in_both_modes(agent_env: dict[str, str]) -> None:
    for mode, call_id in (("batched", "hn-k1"), ("per_call", "hn-k2")):
        ran: list[tuple[str, dict[str, Any]]] = []
        wrong = PliuzClient(base_url=agent_env["PLIUZ_BASE_URL"], api_key="pliuz_ak_wrong")
        built, model = agent(
            ran, [[("send_note", NOTE, call_id)], "Done."], interrupt_mode=mode, client=wrong
        )
        out = built.invoke({"messages": [("user", "go")]}, thread())
        assert "__interrupt__" not in out
        assert ran == [], mode
        msg = model.tool_messages()[call_id]
        assert msg.status == "error" and "misconfigured" in str(msg.content), (mode, msg)
        wrong.close()


def test_per_call_pause_mode_one_interrupt_per_pending_call(
    agent_env: dict[str, str], human: Human
) -> None:
    ran: list[tuple[str, dict[str, Any]]] = []
    turn = [("send_note", NOTE, "hn-pp1"), ("ask_user", {"question": "Tea?"}, "hn-pp2")]
    built, model = agent(ran, [turn, "Done."], interrupt_mode="per_call", wait_s=0.3)
    config, session = thread_and_session()

    out = built.invoke({"messages": [("user", "go")]}, config)
    assert ran == []
    interrupts = out["__interrupt__"]
    assert sorted(i.value[0]["action_request"]["action"] for i in interrupts) == [
        "ask_user",
        "send_note",
    ]
    for a in human.wait_pending(2, session=session):
        if a["tool_name"] == "ask_user":
            human.decide_ok(a["id"], "respond", reason="Green, please.")
        else:
            human.decide_ok(a["id"], "approve")
    # Several pauses: each is resumed by its id; the values are ignored.
    out = built.invoke(Command(resume={i.id: "decided" for i in interrupts}), config)
    assert "__interrupt__" not in out
    assert ran == [("send_note", NOTE)]
    assert model.tool_messages()["hn-pp2"].content == "Green, please."
