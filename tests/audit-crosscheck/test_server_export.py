"""Cross-check against the real server: run `pliuz serve`, make an approval,
export the log with `pliuz audit export`, fetch a receipt over HTTP, and let
the independent Python verifier check both with the key from
`pliuz audit key`.

The binary is `$PLIUZ_BIN` when set, otherwise built with
`cargo build -p pliuz` (honouring `CARGO_TARGET_DIR`).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from verifier_cli import check_with_trusted_keys, export_without_entry

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent

CONFIG = HERE / "server_config.toml"


def pliuz_bin() -> pathlib.Path:
    given = os.environ.get("PLIUZ_BIN")
    if given:
        return pathlib.Path(given)
    subprocess.run(["cargo", "build", "--quiet", "-p", "pliuz"], cwd=REPO, check=True)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return target / "debug" / "pliuz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pliuz:
    def __init__(self, root: pathlib.Path):
        self.bin = pliuz_bin()
        self.root = root
        self.data = root / "data"
        self.config = root / "pliuz.toml"
        self.config.write_text(CONFIG.read_text())
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict:
        env = os.environ.copy()
        env.pop("PLIUZ_AUDIT_SIGNING_KEY", None)
        env["PLIUZ_ADMIN_PASSWORD"] = "admin-password-123"
        return env

    def cli(self, *args: str, stdin: str | None = None) -> str:
        r = subprocess.run(
            [
                str(self.bin),
                "--data-dir",
                str(self.data),
                "--config",
                str(self.config),
                *args,
            ],
            input=stdin,
            check=False,
            capture_output=True,
            text=True,
            env=self.env(),
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def start(self) -> None:
        # The child keeps its own copy of the log file descriptor.
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.bin),
                    "--data-dir",
                    str(self.data),
                    "--config",
                    str(self.config),
                    "serve",
                    "--listen",
                    f"127.0.0.1:{self.port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=self.env(),
            )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            assert self.proc.poll() is None, (self.root / "server.log").read_text()
            time.sleep(0.05)
        raise AssertionError("pliuz did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def request(
        self, method: str, path: str, token: str, body: dict | None = None
    ) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


@pytest.fixture(scope="module")
def server_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("pliuz-server")
    p = Pliuz(root)
    agent = p.cli("agents", "create", "bot")
    p.cli(
        "users",
        "create",
        "fin@example.com",
        "--role",
        "approver",
        "--group",
        "finance",
        "--password-stdin",
        stdin="correct-horse-battery\n",
    )
    approver = p.cli("users", "token", "fin@example.com")
    p.start()
    try:
        ids = []
        digests = []
        for amount in (500, 1200, 9900):
            status, body = p.request(
                "POST",
                "/api/v1/approvals",
                agent,
                {
                    "tool_name": "issue_refund",
                    "tool_args": {"order_id": "A-1", "amount_cents": amount},
                },
            )
            assert status == 201, body
            ids.append(json.loads(body)["id"])
            digests.append(json.loads(body)["args_digest"])
        # At the API's limits (docs/limits.md): nesting 32 levels deep, and
        # 600 KB of arguments whose decision entry (original + final
        # arguments) is over 1 MiB. Whatever the server accepts, every
        # verifier must read.
        deep: object = 1
        for _ in range(30):
            deep = {"a": deep}
        for args in ({"deep": deep}, {"note": "x" * 600_000}):
            status, body = p.request(
                "POST",
                "/api/v1/approvals",
                agent,
                {"tool_name": "issue_refund", "tool_args": args},
            )
            assert status == 201, body
            status, body = p.request(
                "POST",
                f"/api/v1/approvals/{json.loads(body)['id']}/decision",
                approver,
                {"decision": "approve", "args_digest": json.loads(body)["args_digest"]},
            )
            assert status == 200, body
        status, body = p.request(
            "POST",
            f"/api/v1/approvals/{ids[1]}/decision",
            approver,
            {
                "decision": "edit",
                # The arguments reviewed: those the request was created with.
                "args_digest": digests[1],
                "final_args": {"order_id": "A-1", "amount_cents": 1000},
                "reason": "cap",
            },
        )
        assert status == 200, body
        status, receipt = p.request("GET", f"/api/v1/approvals/{ids[1]}/receipt", agent)
        assert status == 200, receipt
        (root / "receipt.json").write_bytes(receipt)
    finally:
        p.stop()
    (root / "trusted_keys.txt").write_text(p.cli("audit", "key") + "\n")
    p.cli("audit", "export", "--out", str(root / "export"))
    return root


def test_server_export_verifies_independently(server_export):
    r = check_with_trusted_keys("export", server_export / "export", server_export)
    assert r.returncode == 0, r.stderr
    assert "export OK" in r.stdout


def test_server_receipt_verifies_independently(server_export):
    r = check_with_trusted_keys(
        "receipt", server_export / "receipt.json", server_export
    )
    assert r.returncode == 0, r.stderr


def test_server_export_with_a_deleted_line_fails(server_export, tmp_path):
    export = export_without_entry(server_export, tmp_path, 2)
    r = check_with_trusted_keys("export", export, server_export)
    assert r.returncode == 1
    assert "entry 2: index field says 3" in r.stderr
