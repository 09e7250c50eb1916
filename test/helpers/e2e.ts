import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';
import { agreesWithTruth } from '../../src/demo/reconcile.js';
import {
  type AlipayPlusClient,
  createAlipayPlusClient,
  createPaymentEngine,
  type EngineClock,
  type LifecycleOutcome,
  type LifecycleStore,
  memoryStore,
  type NotificationResponse,
  type PaymentEngine,
  type PaymentEngineOptions,
  scaledClock,
} from '../../src/index.js';
import {
  createSimulator,
  type OrderTruth,
  type Simulator,
  type SimulatorOptions,
} from '../../src/simulator/index.js';
import { generateTestKeyPair, type TestKeyPair } from './keys.js';
import { eventually } from './notify-receiver.js';
import { signedNotification } from './signed-notification.js';

export const CLIENT_ID = 'E2E_CLIENT';
const acqpKeys = generateTestKeyPair();
const alipayKeys = generateTestKeyPair();

export interface World {
  sim: Simulator;
  client: AlipayPlusClient;
  engine: PaymentEngine;
  store: LifecycleStore;
  notifyUrl: string;
  settled: LifecycleOutcome[];
  acqp: TestKeyPair;
  /** The clock the simulator and the engine share. */
  clock: EngineClock;
  /**
   * Sends a notification straight to the engine's endpoint (its `handle()`), signed as Alipay+
   * signs it: resolves with the endpoint's answer once it is acknowledged.
   */
  notify(body: object): Promise<NotificationResponse>;
  stop(): Promise<void>;
}

/**
 * The whole stack on loopback: the simulator and the engine share one clock running `factor`×
 * real time; the engine's notification handler listens on its own node:http server.
 */
export async function createWorld(
  options: {
    factor?: number;
    simulator?: Partial<SimulatorOptions>;
    engine?: Partial<PaymentEngineOptions>;
    store?: LifecycleStore;
    timeouts?: { inquiryMs?: number; cancelMs?: number; payMs?: number; refundMs?: number };
    /** The clock the simulator and the engine share; default `scaledClock(factor)`. */
    clock?: EngineClock;
  } = {},
): Promise<World> {
  const clock = options.clock ?? scaledClock(options.factor ?? 60);
  const sim = createSimulator({
    clientId: CLIENT_ID,
    acqpPublicKey: acqpKeys.publicPem,
    privateKey: alipayKeys.privatePem,
    now: clock.now,
    notifyRetryScheduleMs: [0, 5_000, 10_000, 30_000, 60_000],
    notifyAckTimeoutMs: 2_000,
    ...options.simulator,
  });
  const baseUrl = await sim.start();
  const client = createAlipayPlusClient({
    baseUrl,
    clientId: CLIENT_ID,
    privateKey: acqpKeys.privatePem,
    alipayPublicKey: sim.publicKeyPem,
    timeouts: options.timeouts ?? { inquiryMs: 1_000, cancelMs: 1_000, payMs: 1_000, refundMs: 1_000 },
    now: clock.now,
  });
  const store = options.store ?? memoryStore();
  const settled: LifecycleOutcome[] = [];
  // The endpoint listens first, so that engine.pay() can name it as every pay's paymentNotifyUrl.
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server: Server = createServer((req, res) => handler?.(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const notifyUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alipayplus/notify`;
  const engine = createPaymentEngine({
    client,
    store,
    clock,
    paymentNotifyUrl: notifyUrl,
    onSettled: (outcome) => {
      settled.push(outcome);
    },
    ...options.engine,
  });
  await engine.start();
  const endpoint = engine.notificationHandler({
    path: '/alipayplus/notify',
    alipayPublicKey: sim.publicKeyPem,
    privateKey: acqpKeys.privatePem,
    clientId: CLIENT_ID,
  });
  handler = endpoint;
  return {
    sim,
    client,
    engine,
    store,
    notifyUrl,
    settled,
    acqp: acqpKeys,
    clock,
    notify: (body) =>
      endpoint.handle(
        signedNotification({
          privatePem: alipayKeys.privatePem,
          clientId: CLIENT_ID,
          body,
          time: new Date(clock.now()).toISOString(),
        }),
      ),
    async stop() {
      await engine.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await client.close();
      await sim.stop();
    },
  };
}

/** A `world()` for a test file: every world it creates is stopped after each test. */
export function worldsStoppedAfterEach(): (options?: Parameters<typeof createWorld>[0]) => Promise<World> {
  const worlds: World[] = [];
  afterEach(async () => {
    for (const w of worlds.splice(0)) await w.stop();
  });
  return async (options = {}) => {
    const w = await createWorld(options);
    worlds.push(w);
    return w;
  };
}

/** Creates the order at the simulator and tracks it, as an ACQP would after `pay` answered unknown. */
export async function payAndTrack(
  world: World,
  paymentRequestId: string,
  scenario: SimulatorOptions['scenarios'] extends Record<string, infer S> | undefined ? S | undefined : never,
): Promise<OrderTruth> {
  const order = world.sim.createOrder({
    paymentRequestId,
    notifyUrl: world.notifyUrl,
    ...(scenario ? { scenario } : {}),
  });
  await world.engine.track({
    paymentRequestId,
    amount: order.amount,
    createdAt: order.createdAt,
    paymentExpiryTime: order.expiresAt,
  });
  return order;
}

/** The reconciliation rules (the demo's `agreesWithTruth`); returns the disagreements (empty is good). */
export function reconcile(
  outcomes: LifecycleOutcome[],
  truths: OrderTruth[],
  cancelAfterSuccess: string[],
): string[] {
  const problems: string[] = [];
  const truthById = new Map(truths.map((t) => [t.paymentRequestId, t]));
  for (const outcome of outcomes) {
    const truth = truthById.get(outcome.paymentRequestId);
    if (!truth) {
      problems.push(`${outcome.paymentRequestId}: no ground truth`);
      continue;
    }
    if (!agreesWithTruth(outcome, truth))
      problems.push(
        `${outcome.paymentRequestId}: engine ${outcome.status}, truth ${truth.status} (charged ${truth.charged}, cancelled ${truth.cancelled}, refunded ${truth.refunded})`,
      );
  }
  for (const id of cancelAfterSuccess) problems.push(`${id}: cancelPayment sent after a success was seen`);
  return problems;
}

/**
 * A real `attention` outcome (`amount-mismatch`): the wallet decides and notifies before the payment
 * is tracked, and it is then tracked with another amount. Resolves with the outcome.
 */
export async function attentionByMismatch(w: World, id: string): Promise<LifecycleOutcome> {
  const order = w.sim.createOrder({
    paymentRequestId: id,
    notifyUrl: w.notifyUrl,
    scenario: { decideAfterMs: 0 },
  });
  await eventually(
    () => w.sim.notifications().some((d) => d.paymentRequestId === id && d.result === 'acked'),
    30_000, // a condition, not a duration: generous so that a busy machine only makes it slower
  );
  await w.engine.track({
    paymentRequestId: id,
    amount: { currency: order.amount.currency, value: String(Number(order.amount.value) + 1) },
    createdAt: order.createdAt,
  });
  return w.engine.outcome(id);
}
