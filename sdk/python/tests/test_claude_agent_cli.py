"""The Claude Agent SDK adapter with the real Claude Code CLI, end to end and offline.

``ClaudeSDKClient`` starts the CLI bundled with ``claude-agent-sdk``; the CLI
asks the SDK's ``can_use_tool`` / hooks (the adapter), runs the real tools
(``Bash``, ``Write``) in a temporary directory and sends their results to the
model. The model is the scripted stand-in of :mod:`model_standin` (the only
part that is not real); the approvals are decided on the real ``pliuz``
server by a human over HTTP.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage
from model_standin import ModelStandIn
from server import Human, PliuzServer

from pliuz import AsyncPliuzClient
from pliuz.adapters.claude_agent import ClaudeGate

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(claude_server: PliuzServer) -> PliuzServer:
    """This module's server (and so its ``human``): the Claude tools' policies."""
    return claude_server


def call_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:20]}"


def bash(command: str) -> dict[str, Any]:
    return {"command": command, "description": "test step"}


async def run_agent(
    tmp: Path, model: ModelStandIn, gate: ClaudeGate, *, gate_in_hook: str | None = None
) -> ResultMessage:
    env = {
        "ANTHROPIC_BASE_URL": model.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-offline-test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HOME": str(tmp / "home"),  # no user settings, nothing written to the real home
    }
    (tmp / "home").mkdir(exist_ok=True)
    if gate_in_hook == "allowed_tools":
        # Bash is pre-allowed (the CLI never asks can_use_tool about it): the hook gates.
        options = ClaudeAgentOptions(
            hooks=gate.hooks(gate_in_hook=True), allowed_tools=["Bash"], cwd=tmp, env=env
        )
    elif gate_in_hook == "bypassPermissions":
        # Every permission check off; IS_SANDBOX lets the CLI do that as root (CI runs as root).
        options = ClaudeAgentOptions(
            hooks=gate.hooks(gate_in_hook=True), permission_mode="bypassPermissions",
            cwd=tmp, env={**env, "IS_SANDBOX": "1"},
        )  # fmt: skip
    else:
        options = ClaudeAgentOptions(
            can_use_tool=gate.can_use_tool,
            hooks=gate.hooks(),
            cwd=tmp, env=env,
        )  # fmt: skip
    result: ResultMessage | None = None
    async with ClaudeSDKClient(options) as claude:
        await claude.query("Do the scripted steps.")
        async for message in claude.receive_response():
            if isinstance(message, ResultMessage):
                result = message
    assert result is not None
    return result


def shell_gate(server: PliuzServer) -> ClaudeGate:
    """A gate asking the server's ``shell`` policy about ``Bash`` (only)."""
    return ClaudeGate({"Bash": "shell"}, client=AsyncPliuzClient(server.agent_key, server.base_url))


def one_command(server: PliuzServer, command: str) -> tuple[str, ModelStandIn, ClaudeGate]:
    """A model that runs one Bash ``command`` (the call's id, the model) and the gate on it."""
    shell = call_id()
    return shell, ModelStandIn([(shell, "Bash", bash(command))]), shell_gate(server)


async def run_deciding(
    tmp: Path,
    model: ModelStandIn,
    gate: ClaudeGate,
    *decisions: asyncio.Task[Any],
    gate_in_hook: str | None = None,
) -> tuple[ResultMessage, list[Any]]:
    """Run the agent while the human makes ``decisions``; its result and the decided approvals."""
    with model:
        result = await asyncio.wait_for(run_agent(tmp, model, gate, gate_in_hook=gate_in_hook), 120)
        decided = [await decision for decision in decisions]
    return result, decided


def decide_when_pending(human: Human, call: str, decision: str, **kw: Any) -> asyncio.Task[Any]:
    def run() -> dict[str, Any]:
        (a,) = human.wait_pending(where=lambda a: a["call_id"] == call, timeout=60)
        return human.decide_ok(a["id"], decision, **kw)

    return asyncio.create_task(asyncio.to_thread(run))


async def executed(human: Human, approval_id: str) -> dict[str, Any]:
    for _ in range(150):
        a = await asyncio.to_thread(human.get, approval_id)
        if a["status"] == "executed":
            return a
        await asyncio.sleep(0.1)
    raise AssertionError(f"{approval_id} never became executed: {a}")


def requests_for(human: Human, call: str) -> list[dict[str, Any]]:
    return [a for a in human.list() if a.get("call_id") == call]


async def test_cli_approved_bash_runs_once_and_is_reported(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    write, shell = call_id(), call_id()
    model = ModelStandIn(
        [
            (write, "Write", {"file_path": str(tmp_path / "notes.txt"), "content": "hi"}),
            (shell, "Bash", bash("echo approved >> out.txt")),
        ]
    )
    gate = shell_gate(server)
    approve = decide_when_pending(human, shell, "approve")
    result, (approval,) = await run_deciding(tmp_path, model, gate, approve)
    assert not result.is_error, result
    assert (tmp_path / "out.txt").read_text() == "approved\n"  # ran, once
    assert (tmp_path / "notes.txt").read_text() == "hi"  # the ungated Write ran unchanged
    assert requests_for(human, write) == []  # and nobody was asked about it
    assert approval["session_id"] == result.session_id  # the Claude session, from PreToolUse
    done = await executed(human, approval["id"])
    assert done["execution"]["outcome"] == "success"
    assert model.results[shell].get("is_error") is not True
    assert await gate.aclose()


async def test_cli_edit_runs_the_edited_command(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    shell, model, gate = one_command(server, "echo original >> out.txt")
    edit = decide_when_pending(human, shell, "edit", final_args=bash("echo edited >> out.txt"))
    _, (approval,) = await run_deciding(tmp_path, model, gate, edit)
    assert (tmp_path / "out.txt").read_text() == "edited\n"
    done = await executed(human, approval["id"])
    assert done["final_args"]["command"] == "echo edited >> out.txt"
    await gate.aclose()


async def test_cli_reject_does_not_run_and_the_model_reads_the_reason(
    server: PliuzServer, human: Human, tmp_path: Path
) -> None:
    shell, model, gate = one_command(server, "echo nope >> out.txt")
    reject = decide_when_pending(human, shell, "reject", reason="not on a Friday")
    _, (approval,) = await run_deciding(tmp_path, model, gate, reject)
    assert not (tmp_path / "out.txt").exists()
    told = model.results[shell]
    assert told.get("is_error") is True
    assert "not on a Friday" in str(told["content"])
    assert (await asyncio.to_thread(human.get, approval["id"]))["status"] == "rejected"


@pytest.mark.parametrize("setup", ["allowed_tools", "bypassPermissions"])
async def test_cli_pre_tool_use_gate_holds_when_the_cli_would_not_ask(
    server: PliuzServer, human: Human, tmp_path: Path, setup: str
) -> None:
    first, second = call_id(), call_id()
    steps = [(first, "Bash", bash("echo one >> out.txt"))]
    steps.append((second, "Bash", bash("echo two >> out.txt")))
    model = ModelStandIn(steps)
    gate = shell_gate(server)
    approve = decide_when_pending(human, first, "approve")
    reject = decide_when_pending(human, second, "reject", reason="one is enough")
    _, (approved, _) = await run_deciding(
        tmp_path, model, gate, approve, reject, gate_in_hook=setup
    )
    assert (tmp_path / "out.txt").read_text() == "one\n"
    assert "one is enough" in str(model.results[second]["content"])
    done = await executed(human, approved["id"])
    assert done["execution"]["outcome"] == "success"
    await gate.aclose()
