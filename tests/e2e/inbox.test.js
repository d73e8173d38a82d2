// End-to-end tests of the web inbox in a real headless Chromium against a
// real `pliuz serve`. Run with ./run.sh (or `node --test` here).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADA, ANN, AUDREY, BOB, Pliuz, launchBrowser, loggedInPage, login, refund, screenshotPath, stopAll } from './harness.js';

describe('web inbox', () => {
  const pliuz = new Pliuz();
  let browser;
  let agentKey;
  let bobToken;
  let ann; // a logged-in browser context for ann

  before(async () => {
    pliuz.createPeople(ANN, BOB, AUDREY, ADA);
    agentKey = pliuz.cli(['agents', 'create', 'support-bot']);
    assert.match(agentKey, /^pliuz_ak_/);
    bobToken = pliuz.cli(['users', 'token', BOB.email]);
    assert.match(bobToken, /^pliuz_ut_/);
    await pliuz.start();
    browser = await launchBrowser();
    ann = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  });

  after(() => stopAll(browser, pliuz));

  /** A new page of Ann's on the page of request `id`. */
  async function annOnRequest(id) {
    const page = await ann.newPage();
    await page.goto(`${pliuz.base}/requests/${id}`);
    return page;
  }

  test('log in: wrong password gets a generic error, the right one opens the inbox', async () => {
    const page = await ann.newPage();
    await page.goto(`${pliuz.base}/`);
    assert.equal(new URL(page.url()).pathname, '/login');
    await page.getByLabel('Email').fill(ANN.email);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#login-error').waitFor();
    const wrongPassword = await page.locator('#login-error').textContent();
    // An unknown email gets exactly the same message.
    await page.getByLabel('Email').fill('nobody@example.com');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('#login-error').waitFor();
    assert.equal(await page.locator('#login-error').textContent(), wrongPassword);

    await login(page, pliuz.base, ANN.email, ANN.password);
    await page.getByRole('heading', { name: 'Inbox' }).waitFor();
    const cookies = await ann.cookies();
    const session = cookies.find((c) => c.name === 'pliuz_session');
    assert.ok(session, 'session cookie set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    await page.close();
  });

  test('repeated failed log-ins are rate-limited with a clear 429 page', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    let last;
    for (let i = 0; i < 6; i++) {
      await page.goto(`${pliuz.base}/login`);
      await page.getByLabel('Email').fill('mallory@example.com');
      await page.getByLabel('Password').fill(`guess-${i}`);
      [last] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST'),
        page.getByRole('button', { name: 'Log in' }).click(),
      ]);
    }
    assert.equal(last.status(), 429);
    assert.ok(Number(last.headers()['retry-after']) > 0);
    assert.match(await page.locator('#login-error').textContent(), /Too many failed attempts/);
    await ctx.close();
  });

  test('a new request appears live in an open inbox', async () => {
    const page = await ann.newPage();
    await page.goto(`${pliuz.base}/inbox`);
    await page.locator('#live-status.on').waitFor();
    const a = await pliuz.createApproval(agentKey, refund());
    const row = page.locator(`#queue li[data-id="${a.id}"]`);
    await row.waitFor({ timeout: 10000 });
    assert.match(await row.textContent(), /issue_refund/);
    assert.match(await row.textContent(), /support-bot/);
    // A second one, so the screenshot shows a real queue.
    const b = await pliuz.createApproval(agentKey, refund({
      tool_args: { order_id: 'B-2210', amount_cents: 4599, currency: 'USD', note: 'Charged twice' },
    }));
    await page.locator(`#queue li[data-id="${b.id}"]`).waitFor();
    assert.equal(await page.locator('#pending-count').textContent(), String(await page.locator('#queue li').count()));
    await page.waitForTimeout(1500); // let the arrival highlight fade
    await page.screenshot({ path: screenshotPath('inbox.png'), fullPage: true });
    // Phone width: still readable, nothing cut off.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, storageState: await ann.storageState() });
    const p2 = await phone.newPage();
    await p2.goto(`${pliuz.base}/inbox`);
    await p2.locator('#queue li').first().waitFor();
    const overflow = await p2.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);
    await p2.screenshot({ path: screenshotPath('inbox-phone.png'), fullPage: true });
    await phone.close();
    await page.close();
  });

  test('edit the arguments (schema-checked, with a diff preview) and approve: the agent gets the edited args', async () => {
    const a = await pliuz.createApproval(agentKey, refund());
    const poll = pliuz.pollLater(agentKey, a.id);
    const page = await annOnRequest(a.id);
    await page.getByRole('heading', { name: /issue_refund/ }).waitFor();
    await page.screenshot({ path: screenshotPath('request.png'), fullPage: true });

    await page.locator('#edit > summary').click();
    const editor = page.getByLabel('Arguments (JSON)');
    // Not valid under the schema: the server says why, inline.
    await editor.fill(JSON.stringify({ order_id: 'A-1042', amount_cents: 'lots', currency: 'GBP' }, null, 2));
    await page.getByRole('button', { name: 'Review changes' }).click();
    await page.locator('#edit-errors').waitFor();
    const errors = await page.locator('#edit-errors').textContent();
    assert.match(errors, /amount_cents/);
    assert.match(errors, /currency/);
    await page.screenshot({ path: screenshotPath('request-edit-errors.png'), fullPage: true });

    const edited = { order_id: 'A-1042', amount_cents: 6450, currency: 'EUR', note: 'Half refund: item partly usable' };
    await page.getByLabel('Arguments (JSON)').fill(JSON.stringify(edited, null, 2));
    await page.getByRole('button', { name: 'Review changes' }).click();
    await page.getByRole('heading', { name: 'Review your changes' }).waitFor();
    const diff = await page.locator('#diff').textContent();
    assert.match(diff, /amount_cents/);
    assert.match(diff, /12900/);
    assert.match(diff, /6450/);
    await page.screenshot({ path: screenshotPath('edit-preview.png'), fullPage: true });
    await page.getByRole('button', { name: 'Approve with these changes' }).click();
    await page.locator('.notice.success').waitFor();

    const r = await poll;
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'approved');
    assert.deepEqual(r.body.final_args, edited);
    assert.equal(r.body.decision.edited, true);
    assert.equal(r.body.decision.by, `user:${ANN.email}`);
    // The request page now shows the outcome and its audit trail.
    await page.reload();
    assert.match(await page.locator('.audit').textContent(), /approval\.decided/);
    const receipt = await page.request.get(`${pliuz.base}/requests/${a.id}/receipt.json`);
    assert.equal(receipt.status(), 200);
    assert.match(receipt.headers()['content-disposition'], /attachment/);
    const doc = await receipt.json();
    assert.equal(doc.format, 'pliuz-receipt/v1');
    assert.equal(doc.approval_id, a.id);
    await page.close();
  });

  test('reject with a reason: the agent receives it', async () => {
    const a = await pliuz.createApproval(agentKey, refund());
    const poll = pliuz.pollLater(agentKey, a.id);
    const page = await annOnRequest(a.id);
    const reason = 'Order A-1042 was already refunded last week; do not refund twice.';
    await page.getByLabel('Reason for rejecting').fill(reason);
    await page.getByRole('button', { name: 'Reject' }).click();
    await page.locator('.notice.success').waitFor();
    const r = await poll;
    assert.equal(r.body.status, 'rejected');
    assert.equal(r.body.decision.reason, reason);
    assert.equal(await page.locator('#decision-reason').textContent(), reason);
    await page.close();
  });

  test('respond where the policy allows it: the tool does not run, the agent gets the message', async () => {
    // "refunds" does not list respond: no Respond button.
    const plain = await pliuz.createApproval(agentKey, refund());
    const page = await annOnRequest(plain.id);
    await page.locator('#reject').waitFor();
    assert.equal(await page.locator('#respond').count(), 0);
    assert.equal(await page.locator('#respond_message').count(), 0);

    // "answers" does: the Respond button with its message field.
    const a = await pliuz.createApproval(agentKey, {
      tool_name: 'ask_user', tool_args: { question: 'Which meeting room?' },
    });
    const poll = pliuz.pollLater(agentKey, a.id);
    await page.goto(`${pliuz.base}/requests/${a.id}`);
    await page.locator('#respond').waitFor();
    assert.equal(await page.locator('#edit').count(), 0);
    // An empty message is refused by the browser (required) and, forged, by the server.
    const status = await page.evaluate(async ([id, digest]) => {
      const csrf = document.querySelector('meta[name="csrf-token"]').content;
      const r = await fetch(`/requests/${id}/respond`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf, args_digest: digest, reason: '  ' }),
      });
      return r.status;
    }, [a.id, a.args_digest]);
    assert.equal(status, 422);
    const message = 'Room 4, at ten. <b>not bold</b>';
    await page.getByLabel('Answer instead of running the tool').fill(message);
    await page.getByRole('button', { name: 'Respond' }).click();
    await page.locator('.notice.success').waitFor();
    assert.match(await page.locator('.notice.success').textContent(), /Responded/);
    const r = await poll;
    assert.equal(r.body.status, 'responded');
    assert.equal(r.body.decision.reason, message);
    assert.equal(await page.locator('#decision-reason').textContent(), message);
    assert.equal(await page.locator('#decision-reason b').count(), 0);
    assert.equal(await page.locator('#respond').count(), 0);
    // The agent cannot claim it for execution.
    const claim = await pliuz.api('POST', `/api/v1/approvals/${a.id}/execution`, {
      token: agentKey, body: { outcome: 'started' },
    });
    assert.equal(claim.status, 409);
    await page.close();
  });

  test('a request decided over the API leaves an open inbox', async () => {
    const a = await pliuz.createApproval(agentKey, refund());
    const page = await ann.newPage();
    await page.goto(`${pliuz.base}/inbox`);
    await page.locator('#live-status.on').waitFor();
    const row = page.locator(`#queue li[data-id="${a.id}"]`);
    await row.waitFor();
    const before = Number(await page.locator('#pending-count').textContent());
    const r = await pliuz.decide(bobToken, a.id, { decision: 'approve' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'approved');
    await row.waitFor({ state: 'detached', timeout: 10000 });
    await page.waitForFunction((n) => document.getElementById('pending-count').textContent === String(n), before - 1);
    await page.close();
  });

  test('a non-approver sees no decision buttons, and a forged decision is refused', async () => {
    const a = await pliuz.createApproval(agentKey, refund());
    const { ctx, page } = await loggedInPage(browser, pliuz.base, AUDREY);
    await page.goto(`${pliuz.base}/requests/${a.id}`);
    await page.getByRole('heading', { name: /issue_refund/ }).waitFor();
    assert.equal(await page.locator('#approve').count(), 0);
    assert.equal(await page.locator('#reject').count(), 0);
    assert.equal(await page.locator('#edit').count(), 0);
    assert.match(await page.locator('#no-decision').textContent(), /not an approver/);
    // Forge the form post, with a valid CSRF token of the auditor's own session.
    const status = await page.evaluate(async (id) => {
      const csrf = document.querySelector('meta[name="csrf-token"]').content;
      const r = await fetch(`/requests/${id}/approve`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf }),
      });
      return r.status;
    }, a.id);
    assert.equal(status, 403);
    const apiStatus = await page.evaluate(async ([id, digest]) => {
      const csrf = document.querySelector('meta[name="csrf-token"]').content;
      const r = await fetch(`/api/v1/approvals/${id}/decision`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify({ decision: 'approve', args_digest: digest }),
      });
      return r.status;
    }, [a.id, a.args_digest]);
    assert.equal(apiStatus, 403);
    const now = await pliuz.api('GET', `/api/v1/approvals/${a.id}`, { token: agentKey });
    assert.equal(now.body.status, 'pending');
    await ctx.close();
  });

  test('an edit by another approver updates an open request page, and the stale decision is refused', async () => {
    const a = await pliuz.createApproval(agentKey, {
      tool_name: 'pay_out',
      tool_args: { to: 'alice', amount: 100 },
    });
    const page = await annOnRequest(a.id);
    await page.locator('[data-request-id][data-live="on"]').waitFor();
    const reviewed = await page.locator('form.approve-form input[name="args_digest"]').inputValue();
    assert.equal(reviewed, a.args_digest);
    assert.equal(await page.locator('#changed-elsewhere').isHidden(), true);

    // Bob edits the arguments while Ann is looking (his edit is his approval).
    const edit = await pliuz.decide(bobToken, a.id, { decision: 'edit', final_args: { to: 'mallory', amount: 990000 } });
    assert.equal(edit.status, 200, edit.text);
    assert.equal(edit.body.status, 'pending');
    const note = page.locator('#changed-elsewhere');
    await note.waitFor({ state: 'visible', timeout: 10000 });
    assert.match(await note.textContent(), /arguments of this request were changed/);
    assert.equal(await page.locator('#approve').isDisabled(), true);
    assert.match(await page.locator('#raw-args').textContent(), /alice/); // what Ann saw, still shown

    // Force the stale form through anyway: the server refuses it.
    await page.evaluate(() => { document.getElementById('approve').disabled = false; });
    await page.locator('#approve').click();
    await page.locator('#decision-error').waitFor();
    assert.match(await page.locator('#decision-error').textContent(), /arguments changed while you were looking/);
    const now = await pliuz.api('GET', `/api/v1/approvals/${a.id}`, { token: agentKey });
    assert.equal(now.body.status, 'pending');
    assert.deepEqual(now.body.approvals.map((v) => v.by), [`user:${BOB.email}`]);
    // The page now shows the edited arguments with their digest; approving them settles.
    assert.match(await page.locator('#raw-args').textContent(), /mallory/);
    assert.equal(await page.locator('form.approve-form input[name="args_digest"]').inputValue(), edit.body.args_digest);
    await page.locator('#approve').click();
    await page.waitForURL(/done=approved/);
    const done = await pliuz.api('GET', `/api/v1/approvals/${a.id}`, { token: agentKey });
    assert.equal(done.body.status, 'approved');
    assert.deepEqual(done.body.final_args, { to: 'mallory', amount: 990000 });
    await page.close();
  });

  test('state-changing requests without the CSRF token are refused', async () => {
    const a = await pliuz.createApproval(agentKey, refund());
    const page = await annOnRequest(a.id);
    const results = await page.evaluate(async (id) => {
      const form = await fetch(`/requests/${id}/approve`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: '',
      });
      const wrong = await fetch(`/requests/${id}/approve`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'csrf=not-the-token',
      });
      const json = await fetch(`/api/v1/approvals/${id}/decision`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ decision: 'approve' }),
      });
      return { form: form.status, wrong: wrong.status, json: json.status, jsonCode: (await json.json()).code };
    }, a.id);
    assert.deepEqual(results, { form: 403, wrong: 403, json: 403, jsonCode: 'csrf' });
    let now = await pliuz.api('GET', `/api/v1/approvals/${a.id}`, { token: agentKey });
    assert.equal(now.body.status, 'pending');
    // With the page's token, the same JSON call from the session works.
    const ok = await page.evaluate(async ([id, digest]) => {
      const csrf = document.querySelector('meta[name="csrf-token"]').content;
      const r = await fetch(`/api/v1/approvals/${id}/decision`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify({ decision: 'reject', reason: 'checked from a script', args_digest: digest }),
      });
      return r.status;
    }, [a.id, a.args_digest]);
    assert.equal(ok, 200);
    now = await pliuz.api('GET', `/api/v1/approvals/${a.id}`, { token: agentKey });
    assert.equal(now.body.status, 'rejected');
    await page.close();
  });

  test('agent-supplied HTML and script are shown as inert text', async () => {
    const page = await ann.newPage();
    const csp = [];
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) csp.push(m.text()); });
    await page.goto(`${pliuz.base}/inbox`);
    await page.locator('#live-status.on').waitFor();
    const script = '<script>window.__xss=1</script>';
    const img = '<img src=x onerror="window.__xss=2">';
    const a = await pliuz.createApproval(agentKey, refund({
      tool_args: { order_id: script, amount_cents: 100, currency: 'EUR', note: img },
      context_messages: [{ role: 'user', content: `${script} ${img}` }],
      originator: img,
    }));
    // Arrives live (inserted from the server-rendered row) ...
    const row = page.locator(`#queue li[data-id="${a.id}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), /<script>window.__xss=1<\/script>/);
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined');
    assert.equal(await page.locator('#queue img').count(), 0);
    // ... and on its own page.
    await page.goto(`${pliuz.base}/requests/${a.id}`);
    await page.getByText(script).first().waitFor();
    await page.getByText(img).first().waitFor();
    assert.equal(await page.locator('main img').count(), 0);
    assert.equal(await page.locator('main script').count(), 0);
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined');
    // The security headers are on every page.
    const res = await page.request.get(`${pliuz.base}/requests/${a.id}`);
    const h = res.headers();
    assert.match(h['content-security-policy'], /script-src 'self'/);
    assert.doesNotMatch(h['content-security-policy'], /unsafe-inline/);
    assert.equal(h['x-frame-options'], 'DENY');
    assert.ok(h['referrer-policy']);
    await page.close();
  });

  test('history lists decisions and exports CSV and JSONL', async () => {
    const page = await ann.newPage();
    await page.goto(`${pliuz.base}/history`);
    await page.getByRole('heading', { name: 'History' }).waitFor();
    assert.ok(await page.locator('table.history tbody tr').count() >= 3);
    await page.screenshot({ path: screenshotPath('history.png'), fullPage: true });
    const csv = await page.request.get(`${pliuz.base}/history/export.csv`);
    assert.equal(csv.status(), 200);
    const text = await csv.text();
    assert.match(text.split('\r\n')[0], /^id,created_at,decided_at,status/);
    assert.match(text, /already refunded last week/);
    const jsonl = await page.request.get(`${pliuz.base}/history/export.jsonl`);
    const lines = (await jsonl.text()).trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.status === 'approved' && l.decision.edited));
    await page.close();
  });

  test('auditors see the audit page and can verify the log', async () => {
    const { ctx, page } = await loggedInPage(browser, pliuz.base, AUDREY);
    await page.goto(`${pliuz.base}/audit`);
    await page.getByRole('button', { name: 'Verify now' }).click();
    await page.locator('#verify-result').waitFor();
    assert.match(await page.locator('#verify-result').textContent(), /The log verifies/);
    await page.screenshot({ path: screenshotPath('audit.png'), fullPage: true });
    // Approvers are kept out.
    const r = await ann.request.get(`${pliuz.base}/audit`);
    assert.equal(r.status(), 403);
    await ctx.close();
  });

  test('admins add an agent (key shown once) and a person who sets a password through the setup link', async () => {
    const { ctx, page } = await loggedInPage(browser, pliuz.base, ADA);
    await page.goto(`${pliuz.base}/admin`);
    await page.getByLabel('Name').fill('billing-bot');
    await page.getByRole('button', { name: 'Create and show the key' }).click();
    const key = await page.locator('#secret').inputValue();
    assert.match(key, /^pliuz_ak_/);
    const r = await pliuz.api('GET', '/api/v1/approvals', { token: key });
    assert.equal(r.status, 200);

    await page.getByLabel('Email', { exact: true }).fill('newbie@example.com');
    await page.getByLabel('Role').selectOption('approver');
    await page.getByLabel('Groups').fill('finance');
    await page.getByRole('button', { name: 'Create and get a setup link' }).click();
    const link = await page.locator('#secret').inputValue();
    assert.ok(link.startsWith(`${pliuz.base}/setup/pliuz_su_`), link);
    assert.match(await page.locator('#policy-source').textContent(), /name = "refunds"/);
    await page.screenshot({ path: screenshotPath('admin.png'), fullPage: true });
    await ctx.close();

    const fresh = await browser.newContext();
    const p2 = await fresh.newPage();
    await p2.goto(link);
    await p2.getByLabel('New password').fill('newbie-password-1');
    await p2.getByLabel('Repeat the password').fill('newbie-password-1');
    await p2.getByRole('button', { name: 'Set password' }).click();
    await p2.getByText('Your password is set').waitFor();
    await login(p2, pliuz.base, 'newbie@example.com', 'newbie-password-1');
    // The link works once only.
    const again = await p2.request.get(link);
    assert.equal(again.status(), 404);
    await fresh.close();
  });
});
