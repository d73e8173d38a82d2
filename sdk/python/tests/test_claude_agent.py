"""The Claude Agent SDK adapter against the real server and the real ``claude-agent-sdk``.

The SDK's ``ClaudeSDKClient`` (with its control-protocol ``Query``) runs the
adapter's ``can_use_tool`` callback and hooks; the CLI end of the protocol is
scripted (:mod:`claude_cli`), for the cases the real CLI (``test_claude_agent_cli.py``)
cannot be made to produce on cue.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from claude_agent_sdk import ClaudeAgentOptions
from claude_cli import SESSION, ScriptedCli, connected
from server import Human, PliuzServer, free_port

from pliuz import AsyncPliuzClient
from pliuz.adapters.claude_agent import ClaudeGate

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(claude_server: PliuzServer) -> PliuzServer:
    """This module's server (and so its ``human``): the Claude tools' policies."""
    return claude_server


BASH_RESPONSE = {"stdout": "3 files deleted\n", "stderr": "", "interrupted": False}


def tool_use_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:20]}"


def pliuz_client(server: PliuzServer) -> AsyncPliuzClient:
    return AsyncPliuzClient(server.agent_key, server.base_url)


def gate_for(server: PliuzServer, **kw: Any) -> ClaudeGate:
    kw.setdefault("policies", {"Bash": "shell", "mcp__payments__*": "refunds", "Write": "quick"})
    return ClaudeGate(client=pliuz_client(server), **kw)


@contextlib.asynccontextmanager
async def connected_gate(
    server: PliuzServer, *, gate_in_hook: bool = False, **kw: Any
) -> AsyncIterator[tuple[ClaudeGate, ScriptedCli]]:
    """A gate on ``server`` (``kw``: its options) and the scripted CLI of a Claude client
    connected through it, disconnected when the block ends, a failed assertion included."""
    gate = gate_for(server, **kw)
    claude, cli = await connected(options(gate, gate_in_hook=gate_in_hook))
    try:
        yield gate, cli
    finally:
        await claude.disconnect()


def options(gate: ClaudeGate, *, gate_in_hook: bool = False) -> ClaudeAgentOptions:
    hooks = gate.hooks(gate_in_hook=gate_in_hook)
    if gate_in_hook:
        return ClaudeAgentOptions(hooks=hooks)
    return ClaudeAgentOptions(can_use_tool=gate.can_use_tool, hooks=hooks)


async def pending(human: Human, call_id: str) -> dict[str, Any]:
    (a,) = await asyncio.to_thread(human.wait_pending, where=lambda a: a["call_id"] == call_id)
    return dict(a)


async def decide(human: Human, call_id: str, decision: str, **kw: Any) -> dict[str, Any]:
    a = await pending(human, call_id)
    return await asyncio.to_thread(human.decide_ok, a["id"], decision, **kw)


async def settled(human: Human, approval_id: str, status: str) -> dict[str, Any]:
    """The approval once it reached ``status`` (execution reports arrive in the background)."""
    deadline = time.monotonic() + 15
    while True:
        a = await asyncio.to_thread(human.get, approval_id)
        if a["status"] == status or time.monotonic() > deadline:
            assert a["status"] == status, a
            return a
        await asyncio.sleep(0.1)


async def by_call(human: Human, call_id: str) -> list[dict[str, Any]]:
    items = await asyncio.to_thread(human.list)
    return [a for a in items if a.get("call_id") == call_id]


def denial(answer: dict[str, Any]) -> str:
    """The message of the gate's answer, which must be a deny."""
    assert answer["behavior"] == "deny", answer
    return str(answer["message"])


async def test_approve_allows_claims_and_the_post_tool_use_report_lands(
    server: PliuzServer, human: Human
) -> None:
    async with connected_gate(server) as (gate, cli):
        call, args = tool_use_id(), {"command": "rm -rf build/", "description": "clean"}
        assert await cli.pre_tool_use("Bash", args, call) == [{}]  # notes the session only
        asking = asyncio.create_task(cli.can_use_tool("Bash", args, call))
        approval = await decide(human, call, "approve")
        assert approval["session_id"] == SESSION  # learnt from PreToolUse
        assert approval["policy"] == "shell"
        answer = await asyncio.wait_for(asking, 15)
        assert answer == {"behavior": "allow", "updatedInput": args}
        # Claimed before the allow went back: the server shows it executing until the report.
        assert (await asyncio.to_thread(human.get, approval["id"]))["status"] == "executing"
        assert await cli.post_tool_use("Bash", args, call, BASH_RESPONSE) == [{}]
        done = await settled(human, approval["id"], "executed")
        assert done["execution"]["outcome"] == "success"
        assert "3 files deleted" in done["execution"]["output_excerpt"]
        assert await gate.aclose()


