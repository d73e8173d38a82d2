// gated(fn): any async function behind an approval, against the real binary.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import {
  gated,
  PliuzAlreadyExecutedError,
  PliuzArgumentsError,
  PliuzClient,
  PliuzExpiredError,
  PliuzRejectedError,
  PliuzRespondedError,
  undeliveredReports,
} from "../src/index.js";
import { type Json, provisionedForTests } from "./support/server.js";

const pliuz = provisionedForTests();

test("approved: runs once with the approved args; the same call again does not run twice", async () => {
  const ran: Json[] = [];
  const refund = gated(
    async function refund_fn(a: { order_id: string; amount_cents: number; pan: string }) {
      ran.push(a);
      return { ok: true, order: a.order_id };
    },
    { client: pliuz.client, redact: ["pan"] },
  );
  const order = `G-${randomUUID().slice(0, 8)}`;
  const call = refund({ order_id: order, amount_cents: 4200, pan: "4111" }, { sessionId: "s-1" });
  const p = await pliuz.human.pendingForOrder(order);
  assert.equal(p.tool_name, "refund_fn");
  assert.equal((p.tool_args as Json).pan, "[REDACTED]");
  await pliuz.human.decide(p.id as string, "approve");
  assert.deepEqual(await call, { ok: true, order });
  assert.equal(ran.length, 1);
  assert.equal(ran[0]?.pan, "4111");
  // Same arguments and session: the idempotency key re-attaches to the executed request.
  await assert.rejects(
    refund({ order_id: order, amount_cents: 4200, pan: "4111" }, { sessionId: "s-1" }),
    PliuzAlreadyExecutedError,
  );
  assert.equal(ran.length, 1);
  assert.deepEqual(undeliveredReports(), []);
  const stored = await pliuz.human.get(p.id as string);
  assert.equal((stored.execution as Json).output_excerpt, JSON.stringify({ ok: true, order }));
});

test("two concurrent identical calls in one process: the body runs once", async () => {
  let runs = 0;
  const refund = gated(
    async (_a: { order_id: string; amount_cents: number }) => {
      runs++;
      return "done";
    },
    { name: "refund_fn", client: pliuz.client },
  );
  const order = `G-${randomUUID().slice(0, 8)}`;
  const both = Promise.allSettled([
    refund({ order_id: order, amount_cents: 9000 }),
    refund({ order_id: order, amount_cents: 9000 }),
  ]);
  await pliuz.human.decideOrder(order, "approve");
  const results = await both;
  assert.equal(runs, 1);
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
  const failed = results.find((r) => r.status === "rejected");
  assert.ok(failed && failed.status === "rejected" && failed.reason instanceof PliuzAlreadyExecutedError);
});

