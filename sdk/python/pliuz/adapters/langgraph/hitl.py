"""LangChain's human-in-the-loop middleware, decided in Pliuz (`PliuzHumanInTheLoopMiddleware`).

A drop-in for :class:`langchain.agents.middleware.HumanInTheLoopMiddleware`: the same
``interrupt_on`` configuration (per tool ``True``/``False`` or ``{"allowed_decisions":
[...], "description": ..., "when": ...}``), the same ``interrupt_mode`` (``"batched"``:
every gated call of one model turn in one round; ``"per_call"``: one at a time), and the
same four decisions (approve, edit, reject, respond) with the same messages to the model.
The difference: the person decides **in Pliuz** (inbox, Slack, API), once. The middleware
never asks a second question through ``interrupt()``; it opens one Pliuz request per gated
call, waits for the decisions, and turns each into LangChain's decision. An approved or
edited call is then claimed and reported through Pliuz, so it runs at most once.

By default the node waits in place (like :func:`gated_tool`). With ``wait_s`` set it waits
that long, then pauses the graph with ``interrupt()`` (checkpointer needed) whose value is
a list of Agent Inbox ``HumanInterrupt`` dicts (``action_request``, ``config``,
``description``) for the calls still pending. The resume value is ignored: on resume the
decisions are read from Pliuz again, so a forged resume decides nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from langchain.agents.middleware.human_in_the_loop import (
    _EDIT_NOTICE,
    Action,
    HumanInTheLoopMiddleware,
    InterruptMode,
    InterruptOnConfig,
    _answer_message,
)
from langchain.agents.middleware.types import AgentState, ToolCallRequest
from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime, get_runtime
from langgraph.types import Command, interrupt

from ... import _flow
from ..._client import _BaseClient
from ..._flow import Flow
from ..._gate import (
    PreparedCall,
    ask,
    prepare_call,
    raise_for_outcome,
    reconcile,
    run_gated_async,
    run_gated_sync,
)
from ...errors import PliuzError, PliuzTimeoutError
from ...models import Approval
from .._common import message_for
from ._common import ClientValue, async_client, log, sync_client, thread_id

__all__ = ["HumanInterrupt", "PliuzHumanInTheLoopMiddleware"]

_RAN = frozenset({"approved", "executing", "executed"})


class ActionRequest(TypedDict):
    """Agent Inbox's ``ActionRequest``: the tool and its (redacted) arguments."""

    action: str
    args: dict[str, Any]


class HumanInterruptConfig(TypedDict):
    """Agent Inbox's ``HumanInterruptConfig``: what the reviewer may answer."""

    allow_ignore: bool
    allow_respond: bool
    allow_edit: bool
    allow_accept: bool


class HumanInterrupt(TypedDict):
    """Agent Inbox's ``HumanInterrupt``: one pending call, as the pause shows it."""

    action_request: ActionRequest
    config: HumanInterruptConfig
    description: str


@dataclass(frozen=True)
class _Gated:
    """One gated tool call: what Pliuz is asked and how the pause shows it."""

    tool_call: ToolCall
    config: InterruptOnConfig
    description: str
    prepared: PreparedCall


