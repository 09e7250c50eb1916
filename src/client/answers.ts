import type { CancelPaymentResponse } from '../protocol/cancel-payment.js';
import type { InquiryPaymentResponse } from '../protocol/inquiry-payment.js';
import type { PayResponse } from '../protocol/pay.js';
import type { RefundResponse } from '../protocol/refund.js';

/**
 * Why a call produced no business answer. Each is "no result received" in the decision table:
 * the payment's status is still unknown, and the caller asks again.
 */
export type NoResultReason =
  | 'timeout'
  | 'network'
  | 'http-status'
  | 'bad-json'
  | 'schema'
  | 'bad-signature'
  | 'aborted'
  /** The engine did not send the request: its deadline (a pay's expiry) had passed. */
  | 'not-sent'
  /**
   * A pay the engine gave up on before sending it (it waited for a call slot until its cut-off),
   * when no pay for this payment had ever left the engine: nothing reached Alipay+.
   */
  | 'never-sent';

export interface NoResult {
  readonly kind: 'no-result';
  readonly reason: NoResultReason;
  /** What went wrong, for logs and people. Never contains key material. */
  readonly detail: string;
  /** The HTTP status, when a response arrived. */
  readonly httpStatus?: number;
}

interface AnswerMeta {
  readonly kind: 'answer';
  /** The raw response body, exactly as received and verified. */
  readonly raw: string;
  /** The `response-time` header that was signed. */
  readonly responseTime: string;
}

/** A verified, schema-valid inquiryPayment answer: the response fields, flattened. */
export type InquiryAnswer = InquiryPaymentResponse & AnswerMeta;
/** A verified, schema-valid cancelPayment answer. */
export type CancelAnswer = CancelPaymentResponse & AnswerMeta;

/** A verified, schema-valid pay answer. */
export type PayAnswer = PayResponse & AnswerMeta;
/** A verified, schema-valid refund answer. */
export type RefundAnswer = RefundResponse & AnswerMeta;

export type InquiryOutcome = InquiryAnswer | NoResult;
export type PayOutcome = PayAnswer | NoResult;
export type RefundOutcome = RefundAnswer | NoResult;
export type CancelOutcome = CancelAnswer | NoResult;
