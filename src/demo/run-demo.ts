import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Meter } from '@opentelemetry/api';
import type { InspectionEvent } from 'xstate';
import type { DecisionSketch } from '../../machines/decision-model.js';
import type { PayRowId } from '../../machines/decision-table.js';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import type { LifecyclePolicyInput } from '../../machines/policy.js';
import { createAlipayPlusClient } from '../client/alipayplus-client.js';
import { scaledClock } from '../engine/clock.js';
import { createPaymentEngine } from '../engine/payment-engine.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import type { PayMode } from '../protocol/pay.js';
import type { DeliveryRecord } from '../simulator/notifier.js';
import type { OrderTruth } from '../simulator/order-book.js';
import { FAULT_KINDS } from '../simulator/scenario.js';
import { type CallRecord, createSimulator } from '../simulator/simulator.js';
import type { LifecycleStore } from '../stores/store.js';
import { demoPayMode, demoPayRequest } from './checkout.js';
import { type Reconciliation, reconcile, watchClient } from './reconcile.js';

/** What `runDemo` takes. Every field but `store` has a default (see docs/configuration.md). */
export interface DemoOptions {
  /** Payments to start with `engine.pay`. Default 300. */
  payments?: number;
  /** Probability of an injected fault per Alipay+ call, spread evenly over the fault kinds. Default 0.05. */
  faultRate?: number;
  /** Seed of the mix draw and of the faults: the same seed replays the same run. Default 1. */
  seed?: number;
  /** Simulated ms per real ms, shared by the simulator and the engine. Default 60. */
  speed?: number;
  /** Where the engine keeps lifecycles. It must be empty; `runDemo` opens and closes it. */
  store: LifecycleStore;
  /**
   * Simulated ms between two new payments. Default 1000: a pay every simulated second, which at
   * 60× keeps this 2-core machine's event loop out of overload (an overloaded loop turns answers
   * into client timeouts, which the demo would then measure).
   */
  arrivalGapMs?: number;
  /**
   * Simulated ms to keep waiting for outcomes after the last payment expired. Default 10 minutes:
   * long enough for a cancel with a few retries, short enough that a lost payment ends the run.
   */
  graceMs?: number;
  /** Receives the XState inspection events of every lifecycle. */
  inspect?: (event: InspectionEvent) => void;
  /** Where the engine's instruments are made (the CLI's `--metrics-port`); default the global API's meter. */
  meter?: Meter;
  /** Called every `progressIntervalMs` real ms while the demo runs, and once at the end. */
  onProgress?: (progress: DemoProgress) => void;
  progressIntervalMs?: number;
  /** Stops creating payments and waiting; the run then reports what it has. */
  signal?: AbortSignal;
  /** The engine's lifecycle policy for every payment. Default: the engine's (the fixed schedule). */
  policy?: LifecyclePolicyInput;
  /**
   * Decision-delay sketches to start from (e.g. an earlier run's {@link DemoResult.decisionSketches}):
   * merged into the store once it is opened (and found empty), before the engine starts, so that an
   * adaptive schedule plans from them at once.
   */
  decisionSketches?: ReadonlyMap<string, DecisionSketch>;
}

/** A snapshot of the run, for progress displays. */
export interface DemoProgress {
  total: number;
  created: number;
  settled: number;
  /** Lifecycles per top-level state (`paying`, `awaitingResult`, `cancelling`, `succeeded`, ...). */
  byState: Record<string, number>;
  realElapsedMs: number;
  simElapsedMs: number;
}

/** How a payment's pay was answered, classified by the pay table. */
export interface PayAnswer {
  mode: PayMode;
  /**
   * The pay table's row. Absent when no answer reached the client before the lifecycle stopped
   * waiting for it (a notification settled the payment first), or when no pay was sent.
   */
  row?: PayRowId;
  /** The answer's result code, or `NO_RESULT:<reason>`. */
  code?: string;
}