async def test_edit_becomes_updated_input(server: PliuzServer, human: Human) -> None:
    async with connected_gate(server) as (gate, cli):
        call = tool_use_id()
        args = {"order_id": "ord-7", "amount_cents": 90000}
        asking = asyncio.create_task(cli.can_use_tool("mcp__payments__refund", args, call))
        edited = {"order_id": "ord-7", "amount_cents": 4500}
        approval = await decide(human, call, "edit", final_args=edited)
        assert approval["policy"] == "refunds"  # through the "mcp__payments__*" pattern
        answer = await asyncio.wait_for(asking, 15)
        assert answer == {"behavior": "allow", "updatedInput": edited}
        await cli.post_tool_use(
            "mcp__payments__refund", edited, call, [{"type": "text", "text": "ok"}]
        )
        done = await settled(human, approval["id"], "executed")
        assert done["final_args"] == edited
        await gate.aclose()


async def test_reject_denies_with_the_reason(server: PliuzServer, human: Human) -> None:
    async with connected_gate(server, interrupt_on_deny=True) as (_, cli):
        call, args = tool_use_id(), {"command": "git push --force"}
        asking = asyncio.create_task(cli.can_use_tool("Bash", args, call))
        approval = await decide(human, call, "reject", reason="never force-push main")
        answer = await asyncio.wait_for(asking, 15)
        assert "never force-push main" in denial(answer)
        assert answer["interrupt"] is True
        assert "rejected by user:bob@example.com" in answer["message"]
        # A PostToolUse for a call that was denied changes nothing.
        await cli.post_tool_use("Bash", args, call, BASH_RESPONSE)
        assert (await asyncio.to_thread(human.get, approval["id"]))["status"] == "rejected"


async def test_expiry_denies(server: PliuzServer, human: Human) -> None:
    async with connected_gate(server) as (_, cli):
        call = tool_use_id()
        answer = await asyncio.wait_for(
            cli.can_use_tool("Write", {"file_path": "/etc/motd", "content": "hi"}, call), 30
        )
        assert "expired before anyone decided" in denial(answer)
        assert "interrupt" not in answer
        (a,) = await by_call(human, call)
        assert a["status"] == "expired"


async def test_unreachable_server_denies(server: PliuzServer) -> None:
    down = AsyncPliuzClient(server.agent_key, f"http://127.0.0.1:{free_port()}", max_retries=0)
    gate = ClaudeGate({"Bash": "shell"}, client=down)
    claude, cli = await connected(options(gate))
    answer = await asyncio.wait_for(cli.can_use_tool("Bash", {"command": "ls"}, tool_use_id()), 15)
    assert "approval server could not be reached" in denial(answer)
    await claude.disconnect()
    await down.aclose()


async def test_ungated_tools_pass_unchanged_or_are_denied(
    server: PliuzServer, human: Human
) -> None:
    async with connected_gate(server) as (_, cli):
        call, args = tool_use_id(), {"file_path": "README.md"}
        answer = await asyncio.wait_for(cli.can_use_tool("Read", args, call), 5)
        assert answer == {"behavior": "allow", "updatedInput": args}
        assert await by_call(human, call) == []  # nobody was asked

    async with connected_gate(server, ungated="deny") as (_, cli):
        answer = await asyncio.wait_for(cli.can_use_tool("Read", args, call), 5)
        assert "Read was NOT executed" in denial(answer)


