"""Graph interrupts: pause a LangGraph run until Pliuz decides (:func:`run_with_approval`).

Inside a node, the helpers create (or re-attach to) the Pliuz request and, while
it is pending, call LangGraph's ``interrupt()`` so the run pauses and is
checkpointed. On resume the decision is read from Pliuz, never from the resume
value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.types import interrupt

from ... import _flow
from ..._client import _BaseClient
from ..._flow import Flow, RequestFields
from ..._gate import (
    PreparedCall,
    ask,
    final_args,
    prepare_call,
    raise_for_outcome,
    reconcile,
    run_gated_async,
    run_gated_sync,
)
from ...errors import PliuzError, PliuzTimeoutError
from ...idempotency import idempotency_key
from ...models import Approval
from ...redaction import parse_path, relax_schema
from .._common import message_for
from ._common import INTERRUPT_TYPE, ClientValue, async_client, log, sync_client, thread_id

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "AskOptions",
    "RunOptions",
    "arequire_approval",
    "arun_with_approval",
    "require_approval",
    "run_with_approval",
]

T = TypeVar("T")


class AskOptions(RequestFields, total=False):
    """The keywords :func:`require_approval` and :func:`run_with_approval` share.

    ``policy``, ``redact``, ``tool_schema``, ``session_id``, ``originator``,
    ``context_messages``, ``client_metadata`` as for :func:`pliuz.gated`;
    ``key``: an extra discriminator for the idempotency key, when the same
    node asks for the same tool and arguments more than once in one thread;
    ``inbox_url``: public address of the Pliuz inbox for the interrupt's
    ``url`` (default: the client's ``base_url``).
    """

    redact: Sequence[str]
    key: str | None
    inbox_url: str | None


@dataclass(frozen=True)
class _Ask:
    tool_name: str
    args: dict[str, Any]
    #: The caller's keywords, as given (each is read where it is used).
    options: AskOptions

    @classmethod
    def build(cls, tool_name: str, args: Mapping[str, Any], **options: Unpack[AskOptions]) -> _Ask:
        # A misspelt keyword fails here rather than being ignored.
        unknown = options.keys() - AskOptions.__optional_keys__
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        for path in options.get("redact", ()):
            parse_path(path)
        return cls(tool_name, dict(args), options)

    def prepare(self, secret: str) -> PreparedCall:
        o = self.options
        config = _current_config()
        session = o.get("session_id")
        if session is None:
            session = thread_id(config)
        node = (config.get("metadata") or {}).get("langgraph_node")
        # One request per (thread, node, tool, args[, key]): a re-run of the node after a
        # resume or a restart finds the same request instead of asking again.
        anchor = f"langgraph:{node or ''}:{o.get('key') or ''}"
        key = idempotency_key(
            self.tool_name, self.args, session_id=session, call_id=anchor, secret=secret
        )
        redact = o.get("redact", ())
        return prepare_call(
            self.tool_name,
            self.args,
            secret=secret,
            policy=o.get("policy"),
            redact_paths=redact,
            tool_schema=relax_schema(o.get("tool_schema"), [parse_path(p) for p in redact]),
            call_id=o.get("key"),
            session_id=session,
            originator=o.get("originator"),
            context_messages=o.get("context_messages"),
            client_metadata={**(o.get("client_metadata") or {}), "langgraph_node": node},
            idempotency_key_override=key,
        )

    def payload(self, approval: Approval, prepared: PreparedCall, base_url: str) -> dict[str, Any]:
        inbox = (self.options.get("inbox_url") or base_url).rstrip("/")
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


def _settle(request: _Ask, cfg: _BaseClient, wait_s: float) -> Flow[tuple[Approval, PreparedCall]]:
    """Create or re-attach, wait up to ``wait_s``, then pause the graph while pending."""
    prepared = request.prepare(cfg.api_key)
    approval = yield from ask(cfg, prepared)
    log.debug("pliuz: %s approval %s is %s (replay=%s)",
              request.tool_name, approval.id, approval.status, approval.is_replay)  # fmt: skip
    if approval.status == "pending" and wait_s > 0:
        approval = yield from _poll(cfg, approval, wait_s)
    while approval.status == "pending":
        # Pauses the graph (GraphInterrupt). On resume the k-th interrupt() of this node
        # returns the k-th resume value: ignore it and ask Pliuz, the source of truth.
        interrupt(request.payload(approval, prepared, cfg.base_url))
        approval = yield from _flow.get(cfg, approval.id, None, None)
    approval = yield from reconcile(cfg, approval)  # its report may still be on the way
    return approval, prepared


def _poll(cfg: _BaseClient, approval: Approval, wait_s: float) -> Flow[Approval]:
    deadline = _flow.deadline_in(wait_s)
    while approval.status == "pending" and (left := _flow.remaining(deadline) or 0) >= 1:
        try:
            approval = yield from _flow.get(
                cfg, approval.id, min(60, int(left)), _flow.deadline_in(left)
            )
        except PliuzTimeoutError:
            break  # wait_s is over (a hung connection included): pause instead
    return approval


def require_approval(
    tool_name: str,
    args: Mapping[str, Any],
    *,
    client: ClientValue = None,
    wait_s: float = 0,
    **options: Unpack[AskOptions],
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
        client: a :class:`~pliuz.PliuzClient` / :class:`~pliuz.AsyncPliuzClient`
            or a zero-argument factory; default: the process's shared client.
        wait_s: long-poll this many seconds for a quick decision before pausing
            (auto-approved requests never pause).
        options: see :class:`AskOptions` (``policy``, ``redact``, ``key``,
            ``session_id``, ``inbox_url``, ...).
    """
    request = _Ask.build(tool_name, args, **options)
    with sync_client(client) as c:
        approval, prepared = c._drive(_settle(request, c, wait_s))
    return final_args(approval, prepared)


async def arequire_approval(
    tool_name: str,
    args: Mapping[str, Any],
    *,
    client: ClientValue = None,
    wait_s: float = 0,
    **options: Unpack[AskOptions],
) -> dict[str, Any]:
    """Async :func:`require_approval` (for ``async def`` nodes)."""
    request = _Ask.build(tool_name, args, **options)
    async with async_client(client) as c:
        approval, prepared = await c._drive(_settle(request, c, wait_s))
    return final_args(approval, prepared)


class RunOptions(AskOptions, total=False):
    """:class:`AskOptions` and what :func:`run_with_approval` adds: ``tool_name``
    (default: ``fn.__name__``), ``on_reject`` (``"raise"``, the default, or
    ``"return"``) and ``report_output`` (default ``True``)."""

    tool_name: str | None
    on_reject: Literal["raise", "return"]
    report_output: bool


def _run_options(fn: Callable[..., Any], options: RunOptions) -> tuple[str, str, bool, AskOptions]:
    rest = dict(options)
    name = rest.pop("tool_name", None) or str(getattr(fn, "__name__", "action"))
    on_reject = rest.pop("on_reject", "raise")
    report_output = rest.pop("report_output", True)
    return str(name), str(on_reject), bool(report_output), cast(AskOptions, rest)


def run_with_approval(
    fn: Callable[..., T],
    args: Mapping[str, Any],
    *,
    client: ClientValue = None,
    wait_s: float = 0,
    **options: Unpack[RunOptions],
) -> T | str:
    """Inside a LangGraph node: pause until approved, run ``fn(**final_args)`` once, report it.

    Same pause/resume behaviour and keywords as :func:`require_approval`, plus
    those of :class:`RunOptions`. After
    approval ``fn`` runs with the final arguments and the outcome is reported to
    Pliuz (``executed``), so a later re-run of the node (same thread, node and
    arguments) does not run it again: it raises
    :class:`~pliuz.PliuzAlreadyExecutedError` (``.approval.execution`` holds
    the recorded output excerpt).

    ``on_reject="raise"`` (default) raises the outcome errors;
    ``"return"`` returns a plain sentence for any outcome where ``fn`` did
    not run (rejected with reason, expired, cancelled, already executed,
    server unreachable), ready to hand to a model.
    """
    name, on_reject, report_output, ask_options = _run_options(fn, options)
    request = _Ask.build(name, args, **ask_options)
    try:
        with sync_client(client) as c:
            approval, prepared = c._drive(_settle(request, c, wait_s))
            raise_for_outcome(approval)
            # Approved: run and report through the shared gate (re-attaches, locks per key).
            return run_gated_sync(
                c, prepared, lambda final: fn(**final), timeout_s=None,
                report_output=report_output, unreported=(GraphBubbleUp,),
            )  # fmt: skip
    except PliuzError as exc:
        return _refused(name, exc, on_reject)


async def arun_with_approval(
    fn: Callable[..., Awaitable[T]],
    args: Mapping[str, Any],
    *,
    client: ClientValue = None,
    wait_s: float = 0,
    **options: Unpack[RunOptions],
) -> T | str:
    """Async :func:`run_with_approval`: ``fn`` is an ``async`` function."""
    name, on_reject, report_output, ask_options = _run_options(fn, options)
    request = _Ask.build(name, args, **ask_options)

    async def execute(final: dict[str, Any]) -> T:
        return await fn(**final)

    try:
        async with async_client(client) as c:
            approval, prepared = await c._drive(_settle(request, c, wait_s))
            raise_for_outcome(approval)
            return await run_gated_async(
                c, prepared, execute, timeout_s=None,
                report_output=report_output, unreported=(GraphBubbleUp,),
            )  # fmt: skip
    except PliuzError as exc:
        return _refused(name, exc, on_reject)


def _refused(name: str, exc: PliuzError, on_reject: str) -> str:
    if on_reject == "raise":
        raise exc
    return message_for(name, exc, None)
