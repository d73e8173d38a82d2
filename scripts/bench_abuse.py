#!/usr/bin/env python3
"""Abuse benchmark (printed, not asserted): starts the real `pliuz serve` and
prints its memory and `/healthz` latency idle and while 300 concurrent bad
log-ins and 1000 slow clients are under way.

    scripts/bench_abuse.py [--bin target/release/pliuz] [--logins 300] [--slow 1000]

Standard library only. Linux (reads /proc/PID/status for RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return (
        int(fields["VmRSS"].split()[0]) / 1024,
        int(fields["VmHWM"].split()[0]) / 1024,
    )


async def request(port: int, raw: bytes, timeout: float = 60.0) -> bytes:
    """Sends one raw HTTP/1.1 request on a new connection; returns the answer."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def healthz(port: int) -> float:
    t = time.perf_counter()
    answer = await request(
        port, b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/healthz answered {answer[:40]!r}")
    return time.perf_counter() - t


def p(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


async def login_token(port: int) -> str:
    answer = await request(port, b"GET /login HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    for line in answer.split(b"\r\n"):
        if line.lower().startswith(b"set-cookie: pliuz_login="):
            return line.split(b"=", 1)[1].split(b";", 1)[0].decode()
    raise RuntimeError("no log-in cookie")


async def bad_login(port: int, token: str, i: int) -> tuple[int, float]:
    body = urllib.parse.urlencode(
        {"csrf": token, "email": f"nobody{i}@example.com", "password": "wrong password"}
    ).encode()
    raw = (
        b"POST /login HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
        + f"Cookie: pliuz_login={token}\r\n".encode()
        + b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    t = time.perf_counter()
    try:
        answer = await request(port, raw, timeout=120)
        status = int(answer.split(b" ", 2)[1]) if answer else 0
    except (OSError, asyncio.TimeoutError):
        status = 0
    return status, time.perf_counter() - t


async def slow_client(port: int, stop: asyncio.Event) -> None:
    """A client that sends a request head one byte per second, forever."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    head = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: " + b"a" * 10_000
    try:
        for b in head:
            if stop.is_set():
                break
            writer.write(bytes([b]))
            await writer.drain()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    except OSError:
        pass
    finally:
        writer.close()


async def bench(binary: str, port: int, pid: int, logins: int, slow: int) -> None:
    for _ in range(20):
        await healthz(port)
    idle = [await healthz(port) for _ in range(200)]
    idle_rss, _ = rss_mib(pid)
    token = await login_token(port)

    stop = asyncio.Event()
    slow_tasks = [asyncio.create_task(slow_client(port, stop)) for _ in range(slow)]
    await asyncio.sleep(1.0)
    started = time.perf_counter()
    login_tasks = [asyncio.create_task(bad_login(port, token, i)) for i in range(logins)]
    busy: list[float] = []
    failures = 0
    peak_rss = idle_rss
    while not all(t.done() for t in login_tasks) or time.perf_counter() - started < 5:
        try:
            busy.append(await healthz(port))
        except (OSError, RuntimeError, asyncio.TimeoutError):
            failures += 1
        peak_rss = max(peak_rss, rss_mib(pid)[0])
        await asyncio.sleep(0.02)
    results = [t.result() for t in login_tasks]
    attack_s = time.perf_counter() - started
    after_rss, hwm = rss_mib(pid)
    stop.set()
    await asyncio.gather(*slow_tasks, return_exceptions=True)

    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    took = [t for _, t in results]
    print(f"binary: {binary}")
    print(
        f"idle:   /healthz p50 {p(idle, 0.5) * 1000:.1f} ms,"
        f" p99 {p(idle, 0.99) * 1000:.1f} ms; RSS {idle_rss:.0f} MiB"
    )
    print(
        f"attack: {logins} concurrent bad log-ins + {slow} slow clients, {attack_s:.1f} s:"
        f" /healthz p50 {p(busy, 0.5) * 1000:.1f} ms, p99 {p(busy, 0.99) * 1000:.1f} ms,"
        f" max {max(busy) * 1000:.0f} ms over {len(busy)} probes ({failures} failed)"
    )
    print(f"        RSS peak {max(peak_rss, hwm):.0f} MiB, after {after_rss:.0f} MiB")
    print(
        "        log-in answers: "
        + ", ".join(f"{k or 'no answer'}: {v}" for k, v in sorted(statuses.items()))
        + f"; median {statistics.median(took):.2f} s, max {max(took):.2f} s"
    )


def raise_open_files_limit() -> None:
    """The slow clients need a descriptor each: lift the soft limit to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bin", default=str(ROOT / "target/release/pliuz"))
    ap.add_argument("--logins", type=int, default=300)
    ap.add_argument("--slow", type=int, default=1000)
    args = ap.parse_args()
    raise_open_files_limit()
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLIUZ_")}
        env["PLIUZ_LOG"] = "error"
        server = subprocess.Popen(
            [args.bin, "--data-dir", f"{d}/data", "serve", "--listen", f"127.0.0.1:{port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.time() > deadline or server.poll() is not None:
                        print("the server did not start", file=sys.stderr)
                        return 1
                    time.sleep(0.1)
            asyncio.run(bench(args.bin, port, server.pid, args.logins, args.slow))
        finally:
            server.kill()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
