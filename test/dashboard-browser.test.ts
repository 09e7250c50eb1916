import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqliteStore } from '../src/index.js';
import { launchTestBrowser, type TestBrowser } from './helpers/browser.js';
import { cli } from './helpers/cli.js';
import { attentionByMismatch, createWorld, payAndTrack, type World } from './helpers/e2e.js';
import { eventually } from './helpers/notify-receiver.js';
import { fileTempDir } from './helpers/temp-dir.js';

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

/** The open attention items, read from the store: ended in `attention`, with no resolution recorded. */
function openAttention(): string[] {
  return query<{ id: string }>(
    `SELECT payment_request_id AS id FROM lifecycles
      WHERE final = 1 AND json_extract(outcome, '$.status') = 'attention'
        AND payment_request_id NOT IN (SELECT payment_request_id FROM attention_resolutions)`,
  ).map((row) => row.id);
}

let dashboard: ChildProcessWithoutNullStreams | undefined;
let dashboardOut = '';
let url = '';
let browser: TestBrowser | undefined;
let page: Page;
const pageErrors: string[] = [];

/**
 * Collects what the page reports as broken: uncaught errors, and console errors, which is where CSP
 * refusals and failed loads show up. `expected` names the request URLs whose failure a test causes.
 */
function collectErrors(target: Page, errors: string[], expected: (url: string) => boolean): void {
  target.on('console', (message) => {
    if (message.type() === 'error' && !expected(message.location().url))
      errors.push(`${message.text()} (${message.location().url})`);
  });
  target.on('pageerror', (error) => errors.push(error.message));
}

/** The open attention items as the server's API lists them, to compare a page's queue with. */
async function attentionIds(): Promise<string[]> {
  const response = await fetch(new URL('api/attention', url));
  const body = (await response.json()) as { items: { paymentRequestId: string }[] };
  return body.items.map((item) => item.paymentRequestId);
}

/** Every state's count on a page next to the store's own count for it. */
async function shownAndStoredCounts(target: Page) {
  const boxes = await target.$$eval('[data-state]', (nodes) =>
    nodes.map((node) => ({
      state: node.getAttribute('data-state') ?? '',
      count: node.getAttribute('data-count'),
    })),
  );
  return {
    shown: boxes.map((box) => ({ state: box.state, count: Number(box.count) })),
    stored: boxes.map((box) => ({ state: box.state, count: expectedCount(box.state) })),
  };
}

