"""Pliuz approval gates for LangGraph and LangChain tools.

Install from the repository: ``pip install "./sdk/python[langgraph]"``.

Two ways to put a human in front of an action; pick one per action.

**1. Gate a tool** (:func:`gated_tool` / :func:`wrap_tool`) — the default choice
for agents (``create_agent``, ``ToolNode``, any ``StateGraph`` that runs tools)::

    from langchain_core.tools import tool
    from pliuz.adapters.langgraph import gated_tool

    @gated_tool(policy="refunds")
    @tool
    def issue_refund(order_id: str, amount_cents: int) -> str:
        \"\"\"Issue a customer refund.\"\"\"
        return charge_back(order_id, amount_cents)

The model sees the same tool (name, description, argument schema). When it
calls the tool, the wrapper asks Pliuz for approval and **waits in place**
(the node blocks or awaits) until a human decides. On approval the original
tool runs with the final (possibly edited) arguments and the execution is
reported. Otherwise the tool does not run and the model gets a ``ToolMessage``
saying why (rejected with the reviewer's reason, expired, timed out, approval
server unreachable). It fails closed. The LangChain tool call id is the
request's ``call_id`` and the LangGraph ``thread_id`` its ``session_id``; both
are part of the idempotency key, so a re-run of the node (after a crash or a
restart) re-attaches to the same request and never runs the tool twice.
No checkpointer is needed.

**2. Pause the graph** (:func:`require_approval` / :func:`run_with_approval`
inside a node) — for graphs that should not hold a worker while a human
decides (hours, days) and already use a checkpointer. The helper creates (or
re-attaches to) the Pliuz request and, while it is pending, calls LangGraph's
``interrupt()`` so the run pauses and is checkpointed. Resume with
``Command(resume=...)`` (any value) or :func:`resume_when_decided`, which waits
on Pliuz and then resumes. On resume the decision is read **from Pliuz**, never
from the resume value: a forged resume cannot approve anything, it just pauses
the graph again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, TypeVar

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.types import Command, interrupt
from pydantic import BaseModel, ValidationError

from .._client import AsyncPliuzClient, PliuzClient
from .._gate import (
    PreparedCall,
    excerpt,
    final_args,
    prepare_call,
    raise_for_outcome,
    run_gated_async,
    run_gated_sync,
)
from ..errors import PliuzArgumentsError, PliuzError, PliuzRejectedError, PliuzTimeoutError
from ..idempotency import idempotency_key
from ..models import Approval
from ..redaction import parse_path, relax_schema
from ._common import HandledToolFailure, ToolRaised, message_for, not_run

__all__ = [
    "INTERRUPT_TYPE",
    "PliuzGatedTool",
    "arequire_approval",
    "aresume_when_decided",
    "arun_with_approval",
    "gated_tool",
    "pending_approvals",
    "require_approval",
    "resume_when_decided",
    "run_with_approval",
    "wrap_tool",
]

log = logging.getLogger("pliuz")

T = TypeVar("T")

INTERRUPT_TYPE = "pliuz_approval"
"""``value["type"]`` of the interrupts raised by :func:`require_approval`."""

AnyClient = PliuzClient | AsyncPliuzClient
ClientValue = AnyClient | Callable[[], AnyClient] | None
ConfigValue = str | Callable[[RunnableConfig], "str | None"] | None
MessagesValue = list[Any] | Callable[[RunnableConfig], "list[Any] | None"] | None
OnReject = Literal["return", "message", "raise"]


# ---------------------------------------------------------------------------
# Clients and config
# ---------------------------------------------------------------------------


def _pick_client(client: ClientValue) -> tuple[AnyClient | None, bool]:
    if client is None or isinstance(client, (PliuzClient, AsyncPliuzClient)):
        return client, False
    return client(), True


def _sync_client(client: ClientValue) -> tuple[PliuzClient, bool]:
    """A sync client for this call and whether we must close it."""
    c, owned = _pick_client(client)
    if c is None:
        return PliuzClient(), True
    if isinstance(c, PliuzClient):
        return c, owned
    # An AsyncPliuzClient was given but this path is synchronous: same server and key.
    return PliuzClient(
        api_key=c.api_key, base_url=c.base_url, timeout=c.timeout,
        max_retries=c.max_retries, poll_wait=c.poll_wait,
    ), True  # fmt: skip


def _async_client(client: ClientValue) -> tuple[AsyncPliuzClient, bool]:
    c, owned = _pick_client(client)
    if c is None:
        return AsyncPliuzClient(), True
    if isinstance(c, AsyncPliuzClient):
        return c, owned
    return AsyncPliuzClient(
        api_key=c.api_key, base_url=c.base_url, timeout=c.timeout,
        max_retries=c.max_retries, poll_wait=c.poll_wait,
    ), True  # fmt: skip


def _thread_id(config: Mapping[str, Any] | None) -> str | None:
    configurable = (config or {}).get("configurable") or {}
    value = configurable.get("thread_id")
    return str(value) if value not in (None, "") else None


def _resolve(value: Any, config: RunnableConfig) -> Any:
    return value(config) if callable(value) else value


def _normalize_on_reject(on_reject: str) -> Literal["return", "raise"]:
    if on_reject in ("return", "message"):
        return "return"
    if on_reject == "raise":
        return "raise"
    raise ValueError("on_reject must be 'return' or 'raise'")


def _content_text(result: Any) -> str:
    if isinstance(result, ToolMessage):
        content = result.content
        return content if isinstance(content, str) else json.dumps(content, default=str)
    return result if isinstance(result, str) else repr(result)


# ---------------------------------------------------------------------------
# 1. Gated tools
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    policy: str | None
    redact: tuple[str, ...]
    timeout_s: float | None
    session_id: ConfigValue
    context_messages: MessagesValue
    originator: ConfigValue
    client: ClientValue
    on_reject: Literal["return", "raise"]
    client_metadata: dict[str, Any] | None
    cancel_on_timeout: bool
    report_output: bool


@dataclass
class _Call:
    args: dict[str, Any]  # what the model sent (without injected values)
    injected: dict[str, Any]  # values LangGraph injected (runtime, state, store, call id)
    call_id: str | None


class PliuzGatedTool(BaseTool):
    """A LangChain tool whose every invocation is gated by a Pliuz approval.

    Built by :func:`wrap_tool` / :func:`gated_tool`. Name, description,
    argument schemas and injected arguments (``ToolRuntime``, ``InjectedState``,
    ``InjectedToolCallId``, ...) are those of :attr:`wrapped`.
    """

    wrapped: BaseTool
    """The original tool; it runs only after approval."""

    # Kept private so the options never appear in serialized tool definitions.
    _options: _Options | None = None

    # -- the same tool, as the model and ToolNode see it ---------------------

    @property
    def tool_call_schema(self) -> Any:
        return self.wrapped.tool_call_schema

    def get_input_schema(self, config: RunnableConfig | None = None) -> Any:
        return self.wrapped.get_input_schema(config)

    @cached_property
    def _injected_args_keys(self) -> frozenset[str]:
        return self.wrapped._injected_args_keys

    @property
    def func(self) -> Any:  # ToolNode reads injection annotations from func/coroutine
        return getattr(self.wrapped, "func", None)

    @property
    def coroutine(self) -> Any:
        return getattr(self.wrapped, "coroutine", None)

    def _run(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - invoke is overridden
        raise RuntimeError("PliuzGatedTool runs through invoke()/ainvoke(), never _run()")

    # -- helpers --------------------------------------------------------------

    @property
    def _opts(self) -> _Options:
        if self._options is None:  # pragma: no cover - always set by wrap_tool
            raise RuntimeError("PliuzGatedTool must be built with wrap_tool()")
        return self._options

    @cached_property
    def _schema(self) -> dict[str, Any] | None:
        """The JSON schema the model sees, sent as ``tool_schema`` (server validates edits)."""
        try:
            params = convert_to_openai_tool(self.wrapped)["function"].get("parameters")
        except Exception:  # best effort: unusual tools still get gated, unvalidated
            return None
        if not isinstance(params, dict):
            return None
        return relax_schema(params, [parse_path(p) for p in self._opts.redact])

    @cached_property
    def _model_arg_names(self) -> frozenset[str] | None:
        schema = self.wrapped.tool_call_schema
        if isinstance(schema, dict):
            props = schema.get("properties")
        elif isinstance(schema, type) and issubclass(schema, BaseModel):
            props = schema.model_fields
        else:
            props = None
        return frozenset(props) if isinstance(props, Mapping) else None

    def _split(self, input: Any, kwargs: dict[str, Any]) -> _Call | str:
        """Separate the model's arguments from injected values; a str means: do not run."""
        call_id: str | None = None
        if isinstance(input, Mapping) and input.get("type") == "tool_call":
            call_id = input.get("id")
            raw: Any = input.get("args") or {}
        else:
            raw = input
            call_id = kwargs.get("tool_call_id")
        if isinstance(raw, str):
            names = sorted(self._model_arg_names or ())
            if len(names) == 1:
                raw = {names[0]: raw}
            else:
                try:
                    raw = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    return not_run(self.name, "its arguments are not valid JSON.")
        if not isinstance(raw, Mapping):
            return not_run(self.name, "its arguments are not a JSON object.")
        injected_keys = set(self.wrapped._injected_args_keys)
        visible = self._model_arg_names
        if visible is not None:
            injected_keys |= {k for k in raw if k not in visible and k in self._input_fields}
        args = {k: v for k, v in raw.items() if k not in injected_keys}
        injected = {k: v for k, v in raw.items() if k in injected_keys}
        return _Call(args, injected, call_id if isinstance(call_id, str) else None)

    @cached_property
    def _input_fields(self) -> frozenset[str]:
        schema = self.wrapped.get_input_schema()
        fields = getattr(schema, "model_fields", None)
        return frozenset(fields) if isinstance(fields, Mapping) else frozenset()

    def _prepare(self, call: _Call, config: RunnableConfig, secret: str) -> PreparedCall:
        o = self._opts
        session = _resolve(o.session_id, config) if o.session_id is not None else None
        return prepare_call(
            self.name,
            call.args,
            secret=secret,
            policy=o.policy,
            redact_paths=o.redact,
            tool_schema=self._schema,
            call_id=call.call_id,
            session_id=session if session is not None else _thread_id(config),
            originator=_resolve(o.originator, config),
            context_messages=_resolve(o.context_messages, config),
            client_metadata=o.client_metadata,
        )

    def _check_edit(self, final: dict[str, Any], call: _Call) -> None:
        if final == call.args:
            return
        schema = self.wrapped.tool_call_schema
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            try:
                schema.model_validate(final)
            except ValidationError as exc:
                raise PliuzArgumentsError(str(exc)) from exc

    def _payload(self, final: dict[str, Any], call: _Call) -> Any:
        args = {**final, **call.injected}
        if call.call_id is None:
            return args
        return {"name": self.wrapped.name, "args": args, "id": call.call_id, "type": "tool_call"}

    def _outcome(self, result: Any) -> Any:
        if isinstance(result, ToolMessage) and result.status == "error":
            failure = HandledToolFailure(result)  # handle_tool_error turned it into a message
            failure.report_text = f"tool failed: {excerpt(_content_text(result))}"
            raise failure
        return result

    def _not_run(self, call_id: str | None, text: str) -> Any:
        if call_id is None:
            return text
        return ToolMessage(content=text, tool_call_id=call_id, name=self.name, status="error")

    def _on_error(self, exc: PliuzError, call_id: str | None) -> Any:
        if isinstance(exc, PliuzRejectedError) and self._opts.on_reject == "raise":
            raise exc
        return self._not_run(call_id, message_for(self.name, exc, self._opts.timeout_s))

    # -- Runnable -------------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config = ensure_config(config)
        call = self._split(input, kwargs)
        if isinstance(call, str):
            return self._not_run(_call_id_of(input), call)
        o = self._opts
        try:
            c, owned = _sync_client(o.client)
        except PliuzError as exc:
            return self._on_error(exc, call.call_id)

        def execute(final: dict[str, Any]) -> Any:
            self._check_edit(final, call)
            try:
                result = self.wrapped.invoke(self._payload(final, call), config)
            except PliuzError as exc:  # raised by the tool body itself: not a gate outcome
                raise ToolRaised(exc) from exc
            return self._outcome(result)

        try:
            return run_gated_sync(
                c, self._prepare(call, config, c.api_key), execute,
                timeout_s=o.timeout_s, cancel_on_timeout=o.cancel_on_timeout,
                report_output=o.report_output, report_excerpt=_report_text,
                unreported=(GraphBubbleUp,),
            )  # fmt: skip
        except HandledToolFailure as failure:
            return failure.result
        except ToolRaised as raised:
            raise raised.error from None
        except PliuzError as exc:
            return self._on_error(exc, call.call_id)
        finally:
            if owned:
                c.close()

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config = ensure_config(config)
        call = self._split(input, kwargs)
        if isinstance(call, str):
            return self._not_run(_call_id_of(input), call)
        o = self._opts
        try:
            c, owned = _async_client(o.client)
        except PliuzError as exc:
            return self._on_error(exc, call.call_id)

        async def execute(final: dict[str, Any]) -> Any:
            self._check_edit(final, call)
            try:
                result = await self.wrapped.ainvoke(self._payload(final, call), config)
            except PliuzError as exc:
                raise ToolRaised(exc) from exc
            return self._outcome(result)

        try:
            return await run_gated_async(
                c, self._prepare(call, config, c.api_key), execute,
                timeout_s=o.timeout_s, cancel_on_timeout=o.cancel_on_timeout,
                report_output=o.report_output, report_excerpt=_report_text,
                unreported=(GraphBubbleUp,),
            )  # fmt: skip
        except HandledToolFailure as failure:
            return failure.result
        except ToolRaised as raised:
            raise raised.error from None
        except PliuzError as exc:
            return self._on_error(exc, call.call_id)
        finally:
            if owned:
                await c.aclose()


