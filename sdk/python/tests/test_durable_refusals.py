"""Runs refuses to store a pause it cannot stand behind (real Runner, scripted model)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from agents import Agent, RunConfig, function_tool
from agents.testing import ScriptedModel, function_call
from server import Human, free_port

from pliuz import AsyncPliuzClient
from pliuz.adapters.openai_agents import Runs, gated_tool
from pliuz.runs import PliuzRunError


def test_sdk_approval_without_pliuz_is_refused(agent_env: dict[str, str], human: Human) -> None:
    ran: list[str] = []

    @function_tool(needs_approval=True)
    def delete_user(user_id: str) -> str:
        """Delete a user (SDK approval only, not gated by Pliuz)."""
        ran.append(user_id)
        return "deleted"

    model = ScriptedModel([[function_call("delete_user", {"user_id": "u1"}, call_id="d1")]])
    agent = Agent(name="Admin", tools=[delete_user])
    with pytest.raises(PliuzRunError, match="not gated by Pliuz"):
        Runs().run_sync(agent, "go", run_config=RunConfig(model=model, tracing_disabled=True))
    assert ran == []


def test_unreachable_server_while_pausing_is_refused_and_nothing_runs() -> None:
    ran: list[str] = []

    @gated_tool()
    @function_tool
    def transfer(account: str) -> str:
        """Move money."""
        ran.append(account)
        return "moved"

    dead = f"http://127.0.0.1:{free_port()}"
    model = ScriptedModel([[function_call("transfer", {"account": "A"}, call_id="t1")]])

    async def scenario() -> None:
        async with AsyncPliuzClient("pliuz_ak_test", dead, max_retries=0) as client:
            await Runs(client).run(
                Agent(name="Payer", tools=[transfer]), "go",
                run_config=RunConfig(model=model, tracing_disabled=True,
                                     group_id=uuid.uuid4().hex),
            )  # fmt: skip

    with pytest.raises(PliuzRunError, match="could not be created"):
        asyncio.run(scenario())
    assert ran == []


def test_blocking_mode_keeps_the_tools_own_needs_approval() -> None:
    @function_tool
    def lookup(customer: str) -> str:
        """Look a customer up."""
        return customer

    assert gated_tool()(lookup).needs_approval is False
    strict = function_tool(needs_approval=True)(lambda customer: customer)
    strict.name = "strict_lookup"
    assert gated_tool()(strict).needs_approval is True
