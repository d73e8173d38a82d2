"""The keywords of the framework adapters' ``wrap_tool`` / ``gated_tool`` (private).

Each adapter names the types of the values that depend on its framework (a
callable of its run context, its client kinds, its ``on_reject`` words); the
keywords, their defaults and their checks are these, for both.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._flow import _known
from .._gate import GateOptions
from ..redaction import parse_path

if sys.version_info >= (3, 11):
    from typing import TypedDict
else:  # a generic TypedDict before 3.11 (typing_extensions comes with pydantic)
    from typing_extensions import TypedDict

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ToolGate", "ToolOptions", "tool_decorator", "tool_gate"]

ValueT = TypeVar("ValueT")  # a str, or a callable of the framework's run context
MessagesT = TypeVar("MessagesT")
ClientT = TypeVar("ClientT")
RejectT = TypeVar("RejectT", bound=str)
ToolT = TypeVar("ToolT")


class ToolOptions(TypedDict, Generic[ValueT, MessagesT, ClientT, RejectT], total=False):
    """The keywords of ``wrap_tool`` / ``gated_tool`` (documented on each ``gated_tool``)."""

    policy: str | None
    redact: Sequence[str]
    timeout_s: float | None
    session_id: ValueT
    context_messages: MessagesT
    originator: ValueT
    client: ClientT
    on_reject: RejectT
    client_metadata: dict[str, Any] | None
    cancel_on_timeout: bool
    report_output: bool


@dataclass(frozen=True)
class ToolGate(Generic[ValueT, MessagesT, ClientT, RejectT]):
    """:class:`ToolOptions` with every default filled in."""

    policy: str | None
    redact: tuple[str, ...]
    timeout_s: float | None
    session_id: ValueT | None
    context_messages: MessagesT | None
    originator: ValueT | None
    client: ClientT | None
    on_reject: RejectT
    client_metadata: dict[str, Any] | None
    cancel_on_timeout: bool
    report_output: bool

    def gate_options(self, **extra: Unpack[GateOptions]) -> GateOptions:
        """How each gated call waits and reports, with the adapter's ``extra`` keys."""
        options = GateOptions(
            timeout_s=self.timeout_s,
            cancel_on_timeout=self.cancel_on_timeout,
            report_output=self.report_output,
        )
        options.update(extra)
        return options


def tool_gate(
    options: ToolOptions[ValueT, MessagesT, ClientT, RejectT], *, on_reject: RejectT
) -> ToolGate[ValueT, MessagesT, ClientT, RejectT]:
    """The options with their defaults (``on_reject``: the adapter's own); an unknown
    keyword or a malformed redaction path fails here, when the tool is wrapped."""
    _known(options, ToolOptions)
    redact = tuple(options.get("redact", ()))
    for path in redact:
        parse_path(path)
    return ToolGate(
        policy=options.get("policy"),
        redact=redact,
        timeout_s=options.get("timeout_s"),
        session_id=options.get("session_id"),
        context_messages=options.get("context_messages"),
        originator=options.get("originator"),
        client=options.get("client"),
        on_reject=options.get("on_reject", on_reject),
        client_metadata=options.get("client_metadata"),
        cancel_on_timeout=options.get("cancel_on_timeout", False),
        report_output=options.get("report_output", True),
    )


def tool_decorator(
    wrap: Callable[..., ToolT],
    options: ToolOptions[ValueT, MessagesT, ClientT, RejectT],
    *,
    on_reject: RejectT,
) -> Callable[[Any], ToolT]:
    """``gated_tool(**options)``: ``wrap(tool, **options)`` as a decorator; bad options
    fail when it is made, not when the first tool is wrapped."""
    tool_gate(options, on_reject=on_reject)
    return functools.partial(wrap, **options)
