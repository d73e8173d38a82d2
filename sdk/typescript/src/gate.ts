/**
 * The gate itself, shared by {@link gated} and the `@openai/agents` adapter.
 *
 * One gated call: redact → create (idempotent) → wait → check the outcome →
 * restore redacted values → claim the execution → run → report the outcome.
 *
 * The claim is what makes the body run at most once: the server hands it to one
 * caller only. A request that was claimed and never reported (the process died,
 * the report could not be delivered) stays `executing`: every later attempt is
 * told "outcome unknown — check before retrying" and never runs it again.
 *
 * The create carries the call's claim id: when the policy approves the request at
 * once, the server claims the execution for it in the same commit and answers
 * `executing` with that claim, and the separate claim request is skipped (one
 * durable write before the body runs instead of two).
 */
import { type CallOptions, type CreateApprovalRequest, newClaimId, type PliuzClient } from "./client.js";
import {
  PliuzAlreadyExecutedError,
  PliuzAPIError,
  PliuzArgumentsError,
  PliuzCancelledError,
  PliuzConflictError,
  PliuzDecisionError,
  PliuzError,
  PliuzExecutionExpiredError,
  PliuzExpiredError,
  PliuzOutcomeUnknownError,
  PliuzRejectedError,
  PliuzRespondedError,
  PliuzTimeoutError,
} from "./errors.js";
import { idempotencyKey } from "./idempotency.js";
import type { Approval } from "./models.js";
import { type Redacted, redact, restore } from "./redaction.js";
import { Deadline, isTransient, retryDelay } from "./retry.js";

export const OUTPUT_EXCERPT_CHARS = 500;
/** The claim always gets at least this long, even when the decision came at the very end of the deadline. */
export const CLAIM_MIN_MS = 1000;
const CANCEL_AFTER_ABORT_MS = 5000;

/** Everything needed to ask for approval of one call. */
export interface PreparedCall {
  toolName: string;
  args: Record<string, unknown>;
  redacted: Redacted;
  idempotencyKey: string;
  request: CreateApprovalRequest;
}

export interface PrepareOptions {
  secret: string;
  policy?: string | undefined;
  redact?: readonly string[] | undefined;
  toolSchema?: Record<string, unknown> | null | undefined;
  callId?: string | null | undefined;
  sessionId?: string | null | undefined;
  originator?: string | null | undefined;
  contextMessages?: unknown[] | null | undefined;
  clientMetadata?: Record<string, unknown> | undefined;
  idempotencyKey?: string | undefined;
}

/** Redact the arguments and build the create request and its idempotency key. */
export function prepareCall(toolName: string, args: Record<string, unknown>, o: PrepareOptions): PreparedCall {
  try {
    JSON.stringify(args);
  } catch (err) {
    throw new PliuzArgumentsError(`arguments of '${toolName}' are not JSON serializable: ${String(err)}`);
  }
  const masked = redact(args, o.redact ?? []);
  const key =
    o.idempotencyKey ?? idempotencyKey(toolName, args, { sessionId: o.sessionId, callId: o.callId, secret: o.secret });
  const metadata: Record<string, unknown> = { ...(o.clientMetadata ?? {}) };
  if (masked.originals.length > 0 && !("redacted_paths" in metadata)) metadata.redacted_paths = masked.paths;
  return {
    toolName,
    args,
    redacted: masked,
    idempotencyKey: key,
    request: {
      toolName,
      toolArgs: masked.args,
      policy: o.policy,
      toolSchema: o.toolSchema,
      callId: o.callId,
      sessionId: o.sessionId,
      originator: o.originator,
      contextMessages: o.contextMessages,
      clientMetadata: Object.keys(metadata).length > 0 ? metadata : undefined,
      idempotencyKey: key,
    },
  };
}

function outcomeUnknown(approval: Approval): PliuzOutcomeUnknownError {
  const when = approval.execution?.claimed_at ? ` at ${approval.execution.claimed_at}` : "";
  return new PliuzOutcomeUnknownError(
    `${approval.tool_name} was already started for this request (${approval.id})${when} and its outcome was never reported: outcome unknown — check before retrying. It is not run again.`,
    { approval },
  );
}