def _call_id_of(input: Any) -> str | None:
    if isinstance(input, Mapping) and input.get("type") == "tool_call":
        value = input.get("id")
        return value if isinstance(value, str) else None
    return None


def _report_text(result: Any) -> str | None:
    if isinstance(result, Command):
        return excerpt(f"Command(goto={result.goto!r})")
    if isinstance(result, list):
        return excerpt("; ".join(_content_text(r) for r in result))
    return excerpt(_content_text(result))


def wrap_tool(
    tool: BaseTool,
    *,
    policy: str | None = None,
    redact: Sequence[str] = (),
    timeout_s: float | None = None,
    session_id: ConfigValue = None,
    context_messages: MessagesValue = None,
    originator: ConfigValue = None,
    client: ClientValue = None,
    on_reject: OnReject = "return",
    client_metadata: dict[str, Any] | None = None,
    cancel_on_timeout: bool = False,
    report_output: bool = True,
) -> PliuzGatedTool:
    """Return ``tool`` gated by Pliuz (same name, description, schemas); see :func:`gated_tool`."""
    if not isinstance(tool, BaseTool):
        raise TypeError(
            "wrap_tool expects a LangChain BaseTool (put @gated_tool above @tool), "
            f"got {type(tool).__name__}"
        )
    for path in redact:
        parse_path(path)
    gated = PliuzGatedTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        return_direct=tool.return_direct,
        response_format=tool.response_format,
        tags=tool.tags,
        metadata=tool.metadata,
        extras=tool.extras,
        wrapped=tool,
    )
    gated._options = _Options(
        policy=policy,
        redact=tuple(redact),
        timeout_s=timeout_s,
        session_id=session_id,
        context_messages=context_messages,
        originator=originator,
        client=client,
        on_reject=_normalize_on_reject(on_reject),
        client_metadata=client_metadata,
        cancel_on_timeout=cancel_on_timeout,
        report_output=report_output,
    )
    return gated


