// Test harness: a real `pliuz serve` on a free port with a temp data dir,
// users and an agent made with the real CLI, and Debian's headless Chromium
// driven by playwright-core (no browser download, no network).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '..', '..');
export const bin = process.env.PLIUZ_BIN || path.join(repo, 'target', 'debug', 'pliuz');
export const artifacts = path.join(repo, 'test-artifacts');

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * The text of `fixtures/<name>`, each `{{key}}` in it replaced by `vars[key]`;
 * a placeholder left without a value is an error, not a silent blank.
 */
export function fixture(name, vars = {}) {
  const text = fs.readFileSync(path.join(here, 'fixtures', name), 'utf8');
  return text.replace(/\{\{(\w+)\}\}/g, (_, key) => {
    if (!(key in vars)) throw new Error(`fixture ${name}: no value for {{${key}}}`);
    return vars[key];
  });
}

export const POLICIES = fixture('pliuz.toml');

export const REFUND_SCHEMA = {
  type: 'object',
  properties: {
    order_id: { type: 'string', minLength: 1 },
    amount_cents: { type: 'integer', minimum: 1, maximum: 100000 },
    currency: { type: 'string', enum: ['EUR', 'USD'] },
    note: { type: 'string' },
  },
  required: ['order_id', 'amount_cents', 'currency'],
  additionalProperties: false,
};

/** The people of the inbox tests, each with the role, groups and password
 * `Pliuz.createPeople()` gives them. */
export const ANN = { email: 'ann@example.com', password: 'ann-finance-pass-1', role: 'approver', groups: ['finance'] };
/** Also an approver in finance; the tests let him decide over the API. */
export const BOB = { email: 'bob@example.com', password: 'bob-finance-pass-1', role: 'approver', groups: ['finance'] };
export const ADA = { email: 'ada@example.com', password: 'ada-admin-pass-1', role: 'admin', groups: [] };
/** An auditor: sees every request, never decides. */
export const AUDREY = { email: 'audrey@example.com', password: 'audrey-audit-pass-1', role: 'auditor', groups: [] };

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export class Pliuz {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pliuz-e2e-'));
    this.dataDir = path.join(this.dir, 'data');
    this.config = path.join(this.dir, 'pliuz.toml');
    fs.writeFileSync(this.config, POLICIES);
    this.proc = null;
    this.log = '';
  }

  /** Runs a CLI command; returns stdout (trimmed). */
  cli(args, input) {
    const r = spawnSync(bin, ['--data-dir', this.dataDir, '--config', this.config, ...args], {
      input: input ?? '',
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    });
    if (r.status !== 0) {
      throw new Error(`pliuz ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    }
    return r.stdout.trim();
  }

  createUser(email, role, groups, password) {
    const args = ['users', 'create', email, '--role', role, '--password-stdin'];
    for (const g of groups) args.push('--group', g);
    this.cli(args, password + '\n');
  }

  /** Creates each person (`ANN`, `BOB`, ...) with their role, groups and password. */
  createPeople(...people) {
    for (const p of people) this.createUser(p.email, p.role, p.groups, p.password);
  }

  async start() {
    if (!fs.existsSync(bin)) {
      throw new Error(`no pliuz binary at ${bin}; run 'cargo build -p pliuz' or set PLIUZ_BIN`);
    }
    this.port = await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    this.proc = spawn(bin, ['--data-dir', this.dataDir, '--config', this.config, 'serve', '--listen', `127.0.0.1:${this.port}`], {
      env: { ...process.env, NO_COLOR: '1', PLIUZ_PUBLIC_URL: this.base, PLIUZ_LOG: 'info,sqlx=warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout.on('data', (d) => { this.log += d; });
    this.proc.stderr.on('data', (d) => { this.log += d; });
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`pliuz serve exited early:\n${this.log}`);
      try {
        const r = await fetch(`${this.base}/healthz`);
        if (r.ok) return;
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`pliuz serve did not answer on ${this.base}:\n${this.log}`);
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** One JSON API call; returns {status, body}. */
  async api(method, urlPath, { token, body, headers } = {}) {
    const h = { ...(headers || {}) };
    if (token) h.Authorization = `Bearer ${token}`;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const r = await fetch(this.base + urlPath, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, body: json, text };
  }

  /** The agent opens a request; returns the approval. */
  async createApproval(agentKey, request) {
    const r = await this.api('POST', '/api/v1/approvals', { token: agentKey, body: request });
    if (r.status !== 201) throw new Error(`create failed: ${r.status} ${r.text}`);
    return r.body;
  }

  /**
   * Decides over the API as someone who just reviewed the request: without
   * `args_digest` in `body`, the approval's current one is fetched and sent.
   */
  async decide(token, id, body) {
    let digest = body.args_digest;
    if (digest === undefined) {
      const seen = await this.api('GET', `/api/v1/approvals/${id}`, { token });
      digest = seen.status === 200 ? seen.body.args_digest : '0'.repeat(64);
    }
    return this.api('POST', `/api/v1/approvals/${id}/decision`, { token, body: { ...body, args_digest: digest } });
  }

  /** The agent's long-poll (returns when settled or after `wait` seconds). */
  waitFor(agentKey, id, wait = 30) {
    return this.api('GET', `/api/v1/approvals/${id}?wait=${wait}`, { token: agentKey });
  }

  /** Once the inbox `page` confirmed a decision: the request as its agent then sees it. */
  async decidedOnPage(page, agentKey, id) {
    await page.locator('.notice.success').waitFor();
    return (await this.waitFor(agentKey, id, 5)).body;
  }

  /**
   * The agent's long-poll, started now for the test to await later; a failure
   * meanwhile is never an unhandled rejection.
   */
  pollLater(agentKey, id, wait = 30) {
    const poll = this.waitFor(agentKey, id, wait);
    poll.catch(() => {});
    return poll;
  }
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** For a describe's `after`: closes the browser (if it was launched), then stops each server (Pliuz, an IdP). */
export async function stopAll(browser, ...servers) {
  if (browser) await browser.close();
  for (const server of servers) if (server) await server.stop();
}

/** Logs in through the real form; resolves on the inbox page. */
export async function login(page, base, email, password) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${base}/inbox`);
}

/** A new browser context with one page, logged in as `user` ({email, password}). */
export async function loggedInPage(browser, base, user) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await login(page, base, user.email, user.password);
  return { ctx, page };
}

export function refund(overrides = {}) {
  return {
    tool_name: 'issue_refund',
    tool_args: { order_id: 'A-1042', amount_cents: 12900, currency: 'EUR', note: 'Damaged in transit' },
    tool_schema: REFUND_SCHEMA,
    originator: 'customer:carla@example.net',
    call_id: 'call_' + Math.random().toString(36).slice(2, 10),
    session_id: 'run-77',
    context_messages: [
      { role: 'user', content: 'My blender arrived broken, order A-1042. I want my money back.' },
      { role: 'assistant', content: 'I am sorry about that. I will request a full refund of 129.00 EUR for order A-1042.' },
    ],
    ...overrides,
  };
}

export function screenshotPath(name) {
  fs.mkdirSync(artifacts, { recursive: true });
  return path.join(artifacts, name);
}