/** Everything a run produced: the report is computed from this. */
export interface DemoResult {
  payments: number;
  faultRate: number;
  seed: number;
  speed: number;
  /** Every payment the demo started, in order. */
  tracked: string[];
  /** The answer to each payment's pay. */
  payAnswers: Map<string, PayAnswer>;
  outcomes: Map<string, LifecycleOutcome>;
  truths: OrderTruth[];
  calls: CallRecord[];
  notifications: DeliveryRecord[];
  lateNotifications: number;
  reconciliation: Reconciliation;
  realMs: number;
  simMs: number;
  /** Why waiting ended: every outcome in, the grace period passed, or the run was interrupted. */
  ended: 'all-settled' | 'grace-expired' | 'interrupted';
  engineErrors: string[];
  /** The policy's inquiry schedule: `fixed` unless `DemoOptions.policy` says otherwise. */
  inquirySchedule: 'fixed' | 'adaptive';
  /**
   * The decision-delay sketches in the store at the end of the run (what it was seeded with, plus
   * what this run learned), read before the store was closed. Empty when the run failed.
   */
  decisionSketches: Map<string, DecisionSketch>;
  /**
   * Payments whose lifecycle planned its inquiries from the learned delays (`context.plan`), read
   * from the store at the end; always 0 under the fixed schedule.
   */
  plannedPayments: number;
}

const CLIENT_ID = 'DEMO_ACQP';
const NOTIFY_PATH = '/alipayplus/notify';
/** The ID of the warm-up inquiry; it names no order, and the report leaves it out. */
const WARM_UP_ID = 'DEMO-WARM-UP';

/** Payments are named by seed and number, so a run's IDs (and so its mix draws) replay from its seed. */
export function demoPaymentId(seed: number, index: number): string {
  return `DEMO-${seed}-${String(index + 1).padStart(5, '0')}`;
}

/** Refuses a store that holds lifecycles: the demo reconciles every one it finds. */
async function refuseNonEmpty(store: LifecycleStore): Promise<void> {
  const existing = await store.list(1);
  if (existing.length > 0) {
    throw new AlipayPlusLifecycleError(
      'INVALID_OPTIONS',
      'the store already holds lifecycles, and the demo reconciles every lifecycle it finds against a fresh simulator: give an empty store (--store memory, or sqlite:PATH of a new file)',
    );
  }
}

/** Whether a stored lifecycle's snapshot carries an adaptive plan (`context.plan`). */
function hasPlan(snapshot: unknown): boolean {
  const context = (snapshot as { context?: { plan?: unknown } } | null | undefined)?.context;
  return Array.isArray(context?.plan) && context.plan.length > 0;
}

/** The state a progress display shows: the top-level state of the lifecycle. */
function topState(state: string): string {
  const dot = state.indexOf('.');
  return dot === -1 ? state : state.slice(0, dot);
}

