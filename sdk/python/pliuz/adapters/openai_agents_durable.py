"""Durable runs for the OpenAI Agents SDK: pause, store the ``RunState`` in Pliuz, resume anywhere.

No process waits for a human::

    from pliuz.adapters.openai_agents import Runs

    runs = Runs()                                   # PLIUZ_API_KEY / PLIUZ_BASE_URL
    result = await runs.run(agent, "refund order 1042", run_config=config)
    if result.run_id:                               # paused: the requests are in the inbox
        save(result.run_id)                         # ... the process may exit

    # later, in any process (a webhook handler, a worker, another host):
    result = await runs.resume(run_id, agent, run_config=config)
    print(result.final_output)

Under :meth:`Runs.run` each ``@gated_tool`` call raises the SDK's own
interruption (``needs_approval``) and opens its Pliuz request (the same request
as the blocking mode: call id, session, context, redaction, idempotency key);
the serialized ``RunState`` is stored with ``POST /api/v1/runs``.
:meth:`Runs.resume` claims the run (a lease: one resumer at a time), checks the
state's SHA-256 against the digest the audit log recorded (a mismatch is
refused before anything is deserialized), applies each decision — approve →
``state.approve``, reject/expire/cancel → ``state.reject`` with the reviewer's
reason or why it did not run — and continues with ``Runner.run(agent, state)``.
Approved calls run through the same gate as the blocking mode, so edits run
with the approved ``final_args`` (redacted values restored) and a call that was
already executed is never run again.

An ``ask_human_tool`` call pauses the run the same way: it asks its question
once (no waiting in the call), the run is stored with the question's id and
becomes ready when the question is answered or expires; the resumed call
returns the stored answer (or that nobody answered) without asking again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec

from agents import Agent, Runner
from agents.items import ToolApprovalItem
from agents.result import RunResult
from agents.run_state import RunState

from .._client import AsyncPliuzClient
from .._gate import raise_for_outcome
from .._shared import shared_async_client
from ..errors import PliuzConflictError, PliuzDecisionError, PliuzError
from ..models import Approval, Question
from ..runs import (
    DEFAULT_LEASE_S,
    MAX_RUN_WAIT_S,
    AsyncRunsAPI,
    ClaimedRun,
    PliuzLeaseLostError,
    PliuzRunError,
    Run,
)
from ._ask_human import call_id_of
from ._common import message_for, not_run
from ._durable_scope import DurableScope, durable_scope

__all__ = ["Runs", "RunsResult"]

log = logging.getLogger("pliuz")

P = ParamSpec("P")


def _sync_twin(
    method: Callable[P, Coroutine[Any, Any, RunsResult]],
) -> Callable[P, RunsResult]:
    """The synchronous twin of a :class:`Runs` coroutine method (like ``Runner.run_sync``)."""

    def twin(*args: P.args, **kwargs: P.kwargs) -> RunsResult:
        return _sync(method(*args, **kwargs))

    twin.__name__ = twin.__qualname__ = f"{method.__name__}_sync"
    twin.__doc__ = (
        f":meth:`{method.__name__}` from synchronous code (no event loop may be running)."
    )
    return twin


#: Metadata key under which Runs records which starting agent a run belongs to.
AGENT_METADATA_KEY = "pliuz_agent"

#: ... and the session (``RunConfig.group_id``) it was started with.
SESSION_METADATA_KEY = "pliuz_session"

ClientFactory = Callable[[], AsyncPliuzClient]


def _group_id(run_config: Any) -> str | None:
    group_id = getattr(run_config, "group_id", None)
    return group_id if isinstance(group_id, str) and group_id else None


@dataclass
class RunsResult:
    """What :meth:`Runs.run` and :meth:`Runs.resume` return.

    ``run_id`` names the stored run (``None`` when :meth:`Runs.run` finished
    without pausing); ``status`` is the run's status after this call
    (``"waiting"``/``"ready"`` when paused, ``"completed"``, or ``"finished"``
    for a run that never paused); ``approvals`` are the requests it waits on;
    ``questions`` the questions (``ask_human_tool`` calls) it waits on;
    ``final_output`` is set once the agent finished; ``result`` is the SDK's
    :class:`~agents.result.RunResult` of this call (``None`` if nothing ran).
    """

    run_id: str | None
    status: str
    approvals: list[Approval] = field(default_factory=list)
    final_output: Any = None
    result: RunResult | None = None
    run: Run | None = None
    questions: list[Question] = field(default_factory=list)

    @property
    def paused(self) -> bool:
        return self.status in ("waiting", "ready")


def _output_sha256(output: Any) -> str:
    text = output if isinstance(output, str) else json.dumps(output, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _call_id(item: ToolApprovalItem) -> str | None:
    call_id = item.call_id
    return call_id if isinstance(call_id, str) and call_id else None


def _decision_message(approval: Approval) -> str | None:
    """``None`` to approve; else what the model is told instead of the tool's output."""
    if approval.status in ("approved", "executing", "executed"):
        return None  # executing/executed: the gate reports it without running the body again
    try:
        raise_for_outcome(approval)
    except PliuzDecisionError as exc:
        return message_for(approval.tool_name, exc, None)
    return None  # pragma: no cover - raise_for_outcome raises for every other status


