import { z } from 'zod';
import { Amount, DateTime, Id, optional, Result, SettlementQuote } from './common.js';

/**
 * The `refund` call (spec §9): the remedy once the cancel window has closed. `refundRequestId` is the
 * idempotency key: the same request sent again never refunds twice.
 */
export const RefundRequest = z
  .looseObject({
    refundRequestId: Id,
    paymentRequestId: optional(Id),
    paymentId: optional(Id),
    refundAmount: Amount,
    refundReason: optional(z.string().min(1).max(256)),
  })
  .refine((body) => body.paymentRequestId != null || body.paymentId != null, {
    message: 'one of paymentRequestId or paymentId is required',
    path: ['paymentRequestId'],
  });
export type RefundRequest = z.infer<typeof RefundRequest>;
export type RefundRequestInput = z.input<typeof RefundRequest>;

/** Response body of `refund`. */
export const RefundResponse = z.looseObject({
  result: Result,
  refundRequestId: optional(Id),
  refundId: optional(Id),
  refundTime: optional(DateTime),
  refundAmount: optional(Amount),
  settlementAmount: optional(Amount),
  settlementQuote: optional(SettlementQuote),
});
export type RefundResponse = z.infer<typeof RefundResponse>;
