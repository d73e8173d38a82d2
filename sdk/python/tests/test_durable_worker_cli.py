"""`python -m pliuz.worker` refuses a bad target with a clear message (no server needed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from durable_helpers import HERE


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "expected module:attr"),
        ("no_such_module_xyz:agents", "cannot import 'no_such_module_xyz'"),
        ("durable_worker_target:nothing", "has no attribute 'nothing'"),
        ("durable_worker_target:run_config", "must be an Agent or a list of Agents"),
    ],
)
def test_bad_worker_targets(target: str, message: str) -> None:
    env = {**os.environ, "PLIUZ_API_KEY": "pliuz_ak_unused", "PLIUZ_BASE_URL": "http://127.0.0.1:9"}
    res = subprocess.run(
        [sys.executable, "-m", "pliuz.worker", target], cwd=HERE, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