class Runs:
    """The durable entry point: :meth:`run`, :meth:`resume`, :meth:`serve`.

    Args:
        client: an :class:`~pliuz.AsyncPliuzClient` (used on the loop it was
            created on) or a zero-argument factory; default: the event loop's
            shared client for ``PLIUZ_API_KEY`` / ``PLIUZ_BASE_URL``.
        lease_seconds: how long a resumer holds a run before another may take
            it over; heartbeats extend it while the run continues.
        heartbeat_every: seconds between heartbeats (default: a third of the lease).

    :meth:`run_sync` and :meth:`resume_sync` are the synchronous twins (an
    ``AsyncPliuzClient`` instance is bound to one event loop: give a factory,
    or nothing, when calling them more than once).
    """

    def __init__(
        self,
        client: AsyncPliuzClient | ClientFactory | None = None,
        *,
        lease_seconds: int = DEFAULT_LEASE_S,
        heartbeat_every: float | None = None,
    ) -> None:
        if not 10 <= lease_seconds <= 3600:
            raise ValueError("lease_seconds must be between 10 and 3600")
        every = heartbeat_every if heartbeat_every is not None else lease_seconds / 3
        if not 0 < every < lease_seconds:
            raise ValueError("heartbeat_every must be positive and shorter than lease_seconds")
        self._client = client
        self.lease_seconds = lease_seconds
        self.heartbeat_every = every

    # -- client ---------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _session(self) -> Any:
        if isinstance(self._client, AsyncPliuzClient):
            yield self._client
            return
        if self._client is None:
            yield await shared_async_client()  # the loop's, kept open for the next run
            return
        client = self._client()
        try:
            yield client
        finally:
            await client.aclose()

    # -- pause ----------------------------------------------------------------

    async def run(
        self,
        agent: Agent[Any],
        input: Any,
        *,
        metadata: dict[str, Any] | None = None,
        **runner_kwargs: Any,
    ) -> RunsResult:
        """Run ``agent`` on ``input``; gated calls pause the run instead of waiting.

        ``runner_kwargs`` go to ``Runner.run`` (``run_config``, ``context``,
        ``max_turns``, ``hooks``, ...). ``metadata`` (a small JSON object) is
        stored with the run.
        """
        async with self._session() as client:
            config = runner_kwargs.get("run_config")
            scope = DurableScope(client=client, run_config=config)

            async def run_once(given: Any) -> RunResult:
                return await Runner.run(agent, given, **runner_kwargs)

            result, state, waiting = await _run_in_scope(
                client, scope, run_once, input, None, "the agent run failed before it paused"
            )
            if state is None:
                return RunsResult(None, "finished", final_output=result.final_output, result=result)
            try:
                approvals, questions = _approvals_for(waiting, scope, {})
                meta = {**(metadata or {}), AGENT_METADATA_KEY: agent.name}
                session = _group_id(config)
                if session is not None:
                    meta[SESSION_METADATA_KEY] = session
                run = await AsyncRunsAPI(client).create(
                    state.to_string(),
                    approval_ids=[a.id for a in approvals],
                    metadata=meta,
                    question_ids=[q.id for q in questions],
                )
            except BaseException:
                await _cancel_created(client, scope, "the paused run could not be stored")
                raise
            log.info(
                "pliuz: run %s paused on %d approval(s) and %d question(s)",
                run.id, len(approvals), len(questions),
            )  # fmt: skip
            return RunsResult(
                run.id, run.status, approvals=approvals, result=result, run=run,
                questions=questions,
            )  # fmt: skip

    # -- resume ---------------------------------------------------------------

    async def resume(
        self,
        run_id: str,
        agent: Agent[Any],
        *,
        wait: bool = True,
        wait_timeout: float | None = None,
        **runner_kwargs: Any,
    ) -> RunsResult:
        """Continue a stored run in this process once its approvals are settled.

        ``agent`` is the run's starting agent (as given to :meth:`run`).
        ``wait=True`` long-polls until the run is ready (at most
        ``wait_timeout`` seconds when given); ``wait=False`` returns at once
        with ``status="waiting"`` when it is not. A run another process is
        resuming raises :class:`~pliuz.PliuzConflictError` (code ``run_claimed``).
        """
        async with self._session() as client:
            api = AsyncRunsAPI(client)
            run = await self._wait_ready(api, run_id, wait, wait_timeout)
            if run.status not in ("ready", "running"):
                return RunsResult(run.id, run.status, run=run)
            claimed = await api.claim(run_id, lease_seconds=self.lease_seconds)
            return await self._continue(client, api, claimed, agent, runner_kwargs)

    async def _wait_ready(
        self, api: AsyncRunsAPI, run_id: str, wait: bool, wait_timeout: float | None
    ) -> Run:
        loop = asyncio.get_running_loop()
        deadline = None if wait_timeout is None else loop.time() + wait_timeout
        run = await api.get(run_id)
        while wait and run.status == "waiting":
            remaining = MAX_RUN_WAIT_S if deadline is None else deadline - loop.time()
            if remaining <= 0:
                break
            run = await api.get(run_id, wait=max(1, min(MAX_RUN_WAIT_S, int(remaining))))
        if run.status in ("completed", "failed"):
            raise PliuzRunError(f"run {run_id} is already {run.status}", run_id=run_id)
        return run

    async def _continue(
        self,
        client: AsyncPliuzClient,
        api: AsyncRunsAPI,
        claimed: ClaimedRun,
        agent: Agent[Any],
        runner_kwargs: dict[str, Any],
    ) -> RunsResult:
        run_id, token = claimed.run.id, claimed.lease_token
        by_call = {a.call_id: a for a in claimed.approvals if a.call_id}
        # Settled questions of ask_human_tool calls: the resumed call returns the answer.
        answers = {c: q for q in claimed.questions if (c := call_id_of(q)) is not None}
        try:
            state = await RunState.from_string(agent, claimed.state)
            for item in state.get_interruptions():
                unreadable = _unreadable_arguments(item)
                if unreadable is not None:  # rejected before the pause; the same again
                    state.reject(item, rejection_message=unreadable)
                    continue
                call_id = _call_id(item)
                if call_id is not None and call_id in answers:
                    state.approve(item)  # the tool body answers from the scope, never asks
                    continue
                approval = by_call.get(call_id) if call_id else None
                if approval is None:
                    raise PliuzRunError(
                        f"run {run_id}: the paused call {item.tool_name} ({call_id}) has no "
                        "Pliuz request among the run's approvals",
                        run_id=run_id,
                    )
                message = _decision_message(approval)
                if message is None:
                    state.approve(item)
                else:
                    state.reject(item, rejection_message=message)
        except Exception as exc:
            # Most likely the wrong starting agent or code that changed: keep the run as it was
            # (stored again, lease released) so a fixed deployment can resume it.
            await _release(api, claimed)
            if isinstance(exc, PliuzRunError):
                raise
            error = f"the stored state could not be restored: {type(exc).__name__}: {exc}"
            raise PliuzRunError(
                f"run {run_id}: {error}; is {agent.name!r} the run's starting agent?",
                run_id=run_id,
            ) from exc

        config = runner_kwargs.get("run_config")
        stored_session = claimed.run.metadata.get(SESSION_METADATA_KEY)
        scope = DurableScope(
            client=client,
            run_config=config,
            session_id=stored_session if isinstance(stored_session, str) else None,
            decided=dict(by_call),
            answers=answers,
        )

        async def run_once(given: Any) -> RunResult:
            return await self._run_with_heartbeat(api, run_id, token, agent, given, runner_kwargs)

        result, paused, waiting = await _run_in_scope(
            client, scope, run_once, state, run_id, "the resumed run failed before it paused again"
        )
        if paused is not None:
            try:
                approvals, questions = _approvals_for(waiting, scope, by_call)
                run = await api.pause(
                    run_id, token, paused.to_string(),
                    approval_ids=[a.id for a in approvals],
                    question_ids=[q.id for q in questions],
                )  # fmt: skip
            except BaseException:
                await _cancel_created(client, scope, "the paused run could not be stored")
                raise
            log.info(
                "pliuz: run %s paused again on %d approval(s) and %d question(s)",
                run_id, len(approvals), len(questions),
            )  # fmt: skip
            return RunsResult(
                run_id, run.status, approvals=approvals, result=result, run=run,
                questions=questions,
            )  # fmt: skip
        run = await api.complete(run_id, token, output_sha256=_output_sha256(result.final_output))
        log.info("pliuz: run %s completed", run_id)
        return RunsResult(
            run_id, run.status, final_output=result.final_output, result=result, run=run
        )

    async def _run_with_heartbeat(
        self,
        api: AsyncRunsAPI,
        run_id: str,
        token: str,
        agent: Agent[Any],
        state: RunState[Any, Any],
        runner_kwargs: dict[str, Any],
    ) -> RunResult:
        runner = asyncio.ensure_future(Runner.run(agent, state, **runner_kwargs))
        beat = asyncio.ensure_future(self._heartbeat(api, run_id, token))
        try:
            await asyncio.wait({runner, beat}, return_when=asyncio.FIRST_COMPLETED)
            if not runner.done():  # the heartbeat ended first: the lease is gone
                runner.cancel()
                with contextlib.suppress(BaseException):
                    await runner
                beat.result()  # raises PliuzLeaseLostError
                raise PliuzLeaseLostError(f"run {run_id}: lease lost", run_id=run_id)
        except asyncio.CancelledError:
            runner.cancel()
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(BaseException):
                await beat
        try:
            return runner.result()
        except Exception as exc:  # the agent run itself failed: record it (best effort)
            await _fail(api, run_id, token, f"{type(exc).__name__}: {exc}")
            raise

    async def _heartbeat(self, api: AsyncRunsAPI, run_id: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_every)
            try:
                await api.heartbeat(run_id, token, lease_seconds=self.lease_seconds)
            except PliuzLeaseLostError:
                raise
            except PliuzError as exc:  # transient: the lease still has time; try again
                log.warning("pliuz: heartbeat of run %s failed: %s", run_id, exc)

    # -- sync twins (like Runner.run_sync) ---------------------------------------

    run_sync = _sync_twin(run)
    resume_sync = _sync_twin(resume)

    # -- worker ---------------------------------------------------------------

    async def serve(
        self,
        agents: Sequence[Agent[Any]],
        *,
        concurrency: int = 4,
        stop: asyncio.Event | None = None,
        poll_wait: int = 30,
        handle_signals: bool = False,
        on_result: Callable[[RunsResult], Awaitable[None] | None] | None = None,
        **runner_kwargs: Any,
    ) -> None:
        """Resume this agent key's ready runs until ``stop`` is set.

        Long-polls ``GET /api/v1/runs?status=ready``, resumes each run with the
        starting agent of the same name (as recorded by :meth:`run`), at most
        ``concurrency`` at a time. Setting ``stop`` (or SIGINT/SIGTERM with
        ``handle_signals=True``) stops taking new runs and returns once the
        runs in progress have finished or paused. ``runner_kwargs`` go to
        every ``Runner.run``.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        by_name: dict[str, Agent[Any]] = {}
        for a in agents:
            if a.name in by_name:
                raise ValueError(f"two agents are named {a.name!r}: runs are matched by name")
            by_name[a.name] = a
        if not by_name:
            raise ValueError("serve needs at least one agent")
        stop = stop or asyncio.Event()
        if handle_signals:
            _install_stop_signals(stop)
        active: dict[str, asyncio.Task[None]] = {}
        unserved: set[str] = set()

        async def resume_one(run: Run, agent: Agent[Any]) -> None:
            try:
                res = await self.resume(run.id, agent, wait=False, **runner_kwargs)
                if on_result is not None:
                    maybe = on_result(res)
                    if maybe is not None:
                        await maybe
            except PliuzConflictError as exc:  # another worker took it, or it changed meanwhile
                log.info("pliuz: run %s skipped: %s", run.id, exc)
            except Exception:
                log.exception("pliuz: resuming run %s failed", run.id)

        async with self._session() as client:
            api = AsyncRunsAPI(client)
            while not stop.is_set():
                free = concurrency - len(active)
                if free <= 0:  # every slot busy: wait for one to free up (or for stop)
                    await _first_of(set(active.values()), stop)
                    continue
                try:
                    runs = await _until_stopped(
                        api.list_runs(status="ready", wait=poll_wait, limit=free), stop
                    )
                except PliuzError as exc:
                    log.warning("pliuz: polling for ready runs failed: %s", exc)
                    await _first_of(set(), stop, timeout=2.0)
                    continue
                started = 0
                for run in runs or []:
                    if run.id in active or run.id in unserved or len(active) >= concurrency:
                        continue
                    agent = _agent_for(run, by_name)
                    if agent is None:
                        unserved.add(run.id)
                        continue
                    task = asyncio.ensure_future(resume_one(run, agent))
                    active[run.id] = task
                    task.add_done_callback(_forget(active, run.id))
                    started += 1
                if runs and not started:  # only runs this worker cannot take: do not spin
                    await _first_of(set(active.values()), stop, timeout=float(poll_wait))
            if active:
                await asyncio.gather(*active.values(), return_exceptions=True)


#: Rounds of "the model sent unreadable arguments, tell it and go on" before giving up.
MAX_LOCAL_ROUNDS = 10


async def _run_in_scope(
    client: AsyncPliuzClient,
    scope: DurableScope,
    run_once: Callable[[Any], Awaitable[RunResult]],
    given: Any,
    run_id: str | None,
    failed: str,
) -> tuple[RunResult, RunState[Any, Any] | None, list[ToolApprovalItem]]:
    """:func:`_run_to_pause` in ``scope``; if it fails, the requests it opened are withdrawn
    (``failed``: why) and a failed request check is named as the cause."""
    try:
        with durable_scope(scope):
            return await _run_to_pause(run_once, given)
    except BaseException as exc:
        await _cancel_created(client, scope, failed)
        _raise_request_failure(scope, exc, run_id)
        raise


async def _run_to_pause(
    run_once: Callable[[Any], Awaitable[RunResult]], given: Any
) -> tuple[RunResult, RunState[Any, Any] | None, list[ToolApprovalItem]]:
    """Run until the agent finishes (state ``None``) or pauses on calls a human must decide.

    A call whose arguments are not a JSON object cannot be approved (the blocking gate
    answers it at once); it is rejected with that reason, and the run goes on by itself
    when nothing else waits.
    """
    result = await run_once(given)
    for _ in range(MAX_LOCAL_ROUNDS):
        if not result.interruptions:
            return result, None, []
        state = result.to_state()
        waiting: list[ToolApprovalItem] = []
        for item in state.get_interruptions():
            unreadable = _unreadable_arguments(item)
            if unreadable is None:
                waiting.append(item)
            else:
                state.reject(item, rejection_message=unreadable)
        if waiting:
            return result, state, waiting
        result = await run_once(state)
    raise PliuzRunError(
        f"the model sent unreadable tool arguments {MAX_LOCAL_ROUNDS} times in a row; giving up"
    )


def _unreadable_arguments(item: ToolApprovalItem) -> str | None:
    """What the model is told about a call whose arguments are not a JSON object, else None."""
    text = item.arguments
    try:
        parsed = json.loads(text) if text and text.strip() else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return None
    return not_run(
        item.tool_name or "the tool",
        "its arguments are not a JSON object (send {} for a call without arguments).",
    )


def _sync(work: Coroutine[Any, Any, RunsResult]) -> RunsResult:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    work.close()
    raise RuntimeError(
        "run_sync/resume_sync cannot be called from a running event loop; await run/resume"
    )


def _forget(
    active: dict[str, asyncio.Task[None]], run_id: str
) -> Callable[[asyncio.Task[None]], None]:
    def forget(_task: asyncio.Task[None]) -> None:
        active.pop(run_id, None)

    return forget


def _agent_for(run: Run, by_name: dict[str, Agent[Any]]) -> Agent[Any] | None:
    name = run.metadata.get(AGENT_METADATA_KEY)
    if isinstance(name, str) and name in by_name:
        return by_name[name]
    if len(by_name) == 1 and not isinstance(name, str):
        return next(iter(by_name.values()))
    log.warning("pliuz: run %s belongs to agent %r, which this worker does not serve", run.id, name)
    return None


def _approvals_for(
    interruptions: Sequence[ToolApprovalItem],
    scope: DurableScope,
    earlier: dict[str, Approval],
) -> tuple[list[Approval], list[Question]]:
    """The Pliuz request (or, for an ``ask_human_tool`` call, the question) of every
    interruption; fail closed if one has neither."""
    out: list[Approval] = []
    questions: list[Question] = []
    seen: set[str] = set()
    for item in interruptions:
        call_id = _call_id(item)
        question = scope.asked.get(call_id) if call_id is not None else None
        if question is not None:
            if question.id not in seen:
                seen.add(question.id)
                questions.append(question)
            continue
        approval = None
        if call_id is not None:
            approval = scope.created.get(call_id) or earlier.get(call_id)
        if approval is None:
            cause = scope.failures.get(call_id) if call_id else None
            why = (
                f"its Pliuz request could not be created: {cause}"
                if cause is not None
                else "it is not gated by Pliuz (wrap the tool with gated_tool) or its "
                "arguments could not be read"
            )
            raise PliuzRunError(
                f"the run paused on {item.tool_name} ({call_id}), but {why}; the run was not stored"
            ) from cause
        if approval.id not in seen:
            seen.add(approval.id)
            out.append(approval)
    return out, questions


def _raise_request_failure(scope: DurableScope, exc: BaseException, run_id: str | None) -> None:
    """The SDK wraps a failed ``needs_approval`` check in its own error: name the real cause."""
    if isinstance(exc, PliuzError) or not isinstance(exc, Exception) or not scope.failures:
        return
    call_id, cause = next(iter(scope.failures.items()))
    raise PliuzRunError(
        f"the run could not pause: the Pliuz request for call {call_id} could not be created "
        f"({cause}); the call did not run" + ("" if run_id else " and the run was not stored"),
        run_id=run_id,
    ) from exc


async def _cancel_created(client: AsyncPliuzClient, scope: DurableScope, reason: str) -> None:
    """Withdraw requests nobody can act on any more (their run was never stored)."""
    for approval in scope.created.values():
        try:
            await asyncio.shield(client.cancel_approval(approval.id, reason=reason))
        except (PliuzError, asyncio.CancelledError) as exc:
            log.warning("pliuz: could not cancel %s: %s", approval.id, exc)


async def _release(api: AsyncRunsAPI, claimed: ClaimedRun) -> None:
    """Store the claimed state back unchanged: the run waits for another resume."""
    try:
        await api.pause(
            claimed.run.id, claimed.lease_token, claimed.state,
            approval_ids=claimed.run.approval_ids, question_ids=claimed.run.question_ids,
        )  # fmt: skip
    except PliuzError as exc:
        log.warning("pliuz: could not release run %s: %s", claimed.run.id, exc)


async def _fail(api: AsyncRunsAPI, run_id: str, token: str, error: str) -> None:
    try:
        await api.complete(run_id, token, outcome="failed", error=error)
    except PliuzError as exc:
        log.warning("pliuz: could not mark run %s failed: %s", run_id, exc)


async def _first_of(
    tasks: set[asyncio.Task[None]], stop: asyncio.Event, timeout: float | None = None
) -> None:
    """Return when one of ``tasks`` finishes, ``stop`` is set or ``timeout`` passes."""
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({*tasks, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()


async def _until_stopped(work: Awaitable[list[Run]], stop: asyncio.Event) -> list[Run] | None:
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def _install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not a silenced failure: loops that cannot take signal handlers
        # (Windows' raises NotImplementedError; a loop outside the main thread
        # raises RuntimeError) leave stopping to the caller, as they must.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
