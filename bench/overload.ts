/**
 * The engine during an Alipay+ incident, on simulated time (bench/virtual-time.ts): the real engine,
 * client and simulator over loopback HTTP, with a clock that stands still while anything is under
 * way, so that the figures are the same on any host (only the wall time is not).
 *
 * The timeline, the same for every run:
 * - payments arrive at a steady pace (BENCH_OVERLOAD_PAYMENTS, default 10,000, in 10 simulated
 *   minutes, and half as many again in the 5 minutes after), each started with `engine.pay`, a
 *   user-presented pay with its 1-minute expiry, drawn from the simulator's checkout mix (no
 *   notifications: every result is found by an inquiry);
 * - every call spends `LATENCY_MS` of simulated time on the way to Alipay+;
 * - scenario 1, the first 10 minutes: Alipay+ answers at most a third of the calls per second a
 *   healthy run of the same payments makes (measured first), and REQUEST_TRAFFIC_EXCEED_LIMIT past it;
 * - scenario 2, the next 5 minutes: a full outage, every call answered 503;
 * - then Alipay+ is healthy again (its load lifted), and the run goes on until every lifecycle has its
 *   outcome.
 *
 * Each run prints `targets: lost L, divergent D, cancel-lag-p99-s C, storm-ratio S, drain-s R`:
 * - lost: payments without an outcome at the end; divergent: outcomes the simulator's ground truth
 *   contradicts, and cancels sent after a paid answer had reached the engine;
 * - cancel-lag-p99-s: from a payment's expiry to its first cancel being sent, p99 over the payments
 *   that were cancelled (one cancelled before its expiry counts 0);
 * - storm-ratio: calls per payment of the payments that arrived during scenario 1, divided by the
 *   same figure on the healthy run;
 * - drain-s: from the end of the outage until the last lifecycle whose expiry had passed by then
 *   has its outcome (those still inside their expiry at that moment are not backlog).
 *
 * It runs the engine as it is (admission by urgency, the incident brake, full jitter), and as it was
 * (`--first-come`: first-come admission, no brake, no jitter), side by side; `--only=urgency` or
 * `--only=first-come` runs one. BENCH_SEED (default 1) varies the mix.
 */
import { generateKeyPairSync } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { LifecycleOutcome } from '../machines/outcome.js';
import { createAlipayPlusClient } from '../src/client/alipayplus-client.js';
import { demoPayRequest } from '../src/demo/checkout.js';
import { reconcile, watchClient } from '../src/demo/reconcile.js';
import type { Admission } from '../src/engine/call-limiter.js';
import type { BrakeEvent } from '../src/engine/engine-events.js';
import { silentLogger } from '../src/engine/logger.js';
import { createPaymentEngine, type PaymentEngineOptions } from '../src/engine/payment-engine.js';
import type { LoadSpecInput } from '../src/simulator/load.js';
import { createSimulator } from '../src/simulator/simulator.js';
import { memoryStore } from '../src/stores/memory-store.js';
import type { LifecycleStore } from '../src/stores/store.js';
import { machineLine, percentile } from './machine.js';
import { VirtualTime } from './virtual-time.js';

const CLIENT_ID = 'BENCH_ACQP';
/** 10:00 UTC+8 on a Monday: the cancel windows (00:15 UTC+8 next day) are far away. */
const T0 = Date.UTC(2026, 5, 1, 2, 0, 0);
const INCIDENT_MS = 10 * 60_000;
const OUTAGE_MS = 5 * 60_000;
/** Simulated ms each call spends on the way to Alipay+. */
const LATENCY_MS = 100;
/** How long after the outage a run may take to settle before its stragglers count as lost. */
const GRACE_MS = 30 * 60_000;

type Engine = ReturnType<typeof createPaymentEngine>;
type Calls = PaymentEngineOptions['client'];

/** One way of running the engine. */
export interface Variant {
  name: string;
  admission: Admission;
  brake: boolean;
  jitter: 'full' | 'none';
}

export const AS_IT_IS: Variant = {
  name: 'by urgency, brake, jitter',
  admission: 'by-urgency',
  brake: true,
  jitter: 'full',
};
export const AS_IT_WAS: Variant = {
  name: 'first-come, no brake, no jitter',
  admission: 'first-come',
  brake: false,
  jitter: 'none',
};

