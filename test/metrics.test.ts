import type { Attributes } from '@opentelemetry/api';
import {
  type Histogram,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import {
  buildSignatureHeader,
  buildSignContent,
  createPaymentEngine,
  ENGINE_METRICS,
  IN_FLIGHT_STATES,
  type LifecycleOutcome,
  signContent,
} from '../src/index.js';
import { CLIENT_ID, payAndTrack, type World, worldsStoppedAfterEach } from './helpers/e2e.js';
import { generateTestKeyPair } from './helpers/keys.js';
import { eventually } from './helpers/notify-receiver.js';
import { payRequest } from './helpers/pay-requests.js';

const world = worldsStoppedAfterEach();
const alipay = generateTestKeyPair();
const forger = generateTestKeyPair();

/** A reader that exports nothing by itself: the test collects when it wants to look. */
class CollectingReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** What one collection saw, looked up by instrument name and exact attribute set. */
class Collected {
  constructor(private readonly resource: ResourceMetrics) {}

  points(name: string): { attributes: Attributes; value: unknown }[] {
    for (const scope of this.resource.scopeMetrics) {
      for (const metric of scope.metrics) {
        if (metric.descriptor.name === name) return metric.dataPoints as never;
      }
    }
    return [];
  }

  /** A counter's or gauge's value for exactly these attributes; undefined when that series is absent. */
  value(name: string, attributes: Attributes = {}): number | undefined {
    const point = this.points(name).find((p) => sameAttributes(p.attributes, attributes));
    return point === undefined ? undefined : (point.value as number);
  }

  histogram(name: string, attributes: Attributes = {}): Histogram | undefined {
    const point = this.points(name).find((p) => sameAttributes(p.attributes, attributes));
    return point?.value as Histogram | undefined;
  }

  /** Every non-zero series of a counter, as `attribute values joined by |` → value. */
  series(name: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const point of this.points(name)) {
      if ((point.value as number) === 0) continue;
      out[Object.values(point.attributes).join('|')] = point.value as number;
    }
    return out;
  }
}

function sameAttributes(a: Attributes, b: Attributes): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

function harness() {
  const reader = new CollectingReader();
  const provider = new MeterProvider({ readers: [reader] });
  return {
    meter: provider.getMeter('metrics-test'),
    async collect(): Promise<Collected> {
      const { resourceMetrics, errors } = await reader.collect();
      expect(errors).toEqual([]);
      return new Collected(resourceMetrics);
    },
  };
}

