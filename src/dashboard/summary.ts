import { FINAL_STATUSES, type FinalStatus } from '../../machines/outcome.js';
import type { LifecycleRecord, LifecycleStore } from '../stores/store.js';

const FINAL = new Set<string>(FINAL_STATUSES);

/** One reading of the store's state counts. */
export interface CountSample {
  /** Epoch ms (the dashboard's own clock, not the engine's). */
  at: number;
  inFlight: number;
  outcomes: Record<FinalStatus, number>;
}

/** Lifecycles not final, and final ones by status, from a `stateCounts()` answer. */
export function splitCounts(counts: Record<string, number>): Omit<CountSample, 'at'> {
  const outcomes = Object.fromEntries(FINAL_STATUSES.map((s) => [s, 0])) as Record<FinalStatus, number>;
  let inFlight = 0;
  for (const [key, n] of Object.entries(counts)) {
    if (FINAL.has(key)) outcomes[key as FinalStatus] += n;
    else inFlight += n;
  }
  return { inFlight, outcomes };
}

/**
 * The last `capacity` samples, oldest first. A fixed array written round, so an hour of samples
 * costs the same memory on the first day and the hundredth.
 */
export class SampleRing {
  private readonly slots: (CountSample | undefined)[];
  private next = 0;

  constructor(readonly capacity: number) {
    this.slots = new Array(capacity);
  }

  push(sample: CountSample): void {
    this.slots[this.next] = sample;
    this.next = (this.next + 1) % this.capacity;
  }

  toArray(): CountSample[] {
    const older = this.slots.slice(this.next);
    const newer = this.slots.slice(0, this.next);
    return [...older, ...newer].filter((s): s is CountSample => s !== undefined);
  }
}

/** The series as the page's charts take them: one array of times and one array per line. */
export interface CountSeries {
  /** Epoch seconds. */
  t: number[];
  inFlight: number[];
  outcomes: Record<FinalStatus, number[]>;
}

export function seriesOf(samples: readonly CountSample[]): CountSeries {
  const outcomes = Object.fromEntries(FINAL_STATUSES.map((s) => [s, [] as number[]])) as Record<
    FinalStatus,
    number[]
  >;
  for (const sample of samples) for (const s of FINAL_STATUSES) outcomes[s].push(sample.outcomes[s]);
  return {
    t: samples.map((s) => s.at / 1_000),
    inFlight: samples.map((s) => s.inFlight),
    outcomes,
  };
}

/** Upper bounds (ms) of the decision-lag buckets; the last bucket takes everything above. */
export const LAG_BOUNDS_MS = [
  250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 900_000, 3_600_000,
] as const;

export interface LagBucket {
  /** Inclusive upper bound in ms; null for the last bucket, which has none. */
  le: number | null;
  count: number;
}

/** How long after the wallet's decision each outcome was reached, over the records read. */
export interface LagDistribution {
  /** Final records read (the newest ones, up to the limit the server reads). */
  finals: number;
  /** Of those, the ones whose outcome carries the wallet's paymentTime: only these have a lag. */
  known: number;
  buckets: LagBucket[];
  p50?: number;
  p99?: number;
}

/**
 * The lag of one final lifecycle: its outcome's decision time minus the wallet's `paymentTime`.
 * Undefined when the wallet never said when it decided (a failure, a cancel, an attention item).
 * Both times come from the same clock as the engine's, so a demo on a compressed clock measures
 * simulated time, as its report does.
 */
export function decisionLagMs(record: LifecycleRecord): number | undefined {
  const outcome = record.outcome;
  const paymentTime = outcome?.details.paymentTime;
  if (!record.final || !outcome || paymentTime === undefined) return undefined;
  const walletAt = Date.parse(paymentTime);
  if (Number.isNaN(walletAt)) return undefined;
  // A wallet clock a little ahead of ours would give a negative lag: it is no lag at all.
  return Math.max(0, outcome.decidedAt - walletAt);
}

function percentileOf(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)];
}

export function lagDistribution(records: readonly LifecycleRecord[]): LagDistribution {
  const lags: number[] = [];
  let finals = 0;
  for (const record of records) {
    if (!record.final) continue;
    finals += 1;
    const lag = decisionLagMs(record);
    if (lag !== undefined) lags.push(lag);
  }
  const buckets: LagBucket[] = [...LAG_BOUNDS_MS.map((le) => ({ le, count: 0 })), { le: null, count: 0 }];
  for (const lag of lags) {
    const index = LAG_BOUNDS_MS.findIndex((le) => lag <= le);
    const bucket = buckets[index < 0 ? buckets.length - 1 : index];
    if (bucket) bucket.count += 1;
  }
  lags.sort((a, b) => a - b);
  const distribution: LagDistribution = { finals, known: lags.length, buckets };
  const p50 = percentileOf(lags, 50);
  const p99 = percentileOf(lags, 99);
  if (p50 !== undefined) distribution.p50 = p50;
  if (p99 !== undefined) distribution.p99 = p99;
  return distribution;
}

/** Reads a store's counts every `intervalMs` into a ring of the last `windowMs`. */
export interface CountSampler {
  /** Takes one sample now (also called by the timer). */
  sample(): Promise<CountSample>;
  samples(): CountSample[];
  stop(): void;
}

export function startCountSampler(
  store: LifecycleStore,
  options: { intervalMs: number; windowMs: number; now: () => number; onError?: (error: unknown) => void },
): CountSampler {
  const ring = new SampleRing(Math.max(1, Math.ceil(options.windowMs / options.intervalMs)));
  let running: Promise<CountSample> | undefined;
  const sample = () => {
    // One read at a time: a slow store must not pile reads up behind the timer.
    running ??= store
      .stateCounts()
      .then((counts) => {
        const taken: CountSample = { at: options.now(), ...splitCounts(counts) };
        ring.push(taken);
        return taken;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer = setInterval(() => {
    sample().catch((error) => options.onError?.(error));
  }, options.intervalMs);
  timer.unref();
  return {
    sample,
    samples: () => ring.toArray(),
    stop: () => clearInterval(timer),
  };
}