test("rejected: throws PliuzRejectedError with the reason, never runs", async () => {
  let runs = 0;
  const refund = gated(async (_a: { order_id: string; amount_cents: number }) => runs++, {
    name: "refund_fn",
    client: pliuz.client,
  });
  const order = `G-${randomUUID().slice(0, 8)}`;
  // Settled as soon as the decision lands: keep the outcome (no unhandled rejection meanwhile).
  const outcome = refund({ order_id: order, amount_cents: 9000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  await pliuz.human.decideOrder(order, "reject", { reason: "too much" });
  const err = await outcome;
  assert.ok(err instanceof PliuzRejectedError && err.reason === "too much", String(err));
  assert.equal(runs, 0);
});

test("responded: throws PliuzRespondedError with the message, never runs", async () => {
  let runs = 0;
  const answer = gated(async (_a: { order_id: string }) => runs++, { name: "answer_fn", client: pliuz.client });
  const order = `R-${randomUUID().slice(0, 8)}`;
  const outcome = answer({ order_id: order }).then(
    () => undefined,
    (e: unknown) => e,
  );
  await pliuz.human.decideOrder(order, "respond", { reason: "It shipped yesterday." });
  const err = await outcome;
  assert.ok(err instanceof PliuzRespondedError && err.response === "It shipped yesterday.", String(err));
  assert.equal(err.approval?.status, "responded");
  assert.equal(runs, 0);
});

test("expired: nobody decided before the policy's expires_in", async () => {
  let runs = 0;
  const quick = gated(async (_a: { n: number }) => runs++, { name: "quick_fn", client: pliuz.client });
  await assert.rejects(quick({ n: Math.random() }), PliuzExpiredError);
  assert.equal(runs, 0);
});

test("a body that throws is reported as an error and the error reaches the caller", async () => {
  const boom = gated(
    async (_a: { order_id: string; amount_cents: number }) => {
      throw new Error("card declined");
    },
    { name: "refund_fn", client: pliuz.client },
  );
  const order = `G-${randomUUID().slice(0, 8)}`;
  const call = boom({ order_id: order, amount_cents: 500 }); // auto-approved by policy
  await assert.rejects(call, /card declined/);
  const list = await pliuz.client.listApprovals({ tool: "refund_fn", limit: 100 });
  const mine = list.items.find((a) => a.tool_args.order_id === order);
  assert.equal(mine?.status, "executed");
  assert.equal(mine?.execution?.outcome, "error");
  assert.match(mine?.execution?.output_excerpt ?? "", /card declined/);
});

/** A client with the agent key whose requests are listed in `sent` ("METHOD path"); `answer` may rewrite answers. */
function recordingClient(sent: string[], answer?: (path: string, body: Json) => Json): PliuzClient {
  const recording: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = init?.method ?? "GET";
    sent.push(
      `${method} ${url.pathname}${method === "POST" && String(init?.body).includes('"started"') ? " started" : ""}`,
    );
    const response = await fetch(input, init);
    if (answer === undefined || !response.ok) return response;
    const rewritten = answer(url.pathname, (await response.json()) as Json);
    return new Response(JSON.stringify(rewritten), { status: response.status, headers: response.headers });
  };
  return new PliuzClient({ apiKey: pliuz.server.agentKey, baseUrl: pliuz.server.baseUrl, fetch: recording });
}

test("auto-approved: the create is the claim, one request before the body runs", async () => {
  const sent: string[] = [];
  const beforeBody: string[][] = [];
  const refund = gated(
    async (a: { order_id: string; amount_cents: number }) => {
      beforeBody.push([...sent]);
      return `refunded ${a.order_id}`;
    },
    { name: "refund_fn", client: recordingClient(sent) },
  );
  const order = `G-${randomUUID().slice(0, 8)}`;
  assert.equal(await refund({ order_id: order, amount_cents: 500 }), `refunded ${order}`);
  assert.deepEqual(beforeBody, [["POST /api/v1/approvals"]]);
  const report = sent.filter((s) => s.endsWith("/execution"));
  assert.equal(report.length, 1, sent.join("\n"));
  const id = report[0]?.split("/")[4] ?? "";
  const stored = await pliuz.human.get(id);
  assert.equal(stored.status, "executed");
  assert.equal((stored.execution as Json).outcome, "success");
});

test("pending: the claim follows the decision, as before", async () => {
  const sent: string[] = [];
  let runs = 0;
  const refund = gated(
    async (_a: { order_id: string; amount_cents: number }) => {
      runs++;
      return "done";
    },
    { name: "refund_fn", client: recordingClient(sent) },
  );
  const order = `G-${randomUUID().slice(0, 8)}`;
  const call = refund({ order_id: order, amount_cents: 9000 });
  const pending = await pliuz.human.decideOrder(order, "approve");
  assert.equal(await call, "done");
  assert.equal(runs, 1);
  assert.deepEqual(
    sent.filter((s) => s.endsWith(" started")),
    [`POST /api/v1/approvals/${pending.id}/execution started`],
  );
  assert.equal((await pliuz.human.get(pending.id as string)).status, "executed");
});

test("claimed on create but not runnable: reports that it did not run", async () => {
  const sent: string[] = [];
  let runs = 0;
  // The request is claimed for this call; its answer holds arguments the card number cannot go back into.
  const unrestorable = (path: string, body: Json): Json =>
    path === "/api/v1/approvals" ? { ...body, final_args: { ...(body.final_args as Json), card: [] } } : body;
  const refund = gated(
    async (_a: { order_id: string; amount_cents: number; card: { number: string } }) => {
      runs++;
      return "done";
    },
    { name: "refund_fn", client: recordingClient(sent, unrestorable), redact: ["card.number"] },
  );
  const order = `G-${randomUUID().slice(0, 8)}`;
  await assert.rejects(refund({ order_id: order, amount_cents: 500, card: { number: "4111" } }), PliuzArgumentsError);
  assert.equal(runs, 0);
  assert.ok(!sent.some((s) => s.endsWith(" started")), sent.join("\n"));
  const report = sent.find((s) => s.endsWith("/execution")) ?? "";
  const stored = await pliuz.human.get(report.split("/")[4] ?? "");
  assert.equal(stored.status, "executed");
  const execution = stored.execution as Json;
  assert.equal(execution.outcome, "error");
  assert.match(String(execution.output_excerpt), /^not run/);
});
