/**
 * Admission control for Alipay+ calls: at most `limit` in flight, the rest wait in order. Without
 * it, an overloaded engine signs requests that then time out in the connection queue — RSA work
 * spent for nothing, and fewer answers per second exactly when they matter.
 */
export class CallLimiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
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
    this.waiting.shift()?.();
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
