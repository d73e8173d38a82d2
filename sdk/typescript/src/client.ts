/**
 * The Pliuz HTTP client: approvals, the execution claim, receipts and durable runs.
 *
 * ```ts
 * const client = new PliuzClient();                  // PLIUZ_API_KEY, PLIUZ_BASE_URL
 * const approval = await client.createApproval({ toolName: "issue_refund", toolArgs: { order_id: "A-1" } });
 * const decided = await client.waitForDecision(approval, { timeoutMs: 60_000 });
 * ```
 *
 * Every method takes `{ signal, timeoutMs }`: one deadline for the whole
 * operation, retries and long polls included. Requests that are safe to repeat
 * (reads, an idempotent create, the claim and the report, which carry their
 * claim id) are retried with backoff on network errors and 5xx; a request whose
 * repeat could do something twice is never retried when its outcome is unknown.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  errorFromProblem,
  PliuzAPIError,
  PliuzConflictError,
  PliuzConnectionError,
  PliuzError,
  PliuzLeaseLostError,
  PliuzRunStateIntegrityError,
  PliuzTimeoutError,
} from "./errors.js";
import type {
  Approval,
  ApprovalList,
  ApprovalStatus,
  ClaimedRun,
  JsonObject,
  Receipt,
  Run,
  RunStatus,
} from "./models.js";
import { Deadline, isTransient, retryDelay } from "./retry.js";

export const DEFAULT_BASE_URL = "http://127.0.0.1:8700";
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_RETRIES = 2;
export const DEFAULT_POLL_WAIT_S = 30;
export const MAX_POLL_WAIT_S = 60;
export const DEFAULT_REPORT_TIMEOUT_MS = 30_000;
/** Without a timeout and with the server unreachable, keep trying until this long past `expires_at`. */
export const EXPIRY_GRACE_MS = 30_000;
/** Without a timeout and without a known expiry, give up after the server was unreachable this long. */
export const MAX_UNREACHABLE_MS = 600_000;
const CONCURRENT_CREATE_RETRIES = 5;
export const DEFAULT_LEASE_S = 300;
export const MAX_RUN_WAIT_S = 60;

export interface PliuzClientOptions {
  /** Agent key (`pliuz_ak_...`) or user token; default `PLIUZ_API_KEY`. */
  apiKey?: string | undefined;
  /** Default `PLIUZ_BASE_URL`, else `http://127.0.0.1:8700`. */
  baseUrl?: string | undefined;
  /** Bound on one HTTP attempt (long polls add their `wait`). Default 30 000 ms. */
  requestTimeoutMs?: number;
  /** Retries of a request that is safe to repeat, on network errors and 5xx. Default 2. */
  maxRetries?: number;
  /** Seconds each long poll of {@link PliuzClient.waitForDecision} asks the server to hold (1-60). Default 30. */
  pollWaitSeconds?: number;
  /** How long the execution report is retried after the tool ran. Default 30 000 ms. */
  reportTimeoutMs?: number;
  /** The `fetch` to use (default: the platform's). */
  fetch?: typeof fetch;
}

/** The deadline of one operation: the caller's signal and/or a time limit in ms. */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

export interface CreateApprovalRequest {
  toolName: string;
  toolArgs: Record<string, unknown>;
  policy?: string | null | undefined;
  toolSchema?: Record<string, unknown> | null | undefined;
  callId?: string | null | undefined;
  sessionId?: string | null | undefined;
  originator?: string | null | undefined;
  contextMessages?: unknown[] | null | undefined;
  clientMetadata?: Record<string, unknown> | null | undefined;
  /** With a key the create is retried safely, and a repeat returns the existing request. */
  idempotencyKey?: string | null | undefined;
  /**
   * When the policy approves the request at once, the server also claims its execution
   * for this id (the answer is `executing` with this `claim_id`), as `claimExecution`
   * would; otherwise it is ignored.
   */
  claimId?: string | null | undefined;
}

