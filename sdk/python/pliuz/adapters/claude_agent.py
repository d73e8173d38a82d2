"""Pliuz approval gates for the Claude Agent SDK (``claude-agent-sdk``).

Install from the repository: ``pip install "./sdk/python[claude-agent]"``.

The Claude Agent SDK runs tools itself (inside the Claude Code CLI); an
application only decides whether a call may run. :class:`ClaudeGate` makes that
decision a Pliuz approval::

    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient
    from pliuz.adapters.claude_agent import ClaudeGate

    gate = ClaudeGate(policies={"Bash": "shell", "mcp__payments__refund": "refunds"})
    options = ClaudeAgentOptions(can_use_tool=gate.can_use_tool, hooks=gate.hooks())
    async with ClaudeSDKClient(options) as claude:
        ...

When the CLI asks for permission (``can_use_tool``) to run a gated tool, the
gate asks Pliuz and waits. Approved: it **claims the execution** (so the call
runs at most once, whoever else is attached to the same request), then answers
allow with the approved arguments (an approver's edit becomes
``updated_input``). The ``PostToolUse`` / ``PostToolUseFailure`` hooks of
:meth:`ClaudeGate.hooks` report the outcome, and the request becomes
``executed``. Rejected, expired, timed out, server unreachable, already
executed: deny, with a message the model reads (the reviewer's reason on a
reject). It fails closed, always.

``can_use_tool`` is only consulted for calls the CLI would ask about; a tool in
``allowed_tools`` or a session in ``bypassPermissions`` mode never reaches it.
``hooks(gate_in_hook=True)`` gates in a ``PreToolUse`` hook instead, which runs
for every tool call.
"""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from claude_agent_sdk import (
    HookContext,
    HookInput,
    HookJSONOutput,
    HookMatcher,
    PermissionResultAllow,
    PermissionResultDeny,
    ToolPermissionContext,
)
from claude_agent_sdk.types import HookEvent

from .._client import AsyncPliuzClient
from .._gate import excerpt, prepare_call, run_gated_async
from .._reports import flush_reports
from .._shared import shared_async_client
from ..errors import PliuzError
from ..redaction import parse_path
from ._common import message_for, not_run

__all__ = ["ClaudeGate", "GateDecision"]

log = logging.getLogger("pliuz")

#: How long the gate keeps a claimed call open for its ``PostToolUse`` report by default.
DEFAULT_OUTCOME_TIMEOUT_S = 3600.0

#: Default ``HookMatcher.timeout`` of the gating ``PreToolUse`` hook: a human may take
#: a while, and the CLI's default (60 s) would end the wait long before.
DEFAULT_HOOK_TIMEOUT_S = 86400.0

#: Sessions seen by ``PreToolUse`` are remembered for this many tool calls, for the
#: ``can_use_tool`` callback that follows (its context carries no session id).
SESSIONS_REMEMBERED = 1024


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided for one tool call.

    ``allowed`` with ``args`` (the approved arguments, ``None`` for an ungated
    tool that passes unchanged), or not allowed with ``message`` (what the model is told).
    """

    allowed: bool
    args: dict[str, Any] | None = None
    message: str = ""


@dataclass(frozen=True)
class _Outcome:
    """What the SDK told us about a tool it ran after our allow."""

    ok: bool
    output: Any


class _ToolFailed(Exception):
    """The tool ran and failed (``PostToolUseFailure``): reported as ``error``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.report_text = text  # what _gate puts in the execution report


class _NoOutcome(Exception):
    """No ``PostToolUse``/``PostToolUseFailure`` arrived in time: the outcome is unknown.

    Passed to the gate as ``unknown_outcome``: no report is sent and the claim is not
    kept, so the server keeps showing the request as ``executing`` (outcome unknown),
    which is the truth, and a later permission request for the call is denied.
    """


