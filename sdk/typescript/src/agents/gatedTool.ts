/**
 * `gatedTool(tool({...}), { policy })`: a Pliuz approval gate on an `@openai/agents` function tool.
 *
 * Blocking mode (a plain `run(agent, input)`): when the model calls the tool, the
 * gate asks Pliuz and waits; on approval the original tool runs once (the server's
 * execution claim) with the approved — possibly edited — arguments, redacted values
 * restored, and the outcome is reported. Otherwise the tool does not run and the
 * model reads a tool result saying why: rejected (with the reviewer's reason),
 * expired, timed out, outcome unknown, approval server unreachable. It fails closed.
 *
 * Durable mode (under {@link Runs}): the tool's `needsApproval` opens the Pliuz
 * request and the run pauses with the SDK's own interruption; see `Runs`.
 */
import type { FunctionTool, RunContext } from "@openai/agents";
import type { PliuzClient } from "../client.js";
import { PliuzError, PliuzRejectedError } from "../errors.js";
import { excerpt, type PreparedCall, prepareCall, runGated } from "../gate.js";
import { type ClientSource, clientFrom } from "../gated.js";
import type { Approval } from "../models.js";
import { parsePath, relaxSchema } from "../redaction.js";
import { messageFor, notRun } from "./messages.js";
import { currentScope } from "./scope.js";

type AnyFunctionTool = FunctionTool<any, any, any>;
type Ctx = RunContext<unknown>;
type Details = Parameters<AnyFunctionTool["invoke"]>[2];

/** Thrown by a gated tool with `onReject: "throw"`; `run()` rejects with it as is. */
export class PliuzToolRejectedError extends PliuzRejectedError {}

export interface GatedToolOptions {
  /** The policy to use (default: the one whose `tools` match the tool's name). */
  policy?: string;
  /** Argument paths masked before they leave the process (e.g. `["card.number"]`); restored locally. */
  redact?: readonly string[];
  /** Blocking mode: how long to wait for a decision, in ms (default: until the request expires). */
  timeoutMs?: number;
  /** Withdraw the request when `timeoutMs` passes (default false). */
  cancelOnTimeout?: boolean;
  /** Session of the conversation (part of the idempotency key). Default: the `Runs` session, else `context.sessionId`. */
  sessionId?: string | ((ctx: Ctx) => string | undefined);
  /** Who asked; the originator cannot approve their own request. */
  originator?: string | ((ctx: Ctx) => string | undefined);
  /** Conversation shown to the approver. */
  contextMessages?: unknown[] | ((ctx: Ctx) => unknown[] | undefined);
  clientMetadata?: Record<string, unknown>;
  /** A client or a factory (default: `Runs`' client in durable mode, else one from the environment). */
  client?: ClientSource;
  /** `"message"` (default): a rejection is a tool result the model reads; `"throw"`: the run rejects. */
  onReject?: "message" | "throw";
  /** Put an excerpt of the tool's output in the execution report (default true). */
  reportOutput?: boolean;
}

const MARK = Symbol.for("pliuz.gatedTool");

/**
 * What `tool()` returns to the model when its `execute` threw and no `errorFunction`
 * was given. The gate reports such a call as an error, not a success.
 */
const DEFAULT_TOOL_ERROR = "An error occurred while running the tool. Please try again.";

/** The tool failed and the SDK already turned the error into model-visible text. */
class HandledToolFailure extends Error {
  readonly reportText: string;
  constructor(readonly result: unknown) {
    super("tool failed");
    this.reportText = `tool failed: ${String(result)}`;
  }
}

/** True for a tool returned by {@link gatedTool}. */
export function isGatedTool(tool: unknown): boolean {
  return typeof tool === "object" && tool !== null && MARK in tool;
}

function sessionFromContext(ctx: Ctx): string | undefined {
  const user = ctx?.context as Record<string, unknown> | null | undefined;
  if (user !== null && typeof user === "object") {
    const v = user.sessionId ?? user.session_id;
    if (typeof v === "string" && v) return v;
  }
  return undefined;
}

const resolve = <V>(v: V | ((ctx: Ctx) => V) | undefined, ctx: Ctx): V | undefined =>
  typeof v === "function" ? (v as (c: Ctx) => V)(ctx) : v;

/** Details for the original tool without the runner's "timeout already enforced" flag, so its own `timeoutMs` bounds the body only. */
function bodyDetails(details: Details): Details {
  if (details === undefined) return undefined;
  const copy: Record<string | symbol, unknown> = {};
  for (const key of Reflect.ownKeys(details)) {
    if (typeof key === "symbol" && key.description === "functionToolTimeoutAlreadyEnforced") continue;
    copy[key] = (details as Record<string | symbol, unknown>)[key];
  }
  return copy as Details;
}

export function parseArguments(input: string | undefined): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = input?.trim() ? JSON.parse(input) : {};
  } catch {
    return undefined;
  }
  return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : undefined;
}