def gated_tool(
    *,
    policy: str | None = None,
    redact: Sequence[str] = (),
    timeout_s: float | None = None,
    session_id: ConfigValue = None,
    context_messages: MessagesValue = None,
    originator: ConfigValue = None,
    client: ClientValue = None,
    on_reject: OnReject = "return",
    client_metadata: dict[str, Any] | None = None,
    cancel_on_timeout: bool = False,
    report_output: bool = True,
) -> Callable[[BaseTool], PliuzGatedTool]:
    """Decorator: gate a LangChain tool behind a Pliuz approval. Stack it on ``@tool``.

    Works with ``create_agent``, ``ToolNode`` and direct ``invoke``/``ainvoke``
    (sync and async). The gate waits in place for the decision.

    Args:
        policy: policy name; omit to let the server match the tool name.
        redact: argument paths never sent to the server (``"card.number"``,
            ``"items[*].ssn"``); originals are restored before the tool runs.
        timeout_s: stop waiting after this many seconds (the model is told no
            decision arrived). ``None``: wait until the server settles the request.
        session_id: str or ``callable(config)``; default: the LangGraph
            ``thread_id`` of the run. Part of the idempotency key with the tool
            name, the arguments and the tool call id.
        context_messages: list or ``callable(config)``; shown to the approver.
        originator: str or ``callable(config)``: who the agent acts for.
        client: a :class:`~pliuz.PliuzClient` / :class:`~pliuz.AsyncPliuzClient`
            or a zero-argument factory; default: one from ``PLIUZ_API_KEY`` /
            ``PLIUZ_BASE_URL`` per call. Sync invocations use a sync client and
            async ones an async client (built from the given one's key and URL
            when the kinds differ).
        on_reject: ``"return"`` (default) gives the model a ``ToolMessage``
            (``status="error"``) saying the call was rejected and why;
            ``"raise"`` raises :class:`~pliuz.PliuzRejectedError` out of the run.
        client_metadata: extra JSON object stored with each request.
        cancel_on_timeout: cancel the pending request when ``timeout_s`` elapses.
        report_output: include a short output excerpt in the execution report.
    """
    for path in redact:
        parse_path(path)

    def decorate(tool: BaseTool) -> PliuzGatedTool:
        return wrap_tool(
            tool,
            policy=policy,
            redact=redact,
            timeout_s=timeout_s,
            session_id=session_id,
            context_messages=context_messages,
            originator=originator,
            client=client,
            on_reject=on_reject,
            client_metadata=client_metadata,
            cancel_on_timeout=cancel_on_timeout,
            report_output=report_output,
        )

    return decorate