export interface ListApprovalsQuery {
  status?: ApprovalStatus;
  policy?: string;
  agent?: string;
  tool?: string;
  limit?: number;
  cursor?: string;
}

export interface ReportExecution {
  outcome: "success" | "error";
  claimId?: string | undefined;
  latencyMs?: number | undefined;
  outputExcerpt?: string | null | undefined;
}

export type DecisionKind = "approve" | "reject" | "edit";

interface RequestSpec {
  method: string;
  path: string;
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  /** Safe to repeat: retried on network errors and 5xx. */
  retry: boolean;
  deadline: Deadline;
  /** Extra seconds the server may hold this request (long polls). */
  holdSeconds?: number;
}

const env = (name: string): string | undefined => {
  const v = process.env[name];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
};

/** SHA-256 (hex) of a run state's UTF-8 bytes, as the server records it. */
export function stateSha256(state: string): string {
  return createHash("sha256").update(state, "utf8").digest("hex");
}

export function newClaimId(): string {
  return `cl_${randomUUID().replaceAll("-", "")}`;
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null));
}

export class PliuzClient {
  readonly apiKey: string;
  readonly baseUrl: string;
  readonly requestTimeoutMs: number;
  readonly maxRetries: number;
  readonly pollWaitSeconds: number;
  readonly reportTimeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: PliuzClientOptions = {}) {
    const apiKey = options.apiKey ?? env("PLIUZ_API_KEY");
    if (!apiKey) {
      throw new PliuzError(
        "no Pliuz API key: pass { apiKey } or set PLIUZ_API_KEY (create one with `pliuz agents create NAME`)",
      );
    }
    this.apiKey = apiKey;
    this.baseUrl = (options.baseUrl ?? env("PLIUZ_BASE_URL") ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.maxRetries = Math.max(0, options.maxRetries ?? DEFAULT_MAX_RETRIES);
    this.pollWaitSeconds = Math.max(1, Math.min(MAX_POLL_WAIT_S, options.pollWaitSeconds ?? DEFAULT_POLL_WAIT_S));
    this.reportTimeoutMs = Math.max(0, options.reportTimeoutMs ?? DEFAULT_REPORT_TIMEOUT_MS);
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  // -- transport ---------------------------------------------------------------

  async #once(spec: RequestSpec): Promise<unknown> {
    const { deadline } = spec;
    const perAttempt = this.requestTimeoutMs + (spec.holdSeconds ?? 0) * 1000;
    const left = deadline.remaining();
    const limit = left === undefined ? perAttempt : Math.max(1, Math.min(perAttempt, left));
    const timer = AbortSignal.timeout(limit);
    const signal = deadline.signal ? AbortSignal.any([deadline.signal, timer]) : timer;
    const url = new URL(`${this.baseUrl}/api/v1${spec.path}`);
    for (const [k, v] of Object.entries(spec.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.apiKey}`,
      accept: "application/json",
      "user-agent": "pliuz-typescript/0.1.0",
    };
    if (spec.body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(url, {
        method: spec.method,
        headers,
        body: spec.body === undefined ? null : JSON.stringify(spec.body),
        signal,
      });
      text = await response.text();
    } catch (err) {
      deadline.throwIfAborted(); // the caller gave up: their reason, unchanged
      if (deadline.expired()) {
        throw new PliuzTimeoutError(`the operation's deadline passed (${spec.method} ${spec.path})`, { cause: err });
      }
      throw new PliuzConnectionError(`cannot reach the Pliuz server at ${this.baseUrl}: ${String(err)}`, {
        cause: err,
      });
    }
    let body: unknown = text;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (!response.ok) throw errorFromProblem(response.status, body, response.headers.get("retry-after"));
    if (typeof body !== "object" || body === null) {
      throw new PliuzAPIError(`${response.status}: the server sent a body that is not a JSON object`, {
        status: response.status,
        body,
      });
    }
    return body;
  }

  async #request(spec: RequestSpec): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      spec.deadline.throwIfAborted();
      if (spec.deadline.expired()) {
        throw new PliuzTimeoutError(`the operation's deadline passed before ${spec.method} ${spec.path}`);
      }
      try {
        return await this.#once(spec);
      } catch (err) {
        if (!(err instanceof PliuzError) || !spec.retry || attempt >= this.maxRetries || !isTransient(err)) throw err;
        const delay = retryDelay(err, attempt);
        const left = spec.deadline.remaining();
        if (left !== undefined && delay >= left) throw err; // no time for another attempt
        await spec.deadline.sleep(delay);
      }
    }
  }

  #deadline(options: CallOptions | undefined): Deadline {
    return new Deadline(options?.timeoutMs, options?.signal);
  }

  /**
   * A safe GET the server may hold for `wait` seconds (whole, at most `maxWaitS`) before
   * answering; without `wait` it answers at once.
   */
  #heldGet(
    path: string,
    wait: number | undefined,
    maxWaitS: number,
    options: CallOptions | undefined,
    query: Record<string, string | number | undefined> = {},
  ): Promise<unknown> {
    const held = wait ? Math.max(0, Math.min(maxWaitS, Math.trunc(wait))) : undefined;
    return this.#request({
      method: "GET",
      path,
      query: { ...query, wait: held },
      retry: true,
      deadline: this.#deadline(options),
      holdSeconds: held ?? 0,
    });
  }

  // -- approvals (agent key) ---------------------------------------------------

  /**
   * Ask for approval of one tool call (`POST /api/v1/approvals`). The answer is
   * `pending`, or already `approved`/`rejected` when a policy decided it (`executing`,
   * claimed for `claimId`, when it approved it and `claimId` was given). With an
   * `idempotencyKey` the create is retried on transient errors and when an identical
   * request was created at the same moment, and a repeat returns the existing request
   * (`is_replay: true`) whatever its state. Without one it is never repeated.
   */
  async createApproval(request: CreateApprovalRequest, options?: CallOptions): Promise<Approval> {
    const body = dropUndefined({
      tool_name: request.toolName,
      tool_args: request.toolArgs,
      policy: request.policy,
      tool_schema: request.toolSchema,
      call_id: request.callId,
      session_id: request.sessionId,
      originator: request.originator,
      context_messages: request.contextMessages,
      client_metadata: request.clientMetadata,
      idempotency_key: request.idempotencyKey,
      claim_id: request.claimId,
    });
    const deadline = this.#deadline(options);
    const retry = typeof request.idempotencyKey === "string";
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.#request({ method: "POST", path: "/approvals", body, retry, deadline })) as Approval;
      } catch (err) {
        const racing = err instanceof PliuzConflictError && err.code === "concurrent_create";
        if (!retry || !racing || attempt >= CONCURRENT_CREATE_RETRIES) throw err;
      }
      await deadline.sleep(20 * (attempt + 1));
    }
  }

  /** Fetch an approval; with `wait` (0-60 s) the server holds the answer until it settles. */
  async getApproval(id: string, options?: CallOptions & { wait?: number }): Promise<Approval> {
    return (await this.#heldGet(
      `/approvals/${encodeURIComponent(id)}`,
      options?.wait,
      MAX_POLL_WAIT_S,
      options,
    )) as Approval;
  }

  /**
   * Long-poll until the approval leaves `pending` and return it (approved, rejected,
   * expired, cancelled, executing or executed: inspect `status`). Network errors and 5xx
   * while waiting (a server restart) are retried with backoff until the deadline.
   * Throws {@link PliuzTimeoutError} if still pending when `timeoutMs` passes. Without a
   * deadline it waits until the server settles the request (policies always expire);
   * if the server stays unreachable past `expires_at` it throws {@link PliuzConnectionError}.
   */
  async waitForDecision(approval: string | Approval, options?: CallOptions): Promise<Approval> {
    let last = typeof approval === "string" ? undefined : approval;
    const id = typeof approval === "string" ? approval : approval.id;
    if (last !== undefined && last.status !== "pending") return last;
    const deadline = this.#deadline(options);
    let unreachableSince: number | undefined;
    for (let attempt = 0, tried = false; ; ) {
      const bound = deadline.at ?? expiryBound(last);
      const remaining = bound === undefined ? undefined : bound - Date.now();
      if (remaining !== undefined && remaining <= 0 && tried) {
        throw timeoutError(id, last, options?.timeoutMs, unreachableSince !== undefined);
      }
      // The first look is always taken (up to 1 s), even with timeoutMs 0.
      const pollAt = bound === undefined ? undefined : tried ? bound : Math.max(bound, Date.now() + 1000);
      tried = true;
      const wait =
        remaining === undefined
          ? this.pollWaitSeconds
          : Math.max(1, Math.min(this.pollWaitSeconds, Math.ceil(remaining / 1000)));
      const started = Date.now();
      try {
        last = (await this.#request({
          method: "GET",
          path: `/approvals/${encodeURIComponent(id)}`,
          query: { wait },
          retry: false,
          deadline: new Deadline(undefined, deadline.signal, pollAt),
          holdSeconds: wait,
        })) as Approval;
      } catch (err) {
        if (err instanceof PliuzTimeoutError) {
          throw timeoutError(id, last, options?.timeoutMs, unreachableSince !== undefined);
        }
        if (!isTransient(err)) throw err;
        const now = Date.now();
        unreachableSince ??= now;
        if (bound === undefined && now - unreachableSince > MAX_UNREACHABLE_MS) throw err;
        const delay = retryDelay(err as PliuzError, attempt++);
        if (remaining !== undefined && remaining > 0 && delay >= remaining) {
          if (deadline.at === undefined) throw err; // past the expiry grace: give up
          await deadline.sleep(remaining);
          continue;
        }
        await deadline.sleep(delay);
        continue;
      }
      attempt = 0;
      unreachableSince = undefined;
      if (last.status !== "pending") return last;
      if (Date.now() - started < Math.min(wait, 1) * 500) await deadline.sleep(250); // not held: don't spin
    }
  }

  /**
   * Claim the right to run an approved call (`approved` → `executing`). Exactly one
   * caller ever gets it; run the tool only after this returns, then
   * {@link reportExecution} with the same `claimId`. Retried safely (a repeat of the
   * same claim id is answered 200). Throws {@link PliuzConflictError} with code
   * `execution_claimed` (someone else has it: outcome unknown) or `execution_expired`.
   */
  async claimExecution(id: string, options?: CallOptions & { claimId?: string }): Promise<Approval> {
    return (await this.#request({
      method: "POST",
      path: `/approvals/${encodeURIComponent(id)}/execution`,
      body: { outcome: "started", claim_id: options?.claimId ?? newClaimId() },
      retry: true,
      deadline: this.#deadline(options),
    })) as Approval;
  }

  /** Report how the claimed call went (status becomes `executed`). Retried when it carries its claim id. */
  async reportExecution(id: string, report: ReportExecution, options?: CallOptions): Promise<Approval> {
    return (await this.#request({
      method: "POST",
      path: `/approvals/${encodeURIComponent(id)}/execution`,
      body: dropUndefined({
        outcome: report.outcome,
        claim_id: report.claimId,
        latency_ms: report.latencyMs,
        output_excerpt: report.outputExcerpt,
      }),
      retry: report.claimId !== undefined,
      deadline: this.#deadline(options),
    })) as Approval;
  }

  /** Cancel a `pending` approval (409 otherwise). Not retried. */
  async cancelApproval(id: string, options?: CallOptions & { reason?: string }): Promise<Approval> {
    return (await this.#request({
      method: "POST",
      path: `/approvals/${encodeURIComponent(id)}/cancel`,
      body: dropUndefined({ reason: options?.reason }),
      retry: false,
      deadline: this.#deadline(options),
    })) as Approval;
  }

  /** List approvals visible to this key, newest first (one page; follow `next_cursor`). */
  async listApprovals(query: ListApprovalsQuery = {}, options?: CallOptions): Promise<ApprovalList> {
    return (await this.#request({
      method: "GET",
      path: "/approvals",
      query: { ...query },
      retry: true,
      deadline: this.#deadline(options),
    })) as ApprovalList;
  }

  /** The approval's `pliuz-receipt/v1` document (verify offline with `pliuz audit verify-receipt`). */
  async getReceipt(id: string, options?: CallOptions): Promise<Receipt> {
    return (await this.#request({
      method: "GET",
      path: `/approvals/${encodeURIComponent(id)}/receipt`,
      retry: true,
      deadline: this.#deadline(options),
    })) as Receipt;
  }

  /**
   * Decide as a human (user token): approve, reject, or edit with `finalArgs`. Not retried.
   *
   * A decision is bound to the arguments the decider reviewed: pass the approval you looked
   * at (its `args_digest` is sent), or an id with `argsDigest`. If an approver edited the
   * arguments since, the server refuses with `PliuzConflictError` code `args_changed`.
   * A reject needs a `reason` (at most 2,000 characters; the agent's model receives it):
   * without one the server answers 422.
   */
  async decide(
    approval: string | { id?: unknown; args_digest?: unknown },
    decision: DecisionKind,
    options?: CallOptions & {
      reason?: string;
      finalArgs?: Record<string, unknown>;
      argsDigest?: string;
    },
  ): Promise<Approval> {
    const id = typeof approval === "string" ? approval : String(approval.id ?? "");
    const fromApproval =
      typeof approval === "string" || typeof approval.args_digest !== "string" ? undefined : approval.args_digest;
    const digest = options?.argsDigest ?? fromApproval;
    if (!id || !digest) {
      throw new TypeError(
        "a decision must say which arguments were reviewed: pass the approval you looked at, " +
          "or an id with { argsDigest } from it (GET the approval first)",
      );
    }
    return (await this.#request({
      method: "POST",
      path: `/approvals/${encodeURIComponent(id)}/decision`,
      body: dropUndefined({
        decision,
        args_digest: digest,
        reason: options?.reason,
        final_args: options?.finalArgs,
      }),
      retry: false,
      deadline: this.#deadline(options),
    })) as Approval;
  }

  // -- durable runs (agent key) -------------------------------------------------

  /** Store a paused run's state (`POST /api/v1/runs`). Not retried (a repeat would store it twice). */
  async createRun(
    state: string,
    init: { approvalIds: string[]; metadata?: JsonObject },
    options?: CallOptions,
  ): Promise<Run> {
    return (await this.#request({
      method: "POST",
      path: "/runs",
      body: dropUndefined({ state, approval_ids: init.approvalIds, metadata: init.metadata }),
      retry: false,
      deadline: this.#deadline(options),
    })) as Run;
  }

  /** A run; with `wait` (0-60 s) and status `waiting`, long-polls until it is ready. */
  async getRun(id: string, options?: CallOptions & { wait?: number }): Promise<Run> {
    return (await this.#heldGet(`/runs/${encodeURIComponent(id)}`, options?.wait, MAX_RUN_WAIT_S, options)) as Run;
  }

  /** This agent's runs (e.g. `status: "ready"`); with `wait`, long-polls until one is ready. */
  async listRuns(
    query: { status?: RunStatus; wait?: number; limit?: number } = {},
    options?: CallOptions,
  ): Promise<Run[]> {
    const data = (await this.#heldGet("/runs", query.wait, MAX_RUN_WAIT_S, options, {
      status: query.status,
      limit: query.limit,
    })) as { items?: Run[] };
    return data.items ?? [];
  }

  /**
   * Take the run's lease and its state. The state is checked against the SHA-256 the
   * server recorded when it was stored ({@link PliuzRunStateIntegrityError} on a
   * mismatch), so nothing unverified is handed to a deserializer. Not retried: a lost
   * answer leaves the lease held until it expires.
   */
  async claimRun(id: string, options?: CallOptions & { leaseSeconds?: number }): Promise<ClaimedRun> {
    const claimed = (await this.#request({
      method: "POST",
      path: `/runs/${encodeURIComponent(id)}/claim`,
      body: { lease_seconds: options?.leaseSeconds ?? DEFAULT_LEASE_S },
      retry: false,
      deadline: this.#deadline(options),
    })) as ClaimedRun;
    const actual = stateSha256(claimed.state);
    if (actual !== claimed.state_sha256 || actual !== claimed.run.state_sha256) {
      throw new PliuzRunStateIntegrityError(
        `run ${id}: the stored state's SHA-256 is ${actual}, but ${claimed.state_sha256} was recorded; it was not deserialized`,
        { runId: id },
      );
    }
    return claimed;
  }

  /** Extend the lease ({@link PliuzLeaseLostError} if the token is no longer the live lease). */
  async heartbeatRun(id: string, leaseToken: string, options?: CallOptions & { leaseSeconds?: number }): Promise<Run> {
    return this.#leased(
      id,
      "POST",
      "heartbeat",
      {
        lease_token: leaseToken,
        lease_seconds: options?.leaseSeconds ?? DEFAULT_LEASE_S,
      },
      options,
    );
  }

  /** Pause the run again under the same id (new state, new approvals); releases the lease. */
  async pauseRun(
    id: string,
    leaseToken: string,
    state: string,
    approvalIds: string[],
    options?: CallOptions,
  ): Promise<Run> {
    return this.#leased(id, "PUT", undefined, { lease_token: leaseToken, state, approval_ids: approvalIds }, options);
  }

  /** Finish the run (`completed` or `failed`); releases the lease. */
  async completeRun(
    id: string,
    leaseToken: string,
    result: { outcome?: "completed" | "failed"; outputSha256?: string; error?: string } = {},
    options?: CallOptions,
  ): Promise<Run> {
    return this.#leased(
      id,
      "POST",
      "complete",
      dropUndefined({
        lease_token: leaseToken,
        outcome: result.outcome ?? "completed",
        output_sha256: result.outputSha256,
        error: result.error,
      }),
      options,
    );
  }

  async #leased(
    id: string,
    method: string,
    action: string | undefined,
    body: Record<string, unknown>,
    options: CallOptions | undefined,
  ): Promise<Run> {
    try {
      // Only the heartbeat is repeated: a repeated pause or completion whose first
      // attempt landed would be refused (lease_lost) although it succeeded.
      return (await this.#request({
        method,
        path: `/runs/${encodeURIComponent(id)}${action ? `/${action}` : ""}`,
        body,
        retry: action === "heartbeat",
        deadline: this.#deadline(options),
      })) as Run;
    } catch (err) {
      if (err instanceof PliuzConflictError && err.code === "lease_lost") {
        throw new PliuzLeaseLostError(`run ${id}: ${err.detail ?? "lease lost"}`, { runId: id, cause: err });
      }
      throw err;
    }
  }
}

function expiryBound(last: Approval | undefined): number | undefined {
  const at = last?.expires_at ? Date.parse(last.expires_at) : Number.NaN;
  return Number.isNaN(at) ? undefined : at + EXPIRY_GRACE_MS;
}

function timeoutError(
  id: string,
  last: Approval | undefined,
  timeoutMs: number | undefined,
  unreachable: boolean,
): PliuzError {
  if (timeoutMs === undefined && unreachable) {
    return new PliuzConnectionError(`approval ${id}: the Pliuz server stayed unreachable past the request's expiry`);
  }
  if (timeoutMs === undefined) {
    return new PliuzTimeoutError(`approval ${id} is still pending well past its expiry`, { approval: last });
  }
  return new PliuzTimeoutError(`approval ${id} still pending after ${timeoutMs} ms`, { approval: last });
}
