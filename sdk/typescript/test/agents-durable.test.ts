// Durable mode across processes: the run pauses in one Node process (state stored in
// Pliuz via the runs API) and resumes in another; two resumers race and the tool runs once.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Runs, type RunsResult } from "../src/agents/index.js";
import { PliuzClient, PliuzRunStateIntegrityError } from "../src/index.js";
import { gatedRefundAgent } from "./support/model.js";
import { type Json, provisionedForTests } from "./support/server.js";

const run = promisify(execFile);
const AGENT = fileURLToPath(new URL("./fixtures/durable-agent.js", import.meta.url));

const pliuz = provisionedForTests();

interface Case {
  env: Record<string, string>;
  bodyLog: string;
  orderId: string;
}

function newCase(): Case {
  const orderId = `D-${randomUUID().slice(0, 8)}`;
  const bodyLog = join(pliuz.server.dir, `${orderId}.log`);
  return {
    orderId,
    bodyLog,
    env: {
      ...process.env,
      ...pliuz.server.agentEnv(),
      BODY_LOG: bodyLog,
      ORDER_ID: orderId,
      CALL_ID: `call_${randomUUID()}`,
    } as Record<string, string>,
  };
}

async function agentProcess(c: Case, ...args: string[]): Promise<Json> {
  try {
    const { stdout } = await run(process.execPath, [AGENT, ...args], { env: c.env, timeout: 60_000 });
    return JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Json;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    const last = (e.stdout ?? "").trim().split("\n").pop();
    if (last?.startsWith("{")) return JSON.parse(last) as Json;
    throw new Error(`agent process failed: ${String(err)}\n${e.stderr ?? ""}`);
  }
}

/** Starts the agent for case `c` and approves its request; returns the paused run's id. */
async function startApproved(c: Case): Promise<string> {
  const started = await agentProcess(c, "start");
  await pliuz.human.decideOrder(c.orderId, "approve");
  return started.runId as string;
}

const bodyRuns = (c: Case): string[] =>
  existsSync(c.bodyLog) ? readFileSync(c.bodyLog, "utf8").trim().split("\n").filter(Boolean) : [];

test("pause in one process, approve with an edit, resume in another: runs once with the edit", async () => {
  const c = newCase();
  const started = await agentProcess(c, "start");
  assert.equal(started.status, "waiting");
  const runId = started.runId as string;
  assert.match(runId, /./);
  assert.deepEqual(bodyRuns(c), [], "nothing ran while paused");

  const pending = await pliuz.human.pendingForOrder(c.orderId);
  assert.equal((pending.tool_args as Json).card, "[REDACTED]");
  await pliuz.human.decide(pending.id as string, "edit", {
    final_args: { order_id: c.orderId, amount_cents: 3000, card: "[REDACTED]" },
  });

  const resumed = await agentProcess(c, "resume", runId);
  assert.equal(resumed.status, "completed", JSON.stringify(resumed));
  assert.match(String(resumed.finalOutput), /model saw: refunded 3000/);
  const lines = bodyRuns(c);
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? "", /"amount_cents":3000,"card":"4111-secret"/);

  const again = await agentProcess(c, "resume", runId);
  assert.equal(again.code, "run_error", "a completed run is not resumed again");
  assert.equal(bodyRuns(c).length, 1);
  assert.equal((await pliuz.human.get(pending.id as string)).status, "executed");
});

test("reject while paused: the resumed run never runs the tool and the model reads the reason", async () => {
  const c = newCase();
  const started = await agentProcess(c, "start");
  await pliuz.human.decideOrder(c.orderId, "reject", { reason: "customer is flagged for fraud" });
  const resumed = await agentProcess(c, "resume", started.runId as string);
  assert.equal(resumed.status, "completed");
  assert.match(String(resumed.finalOutput), /customer is flagged for fraud/);
  assert.deepEqual(bodyRuns(c), []);
});

test("two resumers race for one approved run: the tool body runs exactly once", async () => {
  const c = newCase();
  const runId = await startApproved(c);
  const [a, b] = await Promise.all([agentProcess(c, "resume", runId), agentProcess(c, "resume", runId)]);
  const outcomes = [a, b].map((r) => (r.status as string | undefined) ?? (r.code as string));
  assert.equal(outcomes.filter((o) => o === "completed").length, 1, JSON.stringify([a, b]));
  const loser = outcomes.find((o) => o !== "completed");
  assert.ok(loser === "run_claimed" || loser === "run_completed" || loser === "run_error", JSON.stringify([a, b]));
  assert.equal(bodyRuns(c).length, 1, "the tool ran once");
  console.log(`race outcomes: ${outcomes.join(", ")}`);
});

test("the state is checked against its recorded SHA-256 before it is handed to RunState.fromString", async () => {
  const c = newCase();
  const runId = await startApproved(c);
  // A client whose transport alters the state in transit stands in for a tampered store.
  const tampering: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    if (!String(input).endsWith("/claim")) return res;
    const body = (await res.json()) as Json;
    body.state = `${String(body.state)} `;
    return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
  };
  const client = new PliuzClient({ apiKey: pliuz.server.agentKey, baseUrl: pliuz.server.baseUrl, fetch: tampering });
  await assert.rejects(client.claimRun(runId, { leaseSeconds: 10 }), PliuzRunStateIntegrityError);
  assert.deepEqual(bodyRuns(c), []);
});

test("serve(): a worker resumes every ready run of the agent key and stops on its signal", async () => {
  const order = `S-${randomUUID().slice(0, 8)}`;
  const ran: Json[] = [];
  const agent = gatedRefundAgent("serve-agent", order, ran);
  const runs = new Runs({ client: new PliuzClient({ apiKey: pliuz.server.agentKey, baseUrl: pliuz.server.baseUrl }) });
  const started = await runs.run(agent, "refund");
  assert.equal(started.paused, true);
  const stop = new AbortController();
  const results: RunsResult[] = [];
  const worker = runs.serve([agent], {
    signal: stop.signal,
    pollWaitSeconds: 2,
    onResult: (r) => {
      results.push(r);
      if (r.runId === started.runId) stop.abort();
    },
  });
  await pliuz.human.decideOrder(order, "approve");
  await worker;
  const mine = results.find((r) => r.runId === started.runId);
  assert.equal(mine?.status, "completed");
  assert.deepEqual(ran, [{ order_id: order, amount_cents: 8000 }]);
});
