import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  AlipayPlusLifecycleError,
  createPaymentEngine,
  type LifecycleOutcome,
  memoryStore,
  type PayOutcome,
  type PayRequestInput,
  refundRequestIdFor,
  scaledClock,
  sqliteStore,
} from '../src/index.js';
import { type World, worldsStoppedAfterEach } from './helpers/e2e.js';
import { payRequest } from './helpers/pay-requests.js';
import { testTempDir } from './helpers/temp-dir.js';

const world = worldsStoppedAfterEach();

const DAY = 24 * 3_600_000;
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const intentWorker = fileURLToPath(new URL('./fixtures/pay-intent-worker.ts', import.meta.url));

/** Pay calls the simulator received for one payment, in order. */
function paysOf(w: World, id: string) {
  return w.sim.calls().filter((c) => c.api === 'pay' && c.paymentRequestId === id);
}

async function expectRefused(promise: Promise<unknown>, code: string, text: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AlipayPlusLifecycleError);
  expect((error as AlipayPlusLifecycleError).code).toBe(code);
  expect((error as Error).message).toMatch(text);
}

describe('engine.pay: the lifecycle starts before the pay is sent', () => {
  it('stores `paying` with the exact request durably before the pay is signed, then sends exactly it', async () => {
    const w = await world();
    const seenAtSend: { state?: string; stored?: unknown; sent?: unknown }[] = [];
    const realPay = w.client.pay.bind(w.client);
    (w.client as { pay: typeof realPay }).pay = async (request, options) => {
      const stored = await w.store.load(request.paymentRequestId);
      seenAtSend.push({ state: stored?.state, stored: stored?.input.payRequest, sent: request });
      return realPay(request, options);
    };
    const view = await w.engine.pay(payRequest('PAY-DURABLE'));
    expect(seenAtSend).toHaveLength(1);
    expect(seenAtSend[0]?.state).toBe('paying.sending');
    expect(seenAtSend[0]?.stored).toEqual(seenAtSend[0]?.sent);
    expect(view.state.startsWith('paying')).toBe(false);
    const audit = await w.store.audit('PAY-DURABLE');
    expect(audit[0]).toMatchObject({ event: 'PAY', from: '', to: 'paying.sending' });
    expect((await w.engine.outcome('PAY-DURABLE')).paymentRequestId).toBe('PAY-DURABLE');
  });

  it('fills paymentNotifyUrl and an explicit paymentExpiryTime: min(the requested expiry, the mode maximum)', async () => {
    const w = await world({ factor: 10, engine: { maxPayExpiryMs: { cashier: 120_000 } } });
    const sent: PayRequestInput[] = [];
    const realPay = w.client.pay.bind(w.client);
    (w.client as { pay: typeof realPay }).pay = async (request, options) => {
      sent.push(request);
      return realPay(request, options);
    };
    const now = w.clock.now();
    // User-presented, no expiry asked: the 1-minute maximum.
    await w.engine.pay(payRequest('PAY-EXP-1'));
    // Cashier, asking for an hour: the configured 2-minute maximum.
    const hourLater = new Date(now + 3_600_000).toISOString();
    await w.engine.pay(payRequest('PAY-EXP-2', 'cashier', { paymentExpiryTime: hourLater }));
    // Cashier, asking for 90 s: kept, to the second.
    const soon = w.clock.now() + 90_000;
    await w.engine.pay(
      payRequest('PAY-EXP-3', 'cashier', { paymentExpiryTime: new Date(soon).toISOString() }),
    );
    // Measured from each pay's own start (the clock runs 60× while the test goes on).
    const starts = await Promise.all(
      sent.map(async (r) => (await w.store.load(r.paymentRequestId))?.input.createdAt as number),
    );
    const expiries = sent.map((r, i) => Date.parse(r.paymentExpiryTime as string) - (starts[i] as number));
    expect(expiries[0]).toBeGreaterThan(59_000);
    expect(expiries[0]).toBeLessThanOrEqual(60_000);
    expect(expiries[1]).toBeGreaterThan(119_000);
    expect(expiries[1]).toBeLessThanOrEqual(120_000);
    expect(Date.parse(sent[2]?.paymentExpiryTime as string)).toBe(Math.floor(soon / 1000) * 1000);
    for (const request of sent) {
      expect(request.paymentNotifyUrl).toBe(w.notifyUrl);
      expect(request.paymentExpiryTime).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$/);
    }
    // The lifecycle keeps exactly the deadline that was sent.
    const stored = await w.store.load('PAY-EXP-1');
    expect(stored?.input.expiresAt).toBe(Date.parse(sent[0]?.paymentExpiryTime as string));
  });

  it('refuses a request that lacks a field its mode requires: INVALID_INPUT naming it, nothing stored or sent', async () => {
    const w = await world();
    const request = payRequest('PAY-BAD-1', 'order-code');
    (request.order as Record<string, unknown>).env = {};
    await expectRefused(w.engine.pay(request), 'INVALID_INPUT', /order\.env\.userAgent/);
    await expectRefused(
      w.engine.pay(payRequest('x'.repeat(65))),
      'INVALID_INPUT',
      /paymentRequestId: must be at most 64 characters/,
    );
    await expectRefused(
      w.engine.pay(
        payRequest('PAY-BAD-2', 'user-presented', { paymentExpiryTime: '2020-01-01T00:00:00+08:00' }),
      ),
      'INVALID_INPUT',
      /not in the future/,
    );
    expect(await w.store.load('PAY-BAD-1')).toBeUndefined();
    expect(await w.store.load('PAY-BAD-2')).toBeUndefined();
    expect(w.sim.calls()).toHaveLength(0);
  });

  it('the same request again is the same lifecycle (one pay sent); other content under that ID is refused', async () => {
    const w = await world();
    const request = payRequest('PAY-AGAIN');
    const [a, b] = await Promise.all([w.engine.pay(request), w.engine.pay(request)]);
    expect(a.paymentRequestId).toBe('PAY-AGAIN');
    expect(b.paymentRequestId).toBe('PAY-AGAIN');
    await w.engine.pay(request);
    expect(paysOf(w, 'PAY-AGAIN')).toHaveLength(1);
    const changed = payRequest('PAY-AGAIN', 'user-presented', {
      paymentAmount: { currency: 'JPY', value: '999' },
    });
    await expectRefused(
      w.engine.pay(changed),
      'PAYMENT_REQUEST_REUSED',
      /other content.*nothing was stored or sent/,
    );
    expect(paysOf(w, 'PAY-AGAIN')).toHaveLength(1);
    const stored = await w.store.load('PAY-AGAIN');
    expect(stored?.input.payRequest).toMatchObject({ paymentAmount: { value: '100' } });

    // A tracked payment's pay is not known here: a pay under its ID is refused too.
    w.sim.createOrder({ paymentRequestId: 'TRACKED-1', notifyUrl: w.notifyUrl });
    await w.engine.track({ paymentRequestId: 'TRACKED-1' });
    await expectRefused(w.engine.pay(payRequest('TRACKED-1')), 'PAYMENT_REQUEST_REUSED', /was tracked/);
    expect(paysOf(w, 'TRACKED-1')).toHaveLength(0);
  });

  it('a U answer goes on to the inquiry lifecycle, which finds the payment paid', async () => {
    const w = await world({ simulator: { scenarios: { 'PAY-U': { decideAfterMs: 3_000 } } } });
    const view = await w.engine.pay(payRequest('PAY-U'));
    expect(view.state).toBe('awaitingResult.pending');
    expect(view.context.pay).toMatchObject({ mode: 'user-presented', attempts: 1, row: 'in-process' });
    const outcome = await w.engine.outcome('PAY-U');
    expect(outcome.status).toBe('succeeded');
    expect(w.sim.order('PAY-U')).toMatchObject({ status: 'paid', charged: true });
  });

  it('with no client.pay the engine refuses engine.pay with INVALID_OPTIONS, and stores nothing', async () => {
    const store = memoryStore();
    const never = () => new Promise<never>(() => undefined);
    const engine = createPaymentEngine({ client: { inquiryPayment: never, cancelPayment: never }, store });
    await engine.start();
    await expectRefused(engine.pay(payRequest('NO-CLIENT')), 'INVALID_OPTIONS', /no pay\(\)/);
    expect(await store.load('NO-CLIENT')).toBeUndefined();
    await engine.stop();
  });

  it('the pay actor sends nothing at or after expiry: a pay given up before any pay left fails as never-sent, with no call', async () => {
    // The pay waits for a call slot held by a slow call until the payment has expired.
    const w = await world({ engine: { maxConcurrentCalls: 1 } });
    const answers: PayOutcome[] = [];
    const realPay = w.client.pay.bind(w.client);
    (w.client as { pay: typeof realPay }).pay = async (request, options) => {
      const outcome = await realPay(request, options);
      answers.push(outcome);
      return outcome;
    };
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const realInquiry = w.client.inquiryPayment.bind(w.client);
    let first = true;
    (w.client as { inquiryPayment: typeof realInquiry }).inquiryPayment = async (ref, options) => {
      if (first) {
        first = false;
        await held;
      }
      return realInquiry(ref, options);
    };
    w.sim.createOrder({
      paymentRequestId: 'HOLDER',
      notifyUrl: w.notifyUrl,
      scenario: { decideAfterMs: null },
    });
    await w.engine.track({ paymentRequestId: 'HOLDER', createdAt: w.clock.now() - 1_900 });
    await new Promise((resolve) => setTimeout(resolve, 200)); // the holder's inquiry takes the one slot
    const now = w.clock.now();
    const paying = w.engine.pay(
      payRequest('PAY-LATE', 'user-presented', { paymentExpiryTime: new Date(now + 5_000).toISOString() }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300)); // 18 simulated seconds: expired
    release();
    const view = await paying;
    expect(view.context.pay?.lastCode).toBe('NO_RESULT:never-sent');
    expect(answers).toHaveLength(0);
    const outcome = await w.engine.outcome('PAY-LATE');
    // Started here, its pay never handed to the client: nothing reached Alipay+, so nothing can
    // have been charged. Failed, without a last look or a cancel (the machine test covers the
    // restored lifecycle, whose not-sent pay still leads to both).
    expect(outcome).toMatchObject({
      status: 'failed',
      decidedBy: { source: 'pay', code: 'NO_RESULT:never-sent' },
    });
    expect(w.sim.calls().filter((c) => c.paymentRequestId === 'PAY-LATE')).toEqual([]);
  });
});

