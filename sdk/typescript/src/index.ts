/**
 * `@pliuz/sdk`: human approval for AI agent tool calls with Pliuz.
 *
 * - {@link PliuzClient}: the HTTP API (approvals, execution claim, receipts, durable runs).
 * - {@link gated}: put any async function behind an approval.
 * - {@link verifyWebhook}: check a Standard Webhooks delivery from Pliuz.
 * - `@pliuz/sdk/agents`: `gatedTool` and durable `Runs` for `@openai/agents`.
 */
export * from "./errors.js";
export type * from "./models.js";
export { TERMINAL_STATUSES } from "./models.js";
export {
  DEFAULT_BASE_URL,
  PliuzClient,
  newClaimId,
  stateSha256,
  type CallOptions,
  type CreateApprovalRequest,
  type DecisionKind,
  type ListApprovalsQuery,
  type PliuzClientOptions,
  type ReportExecution,
} from "./client.js";
export { gated, type GatedCallOptions, type GatedFunction, type GatedOptions, type ClientSource } from "./gated.js";
export {
  excerpt,
  finalArgs,
  prepareCall,
  raiseForOutcome,
  runGated,
  undeliveredReports,
  type GateRunOptions,
  type PreparedCall,
  type UndeliveredReport,
} from "./gate.js";
export { canonicalJson } from "./canonical.js";
export { idempotencyKey, type IdempotencyKeyOptions } from "./idempotency.js";
export { REDACTED, formatPath, parsePath, redact, relaxSchema, restore, type Redacted } from "./redaction.js";
export { DEFAULT_TOLERANCE_S, signWebhook, verifyWebhook, type WebhookEvent, type WebhookHeaders } from "./webhooks.js";