export interface RunFigures {
  payments: number;
  lost: number;
  divergent: number;
  attention: number;
  /** Payments failed because their pay never got a call slot before its cut-off (none ever left). */
  neverSent: number;
  /** Calls (any API) per payment of the payments that arrived in scenario 1. */
  incidentCallsPerPayment: number;
  /** Calls per simulated second during scenario 1. */
  incidentCallsPerSecond: number;
  cancelled: number;
  cancelLagP99S: number;
  drainS: number;
  calls: Record<string, number>;
  brakeChanges: number;
  engineErrors: number;
  wallS: number;
}

interface Keys {
  acqpPrivate: string;
  acqpPublic: string;
  simPrivate: string;
}

function makeKeys(): Keys {
  const pem = () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    return {
      priv: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      pub: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    };
  };
  const acqp = pem();
  return { acqpPrivate: acqp.priv, acqpPublic: acqp.pub, simPrivate: pem().priv };
}

/** Every store call holds the clock until it settles. */
function heldStore(store: LifecycleStore, clock: VirtualTime): LifecycleStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        return result instanceof Promise ? clock.track(result) : result;
      };
    },
  });
}

/** What the run records for the figures: each payment's expiry (from its view) and first cancel. */
interface CallLog {
  expiresAt: Map<string, number>;
  firstCancel: Map<string, number>;
}

/** The engine's calls, each after `LATENCY_MS` of simulated time, holding the clock while on the wire. */
function slowedCalls(calls: Calls, clock: VirtualTime, log: CallLog): Calls {
  const idOf = (ref: { paymentRequestId?: string; paymentId?: string }) =>
    ref.paymentRequestId ?? ref.paymentId ?? '';
  const pay = calls.pay;
  const refund = calls.refund;
  return {
    async inquiryPayment(ref, options) {
      await clock.sleep(LATENCY_MS);
      return clock.track(calls.inquiryPayment(ref, options));
    },
    async cancelPayment(ref, options) {
      const id = idOf(ref as { paymentRequestId?: string });
      if (!log.firstCancel.has(id)) log.firstCancel.set(id, clock.now());
      await clock.sleep(LATENCY_MS);
      return clock.track(calls.cancelPayment(ref, options));
    },
    ...(pay && {
      async pay(request, options) {
        await clock.sleep(LATENCY_MS);
        return clock.track(pay(request, options));
      },
    }),
    ...(refund && {
      async refund(request, options) {
        await clock.sleep(LATENCY_MS);
        return clock.track(refund(request, options));
      },
    }),
  };
}

/**
 * One run of the timeline. `load` is the simulator's (undefined: healthy throughout). Resolves when
 * every payment has its outcome, or GRACE_MS after the outage.
 */
