// Standard Webhooks verification, with a real delivery from the pliuz binary: a durable
// run's `run.ready` event arrives signed, is verified, and the run is resumed from it.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { after, test } from "node:test";
import { Runs } from "../src/agents/index.js";
import { PliuzClient, signWebhook, verifyWebhook, WebhookVerificationError } from "../src/index.js";
import { gatedRefundAgent } from "./support/model.js";
import { type Json, provisionedForTests } from "./support/server.js";

interface Delivery {
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const deliveries: Delivery[] = [];
const receiver = createServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  deliveries.push({ headers: req.headers, body: Buffer.concat(chunks) });
  res.writeHead(204).end();
});
let hook = { key: "", secret: "" };

// The receiver listens before the agent is made with its URL (the file's hooks may run concurrently).
const pliuz = provisionedForTests(async (s) => {
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const addr = receiver.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  hook = s.agentWithWebhook("hooked-bot", `http://127.0.0.1:${port}/pliuz`);
});
after(() => new Promise((r) => receiver.close(r)));

const SECRET = `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`;

test("verifyWebhook: accepts a good signature, refuses tampering, old timestamps and a wrong secret", () => {
  const body = JSON.stringify({ type: "run.ready", data: { run_id: "r1" } });
  const now = Math.floor(Date.now() / 1000);
  const headers = {
    "Webhook-Id": "msg_1",
    "webhook-timestamp": String(now),
    "webhook-signature": signWebhook(SECRET, "msg_1", now, body),
  };
  assert.equal(verifyWebhook(headers, body, SECRET).type, "run.ready");
  assert.equal(verifyWebhook(new Headers(headers), Buffer.from(body), SECRET).data.run_id, "r1");
  // Rotation: any of several signatures may match.
  assert.ok(
    verifyWebhook({ ...headers, "webhook-signature": `v1,AAAA ${headers["webhook-signature"]}` }, body, SECRET),
  );
  assert.throws(() => verifyWebhook(headers, body.replace("r1", "r2"), SECRET), WebhookVerificationError);
  const other = `whsec_${Buffer.from("another secret of 32 bytes......").toString("base64")}`;
  assert.throws(() => verifyWebhook(headers, body, other), WebhookVerificationError);
  const old = now - 3600;
  assert.throws(
    () =>
      verifyWebhook(
        { ...headers, "webhook-timestamp": String(old), "webhook-signature": signWebhook(SECRET, "msg_1", old, body) },
        body,
        SECRET,
      ),
    /replay/,
  );
  assert.throws(() => verifyWebhook({ "webhook-id": "x" }, body, SECRET), /webhook-timestamp/);
  assert.throws(() => verifyWebhook(headers, body, "not base64!"), WebhookVerificationError);
});

test("a real run.ready delivery verifies and resumes the run", async () => {
  const order = `W-${randomUUID().slice(0, 8)}`;
  const ran: Json[] = [];
  const agent = gatedRefundAgent("support", order, ran);
  const runs = new Runs({ client: new PliuzClient({ apiKey: hook.key, baseUrl: pliuz.server.baseUrl }) });
  const started = await runs.run(agent, "refund");
  assert.equal(started.paused, true);
  await pliuz.human.decideOrder(order, "approve");

  const until = Date.now() + 30_000;
  let event: ReturnType<typeof verifyWebhook> | undefined;
  while (Date.now() < until && event === undefined) {
    for (const d of deliveries) {
      const e = verifyWebhook(d.headers, d.body, hook.secret);
      if (e.type === "run.ready" && e.data.run_id === started.runId) event = e;
    }
    if (event === undefined) await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(event, `no run.ready delivery; server log:\n${pliuz.server.logTail()}`);
  const done = await runs.resume(String(event.data.run_id), agent);
  assert.equal(done.status, "completed");
  assert.equal(ran.length, 1);
});
