"""The gated decorator's control flow, against the in-memory fake (see test_server_gated.py
for the same against the real server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fakes import FakePliuz

import pliuz
from pliuz import AsyncPliuzClient, PliuzClient, gated

KEY = "pliuz_ak_test"


def sync_client(fake: FakePliuz) -> PliuzClient:
    return PliuzClient(KEY, "http://t", http_client=httpx.Client(transport=fake.transport()))


def approving_fake() -> FakePliuz:
    """A fake server that approves every request as it is created."""
    fake = FakePliuz()
    fake.auto = "approved"
    return fake


def recorded_tool(
    client: PliuzClient, session_id: str | None = None
) -> tuple[Callable[[int], int], list[int]]:
    """A gated ``f(a) -> a`` and the list of the arguments it really ran with."""
    ran: list[int] = []

    @gated(client=client, session_id=session_id)
    def f(a: int) -> int:
        ran.append(a)
        return a

    return f, ran


def bodies(fake: FakePliuz, suffix: str = "/approvals") -> list[dict[str, Any]]:
    pliuz.flush_reports()  # execution reports are sent in the background
    return [
        json.loads(r.content)
        for r in fake.requests
        if r.method == "POST" and r.url.path.endswith(suffix)
    ]


def test_sync_approve_with_edit_restores_redacted_values() -> None:
    fake = FakePliuz()
    calls: list[tuple[Any, ...]] = []

    @gated(policy="refunds", redact=["card.number"], client=sync_client(fake), session_id="s1")
    def refund(order_id: str, amount_cents: int, card: dict[str, str]) -> str:
        calls.append((order_id, amount_cents, card))
        return f"refunded {amount_cents}"

    def approver(a: dict[str, Any]) -> None:
        edited = {**a["tool_args"], "amount_cents": 100}
        edited["card"] = {**edited["card"], "number": "0000"}  # approver cannot override
        fake.decide(a["id"], "approved", final_args=edited)

    fake.on_get = approver
    assert refund("A-1", 5000, card={"number": "4111", "cvc": "1"}) == "refunded 100"
    assert calls == [("A-1", 100, {"number": "4111", "cvc": "1"})]
    (create,) = bodies(fake)
    assert "4111" not in json.dumps(create)
    assert create["tool_args"]["card"]["number"] == pliuz.REDACTED
    assert create["policy"] == "refunds" and create["session_id"] == "s1"
    assert create["tool_schema"]["properties"]["amount_cents"]["type"] == "integer"
    claim, report = bodies(fake, "/execution")
    assert claim["outcome"] == "started" and claim["claim_id"]
    assert report["outcome"] == "success" and report["output_excerpt"] == "refunded 100"
    assert report["claim_id"] == claim["claim_id"]


def test_edit_that_does_not_bind_refuses_to_run() -> None:
    fake = FakePliuz()
    f, ran = recorded_tool(sync_client(fake))

    fake.on_get = lambda ap: fake.decide(ap["id"], "approved", final_args={"a": 1, "zzz": 2})
    with pytest.raises(pliuz.PliuzArgumentsError):
        f(1)
    assert ran == []
    claim, report = bodies(fake, "/execution")
    assert claim["outcome"] == "started" and report["claim_id"] == claim["claim_id"]
    assert report["outcome"] == "error" and report["output_excerpt"].startswith("not run")


def test_rejection_raises_with_reason_and_replay_of_executed_never_runs_again() -> None:
    fake = FakePliuz()
    f, ran = recorded_tool(sync_client(fake))

    fake.on_get = lambda ap: fake.decide(ap["id"], "rejected", reason="not today")
    with pytest.raises(pliuz.PliuzRejectedError) as info:
        f(1)
    assert info.value.reason == "not today" and ran == []

    fake.on_get = lambda ap: fake.decide(ap["id"], "approved")
    assert f(2) == 2 and ran == [2]
    with pytest.raises(pliuz.PliuzAlreadyExecutedError) as executed:
        f(2)  # same key: re-attaches to the executed request
    assert ran == [2]
    assert executed.value.approval is not None and executed.value.approval.is_replay


def test_a_call_that_re_attached_as_its_own_report_landed_does_not_run_again() -> None:
    """The interleaving that made the test above flaky, made certain: the second call's
    create is answered "executing", then the first call's background report lands, so the
    second call re-reads a request that is executed by then."""
    fake = FakePliuz()
    fake.on_get = lambda ap: fake.decide(ap["id"], "approved")
    report_may_land = threading.Event()
    replays_seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/execution") and b'"success"' in request.content:
            report_may_land.wait(5)  # the report of the first call waits for the replay
        response = fake.handle(request)
        if request.url.path.endswith("/approvals") and response.json()["is_replay"]:
            replays_seen.append(response.json()["status"])
            report_may_land.set()
            pliuz.flush_reports(timeout=5)  # landed before the second call goes on
        return response

    client = PliuzClient(
        KEY, "http://t", http_client=httpx.Client(transport=httpx.MockTransport(handle))
    )
    f, ran = recorded_tool(client)
    assert f(2) == 2
    with pytest.raises(pliuz.PliuzAlreadyExecutedError):
        f(2)
    assert ran == [2] and replays_seen == ["executing"]
    (approval,) = fake.approvals.values()
    assert approval["status"] == "executed"


def test_errors_of_the_function_are_reported_and_propagate() -> None:
    fake = approving_fake()

    @gated(client=sync_client(fake))
    def boom() -> None:
        raise RuntimeError("kaput")

    with pytest.raises(RuntimeError, match="kaput"):
        boom()
    claim, report = bodies(fake, "/execution")
    assert claim["outcome"] == "started" and report["claim_id"] == claim["claim_id"]
    assert report["outcome"] == "error" and "kaput" in report["output_excerpt"]


@pytest.mark.asyncio
async def test_async_function_and_variadic_signature() -> None:
    fake = FakePliuz()
    client = AsyncPliuzClient(
        KEY, "http://t", http_client=httpx.AsyncClient(transport=fake.transport())
    )
    seen: list[Any] = []

    @gated(client=client, tool_name="send", timeout_s=5)
    async def send(to: str, *cc: str, urgent: bool = False, **headers: str) -> str:
        seen.append((to, cc, urgent, headers))
        return "sent"

    fake.on_get = lambda ap: fake.decide(
        ap["id"], "approved", final_args={**ap["tool_args"], "urgent": True}
    )
    assert await send("a@x", "b@x", subject="hi") == "sent"
    assert seen == [("a@x", ("b@x",), True, {"subject": "hi"})]
    (create,) = bodies(fake)
    assert create["tool_name"] == "send"
    assert create["tool_args"] == {"to": "a@x", "cc": ["b@x"], "urgent": False, "subject": "hi"}


def test_client_kind_must_match_function_kind() -> None:
    with pytest.raises(TypeError):

        @gated(client=PliuzClient(KEY, "http://t"))
        async def f() -> None: ...


@pytest.mark.asyncio
async def test_concurrent_identical_calls_run_once() -> None:
    import asyncio

    fake = approving_fake()
    ran: list[int] = []

    @gated(client=AsyncPliuzClient(KEY, "http://t", http_client=httpx.AsyncClient(
        transport=fake.transport())), session_id="same")  # fmt: skip
    async def f(a: int) -> int:
        await asyncio.sleep(0.05)
        ran.append(a)
        return a

    results = await asyncio.gather(f(1), f(1), return_exceptions=True)
    assert ran == [1]
    assert results.count(1) == 1
    assert sum(isinstance(r, pliuz.PliuzAlreadyExecutedError) for r in results) == 1


def test_concurrent_identical_sync_calls_run_once() -> None:
    import concurrent.futures
    import time

    fake = approving_fake()
    ran: list[int] = []

    @gated(client=sync_client(fake), session_id="same")
    def f(a: int) -> int:
        time.sleep(0.05)
        ran.append(a)
        return a

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(f, 1) for _ in range(4)]
        outcomes = [fut.exception() or fut.result() for fut in futures]
    assert ran == [1]
    assert sum(isinstance(o, pliuz.PliuzAlreadyExecutedError) for o in outcomes) == 3


class _Paused(Exception):
    """Stands in for a LangGraph interrupt raised inside a tool body."""


def test_a_body_that_paused_keeps_its_claim_for_its_rerun_in_this_process() -> None:
    from pliuz._gate import prepare_call, run_gated_sync

    fake = approving_fake()
    client = sync_client(fake)
    prepared = prepare_call("t", {"a": 1}, secret=KEY)
    calls: list[dict[str, Any]] = []

    def body(args: dict[str, Any]) -> str:
        calls.append(args)
        if len(calls) == 1:
            raise _Paused  # not an outcome: nothing is reported, the claim stays held
        return "done"

    with pytest.raises(_Paused):
        run_gated_sync(client, prepared, body, timeout_s=None, unreported=(_Paused,))
    (approval,) = fake.approvals.values()
    assert approval["status"] == "executing"
    assert run_gated_sync(client, prepared, body, timeout_s=None, unreported=(_Paused,)) == "done"
    pliuz.flush_reports()
    assert approval["status"] == "executed" and calls == [{"a": 1}, {"a": 1}]
    claims = [b["claim_id"] for b in bodies(fake, "/execution") if b["outcome"] == "started"]
    assert len(claims) == 2 and claims[0] == claims[1]
    # Finished: a further call is "already executed", not a third run.
    with pytest.raises(pliuz.PliuzAlreadyExecutedError):
        run_gated_sync(client, prepared, body, timeout_s=None, unreported=(_Paused,))
    assert len(calls) == 2


def test_a_claim_held_elsewhere_means_outcome_unknown_and_no_run() -> None:
    fake = approving_fake()
    f, ran = recorded_tool(sync_client(fake), "elsewhere")

    # Another process claims the approved request first (and never reports).
    fake.on_get = None
    real_create = fake._create

    def create_then_claim(body: dict[str, Any]) -> httpx.Response:
        response = real_create(body)
        approval = fake.approvals[response.json()["id"]]
        fake._execution(approval, {"outcome": "started", "claim_id": "other-process"})
        return httpx.Response(response.status_code, json=approval)

    fake._create = create_then_claim  # type: ignore[method-assign]
    with pytest.raises(pliuz.PliuzOutcomeUnknownError) as info:
        f(1)
    assert ran == [] and "outcome unknown — check before retrying" in str(info.value)
    assert not [b for b in bodies(fake, "/execution")]  # this caller never even claimed


def test_a_lost_claim_race_means_no_run_and_says_why() -> None:
    fake = approving_fake()
    f, ran = recorded_tool(sync_client(fake), "race")

    real_create = fake._create

    def create_then_lose_the_race(body: dict[str, Any]) -> httpx.Response:
        response = real_create(body)
        approval = fake.approvals[response.json()["id"]]
        # Between our create and our claim, another process claims it.
        fake._execution(approval, {"outcome": "started", "claim_id": "winner"})
        answer = {**approval, "status": "approved", "execution": None}
        return httpx.Response(response.status_code, json=answer)

    fake._create = create_then_lose_the_race  # type: ignore[method-assign]
    with pytest.raises(pliuz.PliuzOutcomeUnknownError) as info:
        f(1)
    assert ran == [] and info.value.approval is not None
    assert info.value.approval.status == "executing"  # re-read after the 409
    (claim,) = bodies(fake, "/execution")
    assert claim["outcome"] == "started" and claim["claim_id"] != "winner"

    # If the winner has finished by then, the loser says so instead.
    def create_then_lose_to_a_finished_run(body: dict[str, Any]) -> httpx.Response:
        response = real_create(body)
        approval = fake.approvals[response.json()["id"]]
        fake._execution(approval, {"outcome": "started", "claim_id": "winner"})
        fake._execution(approval, {"outcome": "success", "claim_id": "winner"})
        answer = {**approval, "status": "approved", "execution": None}
        return httpx.Response(response.status_code, json=answer)

    fake._create = create_then_lose_to_a_finished_run  # type: ignore[method-assign]
    with pytest.raises(pliuz.PliuzAlreadyExecutedError):
        f(2)
    assert ran == []


def _lose_first_claim_answer(fake: FakePliuz) -> None:
    """The first claim lands on the server but its answer never arrives."""
    real = fake._execution
    lost: list[bool] = []

    def execution(approval: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
        response = real(approval, body)
        if body["outcome"] == "started" and not lost:
            lost.append(True)
            raise httpx.ReadError("connection reset after the claim was stored")
        return response

    fake._execution = execution  # type: ignore[method-assign]


def test_a_claim_whose_answer_was_lost_is_retried_with_the_same_claim_id(
    fast_backoff: None,
) -> None:
    fake = approving_fake()
    _lose_first_claim_answer(fake)
    f, ran = recorded_tool(sync_client(fake), "lost-answer")

    assert f(1) == 1 and ran == [1]
    claims = [b["claim_id"] for b in bodies(fake, "/execution") if b["outcome"] == "started"]
    assert len(claims) == 2 and claims[0] == claims[1]
    (approval,) = fake.approvals.values()
    pliuz.flush_reports()
    assert approval["status"] == "executed"


def test_an_unanswered_claim_is_re_presented_by_the_next_call_in_this_process() -> None:
    fake = approving_fake()
    _lose_first_claim_answer(fake)
    client = PliuzClient(
        KEY, "http://t", http_client=httpx.Client(transport=fake.transport()), max_retries=0
    )
    f, ran = recorded_tool(client, "unanswered")

    with pytest.raises(pliuz.PliuzConnectionError):
        f(1)  # the claim may have landed: the body does not run
    (approval,) = fake.approvals.values()
    assert ran == [] and approval["status"] == "executing"
    assert f(1) == 1 and ran == [1]  # this process holds the claim: it runs, once
    pliuz.flush_reports()
    assert approval["status"] == "executed"


def claiming_fake() -> FakePliuz:
    """A fake server that approves every request as it is created and claims its execution
    for the create's ``claim_id``, as the real server does."""
    fake = approving_fake()
    fake.claim_on_create = True
    return fake


