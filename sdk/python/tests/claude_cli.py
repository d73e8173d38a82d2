"""The Claude Code CLI's end of the Claude Agent SDK's control protocol, scripted by a test.

For what the real CLI (``test_claude_agent_cli.py``) cannot be made to do on
cue: two permission requests for one call, an expiry, a tool failure. This
transport stands in for the CLI process only: the SDK under test is the
real ``claude_agent_sdk.ClaudeSDKClient`` with its real ``Query``, which sends
``initialize`` (with the hook callback ids), receives ``can_use_tool`` and
``hook_callback`` control requests exactly as the CLI writes them on stdout
(the shapes of ``SDKControlPermissionRequest`` / ``SDKHookCallbackRequest`` in
``claude_agent_sdk.types``), runs the callbacks and answers with
``control_response`` lines, which this transport parses as the CLI would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient
from claude_agent_sdk._internal.transport import Transport
from claude_agent_sdk.types import SDKControlPermissionRequest, SDKHookCallbackRequest

SESSION = "0b6c6f3e-claude-session"


class ScriptedCli(Transport):
    """A CLI process whose tool calls the test triggers one by one."""

    def __init__(self) -> None:
        self._to_sdk: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._ready = False
        #: hook event -> [{"matcher": ..., "hookCallbackIds": [...], ...}] from initialize
        self.hooks: dict[str, list[dict[str, Any]]] = {}
        self.user_messages: list[dict[str, Any]] = []

    # -- Transport ------------------------------------------------------------------------

    async def connect(self) -> None:
        self._ready = True

    async def write(self, data: str) -> None:
        for line in data.splitlines():
            if not line.strip():
                continue
            msg = json.loads(line)
            if msg["type"] == "control_request":
                self._sdk_asks(msg)
            elif msg["type"] == "control_response":
                response = msg["response"]
                self._answers.pop(response["request_id"]).set_result(response)
            elif msg["type"] == "user":
                self.user_messages.append(msg)

    def _sdk_asks(self, msg: dict[str, Any]) -> None:
        request = msg["request"]
        if request["subtype"] == "initialize":
            self.hooks = dict(request.get("hooks") or {})
            answer = {"commands": [], "hook_on_failure_supported": True, "hooks_applied": True}
        else:
            answer = {}
        self._to_sdk.put_nowait(
            {
                "type": "control_response",
                "response": {
                    "subtype": "success",
                    "request_id": msg["request_id"],
                    "response": answer,
                },
            }
        )

    async def read_messages(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            msg = await self._to_sdk.get()
            if msg is None:
                return
            yield msg

    async def close(self) -> None:
        self._ready = False
        self._to_sdk.put_nowait(None)

    def is_ready(self) -> bool:
        return self._ready

    async def end_input(self) -> None:
        pass

    # -- what the CLI sends ----------------------------------------------------------------

    def _send(self, request: Any) -> tuple[str, asyncio.Future[dict[str, Any]]]:
        request_id = f"cli_req_{next(self._ids)}"
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = answer
        self._to_sdk.put_nowait(
            {"type": "control_request", "request_id": request_id, "request": request}
        )
        return request_id, answer

    async def _control(self, request: Any) -> dict[str, Any]:
        _, answer = self._send(request)
        response = await answer
        assert response["subtype"] == "success", response
        return dict(response["response"])

    def ask_permission(
        self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str
    ) -> tuple[str, asyncio.Future[dict[str, Any]]]:
        """Send a ``can_use_tool`` request; its id (for :meth:`cancel`) and the raw answer."""
        request: SDKControlPermissionRequest = {
            "subtype": "can_use_tool",
            "tool_name": tool_name,
            "input": tool_input,
            "permission_suggestions": None,
            "blocked_path": None,
            "tool_use_id": tool_use_id,
        }
        return self._send(request)

    async def can_use_tool(
        self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str
    ) -> dict[str, Any]:
        """Ask for permission; the SDK's answer: ``{"behavior": "allow", "updatedInput"}``
        or ``{"behavior": "deny", "message", ...}``."""
        _, answer = self.ask_permission(tool_name, tool_input, tool_use_id)
        response = await answer
        assert response["subtype"] == "success", response
        return dict(response["response"])

    def cancel(self, request_id: str) -> None:
        """Withdraw a request, as the CLI does when the user interrupts (no answer follows)."""
        self._answers.pop(request_id, None)
        self._to_sdk.put_nowait({"type": "control_cancel_request", "request_id": request_id})

    async def hook(
        self, event: str, tool_name: str, hook_input: dict[str, Any], tool_use_id: str
    ) -> list[dict[str, Any]]:
        """Run the SDK's hook callbacks registered for ``event`` whose matcher matches."""
        answers = []
        for matcher in self.hooks.get(event, []):
            pattern = matcher.get("matcher")
            if pattern not in (None, "", "*") and not re.fullmatch(pattern, tool_name):
                continue
            for callback_id in matcher["hookCallbackIds"]:
                request: SDKHookCallbackRequest = {
                    "subtype": "hook_callback",
                    "callback_id": callback_id,
                    "input": hook_input,
                    "tool_use_id": tool_use_id,
                }
                answers.append(await self._control(request))
        return answers

    async def tool_hook(
        self,
        event: str,
        tool_name: str,
        tool_input: dict[str, Any],
        tool_use_id: str,
        **more: Any,
    ) -> list[dict[str, Any]]:
        """The ``event`` hooks about one tool call (``more``: the event's own fields)."""
        hook_input = {**_base(), "hook_event_name": event, "tool_name": tool_name,
                      "tool_input": tool_input, "tool_use_id": tool_use_id, **more}  # fmt: skip
        return await self.hook(event, tool_name, hook_input, tool_use_id)

    async def pre_tool_use(
        self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str
    ) -> list[dict[str, Any]]:
        return await self.tool_hook("PreToolUse", tool_name, tool_input, tool_use_id)

    async def post_tool_use(
        self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str, response: Any
    ) -> list[dict[str, Any]]:
        return await self.tool_hook(
            "PostToolUse", tool_name, tool_input, tool_use_id,
            tool_response=response, duration_ms=12,
        )  # fmt: skip

    async def post_tool_use_failure(
        self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str, error: str
    ) -> list[dict[str, Any]]:
        return await self.tool_hook(
            "PostToolUseFailure", tool_name, tool_input, tool_use_id, error=error
        )


def _base() -> dict[str, Any]:
    return {
        "session_id": SESSION,
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": "/tmp",
        "permission_mode": "default",
    }


async def connected(options: ClaudeAgentOptions) -> tuple[ClaudeSDKClient, ScriptedCli]:
    """A real ``ClaudeSDKClient`` connected (``initialize`` done) to a scripted CLI."""
    cli = ScriptedCli()
    client = ClaudeSDKClient(options, transport=cli)
    await client.connect()
    return client, cli
