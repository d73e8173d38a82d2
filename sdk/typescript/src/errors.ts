/**
 * Typed errors. Every error thrown by the SDK is a {@link PliuzError}.
 *
 * HTTP failures are mapped from the RFC 9457 problem+json `code`:
 *
 * ```ts
 * try {
 *   await client.createApproval({ toolName: "issue_refund", toolArgs: { order_id: "A-1" } });
 * } catch (e) {
 *   if (e instanceof PliuzNoMatchingPolicyError) console.log(e.detail); // for people
 *   else if (e instanceof PliuzAPIError) console.log(e.status, e.code);  // for programs
 * }
 * ```
 *
 * Outcomes of waiting for a decision are errors too, so a gated function never
 * runs by accident: {@link PliuzRejectedError} (with `reason`),
 * {@link PliuzExpiredError}, {@link PliuzCancelledError}, {@link PliuzTimeoutError},
 * {@link PliuzAlreadyExecutedError}, {@link PliuzOutcomeUnknownError} and
 * {@link PliuzExecutionExpiredError}.
 */
import type { Approval } from "./models.js";

export class PliuzError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The server could not be reached (DNS, refused or dropped connection). */
export class PliuzConnectionError extends PliuzError {}

/** One field problem of a validation error. */
export interface ProblemFieldError {
  field?: string;
  message?: string;
  [key: string]: unknown;
}

/** The server answered with an error status. Subclasses refine it by `code`. */
export class PliuzAPIError extends PliuzError {
  readonly status: number;
  /** Stable problem code, e.g. `"validation"` (see docs/api.md). */
  readonly code: string | undefined;
  readonly title: string | undefined;
  /** What to fix, for people. */
  readonly detail: string | undefined;
  readonly errors: ProblemFieldError[];
  /** The decoded problem document (or the raw text). */
  readonly body: unknown;

  constructor(
    message: string,
    init: {
      status: number;
      code?: string | undefined;
      title?: string | undefined;
      detail?: string | undefined;
      errors?: ProblemFieldError[];
      body?: unknown;
    },
  ) {
    super(message);
    this.status = init.status;
    this.code = init.code;
    this.title = init.title;
    this.detail = init.detail;
    this.errors = init.errors ?? [];
    this.body = init.body;
  }
}

/** 401 `unauthorized`: missing, unknown or revoked API key. */
export class PliuzAuthenticationError extends PliuzAPIError {}
/** 403 `forbidden`: authenticated, but not allowed to do this. */
export class PliuzForbiddenError extends PliuzAPIError {}
/** 404 `not_found`: no such approval or run, or not one of yours. */
export class PliuzNotFoundError extends PliuzAPIError {}
/**
 * 409: the state does not allow this. Codes: `invalid_transition`, `already_voted`,
 * `concurrent_create`, `execution_claimed`, `execution_expired`,
 * `execution_not_claimed`, `claim_mismatch`, `run_claimed`, `run_not_ready`,
 * `run_completed`, `lease_lost`.
 */
export class PliuzConflictError extends PliuzAPIError {}
/** 409 `idempotency_conflict`: the idempotency key was used before with other arguments. */
export class PliuzIdempotencyConflictError extends PliuzConflictError {}
/**
 * 400/413/415/422: the request is malformed or invalid (`malformed_json`,
 * `payload_too_large`, `unsupported_media_type`, `validation`, `unknown_policy`,
 * `decision_not_allowed`, `schema_violation`); `errors` lists each field problem.
 */
export class PliuzValidationError extends PliuzAPIError {}
/** 422 `no_matching_policy`: no policy covers this tool and there is no default policy. */
export class PliuzNoMatchingPolicyError extends PliuzValidationError {}
/** 429 `rate_limited`; `retryAfterMs` is the server's hint, if any. */
export class PliuzRateLimitError extends PliuzAPIError {
  retryAfterMs: number | undefined;
}
/** 5xx (`internal`, `unavailable`): server-side failure; safe requests are retried. */
export class PliuzServerError extends PliuzAPIError {}

// ---------------------------------------------------------------------------
// Outcomes: the approval settled (or did not) without permission to run.
// ---------------------------------------------------------------------------

