"""The SDK's fast path against the real server: shared clients (per process, per event
loop, after fork) and execution reports sent without holding up the tool's return."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from server import Human, PliuzServer, running

import pliuz
from pliuz import AsyncPliuzClient, PliuzClient, gated
from pliuz._shared import shared_async_client, shared_client


def uid() -> str:
    return uuid.uuid4().hex[:8]


def test_one_shared_sync_client_per_process(agent_env: dict[str, str]) -> None:
    seen: list[PliuzClient] = []

    def grab() -> None:
        seen.append(shared_client())

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1
    assert seen[0].base_url == agent_env["PLIUZ_BASE_URL"].rstrip("/")


def test_the_async_client_is_one_per_loop_and_closed_with_its_loop(
    agent_env: dict[str, str],
) -> None:
    session = f"loops-{uid()}"

    @gated(tool_name="issue_refund", session_id=session)
    async def issue_refund(order_id: str, amount_cents: int) -> str:
        return f"refunded {order_id}"

    async def two_calls(order: str) -> tuple[AsyncPliuzClient, AsyncPliuzClient]:
        # Auto-approved (<= 1000): both calls run, on the same shared client.
        first = await shared_async_client()
        assert await issue_refund(order, 100) == f"refunded {order}"
        assert await issue_refund(f"{order}-2", 100) == f"refunded {order}-2"
        return first, await shared_async_client()

    a1, a2 = asyncio.run(two_calls("L-1"))
    assert a1 is a2
    assert a1._http.is_closed  # closed when asyncio.run shut its loop down
    # A new loop gets its own client: an httpx.AsyncClient must not cross loops.
    b1, _ = asyncio.run(two_calls("L-2"))
    assert b1 is not a1

    # Loops in several threads at once, each with its own client.
    errors: list[BaseException] = []
    clients: list[AsyncPliuzClient] = []

    def in_thread(n: int) -> None:
        try:
            clients.append(asyncio.run(two_calls(f"T-{n}"))[0])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=in_thread, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len({id(c) for c in clients}) == 3
    assert pliuz.flush_reports(30)
    assert not [r for r in pliuz.undelivered_reports() if r["tool_name"] == "issue_refund"]


@pytest.fixture
def pausable(tmp_path: os.PathLike[str]) -> Iterator[PliuzServer]:
    with running(tmp_path, kill=True) as srv:  # type: ignore[arg-type]
        yield srv
        if srv.proc is not None:
            srv.proc.send_signal(signal.SIGCONT)


def _freeze(srv: PliuzServer) -> None:
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing


def _thaw(srv: PliuzServer) -> None:
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGCONT)


def _executed(srv: PliuzServer, order_id: str) -> dict[str, object]:
    (a,) = [
        a for a in Human(srv).list(tool="issue_refund") if a["tool_args"]["order_id"] == order_id
    ]
    return a


def test_a_sync_tool_returns_before_its_report_is_acknowledged(pausable: PliuzServer) -> None:
    srv = pausable
    client = PliuzClient(srv.agent_key, srv.base_url, report_timeout=30)

    @gated(client=client, session_id=f"fast-{uid()}")
    def issue_refund(order_id: str, amount_cents: int) -> str:
        _freeze(srv)  # the report cannot be answered until the server is thawed
        return "refunded"

    started = time.monotonic()
    assert issue_refund("F-1", 200) == "refunded"
    assert time.monotonic() - started < 5  # not the 30 s the report may take
    (pending,) = [r for r in pliuz.undelivered_reports() if r["claim_id"] and r["outcome"]
                  and r["tool_name"] == "issue_refund" and r["last_error"] is None]  # fmt: skip
    time.sleep(0.5)
    _thaw(srv)
    client.close()  # waits for this client's reports
    a = _executed(srv, "F-1")
    assert a["status"] == "executed"
    assert a["execution"]["claim_id"] == pending["claim_id"]  # type: ignore[index]
    assert a["execution"]["outcome"] == "success"  # type: ignore[index]
    assert pending["approval_id"] not in {r["approval_id"] for r in pliuz.undelivered_reports()}


def test_an_async_report_cut_off_by_loop_shutdown_is_finished_in_the_background(
    pausable: PliuzServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = pausable
    for k, v in srv.agent_env().items():
        monkeypatch.setenv(k, v)

    @gated(session_id=f"shutdown-{uid()}")
    async def issue_refund(order_id: str, amount_cents: int) -> str:
        _freeze(srv)
        return "refunded"

    async def call() -> str:
        return await issue_refund("F-2", 300)

    started = time.monotonic()
    assert asyncio.run(call()) == "refunded"  # the loop ends with the report in flight
    assert time.monotonic() - started < 5
    threading.Timer(0.5, _thaw, args=(srv,)).start()
    assert pliuz.flush_reports(40)  # the reporting thread took it over
    a = _executed(srv, "F-2")
    assert a["status"] == "executed" and a["execution"]["outcome"] == "success"  # type: ignore[index]


def test_a_forked_child_builds_its_own_clients(agent_env: dict[str, str]) -> None:
    parent = shared_client()

    @gated(tool_name="issue_refund", session_id=f"fork-{uid()}")
    def issue_refund(order_id: str, amount_cents: int) -> str:
        return "refunded"

    assert issue_refund("P-0", 100) == "refunded"
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if it used a client of its own
        try:
            ok = shared_client() is not parent and issue_refund("C-1", 100) == "refunded"
            ok = ok and pliuz.flush_reports(30)
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert shared_client() is parent