def test_a_call_claimed_on_create_runs_without_a_claim_request() -> None:
    fake = claiming_fake()
    f, ran = recorded_tool(sync_client(fake), "claimed")

    assert f(1) == 1 and ran == [1]
    (create,) = bodies(fake)
    (report,) = bodies(fake, "/execution")  # no "started": the create was the claim
    assert report["outcome"] == "success" and report["claim_id"] == create["claim_id"]
    (approval,) = fake.approvals.values()
    assert approval["status"] == "executed"
    with pytest.raises(pliuz.PliuzAlreadyExecutedError):
        f(1)
    assert ran == [1]


def test_a_call_claimed_on_create_that_cannot_run_reports_that_it_did_not() -> None:
    fake = claiming_fake()
    ran: list[dict[str, str]] = []

    @gated(redact=["card.number"], client=sync_client(fake), session_id="lost-card")
    def pay(card: dict[str, str]) -> str:
        ran.append(card)
        return "paid"

    real_create = fake._create

    def create_without_the_card(body: dict[str, Any]) -> httpx.Response:
        response = real_create(body)
        approval = fake.approvals[response.json()["id"]]
        approval["final_args"] = {"card": []}  # the card number has nowhere to go back to
        return httpx.Response(response.status_code, json=approval)

    fake._create = create_without_the_card  # type: ignore[method-assign]
    with pytest.raises(pliuz.PliuzArgumentsError):
        pay({"number": "4111"})
    assert ran == []
    (create,) = bodies(fake)
    (report,) = bodies(fake, "/execution")
    assert report["outcome"] == "error" and report["output_excerpt"].startswith("not run")
    assert report["claim_id"] == create["claim_id"]
    (approval,) = fake.approvals.values()
    assert approval["status"] == "executed"  # not left "outcome unknown"


def test_a_create_whose_answer_was_lost_is_re_presented_with_its_claim_id() -> None:
    fake = claiming_fake()
    real_create = fake._create
    lost: list[bool] = []

    def create_then_lose_the_answer(body: dict[str, Any]) -> httpx.Response:
        response = real_create(body)
        if not lost:
            lost.append(True)
            raise httpx.ReadError("connection reset after the create was stored")
        return response

    fake._create = create_then_lose_the_answer  # type: ignore[method-assign]
    client = PliuzClient(
        KEY, "http://t", http_client=httpx.Client(transport=fake.transport()), max_retries=0
    )
    f, ran = recorded_tool(client, "unanswered-create")

    with pytest.raises(pliuz.PliuzConnectionError):
        f(1)  # stored and claimed, but this call never heard: the body does not run
    (approval,) = fake.approvals.values()
    assert ran == [] and approval["status"] == "executing"
    assert f(1) == 1 and ran == [1]  # the replay shows this process's own claim: it runs, once
    first, second = bodies(fake)
    assert first["claim_id"] == second["claim_id"]
    pliuz.flush_reports()
    assert approval["status"] == "executed"
