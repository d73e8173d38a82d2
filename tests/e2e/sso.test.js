// Single sign-on end to end: a real OpenID provider (oidc-provider, see
// idp.js), a real `pliuz serve`, headless Chromium clicking through both.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { POLICIES, Pliuz, fixture, freePort, launchBrowser, login, refund, screenshotPath, stopAll } from './harness.js';
import { CLIENT_ID, CLIENT_SECRET, TestIdp } from './idp.js';

const ADMIN = { email: 'root@example.com', password: 'root-admin-pass-1' }; // the local first admin

function oidcSection(issuer) {
  return fixture('oidc.toml', { issuer, client_id: CLIENT_ID });
}

/** Writes `config` and the client secret, and makes the local first admin. */
function configure(pliuz, config) {
  fs.writeFileSync(pliuz.config, config);
  process.env.PLIUZ_OIDC_CLIENT_SECRET = CLIENT_SECRET;
  pliuz.createUser(ADMIN.email, 'admin', [], ADMIN.password);
}

/** Starts Pliuz, then the IdP that knows its URL; returns a browser. */
async function startWithIdp(pliuz, idp) {
  await pliuz.start();
  await idp.start(pliuz.base);
  return launchBrowser();
}

/** Signs in through the IdP's own form; resolves where Pliuz sends us. */
async function ssoLogin(page, base, accountId, { expectInbox = true } = {}) {
  await page.goto(`${base}/login`);
  if (new URL(page.url()).pathname !== '/login') {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(/notice=logged_out/);
  }
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  // The IdP remembers a signed-in browser and sends it straight back.
  await page.waitForURL((u) => u.pathname.startsWith('/interaction/') || u.origin === base);
  if (new URL(page.url()).pathname.startsWith('/interaction/')) {
    await page.locator('input[name=login]').fill(accountId);
    await page.locator('input[name=password]').fill('any');
    await page.locator('button[type=submit]').click();
  }
  await page.waitForURL((u) => u.origin === base && u.pathname !== '/login' && u.pathname !== '/login/oidc');
  if (expectInbox) await page.waitForURL(`${base}/inbox`);
}

/**
 * Starts a log-in with the context's cookies and returns the IdP's answer
 * (the callback URL with code and state) without following it, so a test
 * can replay or alter it. The context must be signed in at the IdP already.
 * `alter` may change the authorization request on its way to the IdP.
 */
async function idpAnswer(ctx, base, alter) {
  const start = await ctx.request.get(`${base}/login/oidc`, { maxRedirects: 0 });
  assert.equal(start.status(), 303);
  const auth = new URL(start.headers().location);
  if (alter) alter(auth);
  const back = await ctx.request.get(auth.toString(), { maxRedirects: 0 });
  const to = back.headers().location;
  assert.ok(to && to.startsWith(`${base}/login/oidc/callback`), `IdP answered ${back.status()} ${to}`);
  return to;
}

/** Every audit entry's canonical text, read over the API as an admin. */
async function auditLog(pliuz, token) {
  const out = [];
  let start = 0;
  for (;;) {
    const r = await pliuz.api('GET', `/api/v1/audit/entries?start=${start}`, { token });
    assert.equal(r.status, 200, r.text);
    out.push(...r.body.entries.map((e) => JSON.parse(e.canonical)));
    if (r.body.next == null) return out;
    start = r.body.next;
  }
}

function usersList(pliuz) {
  const rows = pliuz.cli(['users', 'list']).split('\n').slice(1).map((l) => l.split('\t'));
  return Object.fromEntries(rows.map(([email, role, groups, status]) => [email, { role, groups, status }]));
}

