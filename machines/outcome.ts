import type { Amount, SettlementQuote } from '../src/protocol/common.js';
import type { Transaction } from '../src/protocol/inquiry-payment.js';
import type { OrderCodeForm } from '../src/protocol/pay.js';

/** Every final status a lifecycle can end in. */
export const FINAL_STATUSES = [
  'succeeded',
  'failed',
  'closed',
  'cancelled',
  'refunded',
  'attention',
] as const;
export type FinalStatus = (typeof FINAL_STATUSES)[number];

/** Why a lifecycle stopped and asked for a person. */
export type AttentionReason =
  /** The inquiry was refused for a configuration or business fault; the payment's status is unknown. */
  | 'integration-fault'
  /** A notification's amount or request ID differs from what this payment knows: a security event. */
  | 'amount-mismatch'
  /** `pay` was refused for an integration fault, or REPEAT_REQ_INCONSISTENT: what Alipay+ holds is unknown. */
  | 'pay-refused'
  /**
   * Past the cancel window, an inquiry showed the payment paid, and the merchant was never told
   * "succeeded": the money must go back by refund (`alipayplus-lifecycle refund`, or `autoRefund`).
   */
  | 'refund-due'
  /** The refund was refused (F): the code says why. */
  | 'refund-refused'
  /** Past the cancel window, inquiries kept giving no final answer (`maxWindowChecks`). */
  | 'unresolved-after-window'
  /** The cancel was refused (F) more often than `maxCancelFailures`. */
  | 'cancel-refused';

/** Why the lifecycle started to cancel. */
export type CancelReason = 'expired' | 'max-inquiries' | 'closed-by-merchant';

export interface DecidedBy {
  /** What produced the deciding code. */
  source: 'pay' | 'inquiry' | 'notification' | 'cancel' | 'refund' | 'lifecycle';
  /** `payment` for a `paymentResult` code, `call` for a `result` code (marked, as the table asks). */
  level: 'payment' | 'call' | 'lifecycle';
  code: string;
  status?: 'S' | 'F' | 'U';
  message?: string;
}

/** Payment details learned from answers and notifications. Every field is optional and JSON. */
export interface PaymentDetails {
  paymentId?: string;
  paymentAmount?: Amount;
  paymentTime?: string;
  customerId?: string;
  walletBrandName?: string;
  pspId?: string;
  acquirerId?: string;
  settlementAmount?: Amount;
  settlementQuote?: SettlementQuote;
  transactions?: Transaction[];
  /** An order-code pay: the code the user scans. */
  orderCodeForm?: OrderCodeForm;
  /** An entry-code pay: the page the user opens. */
  paymentUrl?: string;
}

/** A refund the lifecycle sent (spec §9): its idempotency key, its amount, and what came back. */
export interface RefundDetails {
  refundRequestId: string;
  refundAmount: Amount;
  refundId?: string;
  refundTime?: string;
}

/** A notification that arrived once the outcome could no longer change. */
export interface LateNotification {
  at: number;
  /** The lifecycle state it arrived in. */
  state: string;
  resultStatus: 'S' | 'F' | 'U';
  resultCode: string;
  /** True when it reports a success the cancel overrides: the user was charged, and the cancel refunds them. */
  flagged: boolean;
}

/** The one final outcome of a lifecycle. */
export interface LifecycleOutcome {
  status: FinalStatus;
  paymentRequestId: string;
  paymentId?: string;
  decidedBy: DecidedBy;
  attentionReason?: AttentionReason;
  cancelReason?: CancelReason;
  details: PaymentDetails;
  /** The refund, when the lifecycle sent one (status `refunded`, or `attention` when it was refused). */
  refund?: RefundDetails;
  inquiries: number;
  cancelAttempts: number;
  decidedAt: number;
  lateNotifications: LateNotification[];
}

/** The top-level states a lifecycle passes through before its outcome, in the order it can pass them. */
export const IN_FLIGHT_STATES = [
  'paying',
  'awaitingResult',
  'awaitingNotification',
  'cancelling',
  'windowClosed',
  'refunding',
] as const;
export type InFlightState = (typeof IN_FLIGHT_STATES)[number];
