"""HTTP clients for the Pliuz API: :class:`PliuzClient` and :class:`AsyncPliuzClient`.

Both are configured from arguments or the environment (``PLIUZ_API_KEY``,
``PLIUZ_BASE_URL``, default ``http://127.0.0.1:8700``)::

    from pliuz import PliuzClient

    with PliuzClient() as client:
        approval = client.create_approval(
            tool_name="issue_refund",
            tool_args={"order_id": "A-1", "amount_cents": 5000},
            idempotency_key="refund-A-1",
        )
        approval = client.wait_for_decision(approval.id, timeout=600)
        if approval.status == "approved":
            claimed = client.claim_execution(approval.id)  # exactly one caller gets it
            ...  # run it with approval.final_args, then:
            client.report_execution(
                approval.id, "success", claim_id=claimed.execution.claim_id, latency_ms=12
            )

    async with AsyncPliuzClient() as client:
        approval = await client.create_approval(...)
        approval = await client.wait_for_decision(approval.id)
"""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import httpx

from . import __version__ as _version
from . import _flow, _questions
from ._flow import (
    Announce,
    DecisionOptions,
    ExecutionDetails,
    Flow,
    ListFilters,
    QueueReport,
    RequestOptions,
    RunBody,
    Send,
    Shielded,
    Sleep,
    Stepper,
    create_body,
    deadline_in,
    decision_body,
    execution_body,
)
from ._questions import QuestionOptions, question_body
from ._reports import (
    Report,
    deliver,
    flush_reports,
    queue_report,
    report_finished,
    report_started,
    undeliverable,
)
from .errors import PliuzError, PliuzMissingAPIKeyError
from .models import Answer, Approval, ApprovalList, Question

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DEFAULT_BASE_URL", "AsyncPliuzClient", "PliuzClient"]

log = logging.getLogger("pliuz")

T = TypeVar("T")
H = TypeVar("H", httpx.Client, httpx.AsyncClient)

DEFAULT_BASE_URL = "http://127.0.0.1:8700"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_POLL_WAIT_S = 30
MAX_POLL_WAIT_S = 60
#: When ``timeout`` is None and the server cannot be reached, keep retrying
#: until this long after the request's ``expires_at`` (then raise).
EXPIRY_GRACE_S = 30.0

#: How long the final execution report is retried (the tool already ran, so
#: its outcome must reach the server) before it is logged as undelivered.
DEFAULT_REPORT_TIMEOUT_S = 30.0

#: Runs a gated tool's body with the approved arguments (sync or async).
Body = Callable[[dict[str, Any]], Any]
OnPending = Callable[[Approval], "Awaitable[None] | None"]


