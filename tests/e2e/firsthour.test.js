// What a newcomer notices in the first hour: the favicon, the admin page
// without policies, the notice after the tool ran, long e-mail addresses and
// the role drop-down. Real `pliuz serve`, real headless Chromium.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ADA, ANN, Pliuz, launchBrowser, loggedInPage, login, refund, screenshotPath, stopAll } from './harness.js';

const LONG = 'maximiliane.schwarzenberg-hohenlohe@accounts-payable.finance.example-holdings.com';

describe('first hour', () => {
  const pliuz = new Pliuz();
  let browser;
  let agentKey;

  before(async () => {
    pliuz.createPeople(ANN, ADA);
    pliuz.createUser(LONG, 'approver', ['finance'], 'long-address-pass-1');
    agentKey = pliuz.cli(['agents', 'create', 'support-bot']);
    await pliuz.start();
    browser = await launchBrowser();
  });

  after(() => stopAll(browser, pliuz));

  test('the favicon is an SVG, served at /favicon.ico and linked from every page', async () => {
    for (const p of ['/favicon.ico', '/static/favicon.svg']) {
      const r = await fetch(pliuz.base + p);
      assert.equal(r.status, 200, p);
      assert.match(r.headers.get('content-type'), /^image\/svg\+xml/);
      assert.match(await r.text(), /^<svg /);
    }
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const missing = [];
    page.on('response', (r) => { if (r.status() === 404) missing.push(r.url()); });
    await page.goto(`${pliuz.base}/login`);
    assert.equal(await page.locator('link[rel="icon"]').getAttribute('href'), '/static/favicon.svg');
    await page.waitForLoadState('networkidle');
    assert.deepEqual(missing, []);
    await ctx.close();
  });

  test('after the tool ran, a reload of the request says so (not "will run the tool")', async () => {
    const a = await pliuz.createApproval(agentKey, refund());
    const { ctx, page } = await loggedInPage(browser, pliuz.base, ANN);
    await page.goto(`${pliuz.base}/requests/${a.id}`);
    await page.getByRole('button', { name: 'Approve', exact: true }).click();
    await page.locator('.notice.success').waitFor();
    assert.match(await page.locator('.notice.success').textContent(), /will run the tool/);
    const url = page.url();

    const claim = await pliuz.api('POST', `/api/v1/approvals/${a.id}/execution`, {
      token: agentKey, body: { outcome: 'started', claim_id: 'claim-e2e-1' },
    });
    assert.equal(claim.status, 200, claim.text);
    const report = await pliuz.api('POST', `/api/v1/approvals/${a.id}/execution`, {
      token: agentKey, body: { outcome: 'success', claim_id: 'claim-e2e-1', output_excerpt: 'refunded' },
    });
    assert.equal(report.status, 200, report.text);

    await page.goto(url);
    const notice = await page.locator('.notice.success').textContent();
    assert.doesNotMatch(notice, /will run/);
    assert.match(notice, /has run the tool/);
    await ctx.close();
  });

  test('a long e-mail address wraps after "@" or before a dot, not mid-word', async () => {
    const ctx = await browser.newContext({ viewport: { width: 420, height: 900 } });
    const page = await ctx.newPage();
    await login(page, pliuz.base, ADA.email, ADA.password);
    await page.goto(`${pliuz.base}/admin`);
    const cell = page.locator('td .email-address', { hasText: 'maximiliane' });
    assert.equal((await cell.textContent()).trim(), LONG);
    // Each character with the line it is on; where the line changes is a break.
    const chars = await cell.evaluate((el) => {
      const out = [];
      for (const node of el.childNodes) {
        if (node.nodeType !== Node.TEXT_NODE) continue;
        for (let i = 0; i < node.textContent.length; i++) {
          const range = document.createRange();
          range.setStart(node, i);
          range.setEnd(node, i + 1);
          out.push({ c: node.textContent[i], top: Math.round(range.getBoundingClientRect().top) });
        }
      }
      return out;
    });
    const breaks = [];
    for (let i = 1; i < chars.length; i++) {
      if (chars[i].top !== chars[i - 1].top) breaks.push(chars[i - 1].c + '|' + chars[i].c);
    }
    assert.ok(breaks.length > 0, 'the address did not wrap at this width');
    for (const b of breaks) {
      // after "@", before a dot, or after a hyphen: word boundaries, never mid-word
      assert.ok(b.startsWith('@') || b.endsWith('.') || b.startsWith('-'), `broken mid-word at ${b} (${JSON.stringify(breaks)})`);
    }
    await page.screenshot({ path: screenshotPath('admin-narrow.png'), fullPage: true });
    await ctx.close();
  });

  test('the role drop-down shows its whole text', async () => {
    for (const width of [1280, 420]) {
      const ctx = await browser.newContext({ viewport: { width, height: 900 } });
      const page = await ctx.newPage();
      await login(page, pliuz.base, ADA.email, ADA.password);
      await page.goto(`${pliuz.base}/admin`);
      const select = page.getByLabel('Role');
      for (const role of ['approver', 'auditor', 'admin']) {
        await select.selectOption(role);
        const fit = await select.evaluate((el) => {
          const cs = getComputedStyle(el);
          const ctx2 = document.createElement('canvas').getContext('2d');
          ctx2.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
          const text = el.options[el.selectedIndex].text;
          const room = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 20; // the arrow
          return { text, need: ctx2.measureText(text).width, room };
        });
        assert.ok(fit.need <= fit.room, `"${fit.text}" needs ${fit.need}px, has ${fit.room}px at ${width}px`);
      }
      await ctx.close();
    }
  });
});

describe('admin page without policies', () => {
  const pliuz = new Pliuz();
  let browser;

  before(async () => {
    fs.writeFileSync(pliuz.config, '');
    pliuz.createPeople(ADA);
    await pliuz.start();
    browser = await launchBrowser();
  });

  after(() => stopAll(browser, pliuz));

  test('says that no policies are loaded and how to add one, with no empty hash', async () => {
    const { ctx, page } = await loggedInPage(browser, pliuz.base, ADA);
    await page.goto(`${pliuz.base}/admin`);
    const text = await page.locator('#no-policies').textContent();
    assert.match(text, /No policies are loaded/);
    assert.match(text, /pliuz policy check/);
    assert.equal(await page.locator('#policy-hash').count(), 0);
    assert.doesNotMatch(await page.locator('main').textContent(), /Source SHA-256/);
    await ctx.close();
  });
});