describe('single sign-on (OpenID Connect)', () => {
  const pliuz = new Pliuz();
  let idp;
  let browser;
  let agentKey;
  let adminToken;

  before(async () => {
    idp = new TestIdp(await freePort());
    idp.accounts.ann = { email: 'Ann@Example.com', email_verified: true, groups: ['idp-staff', 'idp-finance'] };
    idp.accounts.eve = { email: 'eve@elsewhere.test', email_verified: true, groups: ['idp-staff', 'idp-finance'] };
    idp.accounts.una = { email: 'una@example.com', email_verified: false, groups: ['idp-staff', 'idp-finance'] };
    idp.accounts.nomap = { email: 'nomap@example.com', email_verified: true, groups: ['idp-unrelated'] };
    idp.accounts.carl = { email: 'carl@example.com', email_verified: true, groups: ['idp-finance'] };
    configure(pliuz, POLICIES + oidcSection(idp.issuer));
    agentKey = pliuz.cli(['agents', 'create', 'support-bot']);
    adminToken = pliuz.cli(['users', 'token', ADMIN.email]);
    browser = await startWithIdp(pliuz, idp);
  });

  after(() => stopAll(browser, pliuz, idp));

  test('first sign-in creates the user with the groups from the claims; they can decide', async () => {
    assert.equal(usersList(pliuz)['ann@example.com'], undefined);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const a = await pliuz.createApproval(agentKey, refund());
    await ssoLogin(page, pliuz.base, 'ann');
    await page.screenshot({ path: screenshotPath('sso-inbox.png'), fullPage: true });
    assert.deepEqual(usersList(pliuz)['ann@example.com'], { role: 'approver', groups: 'finance', status: 'active' });
    const cookie = (await ctx.cookies()).find((c) => c.name === 'pliuz_session');
    assert.ok(cookie && cookie.httpOnly);
    // Bounded by oidc.session_ttl (1h), not the inbox's 8h.
    assert.ok(cookie.expires * 1000 - Date.now() <= 3600 * 1000 + 5000, `session ends within 1h (${cookie.expires})`);
    await page.goto(`${pliuz.base}/requests/${a.id}`);
    await page.getByRole('button', { name: 'Approve' }).click();
    const approved = await pliuz.decidedOnPage(page, agentKey, a.id);
    assert.equal(approved.status, 'approved');
    assert.equal(approved.decision.by, 'user:ann@example.com');
    await ctx.close();
  });

  test('an approver taken out of the IdP group can no longer decide after the next sign-in', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await ssoLogin(page, pliuz.base, 'ann');
    const a = await pliuz.createApproval(agentKey, refund());
    await page.goto(`${pliuz.base}/requests/${a.id}`);
    await page.getByRole('button', { name: 'Approve' }).waitFor();
    const oldSession = (await ctx.cookies()).find((c) => c.name === 'pliuz_session');

    idp.accounts.ann.groups = ['idp-staff'];
    await ssoLogin(page, pliuz.base, 'ann');
    assert.deepEqual(usersList(pliuz)['ann@example.com'], { role: 'approver', groups: '', status: 'active' });
    const res = await page.goto(`${pliuz.base}/requests/${a.id}`);
    assert.notEqual(res.status(), 200, 'the request is no longer hers to see');
    assert.equal(await page.getByRole('button', { name: 'Approve' }).count(), 0);
    // Sessions opened under the old groups ended too.
    const stale = await browser.newContext();
    await stale.addCookies([oldSession]);
    const p2 = await stale.newPage();
    await p2.goto(`${pliuz.base}/inbox`);
    assert.equal(new URL(p2.url()).pathname, '/login');
    await stale.close();
    idp.accounts.ann.groups = ['idp-staff', 'idp-finance'];
    await ctx.close();

    // Creation, sign-ins and the group change are all in the audit log.
    const log = (await auditLog(pliuz, adminToken)).map((e) => JSON.stringify(e));
    const has = (kind, ...parts) => log.some((t) => t.includes(`"${kind}"`) && parts.every((p) => t.includes(p)));
    assert.ok(has('user.created', '"ann@example.com"', '"oidc"', '"finance"'), 'JIT creation audited');
    assert.ok(has('user.group_removed', '"ann@example.com"', '"finance"', '"oidc"'), 'group removal audited');
    assert.ok(log.filter((t) => t.includes('"user.logged_in"') && t.includes('"oidc"')).length >= 3, 'every sign-in audited');
  });

  test('a forged state is refused, and a used state or code cannot be replayed', async () => {
    // A browser already signed in at the IdP, so its answers come back at once.
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await ssoLogin(page, pliuz.base, 'ann');
    const noSession = async (c) => assert.equal((await c.cookies()).find((k) => k.name === 'pliuz_session'), undefined);

    // Forged: the browser comes back with a state Pliuz never issued.
    await ctx.clearCookies({ name: 'pliuz_session' });
    let callback = await idpAnswer(ctx, pliuz.base);
    const forged = new URL(callback);
    forged.searchParams.set('state', 'forged-' + forged.searchParams.get('state'));
    let res = await page.goto(forged.toString());
    assert.equal(res.status(), 403);
    assert.match(await page.locator('main').textContent(), /unknown, was already used or has expired/);
    await noSession(ctx);

    // The genuine answer works once; replayed, it is refused.
    callback = await idpAnswer(ctx, pliuz.base);
    await page.goto(callback);
    assert.equal(new URL(page.url()).pathname, '/inbox');
    await ctx.clearCookies({ name: 'pliuz_session' });
    res = await page.goto(callback);
    assert.equal(res.status(), 403);
    assert.match(await page.locator('main').textContent(), /already used/);
    await noSession(ctx);

    // The used code with a fresh, valid state: the IdP refuses it (single use, PKCE-bound).
    const usedCode = new URL(callback).searchParams.get('code');
    const fresh = new URL(await idpAnswer(ctx, pliuz.base));
    fresh.searchParams.set('code', usedCode);
    res = await page.goto(fresh.toString());
    assert.equal(res.status(), 403);
    assert.match(await page.locator('main').textContent(), /refused the sign-in code/);
    await noSession(ctx);

    // Started in one browser, finished in another (log-in CSRF): refused.
    const stolen = await idpAnswer(ctx, pliuz.base);
    const victim = await browser.newContext();
    const vp = await victim.newPage();
    res = await vp.goto(stolen);
    assert.equal(res.status(), 403);
    assert.match(await vp.locator('main').textContent(), /started in another browser/);
    await noSession(victim);
    await victim.close();
    await ctx.close();
  });

  test('a forged nonce is refused', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await ssoLogin(page, pliuz.base, 'ann');
    await ctx.clearCookies({ name: 'pliuz_session' });
    // The authorization request reaches the IdP with another nonce, so the
    // ID token carries one Pliuz did not issue for this log-in.
    const callback = await idpAnswer(ctx, pliuz.base, (auth) => auth.searchParams.set('nonce', 'forged-nonce-0123456789'));
    const res = await page.goto(callback);
    assert.equal(res.status(), 403);
    const text = await page.locator('main').textContent();
    assert.match(text, /ID token did not verify/);
    assert.match(text, /[Nn]once/);
    assert.equal((await ctx.cookies()).find((c) => c.name === 'pliuz_session'), undefined);
    await ctx.close();
  });

  test('e-mails outside the allowed domains, unverified e-mails and unmapped accounts are refused', async () => {
    for (const [account, message] of [
      ['eve', /at elsewhere\.test may not sign in/],
      ['una', /has not verified the e-mail address/],
      ['nomap', /in no group this Pliuz gives access to/],
    ]) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await ssoLogin(page, pliuz.base, account, { expectInbox: false });
      assert.match(await page.locator('main').textContent(), message);
      assert.equal((await ctx.cookies()).find((c) => c.name === 'pliuz_session'), undefined);
      await ctx.close();
    }
    const users = usersList(pliuz);
    assert.equal(users['eve@elsewhere.test'], undefined);
    assert.equal(users['una@example.com'], undefined);
    assert.equal(users['nomap@example.com'], undefined);
  });

  test('users disable still locks an SSO user out', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await ssoLogin(page, pliuz.base, 'carl');
    pliuz.cli(['users', 'disable', 'carl@example.com']);
    await page.goto(`${pliuz.base}/inbox`);
    assert.equal(new URL(page.url()).pathname, '/login');
    await ssoLogin(page, pliuz.base, 'carl', { expectInbox: false });
    assert.match(await page.locator('main').textContent(), /disabled/);
    await ctx.close();
  });

  test('the local first admin still logs in with a password; log-out offers the IdP log-out', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${pliuz.base}/login`);
    await page.screenshot({ path: screenshotPath('login-sso.png'), fullPage: true });
    await login(page, pliuz.base, ADMIN.email, ADMIN.password);
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(/notice=logged_out/);
    const href = await page.locator('#idp-logout').getAttribute('href');
    const u = new URL(href);
    assert.equal(u.origin, idp.issuer);
    assert.equal(u.searchParams.get('client_id'), CLIENT_ID);
    await ctx.close();
  });
});

describe('single sign-on with local passwords turned off', () => {
  const pliuz = new Pliuz();
  let idp;
  let browser;

  before(async () => {
    idp = new TestIdp(await freePort());
    idp.accounts.ann = { email: 'ann@example.com', email_verified: true, groups: ['idp-staff', 'idp-finance'] };
    configure(pliuz, POLICIES + oidcSection(idp.issuer).replace('session_ttl = "1h"', 'session_ttl = "1h"\nlocal_passwords = false'));
    browser = await startWithIdp(pliuz, idp);
  });

  after(() => stopAll(browser, pliuz, idp));

  test('no password form, password posts refused, setup links dead; SSO still signs in', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${pliuz.base}/login`);
    assert.equal(await page.getByLabel('Password').count(), 0);
    await page.screenshot({ path: screenshotPath('login-sso-only.png'), fullPage: true });
    // A password post made by hand (with a valid form token) is refused.
    const token = (await ctx.cookies()).find((c) => c.name === 'pliuz_login').value;
    const res = await page.request.post(`${pliuz.base}/login`, {
      form: { email: ADMIN.email, password: ADMIN.password, csrf: token, next: '/inbox' },
      maxRedirects: 0,
    });
    assert.equal(res.status(), 403);
    assert.match(await res.text(), /Password log-in is turned off/);
    const setup = pliuz.cli(['users', 'create', 'new@example.com', '--role', 'approver']);
    const link = setup.match(/\/setup\/\S+/);
    assert.ok(link, setup);
    const r = await page.goto(`${pliuz.base}${link[0]}`);
    assert.equal(r.status(), 404);
    await ssoLogin(page, pliuz.base, 'ann');
    await ctx.close();
  });
});
