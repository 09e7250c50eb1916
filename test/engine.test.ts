import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import {
  buildSignatureHeader,
  buildSignContent,
  createPaymentEngine,
  type InquiryOutcome,
  type LifecycleOutcome,
  type LifecycleStore,
  memoryStore,
  signContent,
} from '../src/index.js';
import { drawScenarioOf, FAULT_KINDS, mixLabels, type OrderTruth } from '../src/simulator/index.js';
import { streamFor } from '../src/simulator/random.js';
import { payAndTrack, reconcile, type World, worldsStoppedAfterEach } from './helpers/e2e.js';
import { generateTestKeyPair } from './helpers/keys.js';
import { eventually } from './helpers/notify-receiver.js';
import { signedNotification } from './helpers/signed-notification.js';
import { testTempDir } from './helpers/temp-dir.js';

const world = worldsStoppedAfterEach();

/** IDs of payments that got a cancelPayment after an inquiry answer reported them paid. */
function cancelsAfterSuccess(w: World): string[] {
  const paidSeen = new Set<string>();
  const bad: string[] = [];
  for (const call of w.sim.calls()) {
    const id = call.paymentRequestId ?? '';
    if (call.api === 'inquiryPayment' && call.paymentStatus === 'S' && call.httpStatus === 200 && !call.fault)
      paidSeen.add(id);
    if (call.api === 'cancelPayment' && paidSeen.has(id)) bad.push(id);
  }
  return bad;
}

async function settleAll(w: World, ids: string[]): Promise<LifecycleOutcome[]> {
  return Promise.all(ids.map((id) => w.engine.outcome(id)));
}

describe('end to end against the simulator', () => {
  it('every scenario of the realistic mix ends in one outcome that agrees with the ground truth', async () => {
    const w = await world();
    const random = streamFor(11, 'engine-mix');
    const ids: string[] = [];
    for (const label of mixLabels('realistic')) {
      for (let i = 0; i < 12; i++) {
        const id = `MIX-${label}-${i}`;
        ids.push(id);
        await payAndTrack(w, id, drawScenarioOf('realistic', label, random));
      }
    }
    const outcomes = await settleAll(w, ids);
    const truths = w.sim.orders();
    expect(new Set(truths.map((t) => t.label))).toEqual(new Set(mixLabels('realistic')));
    expect(reconcile(outcomes, truths, cancelsAfterSuccess(w))).toEqual([]);
    expect(w.settled).toHaveLength(ids.length);
    expect(new Set(w.settled.map((o) => o.paymentRequestId)).size).toBe(ids.length);
    expect(outcomes.filter((o) => o.status === 'attention')).toEqual([]);
    const statuses = new Set(outcomes.map((o) => o.status));
    // Without faults, unfinished orders close at expiry and the last look sees it: no cancel needed.
    for (const status of ['succeeded', 'failed', 'closed']) expect(statuses).toContain(status);
  });

  it.each(FAULT_KINDS)('fault %s: outcomes still agree with the ground truth', async (kind) => {
    const w = await world({
      simulator: { faults: { rates: { [kind]: 0.4 }, latencyMs: [50, 150] }, holdMs: 2_000 },
      timeouts: { inquiryMs: 250, cancelMs: 250 },
    });
    const scenarios = [
      { decideAfterMs: 2_000 },
      { decideAfterMs: 5_000, notify: { mode: 'none' as const } },
      { decideAfterMs: 3_000, decision: 'failed' as const, notify: { mode: 'none' as const } },
      { decideAfterMs: null },
      { decideAfterMs: null, cancelUnknownTimes: 1 },
    ];
    const ids = scenarios.map((_, i) => `${kind}-${i}`);
    for (const [i, id] of ids.entries()) await payAndTrack(w, id, scenarios[i]);
    const outcomes = await settleAll(w, ids);
    expect(reconcile(outcomes, w.sim.orders(), cancelsAfterSuccess(w))).toEqual([]);
    expect(w.sim.calls().some((c) => c.fault === kind)).toBe(true);
    expect(outcomes.map((o) => o.status)).not.toContain('attention');
  });

  it('notification first: a notification before track is kept, and the lifecycle starts knowing the result', async () => {
    const w = await world();
    w.sim.createOrder({ paymentRequestId: 'NF-1', notifyUrl: w.notifyUrl, scenario: { decideAfterMs: 0 } });
    await eventually(() => w.sim.notifications().some((d) => d.result === 'acked'));
    expect((await w.store.notifications('NF-1'))[0]).toMatchObject({ applied: false });
    const order = w.sim.order('NF-1');
    const view = await w.engine.track({
      paymentRequestId: 'NF-1',
      amount: order?.amount,
      createdAt: order?.createdAt,
    });
    expect(view.final).toBe(true);
    const outcome = await w.engine.outcome('NF-1');
    expect(outcome).toMatchObject({
      status: 'succeeded',
      decidedBy: { source: 'notification' },
      inquiries: 0,
    });
    expect(w.sim.calls().filter((c) => c.paymentRequestId === 'NF-1')).toHaveLength(0);
    expect(await w.store.unappliedNotifications('NF-1')).toEqual([]);
  });

  it('an early close cancels at once', async () => {
    const w = await world();
    await payAndTrack(w, 'EC-1', { decideAfterMs: 30_000 });
    await w.engine.close('EC-1');
    const outcome = await w.engine.outcome('EC-1');
    expect(outcome).toMatchObject({ status: 'cancelled', cancelReason: 'closed-by-merchant' });
    expect(w.sim.order('EC-1')).toMatchObject({ cancelled: true, charged: false });
  });
});

