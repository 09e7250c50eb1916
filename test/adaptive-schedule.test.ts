import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  drawPayments,
  type PaymentDraw,
  REFERENCE_MIX,
  replay,
  TWO_WALLET_MIX,
  type Wallet,
} from '../bench/polling.js';
import {
  type DecisionObservation,
  type DecisionSketch,
  decisionObservation,
  emptySketch,
  firstInquiryAt,
  InquiryPlan,
  isSketch,
  type LifecycleOutcome,
  LifecyclePolicy,
  MIN_PLAN_SAMPLES,
  mergeSketches,
  nextInquiryAt,
  nextPlannedInquiry,
  type ObservedContext,
  planInquiries,
  type ScheduleContext,
  SKETCH_BUCKETS,
  SKETCH_EDGES,
  SKETCH_HALF_LIFE,
  SketchBuilder,
  type SketchMemory,
  scheduleAt,
  survivalAtEdges,
} from '../machines/index.js';
import { DecisionLearner } from '../src/engine/decision-learner.js';
import { seededRandom } from '../src/simulator/random.js';

/**
 * The adaptive inquiry schedule: the decision-delay sketch, the planner (judged against the true
 * distribution, computed exactly), the schedule's safety rules, and replays through the real machine
 * on simulated time (bench/polling.ts): a wallet whose decisions slow down is followed, and the
 * adaptive schedule beats the default fixed one. Everything is seeded.
 */

const SECOND = 1_000;
const EXPIRY = 60_000;
const TARGET = 3_000;

// ---------------------------------------------------------------------------------------------
// The true distribution: lognormal decision delays, a share of payments never deciding.

/** erf by Abramowitz–Stegun 7.1.26 (absolute error under 1.5e-7). */
function erf(x: number): number {
  const sign = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const poly =
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
  return sign * (1 - poly * Math.exp(-a * a));
}
const normalCdf = (z: number) => 0.5 * (1 + erf(z / Math.SQRT2));

type Delays = Pick<Wallet, 'medianMs' | 'sigma' | 'never'>;

/** P(D ≤ t): decided by t ms from creation. */
function decidedBy(w: Delays, t: number): number {
  if (t <= 0) return 0;
  return (1 - w.never) * normalCdf(Math.log(t / w.medianMs) / w.sigma);
}
const trueSurvival = (w: Delays, t: number) => 1 - decidedBy(w, t);

