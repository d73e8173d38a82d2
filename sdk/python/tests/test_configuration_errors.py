"""Configuration mistakes are loud: a warning naming the problem, a typed error for
``gated``, and still a fail-closed "not run" for the model. Real server, real Runner."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from agent_helpers import run, tool_outputs
from agents import Agent, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from server import PliuzServer

import pliuz
from pliuz import AsyncPliuzClient, PliuzClient, gated
from pliuz.adapters.openai_agents import gated_tool


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records
        if r.name == "pliuz" and r.levelno == logging.WARNING
    ]  # fmt: skip


def _misconfigured(server: PliuzServer, case: str) -> dict[str, Any]:
    """gated() options for each kind of mistake."""
    if case == "wrong_key":
        return {"client": PliuzClient(api_key="pliuz_ak_not_a_key", base_url=server.base_url)}
    good = PliuzClient(api_key=server.agent_key, base_url=server.base_url)
    if case == "unknown_policy":
        return {"client": good, "policy": "refundz"}
    return {"client": good, "tool_name": f"no_policy_covers_{uuid.uuid4().hex[:6]}"}


@pytest.mark.parametrize(
    ("case", "error", "named"),
    [
        ("wrong_key", pliuz.PliuzAuthenticationError, "401"),
        ("unknown_policy", pliuz.PliuzUnknownPolicyError, "refundz"),
        ("no_matching_policy", pliuz.PliuzNoMatchingPolicyError, "no_matching_policy"),
    ],
)
def test_gated_raises_a_configuration_error_and_warns(
    server: PliuzServer, caplog: pytest.LogCaptureFixture, case: str,
    error: type[pliuz.PliuzError], named: str,
) -> None:  # fmt: skip
    ran: list[int] = []

    @gated(**_misconfigured(server, case))
    def issue_refund(order_id: str, amount_cents: int) -> str:
        ran.append(amount_cents)
        return "refunded"

    with caplog.at_level(logging.WARNING, logger="pliuz"), pytest.raises(error) as info:
        issue_refund("A-1", 5000)
    assert isinstance(info.value, pliuz.PliuzConfigurationError)
    assert not isinstance(info.value, pliuz.PliuzDecisionError)  # not a human's rejection
    assert ran == []
    (warning,) = _warnings(caplog)
    assert "misconfigured" in warning and named in warning, warning


def test_gated_without_a_key_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PLIUZ_API_KEY", raising=False)

    @gated
    def issue_refund(order_id: str) -> str:
        raise AssertionError("must not run")

    with (
        caplog.at_level(logging.WARNING, logger="pliuz"),
        pytest.raises(pliuz.PliuzMissingAPIKeyError),
    ):
        issue_refund("A-1")
    (warning,) = _warnings(caplog)
    assert "PLIUZ_API_KEY" in warning


def test_a_human_rejection_is_not_a_configuration_error() -> None:
    assert not issubclass(pliuz.PliuzRejectedError, pliuz.PliuzConfigurationError)
    assert not issubclass(pliuz.PliuzConnectionError, pliuz.PliuzConfigurationError)


@pytest.mark.parametrize("case", ["no_key", "wrong_key", "unknown_policy"])
def test_agent_tool_fails_closed_and_warns(
    server: PliuzServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("PLIUZ_BASE_URL", server.base_url)
    if case == "no_key":
        monkeypatch.delenv("PLIUZ_API_KEY", raising=False)
    else:
        monkeypatch.setenv("PLIUZ_API_KEY", "pliuz_ak_wrong" if case == "wrong_key"
                           else server.agent_key)  # fmt: skip
    ran: list[int] = []

    @gated_tool(policy="refundz" if case == "unknown_policy" else "refunds")
    @function_tool
    def issue_refund(order_id: str, amount_cents: int) -> str:
        """Issue a customer refund."""
        ran.append(amount_cents)
        return "refunded"

    model = ScriptedModel([
        [function_call("issue_refund", {"order_id": "A-1", "amount_cents": 5000}, call_id="c1")],
        [assistant_message("done")],
    ])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="pliuz"):
        run(Agent(name="Support", tools=[issue_refund]), model)
    assert ran == []
    output = tool_outputs(model)["c1"]
    assert "NOT executed" in output and "misconfigured" in output, output
    (warning,) = _warnings(caplog)
    assert "issue_refund was NOT run" in warning, warning


def test_async_client_without_a_key_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PLIUZ_API_KEY", raising=False)
    with pytest.raises(pliuz.PliuzConfigurationError, match="PLIUZ_API_KEY"):
        AsyncPliuzClient()
