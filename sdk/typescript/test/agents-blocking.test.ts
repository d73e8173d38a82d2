// Blocking mode: the real @openai/agents Runner with a scripted model, gated tools,
// the real pliuz binary, and a human deciding over HTTP.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { Agent, run, tool } from "@openai/agents";
import { z } from "zod";
import { gatedTool, Runs } from "../src/agents/index.js";
import { idempotencyKey, PliuzClient, PliuzRunError } from "../src/index.js";
import { modelCalling, ScriptedToolModel } from "./support/model.js";
import { freePort, type Json, provisionedForTests } from "./support/server.js";

const pliuz = provisionedForTests();

function refundTool(calls: Json[], client: PliuzClient, extra: Parameters<typeof gatedTool>[1] = {}) {
  const body = tool({
    name: "issue_refund",
    description: "Issue a customer refund.",
    parameters: z.object({ order_id: z.string(), amount_cents: z.number().int(), card: z.string() }),
    execute: async (args) => {
      calls.push(args);
      return `refunded ${args.amount_cents} on ${args.order_id} with ${args.card}`;
    },
  });
  return gatedTool(body, { policy: "refunds", client, redact: ["card"], ...extra });
}

function agentFor(t: ReturnType<typeof refundTool>, model: ScriptedToolModel): Agent {
  return new Agent({ name: "support", instructions: "Refund politely.", tools: [t], model });
}

const orderId = (): string => `A-${randomUUID().slice(0, 8)}`;
const client = (): PliuzClient => new PliuzClient({ apiKey: pliuz.server.agentKey, baseUrl: pliuz.server.baseUrl });

test("approve: the tool runs once, with the card restored locally, and the execution is reported", async () => {
  const calls: Json[] = [];
  const id = orderId();
  const model = modelCalling("issue_refund", { order_id: id, amount_cents: 5000, card: "4111-secret" });
  const running = run(agentFor(refundTool(calls, client()), model), "refund please");
  const pending = await pliuz.human.pendingForOrder(id);
  assert.equal((pending.tool_args as Json).card, "[REDACTED]", "the card never reaches the server");
  await pliuz.human.decide(pending.id as string, "approve");
  const result = await running;
  assert.deepEqual(calls, [{ order_id: id, amount_cents: 5000, card: "4111-secret" }]);
  assert.match(String(result.finalOutput), /model saw: refunded 5000/);
  const stored = await pliuz.human.get(pending.id as string);
  assert.equal(stored.status, "executed");
  assert.equal((stored.execution as Json).outcome, "success");
});

test("reject: the tool never runs and the model reads the reviewer's reason", async () => {
  const calls: Json[] = [];
  const id = orderId();
  const model = modelCalling("issue_refund", { order_id: id, amount_cents: 9000, card: "4111" });
  const running = run(agentFor(refundTool(calls, client()), model), "refund please");
  await pliuz.human.decideOrder(id, "reject", { reason: "order already refunded in store" });
  const result = await running;
  assert.deepEqual(calls, []);
  assert.equal(model.seen.length, 1);
  assert.match(model.seen[0] ?? "", /rejected by user:bob@example.com and was NOT executed/);
  assert.match(String(result.finalOutput), /order already refunded in store/);
});

test("edit: the tool runs with the edited arguments (the redacted card still restored)", async () => {
  const calls: Json[] = [];
  const id = orderId();
  const model = modelCalling("issue_refund", { order_id: id, amount_cents: 9000, card: "4111-secret" });
  const running = run(agentFor(refundTool(calls, client()), model), "refund please");
  await pliuz.human.decideOrder(id, "edit", {
    final_args: { order_id: id, amount_cents: 2500, card: "[REDACTED]" },
    reason: "partial refund",
  });
  const result = await running;
  assert.deepEqual(calls, [{ order_id: id, amount_cents: 2500, card: "4111-secret" }]);
  assert.match(String(result.finalOutput), /refunded 2500/);
});

test("auto-approved by policy: runs at once without a human", async () => {
  const calls: Json[] = [];
  const id = orderId();
  const model = modelCalling("issue_refund", { order_id: id, amount_cents: 500, card: "x" });
  const result = await run(agentFor(refundTool(calls, client()), model), "small refund");
  assert.equal(calls.length, 1);
  assert.match(String(result.finalOutput), /refunded 500/);
});