describe('durability', () => {
  /** A store that remembers the state durably written for each payment, and can be slowed. */
  function watchedStore(delayMs = 0) {
    const inner = memoryStore();
    const durableState = new Map<string, string>();
    const store: LifecycleStore = {
      ...inner,
      async insert(record, audit) {
        const ok = await inner.insert(record, audit);
        if (ok) durableState.set(record.paymentRequestId, record.state);
        return ok;
      },
      async write(writes) {
        if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
        const conflicts = await inner.write(writes);
        for (const w of writes) durableState.set(w.record.paymentRequestId, w.record.state);
        return conflicts;
      },
    };
    return { store, durableState };
  }

  it('a cancelPayment is sent only after "cancelling" is durable', async () => {
    const { store, durableState } = watchedStore(40);
    const w = await world({ store, engine: { policy: { maxInquiries: 2 } } });
    const seenAtCancel: string[] = [];
    const original = w.client.cancelPayment.bind(w.client);
    w.client.cancelPayment = async (ref, opts) => {
      seenAtCancel.push(durableState.get((ref as { paymentRequestId: string }).paymentRequestId) ?? 'none');
      return original(ref, opts);
    };
    const ids = ['D-1', 'D-2', 'D-3'];
    for (const id of ids) await payAndTrack(w, id, { decideAfterMs: null });
    await w.engine.close('D-3');
    await settleAll(w, ids);
    expect(seenAtCancel.length).toBeGreaterThanOrEqual(3);
    for (const state of seenAtCancel) expect(state).toMatch(/^cancelling/);
  });

  it('onSettled fires after the outcome is durable, once per payment, and not again after a restart', async () => {
    const { store, durableState } = watchedStore(20);
    const w = await world({ store });
    const atSettle: string[] = [];
    w.engine.on('settled', (outcome) => atSettle.push(durableState.get(outcome.paymentRequestId) ?? 'none'));
    await payAndTrack(w, 'S-1', { decideAfterMs: 0 });
    await payAndTrack(w, 'S-2', { decideAfterMs: null });
    await settleAll(w, ['S-1', 'S-2']);
    await eventually(() => atSettle.length === 2);
    expect(atSettle.sort()).toEqual(['closed', 'succeeded']);
    await w.engine.stop();
    await w.engine.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(w.settled.map((o) => o.paymentRequestId).sort()).toEqual(['S-1', 'S-2']);
  });

  it('a failing onSettled is fired again on the next start, then marked', async () => {
    let calls = 0;
    const w = await world({
      engine: {
        onSettled: () => {
          calls++;
          if (calls === 1) throw new Error('downstream is down');
        },
      },
    });
    await payAndTrack(w, 'RS-1', { decideAfterMs: 0 });
    await w.engine.outcome('RS-1');
    await eventually(() => calls === 1);
    await w.engine.stop();
    await w.engine.start();
    await eventually(() => calls === 2);
    await w.engine.stop();
    await w.engine.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls).toBe(2);
  });

  it("an inquiry costs one write, its answer's: the timer that starts it is not written, its audit entry is", async () => {
    const { store } = watchedStore();
    const written: string[] = [];
    const write = store.write.bind(store);
    store.write = async (writes) => {
      for (const w of writes) if (w.record.paymentRequestId === 'W-1') written.push(w.record.state);
      return write(writes);
    };
    const w = await world({ store });
    await payAndTrack(w, 'W-1', { decideAfterMs: 9_000, notify: { mode: 'none' } });
    const outcome = await w.engine.outcome('W-1');
    expect(outcome.status).toBe('succeeded');
    expect(outcome.inquiries).toBeGreaterThanOrEqual(3);
    // One write per answer (back to pending, then the final one), none for entering `inquiring`.
    expect(written).not.toContain('awaitingResult.inquiring');
    expect(written.length).toBe(outcome.inquiries);
    // The audit still shows every inquiry start, in order.
    const audit = (await w.store.audit('W-1')).map((a) => `${a.from}>${a.to}`);
    expect(audit.filter((t) => t === 'awaitingResult.pending>awaitingResult.inquiring')).toHaveLength(
      outcome.inquiries,
    );
    expect(audit.at(-1)).toBe('awaitingResult.inquiring>succeeded');
  });

  it('a store that fails to write holds the cancel back until it recovers', async () => {
    const inner = memoryStore();
    let failing = false;
    const store: LifecycleStore = {
      ...inner,
      async write(writes) {
        if (failing) throw new Error('disk full');
        return inner.write(writes);
      },
    };
    const w = await world({ store });
    await payAndTrack(w, 'F-1', { decideAfterMs: null });
    failing = true;
    await w.engine.close('F-1');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(w.sim.calls().filter((c) => c.api === 'cancelPayment')).toHaveLength(0);
    failing = false;
    expect((await w.engine.outcome('F-1')).status).toBe('cancelled');
  });
});