class ClaudeGate:
    """Pliuz approval for the tool calls of a Claude Agent SDK session.

    Args:
        policies: tool name (or ``fnmatch`` pattern such as ``"mcp__payments__*"``) →
            Pliuz policy name. Exact names win over patterns; patterns are tried
            in the mapping's order.
        default: policy for every tool not in ``policies``; ``None`` (default):
            those tools are not gated.
        ungated: what happens to a tool that is not gated: ``"allow"`` (default;
            it runs unchanged, as far as this gate is concerned) or ``"deny"``.
        client: the :class:`~pliuz.AsyncPliuzClient` to use; default: the event
            loop's shared client for ``PLIUZ_API_KEY`` / ``PLIUZ_BASE_URL``.
        timeout_s: stop waiting for a decision after this many seconds (deny).
            ``None``: wait until the server settles the request (approval or expiry).
        cancel_on_timeout: cancel the pending request when ``timeout_s`` elapses.
        session_id: the request's ``session_id`` (part of the idempotency key);
            default: the Claude session id seen by the ``PreToolUse`` hook.
        originator: who the agent acts for, shown to approvers.
        redact: tool name → argument paths never sent to the server
            (``{"mcp__payments__refund": ["card.number"]}``); the originals are
            put back in the arguments the tool runs with.
        client_metadata: extra JSON object stored with each request.
        interrupt_on_deny: a denial also stops the agent's turn (the SDK's
            ``PermissionResultDeny(interrupt=True)``); default: the model is told
            and continues.
        report_output: include a short excerpt of the tool's output in the
            execution report.
        outcome_timeout_s: how long a claimed call waits for the SDK's
            ``PostToolUse``/``PostToolUseFailure``; past it no report is sent and
            the request stays ``executing`` (outcome unknown).
    """

    def __init__(
        self,
        policies: Mapping[str, str] | None = None,
        *,
        default: str | None = None,
        ungated: Literal["allow", "deny"] = "allow",
        client: AsyncPliuzClient | None = None,
        timeout_s: float | None = None,
        cancel_on_timeout: bool = False,
        session_id: str | None = None,
        originator: str | None = None,
        redact: Mapping[str, Sequence[str]] | None = None,
        client_metadata: dict[str, Any] | None = None,
        interrupt_on_deny: bool = False,
        report_output: bool = True,
        outcome_timeout_s: float | None = DEFAULT_OUTCOME_TIMEOUT_S,
    ) -> None:
        if ungated not in ("allow", "deny"):
            raise ValueError("ungated must be 'allow' or 'deny'")
        for name, policy in (policies or {}).items():
            if not isinstance(policy, str) or not policy:
                raise ValueError(f"policies[{name!r}] must be a policy name, got {policy!r}")
        self._exact = {k: v for k, v in (policies or {}).items() if not _is_pattern(k)}
        self._patterns = [(k, v) for k, v in (policies or {}).items() if _is_pattern(k)]
        self.default = default
        self.ungated = ungated
        self._client = client
        self.timeout_s = timeout_s
        self.cancel_on_timeout = cancel_on_timeout
        self.session_id = session_id
        self.originator = originator
        self._redact = {k: list(v) for k, v in (redact or {}).items()}
        for paths in self._redact.values():
            for path in paths:
                parse_path(path)  # a bad path is an error now, not at the first call
        self.client_metadata = client_metadata
        self.interrupt_on_deny = interrupt_on_deny
        self.report_output = report_output
        self.outcome_timeout_s = outcome_timeout_s
        # tool_use_id -> where the SDK's outcome report goes, for claimed calls
        self._running: dict[str, asyncio.Future[_Outcome]] = {}
        # tool_use_id -> session id seen by PreToolUse (bounded)
        self._sessions: collections.OrderedDict[str, str] = collections.OrderedDict()
        # gated calls still open (waiting for a decision or for the outcome)
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- which tools ------------------------------------------------------------

    def policy_for(self, tool_name: str) -> str | None:
        """The policy gating ``tool_name``, ``None`` if it is not gated."""
        if tool_name in self._exact:
            return self._exact[tool_name]
        for pattern, policy in self._patterns:
            if fnmatch.fnmatchcase(tool_name, pattern):
                return policy
        return self.default

    # -- the decision -------------------------------------------------------------

    async def decide(
        self,
        tool_name: str,
        tool_input: dict[str, Any],
        tool_use_id: str | None,
        *,
        session_id: str | None = None,
    ) -> GateDecision:
        """Ask Pliuz about one tool call; on approval the execution is already claimed.

        After an allowed gated call the SDK runs the tool; its outcome must come
        back through :meth:`post_tool_use` (the ``PostToolUse`` and
        ``PostToolUseFailure`` hooks of :meth:`hooks`) or the request stays ``executing``.
        """
        policy = self.policy_for(tool_name)
        if policy is None:
            if self.ungated == "allow":
                return GateDecision(True)
            return GateDecision(
                False,
                message=not_run(tool_name, "no approval policy covers this tool for this agent."),
            )
        if not tool_use_id:
            # The id is part of the idempotency key and where the outcome report is
            # matched; without it the call could be neither told apart nor reported.
            return GateDecision(
                False, message=not_run(tool_name, "the SDK gave no tool_use_id to gate it by.")
            )
        try:
            client = self._client or await shared_async_client()
            prepared = prepare_call(
                tool_name,
                tool_input,
                secret=client.api_key,
                policy=policy,
                redact_paths=self._redact.get(tool_name, ()),
                call_id=tool_use_id,
                session_id=self.session_id or session_id or self._sessions.pop(tool_use_id, None),
                originator=self.originator,
                client_metadata=self.client_metadata,
            )
        except PliuzError as exc:
            return GateDecision(False, message=message_for(tool_name, exc, self.timeout_s))

        loop = asyncio.get_running_loop()
        allowed: asyncio.Future[dict[str, Any]] = loop.create_future()
        outcome: asyncio.Future[_Outcome] = loop.create_future()

        async def run_tool(args: dict[str, Any]) -> Any:
            # The execution is claimed: from here the SDK runs the tool once we answer
            # allow, and the outcome arrives through the PostToolUse hooks.
            self._running[tool_use_id] = outcome
            allowed.set_result(args)
            try:
                result = await asyncio.wait_for(asyncio.shield(outcome), self.outcome_timeout_s)
            except asyncio.TimeoutError:
                log.warning(
                    "pliuz: no PostToolUse for %s (%s) within %ss: the request stays "
                    "'executing' (outcome unknown). Are the hooks of ClaudeGate.hooks() "
                    "installed?", tool_name, tool_use_id, self.outcome_timeout_s,
                )  # fmt: skip
                raise _NoOutcome(tool_use_id) from None
            except asyncio.CancelledError:
                # The event loop is shutting down while the tool may be running: report
                # nothing rather than a failure that may not have happened.
                raise _NoOutcome(tool_use_id) from None
            finally:
                self._running.pop(tool_use_id, None)
            if not result.ok:
                raise _ToolFailed(excerpt(str(result.output)))
            return result.output

        task = loop.create_task(
            run_gated_async(
                client,
                prepared,
                run_tool,
                timeout_s=self.timeout_s,
                cancel_on_timeout=self.cancel_on_timeout,
                report_output=self.report_output,
                report_excerpt=_output_excerpt,
                unknown_outcome=(_NoOutcome,),
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        try:
            await asyncio.wait({task, allowed}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The SDK withdrew the permission request: the tool will not run.
            if allowed.done() and not outcome.done():
                why = "not run: the SDK withdrew the permission request after the claim"
                outcome.set_result(_Outcome(False, why))
            elif not allowed.done():
                task.cancel()  # the gate cancels the pending Pliuz request
            raise
        if allowed.done():
            return GateDecision(True, allowed.result())
        if task.cancelled():  # the event loop is shutting down
            return GateDecision(False, message=not_run(tool_name, "the session is ending."))
        failure = task.exception()
        if isinstance(failure, PliuzError):
            return GateDecision(False, message=message_for(tool_name, failure, self.timeout_s))
        log.error("pliuz: gating %s failed: %r", tool_name, failure)
        return GateDecision(
            False, message=not_run(tool_name, f"the approval gate failed ({failure!r}).")
        )

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved (already turned into a denial, or logged)

    # -- the Claude Agent SDK's callbacks ----------------------------------------------

    async def can_use_tool(
        self, tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        """``ClaudeAgentOptions(can_use_tool=...)``: allow or deny one tool call."""
        decision = await self.decide(tool_name, tool_input, context.tool_use_id)
        if decision.allowed:
            return PermissionResultAllow(updated_input=decision.args)
        return PermissionResultDeny(message=decision.message, interrupt=self.interrupt_on_deny)

    async def pre_tool_use(
        self, input_data: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        """``PreToolUse`` hook that gates the call (``hooks(gate_in_hook=True)``)."""
        if input_data["hook_event_name"] != "PreToolUse":
            return {}
        decision = await self.decide(
            input_data["tool_name"],
            input_data["tool_input"],
            tool_use_id or input_data["tool_use_id"],
            session_id=input_data["session_id"],
        )
        if not decision.allowed:
            return {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "deny",
                    "permissionDecisionReason": decision.message,
                }
            }
        if decision.args is None:
            return {}  # not gated: the CLI's own permission rules apply
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "allow",
                "updatedInput": decision.args,
            }
        }

    async def remember_session(
        self, input_data: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        """``PreToolUse`` hook that only notes the session id for ``can_use_tool``."""
        if input_data["hook_event_name"] == "PreToolUse":
            self._sessions[tool_use_id or input_data["tool_use_id"]] = input_data["session_id"]
            while len(self._sessions) > SESSIONS_REMEMBERED:
                self._sessions.popitem(last=False)
        return {}

    async def post_tool_use(
        self, input_data: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        """``PostToolUse`` / ``PostToolUseFailure`` hook: report the outcome of a gated call."""
        if input_data["hook_event_name"] == "PostToolUse":
            call = tool_use_id or input_data["tool_use_id"]
            self._resolve(call, True, input_data["tool_response"])
        elif input_data["hook_event_name"] == "PostToolUseFailure":
            call = tool_use_id or input_data["tool_use_id"]
            what = "interrupted: " if input_data.get("is_interrupt") else ""
            self._resolve(call, False, f"tool failed: {what}{input_data['error']}")
        return {}

    def _resolve(self, tool_use_id: str, ok: bool, output: Any) -> None:
        waiting = self._running.get(tool_use_id)
        if waiting is not None and not waiting.done():
            waiting.set_result(_Outcome(ok, output))

    def hooks(self, *, gate_in_hook: bool = False) -> dict[HookEvent, list[HookMatcher]]:
        """The hooks to pass as ``ClaudeAgentOptions(hooks=...)``.

        Always: ``PostToolUse`` and ``PostToolUseFailure`` (the execution reports) and
        a ``PreToolUse`` hook. With ``gate_in_hook=False`` (use together with
        ``can_use_tool``) it only notes the session id; with ``gate_in_hook=True`` it
        is the gate (no ``can_use_tool`` needed), with a long timeout and
        ``on_failure="block"`` so a hook that fails or times out blocks the call.
        """
        pre = (
            HookMatcher(
                hooks=[self.pre_tool_use], timeout=DEFAULT_HOOK_TIMEOUT_S, on_failure="block"
            )
            if gate_in_hook
            else HookMatcher(hooks=[self.remember_session])
        )
        return {
            "PreToolUse": [pre],
            "PostToolUse": [HookMatcher(hooks=[self.post_tool_use])],
            "PostToolUseFailure": [HookMatcher(hooks=[self.post_tool_use])],
        }

    # -- shutting down ------------------------------------------------------------------

    async def aclose(self, timeout: float = 30.0) -> bool:
        """Wait up to ``timeout`` seconds for the gated calls still open (waiting for a
        decision or for their tool's outcome) and for their execution reports.

        Returns ``False`` if some were still open or undelivered at the end; those are
        left alone: a call still waiting is not cancelled (its tool may be running), and
        a report keeps being delivered in the background (:func:`pliuz.flush_reports`).
        """
        deadline = asyncio.get_running_loop().time() + timeout
        if self._tasks:
            _, still_open = await asyncio.wait(set(self._tasks), timeout=timeout)
            if still_open:
                return False
        left = max(0.0, deadline - asyncio.get_running_loop().time())
        return await asyncio.to_thread(flush_reports, left)


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def _output_excerpt(output: Any) -> str | None:
    if isinstance(output, str):
        return excerpt(output)
    try:
        return excerpt(json.dumps(output, ensure_ascii=False, default=str))
    except (TypeError, ValueError):
        return excerpt(repr(output))
