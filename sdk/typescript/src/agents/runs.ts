/**
 * Durable runs for `@openai/agents`: pause, store the `RunState` in Pliuz, resume anywhere.
 *
 * ```ts
 * const runs = new Runs();                           // PLIUZ_API_KEY / PLIUZ_BASE_URL
 * const started = await runs.run(agent, "refund order 1042");
 * if (started.runId) save(started.runId);            // paused: the process may exit
 *
 * // later, in any process (a webhook handler, a worker, another host):
 * const done = await runs.resume(runId, agent);
 * console.log(done.finalOutput);
 * ```
 *
 * Under {@link Runs.run} each gated tool call raises the SDK's own interruption
 * (`needsApproval`) and opens its Pliuz request (the same request as the blocking
 * mode: call id, session, redaction, idempotency key); `result.state.toString()` is
 * stored with `POST /api/v1/runs`. {@link Runs.resume} claims the run (a lease: one
 * resumer at a time), checks the state's SHA-256 against the recorded digest before
 * anything is deserialized (`RunState.fromString`), applies each decision — approve →
 * `state.approve`, reject/expire/cancel → `state.reject` with the reviewer's reason —
 * and continues the run. Approved calls run through the same gate as the blocking mode:
 * edits run with the approved arguments, and the execution claim makes the tool body run
 * once, whoever resumes and however often.
 */
import { createHash } from "node:crypto";
import { type Agent, Runner, type RunResult, RunState, type RunToolApprovalItem } from "@openai/agents";
import { type CallOptions, DEFAULT_LEASE_S, MAX_RUN_WAIT_S, type PliuzClient } from "../client.js";
import { PliuzConflictError, PliuzDecisionError, PliuzError, PliuzLeaseLostError, PliuzRunError } from "../errors.js";
import { raiseForOutcome } from "../gate.js";
import { type ClientSource, clientFrom } from "../gated.js";
import type { Approval, ClaimedRun, JsonObject, Run, RunStatus } from "../models.js";
import { parseArguments } from "./gatedTool.js";
import { messageFor, notRun } from "./messages.js";
import { type DurableScope, inScope } from "./scope.js";

/** Metadata keys under which Runs records the starting agent and the session of a run. */
export const AGENT_METADATA_KEY = "pliuz_agent";
export const SESSION_METADATA_KEY = "pliuz_session";
/** Rounds of "the model sent unreadable arguments, tell it and go on" before giving up. */
const MAX_LOCAL_ROUNDS = 10;

type AnyAgent = Agent<any, any>;
type AnyResult = RunResult<any, AnyAgent>;
type AnyState = RunState<any, AnyAgent>;

/** Options passed on to every `Runner.run` (no `stream`: durable runs are not streamed). */
export interface RunnerRunOptions {
  context?: unknown;
  maxTurns?: number;
  signal?: AbortSignal;
}

export interface RunsOptions {
  /** A client or a factory (default: one from `PLIUZ_API_KEY` / `PLIUZ_BASE_URL`). */
  client?: ClientSource;
  /** The `Runner` to use (its `RunConfig`: model provider, tracing...). Default `new Runner()`. */
  runner?: Runner;
  /** How long a resumer holds a run before another may take it over (10-3600 s; default 300). Heartbeats extend it. */
  leaseSeconds?: number;
  /** Between heartbeats (default: a third of the lease). */
  heartbeatEveryMs?: number;
}

/** What {@link Runs.run} and {@link Runs.resume} return. */
export interface RunsResult {
  /** The stored run (`undefined` when `run` finished without pausing). */
  runId: string | undefined;
  /** `waiting`/`ready` when paused, `completed`, or `finished` for a run that never paused. */
  status: RunStatus | "finished";
  /** The requests the run waits on. */
  approvals: Approval[];
  finalOutput: unknown;
  /** The SDK's result of this call (`undefined` if nothing ran). */
  result: AnyResult | undefined;
  run: Run | undefined;
  paused: boolean;
}

function result(
  runId: string | undefined,
  status: RunsResult["status"],
  extra: Partial<Omit<RunsResult, "runId" | "status" | "paused">> = {},
): RunsResult {
  return {
    runId,
    status,
    approvals: extra.approvals ?? [],
    finalOutput: extra.finalOutput,
    result: extra.result,
    run: extra.run,
    paused: status === "waiting" || status === "ready",
  };
}

const callIdOf = (item: RunToolApprovalItem): string | undefined => {
  const raw = item.rawItem as { callId?: unknown };
  return typeof raw.callId === "string" && raw.callId ? raw.callId : undefined;
};

function unreadable(item: RunToolApprovalItem): string | undefined {
  return parseArguments(item.arguments) === undefined
    ? notRun(item.name ?? "the tool", "its arguments are not a JSON object (send {} for a call without arguments).")
    : undefined;
}

