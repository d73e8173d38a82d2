/**
 * Which mode a gated `@openai/agents` tool runs in (internal). {@link Runs} sets a
 * {@link DurableScope} around one `Runner.run`; gated tools see it through an
 * `AsyncLocalStorage` (it follows the runner's promises into tool calls). Without
 * a scope a gated tool blocks in the call (the blocking mode).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { PliuzClient } from "../client.js";
import type { Approval } from "../models.js";

export interface DurableScope {
  client: PliuzClient;
  /** The session the run was started with (part of every request's idempotency key). */
  sessionId: string | undefined;
  /** call id → the decided request a resumed call paused on. */
  decided: Map<string, Approval>;
  /** call id → the request created for that call's interruption in this run. */
  created: Map<string, Approval>;
  /** call id → why its request could not be created (the call pauses anyway; fail closed). */
  failures: Map<string, unknown>;
}

const storage = new AsyncLocalStorage<DurableScope>();

export const currentScope = (): DurableScope | undefined => storage.getStore();

export function inScope<T>(scope: DurableScope, work: () => Promise<T>): Promise<T> {
  return storage.run(scope, work);
}
