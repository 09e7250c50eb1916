import { defaultCancelWindowEnd } from '../../machines/policy.js';
import type { Amount } from '../protocol/common.js';
import type { PayMode, PayRequest } from '../protocol/pay.js';
import type { Scenario } from './scenario.js';

/** One successful refund of an order. `at` is simulated epoch ms. */
export interface RefundRecord {
  refundRequestId: string;
  refundId: string;
  amount: Amount;
  at: number;
}

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
  /** The first pay request processed for this order (absent for orders made by `createOrder` alone). */
  payRequest?: PayRequest;
  payMode?: PayMode;
  /** Successful refunds, in order. */
  refunds: RefundRecord[];
}

/**
 * What really happened to an order, for reconciliation. `refunded`: paid, then refunds (not a cancel)
 * returned the whole paid amount; Alipay+ still reports such an order as paid.
 */
export type TruthStatus =
  | 'unknown-to-alipay'
  | 'processing'
  | 'paid'
  | 'refunded'
  | 'failed'
  | 'closed'
  | 'cancelled';

export interface OrderTruth {
  paymentRequestId: string;
  paymentId: string;
  amount: Amount;
  status: TruthStatus;
  /** The wallet took the money (whether or not it was given back since). */
  charged: boolean;
  /** Money taken was all returned: by a cancel, or by refunds totalling the paid amount. */
  refunded: boolean;
  cancelled: boolean;
  /**
   * Successful refunds, and their total (in the order's currency). Always set on truths the
   * simulator reports; optional so that truths written by hand may leave them out.
   */
  refunds?: RefundRecord[];
  refundedAmount?: Amount;
  /** The mode of the pay that created the order, when a pay did. */
  payMode?: PayMode;
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

/** The total of an order's refunds made by `now`, in minor units. */
export function refundedValue(order: SimOrder, now: number): bigint {
  return order.refunds.filter((r) => r.at <= now).reduce((sum, r) => sum + BigInt(r.amount.value), 0n);
}

/** The ground truth of an order at time `now`. */
export function truthAt(order: SimOrder, now: number): OrderTruth {
  const decided = decisionAt(order);
  const hasDecided = decided !== undefined && decided <= now;
  const charged = hasDecided && order.scenario.decision === 'paid';
  const cancelled = order.cancelledAt !== undefined && order.cancelledAt <= now;
  const refundedTotal = refundedValue(order, now);
  const fullyRefunded = charged && refundedTotal > 0n && refundedTotal >= BigInt(order.amount.value);
  let status: TruthStatus;
  if (cancelled) status = 'cancelled';
  else if (fullyRefunded) status = 'refunded';
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
    refunded: charged && (cancelled || fullyRefunded),
    cancelled,
    refunds: order.refunds.filter((r) => r.at <= now).map((r) => ({ ...r, amount: { ...r.amount } })),
    refundedAmount: { currency: order.amount.currency, value: refundedTotal.toString() },
    label: order.scenario.label,
    createdAt: order.createdAt,
    expiresAt: order.expiresAt,
    cancelRequests: order.cancelRequests,
  };
  if (hasDecided) truth.decidedAt = decided;
  if (hasDecided && order.scenario.decision === 'failed') truth.failCode = order.scenario.failCode;
  if (order.cancelledAt !== undefined) truth.cancelledAt = order.cancelledAt;
  if (order.payMode !== undefined) truth.payMode = order.payMode;
  return truth;
}

/** The truth of a pay that Alipay+ never processed: the order does not exist there, nothing was charged. */
export function unknownOrderTruth(fields: {
  paymentRequestId: string;
  amount: Amount;
  createdAt: number;
  expiresAt: number;
  label: string;
  payMode?: PayMode;
}): OrderTruth {
  const truth: OrderTruth = {
    paymentRequestId: fields.paymentRequestId,
    paymentId: '',
    amount: fields.amount,
    status: 'unknown-to-alipay',
    charged: false,
    refunded: false,
    cancelled: false,
    refunds: [],
    refundedAmount: { currency: fields.amount.currency, value: '0' },
    label: fields.label,
    createdAt: fields.createdAt,
    expiresAt: fields.expiresAt,
    cancelRequests: 0,
  };
  if (fields.payMode !== undefined) truth.payMode = fields.payMode;
  return truth;
}

/**
 * What Alipay+ reports (inquiries, repeated pays): the truth, except that a decision shows only after
 * the scenario's inquiry lag, and a refunded order is still a paid one (its refunds are listed apart).
 */
export function inquiryViewAt(order: SimOrder, now: number): Exclude<TruthStatus, 'refunded'> {
  const truth = truthAt(order, now);
  const status = truth.status === 'refunded' ? 'paid' : truth.status;
  if ((status === 'paid' || status === 'failed') && truth.decidedAt !== undefined) {
    if (now < truth.decidedAt + order.scenario.notify.inquiryLagMs) return 'processing';
  }
  return status;
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
  payRequest?: PayRequest;
  payMode?: PayMode;
}): SimOrder {
  const order: SimOrder = {
    ...fields,
    cancelWindowEndsAt: defaultCancelWindowEnd(fields.createdAt),
    cancelRequests: 0,
    refunds: [],
  };
  if (fields.notifyUrl === undefined) delete order.notifyUrl;
  if (fields.payRequest === undefined) delete order.payRequest;
  if (fields.payMode === undefined) delete order.payMode;
  return order;
}
