import { MinHeap } from '../util/min-heap.js';
import type { EngineClock } from './clock.js';

/** An Alipay+ API the engine calls. */
export type CallApi = 'pay' | 'inquiryPayment' | 'cancelPayment' | 'refund';

/**
 * How urgent a call is, most urgent first (see docs/architecture.md, "Admission"):
 * - `cancel`: its refusal (or its absence) can charge a customer for goods never handed over;
 * - `deadline`: the last look at expiry, and a pay still before its expiry: each is worth something
 *   only now;
 * - `refund`: a refund, or the check after the cancel window that may lead to one: money owed back,
 *   but its deadline is days away;
 * - `poll`: a routine inquiry, earliest deadline (the payment's expiry) first. One still waiting at
 *   its deadline is the payment's last look now (its answer decides, or the cancel follows), so it
 *   moves up, behind the cancels and the other last looks.
 */
export type CallUrgency = 'cancel' | 'deadline' | 'refund' | 'poll';

const RANK: Record<CallUrgency, number> = { cancel: 0, deadline: 1, refund: 2, poll: 3 };

/** What a call asks the limiter for. */
export interface CallAdmission {
  api: CallApi;
  urgency: CallUrgency;
  /** For a poll: the payment's expiry (engine clock ms). Earliest first among polls; past it, urgent. */
  deadline?: number;
  /**
   * When to stop waiting (engine clock ms): a call still waiting then is told `late` and not sent.
   * An inquiry gives up a little after the payment's expiry: sent later, it would only hold up the
   * cancel that follows without it.
   */
  giveUpAt?: number;
}

/** What a waiting call is told: its turn, or why it has none. */
export type Verdict = 'go' | 'aborted' | 'late';

/** A cap on one API's calls per second (engine clock): a token bucket. */
export interface RateCap {
  /** Calls per second, sustained. */
  perSecond: number;
  /** Calls that may go out at once after a quiet spell. Default: one second's worth (at least 1). */
  burst?: number;
}

/** What a waiting call is told when it is its turn (or gives up). */
type Grant = (verdict: Verdict) => void;

interface Waiter {
  at: number;
  seq: number;
  api: CallApi;
  grant: Grant;
  /** Taken out of the queue (aborted); a heap entry is dropped when it surfaces. */
  gone: boolean;
}

class TokenBucket {
  private tokens: number;
  private refilledAt: number;
  private burst: number;

  constructor(
    private cap: RateCap,
    now: number,
  ) {
    this.burst = Math.max(1, cap.burst ?? Math.ceil(cap.perSecond));
    this.tokens = this.burst;
    this.refilledAt = now;
  }

  /** A new rate from now on (the tokens already there stay, up to the new burst). */
  setRate(perSecond: number, now: number): void {
    this.refill(now);
    this.cap = { perSecond };
    this.burst = Math.max(1, Math.ceil(perSecond / 10));
    this.tokens = Math.min(this.tokens, this.burst);
  }

  /** Whether a token is there now. */
  has(now: number): boolean {
    this.refill(now);
    return this.tokens >= 1;
  }

  /** Takes a token (check {@link has} first). */
  take(now: number): void {
    this.refill(now);
    this.tokens -= 1;
  }

  /** How long (ms) until the next token. */
  waitMs(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1_000) / this.cap.perSecond);
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.refilledAt);
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.cap.perSecond) / 1_000);
    this.refilledAt = now;
  }
}

/** What {@link CallLimiter} is made with. */
export interface CallLimiterOptions {
  /** Calls in flight at most. */
  limit: number;
  /** Its time: deadlines and rate caps are on it. */
  clock: Pick<EngineClock, 'now' | 'setTimeout' | 'clearTimeout'>;
  /** Per-API rate caps; an API without one is limited by `limit` only. */
  rateCaps?: Partial<Record<CallApi, RateCap>>;
  /** `by-urgency` (the default) or `first-come`: see {@link Admission}. */
  admission?: Admission;
}

/**
 * How waiting calls are ordered: `by-urgency` (cancels, then last looks and pays, then refunds, then
 * routine polls by deadline), or `first-come`, in order of arrival whatever they are: the engine's
 * order before admission by urgency, kept to measure the difference (bench/overload.ts).
 */
