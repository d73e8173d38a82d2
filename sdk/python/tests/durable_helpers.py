"""Drive durable runs from separate interpreters (durable_proc.py) against the real server."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from server import Human, PliuzServer

HERE = Path(__file__).parent


class DurableCase:
    """One test's session, ledger and call ids; starts and resumes runs in new processes."""

    def __init__(self, server: PliuzServer, tmp: Path, scenario: str = "single", **env: str):
        self.server = server
        self.tmp = tmp
        self.scenario = scenario
        self.session = f"durable-{uuid.uuid4().hex[:10]}"
        self.order = f"D-{uuid.uuid4().hex[:6]}"
        self.ledger = tmp / "ledger.jsonl"
        self.extra = env
        self.logs: list[Path] = []

    def env(self, **more: str) -> dict[str, str]:
        return {
            **os.environ, **self.server.agent_env(), "SCENARIO": self.scenario,
            "SESSION_ID": self.session, "CALL_PREFIX": f"c{uuid.uuid4().hex[:8]}",
            "ORDER": self.order, "PLIUZ_EXAMPLE_LEDGER": str(self.ledger), **self.extra, **more,
        }  # fmt: skip

    def spawn(self, *args: str, **more: str) -> tuple[subprocess.Popen[str], Path]:
        log = self.tmp / f"proc{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, str(HERE / "durable_proc.py"), *args], stdout=out,
                stderr=subprocess.STDOUT, text=True, env=self.env(**more),
            )  # fmt: skip
        return proc, log

    @staticmethod
    def result(proc: subprocess.Popen[str], log: Path, timeout: float = 60) -> dict[str, Any]:
        code = proc.wait(timeout=timeout)
        text = log.read_text(errors="replace")
        assert code == 0, f"exit {code}:\n{text}"
        lines = [x for x in text.splitlines() if x.startswith("RESULT: ")]
        assert lines, text
        return dict(json.loads(lines[-1][len("RESULT: ") :]))

    def start(self, **more: str) -> dict[str, Any]:
        out = self.result(*self.spawn("start", **more))
        assert out["run_id"], out
        return out

    def start_decided(
        self, human: Human, decision: str, *, reason: str | None = None, **more: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a run (``more``: its environment) and make ``decision`` on the
        ``issue_refund`` request it paused on; the started run and that request."""
        started = self.start(**more)
        (a,) = human.wait_pending(tool="issue_refund", session=self.session)
        human.decide_ok(a["id"], decision, reason=reason)
        return started, a

    def resume(self, run_id: str, **more: str) -> dict[str, Any]:
        return self.result(*self.spawn("resume", run_id, **more))

    def resume_killed(self, run_id: str, **how: str) -> None:
        """A resumer that dies (``how``: at which point) before it finishes the run."""
        proc, log = self.spawn("resume", run_id, **how)
        assert proc.wait(timeout=60) != 0, log.read_text()

    def approved_then_resumer_killed(
        self, human: Human, amount_cents: int, **kill_at: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A run whose refund of ``amount_cents`` was approved and whose resumer
        died (``kill_at``: at which point) after refunding once; the started run
        and its request."""
        started, approval = self.start_decided(human, "approve", AMOUNT=str(amount_cents))
        self.resume_killed(started["run_id"], **kill_at)
        assert self.ledger_rows() == self.refund_of(amount_cents)
        return started, approval

    def taken_over_without_refunding_again(self, run_id: str, amount_cents: int) -> str:
        """The next resumer, once the dead one's lease ran out, completes the run
        and the refund stays single; what the model was told about the call."""
        done = self.resume_after_lease_expiry(run_id)
        assert done["status"] == "completed"
        assert self.ledger_rows() == self.refund_of(amount_cents)
        told: str = done["last_input"]
        return told

    def refund_of(self, amount_cents: int) -> list[dict[str, Any]]:
        """The ledger after exactly one refund of ``amount_cents`` on this case's order."""
        return [{"order_id": self.order, "amount_cents": amount_cents}]

    def resume_after_lease_expiry(self, run_id: str, within: float = 30) -> dict[str, Any]:
        """Resume a run whose resumer died: retried until its lease ran out and one succeeds."""
        deadline = time.monotonic() + within
        while True:
            proc, log = self.spawn("resume", run_id)
            if proc.wait(timeout=60) == 0:
                return self.result(proc, log)
            assert "run_claimed" in log.read_text(), log.read_text()
            assert time.monotonic() < deadline, "the lease never expired"
            time.sleep(1)

    def ledger_rows(self) -> list[dict[str, Any]]:
        if not self.ledger.exists():
            return []
        return [json.loads(x) for x in self.ledger.read_text().splitlines()]


class AgentAPI:
    """The agent's side of the runs API over plain HTTP (to check what the server stored)."""

    def __init__(self, server: PliuzServer, key: str | None = None) -> None:
        self.server = server
        self.key = key or server.agent_key

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        with httpx.Client(
            base_url=self.server.base_url, headers={"Authorization": f"Bearer {self.key}"},
            timeout=70,
        ) as h:  # fmt: skip
            return h.request(method, f"/api/v1{path}", **kw)

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.request("GET", f"/runs/{run_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())


class Receiver:
    """A local webhook receiver: records every delivery; can answer 503 ("down")."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.down = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if outer.down:
                    self.send_response(503)
                else:
                    outer.deliveries.append((dict(self.headers.items()), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/pliuz/webhook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, event_type: str, timeout: float = 30) -> tuple[dict[str, str], bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for headers, body in list(self.deliveries):
                if json.loads(body).get("type") == event_type:
                    return headers, body
            time.sleep(0.1)
        raise AssertionError(f"no {event_type} delivery; got {len(self.deliveries)}")