/**
 * Throw the matching outcome error unless `approval` is `approved`: rejected →
 * {@link PliuzRejectedError} (with `reason`), responded → {@link PliuzRespondedError}
 * (with `response`), expired, cancelled, executing →
 * {@link PliuzOutcomeUnknownError}, executed → {@link PliuzAlreadyExecutedError},
 * pending → {@link PliuzTimeoutError}.
 */
export function raiseForOutcome(approval: Approval): void {
  const name = approval.tool_name;
  const reason = approval.decision?.reason ?? undefined;
  switch (approval.status) {
    case "approved":
      return;
    case "rejected": {
      const by = approval.decision?.by;
      throw new PliuzRejectedError(`${name} was rejected${by ? ` by ${by}` : ""}${reason ? `: ${reason}` : ""}`, {
        reason,
        approval,
      });
    }
    case "responded": {
      const by = approval.decision?.by;
      throw new PliuzRespondedError(`${name} was answered${by ? ` by ${by}` : ""} instead of being run`, {
        response: reason ?? "",
        approval,
      });
    }
    case "expired":
      throw new PliuzExpiredError(`the approval request for ${name} expired before anyone decided`, { approval });
    case "cancelled":
      throw new PliuzCancelledError(`the approval request for ${name} was cancelled${reason ? `: ${reason}` : ""}`, {
        approval,
      });
    case "executing":
      throw outcomeUnknown(approval);
    case "executed":
      throw new PliuzAlreadyExecutedError(
        `${name} was already executed for this request (${approval.id}); not running it again`,
        { approval },
      );
    default:
      throw new PliuzTimeoutError(`the approval request for ${name} is still pending`, { approval });
  }
}

/** The arguments to run with: the approved `final_args` with redacted originals restored. */
export function finalArgs(approval: Approval, prepared: PreparedCall): Record<string, unknown> {
  raiseForOutcome(approval);
  return approvedArgs(approval, prepared);
}

function approvedArgs(approval: Approval, prepared: PreparedCall): Record<string, unknown> {
  return restore(approval.final_args ?? approval.tool_args, prepared.redacted);
}

