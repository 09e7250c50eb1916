import { z } from 'zod';
import { Amount, DateTime, Id, optional, Result, SettlementQuote } from './common.js';

/** Request body of `inquiryPayment`: exactly one of the two references is sent. */
export const InquiryPaymentRequest = z
  .looseObject({ paymentRequestId: optional(Id), paymentId: optional(Id) })
  .refine((body) => body.paymentRequestId != null || body.paymentId != null, {
    message: 'one of paymentRequestId or paymentId is required',
  });
export type InquiryPaymentRequest = z.infer<typeof InquiryPaymentRequest>;

export const KNOWN_TRANSACTION_TYPES = [
  'PAYMENT',
  'REFUND',
  'AUTHORIZATION',
  'CAPTURE',
  'CANCEL',
  'VOID',
] as const;
export const KNOWN_TRANSACTION_STATUSES = ['SUCCESS', 'FAIL', 'PROCESSING', 'CANCELLED'] as const;

/**
 * A transaction linked to a paid order (refunds, mostly). Types and statuses outside the published
 * lists are kept as strings: they describe history, and must not turn a paid answer into "no result".
 */
export const Transaction = z.looseObject({
  transactionResult: Result,
  transactionId: Id,
  transactionRequestId: optional(Id),
  transactionType: z.string().min(1),
  transactionStatus: z.string().min(1),
  transactionAmount: Amount,
  transactionTime: optional(DateTime),
});
export type Transaction = z.infer<typeof Transaction>;

/** The payment details Alipay+ reports once it knows the order (inquiry answers and notifications). */
export const paymentDetailFields = {
  acquirerId: optional(Id),
  pspId: optional(Id),
  paymentId: optional(Id),
  paymentTime: optional(DateTime),
  paymentAmount: optional(Amount),
  customerId: optional(z.string().max(64)),
  walletBrandName: optional(z.string().max(128)),
  settlementAmount: optional(Amount),
  settlementQuote: optional(SettlementQuote),
};

/** Response body of `inquiryPayment`. When the call succeeded (`result` S), `paymentResult` is required. */
export const InquiryPaymentResponse = z
  .looseObject({
    result: Result,
    paymentResult: optional(Result),
    paymentRequestId: optional(Id),
    ...paymentDetailFields,
    transactions: optional(z.array(Transaction)),
  })
  .refine((body) => body.result.resultStatus !== 'S' || body.paymentResult != null, {
    message: 'paymentResult is required when result.resultStatus is S',
    path: ['paymentResult'],
  });
export type InquiryPaymentResponse = z.infer<typeof InquiryPaymentResponse>;
