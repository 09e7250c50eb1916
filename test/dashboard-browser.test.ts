import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqliteStore } from '../src/index.js';
import { cli } from './helpers/cli.js';
import { attentionByMismatch, createWorld, payAndTrack, type World } from './helpers/e2e.js';
import { eventually } from './helpers/notify-receiver.js';
import { fileTempDir } from './helpers/temp-dir.js';

// Debian's chromium, which .ci/run installs when it is missing; playwright never downloads one here.
const CHROMIUM = '/usr/bin/chromium';
const root = fileURLToPath(new URL('..', import.meta.url));
const dir = fileTempDir('apl-dashboard-browser-');
const db = join(dir, 'lifecycles.db');
const spec = `sqlite:${db}`;
// The README's picture is refreshed on purpose (UPDATE_SCREENSHOT=1 npx vitest run
// test/dashboard-browser.test.ts), not by every test run: a run of the suite leaves the tree as it was.
const screenshot =
  process.env.UPDATE_SCREENSHOT === '1' ? join(root, 'docs', 'dashboard.png') : join(dir, 'dashboard.png');

async function mismatched(w: World, id: string): Promise<void> {
  expect((await attentionByMismatch(w, id)).status).toBe('attention');
}

/** Reads the SQLite file directly, as an auditor would, independently of the store's own queries. */
function query<T>(sql: string, params: unknown[] | Record<string, unknown> = []): T[] {
  const conn = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return conn.prepare(sql).all(params) as T[];
  } finally {
    conn.close();
  }
}

/** How many lifecycles a state box should show: the ones in it, or in any state nested inside it. */
function expectedCount(state: string): number {
  const rows = query<{ n: number }>(
    `SELECT count(*) AS n FROM lifecycles
      WHERE (final = 1 AND json_extract(outcome, '$.status') = @state)
         OR (final = 0 AND (state = @state OR substr(state, 1, length(@state) + 1) = @state || '.'))`,
    { state },
  );
  return rows[0]?.n ?? -1;
}