# ---------------------------------------------------------------------------
# 2. Durable interrupts inside a node
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ask:
    tool_name: str
    args: dict[str, Any]
    policy: str | None
    redact: Sequence[str]
    tool_schema: dict[str, Any] | None
    session_id: str | None
    key: str | None
    originator: str | None
    context_messages: list[Any] | None
    client_metadata: dict[str, Any] | None
    inbox_url: str | None

    def prepare(self, secret: str) -> PreparedCall:
        config = _current_config()
        session = self.session_id if self.session_id is not None else _thread_id(config)
        node = (config.get("metadata") or {}).get("langgraph_node")
        # One request per (thread, node, tool, args[, key]): a re-run of the node after a
        # resume or a restart finds the same request instead of asking again.
        anchor = f"langgraph:{node or ''}:{self.key or ''}"
        key = idempotency_key(
            self.tool_name, self.args, session_id=session, call_id=anchor, secret=secret
        )
        patterns = [parse_path(p) for p in self.redact]
        return prepare_call(
            self.tool_name,
            self.args,
            secret=secret,
            policy=self.policy,
            redact_paths=self.redact,
            tool_schema=relax_schema(self.tool_schema, patterns),
            call_id=self.key,
            session_id=session,
            originator=self.originator,
            context_messages=self.context_messages,
            client_metadata={**(self.client_metadata or {}), "langgraph_node": node},
            idempotency_key_override=key,
        )

    def payload(self, approval: Approval, prepared: PreparedCall, base_url: str) -> dict[str, Any]:
        inbox = (self.inbox_url or base_url).rstrip("/")
        return {
            "type": INTERRUPT_TYPE,
            "approval_id": approval.id,
            "url": f"{inbox}/requests/{approval.id}",
            "status": approval.status,
            "tool_name": self.tool_name,
            "args": prepared.redacted.args,
            "policy": approval.policy,
            "expires_at": approval.expires_at.isoformat() if approval.expires_at else None,
        }