class _BaseClient:
    """Configuration shared by both clients; the protocol itself lives in :mod:`pliuz._flow`."""

    api_key: str
    base_url: str
    timeout: float
    max_retries: int
    poll_wait: int
    report_timeout: float

    def _configure(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        poll_wait: int,
        report_timeout: float = DEFAULT_REPORT_TIMEOUT_S,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("PLIUZ_API_KEY")
        if not key:
            raise PliuzMissingAPIKeyError(
                "no Pliuz API key: pass api_key=... or set the PLIUZ_API_KEY environment variable "
                "(create one with `pliuz agents create NAME`)"
            )
        self.api_key = key
        url = base_url or os.environ.get("PLIUZ_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.poll_wait = max(1, min(MAX_POLL_WAIT_S, poll_wait))
        self.report_timeout = max(0.0, report_timeout)
        # Built once: every request sends them.
        self._headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"pliuz-python/{_version}",
        }

    def _settings(self) -> dict[str, Any]:
        """The arguments that rebuild this client's configuration (for a twin of the other kind)."""
        return {
            "api_key": self.api_key, "base_url": self.base_url, "timeout": self.timeout,
            "max_retries": self.max_retries, "poll_wait": self.poll_wait,
            "report_timeout": self.report_timeout,
        }  # fmt: skip

    def _url(self, path: str) -> str:
        return f"{self.base_url}/api/v1{path}"

    def _long_poll_timeout(self, wait: int | None) -> httpx.Timeout:
        read = self.timeout + (wait or 0)
        return httpx.Timeout(self.timeout, read=read)

    @staticmethod
    def _expiry_deadline(approval: Approval | Question | None) -> float | None:
        """Monotonic deadline derived from ``expires_at`` (+ grace) for waits without a timeout."""
        if approval is None or approval.expires_at is None:
            return None
        expires = approval.expires_at
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        delta = (expires - datetime.now(timezone.utc)).total_seconds()
        return time.monotonic() + delta + EXPIRY_GRACE_S


class _HttpClient(_BaseClient, Generic[H]):
    """Construction shared by both clients (``H``: their kind of httpx client)."""

    _http: H

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        poll_wait: int = DEFAULT_POLL_WAIT_S,
        report_timeout: float = DEFAULT_REPORT_TIMEOUT_S,
        http_client: H | None = None,
    ) -> None:
        self._configure(api_key, base_url, timeout, max_retries, poll_wait, report_timeout)
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else self._new_http(timeout)
        # A pool this client made carries the headers itself (httpx then has
        # no per-request headers to merge); a caller's pool gets them per request.
        self._request_headers = None if self._owns_http else self._headers
        # Execution reports being delivered by tasks of the async client's loop.
        self._background: set[asyncio.Task[Any]] = set()

    @abc.abstractmethod
    def _new_http(self, timeout: float) -> H:
        """The HTTP client this flavour (sync or async) pools connections in."""


