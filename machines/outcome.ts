import type { Amount, SettlementQuote } from '../src/protocol/common.js';
import type { Transaction } from '../src/protocol/inquiry-payment.js';

export type FinalStatus = 'succeeded' | 'failed' | 'closed' | 'cancelled' | 'attention';

/** Why a lifecycle stopped and asked for a person. */
export type AttentionReason =
  /** The inquiry was refused for a configuration or business fault; the payment's status is unknown. */
  | 'integration-fault'
  /** A notification's amount or request ID differs from what this payment knows: a security event. */
  | 'amount-mismatch'
  /** Alipay+ answered CANCEL_WINDOW_EXCEED: only a refund can return money now. */
  | 'refund-required'
  /** The cancel was refused (F) more often than `maxCancelFailures`. */
  | 'cancel-refused'
  /** The cancel window closed with the cancel still unconfirmed. */
  | 'cancel-window-closed';

/** Why the lifecycle started to cancel. */
export type CancelReason = 'expired' | 'max-inquiries' | 'closed-by-merchant';

export interface DecidedBy {
  /** What produced the deciding code. */
  source: 'inquiry' | 'notification' | 'cancel' | 'lifecycle';
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
  inquiries: number;
  cancelAttempts: number;
  decidedAt: number;
  lateNotifications: LateNotification[];
}
