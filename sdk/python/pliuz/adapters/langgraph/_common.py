"""What the LangGraph adapter's parts share (private): clients, config lookups, logging."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Literal

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig

from ..._client import AsyncPliuzClient, PliuzClient
from ..._shared import blocking_twin, shared_async_client, shared_client

log = logging.getLogger("pliuz")

INTERRUPT_TYPE = "pliuz_approval"
"""``value["type"]`` of the interrupts raised by :func:`require_approval`."""

AnyClient = PliuzClient | AsyncPliuzClient
ClientValue = AnyClient | Callable[[], AnyClient] | None
ConfigValue = str | Callable[[RunnableConfig], "str | None"] | None
MessagesValue = list[Any] | Callable[[RunnableConfig], "list[Any] | None"] | None
OnReject = Literal["return", "message", "raise"]


@contextlib.contextmanager
def sync_client(client: ClientValue) -> Iterator[PliuzClient]:
    """A blocking client: the given one, a factory's (closed after) or the shared one."""
    made = client() if callable(client) and not isinstance(client, AnyClient) else None
    given = made if made is not None else client
    if isinstance(given, PliuzClient):
        c = given
    elif isinstance(given, AsyncPliuzClient):
        c = blocking_twin(given)  # an async client given, a sync path: same server and key
    else:
        c = shared_client()
    try:
        yield c
    finally:
        if made is not None and c is made:
            c.close()


@contextlib.asynccontextmanager
async def async_client(client: ClientValue) -> AsyncIterator[AsyncPliuzClient]:
    """An async client for one call: the given one, a factory's or a twin (closed after), or the
    running loop's shared one."""
    made = client() if callable(client) and not isinstance(client, AnyClient) else None
    given = made if made is not None else client
    if isinstance(given, AsyncPliuzClient):
        c, owned = given, made is not None
    elif isinstance(given, PliuzClient):
        # A sync client given, an async path: same server and key, on this loop.
        c, owned = AsyncPliuzClient(**given._settings()), True
    else:
        c, owned = await shared_async_client(), False
    try:
        yield c
    finally:
        if owned:
            await c.aclose()
        if isinstance(made, PliuzClient):
            made.close()


def thread_id(config: Mapping[str, Any] | None) -> str | None:
    configurable = (config or {}).get("configurable") or {}
    value = configurable.get("thread_id")
    return str(value) if value not in (None, "") else None


def resolve(value: Any, config: RunnableConfig) -> Any:
    return value(config) if callable(value) else value


def content_text(result: Any) -> str:
    if isinstance(result, ToolMessage):
        content = result.content
        return content if isinstance(content, str) else json.dumps(content, default=str)
    return result if isinstance(result, str) else repr(result)
