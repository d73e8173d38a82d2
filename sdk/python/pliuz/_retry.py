"""Backoff helpers shared by the sync and async clients."""

from __future__ import annotations

import random

from .errors import (
    PliuzAPIError,
    PliuzConnectionError,
    PliuzError,
    PliuzRateLimitError,
    PliuzServerError,
)

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0


def backoff_delay(
    attempt: int, *, initial: float = INITIAL_BACKOFF_S, cap: float = MAX_BACKOFF_S
) -> float:
    """Exponential backoff with "equal jitter": between half and all of ``initial * 2**attempt``."""
    base = min(cap, initial * (2 ** min(attempt, 30)))
    return float(base / 2 + random.uniform(0, base / 2))


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying for a request that is safe to repeat."""
    if isinstance(exc, PliuzConnectionError):
        return True
    if isinstance(exc, (PliuzServerError, PliuzRateLimitError)):
        return True
    # A bare 5xx without a known code is mapped to PliuzServerError already;
    # 408 Request Timeout is the only other transient status.
    return isinstance(exc, PliuzAPIError) and exc.status == 408


def retry_delay(exc: PliuzError, attempt: int) -> float:
    if isinstance(exc, PliuzRateLimitError) and exc.retry_after is not None:
        return max(0.0, min(exc.retry_after, 60.0))
    return backoff_delay(attempt)
