// `npm pack`, install the tarball into a fresh temporary project next to the
// published @openai/agents, and type-check (`tsc --noEmit`, strict) and import it
// there: what a user gets from `npm install ./pliuz-sdk-X.tgz`.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));
const version = (name) => lock.packages[`node_modules/${name}`].version;
const npm = (args, cwd) => execFileSync("npm", args, { cwd, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });

const work = mkdtempSync(join(tmpdir(), "pliuz-pack-"));
try {
  const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", work], root));
  const tarball = join(work, packed[0].filename);
  const files = packed[0].files.map((f) => f.path);
  for (const needed of [
    "dist/index.js",
    "dist/index.d.ts",
    "dist/agents/index.js",
    "dist/agents/index.d.ts",
    "README.md",
  ]) {
    if (!files.includes(needed)) throw new Error(`the tarball lacks ${needed}`);
  }
  if (files.some((f) => f.startsWith("src/") || f.startsWith("test/")))
    throw new Error("the tarball ships sources or tests");

  const app = join(work, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "pack-check-app", private: true, type: "module" }));
  npm(
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      tarball,
      `@openai/agents@${version("@openai/agents")}`,
      `zod@${version("zod")}`,
      `typescript@${version("typescript")}`,
      `@types/node@${version("@types/node")}`,
    ],
    app,
  );
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        types: ["node"],
      },
      include: ["app.ts"],
    }),
  );
  writeFileSync(
    join(app, "app.ts"),
    `import { Agent, run, tool } from "@openai/agents";
import { z } from "zod";
import { PliuzClient, PliuzRejectedError, gated, verifyWebhook, type Approval } from "@pliuz/sdk";
import { Runs, gatedTool, type RunsResult } from "@pliuz/sdk/agents";

const client = new PliuzClient({ apiKey: "pliuz_ak_x", baseUrl: "http://127.0.0.1:8700" });
const refund = gatedTool(
  tool({
    name: "issue_refund",
    description: "Refund an order.",
    parameters: z.object({ order_id: z.string(), amount_cents: z.number().int() }),
    execute: async ({ order_id, amount_cents }) => \`refunded \${amount_cents} on \${order_id}\`,
  }),
  { policy: "refunds", redact: ["order_id"], timeoutMs: 60_000, client },
);
const agent = new Agent({ name: "support", tools: [refund] });
export async function blocking(): Promise<unknown> {
  return (await run(agent, "refund A-1")).finalOutput;
}
export async function durable(runId?: string): Promise<RunsResult> {
  const runs = new Runs({ client, leaseSeconds: 60 });
  return runId ? runs.resume(runId, agent) : runs.run(agent, "refund A-1");
}
const pay = gated(async (a: { invoice: string; cents: number }) => a.cents * 2, { name: "pay_invoice", client });
export async function plain(): Promise<number> {
  try {
    return await pay({ invoice: "I-1", cents: 5 }, { signal: AbortSignal.timeout(1000) });
  } catch (e) {
    if (e instanceof PliuzRejectedError) return e.reason?.length ?? 0;
    throw e;
  }
}
export const status = (a: Approval): string => a.status;
export const hook = (body: string) => verifyWebhook({ "webhook-id": "x" }, body, "whsec_AAAA").type;
`,
  );
  execFileSync(join(app, "node_modules", ".bin", "tsc"), ["-p", "."], { cwd: app, stdio: "inherit" });
  // And it loads at run time (ESM, both entry points).
  execFileSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const a = await import("@pliuz/sdk"); const b = await import("@pliuz/sdk/agents");
       if (typeof a.PliuzClient !== "function" || typeof b.gatedTool !== "function" || typeof b.Runs !== "function") process.exit(1);`,
    ],
    { cwd: app, stdio: "inherit" },
  );
  console.log(`pack-check: ${packed[0].filename} (${files.length} files) installs, type-checks and loads`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