describe('late tracking: nothing unknown is refused', () => {
  it('a payment tracked after its expiry gets a last look, then a cancel, and ends as the truth says', async () => {
    const w = await world({
      simulator: {
        scenarios: {
          'LATE-PAID': { decideAfterMs: 2_000 },
          'LATE-OPEN': { decideAfterMs: null, faults: { sequence: ['http-503'] } },
        },
      },
    });
    const paid = w.sim.createOrder({ paymentRequestId: 'LATE-PAID', notifyUrl: w.notifyUrl });
    const open = w.sim.createOrder({ paymentRequestId: 'LATE-OPEN' });
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // 66 simulated seconds: both expired
    for (const order of [paid, open]) {
      const view = await w.engine.track({
        paymentRequestId: order.paymentRequestId,
        amount: order.amount,
        createdAt: order.createdAt,
        paymentExpiryTime: order.expiresAt,
      });
      expect(view.final || view.state.length > 0).toBe(true);
    }
    expect(await w.engine.outcome('LATE-PAID')).toMatchObject({ status: 'succeeded' });
    // The last look got a 503: unknown, so it is cancelled (the order had closed unpaid).
    const outcome = await w.engine.outcome('LATE-OPEN');
    expect(outcome.status).toBe('cancelled');
    expect(w.sim.order('LATE-OPEN')).toMatchObject({ charged: false, cancelled: true });
  });

  async function pastTheWindow(autoRefund: boolean) {
    // The simulator's clock and the engine's are one; the engine starts two days after the order.
    const base = Date.now();
    const simClock = scaledClock(60, base, Date.now());
    const later = scaledClock(60, base + 2 * DAY, Date.now());
    let current = simClock;
    const clock = {
      now: () => current.now(),
      setTimeout: (fn: () => void, ms: number) => current.setTimeout(fn, ms),
      clearTimeout: (handle: unknown) => current.clearTimeout(handle),
    };
    const w = await world({
      clock,
      engine: { policy: { autoRefund } },
      simulator: {
        scenarios: {
          // Paid, but the first inquiry after the restart is lost: the cancel is refused as too late.
          'WINDOW-PAID': {
            decideAfterMs: 2_000,
            notify: { mode: 'none' },
            faults: { sequence: ['http-503'] },
          },
          'WINDOW-OPEN': { decideAfterMs: null, faults: { sequence: ['http-503'] } },
        },
      },
    });
    const orders = ['WINDOW-PAID', 'WINDOW-OPEN'].map((id) => w.sim.createOrder({ paymentRequestId: id }));
    await new Promise((resolve) => setTimeout(resolve, 200)); // 12 simulated seconds: WINDOW-PAID is paid
    current = later;
    for (const order of orders) {
      await w.engine.track({
        paymentRequestId: order.paymentRequestId,
        amount: order.amount,
        createdAt: order.createdAt,
        paymentExpiryTime: order.expiresAt,
      });
    }
    const outcomes = await Promise.all(orders.map((o) => w.engine.outcome(o.paymentRequestId)));
    return { w, outcomes };
  }

  it('past the cancel window, with autoRefund: a paid payment is refunded once, with the derived refundRequestId', async () => {
    const { w, outcomes } = await pastTheWindow(true);
    const [paid, open] = outcomes as [LifecycleOutcome, LifecycleOutcome];
    expect(paid).toMatchObject({
      status: 'refunded',
      decidedBy: { source: 'refund', code: 'SUCCESS' },
      refund: {
        refundRequestId: refundRequestIdFor('WINDOW-PAID'),
        refundAmount: { currency: 'JPY', value: '100' },
      },
    });
    const truth = w.sim.order('WINDOW-PAID');
    expect(truth).toMatchObject({ charged: true, cancelled: false, refunded: true });
    expect(open.status).toBe('closed');
    expect(w.sim.order('WINDOW-OPEN')).toMatchObject({ charged: false });
    // The one cancel each was lost (503) and, past the window, not sent again; one refund went through,
    // its lost first attempt and its retry under the same derived refundRequestId.
    const calls = (api: string) => w.sim.calls().filter((c) => c.api === api);
    expect(calls('cancelPayment').map((c) => c.httpStatus)).toEqual([503, 503]);
    const refunds = calls('refund');
    expect(refunds.filter((c) => c.resultStatus === 'S' && c.httpStatus === 200)).toHaveLength(1);
    expect(new Set(refunds.map((c) => c.refundRequestId))).toEqual(
      new Set([refundRequestIdFor('WINDOW-PAID')]),
    );
  });

  it('past the cancel window, without autoRefund: a paid payment stops in attention (refund-due); nothing is refunded', async () => {
    const { w, outcomes } = await pastTheWindow(false);
    expect(outcomes[0]).toMatchObject({ status: 'attention', attentionReason: 'refund-due' });
    expect(outcomes[1]?.status).toBe('closed');
    expect(w.sim.calls().filter((c) => c.api === 'refund')).toHaveLength(0);
    expect(w.sim.order('WINDOW-PAID')).toMatchObject({ charged: true, refunded: false });
  });
});

