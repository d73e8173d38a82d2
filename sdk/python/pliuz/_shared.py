"""The clients :func:`pliuz.gated` and the adapters use when none is given: one per process.

Building a client costs tens of milliseconds (an httpx pool, TLS context) and a
fresh one cannot reuse a warm connection, so gated calls share them:

- one :class:`PliuzClient` per ``(PLIUZ_API_KEY, PLIUZ_BASE_URL)``;
- one :class:`AsyncPliuzClient` per event loop and ``(PLIUZ_API_KEY,
  PLIUZ_BASE_URL)``: an ``httpx.AsyncClient`` belongs to the loop that first
  used it. It is closed when its loop shuts down (``asyncio.run`` finalizes
  async generators, see :func:`_close_with_loop`) and forgotten with the loop;
- one blocking twin per async client configuration, with which the background
  thread delivers execution reports (see :mod:`pliuz._reports`).

A forked child starts with none of them: the parent's connections are not its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

from ._client import AsyncPliuzClient, PliuzClient

__all__ = ["blocking_twin", "shared_async_client", "shared_client"]

_EnvKey = tuple[str | None, str | None]

_lock = threading.Lock()
_sync_clients: dict[_EnvKey, PliuzClient] = {}
_twins: dict[tuple[Any, ...], PliuzClient] = {}
# loop -> (its clients, the async generator that closes them with the loop)
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[dict[_EnvKey, AsyncPliuzClient], AsyncIterator[None]]
] = weakref.WeakKeyDictionary()


def _env_key() -> _EnvKey:
    return os.environ.get("PLIUZ_API_KEY"), os.environ.get("PLIUZ_BASE_URL")


def shared_client() -> PliuzClient:
    """The process's blocking client for the current ``PLIUZ_API_KEY`` / ``PLIUZ_BASE_URL``."""
    key = _env_key()
    with _lock:
        client = _sync_clients.get(key)
        if client is None:
            client = _sync_clients[key] = PliuzClient()
    return client


async def shared_async_client() -> AsyncPliuzClient:
    """The running loop's async client for the current environment (created on first use)."""
    loop = asyncio.get_running_loop()
    entry = _async_clients.get(loop)
    if entry is None:
        clients: dict[_EnvKey, AsyncPliuzClient] = {}
        closer = _close_with_loop(clients)
        await closer.__anext__()  # started, so the loop finalizes it at shutdown
        entry = _async_clients[loop] = (clients, closer)
    clients = entry[0]
    key = _env_key()
    client = clients.get(key)
    if client is None:
        client = clients[key] = AsyncPliuzClient()
    return client


async def _close_with_loop(clients: dict[_EnvKey, AsyncPliuzClient]) -> AsyncIterator[None]:
    # loop.shutdown_asyncgens() (run by asyncio.run and most runners before the loop
    # closes) throws GeneratorExit in here, on the loop, while it still runs.
    # By then asyncio.run has cancelled the report tasks, which handed their reports to the
    # reporting thread: closing does not wait for those (the thread and atexit do).
    try:
        yield
    finally:
        for client in list(clients.values()):
            await client._close_http()
        clients.clear()


def blocking_twin(client: AsyncPliuzClient) -> PliuzClient:
    """A blocking client with ``client``'s configuration, shared by every loop and thread."""
    settings = client._settings()
    key = tuple(sorted(settings.items()))
    with _lock:
        twin = _twins.get(key)
        if twin is None:
            twin = _twins[key] = PliuzClient(**settings)
    return twin


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _sync_clients.clear()
    _twins.clear()
    _async_clients.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