export async function runTimeline(
  variant: Variant,
  load: LoadSpecInput | undefined,
  incidentPayments: number,
  seed: number,
  keys: Keys,
): Promise<RunFigures> {
  const wallStart = performance.now();
  const clock = new VirtualTime(T0 - 5_000);
  const gapMs = INCIDENT_MS / incidentPayments;
  const total = Math.floor((INCIDENT_MS + OUTAGE_MS) / gapMs);
  const outageEnd = T0 + INCIDENT_MS + OUTAGE_MS;

  const sim = createSimulator({
    clientId: CLIENT_ID,
    acqpPublicKey: keys.acqpPublic,
    privateKey: keys.simPrivate,
    now: clock.now,
    mix: 'checkout',
    seed,
    ...(load ? { load } : {}),
    // Refusals under load all read alike: one signature a second for them.
    signatureCache: true,
  });
  const baseUrl = await sim.start();
  // Real ms, and generous: the clock stands still while a call is on the wire, so a slow host makes a
  // call take longer only in wall time. A timeout here would be the host's, not the scenario's.
  const timeouts = { inquiryMs: 60_000, cancelMs: 60_000, payMs: 60_000, refundMs: 60_000 };
  const client = createAlipayPlusClient({
    baseUrl,
    clientId: CLIENT_ID,
    privateKey: keys.acqpPrivate,
    alipayPublicKey: sim.publicKeyPem,
    timeouts,
    now: clock.now,
  });
  const watched = watchClient(client);
  const log: CallLog = { expiresAt: new Map(), firstCancel: new Map() };
  const engine: Engine = createPaymentEngine({
    client: slowedCalls(watched.client, clock, log),
    store: heldStore(memoryStore(), clock),
    clock,
    logger: silentLogger,
    admission: variant.admission,
    brake: variant.brake ? {} : false,
    policy: { retryJitter: variant.jitter },
  });
  const outcomes = new Map<string, LifecycleOutcome>();
  const settledAt = new Map<string, number>();
  const brakeChanges: BrakeEvent[] = [];
  let engineErrors = 0;
  engine.on('settled', (outcome) => {
    outcomes.set(outcome.paymentRequestId, outcome);
    settledAt.set(outcome.paymentRequestId, clock.now());
  });
  engine.on('brake', (event) => brakeChanges.push(event));
  const transitions = new Map<string, string[]>();
  if (process.env.BENCH_DEBUG)
    engine.on('transition', (t) => {
      const list = transitions.get(t.paymentRequestId) ?? [];
      list.push(`${((clock.now() - T0) / 1_000).toFixed(1)} ${t.to}`);
      transitions.set(t.paymentRequestId, list);
    });
  engine.on('error', () => {
    engineErrors++;
  });

  const tracked: string[] = [];
  let refusedPays = 0;
  try {
    await engine.start();
    // Alipay+ is itself again once the outage ends.
    if (load) clock.setTimeout(() => sim.setLoad(undefined), outageEnd - clock.now());
    for (let i = 0; i < total; i++) {
      clock.setTimeout(
        () => {
          const id = `OVL-${seed}-${String(i + 1).padStart(6, '0')}`;
          tracked.push(id);
          const amount = { currency: 'JPY', value: String(100 + ((i * 7_919) % 9_900)) };
          engine.pay(demoPayRequest(id, i, amount, clock.now(), 'user-presented')).then(
            (view) => log.expiresAt.set(id, view.context.expiresAt),
            () => {
              refusedPays++;
            },
          );
        },
        T0 + i * gapMs - clock.now(),
      );
    }
    await clock.run(() => tracked.length === total && outcomes.size === total, outageEnd + GRACE_MS);
  } finally {
    await engine.stop();
    await client.close();
    await sim.stop();
  }

  if (process.env.BENCH_DEBUG) {
    const perMinute = new Map<number, Record<string, number>>();
    for (const call of sim.calls()) {
      const minute = Math.floor((call.at - T0) / 60_000);
      const row = perMinute.get(minute) ?? {};
      const key = `${call.api}${call.overload ? `-${call.overload}` : ''}`;
      row[key] = (row[key] ?? 0) + 1;
      perMinute.set(minute, row);
    }
    for (const [minute, row] of [...perMinute].sort((a, b) => a[0] - b[0]))
      console.log(`  minute ${minute}: ${JSON.stringify(row)}`);
    const worst = [...log.firstCancel]
      .map(([id, at]) => [id, at - (log.expiresAt.get(id) ?? at)] as const)
      .sort((a, b) => b[1] - a[1]);
    for (const [id, lag] of worst.slice(0, 2)) {
      console.log(
        `  lag ${lag / 1_000} s ${id} expires ${((log.expiresAt.get(id) ?? 0) - T0) / 1_000}: ${(transitions.get(id) ?? []).join(', ')}`,
      );
      console.log(
        `    calls: ${sim
          .calls()
          .filter((c) => c.paymentRequestId === id)
          .map((c) => `${(c.at - T0) / 1_000} ${c.api} ${c.overload ?? c.resultCode ?? c.httpStatus}`)
          .join(', ')}`,
      );
    }
    for (const b of brakeChanges)
      console.log(`  brake ${b.engaged ? 'engaged' : 'released'} at ${(b.at - T0) / 1_000} s`);
  }
  const incidentIds = new Set(tracked.slice(0, incidentPayments));
  const calls: Record<string, number> = {};
  let incidentCalls = 0;
  let incidentWindowCalls = 0;
  for (const call of sim.calls()) {
    calls[call.api] = (calls[call.api] ?? 0) + 1;
    if (call.paymentRequestId && incidentIds.has(call.paymentRequestId)) incidentCalls++;
    if (call.at >= T0 && call.at < T0 + INCIDENT_MS) incidentWindowCalls++;
  }
  const lags: number[] = [];
  for (const [id, sentAt] of log.firstCancel) {
    const expiry = log.expiresAt.get(id);
    if (expiry !== undefined) lags.push(Math.max(0, sentAt - expiry));
  }
  let drainEnd = outageEnd;
  for (const id of tracked) {
    const expiry = log.expiresAt.get(id) ?? Number.POSITIVE_INFINITY;
    if (expiry > outageEnd) continue;
    drainEnd = Math.max(drainEnd, settledAt.get(id) ?? Number.POSITIVE_INFINITY);
  }
  const rec = reconcile(tracked, outcomes, sim.orders(), watched.cancelsAfterSeenSuccess());
  return {
    payments: tracked.length,
    lost: rec.lost.length + refusedPays,
    divergent: rec.divergent.length,
    attention: rec.attention.length,
    neverSent: [...outcomes.values()].filter((o) => o.decidedBy.code === 'NO_RESULT:never-sent').length,
    incidentCallsPerPayment: incidentCalls / incidentIds.size,
    incidentCallsPerSecond: incidentWindowCalls / (INCIDENT_MS / 1_000),
    cancelled: lags.length,
    cancelLagP99S: lags.length ? percentile(lags, 99) / 1_000 : 0,
    drainS: (drainEnd - outageEnd) / 1_000,
    calls,
    brakeChanges: brakeChanges.length,
    engineErrors,
    wallS: (performance.now() - wallStart) / 1_000,
  };
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'never';
}

