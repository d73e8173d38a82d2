// The overview page and keyboard use, in headless Chromium against a real
// `pliuz serve`: a known mix of requests and decisions is made over the
// API, then the page's tables are read and compared with the API.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ADA, ANN, BOB, POLICIES, Pliuz, fixture, launchBrowser, loggedInPage, login, refund, screenshotPath, stopAll } from './harness.js';

function quick(amount) {
  return { tool_name: 'quick_refund', tool_args: { order_id: 'Q-' + amount, amount_cents: amount } };
}

/** Nearest-rank percentile, as docs/inbox.md defines it. */
function percentile(sorted, p) {
  const rank = Math.max(1, Math.ceil((p * sorted.length) / 100));
  return sorted[Math.min(rank, sorted.length) - 1];
}

async function tableRows(page, id) {
  return page.locator(`#${id} tbody tr`).evaluateAll((trs) => trs.map((tr) => Array.from(tr.children).map((td) => td.textContent.trim())));
}

describe('overview and keyboard use', () => {
  const pliuz = new Pliuz();
  let browser;
  let agentKey;
  let annToken;
  let bobToken;

  before(async () => {
    fs.writeFileSync(pliuz.config, POLICIES + fixture('quick.toml'));
    pliuz.createPeople(ANN, BOB, ADA);
    agentKey = pliuz.cli(['agents', 'create', 'support-bot']);
    annToken = pliuz.cli(['users', 'token', ANN.email]);
    bobToken = pliuz.cli(['users', 'token', BOB.email]);
    await pliuz.start();
    browser = await launchBrowser();
  });

  after(() => stopAll(browser, pliuz));

  test('the overview shows the numbers of a known mix of requests', async () => {
    const decided = [];
    for (let i = 0; i < 3; i++) {
      const a = await pliuz.createApproval(agentKey, refund());
      await new Promise((r) => setTimeout(r, 150 * (i + 1)));
      const r = await pliuz.decide(annToken, a.id, { decision: 'approve' });
      assert.equal(r.status, 200, r.text);
      decided.push(a.id);
    }
    const rej = await pliuz.createApproval(agentKey, refund());
    assert.equal((await pliuz.decide(bobToken, rej.id, { decision: 'reject', reason: 'duplicate' })).status, 200);
    decided.push(rej.id);
    for (const amount of [500, 900]) {
      const a = await pliuz.createApproval(agentKey, quick(amount));
      assert.equal(a.status, 'approved');
    }
    const expiring = await pliuz.createApproval(agentKey, quick(5000));
    const cancelled = await pliuz.createApproval(agentKey, refund());
    assert.equal((await pliuz.api('POST', `/api/v1/approvals/${cancelled.id}/cancel`, { token: agentKey, body: {} })).status, 200);
    const waiting = [await pliuz.createApproval(agentKey, refund()), await pliuz.createApproval(agentKey, refund())];
    const exp = await pliuz.waitFor(agentKey, expiring.id, 25);
    assert.equal(exp.body.status, 'expired');

    // Expected time to decision, from the API's own timestamps.
    const times = [];
    for (const id of decided) {
      const v = (await pliuz.api('GET', `/api/v1/approvals/${id}`, { token: annToken })).body;
      times.push(Date.parse(v.decision.at) - Date.parse(v.created_at));
    }
    times.sort((x, y) => x - y);

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    await login(page, pliuz.base, ADA.email, ADA.password);
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.equal(await page.locator('svg.chart').count(), 5);

    assert.equal((await page.locator('#waiting-total').textContent()).trim(), '2 waiting.');
    const w = await tableRows(page, 'waiting-table');
    assert.deepEqual(w.map((r) => r[0]), ['refunds', 'refunds']);
    const shown = await page.locator('#waiting-table tbody a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    assert.deepEqual(shown, waiting.map((a) => `/requests/${a.id}`), 'oldest first');

    const ttd = await tableRows(page, 'ttd-table');
    assert.deepEqual(ttd, [['refunds', '4', (percentile(times, 50) / 1000).toFixed(1), (percentile(times, 90) / 1000).toFixed(1)]]);

    // Summed over the days shown (robust to a run crossing midnight UTC).
    const vol = await tableRows(page, 'volume-table');
    const sums = [1, 2, 3, 4, 5].map((c) => vol.reduce((s, r) => s + Number(r[c]), 0));
    assert.deepEqual(sums, [3, 2, 1, 1, 1], 'approved by a person, auto-approved, rejected, expired, cancelled');
    assert.equal(vol.length, 8, 'one row per day of the 7-day period');

    assert.deepEqual(await tableRows(page, 'approvers-table'), [[ANN.email, '3', '0'], [BOB.email, '0', '1']]);
    assert.deepEqual(await tableRows(page, 'expiry-table'), [['quick', '1', '3', '33.3'], ['refunds', '0', '5', '0.0']]);
    assert.match(await page.locator('#expiry-total').textContent(), /12\.5% of 8 settled/);
    await page.screenshot({ path: screenshotPath('overview.png'), fullPage: true });

    // The CSV holds the same numbers.
    const csv = await page.request.get(`${pliuz.base}/overview/approvers.csv?days=7`);
    assert.equal(csv.status(), 200);
    assert.match(csv.headers()['content-disposition'], /attachment/);
    assert.equal(await csv.text(), `approver,approved,rejected\r\n${ANN.email},3,0\r\n${BOB.email},0,1\r\n`);

    // An approver sees only the policies they decide; nothing of others'.
    const other = await browser.newContext();
    const op = await other.newPage();
    pliuz.createUser('olga@example.com', 'approver', ['ops'], 'olga-ops-pass-1');
    await login(op, pliuz.base, 'olga@example.com', 'olga-ops-pass-1');
    await op.goto(`${pliuz.base}/overview`);
    assert.equal(await op.locator('#waiting-table tbody tr').count(), 0);
    assert.equal(await op.locator('#approvers-table tbody tr').count(), 0);
    await other.close();
    // Tidy for the next test: the two waiting requests are decided.
    for (const a of waiting) await pliuz.decide(annToken, a.id, { decision: 'reject', reason: 'tidy up' });
    await ctx.close();
  });

  test('keyboard: j and Enter open a request, a approves it, r and Ctrl+Enter reject', async () => {
    const first = await pliuz.createApproval(agentKey, refund());
    const second = await pliuz.createApproval(agentKey, refund());
    const { ctx, page } = await loggedInPage(browser, pliuz.base, ANN);
    await page.locator('#shortcuts').waitFor();
    assert.match(await page.locator('#shortcuts').textContent(), /Next request/);
    await page.locator('#queue li').first().waitFor();
    await page.keyboard.press('j');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${pliuz.base}/requests/${second.id}`); // newest first
    assert.match(await page.locator('#shortcuts').textContent(), /Approve/);
    await page.keyboard.press('a');
    assert.equal((await pliuz.decidedOnPage(page, agentKey, second.id)).status, 'approved');

    await page.goto(`${pliuz.base}/requests/${first.id}`);
    await page.keyboard.press('r');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'reason');
    await page.keyboard.type('Not by keyboard accident: duplicate order.');
    await page.keyboard.press('Control+Enter');
    const rejected = await pliuz.decidedOnPage(page, agentKey, first.id);
    assert.equal(rejected.status, 'rejected');
    assert.equal(rejected.decision.reason, 'Not by keyboard accident: duplicate order.');
    await ctx.close();
  });

  test('desktop notifications (opt-in) for new requests while the inbox is open', async () => {
    const ctx = await browser.newContext();
    await ctx.grantPermissions(['notifications'], { origin: pliuz.base });
    // Record what the page asks the browser to show.
    await ctx.addInitScript(() => {
      const Real = window.Notification;
      window.__shown = [];
      function Recording(title, options) {
        window.__shown.push({ title, body: options && options.body });
        return new Real(title, options);
      }
      Object.defineProperty(Recording, 'permission', { get: () => Real.permission });
      Recording.requestPermission = (...a) => Real.requestPermission(...a);
      window.Notification = Recording;
    });
    const page = await ctx.newPage();
    await login(page, pliuz.base, ANN.email, ANN.password);
    await page.locator('#live-status.on').waitFor();
    await pliuz.createApproval(agentKey, refund());
    await page.locator('#queue li.new').first().waitFor();
    assert.deepEqual(await page.evaluate(() => window.__shown), [], 'nothing before opting in');
    await page.getByRole('button', { name: 'Turn on desktop notifications' }).click();
    await page.getByRole('button', { name: 'Turn off desktop notifications' }).waitFor();
    const a = await pliuz.createApproval(agentKey, refund());
    await page.locator(`#queue li[data-id="${a.id}"]`).waitFor();
    await page.waitForFunction(() => window.__shown.length === 1);
    const shown = await page.evaluate(() => window.__shown);
    assert.equal(shown[0].title, 'New request: issue_refund');
    assert.match(shown[0].body, /refunds/);
    await ctx.close();
  });
});