describe('restart', () => {
  it('a restart rewrites no lifecycle that only resumes, and applies the notifications that waited in the inbox', async () => {
    const store = memoryStore();
    const w = await world({ store, engine: { policy: { inquiryScheduleMs: [600_000] } } });
    for (const id of ['QUIET-1', 'QUIET-2', 'INBOX-1']) {
      w.sim.createOrder({
        paymentRequestId: id,
        scenario: { decideAfterMs: null, notify: { mode: 'none' } },
      });
      await w.engine.track({ paymentRequestId: id, paymentExpiryTime: w.clock.now() + 3_600_000 });
    }
    await w.engine.stop();
    // A notification stored while the process was down (another worker's handler, say).
    await store.recordNotification({
      id: 'N-INBOX-1',
      paymentRequestId: 'INBOX-1',
      receivedAt: w.clock.now(),
      body: { paymentRequestId: 'INBOX-1', paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' } },
      applied: false,
    });
    const written: string[] = [];
    const write = store.write.bind(store);
    store.write = async (writes) => {
      written.push(...writes.map((x) => x.record.paymentRequestId));
      return write(writes);
    };
    await w.engine.start();
    expect((await w.engine.outcome('INBOX-1')).status).toBe('succeeded');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(written).toEqual(['INBOX-1']);
    expect(w.engine.get('QUIET-1')?.state).toBe('awaitingResult.pending');
    // The RESUME is in the audit once the next write of that lifecycle happens.
    await w.engine.close('QUIET-1');
    await w.engine.outcome('QUIET-1');
    expect((await store.audit('QUIET-1')).map((a) => a.event)).toContain('RESUME');
  });

  it('an engine restarted after its payments expired cancels them at once', async () => {
    const clockOffset = { ms: 0 };
    const { scaledClock } = await import('../src/index.js');
    // Slow enough that scheduling noise on a busy machine stays far below the 2 s first interval.
    const base = scaledClock(5);
    const clock = { ...base, now: () => base.now() + clockOffset.ms };
    const { sqliteStore } = await import('../src/index.js');
    const { join } = await import('node:path');
    const path = join(testTempDir('apl-restart-'), 'l.db');
    const w = await world({
      factor: 5,
      engine: { clock },
      simulator: { now: clock.now },
      store: sqliteStore(path),
    });
    const ids = ['R-1', 'R-2', 'R-3'];
    // The ACQP gives each payment 1 minute; Alipay+ would keep the order open for 30.
    for (const id of ids) {
      const order = w.sim.createOrder({
        paymentRequestId: id,
        expiresAt: clock.now() + 30 * 60_000,
        scenario: { decideAfterMs: null, notify: { mode: 'none' } },
      });
      await w.engine.track({
        paymentRequestId: id,
        createdAt: order.createdAt,
        paymentExpiryTime: order.createdAt + 60_000,
      });
    }
    await w.engine.stop();
    const callsBefore = w.sim.calls().length;
    clockOffset.ms = 10 * 60_000; // the process was down for ten minutes
    const restartedAt = clock.now();
    await w.engine.start();
    const outcomes = await settleAll(w, ids);
    expect(outcomes.map((o) => o.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    const after = w.sim.calls().slice(callsBefore);
    // One last look each, then the cancel: no schedule wait (a 2 s interval would be 2,000 simulated ms).
    for (const id of ids) {
      const own = after.filter((c) => c.paymentRequestId === id);
      expect(own.map((c) => c.api)).toEqual(['inquiryPayment', 'cancelPayment']);
      expect((own[1]?.at ?? 0) - restartedAt).toBeLessThan(1_500);
    }
  });
});

describe('sleeping lifecycles', () => {
  /** A payment the simulator never decides and never notifies, tracked with a one-minute schedule. */
  async function waiting(w: World, id: string): Promise<void> {
    w.sim.createOrder({
      paymentRequestId: id,
      expiresAt: w.clock.now() + 3_600_000,
      scenario: { decideAfterMs: null, notify: { mode: 'none' } },
    });
    await w.engine.track({ paymentRequestId: id, paymentExpiryTime: w.clock.now() + 3_600_000 });
  }
  const minute = { policy: { inquiryScheduleMs: [60_000] } };

  it('a lifecycle waiting for a far timer lets its actor go, wakes at the deadline, inquires, and sleeps again; nothing is written for it', async () => {
    const store = memoryStore();
    const written: string[] = [];
    const write = store.write.bind(store);
    store.write = async (writes) => {
      written.push(...writes.map((x) => x.record.state));
      return write(writes);
    };
    const w = await world({ store, engine: minute });
    const trackedAt = w.clock.now();
    w.sim.createOrder({
      paymentRequestId: 'SLEEP-1',
      expiresAt: trackedAt + 3_600_000,
      scenario: { decideAfterMs: 150_000, notify: { mode: 'none' } },
    });
    await w.engine.track({ paymentRequestId: 'SLEEP-1', paymentExpiryTime: trackedAt + 3_600_000 });
    expect(w.engine.sleepingCount).toBe(1);
    expect(w.engine.activeCount).toBe(1);
    expect(w.engine.get('SLEEP-1')?.state).toBe('awaitingResult.pending');
    // Woken twice (still processing at 1 and 2 minutes: back to sleep), paid at the third.
    await eventually(() => written.length === 1 && w.engine.sleepingCount === 1);
    const outcome = await w.engine.outcome('SLEEP-1');
    expect(outcome.status).toBe('succeeded');
    expect(outcome.inquiries).toBe(3);
    // One write per answer, as with an actor held throughout: none for sleeping or waking.
    expect(written).toEqual(['awaitingResult.pending', 'awaitingResult.pending', 'succeeded']);
    // Never early: each inquiry is sent at or after its deadline, one schedule step apart.
    const sent = w.sim.calls().filter((c) => c.api === 'inquiryPayment' && c.paymentRequestId === 'SLEEP-1');
    expect(sent).toHaveLength(3);
    for (const [i, call] of sent.entries())
      expect(call.at).toBeGreaterThanOrEqual(trackedAt + 60_000 * (i + 1));
    const audit = (await store.audit('SLEEP-1')).map((a) => a.event);
    expect(audit).not.toContain('RESUME');
    expect(audit.filter((e) => e === 'timer.untilNextInquiry')).toHaveLength(3);
    expect(w.engine.sleepingCount).toBe(0);
  });

  it('a notification, a close or a track for a sleeping lifecycle: woken for the event, or shown as stored', async () => {
    const w = await world({ engine: minute });
    for (const id of ['SLEEP-N', 'SLEEP-C', 'SLEEP-T']) await waiting(w, id);
    expect(w.engine.sleepingCount).toBe(3);
    // track again: the same lifecycle, still asleep.
    expect((await w.engine.track({ paymentRequestId: 'SLEEP-T' })).state).toBe('awaitingResult.pending');
    expect(w.engine.sleepingCount).toBe(3);
    // A notification wakes it and decides at once, long before the next inquiry.
    const ack = await w.notify({
      paymentRequestId: 'SLEEP-N',
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' },
    });
    expect(ack.status).toBe(200);
    const paid = await w.engine.outcome('SLEEP-N');
    expect(paid.status).toBe('succeeded');
    expect(paid.decidedBy.source).toBe('notification');
    expect(paid.inquiries).toBe(0);
    // A close wakes it and cancels.
    await w.engine.close('SLEEP-C');
    expect((await w.engine.outcome('SLEEP-C')).status).toBe('cancelled');
    expect(w.engine.sleepingCount).toBe(1);
    expect((await w.store.unappliedNotifications('SLEEP-N')).length).toBe(0);
  });

  it('a restart restores no actor for a lifecycle that only waits: it sleeps until due, and its RESUME is audited then', async () => {
    const store = memoryStore();
    const w = await world({ store, engine: minute });
    for (const id of ['REST-1', 'REST-2']) await waiting(w, id);
    await w.engine.stop();
    expect(w.engine.activeCount).toBe(0);
    await w.engine.start();
    expect(w.engine.activeCount).toBe(2);
    expect(w.engine.sleepingCount).toBe(2);
    await w.engine.close('REST-1');
    expect((await w.engine.outcome('REST-1')).status).toBe('cancelled');
    expect((await store.audit('REST-1')).map((a) => a.event)).toContain('RESUME');
    expect(w.engine.get('REST-2')?.state).toBe('awaitingResult.pending');
  });

  it('sleepAfterMs: Infinity keeps every actor, and so does an inspector', async () => {
    const kept = await world({ engine: { ...minute, sleepAfterMs: Number.POSITIVE_INFINITY } });
    await waiting(kept, 'KEPT-1');
    const inspected = await world({ engine: { ...minute, inspect: () => undefined } });
    await waiting(inspected, 'KEPT-2');
    expect([kept.engine.sleepingCount, inspected.engine.sleepingCount]).toEqual([0, 0]);
    expect([kept.engine.activeCount, inspected.engine.activeCount]).toEqual([1, 1]);
  });
});

describe('input and notifications at the edge', () => {
  it.each([
    ['an ID of 65 characters', { paymentRequestId: 'x'.repeat(65) }],
    ['an empty ID', { paymentRequestId: '' }],
    ['a decimal amount', { paymentRequestId: 'B-1', amount: { currency: 'JPY', value: '1.5' } }],
    ['an expiry in the past', { paymentRequestId: 'B-2', paymentExpiryTime: '2020-01-01T00:00:00+08:00' }],
    ['an unknown field', { paymentRequestId: 'B-3', amout: 1 }],
    ['a bad policy', { paymentRequestId: 'B-4', policy: { maxInquiries: -1 } }],
  ])('track refuses %s with INVALID_INPUT and stores nothing', async (_name, input) => {
    const w = await world();
    await expect(w.engine.track(input as never)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(await w.store.list()).toEqual([]);
  });

  it('track is idempotent, even when called twice at once', async () => {
    const w = await world();
    const order = w.sim.createOrder({ paymentRequestId: 'I-1', scenario: { decideAfterMs: 3_000 } });
    const input = { paymentRequestId: 'I-1', amount: order.amount, createdAt: order.createdAt };
    const [a, b] = await Promise.all([w.engine.track(input), w.engine.track(input)]);
    expect(a.paymentRequestId).toBe(b.paymentRequestId);
    expect(w.engine.activeCount).toBe(1);
    expect((await w.store.list()).length).toBe(1);
    expect((await w.engine.track(input)).paymentRequestId).toBe('I-1');
  });

  async function postNotification(
    w: World,
    body: string,
    sign: 'good' | 'none' | 'forged' | 'tampered' = 'good',
  ) {
    const url = new URL(w.notifyUrl);
    const time = new Date().toISOString();
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'client-id': 'E2E_CLIENT',
      'request-time': time,
    };
    const forger = generateTestKeyPair();
    if (sign !== 'none') {
      // Only the simulator holds Alipay+'s key: sign through a fresh simulator-shaped key for forgeries.
      const key = sign === 'forged' ? forger.privatePem : undefined;
      const signedBody = sign === 'tampered' ? body.replace('"S"', '"F"') : body;
      const content = buildSignContent({
        method: 'POST',
        path: url.pathname,
        clientId: 'E2E_CLIENT',
        time,
        body: signedBody,
      });
      headers.signature = buildSignatureHeader({ signature: signContent(content, key ?? alipayKeyOf(w)) });
    }
    const response = await request(w.notifyUrl, { method: 'POST', headers, body });
    return {
      status: response.statusCode,
      body: (await response.body.json()) as { result: { resultCode: string } },
    };
  }

  /** The body of an S notification for `order`, paid `paidAfterMs` after its creation. */
  function paidNotification(order: OrderTruth, paidAfterMs: number): string {
    return JSON.stringify({
      paymentRequestId: order.paymentRequestId,
      paymentId: order.paymentId,
      paymentAmount: order.amount,
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S', resultMessage: 'success' },
      paymentTime: new Date(order.createdAt + paidAfterMs).toISOString(),
    });
  }

  // The simulator's key is private to it; tests reach it through the test-only e2e keys.
  function alipayKeyOf(_w: World): string {
    return testAlipayPrivateKey;
  }
  let testAlipayPrivateKey = '';

  it('a forged, unsigned or tampered notification gets 401 and changes nothing; a bad body gets 400', async () => {
    const alipay = generateTestKeyPair();
    testAlipayPrivateKey = alipay.privatePem;
    const w = await world({ simulator: { privateKey: alipay.privatePem } });
    // Open for an hour (a minute is a second at 60×): on a busy machine the posts below must not
    // outlast the payment, which would close before the genuine notification.
    const order = w.sim.createOrder({
      paymentRequestId: 'SEC-1',
      notifyUrl: w.notifyUrl,
      expiresAt: w.clock.now() + 3_600_000,
      scenario: { decideAfterMs: null, notify: { mode: 'none' } },
    });
    await w.engine.track({
      paymentRequestId: 'SEC-1',
      amount: order.amount,
      createdAt: order.createdAt,
      paymentExpiryTime: order.expiresAt,
    });
    const paid = JSON.stringify({
      paymentRequestId: 'SEC-1',
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' },
      paymentAmount: { currency: 'JPY', value: '100' },
    });
    for (const sign of ['none', 'forged', 'tampered'] as const) {
      const answer = await postNotification(w, paid, sign);
      expect(answer.status).toBe(401);
      expect(answer.body.result.resultCode).toMatch(/INVALID_SIGNATURE/);
    }
    const bad = await postNotification(
      w,
      JSON.stringify({ paymentRequestId: 'SEC-1', paymentResult: { resultStatus: 'S' } }),
    );
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('resultCode');
    expect(await w.store.notifications('SEC-1')).toEqual([]);
    expect(w.engine.get('SEC-1')?.final).toBe(false);
    // A genuine one is acked with a signed SUCCESS and decides.
    const good = await postNotification(w, paid, 'good');
    expect(good).toMatchObject({ status: 200, body: { result: { resultCode: 'SUCCESS' } } });
    expect((await w.engine.outcome('SEC-1')).status).toBe('succeeded');
  });

  it('a duplicate or late notification is acked and recorded, and changes no outcome', async () => {
    const alipay = generateTestKeyPair();
    testAlipayPrivateKey = alipay.privatePem;
    const w = await world({ simulator: { privateKey: alipay.privatePem } });
    const late: unknown[] = [];
    w.engine.on('late-notification', (e) => late.push(e));
    await payAndTrack(w, 'DUP-1', { decideAfterMs: 0, notify: { duplicates: 2 } });
    const outcome = await w.engine.outcome('DUP-1');
    const failed = JSON.stringify({
      paymentRequestId: 'DUP-1',
      paymentResult: { resultCode: 'RISK_REJECT', resultStatus: 'F' },
    });
    expect((await postNotification(w, failed)).status).toBe(200);
    await eventually(() => late.length >= 1);
    expect(await w.engine.outcome('DUP-1')).toEqual(outcome);
    expect((await w.store.notifications('DUP-1')).length).toBeGreaterThanOrEqual(2);
  });

  it('notification during an inquiry: the notification decides and the inquiry is abandoned', async () => {
    // Every answer takes a second of real time; the notification is posted once the first inquiry
    // has reached Alipay+, so it surely lands while that inquiry is in flight.
    const alipay = generateTestKeyPair();
    testAlipayPrivateKey = alipay.privatePem;
    const w = await world({
      simulator: {
        privateKey: alipay.privatePem,
        faults: { rates: { latency: 1 }, latencyMs: [1_000, 1_000] },
      },
    });
    const order = await payAndTrack(w, 'ND-1', { decideAfterMs: 1_500, notify: { mode: 'none' } });
    const inquiries = () => w.sim.calls().filter((c) => c.api === 'inquiryPayment').length;
    await eventually(() => inquiries() === 1, 5_000);
    const paid = paidNotification(order, 1_500);
    expect(await postNotification(w, paid)).toMatchObject({ status: 200 });
    const outcome = await w.engine.outcome('ND-1');
    expect(outcome).toMatchObject({ status: 'succeeded', decidedBy: { source: 'notification' } });
    // The inquiry in flight was not waited for, and no other was sent.
    expect(inquiries()).toBe(1);
  });

  it('notification after cancel: recorded as late and flagged, the cancel wins, the user is refunded', async () => {
    // Paid at 2 s, but inquiries keep saying "in process" past expiry. The notification is posted once
    // the cancel has settled, not raced against it on the compressed clock.
    const alipay = generateTestKeyPair();
    testAlipayPrivateKey = alipay.privatePem;
    const w = await world({ simulator: { privateKey: alipay.privatePem } });
    const late: unknown[] = [];
    w.engine.on('late-notification', (event) => late.push(event));
    const order = await payAndTrack(w, 'NC-1', {
      decideAfterMs: 2_000,
      notify: { mode: 'none', inquiryLagMs: 120_000 },
    });
    const outcome = await w.engine.outcome('NC-1');
    expect(outcome.status).toBe('cancelled');
    expect(w.sim.order('NC-1')).toMatchObject({ charged: true, refunded: true, cancelled: true });
    const paid = paidNotification(order, 2_000);
    expect(await postNotification(w, paid)).toMatchObject({ status: 200 });
    await eventually(() => late.length === 1, 5_000);
    expect(late[0]).toMatchObject({
      paymentRequestId: 'NC-1',
      notification: { paymentResult: { resultStatus: 'S' } },
    });
    expect(await w.engine.outcome('NC-1')).toEqual(outcome);
  });

  it('a late notification to a lifecycle still cancelling is recorded in its outcome, flagged', async () => {
    // The order of events is forced, not raced: every answer is lost until the cancel has gone out
    // and the notification is in, so the lifecycle is surely in `cancelling` when it arrives.
    const alipay = generateTestKeyPair();
    testAlipayPrivateKey = alipay.privatePem;
    const w = await world({
      simulator: { privateKey: alipay.privatePem, faults: { rates: { 'unknown-exception': 1 } } },
    });
    const order = w.sim.createOrder({
      paymentRequestId: 'NC-2',
      notifyUrl: w.notifyUrl,
      scenario: { decideAfterMs: 1_000, notify: { mode: 'none' } },
    });
    await w.engine.track({ paymentRequestId: 'NC-2', amount: order.amount, createdAt: order.createdAt });
    await eventually(() => w.sim.calls().some((c) => c.api === 'cancelPayment'), 10_000);
    const paid = paidNotification(order, 1_000);
    expect(await postNotification(w, paid)).toMatchObject({
      status: 200,
      body: { result: { resultCode: 'SUCCESS' } },
    });
    w.sim.setFaults({ sequence: [] });
    const outcome = await w.engine.outcome('NC-2');
    expect(outcome.status).toBe('cancelled');
    expect(outcome.lateNotifications).toEqual([
      expect.objectContaining({ resultStatus: 'S', flagged: true }),
    ]);
    expect(w.sim.order('NC-2')).toMatchObject({ charged: true, cancelled: true, refunded: true });
  });

  it('the ack answers within the 5 s Alipay+ waits, signed with the ACQP key', async () => {
    const w = await world();
    await payAndTrack(w, 'ACK-1', { decideAfterMs: 0 });
    await eventually(() => w.sim.notifications().length > 0);
    expect(w.sim.notifications()[0]).toMatchObject({ result: 'acked', attempt: 1 });
  });
});

describe('logging', () => {
  it('keeps keys and signatures out of every log line', async () => {
    const lines: string[] = [];
    const log = (obj: object, msg?: string) => lines.push(JSON.stringify({ ...obj, msg }));
    const w = await world({ engine: { logger: { debug: log, info: log, warn: log, error: log } } });
    await payAndTrack(w, 'LOG-1', { decideAfterMs: 0 });
    await w.engine.outcome('LOG-1');
    const server = createServer(
      w.engine.notificationHandler({
        alipayPublicKey: w.sim.publicKeyPem,
        privateKey: w.acqp.privatePem,
        clientId: 'E2E_CLIENT',
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await request(`http://127.0.0.1:${port}/alipayplus/notify`, {
      method: 'POST',
      headers: {
        'client-id': 'E2E_CLIENT',
        'request-time': 'x',
        signature: 'algorithm=RSA256,keyVersion=1,signature=abc',
      },
      body: '{}',
    });
    server.close();
    expect(lines.length).toBeGreaterThan(0);
    const all = lines.join('\n');
    expect(all).not.toContain('PRIVATE KEY');
    expect(all).not.toContain(w.acqp.privatePem.split('\n')[1] ?? 'unreachable');
    expect(all).not.toMatch(/signature=/);
  });
});

describe('crash leftovers', () => {
  it('a late notification stored but not yet recorded when the process died is reported on the next start', async () => {
    const w = await world();
    await payAndTrack(w, 'LL-1', { decideAfterMs: 0, notify: { mode: 'none' } });
    await w.engine.outcome('LL-1');
    await w.engine.stop();
    // As if the handler stored it and the process died before marking it.
    await w.store.recordNotification({
      id: 'late-1',
      paymentRequestId: 'LL-1',
      receivedAt: 1,
      body: { paymentRequestId: 'LL-1', paymentResult: { resultCode: 'RISK_REJECT', resultStatus: 'F' } },
      applied: false,
    });
    const late: unknown[] = [];
    w.engine.on('late-notification', (e) => late.push(e));
    await w.engine.start();
    expect(late).toEqual([expect.objectContaining({ paymentRequestId: 'LL-1', state: 'succeeded' })]);
    expect(await w.store.unappliedOfFinal()).toEqual([]);
  });

  it('settlements of one flush fire one at a time, each marked before the next fires', async () => {
    const order: string[] = [];
    const inner = memoryStore();
    const store: LifecycleStore = {
      ...inner,
      async markSettled(id) {
        order.push(`mark ${id}`);
        return inner.markSettled(id);
      },
    };
    const w = await world({
      store,
      engine: {
        onSettled: async (o) => {
          order.push(`fire ${o.paymentRequestId}`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        },
      },
    });
    const ids = ['ST-1', 'ST-2', 'ST-3', 'ST-4'];
    for (const id of ids)
      w.sim.createOrder({ paymentRequestId: id, notifyUrl: w.notifyUrl, scenario: { decideAfterMs: 0 } });
    for (const id of ids)
      await w.engine.track({ paymentRequestId: id, amount: { currency: 'JPY', value: '100' } });
    await Promise.all(ids.map((id) => w.engine.outcome(id)));
    await eventually(() => order.length === 8);
    for (let i = 0; i < order.length; i += 2) {
      expect(order[i]?.replace('fire', 'mark')).toBe(order[i + 1]);
    }
  });
});

describe('admission control', () => {
  it('with every call slot taken, due payments wait in their timer state, in due order; one settled meanwhile is never inquired', async () => {
    const calls: { id: string; answer: (outcome: InquiryOutcome) => void }[] = [];
    const processing: InquiryOutcome = {
      kind: 'answer',
      raw: '{}',
      responseTime: '2026-01-01T00:00:00Z',
      result: { resultCode: 'SUCCESS', resultStatus: 'S' },
      paymentResult: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' },
    };
    const engine = createPaymentEngine({
      client: {
        inquiryPayment: (ref) =>
          new Promise((answer) =>
            calls.push({ id: 'paymentRequestId' in ref ? ref.paymentRequestId : '', answer }),
          ),
        cancelPayment: async () => ({ kind: 'no-result', reason: 'network', detail: 'not in this test' }),
      },
      store: memoryStore(),
      maxConcurrentCalls: 2,
      policy: { inquiryScheduleMs: [60_000] },
    });
    await engine.start();
    try {
      const now = Date.now();
      const ids = ['AD-1', 'AD-2', 'AD-3', 'AD-4', 'AD-5', 'AD-6'];
      // Due one after the other, 5 ms apart, in this order, and all due already: each timer fires as
      // soon as it is set, so they fire in this order. (Were they due a few ms ahead, a busy machine
      // could swap two: Node measures each delay from its loop's cached time, not from the call.)
      for (const [i, id] of ids.entries())
        await engine.track({
          paymentRequestId: id,
          createdAt: now - 60_000 - 100 + i * 5,
          paymentExpiryTime: now + 3_600_000,
        });
      await eventually(() => calls.length === 2);
      await new Promise((resolve) => setTimeout(resolve, 150)); // all six have fired by now
      expect(calls.map((c) => c.id)).toEqual(['AD-1', 'AD-2']);
      const states = () => ids.map((id) => engine.get(id)?.state);
      // The others wait in `pending`, not in `inquiring` holding an invoked call.
      expect(states()).toEqual([
        'awaitingResult.inquiring',
        'awaitingResult.inquiring',
        ...Array(4).fill('awaitingResult.pending'),
      ]);

      // A notification settles AD-4 while its timer waits for a slot.
      const alipay = generateTestKeyPair();
      const endpoint = engine.notificationHandler({
        clientId: 'AD',
        privateKey: generateTestKeyPair().privatePem,
        alipayPublicKey: alipay.publicPem,
      });
      const ack = await endpoint.handle(
        signedNotification({
          privatePem: alipay.privatePem,
          clientId: 'AD',
          body: { paymentRequestId: 'AD-4', paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' } },
        }),
      );
      expect(ack.status).toBe(200);
      expect((await engine.outcome('AD-4')).status).toBe('succeeded');

      // Each answer frees a slot for the next one due: AD-3, then AD-5 (AD-4 is final), then AD-6.
      for (let k = 0; k < 3; k++) {
        calls[k]?.answer(processing);
        await eventually(() => calls.length === 3 + k);
      }
      calls[3]?.answer(processing);
      calls[4]?.answer(processing);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(calls.map((c) => c.id)).toEqual(['AD-1', 'AD-2', 'AD-3', 'AD-5', 'AD-6']);
      expect(states()).toEqual([
        'awaitingResult.pending',
        'awaitingResult.pending',
        'awaitingResult.pending',
        'succeeded',
        'awaitingResult.pending',
        'awaitingResult.pending',
      ]);
    } finally {
      await engine.stop();
    }
  });

  it('a cancel retry that comes due behind 200 routine polls waiting for a slot is sent first', async () => {
    const sent: { api: string; id: string; answer: (outcome: unknown) => void }[] = [];
    const processing: InquiryOutcome = {
      kind: 'answer',
      raw: '{}',
      responseTime: '2026-01-01T00:00:00Z',
      result: { resultCode: 'SUCCESS', resultStatus: 'S' },
      paymentResult: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' },
    };
    const idOf = (ref: object) => ('paymentRequestId' in ref ? String(ref.paymentRequestId) : '');
    // A cancel goes out only once `cancelling` is durable: the test waits for that write.
    const written = new Set<string>();
    const inner = memoryStore();
    const store: LifecycleStore = {
      ...inner,
      async write(writes) {
        const conflicts = await inner.write(writes);
        for (const w of writes) written.add(`${w.record.paymentRequestId} ${w.record.state}`);
        return conflicts;
      },
    };
    const engine = createPaymentEngine({
      client: {
        inquiryPayment: (ref) =>
          new Promise((answer) => sent.push({ api: 'inquiry', id: idOf(ref), answer: answer as never })),
        cancelPayment: (ref) =>
          new Promise((answer) => sent.push({ api: 'cancel', id: idOf(ref), answer: answer as never })),
      },
      store,
      maxConcurrentCalls: 1,
      policy: { inquiryScheduleMs: [60_000], cancelRetryScheduleMs: [50] },
    });
    await engine.start();
    try {
      const now = Date.now();
      const ids = Array.from({ length: 201 }, (_, i) => `Q-${String(i).padStart(3, '0')}`);
      // All due at once: the first takes the only slot, the other 200 wait for it in their timer state.
      for (const id of ids)
        await engine.track({
          paymentRequestId: id,
          createdAt: now - 61_000,
          paymentExpiryTime: now + 3_600_000,
        });
      await eventually(() => sent.length === 1);
      // The merchant closes one whose poll waits. Its cancel is queued for the slot…
      const closed = ids[150] as string;
      await engine.close(closed);
      await eventually(() => written.has(`${closed} cancelling.requesting`));
      sent[0]?.answer(processing);
      await eventually(() => sent.length === 2);
      expect(sent[1]).toMatchObject({ api: 'cancel', id: closed });
      // …and gets no answer: its retry comes due 50 ms later, while a poll holds the slot and 199 wait.
      sent[1]?.answer({ kind: 'no-result', reason: 'network', detail: 'reset' });
      await eventually(() => sent.length === 3);
      expect(sent[2]?.api).toBe('inquiry');
      await eventually(() => written.has(`${closed} cancelling.retryWait`));
      await new Promise((resolve) => setTimeout(resolve, 100)); // the retry is due by now
      sent[2]?.answer(processing);
      await eventually(() => sent.length === 4);
      // First come would send the 199 polls first (they came due a minute earlier): the cancel goes.
      expect(sent[3]).toMatchObject({ api: 'cancel', id: closed });
      sent[3]?.answer({
        kind: 'answer',
        raw: '{}',
        responseTime: '',
        result: { resultCode: 'SUCCESS', resultStatus: 'S' },
      });
      expect((await engine.outcome(closed)).status).toBe('cancelled');
    } finally {
      for (const call of sent) call.answer(processing);
      await engine.stop();
    }
  });
});

describe('audit and inspection labels', () => {
  it('the audit names timers and calls, with the deciding code of non-final answers', async () => {
    const w = await world();
    await payAndTrack(w, 'AU-1', { decideAfterMs: 4_000, notify: { mode: 'none' } });
    await w.engine.outcome('AU-1');
    const audit = await w.store.audit('AU-1');
    expect(audit.map((e) => e.event)).toEqual(
      expect.arrayContaining(['TRACK', 'timer.untilNextInquiry', 'call.done']),
    );
    expect(audit.find((e) => e.event === 'call.done' && e.to.endsWith('pending'))?.code).toBe(
      'PAYMENT_IN_PROCESS',
    );
  });

  it('an expiry in the past without createdAt is refused with what to do; with createdAt it is tracked', async () => {
    const w = await world();
    await expect(
      w.engine.track({ paymentRequestId: 'EXP-1', paymentExpiryTime: '2020-01-01T00:00:00+08:00' }),
    ).rejects.toThrow(/INVALID_INPUT: .*has passed.*give createdAt.*nothing was stored/);
    expect(await w.store.load('EXP-1')).toBeUndefined();
    const createdAt = Date.parse('2019-12-31T23:59:00+08:00');
    const view = await w.engine.track({
      paymentRequestId: 'EXP-1',
      createdAt,
      paymentExpiryTime: '2020-01-01T00:00:00+08:00',
    });
    expect(view.paymentRequestId).toBe('EXP-1');
    expect(await w.store.load('EXP-1')).toBeDefined();
  });
});
