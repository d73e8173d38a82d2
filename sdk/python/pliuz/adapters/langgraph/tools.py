"""Gated tools: a LangChain tool that runs only after a Pliuz approval (:func:`gated_tool`).

The gate waits in place (the node blocks or awaits) until a human decides; see
:mod:`pliuz.adapters.langgraph` for when to pick this or a graph interrupt.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.errors import GraphBubbleUp
from langgraph.types import Command
from pydantic import BaseModel, ValidationError

from ..._gate import (
    GateOptions,
    PreparedCall,
    excerpt,
    prepare_call,
    run_gated_async,
    run_gated_sync,
)
from ...errors import PliuzArgumentsError, PliuzError, PliuzRejectedError
from ...redaction import parse_path, relax_schema
from .._common import HandledToolFailure, ToolRaised, message_for, not_run
from .._tool_options import ToolGate, ToolOptions, tool_decorator, tool_gate
from ._common import (
    ClientValue,
    ConfigValue,
    MessagesValue,
    OnReject,
    async_client,
    content_text,
    resolve,
    sync_client,
    thread_id,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["PliuzGatedTool", "gated_tool", "wrap_tool"]

LangGraphToolOptions = ToolOptions[ConfigValue, MessagesValue, ClientValue, OnReject]
LangGraphToolGate = ToolGate[ConfigValue, MessagesValue, ClientValue, OnReject]


def _normalize_on_reject(on_reject: str) -> Literal["return", "raise"]:
    if on_reject in ("return", "message"):
        return "return"
    if on_reject == "raise":
        return "raise"
    raise ValueError("on_reject must be 'return' or 'raise'")


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
    _options: LangGraphToolGate | None = None

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
    def _opts(self) -> LangGraphToolGate:
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
        session = resolve(o.session_id, config) if o.session_id is not None else None
        return prepare_call(
            self.name,
            call.args,
            secret=secret,
            policy=o.policy,
            redact_paths=o.redact,
            tool_schema=self._schema,
            call_id=call.call_id,
            session_id=session if session is not None else thread_id(config),
            originator=resolve(o.originator, config),
            context_messages=resolve(o.context_messages, config),
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
            failure.report_text = f"tool failed: {excerpt(content_text(result))}"
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

    def _gate_options(self) -> GateOptions:
        return self._opts.gate_options(report_excerpt=_report_text, unreported=(GraphBubbleUp,))

    def _settled(self, exc: Exception, call: _Call) -> Any:
        """What a call that did not return normally gives the model (or raises)."""
        if isinstance(exc, HandledToolFailure):
            return exc.result  # the tool's own error message, reported as "error"
        if isinstance(exc, ToolRaised):
            raise exc.error from None
        if isinstance(exc, PliuzError):
            return self._on_error(exc, call.call_id)
        raise exc

    # -- Runnable -------------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config = ensure_config(config)
        call = self._split(input, kwargs)
        if isinstance(call, str):
            return self._not_run(_call_id_of(input), call)

        def execute(final: dict[str, Any]) -> Any:
            self._check_edit(final, call)
            try:
                result = self.wrapped.invoke(self._payload(final, call), config)
            except PliuzError as exc:  # raised by the tool body itself: not a gate outcome
                raise ToolRaised(exc) from exc
            return self._outcome(result)

        try:
            with sync_client(self._opts.client) as c:
                prepared = self._prepare(call, config, c.api_key)
                return run_gated_sync(c, prepared, execute, **self._gate_options())
        except Exception as exc:
            return self._settled(exc, call)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        config = ensure_config(config)
        call = self._split(input, kwargs)
        if isinstance(call, str):
            return self._not_run(_call_id_of(input), call)

        async def execute(final: dict[str, Any]) -> Any:
            self._check_edit(final, call)
            try:
                result = await self.wrapped.ainvoke(self._payload(final, call), config)
            except PliuzError as exc:  # raised by the tool body itself: not a gate outcome
                raise ToolRaised(exc) from exc
            return self._outcome(result)

        try:
            async with async_client(self._opts.client) as c:
                prepared = self._prepare(call, config, c.api_key)
                return await run_gated_async(c, prepared, execute, **self._gate_options())
        except Exception as exc:
            return self._settled(exc, call)


def _call_id_of(input: Any) -> str | None:
    if isinstance(input, Mapping) and input.get("type") == "tool_call":
        value = input.get("id")
        return value if isinstance(value, str) else None
    return None


def _report_text(result: Any) -> str | None:
    if isinstance(result, Command):
        return excerpt(f"Command(goto={result.goto!r})")
    if isinstance(result, list):
        return excerpt("; ".join(content_text(r) for r in result))
    return excerpt(content_text(result))


def wrap_tool(tool: BaseTool, **options: Unpack[LangGraphToolOptions]) -> PliuzGatedTool:
    """Return ``tool`` gated by Pliuz (same name, description, schemas); see :func:`gated_tool`."""
    if not isinstance(tool, BaseTool):
        raise TypeError(
            "wrap_tool expects a LangChain BaseTool (put @gated_tool above @tool), "
            f"got {type(tool).__name__}"
        )
    o = tool_gate(options, on_reject="return")
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
    gated._options = dataclasses.replace(o, on_reject=_normalize_on_reject(o.on_reject))
    return gated


def gated_tool(**options: Unpack[LangGraphToolOptions]) -> Callable[[BaseTool], PliuzGatedTool]:
    """Decorator: gate a LangChain tool behind a Pliuz approval. Stack it on ``@tool``.

    Works with ``create_agent``, ``ToolNode`` and direct ``invoke``/``ainvoke``
    (sync and async). The gate waits in place for the decision.

    Args:
        policy, redact, timeout_s, client_metadata, cancel_on_timeout, report_output:
            as for :func:`pliuz.gated`; when ``timeout_s`` elapses the model is told
            that no decision arrived.
        session_id: str or ``callable(config)``; default: the LangGraph
            ``thread_id`` of the run. Part of the idempotency key with the tool
            name, the arguments and the tool call id.
        context_messages: list or ``callable(config)``; shown to the approver.
        originator: str or ``callable(config)``: who the agent acts for.
        client: a :class:`~pliuz.PliuzClient` / :class:`~pliuz.AsyncPliuzClient`
            or a zero-argument factory; default: the process's shared client for
            ``PLIUZ_API_KEY`` / ``PLIUZ_BASE_URL`` (one per event loop for async
            invocations). Sync invocations use a sync client and
            async ones an async client (built from the given one's key and URL
            when the kinds differ).
        on_reject: ``"return"`` (default) gives the model a ``ToolMessage``
            (``status="error"``) saying the call was rejected and why;
            ``"raise"`` raises :class:`~pliuz.PliuzRejectedError` out of the run.
    """
    return tool_decorator(wrap_tool, options, on_reject="return")
