"""Client behaviour against an in-memory fake transport: config, error mapping, retries, waits."""

from __future__ import annotations

import httpx
import pytest
from fakes import FakePliuz, problem

import pliuz
from pliuz import AsyncPliuzClient, PliuzClient

KEY = "pliuz_ak_test"


def client_for(fake: FakePliuz, **kw: object) -> PliuzClient:
    http = httpx.Client(transport=fake.transport())
    return PliuzClient(KEY, "http://pliuz.test", http_client=http, **kw)  # type: ignore[arg-type]


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLIUZ_API_KEY", "pliuz_ak_env")
    monkeypatch.delenv("PLIUZ_BASE_URL", raising=False)
    c = PliuzClient()
    assert c.api_key == "pliuz_ak_env" and c.base_url == "http://127.0.0.1:8700"
    monkeypatch.setenv("PLIUZ_BASE_URL", "http://example.invalid:9/")
    assert PliuzClient().base_url == "http://example.invalid:9"
    assert PliuzClient("k", "http://x").api_key == "k"
    monkeypatch.delenv("PLIUZ_API_KEY")
    with pytest.raises(pliuz.PliuzError, match="PLIUZ_API_KEY"):
        PliuzClient()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "unauthorized", pliuz.PliuzAuthenticationError),
        (403, "forbidden", pliuz.PliuzForbiddenError),
        (404, "not_found", pliuz.PliuzNotFoundError),
        (409, "invalid_transition", pliuz.PliuzConflictError),
        (409, "already_voted", pliuz.PliuzConflictError),
        (409, "idempotency_conflict", pliuz.PliuzIdempotencyConflictError),
        (400, "malformed_json", pliuz.PliuzValidationError),
        (413, "payload_too_large", pliuz.PliuzValidationError),
        (415, "unsupported_media_type", pliuz.PliuzValidationError),
        (422, "validation", pliuz.PliuzValidationError),
        (422, "no_matching_policy", pliuz.PliuzNoMatchingPolicyError),
        (422, "unknown_policy", pliuz.PliuzUnknownPolicyError),
        (422, "decision_not_allowed", pliuz.PliuzValidationError),
        (422, "schema_violation", pliuz.PliuzValidationError),
        (429, "rate_limited", pliuz.PliuzRateLimitError),
        (500, "internal", pliuz.PliuzServerError),
        (503, "unavailable", pliuz.PliuzServerError),
        (418, "something_new", pliuz.PliuzAPIError),
    ],
)
def test_problem_codes_map_to_typed_errors(status: int, code: str, cls: type) -> None:
    fake = FakePliuz()
    fake.inject = [problem(status, code, detail="what to fix", errors=[{"field": "f"}])] * 5
    with client_for(fake, max_retries=0) as c, pytest.raises(cls) as info:
        c.cancel_approval("x")
    err = info.value
    assert isinstance(err, pliuz.PliuzError) and type(err) is cls
    assert err.status == status and err.code == code and err.detail == "what to fix"
    assert err.errors == [{"field": "f"}]


def test_unknown_body_maps_by_status_and_retry_after() -> None:
    fake = FakePliuz()
    fake.inject = [
        httpx.Response(502, text="bad gateway"),
        httpx.Response(429, json={"code": "rate_limited"}, headers={"retry-after": "3"}),
    ]
    with client_for(fake, max_retries=0) as c:
        with pytest.raises(pliuz.PliuzServerError):
            c.get_approval("x")
        with pytest.raises(pliuz.PliuzRateLimitError) as info:
            c.get_approval("x")
        assert info.value.retry_after == 3.0


def test_gets_are_retried_but_unkeyed_creates_are_not(fast_backoff: None) -> None:
    fake = FakePliuz()
    with client_for(fake) as c:
        a = c.create_approval("t", {"x": 1}, idempotency_key="k1")
        fake.inject = [httpx.ConnectError("down"), problem(503, "unavailable")]
        assert c.get_approval(a.id).id == a.id
        fake.inject = [httpx.ConnectError("down")]
        with pytest.raises(pliuz.PliuzConnectionError):
            c.create_approval("t", {"x": 2})
        fake.inject = [httpx.ConnectError("down"), problem(500, "internal")]
        again = c.create_approval("t", {"x": 1}, idempotency_key="k1")
        assert again.id == a.id and again.is_replay
        fake.inject = [httpx.ConnectError("down")] * 10
        with pytest.raises(pliuz.PliuzConnectionError):
            c.get_approval(a.id)  # gives up after max_retries


def test_wait_for_decision_survives_outages_and_returns_the_decision(fast_backoff: None) -> None:
    fake = FakePliuz()
    with client_for(fake) as c:
        a = c.create_approval("t", {"x": 1})
        polls = {"n": 0}

        def on_get(approval: dict[str, object]) -> None:
            polls["n"] += 1
            if polls["n"] == 3:
                fake.decide(a.id, "rejected", reason="too much")

        fake.on_get = on_get
        fake.inject = [httpx.ConnectError("restarting")] * 4 + [problem(503, "unavailable")]
        settled = c.wait_for_decision(a, timeout=30)
        assert settled.status == "rejected" and settled.reason == "too much"
        waits = [r.url.params.get("wait") for r in fake.requests if r.method == "GET"]
        assert all(w is not None and 1 <= int(w) <= 60 for w in waits)
        with pytest.raises(pliuz.PliuzRejectedError) as info:
            pliuz.raise_for_outcome(settled)
        assert info.value.reason == "too much"