def _current_config() -> RunnableConfig:
    try:
        return get_config()
    except RuntimeError as exc:
        raise RuntimeError(
            "require_approval()/run_with_approval() must be called inside a LangGraph node "
            "(they pause the graph with interrupt())"
        ) from exc


def _settle_sync(ask: _Ask, c: PliuzClient, wait_s: float) -> tuple[Approval, PreparedCall]:
    prepared = ask.prepare(c.api_key)
    approval = c.create_approval(**prepared.request)
    log.debug("pliuz: %s approval %s is %s (replay=%s)",
              ask.tool_name, approval.id, approval.status, approval.is_replay)  # fmt: skip
    if approval.status == "pending" and wait_s > 0:
        approval = _poll_sync(c, approval, wait_s)
    while approval.status == "pending":
        # Pauses the graph (GraphInterrupt). On resume the k-th interrupt() of this node
        # returns the k-th resume value: ignore it and ask Pliuz, the source of truth.
        interrupt(ask.payload(approval, prepared, c.base_url))
        approval = c.get_approval(approval.id)
    return approval, prepared


async def _settle_async(
    ask: _Ask, c: AsyncPliuzClient, wait_s: float
) -> tuple[Approval, PreparedCall]:
    prepared = ask.prepare(c.api_key)
    approval = await c.create_approval(**prepared.request)
    log.debug("pliuz: %s approval %s is %s (replay=%s)",
              ask.tool_name, approval.id, approval.status, approval.is_replay)  # fmt: skip
    if approval.status == "pending" and wait_s > 0:
        approval = await _poll_async(c, approval, wait_s)
    while approval.status == "pending":
        interrupt(ask.payload(approval, prepared, c.base_url))
        approval = await c.get_approval(approval.id)
    return approval, prepared


