import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { LifecycleOutcome } from '../machines/index.js';
import {
  type AlipayPlusClient,
  createAlipayPlusClient,
  createKeyRing,
  type KeyRing,
  parseSignatureHeader,
} from '../src/client/index.js';
import { agreesWithTruth } from '../src/demo/reconcile.js';
import { scaledClock } from '../src/engine/clock.js';
import { createPaymentEngine, type PaymentEngine } from '../src/engine/payment-engine.js';
import type { NotificationHandler } from '../src/notifications/notification-handler.js';
import type { ScenarioInput } from '../src/simulator/scenario.js';
import { createSimulator, type Simulator } from '../src/simulator/simulator.js';
import { memoryStore } from '../src/stores/memory-store.js';
import { generateTestKeyPair } from './helpers/keys.js';

const CLIENT_ID = 'ROTATION_CLIENT';

/** Waits for a fact, not for a time: the limit only keeps a broken run from hanging. */
async function until(what: string, check: () => boolean, limitMs = 60_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`not seen within ${limitMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** One call the engine made through the client, with the rotation step it was sent and answered in. */
interface ObservedCall {
  api: 'inquiryPayment' | 'cancelPayment';
  sentIn: number;
  answeredIn: number;
  kind: 'answer' | 'no-result' | 'pending';
  reason?: string;
}

/** One notification the ACQP endpoint received: the keyVersion it named, what the ring held, the answer. */
interface ArrivedNotification {
  paymentRequestId: string;
  keyVersion: number;
  ringVersions: (number | null)[];
  status: number;
}

interface RotationWorld {
  sim: Simulator;
  client: AlipayPlusClient;
  keys: KeyRing;
  engine: PaymentEngine;
  handler: NotificationHandler;
  notifyUrl: string;
  calls: ObservedCall[];
  arrivals: ArrivedNotification[];
  /** The rotation step calls are stamped with; the test moves it on. */
  step: { current: number };
  stop(): Promise<void>;
}

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

/**
 * The simulator and the engine on one 60× clock, sharing nothing but HTTP. The client and the
 * notification handler share one key ring; the engine's client is watched so that the test knows
 * what each call was answered, and in which rotation step it was sent and answered.
 */
async function rotationWorld(acqp: { privatePem: string; publicPem: string }): Promise<RotationWorld> {
  const clock = scaledClock(60);
  const sim = createSimulator({
    clientId: CLIENT_ID,
    acqpPublicKeys: [{ key: acqp.publicPem, keyVersion: 1 }],
    keyVersion: 1,
    now: clock.now,
    // Long enough that a notification refused in the deliberate window is tried again afterwards.
    notifyRetryScheduleMs: [0, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000],
    notifyAckTimeoutMs: 5_000,
  });
  const baseUrl = await sim.start();
  const keys = createKeyRing({
    privateKey: acqp.privatePem,
    keyVersion: 1,
    alipayPublicKeys: [{ key: sim.publicKeyPem, keyVersion: sim.keyVersion }],
  });
  const client = createAlipayPlusClient({
    baseUrl,
    clientId: CLIENT_ID,
    keys,
    timeouts: { inquiryMs: 2_000, cancelMs: 2_000, payMs: 2_000, refundMs: 2_000 },
    now: clock.now,
  });

  const step = { current: 0 };
  const calls: ObservedCall[] = [];
  async function watched<T extends { kind: string; reason?: string }>(
    api: ObservedCall['api'],
    send: () => Promise<T>,
  ): Promise<T> {
    // The client reads its signing key when the call starts, before its first await: this step is
    // the one whose key signed the request.
    const call: ObservedCall = { api, sentIn: step.current, answeredIn: -1, kind: 'pending' };
    calls.push(call);
    const outcome = await send();
    call.answeredIn = step.current;
    call.kind = outcome.kind as ObservedCall['kind'];
    if (outcome.reason !== undefined) call.reason = outcome.reason;
    return outcome;
  }

  const arrivals: ArrivedNotification[] = [];
  let handler: NotificationHandler | undefined;
  // The endpoint reads the body itself, so that it can note what the ring held when each arrived.
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const rawBody = Buffer.concat(chunks);
    const ringVersions = keys.status().alipayPublicKeys.map((k) => k.keyVersion);
    if (!handler) throw new Error('the endpoint answered before the handler was made');
    const response = await handler.handle({
      method: req.method ?? 'POST',
      path: req.url ?? '/',
      headers: req.headers,
      rawBody,
    });
    arrivals.push({
      paymentRequestId: String(JSON.parse(rawBody.toString('utf8')).paymentRequestId),
      keyVersion: parseSignatureHeader(String(req.headers.signature)).keyVersion,
      ringVersions,
      status: response.status,
    });
    res.writeHead(response.status, response.headers);
    res.end(response.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const notifyUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alipayplus/notify`;

  const engine = createPaymentEngine({
    client: {
      inquiryPayment: (ref, o) => watched('inquiryPayment', () => client.inquiryPayment(ref, o)),
      cancelPayment: (ref, o) => watched('cancelPayment', () => client.cancelPayment(ref, o)),
    },
    store: memoryStore(),
    clock,
    paymentNotifyUrl: notifyUrl,
  });
  await engine.start();
  handler = engine.notificationHandler({ path: '/alipayplus/notify', clientId: CLIENT_ID, keys });

  const stop = async () => {
    await engine.stop();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await client.close();
    await sim.stop();
  };
  stops.push(stop);
  return { sim, client, keys, engine, handler, notifyUrl, calls, arrivals, step, stop };
}