export type Admission = 'by-urgency' | 'first-come';

/**
 * Admission control for Alipay+ calls: at most `limit` in flight; the others wait, unsigned, and are
 * admitted by urgency, not by arrival (cancels first, routine polls last, earliest deadline first).
 * Without it, an overloaded engine signs requests that then time out in the connection queue (RSA
 * work spent for nothing, and fewer answers per second exactly when they matter), and a cancel waits
 * behind polls of payments that have minutes left. An API with a rate cap takes a token per call as
 * well; a call whose API has none left waits, and the next class may go first.
 */
export class CallLimiter {
  private active = 0;
  private seq = 0;
  /** FIFO queues of the cancel, deadline and refund classes; polls in a heap by deadline. */
  private readonly fifo: [Waiter[], Waiter[], Waiter[]] = [[], [], []];
  private readonly polls = new MinHeap<Waiter>();
  private waiting = 0;
  private readonly buckets = new Map<CallApi, TokenBucket>();
  /** Routine polls' own pace while the incident brake is engaged. */
  private pollPace: TokenBucket | undefined;
  /** Every call's pace while the incident brake is engaged: about the rate Alipay+ answers. */
  private callPace: TokenBucket | undefined;
  private tokenTimer: unknown;
  private readonly limit: number;
  private readonly clock: CallLimiterOptions['clock'];
  /** Every call waits in one queue, in order of arrival. */
  readonly firstCome: boolean;
  /** Called when a slot frees up and no call is waiting for it. */
  onRoom: (() => void) | undefined;

  constructor(options: CallLimiterOptions) {
    this.limit = options.limit;
    this.clock = options.clock;
    this.firstCome = options.admission === 'first-come';
    for (const [api, cap] of Object.entries(options.rateCaps ?? {}) as [CallApi, RateCap][])
      this.buckets.set(api, new TokenBucket(cap, this.clock.now()));
  }

  get inFlight(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting;
  }

  /** A call started now would be sent at once (rate caps aside). */
  get hasRoom(): boolean {
    return this.active < this.limit && this.waiting === 0;
  }

  /**
   * Whether a call of this urgency, started now, would not wait behind others: a slot is free and,
   * for a routine poll, nothing waits at all (a more urgent call only waits for its API's tokens).
   */
  roomFor(urgency: CallUrgency): boolean {
    return urgency === 'poll' || this.firstCome ? this.hasRoom : this.active < this.limit;
  }

  /**
   * Paces routine polls at `perSecond` (the incident brake engaged), or lifts the pace (`undefined`).
   * Cancels, last looks, pays and refunds are not affected.
   */
  pacePolls(perSecond: number | undefined): void {
    this.pollPace =
      perSecond === undefined ? undefined : new TokenBucket({ perSecond, burst: 1 }, this.clock.now());
    this.dispatch();
  }

  /**
   * Paces every call at `perSecond` (the incident brake's estimate of what Alipay+ answers), or lifts
   * the pace (`undefined`). Waiting calls still go most urgent first: a cancel waits for the pace,
   * never for the polls.
   */
  paceCalls(perSecond: number | undefined): void {
    if (perSecond === undefined) this.callPace = undefined;
    else if (this.callPace) this.callPace.setRate(perSecond, this.clock.now());
    else
      this.callPace = new TokenBucket(
        { perSecond, burst: Math.max(1, Math.ceil(perSecond / 10)) },
        this.clock.now(),
      );
    this.dispatch();
  }

