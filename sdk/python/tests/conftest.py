from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pliuz import _retry  # noqa: E402


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make retry backoff near-instant for unit tests."""
    monkeypatch.setattr(_retry, "INITIAL_BACKOFF_S", 0.001)
    orig = _retry.backoff_delay
    monkeypatch.setattr(
        _retry, "backoff_delay", lambda attempt, **kw: orig(attempt, initial=0.001, cap=0.01)
    )
    yield
