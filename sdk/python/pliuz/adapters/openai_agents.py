"""Pliuz approval gates for the OpenAI Agents SDK.

Install from the repository: ``pip install "./sdk/python[openai-agents]"``.

Stack :func:`gated_tool` on ``@function_tool`` — the gate runs before the tool body::

    from agents import Agent, function_tool
    from pliuz.adapters.openai_agents import gated_tool

    @gated_tool(policy="refunds")
    @function_tool
    def issue_refund(order_id: str, amount_cents: int) -> str:
        \"\"\"Issue a customer refund.\"\"\"
        return charge_back(order_id, amount_cents)

    agent = Agent(name="Support agent", tools=[issue_refund])

or wrap an existing tool: ``wrap_tool(tool, policy="refunds")``.

The wrapped tool is the same ``FunctionTool`` (name, description, parameter
schema and every other field unchanged) with a gated ``on_invoke_tool``. When
the model calls it, the wrapper asks Pliuz for approval and waits. On approval
the original tool runs with the final (possibly edited) arguments, redacted
values restored, and the execution is reported. Otherwise the tool does not
run and the model receives a plain tool result saying so: rejected (with the
reviewer's reason), expired, timed out, approval server unreachable. It fails
closed, always. ``on_reject="raise"`` raises :class:`PliuzToolRejectedError`
(a :class:`~pliuz.PliuzRejectedError` that the Agents SDK lets through) instead.

That is the blocking mode: the run waits inside the call. Run the agent through
:class:`Runs` instead and the same tools pause the run with the SDK's own
interruption (``needs_approval``), the state is stored in Pliuz and any process
resumes it (:mod:`pliuz.adapters.openai_agents_durable`). :func:`run_streamed`
is ``Runner.run_streamed`` plus a :class:`PliuzApprovalPendingEvent` while a
call waits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from agents import FunctionTool
from agents.exceptions import AgentsException
from agents.run_context import RunContextWrapper
from agents.tool_context import ToolContext
from agents.tool_guardrails import ToolOutputGuardrailData
from agents.util._approvals import evaluate_needs_approval_setting

from .._client import AsyncPliuzClient
from .._gate import PreparedCall, ask, excerpt, prepare_call, run_gated_async
from .._shared import shared_async_client
from ..errors import PliuzArgumentsError, PliuzError, PliuzRejectedError
from ..models import Approval
from ..redaction import parse_path, relax_schema
from ._ask_human import AskToolOptions
from ._common import HandledToolFailure, ToolRaised, message_for, not_run
from ._durable_scope import current_scope
from ._stream_events import PliuzApprovalPendingEvent, emit_pending, run_streamed
from ._tool_options import ToolOptions, tool_decorator, tool_gate

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "PliuzApprovalPendingEvent",
    "PliuzToolRejectedError",
    "Runs",
    "RunsResult",
    "ask_human_tool",
    "conversation_messages",
    "gated_tool",
    "run_streamed",
    "wrap_tool",
]

try:  # private marker set by the SDK's default failure formatter; optional
    from agents.tool import _DEFAULT_FAILURE_HANDLED_ATTR as _FAILURE_ATTR
except ImportError:  # pragma: no cover
    _FAILURE_ATTR = "_function_tool_default_failure_handled"

ContextValue = str | Callable[[ToolContext[Any]], "str | None"] | None
MessagesValue = (
    list[Any] | Literal["conversation"] | Callable[[ToolContext[Any]], "list[Any] | None"] | None
)
ClientValue = AsyncPliuzClient | Callable[[], AsyncPliuzClient] | None
OpenAIToolOptions = ToolOptions[
    ContextValue, MessagesValue, ClientValue, Literal["message", "raise"]
]


class PliuzToolRejectedError(PliuzRejectedError, AgentsException):
    """Raised by a gated tool with ``on_reject="raise"``; ``Runner.run`` raises it as is."""


def conversation_messages(ctx: RunContextWrapper[Any], limit: int = 20) -> list[dict[str, Any]]:
    """The last ``limit`` text messages of the current turn input, as ``{"role", "content"}``.

    Used by ``context_messages="conversation"``.
    """
    out: list[dict[str, Any]] = []
    for item in getattr(ctx, "turn_input", None) or []:
        data = item if isinstance(item, Mapping) else getattr(item, "__dict__", {})
        role = data.get("role")
        content = data.get("content")
        if not isinstance(role, str):
            continue
        if isinstance(content, list):
            parts = [p.get("text") for p in content if isinstance(p, Mapping) and "text" in p]
            content = "\n".join(str(p) for p in parts if p is not None)
        if isinstance(content, str):
            out.append({"role": role, "content": content})
    return out[-limit:]


def _session_from_context(ctx: RunContextWrapper[Any]) -> str | None:
    """Default session id: ``RunConfig.group_id``, else the run context's ``session_id``.

    Durable mode: ``needs_approval`` gets a context without the ``RunConfig``, so the one
    :class:`Runs` was given stands in (the check and the later invocation must derive the
    same idempotency key); last, the session the run was started with.
    """
    scope = current_scope()
    run_config = getattr(ctx, "run_config", None)
    if run_config is None and scope is not None:
        run_config = scope.run_config
    group_id = getattr(run_config, "group_id", None)
    if isinstance(group_id, str) and group_id:
        return group_id
    user_ctx = getattr(ctx, "context", None)
    value = (
        user_ctx.get("session_id")
        if isinstance(user_ctx, Mapping)
        else getattr(user_ctx, "session_id", None)
    )
    if isinstance(value, str) and value:
        return value
    return scope.session_id if scope is not None else None


def _resolve(value: Any, ctx: RunContextWrapper[Any]) -> Any:
    return value(ctx) if callable(value) else value


def wrap_tool(tool: FunctionTool, **options: Unpack[OpenAIToolOptions]) -> FunctionTool:
    """Return a copy of ``tool`` whose invocation is gated by Pliuz. See :func:`gated_tool`."""
    if not isinstance(tool, FunctionTool):
        raise TypeError(
            f"wrap_tool expects an agents.FunctionTool (put @gated_tool above @function_tool), "
            f"got {type(tool).__name__}"
        )
    o = tool_gate(options, on_reject="message")
    if o.on_reject not in ("message", "raise"):
        raise ValueError("on_reject must be 'message' or 'raise'")
    patterns = [parse_path(p) for p in o.redact]
    original = tool.on_invoke_tool
    name = tool.name
    schema = relax_schema(tool.params_json_schema, patterns)

    original_needs_approval = tool.needs_approval

    async def make_client() -> tuple[AsyncPliuzClient, bool]:
        if isinstance(o.client, AsyncPliuzClient):
            return o.client, False
        if o.client is not None:
            return o.client(), True
        scope = current_scope()
        if scope is not None:  # durable mode: the client Runs was given
            return scope.client, False
        return await shared_async_client(), False

    def build_request(
        ctx: RunContextWrapper[Any],
        args: dict[str, Any],
        call_id: str | None,
        secret: str,
        known_key: str | None = None,
    ) -> PreparedCall:
        session = _resolve(o.session_id, ctx) if o.session_id is not None else None
        if session is None:
            session = _session_from_context(ctx)
        if o.context_messages == "conversation":
            messages: list[Any] | None = conversation_messages(ctx)
        else:
            messages = _resolve(o.context_messages, ctx)
        return prepare_call(
            name,
            args,
            secret=secret,
            policy=o.policy,
            redact_paths=o.redact,
            tool_schema=schema,
            call_id=call_id,
            session_id=session,
            originator=_resolve(o.originator, ctx),
            context_messages=messages,
            client_metadata=o.client_metadata,
            idempotency_key_override=known_key,
        )

    async def needs_approval(
        ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str
    ) -> bool:
        """Durable mode: open the Pliuz request and pause the run while it is pending.

        Blocking mode (no :class:`Runs` around the run): the tool's own setting.
        """
        scope = current_scope()
        if scope is None:
            return await evaluate_needs_approval_setting(
                original_needs_approval, ctx, params, call_id
            )
        try:
            c, owned = await make_client()
            try:
                prepared = build_request(ctx, params, call_id, c.api_key)
                approval = await c._drive(ask(c, prepared))
            finally:
                if owned:
                    await c.aclose()
        except BaseException as exc:
            scope.failures[call_id] = exc  # the SDK pauses the call anyway; Runs refuses to store
            raise
        if approval.status != "pending":
            return False  # already settled (a replay): invoking resolves it through the gate
        scope.record(call_id, approval)
        return True

    async def invoke(ctx: ToolContext[Any], input: str) -> Any:
        try:
            args = json.loads(input) if input and input.strip() else {}
        except ValueError:
            return not_run(name, "its arguments are not valid JSON.")
        if not isinstance(args, dict):
            return not_run(name, "its arguments are not a JSON object.")
        call_id = getattr(ctx, "tool_call_id", None)

        withheld: list[str] = []  # names of output guardrails that withheld the output

        def report_text(result: Any) -> str | None:
            if withheld:  # never put what a guardrail kept from the model into the audit trail
                return f"[output withheld by tool output guardrail {', '.join(withheld)}]"
            return excerpt(result)

        async def execute(final: dict[str, Any]) -> Any:
            final_json = json.dumps(final, ensure_ascii=False)
            prepare = getattr(original, "prepare_arguments", None)
            if callable(prepare) and final_json != input:
                try:
                    prepare(final_json, name)  # validate edits against the parameter model
                except Exception as exc:
                    raise PliuzArgumentsError(str(exc)) from exc
            if hasattr(ctx, "_function_tool_arguments"):
                ctx._function_tool_arguments = None  # prepared for the model's args, not ours
            try:
                result = await original(ctx, final_json)
            except PliuzError as exc:  # raised by the tool body itself: not a gate outcome
                raise ToolRaised(exc) from exc
            if getattr(ctx, _FAILURE_ATTR, False):
                raise HandledToolFailure(result)
            if o.report_output and tool.tool_output_guardrails:
                withheld.extend(await _withholding_guardrails(tool, ctx, result))
            return result

        try:
            c, owned = await make_client()
        except PliuzError as exc:
            return message_for(name, exc, o.timeout_s)

        async def on_pending(approval: Approval) -> None:
            if current_scope() is None:
                emit_pending(approval, call_id, c.base_url)
                return
            # Durable mode runs a call only once its request was decided. A pending one here
            # means the call is not the one that paused (its idempotency inputs changed):
            # never wait inside a resumed run, never leave the stray request open.
            with contextlib.suppress(PliuzError):
                await c.cancel_approval(approval.id, reason="not the call the run paused on")
            raise PliuzError(
                f"{name} has no decided request for this call: its session, call id or "
                "arguments differ from the paused call's"
            )

        try:
            scope = current_scope()
            # A resumed call re-attaches to the request it paused on, whatever the resumer's
            # RunConfig says (a worker may not know the session the run was started with).
            paused = scope.decided.get(call_id) if scope is not None and call_id else None
            known_key = paused.idempotency_key if paused is not None else None
            prepared = build_request(ctx, args, call_id, c.api_key, known_key)
            return await run_gated_async(
                c,
                prepared,
                execute,
                on_pending=on_pending,
                **o.gate_options(report_excerpt=report_text),
            )
        except HandledToolFailure as failure:
            return failure.result  # the tool's own error text, already reported as "error"
        except ToolRaised as raised:
            raise raised.error from None
        except PliuzRejectedError as exc:
            if o.on_reject == "raise":
                raise PliuzToolRejectedError(
                    exc.message, reason=exc.reason, approval=exc.approval
                ) from exc
            return message_for(name, exc, o.timeout_s)
        except PliuzError as exc:
            return message_for(name, exc, o.timeout_s)
        finally:
            if owned:
                await c.aclose()

    init = {f.name: getattr(tool, f.name) for f in dataclasses.fields(tool) if f.init}
    wrapped = _GatedFunctionTool(**{**init, "on_invoke_tool": invoke})
    wrapped.__dict__["_pliuz_durable_check"] = needs_approval
    return wrapped


class _GatedFunctionTool(FunctionTool):
    """A gated ``FunctionTool`` whose ``needs_approval`` depends on the mode.

    Blocking mode (no :class:`Runs` around the run): the tool's own setting,
    unchanged, so the SDK behaves exactly as for the unwrapped tool. Durable
    mode: the check that opens the Pliuz request and pauses the run.
    """

    @property
    def needs_approval(self) -> Any:
        check = self.__dict__.get("_pliuz_durable_check")
        if check is not None and current_scope() is not None:
            return check
        return self.__dict__.get("_pliuz_needs_approval", False)

    @needs_approval.setter
    def needs_approval(self, value: Any) -> None:
        self.__dict__["_pliuz_needs_approval"] = value


async def _withholding_guardrails(
    tool: FunctionTool, ctx: ToolContext[Any], result: Any
) -> list[str]:
    """Names of the tool's output guardrails that would not pass ``result`` to the model.

    The SDK runs them again after the tool returns; this only decides what the
    execution report may quote. A guardrail that fails counts as withholding.
    """
    names: list[str] = []
    agent = getattr(ctx, "agent", None)
    for guardrail in tool.tool_output_guardrails or []:
        try:
            verdict = await guardrail.run(
                ToolOutputGuardrailData(context=ctx, agent=agent, output=result)  # type: ignore[arg-type]
            )
            allowed = verdict.behavior["type"] == "allow"
        except Exception:
            allowed = False
        if not allowed:
            names.append(guardrail.get_name())
    return names


def gated_tool(**options: Unpack[OpenAIToolOptions]) -> Callable[[FunctionTool], FunctionTool]:
    """Decorator: gate a ``FunctionTool`` behind a Pliuz approval. Stack it on ``@function_tool``.

    Args:
        policy, redact, timeout_s, client_metadata, cancel_on_timeout, report_output:
            as for :func:`pliuz.gated`; when ``timeout_s`` elapses the model is told
            that no decision arrived.
        session_id: str or ``callable(ToolContext)``; default
            ``RunConfig.group_id``, else ``context.session_id``. Part of the
            idempotency key with the tool name, arguments and the tool call id.
        context_messages: list, ``"conversation"`` (the turn's text messages)
            or ``callable(ToolContext)``; shown to the approver.
        originator: str or ``callable(ToolContext)``: who the agent acts for.
        client: an :class:`~pliuz.AsyncPliuzClient` or a zero-argument factory
            (its client is closed after each call); default: the event loop's
            shared client for ``PLIUZ_API_KEY`` / ``PLIUZ_BASE_URL``.
        on_reject: ``"message"`` (default) tells the model the call was rejected
            and why; ``"raise"`` raises :class:`PliuzToolRejectedError` out of the run.
    """

    return tool_decorator(wrap_tool, options, on_reject="message")


from .openai_agents_durable import Runs, RunsResult  # noqa: E402  (the durable mode)


def ask_human_tool(**options: Unpack[AskToolOptions]) -> FunctionTool:
    """A ``function_tool`` the model calls to ask a person (``question``, optional
    ``choices``); it returns the answer text. The question goes to ``policy``'s
    approvers (inbox, Slack, API); nobody answering in time is told to the model.

    ::

        agent = Agent(name="Support", tools=[ask_human_tool(policy="support")])

    Under :class:`Runs` (durable mode) the call does not wait: it asks the
    question once (keyed by the session and call id) and the run pauses on it
    like on an approval; the resumed call returns the stored answer, or that
    nobody answered, without asking again.
    """
    from agents import function_tool

    from ._ask_human import DEFAULT_DESCRIPTION, AskTool, ask_durable, durable_key, told_for

    asking = AskTool(**options)

    async def ask_human(
        ctx: ToolContext[Any], question: str, choices: list[str] | None = None
    ) -> str:
        scope = current_scope()
        if scope is None:
            return await asking.ask(question, choices)
        call_id = getattr(ctx, "tool_call_id", None)
        settled = scope.answers.get(call_id) if isinstance(call_id, str) else None
        if settled is None:  # the check below paused every unanswered call: never wait here
            return "The question has no stored answer for this call. Do not assume an answer."
        return told_for(settled)

    async def pause_on_question(
        ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str
    ) -> bool:
        """Durable mode: ask once and pause the run until the question is settled."""
        scope = current_scope()
        if scope is None:
            return False
        if call_id in scope.answers:
            return False  # resumed: the body returns the stored answer
        question = params.get("question")
        choices = params.get("choices")
        try:
            if not isinstance(question, str):
                raise PliuzError("the model's call has no question text")
            asked = await ask_durable(
                asking.client or scope.client,
                question,
                choices if isinstance(choices, list) else None,
                key=durable_key(_session_from_context(ctx), call_id),
                policy=asking.policy,
                allow_free_text=asking.allow_free_text,
            )
        except BaseException as exc:
            scope.failures[call_id] = exc  # the run is not stored without its question
            raise
        if asked.status != "pending":  # a replay of a settled question: answer at once
            scope.answers[call_id] = asked
            return False
        scope.asked[call_id] = asked
        return True

    tool = function_tool(
        ask_human,
        name_override=asking.name,
        description_override=asking.description or DEFAULT_DESCRIPTION,
        use_docstring_info=False,
    )
    original = tool.on_invoke_tool

    async def invoke(ctx: ToolContext[Any], input: str) -> Any:
        return await original(ctx, input)

    # A plain invoker: the SDK would otherwise pre-validate the arguments and, when
    # that fills in a default (no `choices`), ask for approval without our check.
    init = {f.name: getattr(tool, f.name) for f in dataclasses.fields(tool) if f.init}
    wrapped = _GatedFunctionTool(**{**init, "on_invoke_tool": invoke})
    wrapped.__dict__["_pliuz_durable_check"] = pause_on_question
    return wrapped