def _poll_sync(c: PliuzClient, approval: Approval, wait_s: float) -> Approval:
    deadline = time.monotonic() + wait_s
    while approval.status == "pending" and (left := deadline - time.monotonic()) >= 1:
        try:
            approval = c.get_approval(approval.id, wait=min(60, int(left)), timeout=left)
        except PliuzTimeoutError:
            break  # wait_s is over (a hung connection included): pause instead
    return approval


async def _poll_async(c: AsyncPliuzClient, approval: Approval, wait_s: float) -> Approval:
    deadline = time.monotonic() + wait_s
    while approval.status == "pending" and (left := deadline - time.monotonic()) >= 1:
        try:
            approval = await c.get_approval(approval.id, wait=min(60, int(left)), timeout=left)
        except PliuzTimeoutError:
            break
    return approval


def _ask(
    tool_name: str,
    args: Mapping[str, Any],
    policy: str | None,
    redact: Sequence[str],
    tool_schema: dict[str, Any] | None,
    session_id: str | None,
    key: str | None,
    originator: str | None,
    context_messages: list[Any] | None,
    client_metadata: dict[str, Any] | None,
    inbox_url: str | None,
) -> _Ask:
    for path in redact:
        parse_path(path)
    return _Ask(
        tool_name, dict(args), policy, tuple(redact), tool_schema, session_id, key,
        originator, context_messages, client_metadata, inbox_url,
    )  # fmt: skip


def require_approval(
    tool_name: str,
    args: Mapping[str, Any],
    *,
    policy: str | None = None,
    redact: Sequence[str] = (),
    tool_schema: dict[str, Any] | None = None,
    session_id: str | None = None,
    key: str | None = None,
    originator: str | None = None,
    context_messages: list[Any] | None = None,
    client_metadata: dict[str, Any] | None = None,
    client: ClientValue = None,
    wait_s: float = 0,
    inbox_url: str | None = None,
) -> dict[str, Any]:
    """Inside a LangGraph node: pause the graph until Pliuz approves, then return the final args.

    Creates the approval request, or re-attaches to it: the idempotency key is
    derived from the ``thread_id`` (or ``session_id``), the node name, the tool
    name, the arguments and ``key``. While it is pending, calls
    ``interrupt({"type": "pliuz_approval", "approval_id", "url", "status",
    "tool_name", "args" (redacted), "policy", "expires_at"})`` so the run pauses
    (needs a checkpointer and a ``thread_id``). When the graph is resumed the
    node runs again from the top, this function re-attaches to the same request
    and reads its state **from Pliuz**; the resume value is ignored, so a resume
    while the request is still pending just pauses the graph again.

    Returns the approved arguments (edits applied, redacted values restored).
    Raises (fail closed) :class:`~pliuz.PliuzRejectedError` (``.reason``),
    :class:`~pliuz.PliuzExpiredError`, :class:`~pliuz.PliuzCancelledError`,
    :class:`~pliuz.PliuzAlreadyExecutedError` (the request was reported as
    executed), :class:`~pliuz.PliuzOutcomeUnknownError` (it was started and
    never reported), :class:`~pliuz.PliuzConnectionError` and the API errors.

    This only asks; it neither claims the execution nor records that the action
    ran, so nothing stops a second run. Prefer :func:`run_with_approval`, which
    claims the execution (exactly one caller gets it), runs the action and
    reports it, so that re-running the node never runs it twice.

    Args:
        wait_s: long-poll this many seconds for a quick decision before pausing
            (auto-approved requests never pause).
        key: extra discriminator for the idempotency key, when the same node asks
            for the same tool and arguments more than once in one thread.
        inbox_url: public address of the Pliuz inbox for the interrupt's ``url``
            (default: the client's ``base_url``).
    """
    ask = _ask(
        tool_name, args, policy, redact, tool_schema, session_id, key, originator,
        context_messages, client_metadata, inbox_url,
    )  # fmt: skip
    c, owned = _sync_client(client)
    try:
        approval, prepared = _settle_sync(ask, c, wait_s)
        return final_args(approval, prepared)
    finally:
        if owned:
            c.close()


