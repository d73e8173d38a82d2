// Run the real `pliuz` binary for the tests, and act as the human approver over HTTP.

import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { PliuzClient } from "../../src/index.js";
import { PACKAGE_ROOT, PLIUZ_BIN } from "./paths.js";

/** The server's config: the policies every test runs against. */
export const CONFIG = new URL("test/fixtures/pliuz.toml", PACKAGE_ROOT);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Json {
  [k: string]: unknown;
}

/** One `pliuz serve` with its own data dir, policies and port. */
export class PliuzServer {
  readonly dir: string;
  readonly dataDir: string;
  readonly config: string;
  readonly log: string;
  port = 0;
  baseUrl = "";
  agentKey = "";
  userToken = "";
  #proc: ChildProcess | undefined;

  constructor(config = CONFIG) {
    if (!existsSync(PLIUZ_BIN))
      throw new Error(`pliuz binary not found at ${PLIUZ_BIN}: cargo build -p pliuz or set PLIUZ_BIN`);
    this.dir = mkdtempSync(join(tmpdir(), "pliuz-ts-"));
    this.dataDir = join(this.dir, "data");
    this.config = join(this.dir, "pliuz.toml");
    this.log = join(this.dir, "server.log");
    copyFileSync(config, this.config);
  }

  cli(args: string[], input?: string): string {
    return execFileSync(PLIUZ_BIN, [...args, "--data-dir", this.dataDir, "--config", this.config], {
      input,
      encoding: "utf8",
      timeout: 60_000,
      stdio: ["pipe", "pipe", "pipe"],
    }).trim();
  }

  provision(): void {
    this.agentKey = this.cli(["agents", "create", "support-bot"]);
    this.cli(
      ["users", "create", "bob@example.com", "--role", "approver", "--group", "finance", "--password-stdin"],
      "correct horse battery staple\n",
    );
    this.userToken = this.cli(["users", "token", "bob@example.com"]);
    if (!this.agentKey.startsWith("pliuz_ak_")) throw new Error(`unexpected agent key ${this.agentKey}`);
  }

  /** A second agent with a webhook; returns its key and `whsec_` secret. */
  agentWithWebhook(name: string, url: string): { key: string; secret: string } {
    const [key = "", secret = ""] = this.cli(["agents", "create", name, "--webhook-url", url]).split("\n");
    return { key: key.trim(), secret: secret.trim() };
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.baseUrl = `http://127.0.0.1:${this.port}`;
    const out = openSync(this.log, "a");
    this.#proc = spawn(
      PLIUZ_BIN,
      ["serve", "--data-dir", this.dataDir, "--config", this.config, "--listen", `127.0.0.1:${this.port}`],
      { stdio: ["ignore", out, out] },
    );
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      if (this.#proc.exitCode !== null) throw new Error(`pliuz serve exited:\n${this.logTail()}`);
      try {
        const r = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (r.ok) return;
      } catch {
        // not up yet
      }
      await sleep(100);
    }
    throw new Error(`pliuz serve did not become healthy:\n${this.logTail()}`);
  }

  async stop(): Promise<void> {
    const p = this.#proc;
    this.#proc = undefined;
    if (p && p.exitCode === null) {
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000)]);
      if (p.exitCode === null) p.kill("SIGKILL");
    }
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  logTail(n = 4000): string {
    try {
      return readFileSync(this.log, "utf8").slice(-n);
    } catch {
      return "";
    }
  }

  agentEnv(): Record<string, string> {
    return { PLIUZ_API_KEY: this.agentKey, PLIUZ_BASE_URL: this.baseUrl };
  }
}

/** What a decision may carry besides its kind. */
export interface DecisionExtra {
  reason?: string;
  final_args?: Json;
}

/** The approver side, over plain HTTP with a user token (as the inbox would). */
export class Human {
  constructor(
    readonly server: PliuzServer,
    readonly token = server.userToken,
  ) {}

  async #call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
    const r = await fetch(`${this.server.baseUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : null,
      signal: AbortSignal.timeout(10_000),
    });
    return { status: r.status, json: (await r.json()) as Json };
  }

  async get(id: string): Promise<Json> {
    return (await this.#call("GET", `/approvals/${id}`)).json;
  }

  /** Wait until at least `n` pending approvals match. */
  async waitPending(where: (a: Json) => boolean, n = 1, timeoutMs = 30_000): Promise<Json[]> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const { json } = await this.#call("GET", "/approvals?status=pending&limit=200");
      const items = (json.items as Json[]).filter(where);
      if (items.length >= n) return items;
      await sleep(100);
    }
    throw new Error(`expected ${n} pending approvals; server log:\n${this.server.logTail()}`);
  }

  /** The pending approval for order `orderId` (its `tool_args.order_id`), once it is there. */
  async pendingForOrder(orderId: string): Promise<Json> {
    const [pending] = await this.waitPending((a) => (a.tool_args as Json).order_id === orderId);
    assert.ok(pending);
    return pending;
  }

  /** Decides the pending approval for order `orderId` once it is there; returns it as it was pending. */
  async decideOrder(orderId: string, decision: string, extra: DecisionExtra = {}): Promise<Json> {
    const pending = await this.pendingForOrder(orderId);
    await this.decide(pending.id as string, decision, extra);
    return pending;
  }

  async decide(id: string, decision: string, extra: DecisionExtra = {}): Promise<Json> {
    // Bound to the arguments under review, as a person deciding in the inbox would be.
    const current = await this.get(id);
    const r = await this.#call("POST", `/approvals/${id}/decision`, {
      decision,
      args_digest: current.args_digest,
      ...extra,
    });
    if (r.status !== 200) throw new Error(`decision ${decision} on ${id}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json;
  }
}

/** What a test file works with: a running server, its approver, and a client with the agent key. */
export interface Started {
  server: PliuzServer;
  human: Human;
  client: PliuzClient;
}

/**
 * A server with the agent and approver provisioned, started; `beforeStart` may
 * add to it (agents, webhooks) first. The caller disposes of `server`.
 */
export async function startProvisioned(
  beforeStart: (server: PliuzServer) => void | Promise<void> = () => {},
): Promise<Started> {
  const server = new PliuzServer();
  server.provision();
  await beforeStart(server);
  await server.start();
  return {
    server,
    human: new Human(server),
    client: new PliuzClient({ apiKey: server.agentKey, baseUrl: server.baseUrl }),
  };
}

/**
 * The test file's server: started (as `startProvisioned`) before its tests and disposed
 * of after them. Its parts can be read from inside the tests, once it is up.
 */
export function provisionedForTests(beforeStart?: (server: PliuzServer) => void | Promise<void>): Started {
  let started: Started | undefined;
  before(async () => {
    started = await startProvisioned(beforeStart);
  });
  after(() => started?.server.dispose());
  const up = (): Started => {
    if (!started) throw new Error("the test server is not up yet: use it inside a test or hook");
    return started;
  };
  return {
    get server() {
      return up().server;
    },
    get human() {
      return up().human;
    },
    get client() {
      return up().client;
    },
  };
}
