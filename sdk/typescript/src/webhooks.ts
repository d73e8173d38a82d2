/**
 * Verify Pliuz webhook deliveries (Standard Webhooks signatures).
 *
 * ```ts
 * app.post("/pliuz/webhook", express.raw({ type: "application/json" }), (req, res) => {
 *   let event;
 *   try {
 *     event = verifyWebhook(req.headers, req.body, process.env.PLIUZ_WEBHOOK_SECRET!);
 *   } catch (e) {
 *     return res.sendStatus(400);
 *   }
 *   if (event.type === "run.ready") void resume(event.data.run_id);
 *   res.sendStatus(204);
 * });
 * ```
 *
 * The `webhook-id` is the same across retries of one event: use it to ignore a
 * delivery you already handled.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { WebhookVerificationError } from "./errors.js";

/** Deliveries further than this from the receiver's clock are refused (replay protection). */
export const DEFAULT_TOLERANCE_S = 300;

export type WebhookHeaders =
  | Headers
  | Record<string, string | string[] | undefined>
  | Iterable<readonly [string, string]>;

export interface WebhookEvent {
  type: "run.ready" | "approval.decided" | (string & {});
  timestamp?: string;
  data: Record<string, unknown>;
  [key: string]: unknown;
}

function secretKey(secret: string | Uint8Array): Buffer {
  if (typeof secret !== "string") return Buffer.from(secret);
  const text = secret.trim().replace(/^whsec_/, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new WebhookVerificationError("the webhook secret is not a whsec_<base64> string as printed by pliuz");
  }
  return Buffer.from(text, "base64");
}

function header(headers: WebhookHeaders, name: string): string {
  let value: string | string[] | undefined | null;
  if (typeof Headers !== "undefined" && headers instanceof Headers) value = headers.get(name);
  else if (Symbol.iterator in headers) {
    for (const [k, v] of headers as Iterable<readonly [string, string]>) if (k.toLowerCase() === name) value = v;
  } else {
    for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) value = v;
  }
  if (Array.isArray(value)) value = value.join(" ");
  if (value === undefined || value === null) {
    throw new WebhookVerificationError(`the delivery has no ${name} header`);
  }
  return value;
}

const bytes = (body: string | Uint8Array): Buffer =>
  typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);

function signature(key: Buffer, id: string, timestamp: string, body: Buffer): Buffer {
  return createHmac("sha256", key).update(`${id}.${timestamp}.`, "utf8").update(body).digest();
}

/** The `webhook-signature` value for one delivery (`v1,<base64>`); for tests and local tools. */
export function signWebhook(
  secret: string | Uint8Array,
  id: string,
  timestamp: number,
  body: string | Uint8Array,
): string {
  return `v1,${signature(secretKey(secret), id, String(timestamp), bytes(body)).toString("base64")}`;
}

/**
 * Check a delivery's signature and timestamp and return the parsed event.
 *
 * `headers` in any common shape (names matched case-insensitively), `body` the raw
 * request body exactly as received (parse it only after this), `secret` the
 * agent's `whsec_...` secret. Any of the space-separated `v1,` signatures may match
 * (secrets rotate). Throws {@link WebhookVerificationError} when a header is
 * missing, the timestamp is outside `toleranceS` of now, no signature matches, or
 * the body is not a JSON object.
 */
export function verifyWebhook(
  headers: WebhookHeaders,
  body: string | Uint8Array,
  secret: string | Uint8Array,
  options: { toleranceS?: number; nowMs?: number } = {},
): WebhookEvent {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp").trim();
  const signatures = header(headers, "webhook-signature");
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError("webhook-timestamp is not an integer");
  const sentAt = Number(timestamp);
  const tolerance = options.toleranceS ?? DEFAULT_TOLERANCE_S;
  const now = (options.nowMs ?? Date.now()) / 1000;
  if (Math.abs(now - sentAt) > tolerance) {
    throw new WebhookVerificationError(
      `webhook-timestamp ${sentAt} is more than ${tolerance}s from now; refusing a possible replay (check the receiver's clock)`,
    );
  }
  const raw = bytes(body);
  const expected = signature(secretKey(secret), id, timestamp, raw);
  let matched = false;
  for (const entry of signatures.split(/\s+/)) {
    const [version, value] = entry.split(",", 2);
    if (version !== "v1" || value === undefined) continue;
    const candidate = Buffer.from(value, "base64");
    // Check every entry (no early exit), in constant time.
    if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) matched = true;
  }
  if (!matched) throw new WebhookVerificationError("no webhook-signature matches: not sent by Pliuz");
  let event: unknown;
  try {
    event = JSON.parse(raw.toString("utf8"));
  } catch {
    throw new WebhookVerificationError("the signed body is not JSON");
  }
  if (event === null || typeof event !== "object" || Array.isArray(event)) {
    throw new WebhookVerificationError("the signed body is not a JSON object");
  }
  return event as WebhookEvent;
}
