/**
 * The engine's time: `now()` stamps events and call results, and `setTimeout`/`clearTimeout` drive
 * XState's delayed transitions (it is passed to `createActor` as its clock).
 */
export interface EngineClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's setTimeout overflows above 2^31−1 ms (≈24.8 days) and then fires after 1 ms. */
const MAX_TIMEOUT = 2 ** 31 - 1;

/** What the clocks' `setTimeout` returns: Node's own timer, or a chunked one for a wait beyond it. */
type TimerHandle = NodeJS.Timeout | { handle: NodeJS.Timeout };

/**
 * A timer that never fires early: a wait within Node's range is one plain timer (no wrapper object
 * or closure: thousands of lifecycles each hold one), a longer one (a far cancel window) waits in
 * chunks of at most MAX_TIMEOUT. Timers are unref'ed: pending lifecycles alone do not keep a process
 * alive.
 */
function unrefTimer(realMs: number, fn: () => void): TimerHandle {
  if (realMs <= MAX_TIMEOUT) return setTimeout(fn, Math.max(0, realMs)).unref();
  const box = { handle: undefined as unknown as NodeJS.Timeout };
  const arm = (remaining: number) => {
    const step = Math.min(remaining, MAX_TIMEOUT);
    box.handle = setTimeout(() => (remaining > step ? arm(remaining - step) : fn()), step).unref();
  };
  arm(realMs);
  return box;
}

function clearTimer(handle: unknown): void {
  const timer = handle as TimerHandle | undefined;
  clearTimeout(timer && 'handle' in timer ? timer.handle : timer);
}

/** Real time. */
export const systemClock: EngineClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => unrefTimer(ms, fn),
  clearTimeout: clearTimer,
};

/**
 * Time that runs `factor` times faster than real time: simulated `start` (epoch ms) at the real
 * moment `realStart` (epoch ms, default now). Processes given the same three numbers share one
 * clock. For demos and tests against a simulator on the same clock: at 60, a 1-minute expiry passes
 * in a second.
 */
export function scaledClock(factor: number, start = Date.now(), realStart = Date.now()): EngineClock {
  return {
    now: () => Math.floor(start + (Date.now() - realStart) * factor),
    setTimeout: (fn, ms) => unrefTimer(ms / factor, fn),
    clearTimeout: clearTimer,
  };
}