async def arequire_approval(
    tool_name: str,
    args: Mapping[str, Any],
    *,
    policy: str | None = None,
    redact: Sequence[str] = (),
    tool_schema: dict[str, Any] | None = None,
    session_id: str | None = None,
    key: str | None = None,
    originator: str | None = None,
    context_messages: list[Any] | None = None,
    client_metadata: dict[str, Any] | None = None,
    client: ClientValue = None,
    wait_s: float = 0,
    inbox_url: str | None = None,
) -> dict[str, Any]:
    """Async :func:`require_approval` (for ``async def`` nodes)."""
    ask = _ask(
        tool_name, args, policy, redact, tool_schema, session_id, key, originator,
        context_messages, client_metadata, inbox_url,
    )  # fmt: skip
    c, owned = _async_client(client)
    try:
        approval, prepared = await _settle_async(ask, c, wait_s)
        return final_args(approval, prepared)
    finally:
        if owned:
            await c.aclose()


def run_with_approval(
    fn: Callable[..., T],
    args: Mapping[str, Any],
    *,
    tool_name: str | None = None,
    policy: str | None = None,
    redact: Sequence[str] = (),
    tool_schema: dict[str, Any] | None = None,
    session_id: str | None = None,
    key: str | None = None,
    originator: str | None = None,
    context_messages: list[Any] | None = None,
    client_metadata: dict[str, Any] | None = None,
    client: ClientValue = None,
    wait_s: float = 0,
    inbox_url: str | None = None,
    on_reject: Literal["raise", "return"] = "raise",
    report_output: bool = True,
) -> T | str:
    """Inside a LangGraph node: pause until approved, run ``fn(**final_args)`` once, report it.

    Same pause/resume behaviour as :func:`require_approval`. After approval
    ``fn`` runs with the final arguments and the outcome is reported to Pliuz
    (``executed``), so a later re-run of the node (same thread, node and
    arguments) does not run it again: it raises
    :class:`~pliuz.PliuzAlreadyExecutedError` (``.approval.execution`` holds
    the recorded output excerpt).

    ``on_reject="raise"`` (default) raises the outcome errors;
    ``"return"`` returns a plain sentence for any outcome where ``fn`` did
    not run (rejected with reason, expired, cancelled, already executed,
    server unreachable), ready to hand to a model.
    """
    name = tool_name or str(getattr(fn, "__name__", "action"))
    ask = _ask(
        name, args, policy, redact, tool_schema, session_id, key, originator,
        context_messages, client_metadata, inbox_url,
    )  # fmt: skip
    c, owned = _sync_client(client)
    try:
        approval, prepared = _settle_sync(ask, c, wait_s)
        raise_for_outcome(approval)
        # Approved: run and report through the shared gate (re-attaches, locks per key).
        return run_gated_sync(
            c, prepared, lambda final: fn(**final), timeout_s=None,
            report_output=report_output, unreported=(GraphBubbleUp,),
        )  # fmt: skip
    except PliuzError as exc:
        if on_reject == "raise":
            raise
        return message_for(name, exc, None)
    finally:
        if owned:
            c.close()


