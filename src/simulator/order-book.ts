import { defaultCancelWindowEnd } from '../../machines/policy.js';
import type { Amount } from '../protocol/common.js';
import type { Scenario } from './scenario.js';

/** One order as the simulated Alipay+ and wallet know it. Times are simulated epoch ms. */
export interface SimOrder {
  paymentRequestId: string;
  paymentId: string;
  amount: Amount;
  createdAt: number;
  expiresAt: number;
  cancelWindowEndsAt: number;
  notifyUrl?: string;
  scenario: Scenario;
  /** When the cancel took effect, if it did. */
  cancelledAt?: number;
  /** Cancel requests received (all of them, answered or not). */
  cancelRequests: number;
}

/** What really happened to an order, for reconciliation. */
export type TruthStatus = 'unknown-to-alipay' | 'processing' | 'paid' | 'failed' | 'closed' | 'cancelled';

export interface OrderTruth {
  paymentRequestId: string;
  paymentId: string;
  amount: Amount;
  status: TruthStatus;
  /** The wallet took the money (whether or not it was given back since). */
  charged: boolean;
  /** A cancel returned money that was taken. */
  refunded: boolean;
  cancelled: boolean;
  /** When the wallet decided, if it did. */
  decidedAt?: number;
  failCode?: string;
  label: string;
  createdAt: number;
  expiresAt: number;
  cancelledAt?: number;
  cancelRequests: number;
}

/** When the order becomes known to Alipay+. */
export function appearsAt(order: SimOrder): number {
  return order.createdAt + order.scenario.appearAfterMs;
}

/**
 * When the wallet's decision takes effect, if it ever does: not before the order is known, only
 * before expiry, and never after a cancel.
 */
export function decisionAt(order: SimOrder): number | undefined {
  const { decideAfterMs } = order.scenario;
  if (decideAfterMs === null) return undefined;
  const at = Math.max(order.createdAt + decideAfterMs, appearsAt(order));
  if (at >= order.expiresAt) return undefined;
  if (order.cancelledAt !== undefined && order.cancelledAt < at) return undefined;
  return at;
}

/** The ground truth of an order at time `now`. */
export function truthAt(order: SimOrder, now: number): OrderTruth {
  const decided = decisionAt(order);
  const hasDecided = decided !== undefined && decided <= now;
  const charged = hasDecided && order.scenario.decision === 'paid';
  const cancelled = order.cancelledAt !== undefined && order.cancelledAt <= now;
  let status: TruthStatus;
  if (cancelled) status = 'cancelled';
  else if (hasDecided) status = order.scenario.decision;
  else if (now >= order.expiresAt) status = 'closed';
  else if (now < appearsAt(order)) status = 'unknown-to-alipay';
  else status = 'processing';
  const truth: OrderTruth = {
    paymentRequestId: order.paymentRequestId,
    paymentId: order.paymentId,
    amount: order.amount,
    status,
    charged,
    refunded: charged && cancelled,
    cancelled,
    label: order.scenario.label,
    createdAt: order.createdAt,
    expiresAt: order.expiresAt,
    cancelRequests: order.cancelRequests,
  };
  if (hasDecided) truth.decidedAt = decided;
  if (hasDecided && order.scenario.decision === 'failed') truth.failCode = order.scenario.failCode;
  if (order.cancelledAt !== undefined) truth.cancelledAt = order.cancelledAt;
  return truth;
}

/** What an inquiry sees: the truth, except that a decision shows only after the scenario's inquiry lag. */
export function inquiryViewAt(order: SimOrder, now: number): TruthStatus {
  const truth = truthAt(order, now);
  if ((truth.status === 'paid' || truth.status === 'failed') && truth.decidedAt !== undefined) {
    if (now < truth.decidedAt + order.scenario.notify.inquiryLagMs) return 'processing';
  }
  return truth.status;
}

export type CancelVerdict = { kind: 'cancelled' } | { kind: 'unknown' } | { kind: 'window-exceeded' };

/**
 * Applies a cancel request at `now`. Idempotent: a repeat of a successful cancel succeeds again.
 * Within the window it succeeds whatever the order's state (a paid order is refunded).
 */
export function applyCancel(order: SimOrder, now: number): CancelVerdict {
  order.cancelRequests++;
  if (order.cancelledAt !== undefined) return { kind: 'cancelled' };
  if (order.cancelRequests <= order.scenario.cancelUnknownTimes) return { kind: 'unknown' };
  if (now > order.cancelWindowEndsAt) return { kind: 'window-exceeded' };
  order.cancelledAt = now;
  return { kind: 'cancelled' };
}

export function newOrder(fields: {
  paymentRequestId: string;
  paymentId: string;
  amount: Amount;
  createdAt: number;
  expiresAt: number;
  notifyUrl?: string;
  scenario: Scenario;
}): SimOrder {
  const order: SimOrder = {
    ...fields,
    cancelWindowEndsAt: defaultCancelWindowEnd(fields.createdAt),
    cancelRequests: 0,
  };
  if (fields.notifyUrl === undefined) delete order.notifyUrl;
  return order;
}
