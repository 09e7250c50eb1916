import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DashboardServer, startDashboardServer } from '../src/dashboard/server.js';
import { lifecycleStatechart } from '../src/dashboard/statechart.js';
import { decisionLagMs, lagDistribution, SampleRing, splitCounts } from '../src/dashboard/summary.js';
import { type LifecycleRecord, type LifecycleStore, sqliteStore } from '../src/index.js';
import { cli } from './helpers/cli.js';
import { attentionByMismatch, createWorld, payAndTrack, type World } from './helpers/e2e.js';
import { eventually } from './helpers/notify-receiver.js';
import { fileTempDir } from './helpers/temp-dir.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = fileTempDir('apl-dashboard-server-');
const db = join(dir, 'lifecycles.db');
// A sentinel in the stored pay request: it must never appear in an API answer.
const SECRET = 'PAYMENT-CODE-281000000000000042';

async function mismatched(w: World, id: string): Promise<void> {
  await attentionByMismatch(w, id);
}

let store: LifecycleStore;
let server: DashboardServer;

beforeAll(async () => {
  const writing = sqliteStore(db);
  const w = await createWorld({ store: writing, factor: 1 });
  try {
    await mismatched(w, 'ATT-1');
    await payAndTrack(w, 'OK-1', { decideAfterMs: 0 });
    await eventually(() => w.settled.some((o) => o.paymentRequestId === 'OK-1'), 30_000);
    // engine.pay stores the exact request: its payment code stands in for what the page must not show.
    await w.engine.pay({
      paymentRequestId: 'PAY-1',
      paymentAmount: { currency: 'JPY', value: '500' },
      order: {
        referenceOrderId: 'ORDER-PAY-1',
        orderDescription: 'Coffee',
        orderAmount: { currency: 'JPY', value: '500' },
        merchant: { referenceMerchantId: 'M1', store: { referenceStoreId: 'S1', storeName: 'Shibuya' } },
      },
      paymentMethod: { paymentMethodType: 'CONNECT_WALLET', paymentMethodId: SECRET },
      paymentFactor: { isInStorePayment: 'true', inStorePaymentScenario: 'PaymentCode' },
    });
  } finally {
    await w.stop();
    await writing.close();
  }
  store = sqliteStore(db, { writerThread: false });
  await store.open();
  server = await startDashboardServer({ store, port: 0, sampleIntervalMs: 50 });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await store?.close();
});

const get = async (path: string, headers: Record<string, string> = {}) => {
  const response = await fetch(new URL(path, server.url), { headers });
  return { status: response.status, headers: response.headers, text: await response.text() };
};
const getJson = async (path: string) => {
  const answer = await get(path);
  return { status: answer.status, body: JSON.parse(answer.text) };
};

