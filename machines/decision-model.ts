/**
 * The adaptive inquiry schedule's model and planner. Pure: no I/O, no clock, no globals that change.
 *
 * A wallet's decision delay D is the time from a payment's creation to the wallet's decision. The
 * engine learns its distribution from settled lifecycles into a {@link DecisionSketch}: a fixed
 * histogram with exponentially decaying weights, so that its size never depends on traffic and a
 * shift in the distribution is followed. {@link planInquiries} turns a sketch into the inquiry times
 * that keep the lag (our outcome minus the decision) under a target at a quantile with the fewest
 * expected calls; the machine reads the next one with {@link nextPlannedInquiry}.
 */

/** The upper edges of the histogram's buckets, in ms from creation: fine early, coarse late. */
function bucketEdges(): number[] {
  const edges: number[] = [];
  const band = (until: number, step: number) => {
    const from = edges.length ? (edges[edges.length - 1] as number) : 0;
    for (let at = from + step; at <= until; at += step) edges.push(at);
  };
  band(10_000, 100);
  band(60_000, 250);
  band(300_000, 1_000);
  band(3_600_000, 15_000);
  return edges;
}

/** Bucket b holds delays in [EDGES[b-1], EDGES[b]) (the first from 0); delays past the last edge go in the last. */
export const SKETCH_EDGES: readonly number[] = Object.freeze(bucketEdges());
export const SKETCH_BUCKETS = SKETCH_EDGES.length;

/**
 * A sketch keeps two memories of the same observations. In each, an observation's weight halves
 * after a half-life of newer ones: the long memory (about 4,300 observations' worth) is precise, the
 * short one (about 430) follows a change quickly. When the two disagree by more than sampling
 * explains, the wallet has changed: the long memory restarts from the short one.
 */
export const SKETCH_HALF_LIFE = { long: 3_000, short: 300 } as const;
const GROWTH = { long: 2 ** (1 / SKETCH_HALF_LIFE.long), short: 2 ** (1 / SKETCH_HALF_LIFE.short) };
/** Effective observations of a memory at full weight: 1 / (1 − 2^(−1/half-life)). */
const EFFECTIVE = {
  long: 1 / (1 - 1 / GROWTH.long),
  short: 1 / (1 - 1 / GROWTH.short),
};
/** The shift test's critical distance factor (a two-sample Kolmogorov–Smirnov test at about 1%). */
const SHIFT_FACTOR = 1.63;
/** Observations between two shift tests. */
const SHIFT_TEST_EVERY = 50;

/** One memory: weights relative to the newest observation (weight 1). */
export interface SketchMemory {
  /** Weight of decisions per bucket (an observation known only to an interval is spread over it). */
  decided: number[];
  /** Weight of lifecycles that ended undecided, by the bucket of the last time they were seen so. */
  undecided: number[];
}

/**
 * A wallet's decision-delay distribution, as stored and shared: bounded whatever the traffic.
 * `samples` counts the observations the long memory holds (for the planner's warm-up).
 */
export interface DecisionSketch {
  version: 2;
  long: SketchMemory;
  short: SketchMemory;
  samples: number;
}

/**
 * What one settled lifecycle tells: the decision happened in (`after`, `by`] ms from creation, or
 * (`decided: false`) not by `after`. An exact time has `after === by`.
 */
export type DecisionObservation =
  | { decided: true; after: number; by: number }
  | { decided: false; after: number };

const zeros = () => new Array<number>(SKETCH_BUCKETS).fill(0);

export function emptySketch(): DecisionSketch {
  return {
    version: 2,
    long: { decided: zeros(), undecided: zeros() },
    short: { decided: zeros(), undecided: zeros() },
    samples: 0,
  };
}

