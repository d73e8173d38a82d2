// Questions from agents and structured reject reasons in a real headless
// Chromium against a real `pliuz serve`: the agent asks over the API, a
// person answers in the inbox, the agent's long-poll gets the typed answer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ANN, POLICIES, Pliuz, fixture, launchBrowser, loggedInPage, refund, stopAll } from './harness.js';

// The repository's Python environment (scripts/test.sh makes it before the
// browser tests), so the question can be asked through the Python SDK itself.
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PYTHON = process.env.PLIUZ_PYTHON || path.join(REPO, '.venv', 'bin', 'python');

// `ask_human(...)` in a child process; resolves with the typed Answer it
// returned (as JSON) once a person has answered.
function askThroughTheSdk(base, key, question) {
  const code = [
    'import json, sys',
    'from pliuz import ask_human',
    'q = json.loads(sys.argv[1])',
    'answer = ask_human(q.pop("text"), timeout=60, **q)',
    'print(json.dumps({"type": type(answer).__name__, **answer.model_dump(mode="json")}))',
  ].join('\n');
  const child = spawn(PYTHON, ['-c', code, JSON.stringify(question)], {
    env: { ...process.env, PLIUZ_BASE_URL: base, PLIUZ_API_KEY: key },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => {
      if (status !== 0) reject(new Error(`ask_human exited ${status}: ${err}`));
      else resolve(JSON.parse(out));
    });
  });
}

describe('questions and reject reasons in the inbox', () => {
  const pliuz = new Pliuz();
  let browser;
  let agentKey;
  let ann;

  before(async () => {
    fs.writeFileSync(pliuz.config, POLICIES + fixture('reject-reasons.toml'));
    pliuz.createPeople(ANN);
    agentKey = pliuz.cli(['agents', 'create', 'support-bot']);
    await pliuz.start();
    browser = await launchBrowser();
    ann = await loggedInPage(browser, pliuz.base, ANN);
  });

  after(() => stopAll(browser, pliuz));

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

  test('a question asked through the Python SDK is answered in the inbox; ask_human returns the typed answer', async () => {
    const answered = askThroughTheSdk(pliuz.base, agentKey, {
      text: 'Ship the replacement by air or by sea?',
      choices: [{ value: 'air', label: 'By air' }, 'sea'],
      policy: 'refunds',
    });
    const { page } = ann;
    // The question appears in the queue once the SDK has asked it.
    await page.goto(`${pliuz.base}/inbox`);
    const link = page.locator('#questions li a', { hasText: 'Ship the replacement' });
    for (let i = 0; i < 50 && (await link.count()) === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      await page.reload();
    }
    await link.click();
    await page.getByRole('button', { name: 'By air' }).click();
    await page.waitForURL(/done=answered/);
    const answer = await answered;
    assert.equal(answer.type, 'Answer');
    assert.equal(answer.choice, 'air');
    assert.equal(answer.choice_label, 'By air');
    assert.equal(answer.text, null);
    assert.equal(answer.answered_by, 'user:ann@example.com');
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