describe('dashboard JSON API', () => {
  it('/api/machine gives every state of the machine, nested, and its state-changing transitions', async () => {
    const { status, body } = await getJson('/api/machine');
    expect(status).toBe(200);
    expect(body.initial).toBe('starting');
    const top = body.nodes.map((n: { id: string }) => n.id);
    expect(top).toEqual([
      'starting',
      'paying',
      'awaitingResult',
      'awaitingNotification',
      'cancelling',
      'windowClosed',
      'refunding',
      'succeeded',
      'failed',
      'closed',
      'cancelled',
      'refunded',
      'attention',
    ]);
    const awaiting = body.nodes.find((n: { id: string }) => n.id === 'awaitingResult');
    expect(awaiting).toMatchObject({ type: 'compound', initial: 'awaitingResult.pending' });
    expect(awaiting.children.map((c: { id: string }) => c.id)).toEqual([
      'awaitingResult.pending',
      'awaitingResult.inquiring',
      'awaitingResult.deciding',
    ]);
    expect(awaiting.children[1].invokes).toEqual(['inquiryPayment']);
    expect(body.nodes.find((n: { id: string }) => n.id === 'attention').type).toBe('final');
    expect(body.edges).toContainEqual(
      expect.objectContaining({
        source: 'awaitingResult',
        target: 'attention',
        label: 'NOTIFIED [isAmountMismatch]',
      }),
    );
    expect(body.edges).toContainEqual(
      expect.objectContaining({
        source: 'awaitingResult.inquiring',
        target: 'succeeded',
        label: 'done [isPaid]',
      }),
    );
    // Every edge joins two states the chart has.
    const ids = new Set<string>();
    const collect = (nodes: { id: string; children: unknown[] }[]) => {
      for (const n of nodes) {
        ids.add(n.id);
        collect(n.children as { id: string; children: unknown[] }[]);
      }
    };
    collect(body.nodes);
    for (const edge of body.edges) expect([ids.has(edge.source), ids.has(edge.target)]).toEqual([true, true]);
    expect(body).toEqual(JSON.parse(JSON.stringify(lifecycleStatechart())));
  });

  it('/api/summary counts the store by state, splits in flight from outcomes, and samples over time', async () => {
    // Counted here from the records themselves: final ones under their outcome, others by state.
    const records = await store.list(100);
    const expected: Record<string, number> = {};
    for (const r of records) {
      const key = r.final ? (r.outcome?.status ?? r.state) : r.state;
      expected[key] = (expected[key] ?? 0) + 1;
    }
    const finals = records.filter((r) => r.final).length;
    const { status, body } = await getJson('/api/summary');
    expect(status).toBe(200);
    expect(body.counts).toEqual(expected);
    expect(body.counts).toMatchObject({ attention: 1, succeeded: expect.any(Number) });
    expect(body.total).toBe(3);
    expect(body.inFlight).toBe(3 - finals);
    expect(body.outcomes.attention).toBe(1);
    expect(body.outcomes.succeeded).toBe(expected.succeeded);
    expect(body.series.t.length).toBeGreaterThanOrEqual(1);
    expect(body.series.inFlight.at(-1)).toBe(3 - finals);
    expect(body.series.outcomes.attention.at(-1)).toBe(1);
    // The sampler keeps sampling: a later answer has more points (waited for, not timed).
    const first = body.series.t.length;
    let later = first;
    const until = Date.now() + 30_000;
    while (later <= first && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      later = (await getJson('/api/summary')).body.series.t.length;
    }
    expect(later).toBeGreaterThan(first);
    // OK-1's wallet decided and said when: at least its lag is known.
    expect(body.lag.finals).toBe(finals);
    expect(body.lag.known).toBeGreaterThanOrEqual(1);
    expect(body.lag.buckets.reduce((sum: number, b: { count: number }) => sum + b.count, 0)).toBe(
      body.lag.known,
    );
  });

  it('/api/attention lists the open items with reason, amount, age and audit history', async () => {
    const { status, body } = await getJson('/api/attention');
    expect(status).toBe(200);
    expect(body.items).toHaveLength(1);
    const [item] = body.items;
    expect(item).toMatchObject({ paymentRequestId: 'ATT-1', reason: 'amount-mismatch' });
    expect(item.amount.currency).toBe('JPY');
    expect(item.ageMs).toBeGreaterThanOrEqual(0);
    expect(item.audit.at(-1)).toMatchObject({ to: 'attention', event: 'NOTIFIED', code: 'AMOUNT_MISMATCH' });
    expect(Object.keys(item).sort()).toEqual([
      'ageMs',
      'amount',
      'audit',
      'decidedAt',
      'paymentRequestId',
      'reason',
    ]);
  });

  it('/api/payment/:id shows state, outcome, audit and notifications, and picks its fields', async () => {
    const { status, body } = await getJson('/api/payment/OK-1');
    expect(status).toBe(200);
    expect(body).toMatchObject({ paymentRequestId: 'OK-1', state: 'succeeded', final: true });
    expect(body.outcome).toMatchObject({ status: 'succeeded' });
    expect(body.audit.map((a: { to: string }) => a.to)).toContain('succeeded');
    expect(body.notifications.length).toBeGreaterThanOrEqual(1);
    expect(Object.keys(body.notifications[0]).sort()).toEqual([
      'applied',
      'id',
      'receivedAt',
      'resultCode',
      'resultStatus',
    ]);
    expect(body.input).toBeUndefined();
    expect(body.snapshot).toBeUndefined();

    const pay = await get('/api/payment/PAY-1');
    expect(pay.status).toBe(200);
    expect(JSON.parse(pay.text).paymentRequestId).toBe('PAY-1');
    expect(pay.text).not.toContain(SECRET);
  });

  it('/api/payment/:id answers 404 for an unknown ID and 400 for one that is no paymentRequestId', async () => {
    const unknown = await getJson('/api/payment/NOPE-1');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe('NOPE-1 is not in this store');
    const tooLong = await getJson(`/api/payment/${'x'.repeat(65)}`);
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error).toContain('at most 64 characters');
    expect((await getJson('/api/payment/')).status).toBe(400);
    expect((await getJson('/api/payment/%E0%A4%A')).status).toBe(400);
  });

  it('no answer anywhere carries the stored pay request', async () => {
    // The sentinel is in the store: a leak would show.
    expect(JSON.stringify((await store.load('PAY-1'))?.input)).toContain(SECRET);
    for (const path of ['/api/summary', '/api/attention', '/api/payment/PAY-1', '/api/payment/ATT-1']) {
      expect((await get(path)).text).not.toContain(SECRET);
    }
  });
});