/** Payments of every kind, so that each rotation step finds some polling, some notified, some expiring. */
const WAVE: ScenarioInput[] = [
  { decideAfterMs: 15_000 },
  { decideAfterMs: 40_000, notify: { duplicates: 1 } },
  { decideAfterMs: 25_000, decision: 'failed' },
  { decideAfterMs: 60_000, notify: { mode: 'none' } },
  { decideAfterMs: 20_000, notify: { mode: 'late', lateMs: 30_000 } },
  { decideAfterMs: null },
];

describe('key rotation in a running process, over real HTTP through the engine', () => {
  it('rotates both keys with payments in flight and notifications arriving, and loses nothing', async () => {
    const acqp1 = generateTestKeyPair();
    const acqp2 = generateTestKeyPair();
    const w = await rotationWorld(acqp1);
    const ids: string[] = [];

    async function wave(name: string, scenarios: ScenarioInput[] = WAVE): Promise<void> {
      for (const [i, scenario] of scenarios.entries()) {
        const paymentRequestId = `${name}-${i}`;
        const order = w.sim.createOrder({
          paymentRequestId,
          notifyUrl: w.notifyUrl,
          expiresAt: w.sim.now() + 240_000,
          scenario,
        });
        await w.engine.track({
          paymentRequestId,
          amount: order.amount,
          createdAt: order.createdAt,
          paymentExpiryTime: order.expiresAt,
        });
        ids.push(paymentRequestId);
      }
    }
    const verifiedWith = (version: number) =>
      w.keys.status().alipayPublicKeys.find((k) => k.keyVersion === version)?.verified ?? 0;
    const acked = (version: number) =>
      w.sim.notifications().filter((d) => d.keyVersion === version && d.result === 'acked').length;
    /** Resolves once no call sent before `step` is still waiting for its answer. */
    const drained = (step: number) =>
      until(`calls sent before step ${step} answered`, () =>
        w.calls.every((c) => c.sentIn >= step || c.kind !== 'pending'),
      );

    // Step 0: everything on key 1, both ways.
    await wave('A');
    await until(
      'answers and a notification verified with Alipay+ key 1',
      () => verifiedWith(1) >= 3 && acked(1) >= 1,
    );

    // Step 1: Alipay+ announces key 2; the ACQP adds it beside key 1.
    w.step.current = 1;
    const alipay2 = await w.sim.createKey();
    expect(alipay2).toMatchObject({ keyVersion: 2, active: false });
    w.keys.addAlipayPublicKey({ key: alipay2.publicKeyPem, keyVersion: 2 });
    await wave('B');

    // Step 2: Alipay+ signs with key 2: answers and notifications verify by the version they name.
    w.step.current = 2;
    w.sim.useKey(2);
    await until(
      'answers and a notification verified with Alipay+ key 2',
      () => verifiedWith(2) >= 3 && acked(2) >= 1,
    );

    // Step 3: the ACQP registers its key 2 with Alipay+, then signs with it.
    w.step.current = 3;
    w.sim.addAcqpPublicKey({ key: acqp2.publicPem, keyVersion: 2 });
    w.keys.setSigningKey({ privateKey: acqp2.privatePem, keyVersion: 2 });
    await wave('C');
    await until(
      'Alipay+ received calls signed with ACQP key 2',
      () => w.sim.calls().filter((c) => c.keyVersion === 2 && c.signatureValid).length >= 3,
    );

    // Step 4: both old keys retire, once nothing signed with them can still be on its way.
    await drained(3); // no request signed with ACQP key 1 is in flight
    w.step.current = 4;
    w.sim.retireAcqpPublicKey(1);
    w.keys.retireAlipayPublicKey(1);
    expect(w.keys.status().alipayPublicKeys.map((k) => k.keyVersion)).toEqual([2]);
    await wave('D');
    await until('answers after the retirement', () =>
      w.calls.some((c) => c.sentIn === 4 && c.answeredIn === 4 && c.kind === 'answer'),
    );

    // Step 5, on purpose: Alipay+ signs with the key the ACQP retired. Answers are no result,
    // notifications are refused; the payments wait, and the notifications come again.
    w.step.current = 5;
    w.sim.useKey(1);
    await wave('E', [{ decideAfterMs: 1_000 }, { decideAfterMs: 2_000, decision: 'failed' }]);
    await until('answers signed with the retired key were seen, and a notification was refused', () => {
      const unverified = w.calls.filter(
        (c) => c.sentIn === 5 && c.answeredIn === 5 && c.reason === 'bad-signature',
      );
      return unverified.length >= 2 && w.arrivals.some((a) => a.status === 401);
    });

    // Step 6: Alipay+ is back on key 2; everything settles.
    w.step.current = 6;
    w.sim.useKey(2);
    const outcomes: LifecycleOutcome[] = await Promise.all(ids.map((id) => w.engine.outcome(id)));
    await until('every notification delivered', () => w.sim.pendingNotifications() === 0);

    // Every payment reached the outcome the simulator's ground truth says; none needs a person.
    const truths = new Map(w.sim.orders().map((t) => [t.paymentRequestId, t]));
    const disagreements = outcomes.flatMap((outcome) => {
      const truth = truths.get(outcome.paymentRequestId);
      return truth && agreesWithTruth(outcome, truth)
        ? []
        : [`${outcome.paymentRequestId}: engine ${outcome.status}, truth ${truth?.status}`];
    });
    expect(disagreements).toEqual([]);
    expect(outcomes.filter((o) => o.status === 'attention')).toEqual([]);
    const statuses = outcomes.map((o) => o.status);
    expect(statuses).toContain('succeeded');
    expect(statuses).toContain('failed');

    // Every request the ACQP sent verified at Alipay+, with key 1 before the switch and key 2 after.
    expect(w.sim.calls().filter((c) => !c.signatureValid)).toEqual([]);
    expect(new Set(w.sim.calls().map((c) => c.keyVersion))).toEqual(new Set([1, 2]));

    // The only notifications refused named a key the ring no longer held (the retired key 1)...
    const refused = w.arrivals.filter((a) => a.status !== 200);
    expect(refused.length).toBeGreaterThan(0);
    for (const a of refused) {
      expect(a).toMatchObject({ status: 401, keyVersion: 1 });
      expect(a.ringVersions).not.toContain(a.keyVersion);
    }
    // ...and each of those payments had its notification acknowledged in the end.
    for (const a of refused) {
      expect(w.arrivals.some((b) => b.paymentRequestId === a.paymentRequestId && b.status === 200)).toBe(
        true,
      );
    }
    // Alipay+ saw every notification acknowledged, each ack verifying with the ACQP key it named.
    expect(w.sim.notifications().filter((d) => d.result === 'bad-ack-signature')).toEqual([]);

    // Answers Alipay+ signed with the retired key were no result, never an answer...
    const inWindow = w.calls.filter((c) => c.sentIn === 5 && c.answeredIn === 5);
    expect(inWindow.length).toBeGreaterThan(0);
    expect(inWindow.filter((c) => c.kind !== 'no-result')).toEqual([]);
    // ...and outside that window, no answer failed its signature check: the rotation lost none.
    const outside = w.calls.filter((c) => c.answeredIn < 5 || c.sentIn > 5);
    expect(outside.filter((c) => c.reason === 'bad-signature')).toEqual([]);
    expect(w.keys.status().alipayPublicKeys).toEqual([
      expect.objectContaining({ keyVersion: 2, verified: expect.any(Number) }),
    ]);
  }, 180_000);
});