beforeAll(async () => {
  // The demo writes the bulk of the store, a realistic mix for the counts, the charts and the picture.
  // Which mix it is depends on the machine: at 120x its 40 pays start within a third of a real second
  // against one-second real call timeouts, so on a starved machine many time out, fewer succeed, and
  // its reconciliation can report a divergence (exit 1). That is the demo test's business; here the
  // demo only has to run to its end, and every lifecycle the tests below rely on is made by the test.
  const demo = await cli('demo', '--payments', '40', '--speed', '120', '--store', spec);
  expect(demo.err).toBe('');
  expect(demo.out).toMatch(/^reconciliation: lost \d+, divergent \d+$/m);
  expect([0, 1], demo.out).toContain(demo.code);
  const store = sqliteStore(db);
  // At real speed the waiting payment's first inquiry is seconds away: it is stored as pending.
  const w = await createWorld({ store, factor: 1 });
  try {
    await mismatched(w, 'ATT-1');
    await mismatched(w, 'ATT-2');
    await payAndTrack(w, 'WAITING-1', { decideAfterMs: null });
    // A payment that certainly succeeded, for the search below; the wallet's notification decides it.
    await payAndTrack(w, 'PAID-1', { decideAfterMs: 0 });
    await eventually(() => w.settled.some((o) => o.paymentRequestId === 'PAID-1'), 30_000);
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

  browser = await launchTestBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // The search for an unknown ID below is answered 404 on purpose, and Chromium logs that answer.
  collectErrors(page, pageErrors, (at) => at.endsWith('/api/payment/NOT-IN-THE-STORE'));
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
  it('draws both charts: the browser runs in a locale uPlot accepts, whatever LANG the machine has', async () => {
    // With no LANG, or LANG=C.UTF-8, this Chromium would report `und` or `en-US@posix`; uPlot refuses
    // the latter at load, and both charts then stay empty.
    expect(await page.evaluate('navigator.language')).toBe('en-US');
    for (const chart of ['#series', '#lag']) {
      expect(await page.locator(`${chart} .uplot canvas`).count(), chart).toBe(1);
      expect(await page.locator(`${chart} [data-unavailable]`).count(), chart).toBe(0);
    }
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
    // ATT-1 and ATT-2, and any the demo left on a starved machine.
    expect(byState.attention).toBeGreaterThanOrEqual(2);
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
    expect(totals.all).toBe(44);
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
      "SELECT payment_request_id AS id, state FROM lifecycles WHERE payment_request_id = 'PAID-1' AND json_extract(outcome, '$.status') = 'succeeded'",
    );
    if (!paid) throw new Error('PAID-1 is not stored as succeeded');
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
    // In the order the page lists them, which is its own business; what it lists is the store's.
    const sorted = (ids: (string | null)[]) => [...ids].sort();
    expect(sorted(await queued())).toEqual(sorted(openAttention()));
    expect(await queued()).toEqual(expect.arrayContaining(['ATT-1', 'ATT-2']));
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
    expect(openAttention()).not.toContain('ATT-1');
    expect(sorted(await queued())).toEqual(sorted(openAttention()));
    expect(await page.textContent('#attention-count')).toBe(String(openAttention().length));
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

describe('the dashboard when a vendor script did not load', () => {
  interface Degraded {
    /** A vendor script whose request fails. */
    block?: string;
    /** A locale for the page other than the pinned one. */
    locale?: string;
    /** A vendor script answered with this body instead of the real one. */
    replace?: { script: string; body: string };
  }

  /** A fresh page with a vendor script missing, once its refresh loop has run twice. */
  async function degradedPage({ block, locale, replace }: Degraded) {
    if (!browser) throw new Error('the browser did not launch');
    const errors: string[] = [];
    const options = { viewport: { width: 1280, height: 900 } };
    const degraded = await (locale
      ? browser.browser.newPage({ ...options, locale })
      : browser.newPage(options));
    collectErrors(degraded, errors, (at) => block !== undefined && at.endsWith(block));
    if (block) await degraded.route(`**${block}`, (route) => route.abort());
    if (replace)
      await degraded.route(`**${replace.script}`, (route) =>
        route.fulfill({ contentType: 'text/javascript; charset=utf-8', body: replace.body }),
      );
    await degraded.goto(url);
    // A second completed refresh shows the loop carried on after drawing without the script.
    // (Polled from here: the page's CSP forbids the string evaluation waitForFunction would need.)
    await expect
      .poll(async () => Number(await degraded.getAttribute('body', 'data-refreshes')), { timeout: 15_000 })
      .toBeGreaterThanOrEqual(2);
    return { degraded, errors };
  }

  async function queueShown(target: Page) {
    return target.$$eval('#attention tbody tr[data-payment-request-id]', (rows) =>
      rows.map((r) => r.getAttribute('data-payment-request-id')),
    );
  }

  // Two ways uPlot goes missing: its file does not arrive, or it arrives and throws while loading,
  // as it does in a browser whose locale is `en-US@posix` (what this Chromium reports under LANG=C.UTF-8).
  it.each([
    { why: 'its request failed', block: '/vendor/uPlot.iife.min.js', loadError: [] },
    {
      why: 'it refused the locale en-US@posix',
      locale: 'en-US@posix',
      loadError: ['Invalid language tag: en-US@posix'],
    },
  ])(
    'without uPlot ($why): statechart, totals and attention queue are drawn, each chart says what is missing',
    async ({ block, locale, loadError }) => {
      const { degraded, errors } = await degradedPage({ block, locale });
      try {
        // The page has settled by now, so these read what is there rather than wait for it to appear.
        for (const chart of ['#series', '#lag'])
          expect(
            await degraded.locator(`${chart} [data-unavailable="uPlot"]`).allTextContents(),
            chart,
          ).toEqual(['chart unavailable: uPlot did not load']);
        // The decision lag's figures are text, and need no chart library.
        expect(await degraded.locator('#lag-note').allTextContents()).toEqual([
          expect.stringContaining('newest final lifecycles'),
        ]);

        const counts = await shownAndStoredCounts(degraded);
        expect(counts.shown).toHaveLength(26);
        expect(counts.shown).toEqual(counts.stored);
        expect(
          await degraded
            .locator('[data-total="all"]')
            .evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-count'))),
        ).toEqual(['44']);

        const queue = await attentionIds();
        expect(queue.length).toBeGreaterThan(0);
        expect(await queueShown(degraded)).toEqual(queue);

        expect(await degraded.isHidden('#problem')).toBe(true);
        // uPlot's own error while loading, if it had one; nothing from the page itself.
        expect(errors).toEqual(loadError);
      } finally {
        await degraded.context().close();
      }
    },
  );

  it('with a uPlot that throws when drawing: the other panels are drawn, and the problem line names both charts', async () => {
    // A stand-in for a chart library at odds with the browser: it loads, and fails on every chart.
    const body = `function uPlot() { throw new Error('cannot draw here'); }
uPlot.paths = { bars: function () { return function () { return null; }; } };`;
    const { degraded, errors } = await degradedPage({
      replace: { script: '/vendor/uPlot.iife.min.js', body },
    });
    try {
      expect(await degraded.locator('#problem:visible').allTextContents()).toEqual([
        'could not draw the outcomes chart (cannot draw here), the decision lag (cannot draw here)',
      ]);
      expect(await degraded.locator('#lag-note').allTextContents()).toEqual([
        expect.stringContaining('newest final lifecycles'),
      ]);
      const counts = await shownAndStoredCounts(degraded);
      expect(counts.shown).toHaveLength(26);
      expect(counts.shown).toEqual(counts.stored);
      const queue = await attentionIds();
      expect(queue.length).toBeGreaterThan(0);
      expect(await queueShown(degraded)).toEqual(queue);
      expect(errors).toEqual([]);
    } finally {
      await degraded.context().close();
    }
  });

  it('without ELK: the states are listed with their counts, and the charts and queue are drawn', async () => {
    const { degraded, errors } = await degradedPage({ block: '/vendor/elk.bundled.js' });
    try {
      expect(await degraded.locator('#statechart [data-unavailable="ELK"]').allTextContents()).toEqual([
        'statechart unavailable: ELK did not load',
      ]);
      const counts = await shownAndStoredCounts(degraded);
      expect(counts.shown).toHaveLength(26);
      expect(counts.shown).toEqual(counts.stored);
      expect(counts.shown.find((box) => box.state === 'attention')?.count).toBeGreaterThanOrEqual(2);

      for (const chart of ['#series', '#lag'])
        expect(await degraded.locator(`${chart} .uplot canvas`).count(), chart).toBe(1);
      expect(await queueShown(degraded)).toEqual(await attentionIds());

      expect(await degraded.isHidden('#problem')).toBe(true);
      expect(errors).toEqual([]);
    } finally {
      await degraded.context().close();
    }
  });
});
