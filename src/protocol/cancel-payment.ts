import { z } from 'zod';
import { Id, optional, Result } from './common.js';

/** Request body of `cancelPayment`: exactly one of the two references is sent. */
export const CancelPaymentRequest = z
  .looseObject({ paymentRequestId: optional(Id), paymentId: optional(Id) })
  .refine((body) => body.paymentRequestId != null || body.paymentId != null, {
    message: 'one of paymentRequestId or paymentId is required',
  });
export type CancelPaymentRequest = z.infer<typeof CancelPaymentRequest>;

/** Response body of `cancelPayment`. */
export const CancelPaymentResponse = z.looseObject({
  result: Result,
  acquirerId: optional(Id),
  pspId: optional(Id),
});
export type CancelPaymentResponse = z.infer<typeof CancelPaymentResponse>;