class PliuzHumanInTheLoopMiddleware(HumanInTheLoopMiddleware[Any, Any, Any]):
    """:class:`~langchain.agents.middleware.HumanInTheLoopMiddleware`, decided in Pliuz.

    Args:
        interrupt_on, description_prefix, edit_notice, interrupt_mode: as for
            LangChain's middleware.
        client: a :class:`~pliuz.PliuzClient` / :class:`~pliuz.AsyncPliuzClient` or a
            factory; default: the process's shared client.
        policy: the Pliuz policy to ask (default: matched by tool name). A ``respond``
            decision needs a policy whose ``decisions`` list ``"respond"``.
        timeout_s: when waiting in place, give up after this many seconds (the model is
            told nothing ran); default: until the request expires.
        wait_s: wait this long for the decisions, then pause the graph with
            ``interrupt()`` (``HumanInterrupt`` values) instead of holding the worker.
        inbox_url: public address of the Pliuz inbox, for the pause's description.
        redact: argument paths never sent to Pliuz (as for :func:`pliuz.gated`).
    """

    def __init__(
        self,
        interrupt_on: dict[str, bool | InterruptOnConfig],
        *,
        description_prefix: str = "Tool execution requires approval",
        edit_notice: str | None = _EDIT_NOTICE,
        interrupt_mode: InterruptMode = "batched",
        client: ClientValue = None,
        policy: str | None = None,
        timeout_s: float | None = None,
        wait_s: float | None = None,
        inbox_url: str | None = None,
        redact: Sequence[str] = (),
    ) -> None:
        super().__init__(
            interrupt_on,
            description_prefix=description_prefix,
            edit_notice=edit_notice,
            interrupt_mode=interrupt_mode,
        )
        self.client = client
        self.policy = policy
        self.timeout_s = timeout_s
        self.wait_s = wait_s
        self.inbox_url = inbox_url
        self.redact = tuple(redact)

    # -- building the requests ------------------------------------------------------------

    def _gated(
        self,
        cfg: _BaseClient,
        tool_call: ToolCall,
        config: InterruptOnConfig,
        state: AgentState[Any],
        runtime: Runtime[Any],
    ) -> _Gated:
        action, _ = self._create_action_and_config(tool_call, config, state, runtime)
        description = action.get("description", "")
        allowed = list(config["allowed_decisions"])
        prepared = prepare_call(
            tool_call["name"],
            dict(tool_call["args"]),
            secret=cfg.api_key,
            policy=self.policy,
            redact_paths=self.redact,
            # The model's call id and the thread make the idempotency key: a re-run of the
            # node (resume, restart) finds the same request instead of asking again.
            call_id=tool_call["id"],
            session_id=thread_id(_config()),
            # Shown with the request in Pliuz; not part of the idempotency key.
            client_metadata={
                "langchain_allowed_decisions": allowed,
                "langchain_description": description,
            },
        )
        return _Gated(tool_call, config, description, prepared)

    def _human_interrupt(self, g: _Gated, approval: Approval, base_url: str) -> HumanInterrupt:
        allowed = g.config["allowed_decisions"]
        inbox = (self.inbox_url or base_url).rstrip("/")
        return HumanInterrupt(
            action_request=ActionRequest(action=g.tool_call["name"], args=g.prepared.redacted.args),
            config=HumanInterruptConfig(
                allow_ignore="reject" in allowed,
                allow_respond="respond" in allowed,
                allow_edit="edit" in allowed,
                allow_accept="approve" in allowed,
            ),
            description=(
                f"{g.description}\n\nDecide in Pliuz: {inbox}/requests/{approval.id} "
                "(the decision is read from Pliuz when the run resumes)"
            ),
        )

    # -- one round: create every request, then wait for every decision --------------------

    def _round(self, cfg: _BaseClient, gated: list[_Gated]) -> Flow[list[Approval | PliuzError]]:
        """Each call's outcome: its settled request, or the error that kept it from one (a
        call whose request fails does not stop the others')."""
        # All requests first, so the person sees the whole turn at once.
        outcomes: list[Approval | PliuzError] = []
        for g in gated:
            try:
                outcomes.append((yield from ask(cfg, g.prepared)))
            except PliuzError as exc:
                outcomes.append(exc)
        pausing = self.wait_s is not None
        deadline = _flow.deadline_in(self.wait_s if pausing else self.timeout_s)
        while True:
            for i, a in enumerate(outcomes):
                if isinstance(a, PliuzError):
                    continue
                try:
                    if a.status == "pending":
                        try:
                            left = _flow.remaining(deadline)
                            a = yield from _flow.wait_for_decision(cfg, a, left)
                        except PliuzTimeoutError:
                            if not pausing:
                                raise
                    outcomes[i] = yield from reconcile(cfg, a)
                except PliuzError as exc:
                    outcomes[i] = exc
            pending = [
                i
                for i, a in enumerate(outcomes)
                if isinstance(a, Approval) and a.status == "pending"
            ]
            if not pending:
                return outcomes
            # Pause (GraphInterrupt). On resume the node runs again; the k-th interrupt()
            # then returns the k-th resume value: ignored, the decisions come from Pliuz.
            interrupt(
                [
                    self._human_interrupt(gated[i], cast(Approval, outcomes[i]), cfg.base_url)
                    for i in pending
                ]
            )
            deadline = _flow.deadline_in(0)  # one fresh look, then pause again if pending

    def _decide_sync(
        self, pairs: list[tuple[ToolCall, InterruptOnConfig]], state: Any, runtime: Runtime[Any]
    ) -> list[Approval | PliuzError]:
        try:
            with sync_client(self.client) as c:
                gated = [self._gated(c, call, config, state, runtime) for call, config in pairs]
                outcomes: list[Approval | PliuzError] = c._drive(self._round(c, gated))
                return outcomes
        except PliuzError as exc:  # no client (say, no API key): nobody was asked
            return [exc] * len(pairs)

    async def _decide_async(
        self, pairs: list[tuple[ToolCall, InterruptOnConfig]], state: Any, runtime: Runtime[Any]
    ) -> list[Approval | PliuzError]:
        try:
            async with async_client(self.client) as c:
                gated = [self._gated(c, call, config, state, runtime) for call, config in pairs]
                outcomes: list[Approval | PliuzError] = await c._drive(self._round(c, gated))
                return outcomes
        except PliuzError as exc:
            return [exc] * len(pairs)

    # -- turning a Pliuz outcome into LangChain's decision --------------------------------

    def _refusal(
        self, tool_call: ToolCall, config: InterruptOnConfig, outcome: Approval | PliuzError
    ) -> ToolMessage | None:
        """The message the model gets instead of the tool's result, or ``None``: run it."""
        if isinstance(outcome, PliuzError):
            return self._failed(tool_call, outcome)
        allowed = config["allowed_decisions"]
        status = outcome.status
        kind = (
            ("edit" if outcome.decision and outcome.decision.edited else "approve")
            if status in _RAN
            else {"rejected": "reject", "responded": "respond"}.get(status)
        )
        if kind is None:  # expired or cancelled: nobody allowed it
            try:
                raise_for_outcome(outcome)
            except PliuzError as exc:
                return self._failed(tool_call, exc)
        if kind not in allowed:
            # Fail closed: Pliuz's policy allowed what this tool's configuration does not.
            log.warning(
                "pliuz: %s was decided '%s' in Pliuz (%s), which interrupt_on does not allow "
                "for this tool (%s); not run", tool_call["name"], kind, outcome.id, allowed,
            )  # fmt: skip
            return _not_run(
                tool_call,
                f"The tool call {tool_call['name']} was NOT executed: the reviewer's decision "
                f"'{kind}' is not allowed for this tool.",
            )
        if kind == "reject":
            return _answer_message(tool_call, {"type": "reject", "message": outcome.reason or ""})
        if kind == "respond":
            return _answer_message(tool_call, {"type": "respond", "message": outcome.reason or ""})
        return None

    def _failed(self, tool_call: ToolCall, exc: PliuzError) -> ToolMessage:
        """Pliuz gave no permission to run (expired, cancelled, unreachable, ...)."""
        return _not_run(tool_call, message_for(tool_call["name"], exc, self.timeout_s))

    # -- batched: one round per model turn ------------------------------------------------

    def _turn(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> tuple[AIMessage, list[tuple[ToolCall, InterruptOnConfig]]] | None:
        """The turn's AI message and its gated calls, or ``None``: nothing to ask."""
        if self.interrupt_mode == "per_call":
            return None  # asked in wrap_tool_call
        messages = state["messages"]
        last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        if last is None or not last.tool_calls:
            return None
        pairs = []
        for call in last.tool_calls:
            config = self.interrupt_on.get(call["name"])
            if config is not None and self._should_interrupt(call, config, state, runtime):
                pairs.append((call, config))
        return (last, pairs) if pairs else None

    def _answers(
        self,
        last: AIMessage,
        pairs: list[tuple[ToolCall, InterruptOnConfig]],
        outcomes: list[Approval | PliuzError],
    ) -> dict[str, Any]:
        refused = [self._refusal(c, cfg, o) for (c, cfg), o in zip(pairs, outcomes, strict=True)]
        # The AI message keeps every call; a refused one is answered by its message, so the
        # agent does not route it to the tools.
        return {"messages": [last, *(m for m in refused if m is not None)]}

    def after_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Batched mode: ask Pliuz about every gated call of the turn, in one round."""
        if (turn := self._turn(state, runtime)) is None:
            return None
        last, pairs = turn
        return self._answers(last, pairs, self._decide_sync(pairs, state, runtime))

    async def aafter_model(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async :meth:`after_model`."""
        if (turn := self._turn(state, runtime)) is None:
            return None
        last, pairs = turn
        return self._answers(last, pairs, await self._decide_async(pairs, state, runtime))

    # -- running an approved call: claimed and reported through Pliuz ---------------------

    def _config_for(self, request: ToolCallRequest) -> InterruptOnConfig | None:
        """The call's configuration if it is gated (its ``when`` holds), else ``None``."""
        config = self.interrupt_on.get(request.tool_call["name"])
        if config is None:
            return None
        when = config.get("when")
        if when is not None and not when(request):
            return None
        return config

    def _finish(
        self, request: ToolCallRequest, result: ToolMessage | Command[Any], final: dict[str, Any]
    ) -> ToolMessage | Command[Any]:
        """Tell the model, in LangChain's words, when the arguments that ran were edited."""
        ran = _with_args(request, final)
        if final == dict(request.tool_call["args"]):
            return result
        return self._annotate_edited_result(
            result, ran, Action(name=request.tool_call["name"], args=final)
        )

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """Run a gated call only as Pliuz allows it: claimed once, then reported."""
        if (config := self._config_for(request)) is None:
            return handler(request)
        call = request.tool_call
        if self.interrupt_mode == "per_call":
            (outcome,) = self._decide_sync([(call, config)], request.state, get_runtime())
            if (refused := self._refusal(call, config, outcome)) is not None:
                return refused
        ran: dict[str, Any] = {}

        def execute(final: dict[str, Any]) -> ToolMessage | Command[Any]:
            ran["final"] = final
            return handler(_with_args(request, final))

        try:
            with sync_client(self.client) as c:
                g = self._gated(c, call, config, request.state, get_runtime())
                # Re-attaches to the decided request: claims it, runs, reports.
                result = run_gated_sync(
                    c, g.prepared, execute, timeout_s=self.timeout_s, unreported=(GraphBubbleUp,)
                )
        except PliuzError as exc:
            return self._failed(call, exc)
        return self._finish(request, result, ran["final"])

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Async :meth:`wrap_tool_call`."""
        if (config := self._config_for(request)) is None:
            return await handler(request)
        call = request.tool_call
        if self.interrupt_mode == "per_call":
            (outcome,) = await self._decide_async([(call, config)], request.state, get_runtime())
            if (refused := self._refusal(call, config, outcome)) is not None:
                return refused
        ran: dict[str, Any] = {}

        async def execute(final: dict[str, Any]) -> ToolMessage | Command[Any]:
            ran["final"] = final
            return await handler(_with_args(request, final))

        try:
            async with async_client(self.client) as c:
                g = self._gated(c, call, config, request.state, get_runtime())
                result = await run_gated_async(
                    c, g.prepared, execute, timeout_s=self.timeout_s, unreported=(GraphBubbleUp,)
                )
        except PliuzError as exc:
            return self._failed(call, exc)
        return self._finish(request, result, ran["final"])


def _config() -> Any:
    try:
        return get_config()
    except RuntimeError:
        return None


def _with_args(request: ToolCallRequest, args: dict[str, Any]) -> ToolCallRequest:
    return request.override(tool_call=cast(ToolCall, {**request.tool_call, "args": args}))


def _not_run(tool_call: ToolCall, text: str) -> ToolMessage:
    return ToolMessage(
        content=text, name=tool_call["name"], tool_call_id=tool_call["id"], status="error"
    )
