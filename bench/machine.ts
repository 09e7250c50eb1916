import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { EngineClock, PaymentEngine, TrackInput } from '../src/index.js';

/** One line naming the machine a figure was measured on; every bench prints it first. */
export function machineLine(): string {
  const cpu = cpus();
  return `machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}/${process.arch}`;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/**
 * The node arguments that run a sibling script of this bench: its compiled `.js` when the bench
 * itself runs compiled (`npm run bench` runs what users run: tsc output, without tsx's per-function
 * naming), its `.ts` through tsx otherwise.
 */
export function scriptArgs(relative: string, base: string): string[] {
  const compiled = base.endsWith('.js');
  const path = fileURLToPath(new URL(relative.replace(/\.ts$/, compiled ? '.js' : '.ts'), base));
  return compiled ? [path] : ['--import', 'tsx', path];
}

/**
 * Tracks `count` payments 500 at a time, as a service's concurrent requests would: one at a time,
 * each waits for its insert to commit (a turn of a busy event loop), and tracking alone would take
 * minutes.
 */
export async function trackInBatches(
  engine: Pick<PaymentEngine, 'track'>,
  count: number,
  input: (i: number) => TrackInput,
): Promise<void> {
  for (let first = 0; first < count; first += 500) {
    const batch: Promise<unknown>[] = [];
    for (let i = first; i < Math.min(count, first + 500); i++) batch.push(engine.track(input(i)));
    await Promise.all(batch);
  }
}

/**
 * Wraps a clock to report how late each wait ends: `record(lateMs, dueMs)` once per wait, with
 * `performance.now()` times. A zero-delay timer set while a timer's callback runs continues that
 * wait (a sleeping lifecycle woken at its deadline re-arms its own timer at 0 ms, and only that one
 * sends the inquiry): it is measured from the first timer's deadline, and the first is not counted.
 */
export function latenessClock(
  base: EngineClock,
  record: (lateMs: number, dueMs: number) => void,
): EngineClock {
  let firing: { due: number; continued: boolean } | undefined;
  return {
    now: base.now,
    setTimeout(fn, ms) {
      const continues = ms <= 0 && firing !== undefined;
      const due = continues && firing ? firing.due : performance.now() + ms;
      if (continues && firing) firing.continued = true;
      return base.setTimeout(() => {
        const outer = firing;
        const current = { due, continued: false };
        firing = current;
        try {
          fn();
        } finally {
          firing = outer;
        }
        if (!current.continued) record(performance.now() - due, due);
      }, ms);
    },
    clearTimeout: base.clearTimeout,
  };
}
