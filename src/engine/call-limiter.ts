import type { EngineClock } from './clock.js';

/**
 * Admission control for Alipay+ calls: at most `limit` in flight, the rest wait in order. Without
 * it, an overloaded engine signs requests that then time out in the connection queue — RSA work
 * spent for nothing, and fewer answers per second exactly when they matter.
 */
export class CallLimiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  /** Called when a slot frees up and no call is waiting for it. */
  onRoom: (() => void) | undefined;

  constructor(private readonly limit: number) {}

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** A call started now would be sent at once. */
  get hasRoom(): boolean {
    return this.active < this.limit && this.waiting.length === 0;
  }

  /** Resolves true when a slot is taken, false if `signal` aborted first (no slot is held then). */
  acquire(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        this.active++;
        resolve(true);
      };
      const onAbort = () => {
        const at = this.waiting.indexOf(grant);
        if (at >= 0) this.waiting.splice(at, 1);
        resolve(false);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(grant);
    });
  }

  release(): void {
    this.active--;
    const next = this.waiting.shift();
    if (next) next();
    else this.onRoom?.();
  }

  /** Runs `call` in a slot; `aborted` is returned if the signal fires before a slot is free. */
  async run<T>(signal: AbortSignal | undefined, call: () => Promise<T>, aborted: () => T): Promise<T> {
    if (!(await this.acquire(signal))) return aborted();
    try {
      return await call();
    } finally {
      this.release();
    }
  }
}

/**
 * The lifecycles' clock, gated by the limiter: a timer that comes due while every call slot is taken
 * (or calls are already queued) waits, in due order, until a slot frees, and fires then. An
 * overloaded engine thus keeps its waiting payments in their cheap timer states, instead of moving
 * each into a calling state that holds an invoked actor (≈ 3.8 KiB) while its call waits for a slot.
 * Cancelling a timer that waits here drops it (a notification settled the payment meanwhile).
 */
export function admittingClock(base: EngineClock, limiter: CallLimiter): EngineClock {
  /** Due timers, oldest first, by the handle XState holds. */
  const due = new Map<unknown, () => void>();
  let draining = false;
  const drain = () => {
    draining = false;
    for (const [handle, fn] of due) {
      if (!limiter.hasRoom) return;
      due.delete(handle);
      fn(); // an inquiry takes its slot synchronously: the next check sees it
    }
  };
  const scheduleDrain = () => {
    if (draining || due.size === 0) return;
    draining = true;
    queueMicrotask(drain);
  };
  limiter.onRoom = scheduleDrain;
  return {
    now: () => base.now(),
    setTimeout(fn, ms) {
      let handle: unknown;
      const fire = () => {
        if (due.size === 0 && limiter.hasRoom) return fn();
        due.set(handle, fn);
        if (limiter.hasRoom) scheduleDrain();
      };
      handle = base.setTimeout(fire, ms);
      return handle;
    },
    clearTimeout(handle) {
      if (!due.delete(handle)) base.clearTimeout(handle);
    },
  };
}
