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

/**
 * A timer that waits in chunks of at most MAX_TIMEOUT, so that a long wait (a far cancel window)
 * never fires early. Timers are unref'ed: pending lifecycles alone do not keep a process alive.
 */
function chunkedTimer(realMs: number, fn: () => void): { handle: NodeJS.Timeout } {
  const box = { handle: undefined as unknown as NodeJS.Timeout };
  const arm = (remaining: number) => {
    const step = Math.min(Math.max(0, remaining), MAX_TIMEOUT);
    box.handle = setTimeout(() => (remaining > step ? arm(remaining - step) : fn()), step);
    box.handle.unref?.();
  };
  arm(realMs);
  return box;
}

/** Real time. */
export const systemClock: EngineClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => chunkedTimer(ms, fn),
  clearTimeout: (handle) => clearTimeout((handle as { handle: NodeJS.Timeout }).handle),
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
    setTimeout: (fn, ms) => chunkedTimer(ms / factor, fn),
    clearTimeout: (handle) => clearTimeout((handle as { handle: NodeJS.Timeout }).handle),
  };
}
