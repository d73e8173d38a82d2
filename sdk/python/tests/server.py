"""Run the real ``pliuz`` binary for integration tests, and act as the human approver.

The binary is taken from ``$PLIUZ_BIN`` (default ``<repo>/target/debug/pliuz``,
built with ``cargo build -p pliuz``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("PLIUZ_BIN", REPO / "target" / "debug" / "pliuz"))

FIXTURES = Path(__file__).parent / "fixtures"


def config_text(*names: str) -> str:
    """The server configuration made of the named ``fixtures/<name>.toml`` files, in order."""
    return "\n".join((FIXTURES / f"{name}.toml").read_text() for name in names)


POLICIES = config_text("policies")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PliuzServer:
    """One ``pliuz serve`` process with its own data dir, policies file and port."""

    def __init__(self, tmp: Path, policies: str = POLICIES) -> None:
        if not BIN.exists():
            raise RuntimeError(
                f"pliuz binary not found at {BIN}: run `cargo build -p pliuz` or set PLIUZ_BIN"
            )
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = tmp / "pliuz.toml"
        self.config.write_text(policies)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.agent_key = ""
        self.user_token = ""
        self.second_user_token = ""

    # -- CLI ------------------------------------------------------------------

    def cli(self, *args: str, stdin: str | None = None) -> str:
        cmd = [str(BIN), *args, "--data-dir", str(self.data_dir), "--config", str(self.config)]
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr}")
        return res.stdout.strip()

    def provision(self) -> None:
        self.agent_key = self.cli("agents", "create", "support-bot")
        self.cli(
            "users", "create", "bob@example.com", "--role", "approver", "--group", "finance",
            "--password-stdin", stdin="correct horse battery staple\n",
        )  # fmt: skip
        self.user_token = self.cli("users", "token", "bob@example.com")
        self.cli(
            "users", "create", "dora@example.com", "--role", "approver", "--group", "finance",
            "--password-stdin", stdin="another correct horse battery\n",
        )  # fmt: skip
        self.second_user_token = self.cli("users", "token", "dora@example.com")
        assert self.agent_key.startswith("pliuz_ak_"), self.agent_key
        assert self.user_token.startswith("pliuz_ut_"), self.user_token

    # -- process --------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--data-dir", str(self.data_dir), "--config", str(self.config),
             "--listen", f"127.0.0.1:{self.port}"],
            stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"pliuz serve exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"pliuz serve did not become healthy:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def agent_env(self) -> dict[str, str]:
        return {"PLIUZ_API_KEY": self.agent_key, "PLIUZ_BASE_URL": self.base_url}


@contextmanager
def running(tmp: Path, policies: str = POLICIES, *, kill: bool = False) -> Iterator[PliuzServer]:
    """A provisioned, started server, stopped on exit (SIGKILLed with ``kill``)."""
    srv = PliuzServer(tmp, policies)
    srv.provision()
    srv.start()
    try:
        yield srv
    finally:
        if kill:
            srv.kill()
        else:
            srv.stop()


class Human:
    """The approver side, over plain HTTP with a user token (as the inbox would)."""

    def __init__(self, server: PliuzServer, token: str | None = None) -> None:
        self.server = server
        self.token = token or server.user_token

    def _http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def list(self, **params: Any) -> list[dict[str, Any]]:
        with self._http() as h:
            r = h.get("/api/v1/approvals", params={"limit": 200, **params})
            r.raise_for_status()
            return list(r.json()["items"])

    def get(self, approval_id: str) -> dict[str, Any]:
        with self._http() as h:
            r = h.get(f"/api/v1/approvals/{approval_id}")
            r.raise_for_status()
            return dict(r.json())

    def wait_pending(
        self, n: int = 1, *, tool: str | None = None, timeout: float = 30.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
        session: str | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Wait until at least ``n`` pending approvals match (by tool, session, predicate)."""
        deadline = time.monotonic() + timeout
        params: dict[str, Any] = {"status": "pending"}
        if tool:
            params["tool"] = tool
        while time.monotonic() < deadline:
            try:
                items = [
                    a for a in self.list(**params)
                    if (session is None or a.get("session_id") == session)
                    and (where is None or where(a))
                ]  # fmt: skip
            except httpx.TransportError:
                items = []
            if len(items) >= n:
                return items
            time.sleep(0.1)
        raise AssertionError(f"expected {n} pending approvals (tool={tool}); server log:\n"
                             f"{self.server.log_tail()}")  # fmt: skip

    def decide(self, approval_id: str, decision: str, *, reason: str | None = None,
               final_args: dict[str, Any] | None = None,
               args_digest: str | None = None) -> httpx.Response:  # fmt: skip
        """Decide as someone who just reviewed the request: without ``args_digest``
        the approval's current one is fetched and sent."""
        if args_digest is None:
            with self._http() as h:
                r = h.get(f"/api/v1/approvals/{approval_id}")
            # A digest that matches nothing when this user cannot see it: the
            # server's own authorisation answer is what the caller gets.
            args_digest = str(r.json()["args_digest"]) if r.status_code == 200 else "0" * 64
        body: dict[str, Any] = {"decision": decision, "args_digest": args_digest}
        if reason is not None:
            body["reason"] = reason
        if final_args is not None:
            body["final_args"] = final_args
        with self._http() as h:
            return h.post(f"/api/v1/approvals/{approval_id}/decision", json=body)

    def decide_ok(self, approval_id: str, decision: str, **kw: Any) -> dict[str, Any]:
        r = self.decide(approval_id, decision, **kw)
        assert r.status_code == 200, (
            f"decision {decision} on {approval_id}: {r.status_code} {r.text}"
        )
        return dict(r.json())

    def in_background(self, fn: Callable[[], None]) -> threading.Thread:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # surfaced by join_checked
                errors.append(exc)

        t = threading.Thread(target=run, daemon=True)
        t.errors = errors  # type: ignore[attr-defined]
        t.start()
        return t


def join_checked(t: threading.Thread, timeout: float = 60.0) -> None:
    t.join(timeout)
    assert not t.is_alive(), "human thread did not finish"
    errors: list[BaseException] = t.errors  # type: ignore[attr-defined]
    if errors:
        raise errors[0]
