import { z } from 'zod';
import { Id, Result } from './common.js';
import { paymentDetailFields } from './inquiry-payment.js';

/**
 * Body of the `notifyPayment` request Alipay+ sends to the ACQP. Alipay+ notifies only final
 * payments, so `paymentResult.resultStatus` is S or F; a U is a malformed notification.
 */
export const NotifyPaymentRequest = z.looseObject({
  paymentResult: Result.refine((result) => result.resultStatus !== 'U', {
    message: 'a notification carries a final result: resultStatus must be S or F',
    path: ['resultStatus'],
  }),
  paymentRequestId: Id,
  ...paymentDetailFields,
});
export type NotifyPaymentRequest = z.infer<typeof NotifyPaymentRequest>;

/** The ACQP's answer to a notification. It acknowledges receipt, not agreement. */
export const NotifyPaymentAck = z.looseObject({ result: Result });
export type NotifyPaymentAck = z.infer<typeof NotifyPaymentAck>;

/** The one acknowledgement that stops Alipay+ from sending the notification again. */
export const NOTIFY_ACK_SUCCESS = {
  result: { resultCode: 'SUCCESS', resultStatus: 'S', resultMessage: 'success' },
} as const satisfies NotifyPaymentAck;