  /**
   * Resolves `go` when a slot (and its API's token) is taken, `aborted` if `signal` fired first (no
   * slot is held then).
   */
  acquire(admission: CallAdmission, signal?: AbortSignal): Promise<Verdict> {
    if (signal?.aborted) return Promise.resolve('aborted');
    const now = this.clock.now();
    if (admission.giveUpAt !== undefined && now >= admission.giveUpAt) return Promise.resolve('late');
    if (
      this.active < this.limit &&
      this.waiting === 0 &&
      this.takeToken(admission.api, now, admission.urgency === 'poll')
    ) {
      this.active++;
      return Promise.resolve('go');
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        at: admission.urgency === 'poll' ? (admission.deadline ?? Number.POSITIVE_INFINITY) : 0,
        seq: this.seq++,
        api: admission.api,
        gone: false,
        grant: (verdict) => {
          signal?.removeEventListener('abort', onAbort);
          if (lateTimer !== undefined) this.clock.clearTimeout(lateTimer);
          resolve(verdict);
        },
      };
      const giveUp = (verdict: 'aborted' | 'late') => {
        if (waiter.gone) return;
        waiter.gone = true;
        this.waiting--;
        waiter.grant(verdict);
        this.dispatch();
      };
      const onAbort = () => giveUp('aborted');
      signal?.addEventListener('abort', onAbort, { once: true });
      const lateTimer =
        admission.giveUpAt === undefined
          ? undefined
          : this.clock.setTimeout(() => giveUp('late'), admission.giveUpAt - now);
      if (this.firstCome) this.fifo[0].push(waiter);
      else if (admission.urgency === 'poll') this.polls.push(waiter);
      else this.fifo[RANK[admission.urgency] as 0 | 1 | 2].push(waiter);
      this.waiting++;
      this.dispatch();
    });
  }

  release(): void {
    this.active--;
    this.dispatch();
    if (this.active < this.limit) this.onRoom?.();
  }

  /**
   * Runs `call` in a slot; `notRun(verdict)` is returned instead if the signal fires first
   * (`aborted`) or the call is still waiting at its `giveUpAt` (`late`).
   */
  async run<T>(
    admission: CallAdmission,
    signal: AbortSignal | undefined,
    call: () => Promise<T>,
    notRun: (verdict: 'aborted' | 'late') => T,
  ): Promise<T> {
    const verdict = await this.acquire(admission, signal);
    if (verdict !== 'go') return notRun(verdict);
    try {
      return await call();
    } finally {
      this.release();
    }
  }

  /** Grants free slots to the most urgent waiters whose API has a token. */
  private dispatch(): void {
    while (this.active < this.limit && this.waiting > 0) {
      const now = this.clock.now();
      const next = this.nextAdmissible(now);
      if (!next) {
        this.wakeForTokens(now);
        return;
      }
      this.waiting--;
      next.gone = true;
      this.active++;
      next.grant('go');
    }
  }

  /**
   * The most urgent waiter that may go now (taking its token), or none: cancels, last looks and pays,
   * polls whose deadline has come (last looks now), refunds, then the other polls.
   */
  private nextAdmissible(now: number): Waiter | undefined {
    const [cancels, deadlines, refunds] = this.fifo;
    const poll = this.pollHead();
    return (
      this.headOf(cancels, now) ??
      this.headOf(deadlines, now) ??
      (poll && now >= poll.at ? this.pollIfToken(now) : undefined) ??
      this.headOf(refunds, now) ??
      this.pollIfToken(now)
    );
  }

  private headOf(queue: Waiter[], now: number): Waiter | undefined {
    while (queue.length > 0 && (queue[0] as Waiter).gone) queue.shift();
    const head = queue[0];
    // First come: a routine poll in the one queue is still paced while the brake is engaged.
    return head && this.takeToken(head.api, now, this.firstCome && head.at > 0) ? queue.shift() : undefined;
  }

  private pollHead(): Waiter | undefined {
    let head = this.polls.peek();
    while (head?.gone) {
      this.polls.pop();
      head = this.polls.peek();
    }
    return head;
  }

  private pollIfToken(now: number): Waiter | undefined {
    const head = this.pollHead();
    return head && this.takeToken(head.api, now, true) ? this.polls.pop() : undefined;
  }

  /** Takes the API's token (and a poll's pace token, while paced) if all are there; else none. */
  private takeToken(api: CallApi, now: number, poll = false): boolean {
    const bucket = this.buckets.get(api);
    const pace = poll ? this.pollPace : undefined;
    const all = this.callPace;
    if ((bucket && !bucket.has(now)) || (pace && !pace.has(now)) || (all && !all.has(now))) return false;
    bucket?.take(now);
    pace?.take(now);
    all?.take(now);
    return true;
  }

  /** Every waiter's API is out of tokens: look again when the first token comes. */
  private wakeForTokens(now: number): void {
    if (this.tokenTimer !== undefined) return;
    let soonest = Number.POSITIVE_INFINITY;
    for (const bucket of this.buckets.values()) soonest = Math.min(soonest, bucket.waitMs(now));
    if (this.pollPace) soonest = Math.min(soonest, this.pollPace.waitMs(now));
    if (this.callPace)
      soonest = Math.max(soonest === Number.POSITIVE_INFINITY ? 0 : soonest, this.callPace.waitMs(now));
    if (!Number.isFinite(soonest)) return;
    this.tokenTimer = this.clock.setTimeout(
      () => {
        this.tokenTimer = undefined;
        this.dispatch();
      },
      Math.max(1, soonest),
    );
  }
}