/** Gate an `@openai/agents` function tool behind a Pliuz approval (see the module docs). */
export function gatedTool<T extends AnyFunctionTool>(original: T, options: GatedToolOptions = {}): T {
  if (original === null || typeof original !== "object" || original.type !== "function") {
    throw new TypeError("gatedTool expects a function tool made with tool({...}) from @openai/agents");
  }
  const onReject = options.onReject ?? "message";
  const name = original.name;
  const patterns = (options.redact ?? []).map(parsePath);
  const schema = relaxSchema(original.parameters as Record<string, unknown>, patterns) ?? undefined;
  const explicitClient = options.client === undefined ? undefined : clientFrom(options.client);
  const defaultClient = clientFrom(undefined);
  const clientFor = (): PliuzClient => explicitClient?.() ?? currentScope()?.client ?? defaultClient();

  const prepare = (
    ctx: Ctx,
    args: Record<string, unknown>,
    callId: string | undefined,
    client: PliuzClient,
    knownKey?: string,
  ): PreparedCall =>
    prepareCall(name, args, {
      secret: client.apiKey,
      policy: options.policy,
      redact: options.redact,
      toolSchema: schema,
      callId,
      sessionId: resolve(options.sessionId, ctx) ?? currentScope()?.sessionId ?? sessionFromContext(ctx),
      originator: resolve(options.originator, ctx),
      contextMessages: resolve(options.contextMessages, ctx),
      clientMetadata: options.clientMetadata,
      idempotencyKey: knownKey,
    });

  const needsApproval = async (ctx: Ctx, input: unknown, callId?: string): Promise<boolean> => {
    const scope = currentScope();
    if (scope === undefined) return original.needsApproval(ctx, input as never, callId);
    const args =
      input !== null && typeof input === "object" && !Array.isArray(input)
        ? (input as Record<string, unknown>)
        : undefined;
    if (args === undefined || callId === undefined) return true; // unreadable: Runs rejects it with a reason
    let approval: Approval;
    try {
      const client = clientFor();
      approval = await client.createApproval(prepare(ctx, args, callId, client).request);
    } catch (err) {
      scope.failures.set(callId, err); // the call pauses anyway; Runs refuses to store the run
      return true;
    }
    if (approval.status !== "pending") return false; // already settled: invoking resolves it through the gate
    scope.created.set(callId, approval);
    return true;
  };

  const invoke = async (ctx: Ctx, input: string, details?: Details): Promise<unknown> => {
    const args = parseArguments(input);
    if (args === undefined)
      return notRun(name, "its arguments are not a JSON object (send {} for a call without arguments).");
    const callId = details?.toolCall?.callId;
    let client: PliuzClient;
    try {
      client = clientFor();
    } catch (err) {
      if (err instanceof PliuzError) return messageFor(name, err, options.timeoutMs);
      throw err;
    }
    const scope = currentScope();
    // A resumed call re-attaches to the request it paused on, whatever this process's session.
    const paused = scope !== undefined && callId !== undefined ? scope.decided.get(callId) : undefined;
    const prepared = prepare(ctx, args, callId, client, paused?.idempotency_key ?? undefined);
    try {
      return await runGated(
        client,
        prepared,
        async (approved) => {
          const output = await original.invoke(ctx, JSON.stringify(approved), bodyDetails(details));
          if (output === DEFAULT_TOOL_ERROR) throw new HandledToolFailure(output);
          return output;
        },
        {
          signal: details?.signal,
          timeoutMs: scope === undefined ? options.timeoutMs : undefined,
          cancelOnTimeout: options.cancelOnTimeout,
          reportOutput: options.reportOutput,
          reportExcerpt: (result) => excerpt(result),
          onPending: async (approval) => {
            if (currentScope() === undefined) return;
            // Durable mode runs a call only once its request was decided: a pending one here is
            // not the call the run paused on. Never wait inside a resumed run.
            await client
              .cancelApproval(approval.id, { reason: "not the call the run paused on", timeoutMs: 5000 })
              .catch(() => {});
            throw new PliuzError(
              `${name} has no decided request for this call: its session, call id or arguments differ from the paused call's`,
            );
          },
        },
      );
    } catch (err) {
      if (err instanceof HandledToolFailure) return err.result; // reported as "error" already
      if (err instanceof PliuzRejectedError && onReject === "throw") {
        throw new PliuzToolRejectedError(err.message, { reason: err.reason, approval: err.approval as never });
      }
      if (err instanceof PliuzError) return messageFor(name, err, options.timeoutMs);
      throw err; // the tool body's own failure, already reported as "error"
    }
  };

  const wrapped = {
    ...original,
    invoke,
    needsApproval,
    // The gate waits for a human inside invoke: the tool's own timeoutMs bounds only its body.
    timeoutMs: undefined,
    [MARK]: true,
  };
  return wrapped as unknown as T;
}