let dashboard: ChildProcessWithoutNullStreams | undefined;
let dashboardOut = '';
let url = '';
let browser: Browser | undefined;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  // The main job writes the store; then two payments that need a person and one still waiting join it.
  const demo = await cli('demo', '--payments', '40', '--speed', '120', '--store', spec);
  expect(demo.err).toBe('');
  expect(demo.code).toBe(0);
  const store = sqliteStore(db);
  // At real speed the waiting payment's first inquiry is seconds away: it is stored as pending.
  const w = await createWorld({ store, factor: 1 });
  try {
    await mismatched(w, 'ATT-1');
    await mismatched(w, 'ATT-2');
    await payAndTrack(w, 'WAITING-1', { decideAfterMs: null });
  } finally {
    await w.stop();
    await store.close();
  }

  dashboard = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'dashboard', '--store', spec, '--port', '0'],
    {
      cwd: root,
    },
  );
  dashboard.stdout.on('data', (chunk: Buffer) => {
    dashboardOut += chunk.toString('utf8');
  });
  dashboard.stderr.on('data', (chunk: Buffer) => {
    dashboardOut += chunk.toString('utf8');
  });
  await eventually(
    () => /dashboard: http:\/\/127\.0\.0\.1:\d+\//.test(dashboardOut) || dashboard?.exitCode !== null,
    60_000,
  );
  url = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(dashboardOut)?.[1] ?? '';
  expect(url, dashboardOut).not.toBe('');

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // CSP refusals and script errors show up as console errors: the page must run without any.
  page.on('console', (message) => {
    // The search for an unknown ID below is answered 404 on purpose, and Chromium logs that answer.
    if (message.type() === 'error' && !message.location().url.endsWith('/api/payment/NOT-IN-THE-STORE'))
      pageErrors.push(`${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(url);
  // The page marks each finished refresh on <body>: the first one means the counts are drawn.
  await page.waitForSelector('body[data-refreshes]', { timeout: 30_000 });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  if (dashboard && dashboard.exitCode === null) {
    const exited = new Promise((resolve) => dashboard?.once('exit', resolve));
    dashboard.kill('SIGINT');
    await exited;
  }
});

describe('the dashboard in a real browser', () => {
  it('has the browser it needs', () => {
    expect(existsSync(CHROMIUM)).toBe(true);
  });

  it('draws every state of the machine with the store count, and totals that equal the store', async () => {
    const boxes = await page.$$eval('[data-state]', (nodes) =>
      nodes.map((node) => ({
        state: node.getAttribute('data-state') ?? '',
        count: node.getAttribute('data-count'),
      })),
    );
    // Every top-level state and every nested one: the chart is the whole machine.
    expect(boxes.map((b) => b.state)).toEqual(
      expect.arrayContaining([
        'starting',
        'paying.sending',
        'awaitingResult',
        'awaitingResult.pending',
        'awaitingNotification.lastLook',
        'cancelling.retryWait',
        'windowClosed.checking',
        'refunding.requesting',
        'succeeded',
        'attention',
      ]),
    );
    expect(boxes).toHaveLength(26);
    for (const box of boxes)
      expect({ state: box.state, count: Number(box.count) }).toEqual({
        state: box.state,
        count: expectedCount(box.state),
      });

    // The counts checked above are not all zero: the store holds each kind the test put there.
    const byState = Object.fromEntries(boxes.map((b) => [b.state, Number(b.count)]));
    expect(byState.attention).toBe(2);
    expect(byState.succeeded).toBeGreaterThan(0);
    expect(byState.awaitingResult).toBeGreaterThanOrEqual(1);

    const totals = await page.$$eval('[data-total]', (nodes) =>
      Object.fromEntries(
        nodes.map((node) => [node.getAttribute('data-total'), Number(node.getAttribute('data-count'))]),
      ),
    );
    const sql = query<{ all: number; inFlight: number }>(
      'SELECT count(*) AS "all", sum(final = 0) AS inFlight FROM lifecycles',
    )[0];
    expect(totals.all).toBe(sql?.all);
    expect(totals.all).toBe(43);
    expect(totals.inFlight).toBe(sql?.inFlight);
    for (const status of ['succeeded', 'failed', 'closed', 'cancelled', 'refunded', 'attention']) {
      const n = query<{ n: number }>(
        "SELECT count(*) AS n FROM lifecycles WHERE final = 1 AND json_extract(outcome, '$.status') = ?",
        [status],
      )[0]?.n;
      expect({ status, n: totals[status] }).toEqual({ status, n });
    }
  });

  it('finds a payment by its paymentRequestId and shows its state and audit history', async () => {
    const [paid] = query<{ id: string; state: string }>(
      "SELECT payment_request_id AS id, state FROM lifecycles WHERE json_extract(outcome, '$.status') = 'succeeded' LIMIT 1",
    );
    if (!paid) throw new Error('the demo left no succeeded payment');
    const audit = query<{ to_state: string }>(
      'SELECT to_state FROM audit_log WHERE payment_request_id = ? ORDER BY id',
      [paid.id],
    );
    expect(audit.length).toBeGreaterThan(1);

    await page.fill('#search', paid.id);
    await page.press('#search', 'Enter');
    await page.waitForSelector(`#payment[data-payment-request-id="${paid.id}"] [data-field="state"]`, {
      timeout: 30_000,
    });
    expect(await page.textContent('#payment [data-field="state"]')).toBe(paid.state);
    expect(await page.textContent('#payment [data-field="outcome"]')).toBe('succeeded');
    const shown = await page.$$eval('#payment [data-audit-to]', (rows) =>
      rows.map((r) => r.getAttribute('data-audit-to')),
    );
    expect(shown).toEqual(audit.map((a) => a.to_state));

    // An ID the store does not hold is said to be unknown, not shown as an empty payment.
    await page.fill('#search', 'NOT-IN-THE-STORE');
    await page.press('#search', 'Enter');
    await page.waitForSelector('#payment [data-error="404"]', { timeout: 30_000 });
    expect(await page.textContent('#payment')).toContain('NOT-IN-THE-STORE is not in this store');
  });

  it('shows the attention queue, and an item resolved through the CLI leaves it at the next refresh', async () => {
    const queued = () =>
      page.$$eval('#attention tbody tr[data-payment-request-id]', (rows) =>
        rows.map((r) => r.getAttribute('data-payment-request-id')),
      );
    expect(await queued()).toEqual(['ATT-1', 'ATT-2']);
    expect(await page.textContent('#attention tr[data-payment-request-id="ATT-1"]')).toContain(
      'amount-mismatch',
    );

    // The search panel shows the item's history, including the notification that did not match.
    await page.fill('#search', 'ATT-2');
    await page.press('#search', 'Enter');
    await page.waitForSelector('#payment[data-payment-request-id="ATT-2"] [data-field="reason"]', {
      timeout: 30_000,
    });
    expect(await page.textContent('#payment [data-field="reason"]')).toBe('amount-mismatch');

    const resolved = await cli(
      'attention',
      'resolve',
      'ATT-1',
      '--action',
      'confirmed-unpaid',
      '--note',
      'the wallet confirmed nothing was charged',
      '--by',
      'dashboard test',
      '--store',
      spec,
    );
    expect(resolved.err).toBe('');
    expect(resolved.code).toBe(0);
    await page.waitForSelector('#attention tr[data-payment-request-id="ATT-1"]', {
      state: 'detached',
      timeout: 30_000,
    });
    expect(await queued()).toEqual(['ATT-2']);
    expect(await page.textContent('#attention-count')).toBe('1');
  });

  it('runs under its Content-Security-Policy without errors, and saves the README screenshot', async () => {
    expect(pageErrors).toEqual([]);
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    const png = readFileSync(screenshot);
    expect(png.length).toBeGreaterThan(10_000);
    // The PNG header's width: the page fits the 1280 pixels the README shows, with no sideways scroll.
    expect(png.readUInt32BE(16)).toBe(1280);
  });
});