/** `undefined` to approve; else what the model is told instead of the tool's output. */
function decisionMessage(approval: Approval): string | undefined {
  // executing/executed: the gate reports it without running the body again.
  if (approval.status === "approved" || approval.status === "executing" || approval.status === "executed")
    return undefined;
  try {
    raiseForOutcome(approval);
  } catch (err) {
    if (err instanceof PliuzDecisionError) return messageFor(approval.tool_name, err, undefined);
    throw err;
  }
  return undefined;
}

function outputSha256(output: unknown): string {
  const text = typeof output === "string" ? output : (JSON.stringify(output) ?? "null");
  return createHash("sha256").update(text, "utf8").digest("hex");
}

export class Runs {
  readonly leaseSeconds: number;
  readonly heartbeatEveryMs: number;
  readonly #client: () => PliuzClient;
  readonly #runner: Runner;

  constructor(options: RunsOptions = {}) {
    const lease = options.leaseSeconds ?? DEFAULT_LEASE_S;
    if (!(lease >= 10 && lease <= 3600)) throw new RangeError("leaseSeconds must be between 10 and 3600");
    this.leaseSeconds = lease;
    this.heartbeatEveryMs = options.heartbeatEveryMs ?? (lease * 1000) / 3;
    this.#client = clientFrom(options.client);
    this.#runner = options.runner ?? new Runner();
  }

  /**
   * Run `agent` on `input`; gated calls pause the run instead of waiting. `metadata`
   * (a small JSON object) is stored with the run; `sessionId` groups its requests.
   */
  async run(
    agent: AnyAgent,
    input: string | Parameters<Runner["run"]>[1],
    options: { metadata?: JsonObject; sessionId?: string; runOptions?: RunnerRunOptions } = {},
  ): Promise<RunsResult> {
    const client = this.#client();
    const scope = newScope(client, options.sessionId);
    let outcome: Paused;
    try {
      outcome = await this.#runToPause(scope, agent, input, options.runOptions);
    } catch (err) {
      await cancelCreated(client, scope, "the agent run failed before it paused");
      throw err;
    }
    if (outcome.state === undefined) {
      return result(undefined, "finished", { finalOutput: outcome.result.finalOutput, result: outcome.result });
    }
    try {
      const approvals = approvalsFor(outcome.waiting, scope, new Map());
      const metadata: JsonObject = { ...(options.metadata ?? {}), [AGENT_METADATA_KEY]: agent.name };
      if (options.sessionId) metadata[SESSION_METADATA_KEY] = options.sessionId;
      const run = await client.createRun(outcome.state.toString(), {
        approvalIds: approvals.map((a) => a.id),
        metadata,
      });
      return result(run.id, run.status, { approvals, result: outcome.result, run });
    } catch (err) {
      await cancelCreated(client, scope, "the paused run could not be stored");
      throw err;
    }
  }

  /**
   * Continue a stored run in this process once its approvals are settled. `agent` is the
   * run's starting agent. With `wait` (default true) it long-polls until the run is ready
   * (at most `waitTimeoutMs`); with `wait: false` it returns `status: "waiting"` at once.
   * A run another process is resuming rejects with {@link PliuzConflictError} `run_claimed`.
   */
  async resume(
    runId: string,
    agent: AnyAgent,
    options: { wait?: boolean; waitTimeoutMs?: number; runOptions?: RunnerRunOptions } = {},
  ): Promise<RunsResult> {
    const client = this.#client();
    const run = await waitReady(client, runId, options.wait ?? true, options.waitTimeoutMs, options.runOptions?.signal);
    if (run.status !== "ready" && run.status !== "running") return result(run.id, run.status, { run });
    const claimed = await client.claimRun(runId, { leaseSeconds: this.leaseSeconds });
    return this.#continue(client, claimed, agent, options.runOptions);
  }

