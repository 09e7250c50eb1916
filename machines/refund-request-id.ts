import { createHash } from 'node:crypto';
import { MAX_ID_LENGTH } from '../src/protocol/common.js';

const SUFFIX = '-RF';

/** The `refundReason` of a refund for money taken by a payment whose result was never confirmed. */
export const REFUND_DUE_REASON = 'payment result unconfirmed when the cancel window closed';

/**
 * The `refundRequestId` of a payment's refund, derived from its `paymentRequestId` alone, so that
 * every retry, every restart and every worker sends the same key and Alipay+ refunds at most once.
 * Readable (`<id>-RF`) when that fits in 64 characters; otherwise `RF-` and a SHA-256 of the ID.
 */
export function refundRequestIdFor(paymentRequestId: string): string {
  if (paymentRequestId.length + SUFFIX.length <= MAX_ID_LENGTH) return `${paymentRequestId}${SUFFIX}`;
  return `RF-${createHash('sha256').update(paymentRequestId, 'utf8').digest('base64url')}`;
}
