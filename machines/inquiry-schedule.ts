/**
 * When the next inquiry goes out: the fixed schedule, or the adaptive plan, under the same safety
 * rules. Pure; the machine's actions call these, so that the statechart stays the one place where
 * waits are decided. Also what a settled lifecycle tells the learner ({@link decisionObservation}).
 */
import { type DecisionObservation, nextPlannedInquiry } from './decision-model.js';
import type { LifecycleOutcome } from './outcome.js';
import { type ResolvedPolicy, retryWait, scheduleAt } from './policy.js';

/** What the schedule reads of a lifecycle's context. */
export interface ScheduleContext {
  /** Draws the jitter of a retry after REQUEST_TRAFFIC_EXCEED_LIMIT (the lifecycle always has one). */
  paymentRequestId?: string;
  createdAt: number;
  expiresAt: number;
  policy: ResolvedPolicy;
  /** Inquiries sent so far. */
  inquiries: number;
  /** The adaptive plan (ms from creation), once the lifecycle has one. */
  plan?: readonly number[];
}

/**
 * The first inquiry of a lifecycle created at `createdAt`: the plan's first time, else one fixed
 * step. Never after expiry (the last look is then the first look).
 */
export function firstInquiryAt(context: Omit<ScheduleContext, 'inquiries'>): number {
  const first = context.plan
    ? (nextPlannedInquiry(context.plan, context.createdAt, context.createdAt - 1) ?? context.expiresAt)
    : context.createdAt + scheduleAt(context.policy.inquiryScheduleMs, 0);
  return Math.min(first, context.expiresAt);
}

/**
 * The next inquiry after an answer (or a pay answer) at `now`.
 * - Fixed: `now` + the schedule's step for the inquiries made so far.
 * - Adaptive: the plan's next time after `now`; past the plan, expiry.
 * - REQUEST_TRAFFIC_EXCEED_LIMIT: the wait, but at least the fixed step, times `trafficLimitMultiplier`.
 * - Always clamped to expiry, so that the last look happens then, and never before `now`.
 */
export function nextInquiryAt(context: ScheduleContext, now: number, trafficLimited: boolean): number {
  const { policy } = context;
  const step = scheduleAt(policy.inquiryScheduleMs, context.inquiries);
  let wait: number;
  if (context.plan) {
    const planned = nextPlannedInquiry(context.plan, context.createdAt, now) ?? context.expiresAt;
    wait = trafficLimited ? Math.max(planned - now, step) * policy.trafficLimitMultiplier : planned - now;
  } else {
    wait = trafficLimited ? step * policy.trafficLimitMultiplier : step;
  }
  // Throttled, it is a retry: spread out, not in step with every payment throttled at once.
  if (trafficLimited)
    wait = retryWait(wait, policy, context.paymentRequestId ?? '', 'inquiry', context.inquiries);
  return Math.max(now, Math.min(now + wait, context.expiresAt));
}

/** What {@link decisionObservation} reads of a final lifecycle's context. */
export interface ObservedContext {
  createdAt: number;
  /** The latest time an answer showed the payment still undecided. */
  undecidedAt?: number;
  walletKey?: string;
  details: { paymentTime?: string; pspId?: string };
}

/**
 * What a settled lifecycle tells about its wallet's decision delay, or `undefined` when it tells
 * nothing (a person was asked, or the payment was never asked about).
 * - Decided by the wallet (succeeded, or failed by its answer): at `paymentTime` when the
 *   answer gives one (and it lies between creation and our outcome); else somewhere between the last
 *   answer that showed it undecided and the answer or notification that showed it decided.
 * - Cancelled or closed (an order closes at expiry when nobody paid it): not decided by the last
 *   answer that showed it in process; the planner treats it as at risk up to there.
 */
export function decisionObservation(
  context: ObservedContext,
  outcome: LifecycleOutcome,
): { walletKey: string | undefined; observation: DecisionObservation } | undefined {
  const walletKey = context.walletKey ?? context.details.pspId;
  const decidedBy = outcome.decidedBy;
  const byWallet =
    decidedBy.level === 'payment' && (outcome.status === 'succeeded' || outcome.status === 'failed');
  if (byWallet) {
    const decidedAt = Math.max(0, outcome.decidedAt - context.createdAt);
    let after = Math.min(
      decidedAt,
      Math.max(0, (context.undecidedAt ?? context.createdAt) - context.createdAt),
    );
    let by = decidedAt;
    const time = context.details.paymentTime;
    const paid = time ? Date.parse(time) - context.createdAt : Number.NaN;
    // Alipay+ times usually stop at the second: such a time says "within this second".
    const resolution = time && !/\.\d/.test(time) ? 1_000 : 0;
    if (Number.isFinite(paid) && paid + resolution >= after && paid <= by) {
      after = Math.max(after, paid);
      by = Math.min(by, paid + resolution);
    }
    return { walletKey, observation: { decided: true, after, by } };
  }
  // Cancelled, or closed (at expiry, unpaid, or by our cancel): nobody decided while we looked.
  if (outcome.status === 'cancelled' || outcome.status === 'closed') {
    // Only an answer that said "in process" proves the wallet had not decided by then.
    if (context.undecidedAt === undefined) return undefined;
    return {
      walletKey,
      observation: { decided: false, after: Math.max(0, context.undecidedAt - context.createdAt) },
    };
  }
  return undefined;
}
