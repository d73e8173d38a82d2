/** Backoff and deadlines shared by the client and the gate (internal). */
import { setTimeout as sleepFor } from "node:timers/promises";
import {
  PliuzAPIError,
  PliuzConnectionError,
  type PliuzError,
  PliuzRateLimitError,
  PliuzServerError,
} from "./errors.js";

export const INITIAL_BACKOFF_MS = 500;
export const MAX_BACKOFF_MS = 8000;

/** Exponential backoff with "equal jitter": between half and all of `initial * 2**attempt`. */
export function backoffDelay(attempt: number, initial = INITIAL_BACKOFF_MS): number {
  const base = Math.min(MAX_BACKOFF_MS, initial * 2 ** Math.min(attempt, 30));
  return base / 2 + Math.random() * (base / 2);
}

/** Errors worth retrying for a request that is safe to repeat. */
export function isTransient(err: unknown): boolean {
  if (err instanceof PliuzConnectionError) return true;
  if (err instanceof PliuzServerError || err instanceof PliuzRateLimitError) return true;
  return err instanceof PliuzAPIError && err.status === 408;
}

export function retryDelay(err: PliuzError, attempt: number): number {
  if (err instanceof PliuzRateLimitError && err.retryAfterMs !== undefined) {
    return Math.max(0, Math.min(err.retryAfterMs, 60_000));
  }
  return backoffDelay(attempt);
}

/**
 * A whole-operation deadline: the caller's `AbortSignal` and/or `timeoutMs`.
 * Every HTTP attempt, retry pause and long poll of one operation draws from it.
 */
export class Deadline {
  readonly at: number | undefined;
  readonly signal: AbortSignal | undefined;

  constructor(timeoutMs?: number | undefined, signal?: AbortSignal | undefined, at?: number) {
    this.at = at ?? (timeoutMs === undefined ? undefined : Date.now() + Math.max(0, timeoutMs));
    this.signal = signal;
  }

  /** Milliseconds left (`undefined`: no time limit). */
  remaining(): number | undefined {
    return this.at === undefined ? undefined : this.at - Date.now();
  }

  expired(): boolean {
    const left = this.remaining();
    return left !== undefined && left <= 0;
  }

  /** At least `floorMs` from now, whatever is left (a claim must not be cut off half-way). */
  withFloor(floorMs: number): Deadline {
    if (this.at === undefined) return this;
    return new Deadline(undefined, this.signal, Math.max(this.at, Date.now() + floorMs));
  }

  throwIfAborted(): void {
    this.signal?.throwIfAborted();
  }

  /** Sleep `ms` (clipped to the deadline); rejects with the signal's reason if aborted. */
  async sleep(ms: number): Promise<void> {
    const left = this.remaining();
    const wait = Math.max(0, left === undefined ? ms : Math.min(ms, left));
    await sleepFor(wait, undefined, this.signal ? { signal: this.signal } : {});
  }
}
