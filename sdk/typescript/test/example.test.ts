// examples/typescript/refund.ts end to end (scripted model, real binary): blocking mode,
// then durable start → approve → resume in a second process. It imports "@pliuz/sdk"
// through the package's own exports (dist/), as a user's project would.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { PACKAGE_ROOT } from "./support/paths.js";
import { type Json, provisionedForTests } from "./support/server.js";

const exec = promisify(execFile);
const EXAMPLE = fileURLToPath(new URL("build/examples/typescript/refund.js", PACKAGE_ROOT));

const pliuz = provisionedForTests();

function env(order: string, ledger: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...pliuz.server.agentEnv(),
    PLIUZ_EXAMPLE_SCRIPTED: "1",
    PLIUZ_EXAMPLE_ORDER: order,
    PLIUZ_EXAMPLE_AMOUNT: "6000",
    PLIUZ_EXAMPLE_LEDGER: ledger,
  };
}

const lastJson = (stdout: string): Json => JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Json;

test("blocking: the example's refund runs once after approval", async () => {
  const order = `E-${randomUUID().slice(0, 8)}`;
  const ledger = join(pliuz.server.dir, `${order}.jsonl`);
  const proc = exec(process.execPath, [EXAMPLE], { env: env(order, ledger), timeout: 60_000 });
  await pliuz.human.decideOrder(order, "approve");
  const { stdout } = await proc;
  assert.match(String(lastJson(stdout).finalOutput), /handled the refund/);
  assert.deepEqual(readFileSync(ledger, "utf8").trim().split("\n"), [
    JSON.stringify({ order_id: order, amount_cents: 6000 }),
  ]);
});

test("durable: start in one process, approve, resume in another", async () => {
  const order = `E-${randomUUID().slice(0, 8)}`;
  const ledger = join(pliuz.server.dir, `${order}.jsonl`);
  const started = lastJson(
    (await exec(process.execPath, [EXAMPLE, "start"], { env: env(order, ledger), timeout: 60_000 })).stdout,
  );
  assert.equal(started.status, "waiting");
  await pliuz.human.decideOrder(order, "approve");
  const resumed = lastJson(
    (
      await exec(process.execPath, [EXAMPLE, "resume", String(started.runId)], {
        env: env(order, ledger),
        timeout: 60_000,
      })
    ).stdout,
  );
  assert.equal(resumed.status, "completed");
  assert.equal(readFileSync(ledger, "utf8").trim().split("\n").length, 1);
});