  /**
   * Resume this agent key's ready runs until `signal` aborts: long-polls
   * `GET /api/v1/runs?status=ready` and resumes each run with the starting agent of the
   * same name, at most `concurrency` at a time. Returns once the runs in progress finished.
   */
  async serve(
    agents: AnyAgent[],
    options: {
      signal?: AbortSignal;
      concurrency?: number;
      pollWaitSeconds?: number;
      onResult?: (r: RunsResult) => void | Promise<void>;
      onError?: (runId: string, err: unknown) => void;
      runOptions?: RunnerRunOptions;
    } = {},
  ): Promise<void> {
    const concurrency = options.concurrency ?? 4;
    if (concurrency < 1) throw new RangeError("concurrency must be at least 1");
    const byName = new Map<string, AnyAgent>();
    for (const a of agents) {
      if (byName.has(a.name)) throw new TypeError(`two agents are named '${a.name}': runs are matched by name`);
      byName.set(a.name, a);
    }
    if (byName.size === 0) throw new TypeError("serve needs at least one agent");
    const client = this.#client();
    const active = new Map<string, Promise<void>>();
    const unserved = new Set<string>();
    const stop = options.signal;
    while (!stop?.aborted) {
      const free = concurrency - active.size;
      if (free <= 0) {
        await Promise.race(active.values());
        continue;
      }
      let ready: Run[];
      try {
        ready = await client.listRuns(
          { status: "ready", wait: options.pollWaitSeconds ?? 30, limit: free },
          { signal: stop },
        );
      } catch (err) {
        if (stop?.aborted) break;
        console.warn(`pliuz: polling for ready runs failed: ${String(err)}`);
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      let started = 0;
      for (const run of ready) {
        if (active.has(run.id) || unserved.has(run.id) || active.size >= concurrency) continue;
        const name = run.metadata[AGENT_METADATA_KEY];
        const agent =
          typeof name === "string" ? byName.get(name) : byName.size === 1 ? [...byName.values()][0] : undefined;
        if (agent === undefined) {
          unserved.add(run.id);
          continue;
        }
        const task = (async () => {
          try {
            const r = await this.resume(run.id, agent, { wait: false, runOptions: options.runOptions });
            await options.onResult?.(r);
          } catch (err) {
            if (!(err instanceof PliuzConflictError)) options.onError?.(run.id, err); // a conflict: another worker took it
          } finally {
            active.delete(run.id);
          }
        })();
        active.set(run.id, task);
        started++;
      }
      if (ready.length > 0 && started === 0) await new Promise((r) => setTimeout(r, 1000)); // only runs we cannot take
    }
    await Promise.allSettled(active.values());
  }

  // -- internals -----------------------------------------------------------------

  async #runToPause(
    scope: DurableScope,
    agent: AnyAgent,
    given: Parameters<Runner["run"]>[1],
    runOptions: RunnerRunOptions | undefined,
    runOnce?: (input: Parameters<Runner["run"]>[1]) => Promise<AnyResult>,
  ): Promise<Paused> {
    const once =
      runOnce ??
      ((input: Parameters<Runner["run"]>[1]) =>
        inScope(scope, () => this.#runner.run(agent, input, { ...(runOptions ?? {}) } as never) as Promise<AnyResult>));
    let res = await once(given);
    for (let round = 0; round < MAX_LOCAL_ROUNDS; round++) {
      if (res.interruptions.length === 0) return { result: res, state: undefined, waiting: [] };
      const state = res.state as AnyState;
      const waiting: RunToolApprovalItem[] = [];
      for (const item of res.interruptions) {
        const why = unreadable(item);
        if (why === undefined) waiting.push(item);
        else state.reject(item, { message: why });
      }
      if (waiting.length > 0) return { result: res, state, waiting };
      res = await once(state);
    }
    throw new PliuzRunError(`the model sent unreadable tool arguments ${MAX_LOCAL_ROUNDS} times in a row; giving up`);
  }

  async #continue(
    client: PliuzClient,
    claimed: ClaimedRun,
    agent: AnyAgent,
    runOptions: RunnerRunOptions | undefined,
  ): Promise<RunsResult> {
    const runId = claimed.run.id;
    const token = claimed.lease_token;
    const byCall = new Map<string, Approval>();
    for (const a of claimed.approvals) if (a.call_id) byCall.set(a.call_id, a);
    let state: AnyState;
    try {
      state = (await RunState.fromString(agent, claimed.state)) as AnyState;
      for (const item of state.getInterruptions()) {
        const why = unreadable(item);
        if (why !== undefined) {
          state.reject(item, { message: why });
          continue;
        }
        const callId = callIdOf(item);
        const approval = callId === undefined ? undefined : byCall.get(callId);
        if (approval === undefined) {
          throw new PliuzRunError(
            `run ${runId}: the paused call ${item.name} (${callId}) has no Pliuz request among the run's approvals`,
            { runId },
          );
        }
        const message = decisionMessage(approval);
        if (message === undefined) state.approve(item);
        else state.reject(item, { message });
      }
    } catch (err) {
      // Most likely the wrong starting agent or changed code: store the run back as it was
      // (lease released) so a fixed deployment can resume it.
      await release(client, claimed);
      if (err instanceof PliuzRunError) throw err;
      throw new PliuzRunError(
        `run ${runId}: the stored state could not be restored: ${String(err)}; is '${agent.name}' the run's starting agent?`,
        { runId, cause: err },
      );
    }
    const stored = claimed.run.metadata[SESSION_METADATA_KEY];
    const scope = newScope(client, typeof stored === "string" ? stored : undefined);
    for (const [k, v] of byCall) scope.decided.set(k, v);

    const lease = new AbortController();
    let leaseError: unknown;
    const beat = setInterval(() => {
      client.heartbeatRun(runId, token, { leaseSeconds: this.leaseSeconds }).catch((err: unknown) => {
        if (err instanceof PliuzLeaseLostError) {
          leaseError = err;
          lease.abort(err);
        } else console.warn(`pliuz: heartbeat of run ${runId} failed: ${String(err)}`);
      });
    }, this.heartbeatEveryMs);
    const signal = runOptions?.signal ? AbortSignal.any([runOptions.signal, lease.signal]) : lease.signal;
    let outcome: Paused;
    try {
      outcome = await this.#runToPause(scope, agent, state, runOptions, (input) =>
        inScope(
          scope,
          () => this.#runner.run(agent, input, { ...(runOptions ?? {}), signal } as never) as Promise<AnyResult>,
        ),
      );
    } catch (err) {
      if (leaseError !== undefined) throw leaseError;
      try {
        await client.completeRun(runId, token, { outcome: "failed", error: String(err).slice(0, 1000) });
      } catch (e) {
        console.warn(`pliuz: could not mark run ${runId} failed: ${String(e)}`);
      }
      throw err;
    } finally {
      clearInterval(beat);
    }
    if (leaseError !== undefined) throw leaseError;
    if (outcome.state !== undefined) {
      try {
        const approvals = approvalsFor(outcome.waiting, scope, byCall);
        const run = await client.pauseRun(
          runId,
          token,
          outcome.state.toString(),
          approvals.map((a) => a.id),
        );
        return result(runId, run.status, { approvals, result: outcome.result, run });
      } catch (err) {
        await cancelCreated(client, scope, "the paused run could not be stored");
        throw err;
      }
    }
    const finalOutput = outcome.result.finalOutput;
    const run = await client.completeRun(runId, token, { outputSha256: outputSha256(finalOutput) });
    return result(runId, run.status, { finalOutput, result: outcome.result, run });
  }
}