async def arun_with_approval(
    fn: Callable[..., Awaitable[T]],
    args: Mapping[str, Any],
    *,
    tool_name: str | None = None,
    policy: str | None = None,
    redact: Sequence[str] = (),
    tool_schema: dict[str, Any] | None = None,
    session_id: str | None = None,
    key: str | None = None,
    originator: str | None = None,
    context_messages: list[Any] | None = None,
    client_metadata: dict[str, Any] | None = None,
    client: ClientValue = None,
    wait_s: float = 0,
    inbox_url: str | None = None,
    on_reject: Literal["raise", "return"] = "raise",
    report_output: bool = True,
) -> T | str:
    """Async :func:`run_with_approval`: ``fn`` is an ``async`` function."""
    name = tool_name or str(getattr(fn, "__name__", "action"))
    ask = _ask(
        name, args, policy, redact, tool_schema, session_id, key, originator,
        context_messages, client_metadata, inbox_url,
    )  # fmt: skip
    c, owned = _async_client(client)
    try:
        approval, prepared = await _settle_async(ask, c, wait_s)
        raise_for_outcome(approval)

        async def execute(final: dict[str, Any]) -> T:
            return await fn(**final)

        return await run_gated_async(
            c, prepared, execute, timeout_s=None,
            report_output=report_output, unreported=(GraphBubbleUp,),
        )  # fmt: skip
    except PliuzError as exc:
        if on_reject == "raise":
            raise
        return message_for(name, exc, None)
    finally:
        if owned:
            await c.aclose()


# ---------------------------------------------------------------------------
# Resuming
# ---------------------------------------------------------------------------


def pending_approvals(state: Any) -> dict[str, dict[str, Any]]:
    """``{interrupt_id: interrupt value}`` for the Pliuz interrupts of a ``StateSnapshot``."""
    out: dict[str, dict[str, Any]] = {}
    for intr in getattr(state, "interrupts", ()) or ():
        value = getattr(intr, "value", None)
        if isinstance(value, Mapping) and value.get("type") == INTERRUPT_TYPE:
            out[str(intr.id)] = dict(value)
    return out


def resume_when_decided(
    graph: Any,
    config: RunnableConfig,
    *,
    client: ClientValue = None,
    timeout: float | None = None,
    **invoke_kwargs: Any,
) -> Any:
    """Wait until every Pliuz approval the graph is paused on is decided, then resume it.

    Reads the paused thread's interrupts (``graph.get_state(config)``), waits
    on Pliuz for each ``pliuz_approval`` one, and calls
    ``graph.invoke(Command(resume={interrupt_id: {...}}), config)``: only
    those interrupts are answered. Returns what ``invoke`` returns, or ``None``
    if the thread is not paused on a Pliuz approval. Raises
    :class:`~pliuz.PliuzTimeoutError` after ``timeout`` seconds.
    """
    pending = pending_approvals(graph.get_state(config))
    if not pending:
        return None
    c, owned = _sync_client(client)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        resume: dict[str, Any] = {}
        for interrupt_id, value in pending.items():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            approval = c.wait_for_decision(str(value["approval_id"]), timeout=left)
            resume[interrupt_id] = {"approval_id": approval.id, "status": approval.status}
    finally:
        if owned:
            c.close()
    return graph.invoke(Command(resume=resume), config, **invoke_kwargs)


async def aresume_when_decided(
    graph: Any,
    config: RunnableConfig,
    *,
    client: ClientValue = None,
    timeout: float | None = None,
    **invoke_kwargs: Any,
) -> Any:
    """Async :func:`resume_when_decided` (``aget_state`` / ``ainvoke``)."""
    pending = pending_approvals(await graph.aget_state(config))
    if not pending:
        return None
    c, owned = _async_client(client)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        resume: dict[str, Any] = {}
        for interrupt_id, value in pending.items():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            approval = await c.wait_for_decision(str(value["approval_id"]), timeout=left)
            resume[interrupt_id] = {"approval_id": approval.id, "status": approval.status}
    finally:
        if owned:
            await c.aclose()
    return await graph.ainvoke(Command(resume=resume), config, **invoke_kwargs)