test("unreachable server: fails closed, the tool does not run, the model is told", async () => {
  const calls: Json[] = [];
  const port = await freePort(); // nothing listens there
  const dead = new PliuzClient({ apiKey: pliuz.server.agentKey, baseUrl: `http://127.0.0.1:${port}`, maxRetries: 1 });
  const model = modelCalling("issue_refund", { order_id: orderId(), amount_cents: 9000, card: "x" });
  const started = Date.now();
  const result = await run(agentFor(refundTool(calls, dead), model), "refund please");
  assert.deepEqual(calls, []);
  assert.match(model.seen[0] ?? "", /NOT executed: the approval server could not be reached/);
  assert.match(String(result.finalOutput), /could not be reached/);
  assert.ok(Date.now() - started < 20_000);
});

test("timeout: no decision within timeoutMs → not run, model told, request withdrawn with cancelOnTimeout", async () => {
  const calls: Json[] = [];
  const id = orderId();
  const model = modelCalling("issue_refund", { order_id: id, amount_cents: 9000, card: "x" });
  const started = Date.now();
  const t = refundTool(calls, client(), { timeoutMs: 1500, cancelOnTimeout: true });
  await run(agentFor(t, model), "refund please");
  const took = Date.now() - started;
  assert.ok(took >= 1400 && took < 10_000, `took ${took} ms`);
  assert.deepEqual(calls, []);
  assert.match(model.seen[0] ?? "", /no approval decision arrived within 1.5 seconds/);
  const list = await client().listApprovals({ tool: "issue_refund", limit: 50 });
  const mine = list.items.find((a) => a.tool_args.order_id === id);
  assert.equal(mine?.status, "cancelled");
});

test("outcome unknown: a call started earlier and never reported is not run again; the model is told", async () => {
  const calls: Json[] = [];
  const c = client();
  const args = { order_id: orderId(), amount_cents: 500, card: "x" }; // auto-approved by policy
  const callId = `call_${randomUUID()}`;
  // An earlier attempt of this very call (same key) claimed the execution and died before reporting.
  const earlier = await c.createApproval({
    toolName: "issue_refund",
    toolArgs: { ...args, card: "[REDACTED]" },
    policy: "refunds",
    callId,
    idempotencyKey: idempotencyKey("issue_refund", args, { callId, secret: c.apiKey }),
  });
  assert.equal(earlier.status, "approved");
  await c.claimExecution(earlier.id);
  const model = new ScriptedToolModel({ tool: "issue_refund", args, callId });
  await run(agentFor(refundTool(calls, c), model), "refund please");
  assert.deepEqual(calls, []);
  assert.match(model.seen[0] ?? "", /outcome unknown. It was NOT run again/);
  assert.equal((await pliuz.human.get(earlier.id)).status, "executing");
});

test("durable mode with the server unreachable: the run is refused (fail closed) and nothing runs", async () => {
  const calls: Json[] = [];
  const port = await freePort();
  const dead = new PliuzClient({ apiKey: pliuz.server.agentKey, baseUrl: `http://127.0.0.1:${port}`, maxRetries: 0 });
  const model = modelCalling("issue_refund", { order_id: orderId(), amount_cents: 9000, card: "x" });
  const runs = new Runs({ client: dead });
  await assert.rejects(runs.run(agentFor(refundTool(calls, dead), model), "refund"), (e: unknown) => {
    return e instanceof PliuzRunError && /could not be created/.test(e.message);
  });
  assert.deepEqual(calls, []);
});

test("a tool body that throws: the model gets the SDK's error text and the execution is reported as an error", async () => {
  const id = orderId();
  const failing = gatedTool(
    tool({
      name: "issue_refund",
      description: "Refund.",
      parameters: z.object({ order_id: z.string(), amount_cents: z.number().int(), card: z.string() }),
      execute: async () => {
        throw new Error("gateway down");
      },
    }),
    { policy: "refunds", client: client() },
  );
  // Auto-approved by policy.
  const model = modelCalling("issue_refund", { order_id: id, amount_cents: 100, card: "x" });
  await run(new Agent({ name: "support", tools: [failing], model }), "refund");
  assert.match(model.seen[0] ?? "", /An error occurred while running the tool/);
  const list = await client().listApprovals({ tool: "issue_refund", limit: 100 });
  const mine = list.items.find((a) => a.tool_args.order_id === id);
  assert.equal(mine?.status, "executed");
  assert.equal(mine?.execution?.outcome, "error");
});