/** Who set a timer: asked when it fires how urgent the call it starts is. */
export interface TimerOwner {
  /** The urgency (and, for a routine poll, the deadline) of what the timer starts now. */
  timerAdmission(): { urgency: CallUrgency; deadline?: number };
}

/** The actors' clock: a timer may name its owner, so that it waits for a slot in its turn. */
export interface ActorClock extends EngineClock {
  setTimeout(fn: () => void, ms: number, owner?: TimerOwner): unknown;
}

/** Orders waiting timers: by urgency, then a poll's deadline; equal keys keep their order. */
const RANK_SPAN = 2 ** 50; // above any epoch-ms deadline
/** The smallest key of a routine poll's timer. */
const POLL_KEY = RANK.poll * RANK_SPAN;
function timerKey(admission: { urgency: CallUrgency; deadline?: number }): number {
  const rank = RANK[admission.urgency] * RANK_SPAN;
  return admission.urgency === 'poll'
    ? rank + Math.min(admission.deadline ?? RANK_SPAN - 1, RANK_SPAN - 1)
    : rank;
}

/**
 * The lifecycles' clock, gated by the limiter: a lifecycle's timer that comes due while every call
 * slot is taken (or calls are queued) waits until a slot frees, and the waiting ones fire by urgency:
 * a cancel's retry first, then the last look at expiry, then refund work, then routine polls,
 * earliest expiry first. An overloaded engine thus keeps its waiting payments in their cheap timer
 * states (a sleeper stays a snapshot), instead of moving each into a calling state that holds an
 * invoked actor (≈ 3.8 KiB) while its call waits for a slot; and a restart with thousands overdue
 * restores them as slots free, not all inside start(). Cancelling a timer that waits here drops it (a
 * notification settled the payment meanwhile).
 */
export function admittingClock(base: EngineClock, limiter: CallLimiter): ActorClock {
  /**
   * Due timers, most urgent first (the key holds the urgency: see timerKey). Kept small, since an
   * overloaded engine holds one per waiting payment: a timer cleared meanwhile is the one whose
   * entry is no longer in `waiting`, and is skipped when it surfaces.
   */
  const due = new MinHeap<{ at: number; seq: number; handle: unknown; fn: () => void }>();
  const waiting = new Map<unknown, { at: number }>();
  let seq = 0;
  let draining = false;
  // A routine poll's timer still waiting at its deadline leads to the last look now: no longer a poll.
  const roomForKey = (at: number) =>
    limiter.roomFor(at >= POLL_KEY && at - POLL_KEY > base.now() ? 'poll' : 'cancel');
  const drain = () => {
    draining = false;
    for (let next = due.peek(); next; next = due.peek()) {
      const live = waiting.get(next.handle) === next;
      if (live && !roomForKey(next.at)) return;
      due.pop();
      if (!live) continue;
      waiting.delete(next.handle);
      next.fn(); // a call takes its slot synchronously: the next check sees it
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
    setTimeout(fn, ms, owner) {
      if (!owner) return base.setTimeout(fn, ms);
      let handle: unknown;
      const fire = () => {
        // First come: every waiting timer has the same key, so they fire in the order they came due.
        const at = limiter.firstCome ? 0 : timerKey(owner.timerAdmission());
        // At once if it would not wait, and no timer as urgent or more waits before it.
        const first = due.peek();
        if (roomForKey(at) && (!first || first.at > at)) return fn();
        const entry = { at, seq: seq++, handle, fn };
        due.push(entry);
        waiting.set(handle, entry);
        if (roomForKey(at)) scheduleDrain();
      };
      handle = base.setTimeout(fire, ms);
      return handle;
    },
    clearTimeout(handle) {
      if (!waiting.delete(handle)) base.clearTimeout(handle);
    },
  };
}