/** Base of the outcomes that mean "do not run the tool". `approval` is the last state seen. */
export class PliuzDecisionError extends PliuzError {
  readonly approval: Approval | undefined;
  constructor(message: string, options?: { approval?: Approval | undefined; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.approval = options?.approval;
  }
  get approvalId(): string | undefined {
    return this.approval?.id;
  }
}

/** A human (or an `auto_reject` policy) rejected the request. `reason` says why. */
export class PliuzRejectedError extends PliuzDecisionError {
  readonly reason: string | undefined;
  constructor(message: string, options: { reason?: string | undefined; approval?: Approval }) {
    super(message, { approval: options.approval });
    this.reason = options.reason;
  }
}
/**
 * A person answered in the tool's place (a `respond` decision): the tool does not
 * run, and `response` is what the model gets instead of its result.
 */
export class PliuzRespondedError extends PliuzDecisionError {
  readonly response: string;
  constructor(message: string, options: { response: string; approval?: Approval }) {
    super(message, { approval: options.approval });
    this.response = options.response;
  }
}
/** Nobody decided before the policy's `expires_in` elapsed. */
export class PliuzExpiredError extends PliuzDecisionError {}
/** The request was cancelled (by the agent or an administrator) before a decision. */
export class PliuzCancelledError extends PliuzDecisionError {}
/**
 * The operation's deadline (`timeoutMs`) passed. While waiting for a decision the
 * request stays pending on the server (unless `cancelOnTimeout`); calling again
 * with the same idempotency key re-attaches to it.
 */
export class PliuzTimeoutError extends PliuzDecisionError {}
/** The idempotency key matched a request that was already executed: not run again. */
export class PliuzAlreadyExecutedError extends PliuzDecisionError {}
/**
 * The request was already claimed for execution and no outcome was reported
 * (another process, or an earlier run that crashed). The tool is **not** run
 * again: check whether the action happened before retrying it as a new request.
 */
export class PliuzOutcomeUnknownError extends PliuzDecisionError {}
/** The approval's execution window (policy `execute_within`) closed before the tool started. */
export class PliuzExecutionExpiredError extends PliuzDecisionError {}

/**
 * The approved (possibly edited) arguments cannot be used: they do not fit the
 * tool, or a redacted value cannot be restored. The function is not run.
 */
export class PliuzArgumentsError extends PliuzError {}

/** A durable run cannot be paused, resumed or completed as asked. */
export class PliuzRunError extends PliuzError {
  readonly runId: string | undefined;
  constructor(message: string, options?: { runId?: string | undefined; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.runId = options?.runId;
  }
}
/** The stored run state does not match the SHA-256 the server recorded; it was not deserialized. */
export class PliuzRunStateIntegrityError extends PliuzRunError {}
/** This process no longer holds the run's lease (it expired and another resumer took it). */
export class PliuzLeaseLostError extends PliuzRunError {}

/** A webhook delivery is not authentic (or too old, or malformed): do not act on it. */
export class WebhookVerificationError extends PliuzError {}

type APIErrorClass = new (message: string, init: ConstructorParameters<typeof PliuzAPIError>[1]) => PliuzAPIError;

const CODE_MAP: Record<string, APIErrorClass> = {
  unauthorized: PliuzAuthenticationError,
  forbidden: PliuzForbiddenError,
  not_found: PliuzNotFoundError,
  invalid_transition: PliuzConflictError,
  already_voted: PliuzConflictError,
  concurrent_create: PliuzConflictError,
  execution_claimed: PliuzConflictError,
  execution_expired: PliuzConflictError,
  execution_not_claimed: PliuzConflictError,
  claim_mismatch: PliuzConflictError,
  run_claimed: PliuzConflictError,
  run_not_ready: PliuzConflictError,
  run_completed: PliuzConflictError,
  lease_lost: PliuzConflictError,
  idempotency_conflict: PliuzIdempotencyConflictError,
  malformed_json: PliuzValidationError,
  payload_too_large: PliuzValidationError,
  unsupported_media_type: PliuzValidationError,
  validation: PliuzValidationError,
  unknown_policy: PliuzValidationError,
  decision_not_allowed: PliuzValidationError,
  schema_violation: PliuzValidationError,
  no_matching_policy: PliuzNoMatchingPolicyError,
  rate_limited: PliuzRateLimitError,
  internal: PliuzServerError,
  unavailable: PliuzServerError,
};

const STATUS_MAP: Record<number, APIErrorClass> = {
  400: PliuzValidationError,
  401: PliuzAuthenticationError,
  403: PliuzForbiddenError,
  404: PliuzNotFoundError,
  409: PliuzConflictError,
  413: PliuzValidationError,
  415: PliuzValidationError,
  422: PliuzValidationError,
  429: PliuzRateLimitError,
};

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** The typed error for an error answer (by problem `code`, else by status). */
export function errorFromProblem(status: number, body: unknown, retryAfter: string | null): PliuzAPIError {
  const problem: Record<string, unknown> =
    body !== null && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const code = str(problem.code);
  const cls =
    (code !== undefined ? CODE_MAP[code] : undefined) ??
    (status >= 500 ? PliuzServerError : (STATUS_MAP[status] ?? PliuzAPIError));
  const title = str(problem.title);
  const detail = str(problem.detail);
  const errors = Array.isArray(problem.errors)
    ? (problem.errors.filter((e) => e !== null && typeof e === "object") as ProblemFieldError[])
    : [];
  const summary = detail ?? title ?? (typeof body === "string" && body ? body : "error");
  const err = new cls(`${status} ${code ?? "error"}: ${summary}`, {
    status,
    code,
    title,
    detail,
    errors,
    body,
  });
  if (err instanceof PliuzRateLimitError && retryAfter !== null) {
    const seconds = Number(retryAfter);
    err.retryAfterMs = Number.isFinite(seconds) ? seconds * 1000 : undefined;
  }
  return err;
}
