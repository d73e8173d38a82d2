// PliuzClient against the real binary: typed problem errors, long-poll wait, list,
// cancel, receipts, the execution claim, retries of safe requests, deadlines.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { test } from "node:test";
import {
  PliuzAuthenticationError,
  PliuzClient,
  PliuzConflictError,
  PliuzConnectionError,
  PliuzError,
  PliuzNoMatchingPolicyError,
  PliuzNotFoundError,
  PliuzServerError,
  PliuzTimeoutError,
  PliuzValidationError,
} from "../src/index.js";
import { provisionedForTests } from "./support/server.js";

const pliuz = provisionedForTests();

const args = () => ({ order_id: `C-${randomUUID().slice(0, 8)}`, amount_cents: 9000 });

test("options come from PLIUZ_API_KEY / PLIUZ_BASE_URL; no key fails closed at construction", () => {
  const saved = { ...process.env };
  try {
    process.env.PLIUZ_API_KEY = "pliuz_ak_x";
    process.env.PLIUZ_BASE_URL = "http://example.invalid:1/";
    const c = new PliuzClient();
    assert.equal(c.apiKey, "pliuz_ak_x");
    assert.equal(c.baseUrl, "http://example.invalid:1");
    delete process.env.PLIUZ_API_KEY;
    delete process.env.PLIUZ_BASE_URL;
    assert.throws(() => new PliuzClient(), PliuzError);
    assert.equal(new PliuzClient({ apiKey: "k" }).baseUrl, "http://127.0.0.1:8700");
  } finally {
    process.env = saved;
  }
});

test("problem+json codes become typed errors", async () => {
  await assert.rejects(
    pliuz.client.getApproval("nope"),
    (e: unknown) => e instanceof PliuzNotFoundError && e.code === "not_found" && e.status === 404,
  );
  await assert.rejects(
    pliuz.client.createApproval({ toolName: "no_policy_tool", toolArgs: {} }),
    (e: unknown) => e instanceof PliuzNoMatchingPolicyError && e.status === 422 && typeof e.detail === "string",
  );
  const bad = new PliuzClient({ apiKey: "pliuz_ak_wrong", baseUrl: pliuz.server.baseUrl });
  await assert.rejects(bad.getApproval("x"), PliuzAuthenticationError);
  await assert.rejects(
    pliuz.client.createApproval({
      toolName: "issue_refund",
      toolArgs: { amount_cents: "lots" } as never,
      toolSchema: { type: "nope" },
    }),
    PliuzValidationError,
  );
});

test("create, long-poll wait, decision, claim, report, receipt, list", async () => {
  const a = await pliuz.client.createApproval({
    toolName: "issue_refund",
    toolArgs: args(),
    idempotencyKey: `k-${randomUUID()}`,
  });
  assert.equal(a.status, "pending");
  const waiting = pliuz.client.waitForDecision(a, { timeoutMs: 20_000 });
  await new Promise((r) => setTimeout(r, 300));
  await pliuz.human.decide(a.id, "approve");
  const decided = await waiting;
  assert.equal(decided.status, "approved");
  const claimId = "cl_test_1";
  const claimed = await pliuz.client.claimExecution(a.id, { claimId });
  assert.equal(claimed.status, "executing");
  await assert.rejects(
    pliuz.client.claimExecution(a.id, { claimId: "cl_other" }),
    (e: unknown) => e instanceof PliuzConflictError && e.code === "execution_claimed",
  );
  const done = await pliuz.client.reportExecution(a.id, {
    outcome: "success",
    claimId,
    latencyMs: 5,
    outputExcerpt: "ok",
  });
  assert.equal(done.status, "executed");
  const receipt = await pliuz.client.getReceipt(a.id);
  assert.equal(receipt.approval_id, a.id);
  assert.match(receipt.format, /^pliuz-receipt\//);
  const list = await pliuz.client.listApprovals({ status: "executed", limit: 100 });
  assert.ok(list.items.some((x) => x.id === a.id));
  const replay = await pliuz.client.createApproval({
    toolName: "issue_refund",
    toolArgs: a.tool_args,
    idempotencyKey: a.idempotency_key ?? "",
  });
  assert.equal(replay.id, a.id);
  assert.equal(replay.is_replay, true);
  assert.equal(replay.status, "executed");
});

test("cancel a pending request", async () => {
  const a = await pliuz.client.createApproval({ toolName: "issue_refund", toolArgs: args() });
  const c = await pliuz.client.cancelApproval(a.id, { reason: "changed my mind" });
  assert.equal(c.status, "cancelled");
  await assert.rejects(pliuz.client.cancelApproval(a.id), PliuzConflictError);
});

test("waitForDecision: timeoutMs is a whole-operation deadline; an AbortSignal stops it with its reason", async () => {
  const a = await pliuz.client.createApproval({ toolName: "issue_refund", toolArgs: args() });
  let started = Date.now();
  await assert.rejects(pliuz.client.waitForDecision(a, { timeoutMs: 1200 }), PliuzTimeoutError);
  let took = Date.now() - started;
  assert.ok(took >= 1100 && took < 4000, `took ${took}`);
  const controller = new AbortController();
  const reason = new Error("user went away");
  setTimeout(() => controller.abort(reason), 500);
  started = Date.now();
  await assert.rejects(pliuz.client.waitForDecision(a, { signal: controller.signal }), (e: unknown) => e === reason);
  took = Date.now() - started;
  assert.ok(took < 3000, `took ${took}`);
});

/** A stand-in for a flaky network in front of the real server: the first `failures` requests get 503. */
async function flakyProxy(failures: number): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const proxy = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    hits++;
    if (hits <= failures) {
      res.writeHead(503, { "content-type": "application/problem+json" });
      res.end(JSON.stringify({ status: 503, code: "unavailable", title: "unavailable", detail: "store down" }));
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const upstream = await fetch(`${pliuz.server.baseUrl}${req.url}`, {
      method: req.method ?? "GET",
      headers: req.headers as Record<string, string>,
      body: chunks.length ? Buffer.concat(chunks) : null,
    });
    res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "application/json" });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  const addr = proxy.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return { url: `http://127.0.0.1:${port}`, hits: () => hits, close: () => new Promise((r) => proxy.close(() => r())) };
}

test("5xx: safe requests are retried with backoff; a create without idempotency key is not", async () => {
  const flaky = await flakyProxy(2);
  try {
    const c = new PliuzClient({ apiKey: pliuz.server.agentKey, baseUrl: flaky.url, maxRetries: 3 });
    const a = await c.createApproval({
      toolName: "issue_refund",
      toolArgs: args(),
      idempotencyKey: `k-${randomUUID()}`,
    });
    assert.equal(a.status, "pending");
    assert.equal(flaky.hits(), 3, "two 503s, then the request went through");
  } finally {
    await flaky.close();
  }
  const flaky2 = await flakyProxy(1);
  try {
    const c = new PliuzClient({ apiKey: pliuz.server.agentKey, baseUrl: flaky2.url, maxRetries: 3 });
    await assert.rejects(c.createApproval({ toolName: "issue_refund", toolArgs: args() }), PliuzServerError);
    assert.equal(flaky2.hits(), 1, "not repeated: a repeat could create a second request");
  } finally {
    await flaky2.close();
  }
});

test("network errors: PliuzConnectionError after the retries", async () => {
  const c = new PliuzClient({ apiKey: "k", baseUrl: "http://127.0.0.1:9", maxRetries: 1 });
  await assert.rejects(c.getApproval("x"), PliuzConnectionError);
});
