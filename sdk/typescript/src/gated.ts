/**
 * `gated(fn, options)`: put any async function behind a human approval.
 *
 * ```ts
 * const issueRefund = gated(
 *   async ({ orderId, amountCents }: { orderId: string; amountCents: number }) => refund(orderId, amountCents),
 *   { name: "issue_refund", policy: "refunds", redact: ["card.number"], timeoutMs: 15 * 60_000 },
 * );
 * await issueRefund({ orderId: "A-1", amountCents: 5000 }); // waits for the decision, then runs once
 * ```
 *
 * The function takes one JSON object (its arguments, as the approver sees and may
 * edit them) and runs with the approved — possibly edited — arguments, redacted
 * values restored. When it must not run, the call throws a `PliuzDecisionError`
 * (`PliuzRejectedError` with the reviewer's `reason`, `PliuzExpiredError`, ...);
 * when the server cannot be reached it throws and the function does not run.
 */
import { PliuzClient } from "./client.js";
import { type GateRunOptions, prepareCall, runGated } from "./gate.js";

export type ClientSource = PliuzClient | (() => PliuzClient) | undefined;

/** A value given once, or computed from the call's arguments. */
export type PerCall<A, V> = V | ((args: A) => V);

export interface GatedOptions<A extends Record<string, unknown>, R> {
  /** The tool name approvers see and policies match (default: the function's name). */
  name?: string;
  /** The policy to use (default: the server picks the policy whose `tools` match). */
  policy?: string;
  /** Argument paths to mask before they leave the process, e.g. `["card.number", "items[*].ssn"]`. */
  redact?: readonly string[];
  /** JSON schema of the arguments (validates edits on the server). */
  toolSchema?: Record<string, unknown>;
  /** Whole-call deadline in ms (create, wait, claim); then `PliuzTimeoutError`. Default: until the request expires. */
  timeoutMs?: number;
  /** Withdraw the request when `timeoutMs` passes. Default false (a retry re-attaches). */
  cancelOnTimeout?: boolean;
  /** Groups calls of one conversation; part of the idempotency key. */
  sessionId?: PerCall<A, string | undefined>;
  /** Who asked (e.g. the end user); the originator cannot approve their own request. */
  originator?: PerCall<A, string | undefined>;
  /** Conversation shown to the approver. */
  contextMessages?: PerCall<A, unknown[] | undefined>;
  clientMetadata?: Record<string, unknown>;
  /** A client, or a factory (default: `new PliuzClient()` from the environment, made on first use). */
  client?: ClientSource;
  /** Put an excerpt of the result in the execution report (default true). */
  reportOutput?: boolean;
  reportExcerpt?: (result: R) => string | undefined;
}

/** Per call: the caller's signal, and a call id that tells otherwise identical calls apart. */
export interface GatedCallOptions {
  signal?: AbortSignal;
  callId?: string;
  sessionId?: string;
}

export type GatedFunction<A, R> = (args: A, call?: GatedCallOptions) => Promise<R>;

const resolve = <A, V>(v: PerCall<A, V> | undefined, args: A): V | undefined =>
  typeof v === "function" ? (v as (a: A) => V)(args) : v;

export function clientFrom(source: ClientSource): () => PliuzClient {
  let made: PliuzClient | undefined;
  return () => {
    if (source instanceof PliuzClient) return source;
    if (typeof source === "function") return source();
    made ??= new PliuzClient();
    return made;
  };
}

export function gated<A extends Record<string, unknown>, R>(
  fn: (args: A) => R | Promise<R>,
  options: GatedOptions<A, R> = {},
): GatedFunction<A, Awaited<R>> {
  const name = options.name ?? fn.name;
  if (!name) throw new TypeError("gated: give the tool a name ({ name }) — the function is anonymous");
  const getClient = clientFrom(options.client);
  return async (args: A, call: GatedCallOptions = {}): Promise<Awaited<R>> => {
    const client = getClient();
    const prepared = prepareCall(name, args, {
      secret: client.apiKey,
      policy: options.policy,
      redact: options.redact,
      toolSchema: options.toolSchema,
      callId: call.callId,
      sessionId: call.sessionId ?? resolve(options.sessionId, args),
      originator: resolve(options.originator, args),
      contextMessages: resolve(options.contextMessages, args),
      clientMetadata: options.clientMetadata,
    });
    const run: GateRunOptions<Awaited<R>> = {
      signal: call.signal,
      timeoutMs: options.timeoutMs,
      cancelOnTimeout: options.cancelOnTimeout,
      reportOutput: options.reportOutput,
      reportExcerpt: options.reportExcerpt,
    };
    return runGated(client, prepared, async (approved): Promise<Awaited<R>> => await fn(approved as A), run);
  };
}
