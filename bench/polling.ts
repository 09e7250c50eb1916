/**
 * Calls against lag for each inquiry schedule: 100,000 payments per decision-time mix, replayed on
 * simulated time through the real lifecycle machine (its timers on a simulated clock, its inquiries
 * answered by the mix), with the adaptive plans made by the engine's own learner, online from the
 * first payment; the warm-up counts. No notifications come, so every decision is found by an inquiry.
 *
 * - "calls" counts every inquiry per payment, the last look included;
 * - "lag" is our outcome's time minus the wallet's decision, over the payments that decide;
 * - payments arrive every 50 ms; a payment's plan is made when it starts, from what the learner
 *   had observed by then (lifecycles settled earlier in simulated time).
 *
 * Ends with `targets: ref-calls C1, ref-p99-s L1, two-wallet-calls C2, two-wallet-p99-s L2` for the
 * adaptive schedule. BENCH_POLLING_PAYMENTS (default 100,000) and BENCH_SEED (default 1) vary it.
 */
import { pathToFileURL } from 'node:url';
import { createActor, fromPromise } from 'xstate';
import {
  decisionObservation,
  type LifecycleContext,
  type LifecycleInput,
  type LifecycleOutcome,
  type LifecyclePolicyInput,
  paymentLifecycleMachine,
} from '../machines/index.js';
import type { CancelOutcome, InquiryOutcome } from '../src/client/answers.js';
import { DecisionLearner } from '../src/engine/decision-learner.js';
import { seededRandom } from '../src/simulator/random.js';
import { MinHeap } from '../src/util/min-heap.js';
import { machineLine, percentile } from './machine.js';

export interface Wallet {
  name: string;
  /** Share of the mix's payments. */
  share: number;
  medianMs: number;
  sigma: number;
  /** Share of its payments that never decide. */
  never: number;
}

/** The issue's reference mix: one wallet, lognormal median 6 s, σ 0.8, 12% never decide. */
export const REFERENCE_MIX: Wallet[] = [{ name: 'ref', share: 1, medianMs: 6_000, sigma: 0.8, never: 0.12 }];
/** Two wallets: 60% median 3 s σ 0.5, 40% median 15 s σ 0.6, 10% of each never decide. */
export const TWO_WALLET_MIX: Wallet[] = [
  { name: 'fast', share: 0.6, medianMs: 3_000, sigma: 0.5, never: 0.1 },
  { name: 'slow', share: 0.4, medianMs: 15_000, sigma: 0.6, never: 0.1 },
];

export const SCHEDULES: Record<string, LifecyclePolicyInput> = {
  'every 3 s': { inquiryScheduleMs: [3_000] },
  'default 2-2-3-3-5-5-10': {},
  '4-4-30-60': { inquiryScheduleMs: [4_000, 4_000, 30_000, 60_000] },
  adaptive: { inquirySchedule: 'adaptive' },
};

const EXPIRY_MS = 60_000;
const ARRIVAL_MS = 50;
/** Of decided payments, this share are paid with a `paymentTime`; the rest fail without one. */
const PAID_SHARE = 0.9;

function normal(random: () => number): number {
  let u = 0;
  while (u === 0) u = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

export interface PaymentDraw {
  wallet: string;
  /** ms from creation; Infinity: never decides. */
  decisionMs: number;
  paid: boolean;
}

/** The mix's payments, drawn up front so that every schedule replays the very same ones. */
export function drawPayments(mix: readonly Wallet[], count: number, seed: number): PaymentDraw[] {
  const random = seededRandom(seed);
  const draws: PaymentDraw[] = [];
  for (let i = 0; i < count; i++) {
    let pick = random();
    let wallet = mix[mix.length - 1] as Wallet;
    for (const candidate of mix) {
      if (pick < candidate.share) {
        wallet = candidate;
        break;
      }
      pick -= candidate.share;
    }
    const never = random() < wallet.never;
    const decisionMs = never
      ? Number.POSITIVE_INFINITY
      : wallet.medianMs * Math.exp(wallet.sigma * normal(random));
    draws.push({ wallet: wallet.name, decisionMs, paid: random() < PAID_SHARE });
  }
  return draws;
}

/** A simulated clock for one actor: its timers fire when the replay says so. */
class SimulatedTimers {
  now = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  };
  clearTimeout = (id: unknown) => {
    this.timers.delete(id as number);
  };
  /** Fires the earliest timer, moving the clock to it; false when none is armed. */
  fireNext(): boolean {
    let first: [number, { at: number; fn: () => void }] | undefined;
    for (const entry of this.timers) if (!first || entry[1].at < first[1].at) first = entry;
    if (!first) return false;
    this.timers.delete(first[0]);
    this.now = Math.max(this.now, first[1].at);
    first[1].fn();
    return true;
  }
}

