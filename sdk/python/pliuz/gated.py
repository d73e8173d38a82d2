"""The :func:`gated` decorator: human approval before a plain function runs.

::

    from pliuz import gated

    @gated(policy="refunds", redact=["card.number"], timeout_s=600)
    def issue_refund(order_id: str, amount_cents: int, card: dict) -> str:
        ...

    issue_refund("A-1", 5000, card={"number": "4111..."})  # blocks until decided

    @gated(policy="refunds")
    async def issue_refund_async(order_id: str, amount_cents: int) -> str:
        ...

The call asks for approval, waits for the decision, then runs the function
with the final (possibly edited) arguments and reports the outcome. Rejection,
expiry, timeout and every other failure raise a :class:`~pliuz.PliuzError`
and the function does not run.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast, overload

from pydantic import TypeAdapter

from ._client import AsyncPliuzClient, PliuzClient
from ._flow import _known
from ._gate import GateOptions, prepare_call, run_gated_async, run_gated_sync, warn_misconfigured
from ._shared import shared_async_client, shared_client
from .errors import PliuzArgumentsError, PliuzConfigurationError
from .redaction import parse_path, relax_schema

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["gated"]

F = TypeVar("F", bound=Callable[..., Any])

StrOrFactory = str | Callable[[], "str | None"] | None
MessagesOrFactory = list[Any] | Callable[[], "list[Any] | None"] | None

_P = inspect.Parameter


@contextmanager
def _warning_on_misconfiguration(name: str) -> Iterator[None]:
    """A configuration error is also logged: nobody was asked, it is no human's rejection."""
    try:
        yield
    except PliuzConfigurationError as exc:
        warn_misconfigured(name, exc)
        raise


def _resolve(value: Any) -> Any:
    return value() if callable(value) else value