/**
 * Runs the whole stack in this process on loopback: the Alipay+ simulator (checkout mix, seeded
 * faults) and the engine share one compressed clock; the engine's notification handler listens on
 * its own port, and is every pay's `paymentNotifyUrl`; payments arrive at a steady pace, each
 * started with `engine.pay` (its lifecycle is stored before the pay is sent), and the run ends when
 * every payment has its outcome (or the grace period after the last expiry passes). Everything it
 * started is stopped before it resolves, and the store is closed.
 */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const payments = options.payments ?? 300;
  const faultRate = options.faultRate ?? 0.05;
  const seed = options.seed ?? 1;
  const speed = options.speed ?? 60;
  const gap = options.arrivalGapMs ?? 1_000;
  const graceMs = options.graceMs ?? 10 * 60_000;
  const { store } = options;

  const realStart = Date.now();
  const clock = scaledClock(speed, realStart, realStart);
  const acqp = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const acqpPrivatePem = acqp.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const acqpPublicPem = acqp.publicKey.export({ type: 'spki', format: 'pem' }).toString();

  const sim = createSimulator({
    clientId: CLIENT_ID,
    acqpPublicKey: acqpPublicPem,
    now: clock.now,
    mix: 'checkout',
    seed,
    // Spread like `faultRate`, but with latencies that fit a compressed clock: the simulator's
    // default (up to 1.5 real seconds) would be a minute and a half of simulated time at 60×.
    ...(faultRate > 0
      ? {
          faults: {
            rates: Object.fromEntries(FAULT_KINDS.map((kind) => [kind, faultRate / FAULT_KINDS.length])),
            latencyMs: [20, 300] as [number, number],
          },
        }
      : {}),
    // A `timeout` fault must outlast the client's timeout, or it would not be one.
    holdMs: 2_000,
    notifyAckTimeoutMs: 2_000,
    signatureCache: false,
  });
  const baseUrl = await sim.start();
  const client = createAlipayPlusClient({
    baseUrl,
    clientId: CLIENT_ID,
    privateKey: acqpPrivatePem,
    alipayPublicKey: sim.publicKeyPem,
    // Real milliseconds: a second is long for loopback and short enough to keep the run brisk.
    timeouts: { inquiryMs: 1_000, cancelMs: 1_000, payMs: 1_000, refundMs: 1_000 },
    now: clock.now,
  });

  const outcomes = new Map<string, LifecycleOutcome>();
  const states = new Map<string, string>();
  const engineErrors: string[] = [];
  let lateNotifications = 0;
  let allSettled: () => void = () => undefined;
  const settledAll = new Promise<void>((resolve) => {
    allSettled = resolve;
  });

  // The notification endpoint listens first: its URL is every pay's paymentNotifyUrl.
  let notify: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server = createServer((req, res) => (notify ? notify(req, res) : res.writeHead(503).end()));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const notifyUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}${NOTIFY_PATH}`;

  const watched = watchClient(client);
  const engine = createPaymentEngine({
    client: watched.client,
    store,
    clock,
    paymentNotifyUrl: notifyUrl,
    ...(options.inspect ? { inspect: options.inspect } : {}),
    ...(options.meter ? { meter: options.meter } : {}),
    ...(options.policy ? { policy: options.policy } : {}),
  });
  engine.on('transition', (t) => states.set(t.paymentRequestId, t.to));
  engine.on('settled', (outcome) => {
    outcomes.set(outcome.paymentRequestId, outcome);
    states.set(outcome.paymentRequestId, outcome.status);
    if (outcomes.size >= payments) allSettled();
  });
  engine.on('late-notification', () => {
    lateNotifications++;
  });
  // An EventEmitter without an 'error' listener throws; the demo reports engine errors instead.
  engine.on('error', (error) => engineErrors.push(error.message));

  notify = engine.notificationHandler({
    path: NOTIFY_PATH,
    clientId: CLIENT_ID,
    alipayPublicKey: sim.publicKeyPem,
    privateKey: acqpPrivatePem,
  });
  const tracked: string[] = [];
  const payAnswers = new Map<string, PayAnswer>();
  /** The pays in flight: each resolves once its answer is decided. */
  const paying: Promise<void>[] = [];
  let progressTimer: NodeJS.Timeout | undefined;
  const progress = (): DemoProgress => {
    const byState: Record<string, number> = {};
    for (const state of states.values()) {
      const top = topState(state);
      byState[top] = (byState[top] ?? 0) + 1;
    }
    return {
      total: payments,
      created: tracked.length,
      settled: outcomes.size,
      byState,
      realElapsedMs: Date.now() - realStart,
      simElapsedMs: clock.now() - realStart,
    };
  };

  let ended: DemoResult['ended'] = 'all-settled';
  let truths: OrderTruth[] = [];
  let calls: CallRecord[] = [];
  let notifications: DeliveryRecord[] = [];
  let ranToEnd = false;
  let decisionSketches = new Map<string, DecisionSketch>();
  let plannedPayments = 0;
  try {
    if (options.decisionSketches && options.decisionSketches.size > 0) {
      // Before the engine starts: it loads the sketches at start. Checked first, so that a store the
      // demo refuses is not written to.
      await store.open();
      await refuseNonEmpty(store);
      for (const [walletKey, sketch] of options.decisionSketches) {
        await store.mergeDecisionSketch(walletKey, sketch);
      }
    }
    await engine.start();
    await refuseNonEmpty(store);
    // One signed round trip before the first payment: the first HTTP call of a process compiles
    // undici's parser and warms the signing code, a few hundred real ms that a compressed clock
    // would otherwise charge to the first payments as minutes of latency.
    await client.inquiryPayment({ paymentRequestId: WARM_UP_ID });
    if (options.onProgress) {
      const report = options.onProgress;
      progressTimer = setInterval(() => report(progress()), options.progressIntervalMs ?? 1_000);
    }

    const interrupted = new Promise<void>((resolve) => {
      if (options.signal?.aborted) resolve();
      options.signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    const isInterrupted = () => options.signal?.aborted === true;

    // Arrivals at a steady simulated pace; when the process falls behind, the overdue ones go at once.
    // Each pay runs on its own: a pay whose answer is slow must not hold up the next arrival.
    const simStart = clock.now();
    let lastExpiry = simStart;
    while (tracked.length < payments && !isInterrupted()) {
      const due = Math.min(payments, Math.floor((clock.now() - simStart) / gap) + 1);
      while (tracked.length < due) {
        const index = tracked.length;
        const id = demoPaymentId(seed, index);
        const amount = { currency: 'JPY', value: String(100 + ((index * 7_919) % 9_900)) };
        tracked.push(id);
        states.set(id, 'paying');
        payAnswers.set(id, { mode: demoPayMode(index) });
        const request = demoPayRequest(id, index, amount, clock.now());
        paying.push(
          engine.pay(request).then(
            (view) => {
              const pay = view.context.pay;
              const answer: PayAnswer = { mode: pay?.mode ?? demoPayMode(index) };
              if (pay?.row) answer.row = pay.row;
              if (pay?.lastCode) answer.code = pay.lastCode;
              payAnswers.set(id, answer);
              const expiresAt = view.context?.expiresAt;
              if (Number.isFinite(expiresAt)) {
                lastExpiry = Math.max(lastExpiry, expiresAt);
              } else {
                // Its actor failed to start (no context): it will not end, and must not end the wait
                // for the others (a NaN deadline would pass at once). Reported; it counts as lost.
                engineErrors.push(
                  `pay ${id}: its lifecycle failed to start (state ${view.state}, no context)`,
                );
              }
              if (!outcomes.has(id)) states.set(id, view.state);
            },
            (error: unknown) => {
              engineErrors.push(`pay ${id}: ${error instanceof Error ? error.message : String(error)}`);
            },
          ),
        );
      }
      if (tracked.length < payments) {
        const wait = (simStart + tracked.length * gap - clock.now()) / speed;
        await new Promise((resolve) => setTimeout(resolve, Math.max(1, wait)));
      }
    }
    // Every pay's answer is in (each is bounded by the client's pay timeout): the expiries are known.
    await Promise.race([Promise.all(paying), interrupted]);

    // Wait for every outcome, or until the grace period after the last expiry has passed.
    let deadlineTimer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'grace-expired'>((resolve) => {
      deadlineTimer = setTimeout(
        () => resolve('grace-expired'),
        Math.max(0, (lastExpiry + graceMs - clock.now()) / speed),
      );
    });
    if (outcomes.size >= payments) allSettled();
    ended = await Promise.race([
      settledAll.then(() => 'all-settled' as const),
      deadline,
      interrupted.then(() => 'interrupted' as const),
    ]);
    clearTimeout(deadlineTimer);
    // What came back to the client, also when a notification had settled the payment first (its
    // answer then arrived after engine.pay resolved, or the lifecycle abandoned the call).
    for (const [id, seen] of watched.payAnswers()) {
      const answer = payAnswers.get(id);
      if (answer) payAnswers.set(id, { ...answer, row: seen.row, code: seen.code });
    }
    truths = sim.orders();
    calls = sim.calls().filter((call) => call.paymentRequestId !== WARM_UP_ID);
    notifications = sim.notifications();
    ranToEnd = true;
  } finally {
    clearInterval(progressTimer);
    // A pay still being started would store and start its lifecycle after the engine stopped:
    // let them finish first (each is bounded by the pay timeout).
    await Promise.all(paying);
    await engine.stop();
    try {
      // engine.stop() merged what this run learned into the store: read it before the store closes.
      if (ranToEnd) {
        decisionSketches = await store.decisionSketches();
        if (options.policy?.inquirySchedule === 'adaptive') {
          for (const id of tracked) if (hasPlan((await store.load(id))?.snapshot)) plannedPayments++;
        }
      }
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await client.close();
      await sim.stop();
      await store.close();
    }
  }
  options.onProgress?.(progress());

  return {
    payments,
    faultRate,
    seed,
    speed,
    tracked,
    payAnswers,
    outcomes,
    truths,
    calls,
    notifications,
    lateNotifications,
    reconciliation: reconcile(tracked, outcomes, truths, watched.cancelsAfterSeenSuccess()),
    realMs: Date.now() - realStart,
    simMs: clock.now() - realStart,
    ended,
    engineErrors,
    inquirySchedule: options.policy?.inquirySchedule ?? 'fixed',
    decisionSketches,
    plannedPayments,
  };
}
