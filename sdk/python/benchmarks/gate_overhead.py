"""What ``@gated`` costs on top of the raw HTTP calls it makes, against the real server.

Starts ``$PLIUZ_BIN serve`` (default ``<repo>/target/debug/pliuz``) on a free port
with a fresh data dir, creates an agent key and an auto-approving policy, then
prints p50/p99 latency of:

- the raw ``POST /api/v1/approvals`` (httpx, one keep-alive client, sync and async);
- the raw create with a ``claim_id`` (claim on create: the one request a gated call
  on an auto-approving policy waits for before its body runs);
- the raw create + execution claim (the two requests it waited for before claim on
  create, and still does when a human decides);
- ``@gated`` on a sync and an async function (default shared client).

Run: ``PLIUZ_BIN=target/release/pliuz python sdk/python/benchmarks/gate_overhead.py [N]``.
Timings are printed, never asserted: they depend on the machine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx


def _binary() -> Path:
    if "PLIUZ_BIN" in os.environ:
        return Path(os.environ["PLIUZ_BIN"])
    return Path(__file__).resolve().parents[3] / "target" / "debug" / "pliuz"


BIN = _binary()

POLICY = Path(__file__).with_name("bench_policy.toml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def _time_sync(call: Callable[[int], object], n: int, warmup: int) -> list[float]:
    for i in range(warmup):
        call(10**9 + i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def _time_async(call: Callable[[int], Awaitable[object]], n: int, warmup: int) -> list[float]:
    for i in range(warmup):
        await call(10**9 + i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pliuz-bench-"))
    data, config = tmp / "data", tmp / "pliuz.toml"
    config.write_text(POLICY.read_text())
    common = ["--data-dir", str(data), "--config", str(config)]
    key = subprocess.run(
        [str(BIN), "agents", "create", "bench-bot", *common],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - the child's output
    proc = subprocess.Popen(
        [str(BIN), "serve", *common, "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {tmp / 'server.log'}")
            time.sleep(0.05)
        os.environ["PLIUZ_API_KEY"], os.environ["PLIUZ_BASE_URL"] = key, base
        run_id = uuid.uuid4().hex  # every request is new: no idempotent replays
        headers = {"Authorization": f"Bearer {key}"}
        results = _measure(base, headers, run_id, n)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
    print(f"{n} calls each, server {BIN}")
    print(f"{'':30} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (p50, p99) in results.items():
        print(f"{name:30} {p50:8.2f} {p99:8.2f}")
    for kind in ("sync", "async"):
        gated_p50 = results[f"@gated {kind}"][0]
        for base in ("raw create", "raw claiming create", "raw create + claim"):
            overhead = gated_p50 - results[f"{base} ({kind})"][0]
            print(f"@gated {kind:5} overhead over the {base + ':':21} {overhead:+6.2f} ms (p50)")


def _measure(
    base: str, headers: dict[str, str], run_id: str, n: int
) -> dict[str, tuple[float, float]]:
    import pliuz
    from pliuz import gated

    warmup = max(5, n // 10)
    results: dict[str, tuple[float, float]] = {}
    url = f"{base}/api/v1/approvals"

    def body(tag: str, i: int) -> dict[str, object]:
        return {
            "tool_name": "bench_tool",
            "tool_args": {"n": i},
            "idempotency_key": f"{run_id}-{tag}-{i}",
        }

    with httpx.Client(headers=headers) as http:

        def raw_create(i: int) -> object:
            return http.post(url, json=body("raw", i)).raise_for_status()

        def raw_claiming(i: int) -> object:
            claiming = {**body("claiming", i), "claim_id": uuid.uuid4().hex}
            return http.post(url, json=claiming).raise_for_status()

        def raw_pair(i: int) -> object:
            approval = http.post(url, json=body("pair", i)).raise_for_status().json()
            claim = {"outcome": "started", "claim_id": uuid.uuid4().hex}
            return http.post(f"{url}/{approval['id']}/execution", json=claim).raise_for_status()

        results["raw create (sync)"] = _percentiles(_time_sync(raw_create, n, warmup))
        results["raw claiming create (sync)"] = _percentiles(_time_sync(raw_claiming, n, warmup))
        results["raw create + claim (sync)"] = _percentiles(_time_sync(raw_pair, n, warmup))

    @gated(tool_name="bench_tool", session_id=f"{run_id}-sync")
    def bench_sync(n: int) -> int:
        return n

    results["@gated sync"] = _percentiles(_time_sync(bench_sync, n, warmup))

    async def run_async() -> None:
        async with httpx.AsyncClient(headers=headers) as http:

            async def raw_create(i: int) -> object:
                return (await http.post(url, json=body("araw", i))).raise_for_status()

            async def raw_claiming(i: int) -> object:
                claiming = {**body("aclaiming", i), "claim_id": uuid.uuid4().hex}
                return (await http.post(url, json=claiming)).raise_for_status()

            async def raw_pair(i: int) -> object:
                approval = (await http.post(url, json=body("apair", i))).raise_for_status().json()
                claim = {"outcome": "started", "claim_id": uuid.uuid4().hex}
                return (
                    await http.post(f"{url}/{approval['id']}/execution", json=claim)
                ).raise_for_status()

            results["raw create (async)"] = _percentiles(await _time_async(raw_create, n, warmup))
            results["raw claiming create (async)"] = _percentiles(
                await _time_async(raw_claiming, n, warmup)
            )
            results["raw create + claim (async)"] = _percentiles(
                await _time_async(raw_pair, n, warmup)
            )

        @gated(tool_name="bench_tool", session_id=f"{run_id}-async")
        async def bench_async(n: int) -> int:
            return n

        results["@gated async"] = _percentiles(await _time_async(bench_async, n, warmup))

    asyncio.run(run_async())
    # Reports are sent in the background: let them land before the server stops
    # (older SDKs, measured for comparison, sent them before returning).
    flush = getattr(pliuz, "flush_reports", None)
    if flush is not None:
        flush(30)
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