class PliuzClient(_HttpClient[httpx.Client]):
    """Synchronous client. Thread-safe; reuse one instance (it pools connections).

    Args:
        api_key: an agent key (``pliuz_ak_...``) or, for the human endpoints, a
            user token (``pliuz_ut_...``). Defaults to ``$PLIUZ_API_KEY``.
        base_url: server address. Defaults to ``$PLIUZ_BASE_URL`` or
            ``http://127.0.0.1:8700``.
        timeout: per-request timeout in seconds (long polls add their ``wait``).
        max_retries: retries of safe requests (GETs, creates with an
            idempotency key) on connection errors, 5xx and 429, with
            exponential backoff and jitter.
        poll_wait: seconds each long poll of :meth:`wait_for_decision` asks the
            server to hold (1-60).
        report_timeout: how long a gated call's execution report is retried in
            the background after the tool ran (default 30 s) before it is
            logged as undelivered (see :func:`pliuz.undelivered_reports`).
        http_client: a custom :class:`httpx.Client` (proxies, TLS, transports).

    Every ``timeout`` of an operation (``wait_for_decision(timeout=...)``,
    ``create_approval(timeout=...)``, ``gated(timeout_s=...)``) is a deadline for
    the whole operation, retries and hung connections included: each HTTP
    request's own timeouts are cut to what is left of it.
    """

    def _new_http(self, timeout: float) -> httpx.Client:
        return httpx.Client(timeout=timeout, headers=self._headers)

    # -- plumbing -----------------------------------------------------------

    def close(self) -> None:
        """Wait for the execution reports of calls made through this client, then
        close the connection pool (if this client created it)."""
        flush_reports(origin=id(self))
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> PliuzClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _drive(self, flow: Flow[T], body: Body | None = None) -> T:
        """Execute a protocol flow with blocking I/O."""
        run = Stepper(flow)
        while run.next():
            try:
                run.answer(self._perform(run.step, body))
            except BaseException as exc:  # the flow decides what a failure means
                run.fail(exc)
        return run.result

    def _perform(self, step: _flow.Step, body: Body | None) -> Any:
        if isinstance(step, Send):
            return self._http.request(
                step.method, self._url(step.path), json=step.json, params=step.params,
                headers=self._request_headers, timeout=step.timeout,
            )  # fmt: skip
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
        elif isinstance(step, RunBody):
            assert body is not None, "a gated flow needs a body"
            return body(step.args)
        elif isinstance(step, QueueReport):
            queue_report(self, step.report, id(self))
        elif isinstance(step, Shielded):
            try:
                self._drive(step.flow)
            except PliuzError as exc:
                log.warning("pliuz: could not %s: %r", step.what, exc)
        return None  # Announce: nothing to show in a blocking call

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API request (see :func:`pliuz._flow.request` for the keywords)."""
        return self._drive(_flow.request(self, method, path, **kwargs))

    # -- agent endpoints ----------------------------------------------------

    def create_approval(
        self,
        tool_name: str,
        tool_args: dict[str, Any],
        *,
        timeout: float | None = None,
        **request: Unpack[RequestOptions],
    ) -> Approval:
        """Ask for approval of one tool call (``POST /api/v1/approvals``).

        Keywords: ``policy``, ``tool_schema``, ``call_id``, ``session_id``,
        ``originator``, ``context_messages``, ``client_metadata``,
        ``idempotency_key``, ``claim_id`` (see docs/api.md).

        Returns the approval: ``pending``, or already ``approved`` / ``rejected``
        when a policy condition decided it (``executing``, claimed for ``claim_id``,
        when it approved it and ``claim_id`` was given). With an ``idempotency_key`` the
        request is retried on transient errors and when an identical request
        was created at the same moment (409 ``concurrent_create``), and a repeat
        returns the existing approval with ``is_replay=True`` whatever its state.
        ``timeout`` bounds the whole call (:class:`~pliuz.PliuzTimeoutError`).
        """
        body = create_body(tool_name, tool_args, request)
        return self._drive(_flow.create(self, body, deadline_in(timeout)))

    def get_approval(
        self, approval_id: str, *, wait: int | None = None, timeout: float | None = None
    ) -> Approval:
        """Fetch an approval. With ``wait`` (0-60 s) the server holds the request
        until the approval settles or ``wait`` elapses (long poll). ``timeout``
        bounds the whole call, retries included."""
        return self._drive(_flow.get(self, approval_id, wait, deadline_in(timeout)))

    def wait_for_decision(
        self, approval: str | Approval, *, timeout: float | None = None
    ) -> Approval:
        """Long-poll until the approval leaves ``pending`` and return it.

        ``approval`` is an id or an :class:`~pliuz.models.Approval` (pass the
        object returned by :meth:`create_approval`: its ``expires_at`` bounds
        retries when no ``timeout`` is given).

        The returned approval may be ``approved``, ``rejected``, ``expired``,
        ``cancelled`` or ``executed``; inspect ``status`` (or use
        :func:`pliuz.raise_for_outcome`). Connection errors and 5xx answers
        while waiting (for example a server restart) are retried with backoff
        until ``timeout``. Raises :class:`~pliuz.PliuzTimeoutError` if still
        pending after ``timeout`` seconds. Without a timeout it waits until the
        server settles the request (policies always expire); if the server
        stays unreachable past ``expires_at`` it raises
        :class:`~pliuz.PliuzConnectionError`.
        """
        return self._drive(_flow.wait_for_decision(self, approval, timeout))

    def claim_execution(
        self, approval_id: str, *, claim_id: str | None = None, timeout: float | None = None
    ) -> Approval:
        """Claim the right to run an approved call (``approved`` → ``executing``).

        Exactly one caller ever gets it; run the tool only after this returns,
        then :meth:`report_execution` with ``approval.execution.claim_id``.
        ``claim_id`` (default: a new random one) makes retries safe: the claim is
        retried on transient errors and a repeat of the same id is answered 200.
        Raises :class:`~pliuz.PliuzConflictError` with ``code``
        ``execution_claimed`` (someone else claimed it: the outcome is unknown,
        check before retrying; or it was already executed) or
        ``execution_expired`` (past ``execute_before``).
        """
        claim = claim_id or new_claim_id()
        return self._drive(_flow.claim(self, approval_id, claim, deadline_in(timeout)))

    def report_execution(
        self,
        approval_id: str,
        outcome: Literal["success", "error"],
        *,
        timeout: float | None = None,
        **details: Unpack[ExecutionDetails],
    ) -> Approval:
        """Report how the claimed call went; the status becomes ``executed``.

        Keywords: ``claim_id`` (the one :meth:`claim_execution` returned),
        ``latency_ms``, ``output_excerpt``. A repeat of the
        same report is answered 200 (so it is retried on transient errors); a
        report without a claim, with another claim's id or with a different
        outcome is 409 (:class:`~pliuz.PliuzConflictError`).
        """
        body = execution_body(outcome, details)
        return self._drive(_flow.report(self, approval_id, body, deadline_in(timeout)))

    def cancel_approval(self, approval_id: str, *, reason: str | None = None) -> Approval:
        """Cancel a ``pending`` approval (409 :class:`~pliuz.PliuzConflictError` otherwise)."""
        return self._drive(_flow.cancel(self, approval_id, reason))

    # -- human endpoints (user token) ----------------------------------------

    def list_approvals(self, **filters: Unpack[ListFilters]) -> ApprovalList:
        """List approvals visible to this user token, newest first (one page).

        Keywords: ``status``, ``policy``, ``agent``, ``tool``, ``limit``, ``cursor``.
        """
        return self._drive(_flow.list_page(self, filters))

    def decide(
        self,
        approval: Approval | str,
        decision: Literal["approve", "reject", "edit", "respond"],
        **options: Unpack[DecisionOptions],
    ) -> Approval:
        """Approve, reject, edit (with ``final_args``) or respond as a human approver.

        Keywords: ``args_digest``, ``reason``, ``final_args``.

        A reject needs a ``reason`` (at most 2,000 characters): the agent's
        model receives it. Without one the server refuses with
        :class:`PliuzValidationError`. A ``respond`` (only where the policy's
        ``decisions`` list it) needs one too: it is the message the model
        receives instead of the tool's result; the tool never runs.

        A decision applies only to the arguments you reviewed: pass the
        :class:`Approval` you looked at (its ``args_digest`` is sent), or an
        id together with ``args_digest``. If an approver edited the arguments
        since, the server refuses with :class:`PliuzArgsChangedError`.
        """
        approval_id, body = decision_body(approval, decision, options)
        return self._drive(_flow.decide(self, approval_id, body))

    # -- questions to a person ------------------------------------------------

    def ask_question(
        self, text: str, *, timeout: float | None = None, **options: Unpack[QuestionOptions]
    ) -> Question:
        """Ask a person (``POST /api/v1/questions``) without waiting for the answer.

        Keywords: ``choices`` (strings, or ``{"value", "label"}`` mappings),
        ``allow_free_text`` (default: true without choices), ``policy`` (whose
        approvers answer), ``originator`` (who may not answer),
        ``idempotency_key``, ``expires_in_seconds``.
        """
        body = question_body(text, options)
        return self._drive(_questions.ask(self, body, deadline_in(timeout)))

    def get_question(
        self, question_id: str, *, wait: int | None = None, timeout: float | None = None
    ) -> Question:
        """Fetch a question; with ``wait`` (0-60 s) the server holds the request until
        it is answered or expires."""
        return self._drive(_questions.get(self, question_id, wait, deadline_in(timeout)))

    def wait_for_answer(
        self, question: str | Question, *, timeout: float | None = None
    ) -> Question:
        """Long-poll until the question is answered and return it. Raises
        :class:`~pliuz.PliuzQuestionExpiredError` when nobody answered in time and
        :class:`~pliuz.PliuzTimeoutError` after ``timeout`` seconds."""
        return self._drive(_questions.wait_for_answer(self, question, timeout))

    def ask(
        self, text: str, *, timeout: float | None = None, **options: Unpack[QuestionOptions]
    ) -> Answer:
        """Ask a person and wait for the typed :class:`~pliuz.Answer` (``choice``,
        ``text``, ``answered_by``, ``answered_at``); keywords as :meth:`ask_question`.
        Raises :class:`~pliuz.PliuzQuestionExpiredError` when nobody answered in time."""
        body = question_body(text, options)
        return self._drive(_questions.ask_and_wait(self, body, timeout))

    def answer_question(
        self, question_id: str, *, choice: str | None = None, text: str | None = None
    ) -> Question:
        """Answer a question as a person (user token): one of its choices' values
        and/or free text (where allowed)."""
        body = _flow.drop_none({"choice": choice, "text": text})
        return self._drive(_questions.answer(self, question_id, body))


class AsyncPliuzClient(_HttpClient[httpx.AsyncClient]):
    """Asynchronous twin of :class:`PliuzClient` (same arguments, awaitable methods).

    Bound to the event loop it is first used on; create one per loop (the
    default client of :func:`pliuz.gated` and the adapters is one per loop).
    Execution reports of gated calls are delivered by background tasks on that
    loop; :meth:`aclose` waits for them, and those still running when the loop
    shuts down are handed to the reporting thread.
    """

    def _new_http(self, timeout: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=timeout, headers=self._headers)

    async def aclose(self) -> None:
        """Wait for the execution reports of calls made through this client, then
        close the connection pool (if this client created it)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if not flush_reports(0, origin=id(self)):
            await asyncio.to_thread(flush_reports, origin=id(self))
        await self._close_http()

    async def _close_http(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncPliuzClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _drive(
        self, flow: Flow[T], body: Body | None = None, on_pending: OnPending | None = None
    ) -> T:
        """Execute a protocol flow with awaits on this client's event loop."""
        run = Stepper(flow)
        while run.next():
            try:
                run.answer(await self._perform(run.step, body, on_pending))
            except BaseException as exc:  # cancellation included: the flow cleans up
                run.fail(exc)
        return run.result

    async def _perform(
        self, step: _flow.Step, body: Body | None, on_pending: OnPending | None
    ) -> Any:
        if isinstance(step, Send):
            call = self._http.request(
                step.method, self._url(step.path), json=step.json, params=step.params,
                headers=self._request_headers, timeout=step.timeout,
            )  # fmt: skip
            return await (call if step.bound is None else asyncio.wait_for(call, step.bound))
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, RunBody):
            assert body is not None, "a gated flow needs a body"
            return await body(step.args)
        elif isinstance(step, Announce) and on_pending is not None:
            announced = on_pending(step.approval)
            if announced is not None:
                await announced
        elif isinstance(step, QueueReport):
            await self._queue_report(step.report)
        elif isinstance(step, Shielded):
            task = asyncio.ensure_future(self._drive(step.flow))
            try:
                await asyncio.wait_for(asyncio.shield(task), step.limit)
            except (PliuzError, asyncio.TimeoutError, asyncio.CancelledError) as exc:
                log.warning("pliuz: could not %s: %r", step.what, exc)
        return None

    async def _queue_report(self, report: Report) -> None:
        # A task on this loop, not the reporting thread: a thread would contend with the
        # loop for the GIL on every call (measured: +5 ms per gated call).
        deadline = time.monotonic() + self.report_timeout
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._drive(deliver(self, report, deadline)))
        hand_over = functools.partial(self._hand_over, report, loop)
        token = report_started(id(self), loop, hand_over)
        self._background.add(task)
        task.add_done_callback(functools.partial(self._report_done, token))

    def _report_done(self, token: int, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        # Cancelled: the loop is shutting down (asyncio.run cancels what is left).
        report_finished(token, cancelled=task.cancelled())

    def _hand_over(self, report: Report, loop: asyncio.AbstractEventLoop) -> None:
        if self._owns_http:
            from ._shared import blocking_twin  # the shared module imports this one

            # The reporting thread finishes the job with a blocking twin of this client.
            queue_report(blocking_twin(self), report, id(self))
        elif loop.is_closed():
            undeliverable(report, "its event loop closed first (custom http_client)")
        # Else only that loop can use the caller's transport: its task delivers the report
        # if the loop runs again; meanwhile it stays in undelivered_reports().

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Async :meth:`PliuzClient._request`."""
        return await self._drive(_flow.request(self, method, path, **kwargs))

    async def create_approval(
        self,
        tool_name: str,
        tool_args: dict[str, Any],
        *,
        timeout: float | None = None,
        **request: Unpack[RequestOptions],
    ) -> Approval:
        """Async :meth:`PliuzClient.create_approval`."""
        body = create_body(tool_name, tool_args, request)
        return await self._drive(_flow.create(self, body, deadline_in(timeout)))

    async def get_approval(
        self, approval_id: str, *, wait: int | None = None, timeout: float | None = None
    ) -> Approval:
        """Async :meth:`PliuzClient.get_approval`."""
        return await self._drive(_flow.get(self, approval_id, wait, deadline_in(timeout)))

    async def wait_for_decision(
        self, approval: str | Approval, *, timeout: float | None = None
    ) -> Approval:
        """Async :meth:`PliuzClient.wait_for_decision`."""
        return await self._drive(_flow.wait_for_decision(self, approval, timeout))

    async def claim_execution(
        self, approval_id: str, *, claim_id: str | None = None, timeout: float | None = None
    ) -> Approval:
        """Async :meth:`PliuzClient.claim_execution`."""
        claim = claim_id or new_claim_id()
        return await self._drive(_flow.claim(self, approval_id, claim, deadline_in(timeout)))

    async def report_execution(
        self,
        approval_id: str,
        outcome: Literal["success", "error"],
        *,
        timeout: float | None = None,
        **details: Unpack[ExecutionDetails],
    ) -> Approval:
        """Async :meth:`PliuzClient.report_execution`."""
        body = execution_body(outcome, details)
        return await self._drive(_flow.report(self, approval_id, body, deadline_in(timeout)))

    async def cancel_approval(self, approval_id: str, *, reason: str | None = None) -> Approval:
        """Async :meth:`PliuzClient.cancel_approval`."""
        return await self._drive(_flow.cancel(self, approval_id, reason))

    async def list_approvals(self, **filters: Unpack[ListFilters]) -> ApprovalList:
        """Async :meth:`PliuzClient.list_approvals`."""
        return await self._drive(_flow.list_page(self, filters))

    async def decide(
        self,
        approval: Approval | str,
        decision: Literal["approve", "reject", "edit", "respond"],
        **options: Unpack[DecisionOptions],
    ) -> Approval:
        """Async :meth:`PliuzClient.decide`."""
        approval_id, body = decision_body(approval, decision, options)
        return await self._drive(_flow.decide(self, approval_id, body))

    # -- questions to a person ------------------------------------------------

    async def ask_question(
        self, text: str, *, timeout: float | None = None, **options: Unpack[QuestionOptions]
    ) -> Question:
        """See :meth:`PliuzClient.ask_question`."""
        body = question_body(text, options)
        return await self._drive(_questions.ask(self, body, deadline_in(timeout)))

    async def get_question(
        self, question_id: str, *, wait: int | None = None, timeout: float | None = None
    ) -> Question:
        """See :meth:`PliuzClient.get_question`."""
        return await self._drive(_questions.get(self, question_id, wait, deadline_in(timeout)))

    async def wait_for_answer(
        self, question: str | Question, *, timeout: float | None = None
    ) -> Question:
        """See :meth:`PliuzClient.wait_for_answer`."""
        return await self._drive(_questions.wait_for_answer(self, question, timeout))

    async def ask(
        self, text: str, *, timeout: float | None = None, **options: Unpack[QuestionOptions]
    ) -> Answer:
        """See :meth:`PliuzClient.ask`."""
        body = question_body(text, options)
        return await self._drive(_questions.ask_and_wait(self, body, timeout))

    async def answer_question(
        self, question_id: str, *, choice: str | None = None, text: str | None = None
    ) -> Question:
        """See :meth:`PliuzClient.answer_question`."""
        body = _flow.drop_none({"choice": choice, "text": text})
        return await self._drive(_questions.answer(self, question_id, body))


def new_claim_id() -> str:
    """A fresh, unguessable claim id (what :meth:`PliuzClient.claim_execution` sends)."""
    return uuid.uuid4().hex
