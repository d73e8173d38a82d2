"""Redaction of sensitive arguments before they leave the process.

Paths are dotted keys with ``[*]`` for "every element of a list" and ``[N]``
for one element::

    "card.number"        {"card": {"number": "4111..."}}
    "items[*].ssn"       {"items": [{"ssn": "..."}, {"ssn": "..."}]}
    "tokens[*]"          {"tokens": ["a", "b"]}

Redacted values are replaced with ``"[REDACTED]"`` in what is sent to the
server. After the decision, :func:`restore` puts the local originals back into
the approved arguments: for a redacted path the local original always wins,
even if an approver edited it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .errors import PliuzArgumentsError

__all__ = ["REDACTED", "Redacted", "parse_path", "redact", "restore"]

REDACTED: Final = "[REDACTED]"

_WILDCARD: Final = "*"
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\*|\d+)\]|(\.)")

PathPart = str | int
ConcretePath = tuple[PathPart, ...]


class _Wild:
    __slots__ = ()

    def __repr__(self) -> str:
        return "[*]"


WILD: Final = _Wild()
PatternPart = str | int | _Wild


def parse_path(path: str) -> tuple[PatternPart, ...]:
    """Parse ``"items[*].ssn"`` into ``("items", WILD, "ssn")``; ``ValueError`` if malformed."""
    if not path or path.startswith(".") or path.endswith("."):
        raise ValueError(f"invalid redaction path {path!r}")
    parts: list[PatternPart] = []
    pos = 0
    expect_key = True
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if m is None:
            raise ValueError(f"invalid redaction path {path!r} at offset {pos}")
        key, index, dot = m.groups()
        if dot:
            if expect_key:
                raise ValueError(f"invalid redaction path {path!r}: empty segment")
            expect_key = True
        elif key is not None:
            if not expect_key:
                raise ValueError(f"invalid redaction path {path!r}: missing '.' before {key!r}")
            parts.append(key)
            expect_key = False
        else:
            parts.append(WILD if index == _WILDCARD else int(index))
            expect_key = False
        pos = m.end()
    if expect_key:
        raise ValueError(f"invalid redaction path {path!r}")
    return tuple(parts)


def _expand(
    value: Any, pattern: Sequence[PatternPart], prefix: ConcretePath
) -> Iterable[ConcretePath]:
    """Every concrete path in ``value`` matching ``pattern`` (missing branches are skipped)."""
    if not pattern:
        yield prefix
        return
    head, rest = pattern[0], pattern[1:]
    if isinstance(head, _Wild):
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from _expand(item, rest, (*prefix, i))
    elif isinstance(head, int):
        if isinstance(value, list) and 0 <= head < len(value):
            yield from _expand(value[head], rest, (*prefix, head))
    elif isinstance(value, dict) and head in value:
        yield from _expand(value[head], rest, (*prefix, head))


def _get(value: Any, path: ConcretePath) -> Any:
    for part in path:
        value = value[part]
    return value


def _set(value: Any, path: ConcretePath, new: Any) -> None:
    for part in path[:-1]:
        value = value[part]
    value[path[-1]] = new


@dataclass(frozen=True)
class Redacted:
    """Result of :func:`redact`: the masked ``args`` to send and the local ``originals``."""

    args: dict[str, Any]
    originals: tuple[tuple[ConcretePath, Any], ...]
    patterns: tuple[tuple[PatternPart, ...], ...]

    @property
    def paths(self) -> list[str]:
        """The concrete paths that were redacted, e.g. ``["items[0].ssn"]``."""
        return [format_path(p) for p, _ in self.originals]


def format_path(path: ConcretePath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def redact(args: dict[str, Any], paths: Sequence[str]) -> Redacted:
    """Return a deep copy of ``args`` with every value at ``paths`` replaced by ``"[REDACTED]"``.

    The input is not modified. With no ``paths`` the result's ``args`` is
    ``args`` itself (nothing to replace, so nothing is copied).
    """
    patterns = tuple(parse_path(p) for p in paths)
    if not patterns:
        # Nothing to hide: the caller's arguments are sent as they are (only
        # read, never modified), without a copy on every gated call.
        return Redacted(args=args, originals=(), patterns=())
    masked = copy.deepcopy(args)
    originals: list[tuple[ConcretePath, Any]] = []
    seen: set[ConcretePath] = set()
    for pattern in patterns:
        for concrete in _expand(args, pattern, ()):
            if concrete in seen:
                continue
            seen.add(concrete)
            originals.append((concrete, copy.deepcopy(_get(args, concrete))))
            _set(masked, concrete, REDACTED)
    return Redacted(args=masked, originals=tuple(originals), patterns=patterns)


def _set_creating(value: Any, path: ConcretePath, new: Any) -> None:
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                raise KeyError(part)
            value = value[part]
        else:
            if not isinstance(value, dict):
                raise KeyError(part)
            if part not in value or value[part] is None:
                if isinstance(nxt, int):
                    raise KeyError(part)
                value[part] = {}
            value = value[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(value, list) or last >= len(value):
            raise KeyError(last)
    elif not isinstance(value, dict):
        raise KeyError(last)
    value[last] = new


def restore(final_args: dict[str, Any], redacted: Redacted) -> dict[str, Any]:
    """Put the local originals back into ``final_args`` (a copy is returned).

    For every redacted path the local original wins over whatever the approver
    sent. Raises :class:`~pliuz.errors.PliuzArgumentsError` if an original cannot
    be put back (the approver removed its container) or if a ``"[REDACTED]"``
    placeholder is left at a redacted path with no original to restore (for
    example an approver duplicated a list element).
    """
    out = copy.deepcopy(final_args)
    restored: set[ConcretePath] = set()
    for path, original in redacted.originals:
        try:
            _set_creating(out, path, copy.deepcopy(original))
        except (KeyError, IndexError, TypeError) as exc:
            raise PliuzArgumentsError(
                f"cannot restore redacted value at {format_path(path)!r}: "
                "the approved arguments no longer contain it"
            ) from exc
        restored.add(path)
    for pattern in redacted.patterns:
        for concrete in _expand(out, pattern, ()):
            if concrete not in restored and _get(out, concrete) == REDACTED:
                raise PliuzArgumentsError(
                    f"approved arguments hold a {REDACTED} placeholder at "
                    f"{format_path(concrete)!r} with no local original to restore"
                )
    return out


def relax_schema(
    schema: dict[str, Any] | None, patterns: Sequence[tuple[PatternPart, ...]]
) -> dict[str, Any] | None:
    """Copy of a JSON schema in which every redacted path accepts any value.

    The server validates edited arguments against the schema; a ``"[REDACTED]"``
    placeholder left in place must not fail that check (for example in an
    integer field). Best effort: paths the schema does not describe are skipped.
    """
    if schema is None or not patterns:
        return schema
    out = copy.deepcopy(schema)
    raw_defs = out.get("$defs")
    defs: dict[str, Any] = raw_defs if isinstance(raw_defs, dict) else {}

    def deref(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = defs.get(ref.split("/")[-1])
            if isinstance(target, dict):
                node.clear()
                node.update(copy.deepcopy(target))
        return node

    for pattern in patterns:
        node: Any = out
        parent: Any = None
        last_key: Any = None
        for part in pattern:
            if not isinstance(node, dict):
                node = None
                break
            node = deref(node)
            if isinstance(part, str):
                props = node.get("properties")
                if not isinstance(props, dict) or part not in props:
                    node = None
                    break
                parent, last_key, node = props, part, props[part]
            else:
                items = node.get("items")
                if not isinstance(items, dict):
                    node = None
                    break
                parent, last_key, node = node, "items", items
        if node is not None and parent is not None:
            parent[last_key] = {
                "description": "redacted by the agent; the original is restored locally"
            }
    return out
