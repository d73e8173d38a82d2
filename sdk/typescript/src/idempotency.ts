/**
 * Deterministic idempotency keys, the same as the Python SDK's.
 *
 * The same tool, arguments, session and framework call id always give the same
 * key, so a retried or restarted call re-attaches to the request it created
 * before instead of asking a human twice. The key is an HMAC-SHA256 keyed with
 * the agent's API key: stable across restarts, and it reveals nothing about
 * (possibly redacted) argument values to the server.
 */
import { createHmac } from "node:crypto";
import { canonicalJson } from "./canonical.js";

const PREFIX = "pz1_";

export interface IdempotencyKeyOptions {
  sessionId?: string | null | undefined;
  callId?: string | null | undefined;
  /** The agent's API key (the HMAC key). */
  secret?: string | null | undefined;
}

/** `"pz1_" + 64 hex chars` for this call (68 chars, within the 200-char limit). */
export function idempotencyKey(
  toolName: string,
  toolArgs: Record<string, unknown>,
  options: IdempotencyKeyOptions = {},
): string {
  const material = canonicalJson({
    v: 1,
    tool: toolName,
    args: toolArgs,
    session: options.sessionId ?? null,
    call: options.callId ?? null,
  });
  return (
    PREFIX +
    createHmac("sha256", options.secret ?? "")
      .update(material, "utf8")
      .digest("hex")
  );
}
