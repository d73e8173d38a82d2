// Questions from agents and structured reject reasons in a real headless
// Chromium against a real `pliuz serve`: the agent asks over the API, a
// person answers in the inbox, the agent's long-poll gets the typed answer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { POLICIES, Pliuz, launchBrowser, loggedInPage, refund } from './harness.js';

const ANN = { email: 'ann@example.com', password: 'ann-finance-pass-1' }; // approver, finance

const REASONS = `
[[policy]]
name = "careful-refunds"
tools = ["careful_refund"]
approvers = ["group:finance"]
decisions = ["approve", "reject"]
expires_in = "30m"
reject_reasons = ["wrong amount", "wrong customer"]
`;

describe('questions and reject reasons in the inbox', () => {
  const pliuz = new Pliuz();
  let browser;
  let agentKey;
  let ann;

  before(async () => {
    fs.writeFileSync(pliuz.config, POLICIES + REASONS);
    pliuz.createUser(ANN.email, 'approver', ['finance'], ANN.password);
    agentKey = pliuz.cli(['agents', 'create', 'support-bot']);
    await pliuz.start();
    browser = await launchBrowser();
    ann = await loggedInPage(browser, pliuz.base, ANN);
  });

  after(async () => {
    if (browser) await browser.close();
    await pliuz.stop();
  });

  async function ask(body) {
    const r = await pliuz.api('POST', '/api/v1/questions', { token: agentKey, body });
    assert.equal(r.status, 201, r.text);
    return r.body;
  }

  test('a question is listed in the inbox and answered with a choice; the agent gets it', async () => {
    const q = await ask({
      text: 'Refund to the card or as store credit? <b>not bold</b>',
      choices: ['card', { value: 'credit', label: 'Store credit' }],
      policy: 'refunds',
    });
    // The agent is waiting while the person answers.
    const waiting = pliuz.api('GET', `/api/v1/questions/${q.id}?wait=30`, { token: agentKey });
    const { page } = ann;
    await page.goto(`${pliuz.base}/inbox`);
    const link = page.locator(`#questions li[data-question-id="${q.id}"] a`);
    await link.waitFor();
    await link.click();
    await page.waitForURL(`${pliuz.base}/questions/${q.id}`);
    // Agent text is shown as text, never as markup.
    assert.equal(await page.locator('#question-text').textContent(), q.text);
    assert.equal(await page.locator('#question-text b').count(), 0);
    await page.getByRole('button', { name: 'Store credit' }).click();
    await page.waitForURL(/done=answered/);
    assert.equal(await page.locator('#answer-choice').textContent(), 'Store credit');
    assert.equal(await page.locator('#answered-by').textContent(), 'user:ann@example.com');
    const got = await waiting;
    assert.equal(got.status, 200, got.text);
    assert.equal(got.body.status, 'answered');
    assert.equal(got.body.answer.choice, 'credit');
    assert.equal(got.body.answer.answered_by, 'user:ann@example.com');
    // Gone from the queue.
    await page.goto(`${pliuz.base}/inbox`);
    assert.equal(await page.locator(`#questions li[data-question-id="${q.id}"]`).count(), 0);
  });

  test('a free-text question is answered in words', async () => {
    const q = await ask({ text: 'What did the customer say exactly?', policy: 'refunds' });
    const { page } = ann;
    await page.goto(`${pliuz.base}/questions/${q.id}`);
    await page.getByRole('textbox', { name: 'Answer in words' }).fill('She wants it by Friday.');
    await page.getByRole('button', { name: 'Send answer' }).click();
    await page.waitForURL(/done=answered/);
    assert.equal(await page.locator('#answer-text').textContent(), 'She wants it by Friday.');
    const r = await pliuz.api('GET', `/api/v1/questions/${q.id}`, { token: agentKey });
    assert.equal(r.body.answer.text, 'She wants it by Friday.');
    assert.equal(r.body.answer.choice, null);
  });

  test('the originator sees the question but no answer form', async () => {
    const q = await ask({
      text: 'Is this your own expense?', choices: ['yes', 'no'], policy: 'refunds',
      originator: 'user:ann@example.com',
    });
    const { page } = ann;
    await page.goto(`${pliuz.base}/questions/${q.id}`);
    await page.locator('#cannot-answer').waitFor();
    assert.match(await page.locator('#cannot-answer').textContent(), /somebody else must answer/);
    assert.equal(await page.locator('#answer-form').count(), 0);
  });

  test('a policy\'s reject reasons are offered; the chosen one is what the agent receives', async () => {
    const a = await pliuz.createApproval(agentKey, refund({ tool_name: 'careful_refund', tool_schema: undefined }));
    const { page } = ann;
    await page.goto(`${pliuz.base}/requests/${a.id}`);
    const options = await page.locator('#reason_choice option').allTextContents();
    assert.deepEqual(options, ['Other (write it below)', 'wrong amount', 'wrong customer']);
    await page.locator('#reason_choice').selectOption('wrong amount');
    await page.getByRole('textbox', { name: 'Details for the agent' }).fill('40 EUR, not 129');
    await page.locator('#reject').click();
    await page.waitForURL(/done=rejected/);
    const r = await pliuz.api('GET', `/api/v1/approvals/${a.id}`, { token: agentKey });
    assert.equal(r.body.status, 'rejected');
    assert.equal(r.body.decision.reason, 'wrong amount: 40 EUR, not 129');
  });
});
