from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pliuz import _retry


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make retry backoff near-instant for unit tests."""
    monkeypatch.setattr(_retry, "INITIAL_BACKOFF_S", 0.001)
    orig = _retry.backoff_delay
    monkeypatch.setattr(
        _retry, "backoff_delay", lambda attempt, **kw: orig(attempt, initial=0.001, cap=0.01)
    )
    yield


# ---------------------------------------------------------------------------
# Real server fixtures
# ---------------------------------------------------------------------------

from server import Human, PliuzServer, config_text, running  # noqa: E402


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PliuzServer]:
    """One shared ``pliuz serve`` for the tests that do not restart it."""
    with running(tmp_path_factory.mktemp("pliuz")) as srv:
        yield srv


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[PliuzServer]:
    """A server of this test's own (to kill and restart)."""
    with running(tmp_path, kill=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def claude_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PliuzServer]:
    """A server with the Claude Code tools' policies (``fixtures/claude.toml``)."""
    with running(tmp_path_factory.mktemp("pliuz-claude"), config_text("claude")) as srv:
        yield srv


@pytest.fixture
def human(server: PliuzServer) -> Human:
    return Human(server)


@pytest.fixture
def agent_env(server: PliuzServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = server.agent_env()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env