export function excerpt(value: unknown, limit = OUTPUT_EXCERPT_CHARS): string {
  let text: string;
  if (typeof value === "string") text = value;
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

// ---------------------------------------------------------------------------
// One in-flight call per idempotency key and process: two concurrent identical
// calls would otherwise both see "approved"; the second waits, then re-attaches
// and sees "executed".
// ---------------------------------------------------------------------------

const keyLocks = new Map<string, Promise<void>>();

async function withKeyLock<T>(key: string, work: () => Promise<T>): Promise<T> {
  const previous = keyLocks.get(key) ?? Promise.resolve();
  let release: () => void = () => {};
  const mine = new Promise<void>((resolve) => {
    release = resolve;
  });
  const chained = previous.then(() => mine);
  keyLocks.set(key, chained);
  await previous;
  try {
    return await work();
  } finally {
    release();
    if (keyLocks.get(key) === chained) keyLocks.delete(key);
  }
}

// ---------------------------------------------------------------------------
// Reports kept in this process until the server has them
// ---------------------------------------------------------------------------

/** An execution outcome on its way to the server. */
export interface UndeliveredReport {
  approvalId: string;
  toolName: string;
  claimId: string;
  outcome: "success" | "error";
  latencyMs: number;
  outputExcerpt: string | undefined;
  lastError: string | undefined;
}

const undelivered = new Map<string, UndeliveredReport>();

/**
 * Execution reports this process could not deliver (yet). The tool **did** run;
 * until the report lands the server shows the request as `executing` (outcome unknown).
 */
export function undeliveredReports(): UndeliveredReport[] {
  return [...undelivered.values()].map((r) => ({ ...r }));
}

async function deliver(client: PliuzClient, report: UndeliveredReport): Promise<void> {
  const deadline = new Deadline(client.reportTimeoutMs);
  for (let attempt = 0; ; attempt++) {
    try {
      await client.reportExecution(
        report.approvalId,
        {
          outcome: report.outcome,
          claimId: report.claimId,
          latencyMs: report.latencyMs,
          outputExcerpt: report.outputExcerpt,
        },
        { timeoutMs: Math.max(1, deadline.remaining() ?? 1) },
      );
      undelivered.delete(report.approvalId);
      return;
    } catch (err) {
      const left = deadline.remaining() ?? 0;
      const refused = err instanceof PliuzAPIError && !isTransient(err);
      if (!(err instanceof PliuzError) || left <= 0 || refused) {
        report.lastError = String(err);
        console.error(
          `pliuz: the execution report of ${report.toolName} (approval ${report.approvalId}, claim ${report.claimId}) could not be delivered within ${client.reportTimeoutMs} ms: ${String(err)}. The tool DID run (outcome ${report.outcome}); until the report lands the server shows the call as 'executing' (outcome unknown). See undeliveredReports().`,
        );
        return;
      }
      await deadline.sleep(retryDelay(err, attempt));
    }
  }
}

// ---------------------------------------------------------------------------
// The flow
// ---------------------------------------------------------------------------

export interface GateRunOptions<T> extends CallOptions {
  /** Withdraw the request when the deadline passes while it is pending. */
  cancelOnTimeout?: boolean | undefined;
  /** Put an excerpt of the result in the execution report (default true). */
  reportOutput?: boolean | undefined;
  /** What the report says about a successful result (default: an excerpt). */
  reportExcerpt?: ((result: T) => string | undefined) | undefined;
  /** Called once when the request is pending (a human is being asked). */
  onPending?: ((approval: Approval) => void | Promise<void>) | undefined;
}

async function cancelQuietly(client: PliuzClient, id: string, reason: string): Promise<void> {
  try {
    await client.cancelApproval(id, { reason, timeoutMs: CANCEL_AFTER_ABORT_MS });
  } catch (err) {
    console.warn(`pliuz: could not cancel ${id}: ${String(err)}`);
  }
}

function claimRefused(err: PliuzConflictError, approval: Approval, fresh: Approval | undefined): PliuzError {
  const seen = fresh ?? approval;
  if (err.code === "execution_expired") {
    return new PliuzExecutionExpiredError(`${approval.tool_name} was approved but not started in time: ${err.detail}`, {
      approval: seen,
    });
  }
  if (err.code === "execution_claimed" && fresh?.status !== "executed") return outcomeUnknown(seen);
  if (fresh !== undefined && fresh.status !== "approved") {
    try {
      raiseForOutcome(fresh);
    } catch (outcome) {
      if (outcome instanceof PliuzDecisionError) return outcome;
      throw outcome;
    }
  }
  return err;
}

/** Run `execute` behind the gate; throws a {@link PliuzDecisionError} when it must not run. */
export function runGated<T>(
  client: PliuzClient,
  prepared: PreparedCall,
  execute: (args: Record<string, unknown>) => Promise<T>,
  options: GateRunOptions<T> = {},
): Promise<T> {
  return withKeyLock(prepared.idempotencyKey, () => gateOnce(client, prepared, execute, options));
}

async function gateOnce<T>(
  client: PliuzClient,
  prepared: PreparedCall,
  execute: (args: Record<string, unknown>) => Promise<T>,
  options: GateRunOptions<T>,
): Promise<T> {
  const deadline = new Deadline(options.timeoutMs, options.signal);
  const call = (d: Deadline): CallOptions => ({ signal: d.signal, timeoutMs: d.remaining() });
  const claimId = unansweredCreates.get(prepared.idempotencyKey) ?? newClaimId();
  unansweredCreates.delete(prepared.idempotencyKey);
  let approval: Approval;
  try {
    approval = await client.createApproval({ ...prepared.request, claimId }, call(deadline));
  } catch (err) {
    // It may have landed and claimed: the next call with this key presents the same id
    // and finds its own claim instead of "outcome unknown".
    unansweredCreates.set(prepared.idempotencyKey, claimId);
    throw err;
  }
  const finish = async (outcome: "success" | "error", output: string | undefined, ms: number): Promise<void> => {
    const report: UndeliveredReport = {
      approvalId: approval.id,
      toolName: prepared.toolName,
      claimId,
      outcome,
      latencyMs: ms,
      outputExcerpt: output,
      lastError: undefined,
    };
    undelivered.set(approval.id, report);
    await deliver(client, report);
  };
  let args: Record<string, unknown>;
  if (claimedFor(approval, claimId)) {
    try {
      args = approvedArgs(approval, prepared);
    } catch (err) {
      // The server holds this call's claim: say the body never ran, or the request
      // would stay "outcome unknown".
      if (err instanceof PliuzError) await finish("error", `not run: ${err.message}`, 0);
      throw err;
    }
  } else {
    [approval, args] = await awaitAndClaim(client, prepared, approval, claimId, deadline, options);
  }
  const started = performance.now();
  const elapsed = (): number => Math.max(0, Math.round(performance.now() - started));
  let result: T;
  try {
    result = await execute(args);
  } catch (err) {
    if (err instanceof PliuzArgumentsError) await finish("error", `not run: ${err.message}`, 0);
    else await finish("error", excerpt(reportText(err)), elapsed());
    throw err;
  }
  const text =
    options.reportOutput === false
      ? undefined
      : options.reportExcerpt
        ? options.reportExcerpt(result)
        : excerpt(result);
  await finish("success", text, elapsed());
  return result;
}

/** Whether the server granted this call the execution with its create. */
function claimedFor(approval: Approval, claimId: string): boolean {
  return approval.status === "executing" && approval.execution?.claim_id === claimId;
}

/** idempotency key → claim id sent with a create that got no answer. */
const unansweredCreates = new Map<string, string>();

/** Wait for the decision, check it and claim the execution for `claimId`: the request as
 * decided and the arguments to run with. */
async function awaitAndClaim<T>(
  client: PliuzClient,
  prepared: PreparedCall,
  created: Approval,
  claimId: string,
  deadline: Deadline,
  options: GateRunOptions<T>,
): Promise<[Approval, Record<string, unknown>]> {
  const call = (d: Deadline): CallOptions => ({ signal: d.signal, timeoutMs: d.remaining() });
  let approval = created;
  if (approval.status === "pending") {
    await options.onPending?.(approval);
    try {
      approval = await client.waitForDecision(approval, call(deadline));
    } catch (err) {
      if (err instanceof PliuzTimeoutError && options.cancelOnTimeout) {
        await cancelQuietly(client, approval.id, "client timeout");
      } else if (deadline.signal?.aborted) {
        // The caller gave up while a human was being asked: withdraw the request so
        // nobody approves a call that will never run.
        await cancelQuietly(client, approval.id, "the agent cancelled the call while it waited for approval");
      }
      throw err;
    }
  }
  const kept = undelivered.get(approval.id);
  if (approval.status === "executing" && kept !== undefined && kept.claimId === approval.execution?.claim_id) {
    await deliver(client, kept);
    throw new PliuzAlreadyExecutedError(
      `${prepared.toolName} already ran in this process for this request (${approval.id}), outcome ${kept.outcome}; not running it again`,
      { approval },
    );
  }
  const args = finalArgs(approval, prepared);
  const claimDeadline = deadline.withFloor(CLAIM_MIN_MS);
  try {
    await client.claimExecution(approval.id, { claimId, ...call(claimDeadline) });
  } catch (err) {
    if (!(err instanceof PliuzConflictError)) throw err;
    let fresh: Approval | undefined;
    try {
      fresh = await client.getApproval(approval.id, call(claimDeadline));
    } catch {
      fresh = undefined;
    }
    throw claimRefused(err, approval, fresh);
  }
  return [approval, args];
}

function reportText(err: unknown): string {
  if (err !== null && typeof err === "object" && "reportText" in err && typeof err.reportText === "string") {
    return err.reportText;
  }
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
