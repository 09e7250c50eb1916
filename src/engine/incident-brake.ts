import type { CallApi } from './call-limiter.js';

/** The incident brake's settings (the engine's `brake` option). */
export interface BrakeOptions {
  /** The window over which answers are counted (engine clock ms). Default 10,000. */
  windowMs?: number;
  /** Calls in the window before the brake may engage. Default 20. */
  minCalls?: number;
  /** Share of overload answers in the window that engages it. Default 0.5. */
  engageRatio?: number;
  /** Share at or below which it releases (with at least `minCalls / 4` calls seen). Default 0.2. */
  releaseRatio?: number;
  /** Routine polls per second (engine clock) while it is engaged. Default 5. */
  pollsPerSecond?: number;
  /**
   * The least pace of all calls while it is engaged (calls per second): the probes that find out
   * when Alipay+ answers again. Default 1.
   */
  minCallsPerSecond?: number;
}

/** While engaged, calls go at this multiple of the rate Alipay+ answered them in the last second. */
const HEADROOM = 1.2;
/** A second with answers and no overload doubles the pace: back to full speed in seconds. */
const GROWTH = 2;
/** Released only while the engine sends less than this share of its pace (the pace binds no longer). */
const SLACK = 0.8;

/** What one call came back as, for the brake. */
export type CallSignal = 'ok' | 'overload' | 'other';

/** A call's outcome, as much of it as the brake reads. */
export type CallOutcomeLike =
  | { kind: 'no-result'; reason: string; httpStatus?: number }
  | { kind: 'answer'; result: { resultCode: string; resultStatus?: string } };

/**
 * Overload signs from Alipay+: REQUEST_TRAFFIC_EXCEED_LIMIT, a 5xx, a timeout, or a connection that
 * failed. An answer of any other kind is Alipay+ answering (`ok`); a refused or aborted call says
 * nothing about it (`other`).
 */
export function callSignal(outcome: CallOutcomeLike): CallSignal {
  if (outcome.kind === 'answer')
    return outcome.result.resultCode === 'REQUEST_TRAFFIC_EXCEED_LIMIT' ? 'overload' : 'ok';
  if (outcome.reason === 'timeout' || outcome.reason === 'network') return 'overload';
  if (outcome.reason === 'http-status') return (outcome.httpStatus ?? 500) >= 500 ? 'overload' : 'ok';
  return 'other';
}

/** The brake: see {@link createIncidentBrake}. */
export interface IncidentBrake {
  readonly engaged: boolean;
  /** Counts one call's outcome; may engage or release the brake. */
  observe(api: CallApi, signal: CallSignal): void;
  /** Routine polls per second while engaged. */
  readonly pollsPerSecond: number;
  /** Every call's pace while engaged (calls per second); `undefined` while released. */
  readonly callsPerSecond: number | undefined;
  /** The window's counts, for the log line of a change. */
  readonly window: { calls: number; overload: number };
}

const SLOTS = 10;

/**
 * The incident brake. It counts Alipay+'s answers over a sliding window (ten slots of a tenth of it).
 * When overload answers (REQUEST_TRAFFIC_EXCEED_LIMIT, 5xx, timeouts, failed connections) reach
 * `engageRatio` of at least `minCalls`, it engages:
 * - every call is paced at about the rate Alipay+ answered in the last slot (a fifth more, to find
 *   out when it can take more; at least `minCallsPerSecond`), doubled after each slot without an
 *   overload answer; waiting calls still go most urgent first, so the pace holds back polls, not
 *   cancels;
 * - routine polls are held to `pollsPerSecond` as well.
 * Sending past what Alipay+ answers only buys refusals, and each refused cancel waits longer for its
 * next try. It releases on its own once overload answers fall to `releaseRatio` of the window while
 * the engine sends less than its pace allows. `onChange` is called once per change, never per call;
 * `onPace` with each new pace (`undefined` on release).
 */
export function createIncidentBrake(
  now: () => number,
  options: BrakeOptions,
  onChange: (engaged: boolean, window: { calls: number; overload: number }) => void,
  onPace?: (callsPerSecond: number | undefined) => void,
): IncidentBrake {
  const windowMs = options.windowMs ?? 10_000;
  const minCalls = options.minCalls ?? 20;
  const engageRatio = options.engageRatio ?? 0.5;
  const releaseRatio = options.releaseRatio ?? 0.2;
  const pollsPerSecond = options.pollsPerSecond ?? 5;
  const minPace = options.minCallsPerSecond ?? 1;
  const slotMs = windowMs / SLOTS;
  const calls = new Array<number>(SLOTS).fill(0);
  const overloads = new Array<number>(SLOTS).fill(0);
  /** The slot number (time / slotMs) last written. */
  let last = Math.floor(now() / slotMs);
  let engaged = false;
  let pace: number | undefined;

  function setPace(next: number | undefined): void {
    if (next === pace) return;
    pace = next;
    onPace?.(next);
  }

  /** A slot has ended while engaged: the pace follows what Alipay+ answered in it. */
  function slotEnded(index: number): void {
    const c = calls[index] as number;
    const o = overloads[index] as number;
    if (c === 0 || pace === undefined) return;
    if (o === 0) setPace(Math.min(pace * GROWTH, 1e6));
    else setPace(Math.max(minPace, ((c - o) * 1_000 * HEADROOM) / slotMs));
  }

  function advance(at: number): number {
    const slot = Math.floor(at / slotMs);
    if (slot > last && engaged) slotEnded(last % SLOTS);
    // Slots passed since the last call are emptied (all of them after a quiet window).
    for (let s = last + 1; s <= slot && s <= last + SLOTS; s++) {
      calls[s % SLOTS] = 0;
      overloads[s % SLOTS] = 0;
    }
    if (slot > last) last = slot;
    return slot % SLOTS;
  }

  function totals(): { calls: number; overload: number } {
    let c = 0;
    let o = 0;
    for (let i = 0; i < SLOTS; i++) {
      c += calls[i] as number;
      o += overloads[i] as number;
    }
    return { calls: c, overload: o };
  }

  return {
    get engaged() {
      return engaged;
    },
    pollsPerSecond,
    get callsPerSecond() {
      return pace;
    },
    get window() {
      advance(now());
      return totals();
    },
    observe(_api, signal) {
      if (signal === 'other') return;
      const index = advance(now());
      calls[index] = (calls[index] as number) + 1;
      if (signal === 'overload') overloads[index] = (overloads[index] as number) + 1;
      const window = totals();
      const ratio = window.calls === 0 ? 0 : window.overload / window.calls;
      if (!engaged && window.calls >= minCalls && ratio >= engageRatio) {
        engaged = true;
        onChange(true, window);
        setPace(Math.max(minPace, ((window.calls - window.overload) * 1_000 * HEADROOM) / windowMs));
      } else if (
        engaged &&
        window.calls >= Math.max(1, minCalls / 4) &&
        ratio <= releaseRatio &&
        (window.calls * 1_000) / windowMs < SLACK * (pace ?? 0)
      ) {
        engaged = false;
        setPace(undefined);
        onChange(false, window);
      }
    },
  };
}