async def test_concurrent_callbacks_for_one_call_allow_once(
    server: PliuzServer, human: Human
) -> None:
    async with connected_gate(server) as (gate, cli):
        call, args = tool_use_id(), {"command": "make deploy"}
        first = asyncio.create_task(cli.can_use_tool("Bash", args, call))
        second = asyncio.create_task(cli.can_use_tool("Bash", args, call))
        approval = await decide(human, call, "approve")
        done, _ = await asyncio.wait(
            {first, second}, timeout=15, return_when=asyncio.FIRST_COMPLETED
        )
        (winner,) = done
        assert winner.result() == {"behavior": "allow", "updatedInput": args}
        other = second if winner is first else first
        await asyncio.sleep(0.5)
        assert not other.done()  # held until the first call's outcome is known
        await cli.post_tool_use("Bash", args, call, BASH_RESPONSE)
        answer = await asyncio.wait_for(other, 15)
        assert "already executed" in denial(answer)
        assert len(await by_call(human, call)) == 1  # one request, asked once
        await settled(human, approval["id"], "executed")
        await gate.aclose()


def test_two_processes_one_claim(server: PliuzServer, human: Human) -> None:
    """Two SDK sessions (own event loops, own clients) attached to the same request:
    the server hands the claim to one, the other is denied."""
    call, args = tool_use_id(), {"command": "terraform apply"}
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    both_waiting = threading.Barrier(3)

    async def session() -> None:
        gate = ClaudeGate({"Bash": "shell"}, client=pliuz_client(server), session_id="shared")
        claude, cli = await connected(options(gate))
        asking = asyncio.create_task(cli.can_use_tool("Bash", args, call))
        await asyncio.to_thread(both_waiting.wait, 30)
        answer = await asyncio.wait_for(asking, 30)
        answers.append(answer)
        if answer["behavior"] == "allow":
            await cli.post_tool_use("Bash", args, call, BASH_RESPONSE)
        await gate.aclose()
        await claude.disconnect()

    def run() -> None:
        try:
            asyncio.run(session())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    (a,) = human.wait_pending(where=lambda a: a["call_id"] == call)
    time.sleep(0.5)  # both sessions re-attached to the same request (idempotency key)
    both_waiting.wait(30)
    human.decide_ok(a["id"], "approve")
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(x["behavior"] for x in answers) == ["allow", "deny"]
    (denied,) = [x for x in answers if x["behavior"] == "deny"]
    assert "NOT executed" in denied["message"] or "already executed" in denied["message"]
    assert len([x for x in human.list() if x.get("call_id") == call]) == 1


async def test_tool_failure_is_reported_as_error(server: PliuzServer, human: Human) -> None:
    async with connected_gate(server) as (gate, cli):
        call, args = tool_use_id(), {"command": "false"}
        asking = asyncio.create_task(cli.can_use_tool("Bash", args, call))
        approval = await decide(human, call, "approve")
        assert (await asyncio.wait_for(asking, 15))["behavior"] == "allow"
        await cli.post_tool_use_failure("Bash", args, call, "Exit code 1")
        done = await settled(human, approval["id"], "executed")
        assert done["execution"]["outcome"] == "error"
        assert "Exit code 1" in done["execution"]["output_excerpt"]
        await gate.aclose()


async def test_gate_in_pre_tool_use_hook(server: PliuzServer, human: Human) -> None:
    async with connected_gate(server, gate_in_hook=True) as (gate, cli):
        (pre,) = cli.hooks["PreToolUse"]
        assert pre["onFailure"] == "block" and pre["timeout"] >= 3600  # fails closed, waits long

        call, args = tool_use_id(), {"command": "rm -rf /var/cache"}
        asking = asyncio.create_task(cli.pre_tool_use("Bash", args, call))
        edited = {"command": "rm -rf /var/cache/app"}
        approval = await decide(human, call, "edit", final_args=edited)
        assert approval["session_id"] == SESSION
        (answer,) = await asyncio.wait_for(asking, 15)
        assert answer == {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "allow",
                "updatedInput": edited,
            }
        }
        await cli.post_tool_use("Bash", edited, call, BASH_RESPONSE)
        await settled(human, approval["id"], "executed")

        call = tool_use_id()
        asking = asyncio.create_task(cli.pre_tool_use("Bash", args, call))
        await decide(human, call, "reject", reason="wrong directory")
        (answer,) = await asyncio.wait_for(asking, 15)
        out = answer["hookSpecificOutput"]
        assert out["permissionDecision"] == "deny"
        assert "wrong directory" in out["permissionDecisionReason"]

        # Not gated: no opinion, the CLI's own permission rules apply.
        assert await cli.pre_tool_use("Read", {"file_path": "x"}, tool_use_id()) == [{}]
        await gate.aclose()