interface Paused {
  result: AnyResult;
  state: AnyState | undefined;
  waiting: RunToolApprovalItem[];
}

function newScope(client: PliuzClient, sessionId: string | undefined): DurableScope {
  return { client, sessionId, decided: new Map(), created: new Map(), failures: new Map() };
}

async function waitReady(
  client: PliuzClient,
  runId: string,
  wait: boolean,
  waitTimeoutMs: number | undefined,
  signal: AbortSignal | undefined,
): Promise<Run> {
  const until = waitTimeoutMs === undefined ? undefined : Date.now() + waitTimeoutMs;
  const opts: CallOptions = { signal };
  let run = await client.getRun(runId, opts);
  while (wait && run.status === "waiting") {
    const remaining = until === undefined ? MAX_RUN_WAIT_S * 1000 : until - Date.now();
    if (remaining <= 0) break;
    run = await client.getRun(runId, {
      ...opts,
      wait: Math.max(1, Math.min(MAX_RUN_WAIT_S, Math.floor(remaining / 1000))),
    });
  }
  if (run.status === "completed" || run.status === "failed") {
    throw new PliuzRunError(`run ${runId} is already ${run.status}`, { runId });
  }
  return run;
}

/** The Pliuz request of every interruption; fail closed if one has none. */
function approvalsFor(items: RunToolApprovalItem[], scope: DurableScope, earlier: Map<string, Approval>): Approval[] {
  const out: Approval[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    const callId = callIdOf(item);
    const approval = callId === undefined ? undefined : (scope.created.get(callId) ?? earlier.get(callId));
    if (approval === undefined) {
      const cause = callId === undefined ? undefined : scope.failures.get(callId);
      const why =
        cause !== undefined
          ? `its Pliuz request could not be created: ${String(cause)}`
          : "it is not gated by Pliuz (wrap the tool with gatedTool) or its arguments could not be read";
      throw new PliuzRunError(`the run paused on ${item.name} (${callId}), but ${why}; the run was not stored`, {
        cause,
      });
    }
    if (!seen.has(approval.id)) {
      seen.add(approval.id);
      out.push(approval);
    }
  }
  return out;
}

async function cancelCreated(client: PliuzClient, scope: DurableScope, reason: string): Promise<void> {
  for (const approval of scope.created.values()) {
    try {
      await client.cancelApproval(approval.id, { reason, timeoutMs: 5000 });
    } catch (err) {
      if (err instanceof PliuzError) console.warn(`pliuz: could not cancel ${approval.id}: ${err.message}`);
    }
  }
}

/** Store the claimed state back unchanged: the run waits for another resume. */
async function release(client: PliuzClient, claimed: ClaimedRun): Promise<void> {
  try {
    await client.pauseRun(claimed.run.id, claimed.lease_token, claimed.state, claimed.run.approval_ids);
  } catch (err) {
    console.warn(`pliuz: could not release run ${claimed.run.id}: ${String(err)}`);
  }
}