describe('a crash between the stored intent and the pay', () => {
  /** Runs the intent worker until it is about to sign the pay, then SIGKILLs it. */
  async function killBeforePay(
    dbPath: string,
    request: PayRequestInput,
    clock: { start: number; realStart: number },
  ) {
    const child = spawn(process.execPath, ['--import', 'tsx', intentWorker], {
      cwd: repoRoot,
      env: {
        ...process.env,
        PAY_INTENT_CONFIG: JSON.stringify({ dbPath, request, clock: { factor: 60, ...clock } }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stderr: string[] = [];
    child.stderr?.on('data', (chunk) => stderr.push(String(chunk)));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (text) => {
        if (text.startsWith('about-to-send ')) resolve(text);
      });
      child.on('exit', () => reject(new Error(`the worker exited first: ${stderr.join('')}`)));
    });
    child.kill('SIGKILL');
    await exited;
    return line;
  }

  it.each([
    ['before expiry: the identical pay is sent again, and the payment resolves', false],
    ['after expiry: no pay is sent, and the payment resolves unpaid', true],
  ] as const)('restarted %s', async (_title, pastExpiry) => {
    const dir = testTempDir('pay-intent-');
    const dbPath = join(dir, 'lifecycles.db');
    const start = Date.now();
    const request = payRequest('INTENT-1');
    const line = await killBeforePay(dbPath, request, { start, realStart: Date.now() });
    const [, state] = line.split(' ');
    const storedJson = line.slice(line.indexOf(' ', 'about-to-send '.length) + 1);
    expect(state).toBe('paying.sending');
    const storedRequest = JSON.parse(storedJson as string) as Record<string, unknown>;

    // The simulator never saw it; the restarted engine runs on the same clock (or 2 minutes on).
    const offset = pastExpiry ? 120_000 : 0;
    const clock = scaledClock(60, start + offset + (Date.now() - start) * 60, Date.now());
    const store = sqliteStore(dbPath);
    const w = await world({
      clock,
      store,
      simulator: { scenarios: { 'INTENT-1': { decideAfterMs: 0 } } },
    });
    const outcome = await w.engine.outcome('INTENT-1');
    const pays = paysOf(w, 'INTENT-1');
    const expiresAt = Date.parse(storedRequest.paymentExpiryTime as string);
    if (pastExpiry) {
      expect(pays).toHaveLength(0);
      expect(outcome.status).toBe('closed');
      expect(w.sim.order('INTENT-1')?.charged ?? false).toBe(false);
    } else {
      expect(pays).toHaveLength(1);
      expect(pays[0]?.at).toBeLessThan(expiresAt);
      expect(outcome.status).toBe('succeeded');
      expect(w.sim.order('INTENT-1')).toMatchObject({ charged: true });
    }
    await store.close();
  });
});