/** Waits, without a fixed sleep, until a collection passes `check`. */
async function until(read: () => Promise<Collected>, check: (c: Collected) => boolean): Promise<Collected> {
  const end = Date.now() + 10_000;
  for (;;) {
    const collected = await read();
    if (check(collected)) return collected;
    if (Date.now() > end) throw new Error('metrics condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const M = ENGINE_METRICS;

/** Posts a notification to the world's endpoint: signed by Alipay+ (good), by someone else, or not at all. */
async function postNotification(
  w: World,
  body: string,
  how: { sign?: 'good' | 'forged' | 'none'; clientId?: string } = {},
): Promise<number> {
  const url = new URL(w.notifyUrl);
  const time = new Date().toISOString();
  const clientId = how.clientId ?? CLIENT_ID;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'client-id': clientId,
    'request-time': time,
  };
  const sign = how.sign ?? 'good';
  if (sign !== 'none') {
    const content = buildSignContent({ method: 'POST', path: url.pathname, clientId, time, body });
    const key = sign === 'good' ? alipay.privatePem : forger.privatePem;
    headers.signature = buildSignatureHeader({ signature: signContent(content, key) });
  }
  const response = await request(w.notifyUrl, { method: 'POST', headers, body });
  await response.body.dump();
  return response.statusCode;
}

describe('engine metrics', () => {
  it('each instrument moves when its event happens, by the right series', async () => {
    const m = harness();
    const quiet = { decideAfterMs: 0, notify: { mode: 'none' as const } };
    const w = await world({
      // Orders expire after 30 simulated minutes (30 s here): NOTE-1 waits for its notification until then.
      simulator: { privateKey: alipay.privatePem, scenarios: { 'PAY-1': quiet }, defaultExpiryMs: 1_800_000 },
      engine: { meter: m.meter },
    });

    // Decided by the pay's answer, by inquiries (paid, failed), by a notification, by a cancel.
    expect((await w.engine.pay(payRequest('PAY-1'))).final).toBe(true);
    await payAndTrack(w, 'INQ-OK', quiet);
    await payAndTrack(w, 'INQ-FAIL', { ...quiet, decision: 'failed' });
    await Promise.all([w.engine.outcome('INQ-OK'), w.engine.outcome('INQ-FAIL')]);

    const pending = await payAndTrack(w, 'NOTE-1', { decideAfterMs: null, notify: { mode: 'none' } });
    // At least one "still processing" answer reaches the engine before the notification decides.
    await until(
      m.collect,
      (c) => (c.value(M.calls.name, { api: 'inquiryPayment', result: 'processing' }) ?? 0) >= 1,
    );
    const paidAt = new Date(w.clock.now() - 90_000).toISOString();
    const paid = JSON.stringify({
      paymentRequestId: 'NOTE-1',
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' },
      paymentAmount: pending.amount,
      paymentTime: paidAt,
    });
    expect(await postNotification(w, paid)).toBe(200);
    expect(await w.engine.outcome('NOTE-1')).toMatchObject({
      status: 'succeeded',
      decidedBy: { source: 'notification' },
    });
    // The same notification again, then one that comes after the outcome.
    expect(await postNotification(w, paid)).toBe(200);
    const failed = JSON.stringify({
      paymentRequestId: 'NOTE-1',
      paymentResult: { resultCode: 'RISK_REJECT', resultStatus: 'F' },
    });
    expect(await postNotification(w, failed)).toBe(200);
    // Refused: forged, unsigned, for another client, not JSON, not a notifyPayment.
    expect(await postNotification(w, paid, { sign: 'forged' })).toBe(401);
    expect(await postNotification(w, paid, { sign: 'none' })).toBe(401);
    expect(await postNotification(w, paid, { clientId: 'SOMEONE_ELSE' })).toBe(401);
    expect(await postNotification(w, '{"paymentRequestId": "NOTE-1",')).toBe(400);
    expect(await postNotification(w, JSON.stringify({ paymentRequestId: 'NOTE-1' }))).toBe(400);

    await payAndTrack(w, 'CAN-1', { decideAfterMs: null, notify: { mode: 'none' } });
    await w.engine.close('CAN-1');
    expect((await w.engine.outcome('CAN-1')).status).toBe('cancelled');

    const c = await until(m.collect, (x) => Object.keys(x.series(M.outcomes.name)).length >= 5);
    expect(c.series(M.outcomes.name)).toEqual({
      'succeeded|pay': 1,
      'succeeded|inquiry': 1,
      'failed|inquiry': 1,
      'succeeded|notification': 1,
      'cancelled|cancel': 1,
    });
    // Each outcome's labels come from the outcome itself.
    const bySeries: Record<string, number> = {};
    for (const o of w.settled) {
      const key = `${o.status}|${o.decidedBy.source}`;
      bySeries[key] = (bySeries[key] ?? 0) + 1;
    }
    expect(c.series(M.outcomes.name)).toEqual(bySeries);

    expect(c.value(M.calls.name, { api: 'pay', result: 'S' })).toBe(1);
    expect(c.value(M.calls.name, { api: 'inquiryPayment', result: 'paid' })).toBe(1);
    expect(c.value(M.calls.name, { api: 'inquiryPayment', result: 'payment-failed' })).toBe(1);
    expect(c.value(M.calls.name, { api: 'cancelPayment', result: 'S' })).toBe(1);
    // Every counted call was timed, under its API.
    for (const api of ['pay', 'inquiryPayment', 'cancelPayment']) {
      const counted = c
        .points(M.calls.name)
        .filter((p) => p.attributes.api === api)
        .reduce((sum, p) => sum + (p.value as number), 0);
      const timed = c.histogram(M.callDuration.name, { api });
      expect(timed?.count, api).toBe(counted);
      expect(timed?.sum ?? -1).toBeGreaterThan(0);
    }
    expect(c.histogram(M.callDuration.name, { api: 'refund' })).toBeUndefined();

    expect(c.series(M.notifications.name)).toEqual({
      applied: 1,
      duplicate: 1,
      late: 1,
      'refused-signature': 2,
      'refused-client': 1,
      'refused-schema': 2,
    });

    // The lag of every outcome whose paymentTime is known, and of NOTE-1's at least 90 s.
    const withTime = w.settled.filter((o) => o.details.paymentTime !== undefined);
    expect(withTime.map((o) => o.paymentRequestId)).toContain('NOTE-1');
    const lag = c.histogram(M.decisionLag.name);
    expect(lag?.count).toBe(withTime.length);
    const expectedSum = withTime.reduce(
      (sum, o) => sum + (o.decidedAt - Date.parse(o.details.paymentTime as string)) / 1_000,
      0,
    );
    expect(lag?.sum).toBeCloseTo(expectedSum, 3);
    expect(lag?.max ?? 0).toBeGreaterThanOrEqual(90);

    // One insert per lifecycle; group commits for the rest.
    expect(c.histogram(M.storeWriteDuration.name, { op: 'insert' })?.count).toBe(5);
    expect(c.histogram(M.storeWriteDuration.name, { op: 'write' })?.count ?? 0).toBeGreaterThan(0);
    // The polling of NOTE-1 ran on timers.
    const lateness = c.histogram(M.timerLateness.name);
    expect(lateness?.count ?? 0).toBeGreaterThan(0);
    expect(lateness?.min ?? -1).toBeGreaterThanOrEqual(0);

    // Everything is final: nothing in flight, nothing open.
    for (const state of IN_FLIGHT_STATES) expect(c.value(M.inFlight.name, { state }), state).toBe(0);
    expect(c.value(M.attentionOpen.name)).toBe(0);
  });

  it('counts a call without a result by its reason', async () => {
    const m = harness();
    const w = await world({ engine: { meter: m.meter }, simulator: { defaultExpiryMs: 1_800_000 } });
    await payAndTrack(w, 'NR-1', {
      decideAfterMs: 0,
      notify: { mode: 'none' },
      faults: { sequence: ['wrong-signature', 'http-503'] },
    });
    expect((await w.engine.outcome('NR-1')).status).toBe('succeeded');
    const c = await m.collect();
    expect(c.series(M.calls.name)).toEqual({
      'inquiryPayment|no-result:bad-signature': 1,
      'inquiryPayment|no-result:http-status': 1,
      'inquiryPayment|paid': 1,
    });
  });

  it.each([
    ['asleep', 5_000],
    ['held with an actor', Number.POSITIVE_INFINITY],
  ])(
    'lifecycles in flight are counted by top-level state (%s), and open attention items',
    async (_, sleepAfterMs) => {
      const m = harness();
      const w = await world({
        factor: 1,
        simulator: { privateKey: alipay.privatePem },
        // Real time and a first inquiry ten minutes away: they wait in awaitingResult for the whole test.
        engine: { meter: m.meter, sleepAfterMs, policy: { inquiryScheduleMs: [600_000] } },
      });
      const wait = { decideAfterMs: null, notify: { mode: 'none' as const } };
      await payAndTrack(w, 'G-1', wait);
      const mismatched = await payAndTrack(w, 'G-2', wait);
      await payAndTrack(w, 'G-3', wait);
      if (sleepAfterMs < Number.POSITIVE_INFINITY) await eventually(() => w.engine.sleepingCount === 3);
      expect(w.engine.activeCount).toBe(3);
      let c = await m.collect();
      for (const state of IN_FLIGHT_STATES)
        expect(c.value(M.inFlight.name, { state }), state).toBe(state === 'awaitingResult' ? 3 : 0);
      expect(c.value(M.attentionOpen.name)).toBe(0);

      // One cancelled, one in attention: a notification whose amount is not the payment's.
      await w.engine.close('G-1');
      const wrongAmount = { ...mismatched.amount, value: `${Number(mismatched.amount.value) + 1}` };
      const notification = JSON.stringify({
        paymentRequestId: 'G-2',
        paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' },
        paymentAmount: wrongAmount,
      });
      expect(await postNotification(w, notification)).toBe(200);
      expect((await w.engine.outcome('G-1')).status).toBe('cancelled');
      const attention: LifecycleOutcome = await w.engine.outcome('G-2');
      expect(attention).toMatchObject({ status: 'attention', attentionReason: 'amount-mismatch' });
      c = await until(m.collect, (x) => x.value(M.inFlight.name, { state: 'awaitingResult' }) === 1);
      expect(c.value(M.inFlight.name, { state: 'cancelling' })).toBe(0);
      expect(c.value(M.attentionOpen.name)).toBe(1);

      // Another engine on the same store, once nothing is left to resume, reads the open item at its start.
      await w.engine.close('G-3');
      await w.engine.outcome('G-3');
      const other = harness();
      const second = createPaymentEngine({
        client: w.client,
        store: w.store,
        meter: other.meter,
        sleepAfterMs,
      });
      await second.start();
      try {
        expect((await other.collect()).value(M.attentionOpen.name)).toBe(1);
      } finally {
        await second.stop();
      }

      await w.engine.resolve('G-2', {
        action: 'confirmed-unpaid',
        note: 'no charge in the wallet',
        by: 'ops',
      });
      expect((await m.collect()).value(M.attentionOpen.name)).toBe(0);
    },
  );
});

describe('the incident brake, against an Alipay+ outage', () => {
  it('engages once during the outage (gauge 1, routine polls paced), then releases on its own (gauge 0)', async () => {
    const m = harness();
    const w = await world({
      engine: { meter: m.meter, policy: { inquiryScheduleMs: [1_000] }, brake: { pollsPerSecond: 2 } },
      simulator: { defaultExpiryMs: 1_800_000 },
    });
    const changes: { engaged: boolean; at: number }[] = [];
    w.engine.on('brake', (event) => changes.push({ engaged: event.engaged, at: event.at }));
    const ids = Array.from({ length: 30 }, (_, i) => `BRAKE-${i}`);
    for (const id of ids) await payAndTrack(w, id, { decideAfterMs: null, notify: { mode: 'none' } });
    // Alipay+ answers 503 to everything for two simulated minutes.
    const from = w.sim.now();
    w.sim.setLoad({ outages: [{ from, until: from + 120_000, fault: 'http-503' }] });
    await eventually(() => changes.length === 1, 10_000);
    expect(changes[0]?.engaged).toBe(true);
    expect((await m.collect()).value(M.brake.name)).toBe(1);
    // While engaged, routine polls go out at about 2 a (simulated) second, not 30.
    const engagedAt = changes[0]?.at as number;
    await eventually(() => w.sim.now() > engagedAt + 30_000, 10_000);
    const polls = w.sim
      .calls()
      .filter((c) => c.api === 'inquiryPayment' && c.at > engagedAt + 2_000 && c.at <= engagedAt + 30_000);
    expect(polls.length).toBeLessThanOrEqual(2 * 28 + 2);
    expect(polls.length).toBeGreaterThan(0); // still probing
    // The outage ends: answers come back, and the brake releases by itself.
    w.sim.setLoad(undefined);
    await eventually(() => changes.length === 2, 20_000);
    expect(changes.map((c) => c.engaged)).toEqual([true, false]);
    expect((await m.collect()).value(M.brake.name)).toBe(0);
  });
});