async def test_redacted_arguments_stay_here_and_are_restored(
    server: PliuzServer, human: Human
) -> None:
    redact = {"mcp__payments__refund": ["card.number"]}
    async with connected_gate(server, redact=redact) as (gate, cli):
        call = tool_use_id()
        args = {"order_id": "ord-9", "amount_cents": 700, "card": {"number": "4111111111111111"}}
        asking = asyncio.create_task(cli.can_use_tool("mcp__payments__refund", args, call))
        a = await pending(human, call)
        assert a["tool_args"]["card"]["number"] == "[REDACTED]"
        await asyncio.to_thread(human.decide_ok, a["id"], "approve")
        answer = await asyncio.wait_for(asking, 15)
        assert answer == {"behavior": "allow", "updatedInput": args}  # the real number, restored
        await cli.post_tool_use("mcp__payments__refund", args, call, "refunded")
        await settled(human, a["id"], "executed")
        await gate.aclose()


async def test_timeout_denies_and_cancels_the_request(server: PliuzServer, human: Human) -> None:
    async with connected_gate(server, timeout_s=1.0, cancel_on_timeout=True) as (_, cli):
        call = tool_use_id()
        answer = await asyncio.wait_for(cli.can_use_tool("Bash", {"command": "uptime"}, call), 15)
        assert "no approval decision arrived within 1 seconds" in denial(answer)
        (a,) = await by_call(human, call)
        await settled(human, a["id"], "cancelled")


async def test_withdrawn_permission_request_cancels_the_pending_approval(
    server: PliuzServer, human: Human
) -> None:
    async with connected_gate(server) as (gate, cli):
        call = tool_use_id()
        request_id, answer = cli.ask_permission("Bash", {"command": "sleep 1000"}, call)
        a = await pending(human, call)
        cli.cancel(request_id)  # the user interrupted the agent
        done = await settled(human, a["id"], "cancelled")
        assert done["decision"]["outcome"] == "cancelled"
        assert "cancelled the tool call" in done["decision"]["reason"]
        assert not answer.done()  # a withdrawn request gets no answer
        await gate.aclose()


async def test_unknown_policy_denies_as_misconfigured(
    server: PliuzServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with connected_gate(server, policies={"Bash": "no-such-policy"}) as (_, cli):
        answer = await asyncio.wait_for(
            cli.can_use_tool("Bash", {"command": "ls"}, tool_use_id()), 15
        )
        assert "misconfigured" in denial(answer)
        assert "nobody was asked" in answer["message"]
        assert any("misconfigured" in r.getMessage() for r in caplog.records)


async def test_missing_post_tool_use_leaves_the_outcome_unknown(
    server: PliuzServer, human: Human
) -> None:
    async with connected_gate(server, outcome_timeout_s=0.5) as (gate, cli):
        call, args = tool_use_id(), {"command": "date"}
        asking = asyncio.create_task(cli.can_use_tool("Bash", args, call))
        approval = await decide(human, call, "approve")
        assert (await asyncio.wait_for(asking, 15))["behavior"] == "allow"
        assert await gate.aclose(timeout=5)  # the call gave up waiting for its outcome
        await cli.post_tool_use("Bash", args, call, BASH_RESPONSE)  # too late: ignored
        await asyncio.sleep(0.5)
        a = await asyncio.to_thread(human.get, approval["id"])
        assert a["status"] == "executing"  # claimed, never reported: outcome unknown
        # Asked again for the same call, the gate does not allow it a second time.
        again = await asyncio.wait_for(cli.can_use_tool("Bash", args, call), 15)
        assert "outcome is unknown" in denial(again)


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="ungated"):
        ClaudeGate(ungated="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="policies"):
        ClaudeGate({"Bash": ""})
    gate = ClaudeGate({"Bash": "shell", "mcp__pay*": "payments", "mcp__*": "mcp"}, default="rest")
    assert gate.policy_for("Bash") == "shell"
    assert gate.policy_for("mcp__payments__refund") == "payments"  # first pattern wins
    assert gate.policy_for("mcp__github__issue") == "mcp"
    assert gate.policy_for("Read") == "rest"