function inquiryAnswer(draw: PaymentDraw, createdAt: number, at: number, pspId: string): InquiryOutcome {
  const base = { kind: 'answer', raw: '', responseTime: new Date(at).toISOString(), pspId } as const;
  const ok = { resultCode: 'SUCCESS', resultStatus: 'S', resultMessage: 'success' } as const;
  if (createdAt + draw.decisionMs > at)
    return { ...base, result: ok, paymentResult: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' } };
  if (draw.paid)
    return {
      ...base,
      result: ok,
      paymentResult: ok,
      paymentTime: new Date(createdAt + draw.decisionMs).toISOString(),
    };
  return { ...base, result: ok, paymentResult: { resultCode: 'USER_BALANCE_NOT_ENOUGH', resultStatus: 'F' } };
}

const CANCELLED: CancelOutcome = {
  kind: 'answer',
  raw: '',
  responseTime: '',
  result: { resultCode: 'SUCCESS', resultStatus: 'S', resultMessage: 'success' },
};

export interface ScheduleResult {
  callsPerPayment: number;
  p50LagS: number;
  p99LagS: number;
  /** Share of decided payments answered later than the lag target. */
  lateShare: number;
  /** Wallet plans in use at the end (length of each). */
  plans: Record<string, number | undefined>;
}

/**
 * Replays the payments through the machine with one schedule. With the adaptive schedule a learner
 * observes each settled lifecycle when it settles (in simulated time) and plans each new one.
 */
export async function replay(
  draws: readonly PaymentDraw[],
  policy: LifecyclePolicyInput,
  options: {
    lagTargetMs?: number;
    onPayment?: (index: number, outcome: LifecycleOutcome, lagMs?: number) => void;
  } = {},
): Promise<ScheduleResult> {
  const adaptive = policy.inquirySchedule === 'adaptive';
  let simNow = 0;
  const learner = new DecisionLearner({ now: () => simNow });
  const pendingObservations = new MinHeap<{ at: number; apply: () => void }>();
  const timers = new SimulatedTimers();
  let current: { draw: PaymentDraw; createdAt: number } = { draw: draws[0] as PaymentDraw, createdAt: 0 };
  const machine = paymentLifecycleMachine.provide({
    actors: {
      inquiryPayment: fromPromise(async () => ({
        outcome: inquiryAnswer(current.draw, current.createdAt, timers.now, current.draw.wallet),
        at: timers.now,
      })),
      cancelPayment: fromPromise(async () => ({ outcome: CANCELLED, at: timers.now })),
    },
  });
  const lagTargetMs = options.lagTargetMs ?? 3_000;
  let calls = 0;
  let late = 0;
  const lags: number[] = [];
  for (let i = 0; i < draws.length; i++) {
    const draw = draws[i] as PaymentDraw;
    const createdAt = i * ARRIVAL_MS;
    simNow = createdAt;
    // What settled before this payment starts is known to the learner now.
    while ((pendingObservations.peek()?.at ?? Number.POSITIVE_INFINITY) <= createdAt)
      pendingObservations.pop()?.apply();
    current = { draw, createdAt };
    timers.now = createdAt;
    const input: LifecycleInput = {
      paymentRequestId: `bench-${i}`,
      createdAt,
      expiresAt: createdAt + EXPIRY_MS,
      walletKey: draw.wallet,
      policy: { ...policy, lagTargetMs },
    };
    if (adaptive) {
      const plan = learner.planFor({
        walletKey: draw.wallet,
        expiresInMs: EXPIRY_MS,
        lagTargetMs,
        lagQuantile: 0.99,
      });
      if (plan) input.inquiryPlan = plan as number[];
    }
    const actor = createActor(machine, { input, clock: timers });
    actor.start();
    // Fire the timers in turn; each inquiry's answer arrives after a few microtasks.
    for (let spins = 0; actor.getSnapshot().status === 'active'; ) {
      if (timers.fireNext()) continue;
      await Promise.resolve();
      if (++spins > 1_000_000)
        throw new Error(`payment ${i} is stuck in ${JSON.stringify(actor.getSnapshot().value)}`);
    }
    const snapshot = actor.getSnapshot();
    if (snapshot.status === 'error')
      throw new Error(`payment ${i} failed in the machine: ${String(snapshot.error)}`);
    const outcome = snapshot.output as LifecycleOutcome;
    calls += outcome.inquiries;
    let lagMs: number | undefined;
    if (
      Number.isFinite(draw.decisionMs) &&
      outcome.decidedBy.source === 'inquiry' &&
      outcome.decidedBy.level === 'payment'
    ) {
      lagMs = outcome.decidedAt - (createdAt + draw.decisionMs);
      lags.push(lagMs);
      if (lagMs > lagTargetMs) late++;
    }
    options.onPayment?.(i, outcome, lagMs);
    if (adaptive) {
      const observed = decisionObservation(snapshot.context as LifecycleContext, outcome);
      if (observed)
        pendingObservations.push({
          at: outcome.decidedAt,
          apply: () => learner.observe(observed.walletKey, observed.observation),
        });
    }
  }
  lags.sort((a, b) => a - b);
  const plans: Record<string, number | undefined> = {};
  if (adaptive)
    for (const wallet of new Set(draws.map((d) => d.wallet)))
      plans[wallet] = learner.planFor({
        walletKey: wallet,
        expiresInMs: EXPIRY_MS,
        lagTargetMs,
        lagQuantile: 0.99,
      })?.length;
  return {
    callsPerPayment: calls / draws.length,
    p50LagS: percentile(lags, 50) / 1000,
    p99LagS: percentile(lags, 99) / 1000,
    lateShare: lags.length ? late / lags.length : 0,
    plans,
  };
}

export async function runPollingBench(): Promise<void> {
  const count = Number(process.env.BENCH_POLLING_PAYMENTS ?? 100_000);
  const seed = Number(process.env.BENCH_SEED ?? 1);
  console.log(
    `\n# polling schedules: ${count.toLocaleString('en')} payments per mix, seed ${seed}, simulated time`,
  );
  console.log(machineLine());
  const adaptive: Record<string, ScheduleResult> = {};
  for (const [mixName, mix] of [
    ['reference', REFERENCE_MIX],
    ['two-wallet', TWO_WALLET_MIX],
  ] as const) {
    const draws = drawPayments(mix, count, seed);
    console.log(
      `\n${mixName} mix (${mix.map((w) => `${w.name}: ${w.share * 100}% median ${w.medianMs / 1000} s σ ${w.sigma}, ${w.never * 100}% never`).join('; ')})`,
    );
    console.log('schedule                  calls/payment   p50 lag s   p99 lag s   late > 3 s   wall s');
    for (const [name, policy] of Object.entries(SCHEDULES)) {
      const started = performance.now();
      const result = await replay(draws, policy);
      const wall = (performance.now() - started) / 1000;
      console.log(
        `${name.padEnd(26)}${result.callsPerPayment.toFixed(2).padStart(13)}${result.p50LagS.toFixed(2).padStart(12)}${result.p99LagS.toFixed(3).padStart(12)}${`${(result.lateShare * 100).toFixed(2)}%`.padStart(13)}${wall.toFixed(1).padStart(9)}`,
      );
      if (name === 'adaptive') {
        adaptive[mixName] = result;
        console.log(`  plans at the end (inquiries before the last look): ${JSON.stringify(result.plans)}`);
      }
    }
  }
  const ref = adaptive.reference as ScheduleResult;
  const two = adaptive['two-wallet'] as ScheduleResult;
  console.log(
    `targets: ref-calls ${ref.callsPerPayment.toFixed(2)}, ref-p99-s ${ref.p99LagS.toFixed(3)}, two-wallet-calls ${two.callsPerPayment.toFixed(2)}, two-wallet-p99-s ${two.p99LagS.toFixed(3)}`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await runPollingBench();