export async function runOverloadBench(args: readonly string[] = []): Promise<void> {
  const incidentPayments = Number(process.env.BENCH_OVERLOAD_PAYMENTS ?? 10_000);
  const seed = Number(process.env.BENCH_SEED ?? 1);
  const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);
  console.log(machineLine());
  console.log(
    `overload: ${incidentPayments} payments in a 10-minute incident at a third of the healthy call rate, then ${incidentPayments / 2} more in a 5-minute outage; simulated time, ${LATENCY_MS} ms per call on the way; seed ${seed}`,
  );
  const keys = makeKeys();
  const healthy = await runTimeline(AS_IT_IS, undefined, incidentPayments, seed, keys);
  const capacityPerSecond = Math.max(1, Math.round(healthy.incidentCallsPerSecond / 3));
  console.log(
    `healthy: ${healthy.payments} payments, ${fmt(healthy.incidentCallsPerPayment, 2)} calls per payment, ${fmt(healthy.incidentCallsPerSecond)} calls/s in the first 10 min, lost ${healthy.lost}, divergent ${healthy.divergent} (wall ${fmt(healthy.wallS)} s)`,
  );
  console.log(`incident capacity: ${capacityPerSecond} answers per simulated second, then the outage`);
  const load: LoadSpecInput = {
    capacityPerSecond,
    overflow: 'traffic-limit',
    outages: [{ from: T0 + INCIDENT_MS, until: T0 + INCIDENT_MS + OUTAGE_MS, fault: 'http-503' }],
  };
  const variants = [AS_IT_IS, AS_IT_WAS].filter(
    (v) => !only || (only === 'first-come' ? v === AS_IT_WAS : v === AS_IT_IS),
  );
  for (const variant of variants) {
    const run = await runTimeline(variant, load, incidentPayments, seed, keys);
    const storm = run.incidentCallsPerPayment / healthy.incidentCallsPerPayment;
    const apis = Object.entries(run.calls)
      .map(([api, n]) => `${api} ${n}`)
      .join(', ');
    console.log(
      `${variant.name}: ${run.payments} payments, calls ${apis}; ${fmt(run.incidentCallsPerPayment, 2)} calls per incident payment; ${run.cancelled} cancelled; ${run.neverSent} failed with their pay never sent; attention ${run.attention}; brake changes ${run.brakeChanges}; engine errors ${run.engineErrors} (wall ${fmt(run.wallS)} s)`,
    );
    console.log(
      `  targets: lost ${run.lost}, divergent ${run.divergent}, cancel-lag-p99-s ${fmt(run.cancelLagP99S)}, storm-ratio ${fmt(storm, 2)}, drain-s ${fmt(run.drainS)}`,
    );
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href)
  await runOverloadBench(process.argv.slice(2));