describe('dashboard HTTP', () => {
  it('serves the page and its scripts from the package under a self-only Content-Security-Policy', async () => {
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe');
    // Every script and style the page names is served here, none from elsewhere.
    const refs = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(refs.length).toBeGreaterThanOrEqual(5);
    for (const ref of refs) {
      expect(ref.startsWith('/')).toBe(true);
      expect((await get(ref)).status).toBe(200);
    }
    expect((await get('/vendor/elk.bundled.js')).text).toContain('ELK');
    expect((await get('/vendor/uPlot.iife.min.js')).text).toContain('uPlot');
  });

  it('is read-only, answers 404 for unknown paths, and refuses other Host names', async () => {
    const post = await fetch(new URL('/api/summary', server.url), { method: 'POST' });
    expect(post.status).toBe(405);
    expect((await get('/nothing-here')).status).toBe(404);
    // The Host header as a page on another name (DNS rebinding) would send it.
    const rebound = await new Promise<number>((resolve, reject) => {
      import('node:http').then(({ request }) => {
        const req = request(
          new URL('/api/attention', server.url),
          { headers: { host: 'evil.example:80' } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      }, reject);
    });
    expect(rebound).toBe(421);
  });
});

describe('dashboard command', () => {
  it('exits 2 with a clear message when the port is taken, and when the store is missing or bad', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const taken = await cli('dashboard', '--store', `sqlite:${db}`, '--port', String(port));
      expect(taken.code).toBe(2);
      expect(taken.err).toContain(`port ${port} on 127.0.0.1 is already in use`);
      expect(taken.out).not.toContain('dashboard: http');
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
    const missing = await cli('dashboard', '--store', `sqlite:${join(dir, 'none.db')}`, '--port', '0');
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('no store at');
    const bad = await cli('dashboard', '--store', 'postgres://x', '--port', '0');
    expect(bad.code).toBe(2);
    const memory = await cli('dashboard', '--store', 'memory', '--port', '0');
    expect(memory.code).toBe(2);
    expect(memory.err).toContain('give --store sqlite:PATH');
    const badPort = await cli('dashboard', '--store', `sqlite:${db}`, '--port', '70000');
    expect(badPort.code).toBe(2);
  });
});

describe('demo --dashboard', () => {
  it('serves the page over the demo store while it runs and after it, until Ctrl-C (exit 0)', async () => {
    const demoDb = join(dir, 'demo.db');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'demo',
        '--payments',
        '10',
        '--speed',
        '120',
        '--dashboard',
        '0',
        '--store',
        `sqlite:${demoDb}`,
      ],
      { cwd: root },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await eventually(() => out.includes('press Ctrl-C to exit') || child.exitCode !== null, 90_000);
      expect(out).toContain('reconciliation: lost 0, divergent 0');
      const url = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1];
      expect(url, out).toBeDefined();
      // The demo is over and its store closed; the dashboard still reads every payment it made.
      const summary = (await (await fetch(new URL('/api/summary', url))).json()) as {
        total: number;
        inFlight: number;
      };
      expect(summary.total).toBe(10);
      expect(summary.inFlight).toBe(0);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  }, 120_000);
});

describe('summary helpers', () => {
  it('splits state counts into in flight and outcomes', () => {
    expect(
      splitCounts({ 'awaitingResult.pending': 2, 'cancelling.requesting': 1, succeeded: 4, attention: 1 }),
    ).toEqual({
      inFlight: 3,
      outcomes: { succeeded: 4, failed: 0, closed: 0, cancelled: 0, refunded: 0, attention: 1 },
    });
  });

  it('keeps the last samples of a ring, oldest first', () => {
    const ring = new SampleRing(3);
    const sample = (at: number) => ({ at, ...splitCounts({}) });
    for (const at of [1, 2, 3, 4, 5]) ring.push(sample(at));
    expect(ring.toArray().map((s) => s.at)).toEqual([3, 4, 5]);
  });

  it('measures decision lag from the wallet paymentTime, and buckets it', () => {
    const record = (decidedAt: number, paymentTime?: string): LifecycleRecord => ({
      paymentRequestId: `P${decidedAt}`,
      version: 1,
      input: { paymentRequestId: `P${decidedAt}`, createdAt: 0 },
      state: 'succeeded',
      final: true,
      snapshot: {},
      outcome: {
        status: 'succeeded',
        paymentRequestId: `P${decidedAt}`,
        decidedBy: { source: 'inquiry', level: 'payment', code: 'SUCCESS' },
        details: paymentTime ? { paymentTime } : {},
        inquiries: 1,
        cancelAttempts: 0,
        decidedAt,
        lateNotifications: [],
      },
      settledFired: true,
      createdAt: 0,
      updatedAt: decidedAt,
    });
    const base = Date.parse('2026-01-01T00:00:00Z');
    expect(decisionLagMs(record(base + 1_500, '2026-01-01T00:00:00Z'))).toBe(1_500);
    expect(decisionLagMs(record(base))).toBeUndefined();
    const lag = lagDistribution([
      record(base + 100, '2026-01-01T00:00:00Z'),
      record(base + 3_000, '2026-01-01T00:00:00Z'),
      record(base + 7_200_000, '2026-01-01T00:00:00Z'),
      record(base),
    ]);
    expect(lag).toMatchObject({ finals: 4, known: 3, p50: 3_000, p99: 7_200_000 });
    const counted = lag.buckets.filter((b) => b.count > 0).map((b) => [b.le, b.count]);
    expect(counted).toEqual([
      [250, 1],
      [5_000, 1],
      [null, 1],
    ]);
  });
});
