/**
 * `@pliuz/sdk`: human approval for AI agent tool calls with Pliuz.
 *
 * - {@link PliuzClient}: the HTTP API (approvals, execution claim, receipts, durable runs).
 * - {@link gated}: put any async function behind an approval.
 * - {@link verifyWebhook}: check a Standard Webhooks delivery from Pliuz.
 * - `@pliuz/sdk/agents`: `gatedTool` and durable `Runs` for `@openai/agents`.
 */

export { canonicalJson } from "./canonical.js";
export {
  type CallOptions,
  type CreateApprovalRequest,
  DEFAULT_BASE_URL,
  type DecisionKind,
  type ListApprovalsQuery,
  newClaimId,
  PliuzClient,
  type PliuzClientOptions,
  type ReportExecution,
  stateSha256,
} from "./client.js";
export * from "./errors.js";
export {
  excerpt,
  finalArgs,
  type GateRunOptions,
  type PreparedCall,
  prepareCall,
  raiseForOutcome,
  runGated,
  type UndeliveredReport,
  undeliveredReports,
} from "./gate.js";
export { type ClientSource, type GatedCallOptions, type GatedFunction, type GatedOptions, gated } from "./gated.js";
export { type IdempotencyKeyOptions, idempotencyKey } from "./idempotency.js";
export type * from "./models.js";
export { TERMINAL_STATUSES } from "./models.js";
export { formatPath, parsePath, REDACTED, type Redacted, redact, relaxSchema, restore } from "./redaction.js";
export { DEFAULT_TOLERANCE_S, signWebhook, verifyWebhook, type WebhookEvent, type WebhookHeaders } from "./webhooks.js";