function standardNormal(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** One delay (ms), Infinity for a payment that never decides. */
function drawDelay(w: Delays, random: () => number): number {
  if (random() < w.never) return Number.POSITIVE_INFINITY;
  return w.medianMs * Math.exp(w.sigma * standardNormal(random));
}

/** What the machine would report of a payment polled until expiry: exact when decided, else undecided at expiry. */
function observedUntil(delay: number, expiryMs = EXPIRY): DecisionObservation {
  return delay <= expiryMs ? { decided: true, after: delay, by: delay } : { decided: false, after: expiryMs };
}

function sketchOf(w: Delays, count: number, seed: number): DecisionSketch {
  const random = seededRandom(seed);
  const builder = new SketchBuilder();
  for (let i = 0; i < count; i++) builder.add(observedUntil(drawDelay(w, random)));
  return builder.toSketch();
}

const survivalAt = (sketch: SketchMemory, t: number) => {
  const index = SKETCH_EDGES.indexOf(t);
  if (index < 0) throw new Error(`${t} is not an edge`);
  return survivalAtEdges(sketch)[index] as number;
};

/**
 * A plan judged against the true distribution: inquiry k (the last look at expiry included) is sent
 * when the payment had not decided by inquiry k − 1; a decision in (t(k−1), t(k) − target) is answered
 * late. The late share is of the payments that decide by expiry.
 */
function evaluatePlan(w: Delays, plan: readonly number[], expiryMs: number, targetMs = TARGET) {
  let previous = 0;
  let calls = 0;
  let late = 0;
  for (const at of [...plan, expiryMs]) {
    calls += trueSurvival(w, previous);
    late += Math.max(0, decidedBy(w, at - targetMs) - decidedBy(w, previous));
    previous = at;
  }
  return { calls, lateShare: late / decidedBy(w, expiryMs) };
}

/** "Every 3 s" as a plan: 3 s, 6 s, ... before expiry (the last look at expiry follows). */
const everyThreeSeconds = (expiryMs: number) =>
  Array.from({ length: Math.ceil(expiryMs / 3_000) - 1 }, (_, i) => (i + 1) * 3_000);

const REFERENCE = REFERENCE_MIX[0] as Wallet;
const FAST = TWO_WALLET_MIX[0] as Wallet;
const SLOW = TWO_WALLET_MIX[1] as Wallet;

/** Relative closeness of two weight arrays (sketches are rounded to 6 significant digits). */
function expectWeightsClose(actual: readonly number[], expected: readonly number[], label: string) {
  expect(actual.length, label).toBe(expected.length);
  for (let b = 0; b < expected.length; b++) {
    const a = actual[b] as number;
    const e = expected[b] as number;
    if (Math.abs(a - e) > 1e-4 * Math.max(1, Math.abs(e)))
      throw new Error(`${label}[${b}] (edge ${SKETCH_EDGES[b]}): ${a} vs ${e}`);
  }
}

// ---------------------------------------------------------------------------------------------

describe('decision sketch: learning the delays', () => {
  it('a sketch of lognormal samples (12% never deciding, seen undecided at expiry) gives the true survival', () => {
    const sketch = sketchOf(REFERENCE, 20_000, 1);
    expect(sketch.samples).toBe(20_000);
    for (const t of [1_000, 2_000, 4_000, 6_000, 10_000, 20_000, 40_000, 59_000])
      expect(Math.abs(survivalAt(sketch.long, t) - trueSurvival(REFERENCE, t)), `S(${t})`).toBeLessThan(0.03);
    // The never-deciders stay at risk to the end: survival just before expiry is their share.
    expect(survivalAt(sketch.long, 59_000)).toBeGreaterThan(0.1);
  });

  it('an interval observation is spread evenly over its interval', () => {
    const one = new SketchBuilder();
    one.add({ decided: true, after: 1_000, by: 2_000 });
    const memory = one.toSketch().long;
    // Buckets [1000, 1100) ... [1900, 2000) get a tenth each, nothing else anything.
    const first = SKETCH_EDGES.indexOf(1_000) + 1;
    memory.decided.forEach((w, b) => {
      expect(w, `bucket ${b}`).toBeCloseTo(b >= first && b < first + 10 ? 0.1 : 0, 9);
    });
    expect(survivalAt(memory, 1_000)).toBe(1);
    expect(survivalAt(memory, 1_500)).toBeCloseTo(0.5, 9);
    expect(survivalAt(memory, 2_000)).toBeCloseTo(0, 9);

    // Decisions known only to the 2-second window they fell in: at the windows' edges the survival
    // is the true one; inside a window it is the straight line between them (spread evenly).
    const random = seededRandom(2);
    const coarse = new SketchBuilder();
    const truth = { ...REFERENCE, never: 0 };
    for (let i = 0; i < 20_000; i++) {
      const delay = drawDelay(truth, random);
      const after = Math.floor(delay / 2_000) * 2_000;
      coarse.add({ decided: true, after, by: after + 2_000 });
    }
    const learned = coarse.toSketch().long;
    for (const t of [2_000, 4_000, 6_000, 8_000, 12_000, 20_000])
      expect(Math.abs(survivalAt(learned, t) - trueSurvival(truth, t)), `S(${t})`).toBeLessThan(0.03);
    for (const t of [1_000, 3_000, 5_000, 7_500, 9_000, 15_000]) {
      const from = Math.floor(t / 2_000) * 2_000;
      const share = (t - from) / 2_000;
      const line = (1 - share) * trueSurvival(truth, from) + share * trueSurvival(truth, from + 2_000);
      expect(Math.abs(survivalAt(learned, t) - line), `S(${t})`).toBeLessThan(0.03);
    }
    // Not all at either end of the window: halfway through the first one, about half of it has decided.
    expect(survivalAt(learned, 1_000)).toBeLessThan(trueSurvival(truth, 0) - 0.02);
    expect(survivalAt(learned, 1_000)).toBeGreaterThan(trueSurvival(truth, 2_000) + 0.02);
  });

  it('undecided observations are censored (Kaplan–Meier), not counted as never deciding', () => {
    const w = { ...REFERENCE, never: 0 };
    // Half the payments were last seen undecided at 60 s: they count as at risk up to there.
    const random = seededRandom(3);
    const half = new SketchBuilder();
    for (let i = 0; i < 20_000; i++)
      half.add(i % 2 ? { decided: false, after: 60_000 } : observedUntil(drawDelay(w, random)));
    const expected30 = 0.5 + 0.5 * trueSurvival(w, 30_000);
    expect(Math.abs(survivalAt(half.toSketch().long, 30_000) - expected30)).toBeLessThan(0.03);

    // Each payment watched until a random time C in (0, 40 s): undecided at C if it decides later.
    // Kaplan–Meier recovers the true survival; counting the undecided as "never" would inflate it.
    const censored = new SketchBuilder();
    let undecided = 0;
    for (let i = 0; i < 20_000; i++) {
      const delay = drawDelay(w, random);
      const watchedUntil = random() * 40_000;
      if (delay <= watchedUntil) censored.add({ decided: true, after: delay, by: delay });
      else {
        undecided++;
        censored.add({ decided: false, after: watchedUntil });
      }
    }
    expect(undecided).toBeGreaterThan(4_000);
    const memory = censored.toSketch().long;
    for (const t of [3_000, 6_000, 12_000, 20_000]) {
      expect(Math.abs(survivalAt(memory, t) - trueSurvival(w, t)), `S(${t})`).toBeLessThan(0.03);
    }
    // The naive estimate (undecided = never decides) is far off at 12 s: the test tells them apart.
    const decidedWeight = (upTo: number) =>
      memory.decided.reduce((sum, v, b) => sum + ((SKETCH_EDGES[b] as number) <= upTo ? v : 0), 0);
    const total = [...memory.decided, ...memory.undecided].reduce((a, b) => a + b, 0);
    expect(1 - decidedWeight(12_000) / total - trueSurvival(w, 12_000)).toBeGreaterThan(0.1);
  });

  it('merging a then b equals building every observation in one builder, in order', () => {
    const random = seededRandom(4);
    const observations: DecisionObservation[] = [];
    for (let i = 0; i < 3_000; i++) {
      const delay = drawDelay(REFERENCE, random);
      if (!Number.isFinite(delay)) observations.push({ decided: false, after: 40_000 + random() * 20_000 });
      else if (i % 5 === 0) observations.push({ decided: true, after: delay * 0.7, by: delay });
      else observations.push({ decided: true, after: delay, by: delay });
    }
    const single = new SketchBuilder();
    for (const o of observations) single.add(o);
    const a = new SketchBuilder();
    for (const o of observations.slice(0, 2_000)) a.add(o);
    // A worker's batch, as the learner keeps it: no shift test of its own.
    const b = new SketchBuilder(undefined, false);
    for (const o of observations.slice(2_000)) b.add(o);

    const merged = mergeSketches(a.toSketch(), b.toSketch());
    const whole = single.toSketch();
    expect(merged.samples).toBe(whole.samples);
    for (const memory of ['long', 'short'] as const)
      for (const kind of ['decided', 'undecided'] as const)
        expectWeightsClose(merged[memory][kind], whole[memory][kind], `${memory}.${kind}`);

    // Order matters: b then a is another sketch (the newer observations weigh more).
    const reversed = mergeSketches(b.toSketch(), a.toSketch());
    expect(() => expectWeightsClose(reversed.short.decided, whole.short.decided, 'reversed')).toThrow();
    // Nothing stored yet: the batch is the sketch.
    expectWeightsClose(
      mergeSketches(undefined, b.toSketch()).long.decided,
      b.toSketch().long.decided,
      'alone',
    );
  });

  it('old observations decay: after 10 half-lives of a new distribution the old one is gone from the long memory', () => {
    const before = { medianMs: 3_000, sigma: 0.3, never: 0 };
    const after = { medianMs: 20_000, sigma: 0.3, never: 0 };
    const random = seededRandom(5);
    // Decay alone (no shift test): the long memory forgets by its half-life.
    const builder = new SketchBuilder(undefined, false);
    for (let i = 0; i < 5_000; i++) builder.add(observedUntil(drawDelay(before, random)));
    const oldShare = (memory: SketchMemory) => {
      const total = memory.decided.reduce((a, b) => a + b, 0);
      const early = memory.decided.reduce(
        (sum, v, b) => sum + ((SKETCH_EDGES[b] as number) <= 8_000 ? v : 0),
        0,
      );
      return early / total;
    };
    expect(oldShare(builder.toSketch().long)).toBeGreaterThan(0.99);
    for (let i = 0; i < SKETCH_HALF_LIFE.long; i++) builder.add(observedUntil(drawDelay(after, random)));
    // One half-life later the old weights are halved, not gone.
    const oneHalfLife = oldShare(builder.toSketch().long);
    expect(oneHalfLife).toBeGreaterThan(0.3);
    expect(oneHalfLife).toBeLessThan(0.5);
    for (let i = 0; i < 9 * SKETCH_HALF_LIFE.long; i++) builder.add(observedUntil(drawDelay(after, random)));
    const sketch = builder.toSketch();
    expect(oldShare(sketch.long)).toBeLessThan(0.003);
    expect(Math.abs(survivalAt(sketch.long, 20_000) - 0.5)).toBeLessThan(0.03);

    // With the shift test (the default) the long memory restarts from the short one much sooner: 1,000
    // observations after the change, decay alone would still hold about 70% of the old distribution.
    const detecting = new SketchBuilder();
    const decaying = new SketchBuilder(undefined, false);
    for (let i = 0; i < 6_000; i++) {
      const observation = observedUntil(drawDelay(i < 5_000 ? before : after, random));
      detecting.add(observation);
      decaying.add(observation);
    }
    expect(oldShare(decaying.toSketch().long)).toBeGreaterThan(0.6);
    const restarted = detecting.toSketch();
    expect(oldShare(restarted.long)).toBeLessThan(0.3);
    expect(restarted.samples).toBeLessThan(1_000);
  });

  it('isSketch accepts a sketch and its JSON, and rejects wrong lengths, negative or non-finite weights, version 1', () => {
    const sketch = sketchOf(FAST, 500, 6);
    expect(isSketch(sketch)).toBe(true);
    expect(isSketch(JSON.parse(JSON.stringify(sketch)))).toBe(true);
    expect(isSketch(emptySketch())).toBe(true);
    const broken = (change: (s: DecisionSketch) => void) => {
      const copy = structuredClone(sketch) as DecisionSketch;
      change(copy);
      return isSketch(copy);
    };
    expect(broken((s) => s.long.decided.pop())).toBe(false);
    expect(broken((s) => s.short.undecided.push(0))).toBe(false);
    expect(broken((s) => (s.long.undecided[3] = -1))).toBe(false);
    expect(broken((s) => (s.short.decided[10] = Number.NaN))).toBe(false);
    expect(broken((s) => (s.long.decided[10] = Number.POSITIVE_INFINITY))).toBe(false);
    expect(broken((s) => ((s as { version: number }).version = 1))).toBe(false);
    expect(broken((s) => (s.samples = -1))).toBe(false);
    expect(broken((s) => (s.samples = 1.5))).toBe(false);
    expect(broken((s) => ((s as { long?: unknown }).long = undefined))).toBe(false);
    expect(isSketch(null)).toBe(false);
    expect(isSketch('sketch')).toBe(false);
    // A foreign value is treated as empty by the builder.
    const foreign = { ...sketch, version: 1 } as unknown as DecisionSketch;
    expect(new SketchBuilder(foreign).samples).toBe(0);
  });

  it('stays bounded: 100,000 observations take no more room than 1,000', () => {
    const sizeAfter = (count: number) => JSON.stringify(sketchOf(REFERENCE, count, 7)).length;
    const small = sizeAfter(1_000);
    const large = sizeAfter(100_000);
    expect(large).toBeLessThan(32 * 1024);
    expect(large).toBeLessThan(2 * small);
    expect(sketchOf(REFERENCE, 1_000, 7).long.decided).toHaveLength(SKETCH_BUCKETS);
  });
});

describe('planInquiries: the fewest expected calls that meet the lag target', () => {
  const plan = (sketch: DecisionSketch, extra: Partial<Parameters<typeof planInquiries>[1]> = {}) =>
    planInquiries(sketch, { expiresInMs: EXPIRY, lagTargetMs: TARGET, lagQuantile: 0.99, ...extra });

  it('plans nothing below MIN_PLAN_SAMPLES', () => {
    const random = seededRandom(8);
    const builder = new SketchBuilder();
    for (let i = 0; i < MIN_PLAN_SAMPLES - 1; i++) builder.add(observedUntil(drawDelay(REFERENCE, random)));
    expect(plan(builder.toSketch())).toBeUndefined();
    builder.add(observedUntil(drawDelay(REFERENCE, random)));
    expect(plan(builder.toSketch())).toBeDefined();
    expect(plan(builder.toSketch(), { minSamples: 1_000 })).toBeUndefined();
    expect(plan(emptySketch(), { minSamples: 0 })).toBeUndefined();
  });

  for (const [name, wallet] of [
    ['reference (median 6 s, σ 0.8, 12% never)', REFERENCE],
    ['fast wallet (median 3 s, σ 0.5, 10% never)', FAST],
    ['slow wallet (median 15 s, σ 0.6, 10% never)', SLOW],
  ] as const) {
    it(`${name}: against the true distribution, the late share is within 1% with fewer calls than every 3 s`, () => {
      const sketch = sketchOf(wallet, 20_000, 9);
      const times = plan(sketch) as number[];
      expect(times).toBeDefined();
      expect(InquiryPlan.safeParse(times).success).toBe(true);
      times.forEach((at, i) => {
        expect(at).toBeGreaterThan(i === 0 ? 0 : (times[i - 1] as number));
        expect(at).toBeLessThan(EXPIRY);
      });
      const judged = evaluatePlan(wallet, times, EXPIRY);
      const fixed = evaluatePlan(wallet, everyThreeSeconds(EXPIRY), EXPIRY);
      expect(judged.lateShare).toBeLessThanOrEqual(0.01);
      expect(fixed.lateShare).toBe(0);
      expect(judged.calls).toBeLessThan(fixed.calls);
      if (wallet === REFERENCE) expect(fixed.calls).toBeCloseTo(5.25, 1);
    });
  }

  it('a smaller lag target costs more calls; a lower quantile costs no more', () => {
    const sketch = sketchOf(REFERENCE, 20_000, 10);
    const calls = (extra: Partial<Parameters<typeof planInquiries>[1]>) =>
      evaluatePlan(REFERENCE, plan(sketch, extra) as number[], EXPIRY, extra.lagTargetMs ?? TARGET).calls;
    expect(calls({ lagTargetMs: 1_500 })).toBeGreaterThan(calls({}) + 1);
    expect(calls({ lagTargetMs: 6_000 })).toBeLessThan(calls({}));
    expect(calls({ lagQuantile: 0.9 })).toBeLessThanOrEqual(calls({}));
    expect(calls({ lagQuantile: 0.999 })).toBeGreaterThanOrEqual(calls({}));
    // Each still meets its own target.
    const tight = plan(sketch, { lagTargetMs: 1_500 }) as number[];
    expect(evaluatePlan(REFERENCE, tight, EXPIRY, 1_500).lateShare).toBeLessThanOrEqual(0.01);
    const loose = plan(sketch, { lagQuantile: 0.9 }) as number[];
    expect(evaluatePlan(REFERENCE, loose, EXPIRY).lateShare).toBeLessThanOrEqual(0.1);
  });

  it('a plan for a 30 s expiry stays before 30 s and still meets the target', () => {
    // The last wallet decides around 28 s: its plan asks densely right up to expiry.
    const closeToExpiry = { medianMs: 28_000, sigma: 0.2, never: 0.1 };
    for (const wallet of [REFERENCE, FAST, SLOW, closeToExpiry]) {
      const times = plan(sketchOf(wallet, 20_000, 11), { expiresInMs: 30_000 }) as number[];
      expect(times.length).toBeGreaterThan(0);
      expect(times.every((at) => at < 30_000)).toBe(true);
      expect(evaluatePlan(wallet, times, 30_000).lateShare).toBeLessThanOrEqual(0.01);
    }
  });

  it('asks nothing once the sketch says every payment has decided, and fits InquiryPlan (≤ 200 times)', () => {
    // Early in a wallet's life: 350 settled payments, all decided (the never-deciders have not
    // reached expiry yet), a tenth known only to an interval. Survival falls to 0 around 10 s.
    const random = seededRandom(12);
    const builder = new SketchBuilder();
    for (let i = 0; i < 350; i++) {
      const at = FAST.medianMs * Math.exp(FAST.sigma * standardNormal(random));
      builder.add(
        random() < 0.9
          ? { decided: true, after: at, by: at }
          : { decided: true, after: Math.max(0, at - 1_500), by: at + 500 },
      );
    }
    const sketch = builder.toSketch();
    const survival = survivalAtEdges(sketch.long);
    const allDecidedAt = SKETCH_EDGES[survival.indexOf(0)] as number;
    expect(allDecidedAt).toBeLessThan(20_000);
    // Once, inquiries there counted as free: the plan filled the rest up to expiry with 250 ms steps
    // (201 times, past the input's limit), and a lifecycle given it failed in its context factory.
    const times = plan(sketch) as number[];
    expect(times).toBeDefined();
    // One more look past that point may be needed (for a decision just before it); more are calls for nothing.
    expect(times.filter((at) => at > allDecidedAt).length, JSON.stringify(times)).toBeLessThanOrEqual(1);
    expect(InquiryPlan.safeParse(times).success).toBe(true);
  });
});

describe('the schedule: plan under the safety rules', () => {
  // The exact waits: a throttled inquiry's jitter is tested in test/retry-jitter.test.ts.
  const policy = LifecyclePolicy.parse({
    inquirySchedule: 'adaptive',
    inquiryScheduleMs: [2_000, 4_000],
    trafficLimitMultiplier: 3,
    retryJitter: 'none',
  });
  const T = 1_700_000_000_000;
  const context = (plan: readonly number[] | undefined, inquiries = 1): ScheduleContext => ({
    createdAt: T,
    expiresAt: T + EXPIRY,
    policy,
    inquiries,
    ...(plan ? { plan } : {}),
  });

  it('nextInquiryAt follows the plan, then expiry; never before now, never after expiry', () => {
    const c = context([2_000, 5_000, 9_000]);
    expect(nextInquiryAt(c, T, false)).toBe(T + 2_000);
    expect(nextInquiryAt(c, T + 2_000, false)).toBe(T + 5_000);
    expect(nextInquiryAt(c, T + 4_999, false)).toBe(T + 5_000);
    expect(nextInquiryAt(c, T + 9_000, false)).toBe(T + EXPIRY);
    expect(nextInquiryAt(c, T + 70_000, false)).toBe(T + 70_000);
    // An offset past expiry is clamped to it.
    expect(nextInquiryAt(context([90_000]), T + 1_000, false)).toBe(T + EXPIRY);
    // Without a plan: the fixed step for the inquiries made so far.
    expect(nextInquiryAt(context(undefined, 0), T + 1_000, false)).toBe(T + 3_000);
    expect(nextInquiryAt(context(undefined, 5), T + 1_000, false)).toBe(T + 5_000);
  });

  const planArb = fc
    .uniqueArray(fc.integer({ min: 0, max: 2 * EXPIRY }), { maxLength: 20 })
    .map((offsets) => offsets.sort((a, b) => a - b));

  it('nextInquiryAt, any plan and time: the next planned time (or expiry), clamped; traffic limits wait at least step × multiplier', () => {
    fc.assert(
      fc.property(
        planArb,
        fc.integer({ min: -5_000, max: 2 * EXPIRY }),
        fc.integer({ min: 0, max: 10 }),
        (plan, offset, inquiries) => {
          const c = context(plan, inquiries);
          const now = T + offset;
          const planned = nextPlannedInquiry(plan, T, now) ?? T + EXPIRY;
          const at = nextInquiryAt(c, now, false);
          expect(at).toBeGreaterThanOrEqual(now);
          expect(at).toBe(Math.max(now, Math.min(planned, T + EXPIRY)));
          if (now < T + EXPIRY) {
            expect(at).toBeLessThanOrEqual(T + EXPIRY);
            expect(at === T + EXPIRY || plan.includes(at - T)).toBe(true);
          }
          const limited = nextInquiryAt(c, now, true);
          const step = scheduleAt(policy.inquiryScheduleMs, inquiries);
          expect(limited).toBeGreaterThanOrEqual(now);
          expect(limited).toBeGreaterThanOrEqual(at);
          expect(limited).toBeGreaterThanOrEqual(
            Math.min(now + step * policy.trafficLimitMultiplier, T + EXPIRY),
          );
          if (now < T + EXPIRY) expect(limited).toBeLessThanOrEqual(T + EXPIRY);
        },
      ),
      { numRuns: 500, seed: 13 },
    );
  });

  it('a traffic limit waits the plan, but at least the fixed step, times the multiplier', () => {
    const c = context([2_000, 30_000], 1); // step 4 s
    expect(nextInquiryAt(c, T + 1_000, true)).toBe(T + 1_000 + 4_000 * 3);
    // 28 s × 3 is past expiry: the last look, at expiry.
    expect(nextInquiryAt(c, T + 2_000, true)).toBe(T + EXPIRY);
    expect(nextInquiryAt(context([2_000, 12_000], 1), T + 2_000, true)).toBe(T + 2_000 + 10_000 * 3);
  });

  it('firstInquiryAt takes the first planned time (offset 0 included), clamped to expiry', () => {
    const first = (plan: readonly number[] | undefined) =>
      firstInquiryAt({ createdAt: T, expiresAt: T + EXPIRY, policy, ...(plan ? { plan } : {}) });
    expect(first([1_500, 4_000])).toBe(T + 1_500);
    expect(first([0, 4_000])).toBe(T);
    expect(first([90_000])).toBe(T + EXPIRY);
    expect(first([])).toBe(T + EXPIRY);
    expect(first(undefined)).toBe(T + 2_000);
    expect(firstInquiryAt({ createdAt: T, expiresAt: T + 1_000, policy })).toBe(T + 1_000);
  });
});

describe('decisionObservation: what a settled lifecycle tells the learner', () => {
  const T = Date.UTC(2026, 0, 15, 3, 0, 0);
  const outcome = (
    status: LifecycleOutcome['status'],
    extra: Partial<LifecycleOutcome> = {},
  ): LifecycleOutcome => ({
    status,
    paymentRequestId: 'REQ-1',
    decidedBy: { source: 'inquiry', level: 'payment', code: 'SUCCESS', status: 'S' },
    details: {},
    inquiries: 3,
    cancelAttempts: 0,
    decidedAt: T + 6_000,
    lateNotifications: [],
    ...extra,
  });
  const ctx = (extra: Partial<ObservedContext> = {}): ObservedContext => ({
    createdAt: T,
    undecidedAt: T + 3_000,
    details: {},
    ...extra,
  });

  it('an exact paymentTime (milliseconds) is the decision time', () => {
    const paymentTime = new Date(T + 4_321).toISOString();
    expect(decisionObservation(ctx({ details: { paymentTime } }), outcome('succeeded'))).toEqual({
      walletKey: undefined,
      observation: { decided: true, after: 4_321, by: 4_321 },
    });
  });

  it('a paymentTime to the second says "within that second"', () => {
    const observed = decisionObservation(
      ctx({ details: { paymentTime: '2026-01-15T11:00:04+08:00' } }),
      outcome('succeeded'),
    );
    expect(observed?.observation).toEqual({ decided: true, after: 4_000, by: 5_000 });
  });

  it('without a paymentTime: between the last undecided answer and the deciding one', () => {
    expect(decisionObservation(ctx(), outcome('failed'))?.observation).toEqual({
      decided: true,
      after: 3_000,
      by: 6_000,
    });
    expect(decisionObservation(ctx({ undecidedAt: undefined }), outcome('succeeded'))?.observation).toEqual({
      decided: true,
      after: 0,
      by: 6_000,
    });
    // A notification decides too.
    const notified = outcome('succeeded', {
      decidedBy: { source: 'notification', level: 'payment', code: 'SUCCESS', status: 'S' },
    });
    expect(decisionObservation(ctx(), notified)?.observation).toEqual({
      decided: true,
      after: 3_000,
      by: 6_000,
    });
  });

  it('a paymentTime outside (last undecided, outcome] is not trusted', () => {
    const early = new Date(T + 1_000).toISOString();
    const late = new Date(T + 9_000).toISOString();
    for (const paymentTime of [early, late])
      expect(
        decisionObservation(ctx({ details: { paymentTime } }), outcome('succeeded'))?.observation,
      ).toEqual({
        decided: true,
        after: 3_000,
        by: 6_000,
      });
  });

  it('cancelled or closed after an undecided answer: undecided there; else nothing', () => {
    const cancelled = outcome('cancelled', {
      decidedBy: { source: 'cancel', level: 'call', code: 'SUCCESS', status: 'S' },
      decidedAt: T + 61_000,
    });
    expect(decisionObservation(ctx({ undecidedAt: T + 60_000 }), cancelled)?.observation).toEqual({
      decided: false,
      after: 60_000,
    });
    expect(decisionObservation(ctx({ undecidedAt: undefined }), cancelled)).toBeUndefined();
    const closed = outcome('closed', {
      decidedBy: { source: 'inquiry', level: 'payment', code: 'ORDER_IS_CLOSED', status: 'F' },
    });
    expect(decisionObservation(ctx(), closed)?.observation).toEqual({ decided: false, after: 3_000 });
  });

  it('attention, or a failure of the call itself, tells nothing', () => {
    const attention = outcome('attention', {
      decidedBy: { source: 'inquiry', level: 'call', code: 'KEY_NOT_FOUND', status: 'F' },
      attentionReason: 'integration-fault',
    });
    expect(decisionObservation(ctx(), attention)).toBeUndefined();
    const callFailed = outcome('failed', {
      decidedBy: { source: 'inquiry', level: 'call', code: 'PROCESS_FAIL', status: 'F' },
    });
    expect(decisionObservation(ctx(), callFailed)).toBeUndefined();
  });

  it('the wallet: the context walletKey, else the details pspId', () => {
    expect(decisionObservation(ctx({ details: { pspId: 'PSP-9' } }), outcome('succeeded'))?.walletKey).toBe(
      'PSP-9',
    );
    expect(
      decisionObservation(ctx({ walletKey: 'ROUTED', details: { pspId: 'PSP-9' } }), outcome('succeeded'))
        ?.walletKey,
    ).toBe('ROUTED');
  });
});

// ---------------------------------------------------------------------------------------------
// Replays through the real machine on simulated time (bench/polling.ts).

interface PaymentRecord {
  lagMs: number | undefined;
  inquiries: number;
  outcome: LifecycleOutcome;
}

async function replayRecording(draws: readonly PaymentDraw[], policy: Parameters<typeof replay>[1]) {
  const records: PaymentRecord[] = [];
  const result = await replay(draws, policy, {
    onPayment: (index, outcome, lagMs) => {
      records[index] = { lagMs, inquiries: outcome.inquiries, outcome };
    },
  });
  return { result, records };
}

/** Lag figures of payments [from, to): late share, p99 (nearest rank) and calls per payment. */
function window(records: readonly PaymentRecord[], from: number, to: number) {
  const slice = records.slice(from, to);
  const lags = slice
    .map((r) => r.lagMs)
    .filter((lag): lag is number => lag !== undefined)
    .sort((a, b) => a - b);
  return {
    lateShare: lags.filter((lag) => lag > TARGET).length / lags.length,
    p99Ms: lags[Math.ceil(0.99 * lags.length) - 1] as number,
    callsPerPayment: slice.reduce((sum, r) => sum + r.inquiries, 0) / slice.length,
    decided: lags.length,
  };
}

const figures = (w: ReturnType<typeof window>) =>
  `late ${(w.lateShare * 100).toFixed(2)}%, p99 ${(w.p99Ms / SECOND).toFixed(2)} s, ${w.callsPerPayment.toFixed(2)} calls/payment`;

describe('replays through the machine (simulated time)', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("after a wallet's decision times shift (median 3 s becomes 12 s), the schedule follows within 2,000 payments and the p99 lag returns under the target", async () => {
    const N1 = 3_000;
    const N2 = 4_000;
    const FOLLOW = 2_000;
    const wallet = (medianMs: number): Wallet[] => [
      { name: 'w', share: 1, medianMs, sigma: 0.5, never: 0.1 },
    ];
    const draws = [...drawPayments(wallet(3_000), N1, 21), ...drawPayments(wallet(12_000), N2, 22)];
    const { records } = await replayRecording(draws, { inquirySchedule: 'adaptive' });

    const beforeShift = window(records, N1 - 1_000, N1);
    const justAfter = window(records, N1, N1 + 300);
    const followed = window(records, N1 + FOLLOW, N1 + N2);
    // A fresh wallet of the new distribution alone, after its own warm-up: what "followed" should reach.
    const fresh = await replayRecording(drawPayments(wallet(12_000), N2, 22), {
      inquirySchedule: 'adaptive',
    });
    const freshFollowed = window(fresh.records, FOLLOW, N2);
    const report = `before ${figures(beforeShift)}; just after ${figures(justAfter)}; from +${FOLLOW} ${figures(followed)}; fresh ${figures(freshFollowed)}`;

    // Adapted to the fast wallet before the shift, so what follows is the shift's doing.
    expect(beforeShift.lateShare, report).toBeLessThan(0.01);
    // Right after the shift the old plan misses the slower decisions by far.
    expect(justAfter.lateShare, report).toBeGreaterThan(0.1);
    expect(justAfter.p99Ms, report).toBeGreaterThan(10 * SECOND);
    // Followed: the p99 lag is back under the target, and the calls are what a fresh learner spends.
    expect(followed.decided, report).toBeGreaterThan(1_500);
    expect(followed.lateShare, report).toBeLessThan(0.01);
    expect(followed.p99Ms, report).toBeLessThanOrEqual(3 * SECOND);
    expect(
      Math.abs(followed.callsPerPayment - freshFollowed.callsPerPayment) / freshFollowed.callsPerPayment,
      report,
    ).toBeLessThanOrEqual(0.15);
  }, 120_000);

  it('on the reference mix, past its warm-up, the adaptive schedule has a lower p99 lag than the default fixed one, and the machine keeps to each plan', async () => {
    const N = 6_000;
    const draws = drawPayments(REFERENCE_MIX, N, 31);
    const fixed = await replayRecording(draws, {});

    // Each payment's plan, as the replay's learner gave it (one planFor per payment, in order).
    const plans: (readonly number[] | undefined)[] = [];
    const planFor = DecisionLearner.prototype.planFor;
    vi.spyOn(DecisionLearner.prototype, 'planFor').mockImplementation(function (
      this: DecisionLearner,
      request,
    ) {
      const plan = planFor.call(this, request);
      plans.push(plan);
      return plan;
    });
    const adaptive = await replayRecording(draws, { inquirySchedule: 'adaptive' });
    expect(plans.length).toBeGreaterThanOrEqual(N);

    // Past the warm-up (the fixed schedule until 300 observations, then young sketches): the second half.
    const fixedLate = window(fixed.records, N / 2, N);
    const adaptiveLate = window(adaptive.records, N / 2, N);
    const report = `second half: fixed ${figures(fixedLate)}; adaptive ${figures(adaptiveLate)}; all: fixed p99 ${fixed.result.p99LagS} s, adaptive ${adaptive.result.p99LagS} s`;
    expect(adaptiveLate.p99Ms, report).toBeLessThan(fixedLate.p99Ms);
    expect(adaptiveLate.p99Ms, report).toBeLessThanOrEqual(3 * SECOND);
    expect(adaptiveLate.lateShare, report).toBeLessThan(0.01);
    expect(fixedLate.lateShare, report).toBeGreaterThan(0.05);

    // The machine's inquiries are the plan's times, then the last look at expiry (the fixed schedule
    // while there is no plan; maxInquiries bounds both): from each payment's decision time, the number
    // of inquiries it takes and the lag it ends with follow. Checked for every payment.
    const defaults = LifecyclePolicy.parse({});
    const fixedTimes: number[] = [];
    for (let at = 0, k = 0; at < EXPIRY; k++) {
      at = Math.min(EXPIRY, at + scheduleAt(defaults.inquiryScheduleMs, k));
      fixedTimes.push(at);
    }
    let planned = 0;
    let decidedOnPlan = 0;
    for (let i = 0; i < N; i++) {
      const draw = draws[i] as PaymentDraw;
      const plan = plans[i];
      const times = (plan ? [...plan, EXPIRY] : fixedTimes).slice(0, defaults.maxInquiries);
      if (plan) planned++;
      const k = times.findIndex((at) => draw.decisionMs <= at);
      const record = adaptive.records[i] as PaymentRecord;
      const where = `payment ${i} (decides at ${draw.decisionMs} ms, plan ${JSON.stringify(plan)}): ${record.inquiries} inquiries, lag ${record.lagMs}`;
      if (k < 0) {
        // Never found decided: every time, the last look included, then a cancel.
        if (record.inquiries !== times.length || record.lagMs !== undefined) throw new Error(where);
        if (record.outcome.status !== 'cancelled') throw new Error(`${where}: ${record.outcome.status}`);
      } else {
        const lag = (times[k] as number) - draw.decisionMs;
        if (record.inquiries !== k + 1 || Math.abs((record.lagMs ?? Number.NaN) - lag) > 1e-6)
          throw new Error(`${where}; expected ${k + 1} inquiries, lag ${lag}`);
        if (plan) decidedOnPlan++;
      }
    }
    // Most payments ran on a plan, and plans changed along the way.
    expect(planned).toBeGreaterThan(N / 2);
    expect(decidedOnPlan).toBeGreaterThan(N / 3);
    expect(new Set(plans.filter(Boolean)).size).toBeGreaterThan(1);
  }, 120_000);
});