def test_wait_for_decision_times_out() -> None:
    fake = FakePliuz()
    with client_for(fake) as c:
        a = c.create_approval("t", {"x": 1})
        with pytest.raises(pliuz.PliuzTimeoutError) as info:
            c.wait_for_decision(a.id, timeout=0.6)
        assert info.value.approval is not None and info.value.approval.status == "pending"


@pytest.mark.asyncio
async def test_async_client_twin(fast_backoff: None) -> None:
    fake = FakePliuz()
    http = httpx.AsyncClient(transport=fake.transport())
    async with AsyncPliuzClient(KEY, "http://pliuz.test", http_client=http) as c:
        a = await c.create_approval("t", {"x": 1}, idempotency_key="k")
        fake.inject = [httpx.ReadTimeout("slow")]
        fake.on_get = lambda ap: fake.decide(a.id, "approved")
        settled = await c.wait_for_decision(a.id, timeout=10)
        assert settled.status == "approved" and settled.final_args == {"x": 1}
        with pytest.raises(pliuz.PliuzConflictError) as unclaimed:
            await c.report_execution(a.id, "success")
        assert unclaimed.value.code == "execution_not_claimed"
        claimed = await c.claim_execution(a.id)
        assert claimed.status == "executing" and claimed.execution is not None
        claim_id = claimed.execution.claim_id
        assert claim_id and claimed.execution.outcome is None
        done = await c.report_execution(
            a.id, "success", claim_id=claim_id, latency_ms=3, output_excerpt="ok"
        )
        assert done.status == "executed" and done.execution is not None
        assert done.execution.outcome == "success"
        with pytest.raises(pliuz.PliuzConflictError) as mismatch:
            await c.report_execution(a.id, "success", claim_id="someone-else")
        assert mismatch.value.code == "claim_mismatch"
        with pytest.raises(pliuz.PliuzNotFoundError):
            await c.get_approval("nope")
    await http.aclose()


def test_wait_without_timeout_is_bounded_by_expiry_when_unreachable(
    fast_backoff: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pliuz import _client

    monkeypatch.setattr(_client, "EXPIRY_GRACE_S", 0.3)
    fake = FakePliuz()
    with client_for(fake) as c:
        a = c.create_approval("t", {"x": 1})
        fake.approvals[a.id]["expires_at"] = "2000-01-01T00:00:00Z"
        stale = c.get_approval(a.id)
        fake.inject = [httpx.ConnectError("down")] * 10_000
        with pytest.raises(pliuz.PliuzConnectionError):
            c.wait_for_decision(stale)  # fails closed instead of waiting forever
        fake.inject = []
        with pytest.raises(pliuz.PliuzTimeoutError):
            c.wait_for_decision(
                stale
            )  # reachable but never settled: a timeout, not a network error


def test_unexpected_response_shape_is_a_pliuz_error() -> None:
    fake = FakePliuz()
    fake.inject = [httpx.Response(200, json={"id": "x", "status": "escalated", "tool_name": "t"})]
    with client_for(fake) as c, pytest.raises(pliuz.PliuzError, match="unexpected response"):
        c.get_approval("x")


def test_a_create_that_raced_an_identical_one_is_retried_and_re_attaches() -> None:
    fake = FakePliuz()
    c = client_for(fake)
    first = c.create_approval("t", {"x": 1}, idempotency_key="same")
    # Another process created the same request at the same moment: the server says so.
    fake.inject = [
        problem(409, "concurrent_create", "created at the same moment; retry to get it"),
        problem(409, "invalid_transition", "a request with this idempotency_key was created "
                "at the same moment; retry to get it"),  # older servers' wording
    ]  # fmt: skip
    again = c.create_approval("t", {"x": 1}, idempotency_key="same")
    assert again.id == first.id and again.is_replay
    assert len([r for r in fake.requests if r.method == "POST"]) == 4
    # Without an idempotency key nothing identifies the other request: not retried.
    fake.inject = [problem(409, "concurrent_create")]
    with pytest.raises(pliuz.PliuzConflictError) as info:
        c.create_approval("t", {"x": 2})
    assert info.value.code == "concurrent_create"
    # Other conflicts are not retried either.
    fake.inject = [problem(409, "idempotency_conflict")]
    with pytest.raises(pliuz.PliuzIdempotencyConflictError):
        c.create_approval("t", {"x": 1}, idempotency_key="same")


def test_every_error_is_exported_by_the_package() -> None:
    # `pliuz` re-exports `errors.__all__`: an error missing there is missing from `pliuz`.
    from pliuz import errors

    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, errors.PliuzError)
        and value.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)
    assert defined <= set(pliuz.__all__)
    assert all(getattr(pliuz, name) is getattr(errors, name) for name in defined)