def args_to_dict(
    sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Bind a call to ``sig`` and return the arguments as one JSON-style object."""
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind is _P.VAR_KEYWORD:
            out.update(value)
        elif kind is _P.VAR_POSITIONAL:
            out[name] = list(value)
        else:
            out[name] = value
    return out


def dict_to_call(
    sig: inspect.Signature, final: dict[str, Any], func_name: str
) -> tuple[list[Any], dict[str, Any]]:
    """Turn approved arguments back into ``(*args, **kwargs)``; raise if they do not bind."""
    rest = dict(final)
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    has_var_positional = any(p.kind is _P.VAR_POSITIONAL for p in sig.parameters.values())
    has_var_keyword = any(p.kind is _P.VAR_KEYWORD for p in sig.parameters.values())
    for name, param in sig.parameters.items():
        if param.kind is _P.VAR_KEYWORD or name not in rest:
            continue
        value = rest.pop(name)
        if param.kind is _P.POSITIONAL_ONLY or (
            param.kind is _P.POSITIONAL_OR_KEYWORD and has_var_positional
        ):
            positional.append(value)
        elif param.kind is _P.VAR_POSITIONAL:
            if not isinstance(value, list):
                raise PliuzArgumentsError(
                    f"approved arguments do not fit {func_name}{sig}: {name!r} must be a list"
                )
            positional.extend(value)
        else:
            keywords[name] = value
    if rest and not has_var_keyword:
        raise PliuzArgumentsError(
            f"approved arguments do not fit {func_name}{sig}: unexpected {sorted(rest)}"
        )
    keywords.update(rest)
    try:
        sig.bind(*positional, **keywords)
    except TypeError as exc:
        raise PliuzArgumentsError(f"approved arguments do not fit {func_name}{sig}: {exc}") from exc
    return positional, keywords


def schema_for(func: Callable[..., Any]) -> dict[str, Any] | None:
    """JSON schema of a function's arguments (best effort, ``None`` if it cannot be built)."""
    try:
        # pydantic accepts a callable here; its stubs only name type forms.
        adapter: TypeAdapter[Any] = TypeAdapter(cast(Any, func))
        schema = adapter.json_schema()
    except Exception:
        return None
    return schema if schema.get("type") == "object" else None


class GatedOptions(TypedDict, total=False):
    """The keywords of :func:`gated` (documented there)."""

    policy: str | None
    redact: Sequence[str]
    timeout_s: float | None
    session_id: StrOrFactory
    context_messages: MessagesOrFactory
    originator: StrOrFactory
    client: PliuzClient | AsyncPliuzClient | None
    tool_name: str | None
    tool_schema: dict[str, Any] | None
    client_metadata: dict[str, Any] | None
    cancel_on_timeout: bool
    report_output: bool


@overload
def gated(func: F, /) -> F: ...


@overload
def gated(func: None = None, /, **options: Unpack[GatedOptions]) -> Callable[[F], F]: ...


def gated(func: F | None = None, /, **options: Unpack[GatedOptions]) -> F | Callable[[F], F]:
    """Require human approval before ``func`` runs (sync or async functions).

    Args:
        policy: policy name; omit to let the server match by tool name.
        redact: argument paths whose values never leave the process
            (``"card.number"``, ``"items[*].ssn"``); originals are restored
            before the function runs.
        timeout_s: give up waiting after this many seconds
            (:class:`~pliuz.PliuzTimeoutError`); ``None`` waits until the
            server settles the request (policies always expire).
        session_id: a string, or a zero-argument callable returning one,
            naming the run or conversation. Part of the idempotency key.
        context_messages: messages shown to the approver (list or callable).
        originator: who asked (e.g. the end user's email); str or callable.
        client: a :class:`PliuzClient` (sync functions) or
            :class:`AsyncPliuzClient` (async functions); default: the
            process's shared client for ``PLIUZ_API_KEY`` / ``PLIUZ_BASE_URL``
            (one per event loop for async functions), kept open across calls.
        tool_name: name shown to approvers and matched by policies
            (default: the function's ``__name__``).
        tool_schema: JSON schema of the arguments (default: derived from the
            signature and type hints); the server validates edits against it.
        client_metadata: extra JSON object stored with the request.
        cancel_on_timeout: cancel the pending request when ``timeout_s`` elapses.
        report_output: send a short excerpt of the return value with the
            execution report (``False`` sends none).

    Idempotency: the request carries a key derived from the tool name, the
    full arguments and ``session_id``. Calling again with the same values
    re-attaches to the same request: if it is still pending the call waits for
    it. Once approved, the function runs only after the server granted this
    caller the execution (the claim, exactly one caller ever gets it, within the
    policy's ``execute_within``); its outcome is then reported in the
    background (the call returns without waiting for it; see
    :func:`pliuz.flush_reports`). If another call
    (in this or another process) already claimed it,
    :class:`~pliuz.PliuzAlreadyExecutedError` (it finished) or
    :class:`~pliuz.PliuzOutcomeUnknownError` (started, never reported: outcome
    unknown — check before retrying) is raised and the function does **not**
    run. Give each logical operation its own ``session_id`` when identical
    calls are meant to run more than once.

    ``timeout_s`` is a deadline for asking and waiting, hung connections
    included (the claim after a last-moment decision may take up to 1 s more).

    Raises (the function does not run): :class:`~pliuz.PliuzRejectedError`,
    :class:`~pliuz.PliuzExpiredError`, :class:`~pliuz.PliuzCancelledError`,
    :class:`~pliuz.PliuzTimeoutError`, :class:`~pliuz.PliuzAlreadyExecutedError`,
    :class:`~pliuz.PliuzOutcomeUnknownError`, :class:`~pliuz.PliuzExecutionExpiredError`,
    :class:`~pliuz.PliuzArgumentsError`, :class:`~pliuz.PliuzConnectionError`
    and the API errors. A :class:`~pliuz.PliuzConfigurationError` (no or a
    wrong API key, an unknown policy, no policy for the tool) is also logged
    as a warning on the ``pliuz`` logger: nobody was asked, so it is not a
    human's rejection. Exceptions raised by ``func`` itself propagate after
    being reported.
    """
    _known(options, GatedOptions)
    redact = options.get("redact", ())
    client = options.get("client")
    for path in redact:
        parse_path(path)  # fail at decoration time on a malformed path
    run_options: GateOptions = {
        "timeout_s": options.get("timeout_s"),
        "cancel_on_timeout": options.get("cancel_on_timeout", False),
        "report_output": options.get("report_output", True),
    }

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        name = options.get("tool_name") or fn.__name__
        patterns = [parse_path(p) for p in redact]
        tool_schema = options.get("tool_schema")
        schema = relax_schema(tool_schema if tool_schema is not None else schema_for(fn), patterns)
        is_async = inspect.iscoroutinefunction(fn)
        if is_async and isinstance(client, PliuzClient):
            raise TypeError("an async function needs an AsyncPliuzClient (got PliuzClient)")
        if not is_async and isinstance(client, AsyncPliuzClient):
            raise TypeError("a sync function needs a PliuzClient (got AsyncPliuzClient)")

        def prepare(args: tuple[Any, ...], kwargs: dict[str, Any], secret: str) -> Any:
            return prepare_call(
                name,
                args_to_dict(sig, args, kwargs),
                secret=secret,
                policy=options.get("policy"),
                redact_paths=redact,
                tool_schema=schema,
                session_id=_resolve(options.get("session_id")),
                originator=_resolve(options.get("originator")),
                context_messages=_resolve(options.get("context_messages")),
                client_metadata=options.get("client_metadata"),
            )

        def execute(final: dict[str, Any]) -> Any:
            """Call ``fn`` with the approved arguments (an awaitable for an async ``fn``)."""
            pos, kw = dict_to_call(sig, final, name)
            return fn(*pos, **kw)

        if is_async:

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _warning_on_misconfiguration(name):
                    c = (
                        client
                        if isinstance(client, AsyncPliuzClient)
                        else await shared_async_client()
                    )
                    prepared = prepare(args, kwargs, c.api_key)
                    return await run_gated_async(c, prepared, execute, **run_options)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            with _warning_on_misconfiguration(name):
                c = client if isinstance(client, PliuzClient) else shared_client()
                return run_gated_sync(c, prepare(args, kwargs, c.api_key), execute, **run_options)

        return cast(F, sync_wrapper)

    if func is not None:
        return decorate(func)
    return decorate
