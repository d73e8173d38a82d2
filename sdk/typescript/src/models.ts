/**
 * The resources of the Pliuz HTTP API (`/api/v1`), exactly as the server sends
 * them (snake_case field names, RFC 3339 time strings). Unknown fields sent by a
 * newer server are kept.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/**
 * `pending` → `approved`/`rejected`/`responded`/`expired`/`cancelled` (`responded`: a
 * person answered in the tool's place; it never runs and the model gets `decision.reason`);
 * `approved` → `executing`
 * (the execution was claimed) → `executed` (its outcome was reported). An
 * `executing` request whose report never arrived has an unknown outcome.
 */
export type ApprovalStatus =
  | "pending"
  | "approved"
  | "rejected"
  | "responded"
  | "expired"
  | "cancelled"
  | "executing"
  | "executed";

export const TERMINAL_STATUSES: ReadonlySet<ApprovalStatus> = new Set([
  "rejected",
  "responded",
  "expired",
  "cancelled",
  "executed",
]);

/** One approver's approval towards `required_approvals`. */
export interface Vote {
  by: string;
  at?: string | null;
}

/** How the request was settled. `by` is `user:EMAIL`, `policy:NAME`, `agent:NAME` or `system`. */
export interface Decision {
  outcome: "approved" | "rejected" | "responded" | "expired" | "cancelled";
  by?: string | null;
  reason?: string | null;
  edited?: boolean;
  at?: string | null;
}

/** The execution claim and, once reported, its outcome (`null` while `executing`). */
export interface Execution {
  claim_id?: string | null;
  claimed_at?: string | null;
  outcome?: "success" | "error" | null;
  latency_ms?: number | null;
  output_excerpt?: string | null;
  reported_at?: string | null;
}

/** An approval request, as returned by every approval endpoint. */
export interface Approval {
  id: string;
  status: ApprovalStatus;
  tool_name: string;
  tool_args: JsonObject;
  /** Arguments an editor proposed while more approvals are needed (quorum > 1). */
  proposed_args?: JsonObject | null;
  /** Set when approved: the arguments to run with (`tool_args` unless edited). */
  final_args?: JsonObject | null;
  tool_schema?: JsonObject | null;
  policy?: string | null;
  agent?: string | null;
  originator?: string | null;
  call_id?: string | null;
  session_id?: string | null;
  context_messages?: JsonValue[] | null;
  client_metadata?: JsonObject | null;
  idempotency_key?: string | null;
  args_digest?: string | null;
  required_approvals?: number | null;
  allowed_decisions?: string[] | null;
  approvals?: Vote[];
  decision?: Decision | null;
  execution?: Execution | null;
  created_at?: string | null;
  expires_at?: string | null;
  decided_at?: string | null;
  /** Set once approved: the execution must be claimed (started) before this. */
  execute_before?: string | null;
  is_replay?: boolean;
  [key: string]: unknown;
}

export interface ApprovalList {
  items: Approval[];
  next_cursor?: string | null;
}

/**
 * `waiting` → `ready` (every approval settled) → `running` (leased) → `completed`
 * or `failed` (or `waiting`/`ready` again when it paused once more).
 */
export type RunStatus = "waiting" | "ready" | "running" | "completed" | "failed";

/** A stored durable run (never contains the state). */
export interface Run {
  id: string;
  agent: string;
  status: RunStatus;
  approval_ids: string[];
  state_sha256: string;
  metadata: JsonObject;
  lease_expires_at: string | null;
  created_at: string;
  updated_at: string;
  pause_count: number;
  [key: string]: unknown;
}

/** What `POST /runs/{id}/claim` returns: the lease and the (digest-checked) state. */
export interface ClaimedRun {
  run: Run;
  lease_token: string;
  state: string;
  state_sha256: string;
  approvals: Approval[];
}

/** A `pliuz-receipt/v1` document (verify it offline with `pliuz audit verify-receipt`). */
export interface Receipt {
  format: string;
  approval_id: string;
  [key: string]: unknown;
}