function bucketOf(ms: number): number {
  // Binary search over the edges: the first edge greater than ms.
  let lo = 0;
  let hi = SKETCH_BUCKETS - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((SKETCH_EDGES[mid] as number) > ms) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

const lowerEdge = (b: number) => (b === 0 ? 0 : (SKETCH_EDGES[b - 1] as number));

/**
 * One memory with decaying weights in O(1) time per observation (O(buckets) for an interval):
 * instead of shrinking every old weight, each new one grows, and the whole is rescaled now and then.
 */
class DecayingHistogram {
  decided: number[];
  undecided: number[];
  /** The weight the next observation gets. */
  weight = 1;

  constructor(
    private readonly growth: number,
    base: SketchMemory | undefined,
  ) {
    this.decided = base ? [...base.decided] : zeros();
    this.undecided = base ? [...base.undecided] : zeros();
    if (base) this.weight = growth;
  }

  add(observation: DecisionObservation): void {
    const w = this.weight;
    const after = Math.max(0, observation.after);
    if (!observation.decided) {
      const b = bucketOf(after);
      this.undecided[b] = (this.undecided[b] as number) + w;
    } else {
      const by = Math.max(after, observation.by);
      const first = bucketOf(after);
      const last = bucketOf(by);
      if (first === last) {
        this.decided[last] = (this.decided[last] as number) + w;
      } else {
        // Spread uniformly over (after, by]: each bucket gets its share of the interval.
        const span = by - after;
        for (let b = first; b <= last; b++) {
          const from = Math.max(after, lowerEdge(b));
          const to = b === SKETCH_BUCKETS - 1 ? by : Math.min(by, SKETCH_EDGES[b] as number);
          if (to > from) this.decided[b] = (this.decided[b] as number) + (w * (to - from)) / span;
        }
      }
    }
    this.weight *= this.growth;
    if (this.weight > 1e12) this.rescale(1 / this.weight);
  }

  /** Adds a memory of `count` observations made after everything here. */
  addNewer(newer: SketchMemory, count: number): void {
    // The newer memory's oldest observation follows this one's newest.
    this.rescale(this.growth ** (1 - count) / this.weight);
    for (let b = 0; b < SKETCH_BUCKETS; b++) {
      this.decided[b] = (this.decided[b] as number) + (newer.decided[b] ?? 0);
      this.undecided[b] = (this.undecided[b] as number) + (newer.undecided[b] ?? 0);
    }
    this.weight = this.growth;
  }

  rescale(factor: number): void {
    for (let b = 0; b < SKETCH_BUCKETS; b++) {
      this.decided[b] = (this.decided[b] as number) * factor;
      this.undecided[b] = (this.undecided[b] as number) * factor;
    }
    this.weight *= factor;
  }

  /** Takes the other memory's weights (its newest observation at weight 1) and keeps its own decay. */
  copyFrom(other: DecayingHistogram): void {
    const newest = other.weight / other.growth;
    this.decided = other.decided.map((w) => w / newest);
    this.undecided = other.undecided.map((w) => w / newest);
    this.weight = this.growth;
  }

  /** Weights with the newest observation at 1, under 1e-9 dropped, rounded to 6 digits. */
  toMemory(): SketchMemory {
    const newest = this.weight / this.growth;
    const norm = (weights: number[]) =>
      weights.map((w) => {
        const v = w / newest;
        return v < 1e-9 ? 0 : Number(v.toPrecision(6));
      });
    return { decided: norm(this.decided), undecided: norm(this.undecided) };
  }
}

/** Accumulates observations into a sketch (see {@link DecisionSketch}). */
export class SketchBuilder {
  private readonly long: DecayingHistogram;
  private readonly short: DecayingHistogram;
  private count: number;
  private untilShiftTest = SHIFT_TEST_EVERY;

  /**
   * @param base the sketch to go on from.
   * @param detectShift false for a batch on its way to a shared sketch: the shared sketch tests.
   */
  constructor(
    base?: DecisionSketch,
    private readonly detectShift = true,
  ) {
    const start = base && isSketch(base) && base.samples > 0 ? base : undefined;
    this.long = new DecayingHistogram(GROWTH.long, start?.long);
    this.short = new DecayingHistogram(GROWTH.short, start?.short);
    this.count = start?.samples ?? 0;
  }

  /** The observations the long memory holds. */
  get samples(): number {
    return this.count;
  }

  add(observation: DecisionObservation): void {
    this.long.add(observation);
    this.short.add(observation);
    this.count += 1;
    if (this.detectShift && --this.untilShiftTest <= 0) this.testShift();
  }

  /** Adds a whole sketch made since this one's last observation: it is newer than everything here. */
  addNewer(newer: DecisionSketch): void {
    if (!isSketch(newer) || newer.samples <= 0) return;
    this.long.addNewer(newer.long, newer.samples);
    this.short.addNewer(newer.short, newer.samples);
    this.count += newer.samples;
    if (this.detectShift) this.testShift();
  }

  /** The wallet changed: the long memory restarts from the short one. */
  private testShift(): void {
    this.untilShiftTest = SHIFT_TEST_EVERY;
    const long = this.long.toMemory();
    const short = this.short.toMemory();
    const distance = survivalDistance(long, short);
    const critical = SHIFT_FACTOR * Math.sqrt(1 / EFFECTIVE.short + 1 / Math.min(this.count, EFFECTIVE.long));
    if (this.count > EFFECTIVE.short && distance > critical) {
      this.long.copyFrom(this.short);
      this.count = Math.round(Math.min(this.count, EFFECTIVE.short));
    }
  }

  toSketch(): DecisionSketch {
    return { version: 2, long: this.long.toMemory(), short: this.short.toMemory(), samples: this.count };
  }
}

/** The largest difference between two memories' survival curves (a Kolmogorov–Smirnov distance). */
function survivalDistance(a: SketchMemory, b: SketchMemory): number {
  const sa = survivalAtEdges(a);
  const sb = survivalAtEdges(b);
  let distance = 0;
  for (let i = 0; i < SKETCH_BUCKETS; i++)
    distance = Math.max(distance, Math.abs((sa[i] as number) - (sb[i] as number)));
  return distance;
}

/**
 * `stored` with `newer` added after it: how a worker's batch of observations joins the shared
 * sketch.
 */
export function mergeSketches(stored: DecisionSketch | undefined, newer: DecisionSketch): DecisionSketch {
  const builder = new SketchBuilder(stored);
  builder.addNewer(newer);
  return builder.toSketch();
}

const isMemory = (memory: SketchMemory) =>
  typeof memory === 'object' &&
  memory !== null &&
  [memory.decided, memory.undecided].every(
    (weights) =>
      Array.isArray(weights) &&
      weights.length === SKETCH_BUCKETS &&
      weights.every((w) => typeof w === 'number' && Number.isFinite(w) && w >= 0),
  );

/** Whether a stored value is a sketch of this layout (a foreign or older one is treated as empty). */
export function isSketch(value: unknown): value is DecisionSketch {
  const sketch = value as DecisionSketch;
  return (
    typeof sketch === 'object' &&
    sketch !== null &&
    sketch.version === 2 &&
    Number.isInteger(sketch.samples) &&
    sketch.samples >= 0 &&
    isMemory(sketch.long) &&
    isMemory(sketch.short)
  );
}

/**
 * P(D > t) at each edge (index b is the survival at SKETCH_EDGES[b], index -1 ↦ 1 at 0): a
 * Kaplan–Meier estimate, so that lifecycles that ended undecided (expired, closed) count as at risk
 * up to where they were last seen, not as never deciding.
 */
export function survivalAtEdges(sketch: SketchMemory): Float64Array {
  const survival = new Float64Array(SKETCH_BUCKETS);
  let atRisk = 0;
  for (let b = 0; b < SKETCH_BUCKETS; b++)
    atRisk += (sketch.decided[b] as number) + (sketch.undecided[b] as number);
  let s = 1;
  for (let b = 0; b < SKETCH_BUCKETS; b++) {
    const d = sketch.decided[b] as number;
    if (atRisk > 0 && d > 0) s *= Math.max(0, 1 - d / atRisk);
    survival[b] = s;
    atRisk -= d + (sketch.undecided[b] as number);
  }
  return survival;
}

/** P(D > t) between edges: linear within a bucket. */
function survivalAt(survival: Float64Array, t: number): number {
  if (t <= 0) return 1;
  const b = bucketOf(t);
  const from = lowerEdge(b);
  const to = SKETCH_EDGES[b] as number;
  const s0 = b === 0 ? 1 : (survival[b - 1] as number);
  const s1 = survival[b] as number;
  if (t >= to) return s1;
  return s0 + ((s1 - s0) * (t - from)) / (to - from);
}

export interface PlanOptions {
  /** The payment's expiry, in ms from creation: the last look is made then, whatever the plan. */
  expiresInMs: number;
  /** The lag to keep under: from the wallet's decision to our answer. */
  lagTargetMs: number;
  /** The share of decided payments whose lag must be under the target. */
  lagQuantile: number;
  /** Observations a sketch needs before it is trusted (the fixed schedule is used until then). */
  minSamples?: number;
  /** Of the allowed tail, the share the plan may spend (default {@link PLAN_TAIL_SHARE}). */
  tailShare?: number;
}

/** Observations a sketch needs before the planner trusts it. */
export const MIN_PLAN_SAMPLES = 300;

/** The most inquiry times a plan holds (the lifecycle input's limit); a longer one is not made. */
export const MAX_PLAN_LENGTH = 200;

/**
 * What an inquiry costs the planner at least, in expected calls: where the sketch says every payment
 * has decided, an inquiry is still not free (some payment is always still waiting there), so the
 * plan never fills a quiet stretch with inquiries that buy nothing.
 */
const MIN_CALL_COST = 1e-3;

/**
 * Of the tail the quantile allows (1 − lagQuantile), the planner spends this share: the rest covers
 * the sketch's own sampling error and the wallet changing before the sketch has followed.
 */
export const PLAN_TAIL_SHARE = 0.7;

/**
 * The inquiry times (ms from creation, increasing, all before expiry; the last look at expiry is not
 * in the list) that minimise the expected number of inquiries while the decided payments whose lag
 * exceeds `lagTargetMs` stay within the allowed tail. `undefined` while the sketch has too few
 * observations.
 *
 * An inquiry at t_k is sent if nothing decided the payment by t_(k−1): it costs P(D > t_(k−1)). A
 * decision in (t_(k−1), t_k − target) is answered late. Minimising calls + λ·late over the edges of
 * the histogram is a shortest path (O(edges²)); λ is bisected until the late share fits the budget.
 */
export function planInquiries(sketch: DecisionSketch, options: PlanOptions): number[] | undefined {
  if (sketch.samples < (options.minSamples ?? MIN_PLAN_SAMPLES)) return undefined;
  const horizon = options.expiresInMs;
  const target = options.lagTargetMs;
  if (!(horizon > 0) || !(target > 0)) return undefined;
  const survival = survivalAtEdges(sketch.long);

  // The grid: 0 (creation, not an inquiry), every edge before expiry, then expiry (the last look).
  const grid = [0];
  for (const edge of SKETCH_EDGES) {
    if (edge >= horizon) break;
    grid.push(edge);
  }
  grid.push(horizon);
  const n = grid.length;
  const alive = new Float64Array(n); // P(D > grid[i])
  const lateFrom = new Float64Array(n); // P(D ≤ grid[j] − target): decided too early for an inquiry at grid[j]
  for (let i = 0; i < n; i++) {
    alive[i] = survivalAt(survival, grid[i] as number);
    lateFrom[i] = 1 - survivalAt(survival, (grid[i] as number) - target);
  }
  const decidedByExpiry = 1 - (alive[n - 1] as number);
  if (decidedByExpiry <= 0) return undefined;
  const budget = (1 - options.lagQuantile) * (options.tailShare ?? PLAN_TAIL_SHARE) * decidedByExpiry;

  const callCost = Array.from(alive, (a) => Math.max(a, MIN_CALL_COST));
  const cost = new Float64Array(n);
  const late = new Float64Array(n);
  const next = new Int32Array(n);
  const solve = (lambda: number) => {
    cost[n - 1] = 0;
    late[n - 1] = 0;
    for (let i = n - 2; i >= 0; i--) {
      const decidedByI = 1 - (alive[i] as number);
      let best = Number.POSITIVE_INFINITY;
      let bestJ = n - 1;
      let bestLate = 0;
      for (let j = i + 1; j < n; j++) {
        const lateMass = Math.max(0, (lateFrom[j] as number) - decidedByI);
        const total = (callCost[i] as number) + lambda * lateMass + (cost[j] as number);
        if (total < best) {
          best = total;
          bestJ = j;
          bestLate = lateMass + (late[j] as number);
        }
      }
      cost[i] = best;
      next[i] = bestJ;
      late[i] = bestLate;
    }
    return late[0] as number;
  };

  // The smallest λ (log-bisected) whose plan keeps the late share within the budget.
  let low = 1e-3;
  let high = 1e9;
  if (solve(high) > budget) {
    // Even the densest plan misses the budget (the target is under the grid's step): use it anyway.
    const densest = pathFrom(next, grid);
    return densest.length <= MAX_PLAN_LENGTH ? densest : undefined;
  }
  for (let step = 0; step < 40; step++) {
    const mid = Math.sqrt(low * high);
    if (solve(mid) <= budget) high = mid;
    else low = mid;
  }
  solve(high);
  // The bisection's plan leaves part of the budget unspent (its steps are lumpy): spend it greedily,
  // by the move that saves the most calls per late share added: an inquiry one grid step later
  // (the next one is then sent less often), or one inquiry fewer.
  const path = [0];
  for (let i = next[0] as number; i < n - 1; i = next[i] as number) path.push(i);
  path.push(n - 1);
  const lateBetween = (i: number, j: number) =>
    Math.max(0, (lateFrom[j] as number) - (1 - (alive[i] as number)));
  let spent = 0;
  for (let k = 1; k < path.length; k++) spent += lateBetween(path[k - 1] as number, path[k] as number);
  for (let moves = 0; moves < 4 * n; moves++) {
    let best: { k: number; to: number | undefined; added: number; ratio: number } | undefined;
    for (let k = 1; k < path.length - 1; k++) {
      const [before, at, after] = [path[k - 1] as number, path[k] as number, path[k + 1] as number];
      const now = lateBetween(before, at) + lateBetween(at, after);
      // Removing it: the next inquiry is sent whenever this one would have been.
      const removed = lateBetween(before, after) - now;
      const candidates: [number | undefined, number, number][] = [[undefined, removed, alive[at] as number]];
      if (at + 1 < after) {
        const later = lateBetween(before, at + 1) + lateBetween(at + 1, after) - now;
        candidates.push([at + 1, later, (alive[at] as number) - (alive[at + 1] as number)]);
      }
      for (const [to, added, saved] of candidates) {
        if (saved <= 0 || spent + added > budget) continue;
        const ratio = added / saved;
        if (!best || ratio < best.ratio) best = { k, to, added, ratio };
      }
    }
    if (!best) break;
    if (best.to === undefined) path.splice(best.k, 1);
    else path[best.k] = best.to;
    spent += best.added;
  }
  const plan = path.slice(1, -1).map((i) => grid[i] as number);
  // A plan that long (hours of dense polling) is not one a lifecycle takes: the fixed schedule is.
  return plan.length <= MAX_PLAN_LENGTH ? plan : undefined;
}

function pathFrom(next: Int32Array, grid: number[]): number[] {
  const times: number[] = [];
  for (let i = next[0] as number; i < grid.length - 1; i = next[i] as number) times.push(grid[i] as number);
  return times;
}

/** Whether a value is a plan a lifecycle may take: increasing whole ms, at most {@link MAX_PLAN_LENGTH}. */
export function isPlan(value: unknown): value is readonly number[] {
  return (
    Array.isArray(value) &&
    value.length <= MAX_PLAN_LENGTH &&
    value.every((at, i) => Number.isInteger(at) && at >= 0 && (i === 0 || at > (value[i - 1] as number)))
  );
}

/**
 * The next planned inquiry after `now` (epoch ms) for a payment created at `createdAt`, or
 * `undefined` when the plan has none left (the last look at expiry is next).
 */
export function nextPlannedInquiry(
  plan: readonly number[],
  createdAt: number,
  now: number,
): number | undefined {
  for (const offset of plan) {
    const at = createdAt + offset;
    if (at > now) return at;
  }
  return undefined;
}
