import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { AlipayPlusLifecycleError } from '../errors.js';
import {
  DEFAULT_PAYMENT_METHOD_TYPE,
  PAY_MODES,
  type PayMode,
  PayRequest,
  type PayRequestInput,
  payModeOf,
} from '../protocol/pay.js';
import { parseOrThrow } from '../validate.js';

const MINUTE = 60_000;
const HOUR_8 = 8 * 3_600_000;

/**
 * The longest expiry the engine sends per mode (spec §8): a pay always carries an explicit
 * `paymentExpiryTime` = min(the requested expiry, now + this).
 */
export const DEFAULT_MAX_PAY_EXPIRY_MS: Readonly<Record<PayMode, number>> = {
  'user-presented': MINUTE,
  cashier: 10 * MINUTE,
  'order-code': 5 * MINUTE,
  'entry-code': 5 * MINUTE,
};

export const MaxPayExpiry = z
  .partialRecord(z.enum(PAY_MODES), z.number().int().positive())
  .default({})
  .transform((given) => ({ ...DEFAULT_MAX_PAY_EXPIRY_MS, ...given }) as Record<PayMode, number>);

/** A pay request validated for its mode and completed, before its expiry is fixed. */
export interface CompletedPay {
  mode: PayMode;
  request: PayRequest;
}

/** The request the engine will store and send, and what the lifecycle needs from it. */
export interface PreparedPay {
  mode: PayMode;
  expiresAt: number;
  /** The exact body: stored before it is signed, and re-sent unchanged. */
  wire: PayRequest;
}

/** ISO 8601 in UTC+8, whole seconds, as Alipay+'s samples write times. */
export function formatAlipayTime(epochMs: number): string {
  return `${new Date(epochMs + HOUR_8).toISOString().slice(0, 19)}+08:00`;
}

/**
 * Validates a pay request for its mode and completes it: the default payment method type, and the
 * engine's notify URL when the request names none.
 *
 * @throws ValidationError `INVALID_INPUT` naming the field.
 */
export function completePay(request: PayRequestInput, notifyUrl: string | undefined): CompletedPay {
  const given = request as Partial<PayRequest>;
  const completed = {
    ...given,
    paymentMethod: { paymentMethodType: DEFAULT_PAYMENT_METHOD_TYPE, ...(given.paymentMethod ?? {}) },
  } as PayRequest;
  if (completed.paymentNotifyUrl == null && notifyUrl) completed.paymentNotifyUrl = notifyUrl;
  const parsed = parseOrThrow(PayRequest, completed, 'pay request');
  return { mode: payModeOf(parsed) as PayMode, request: completed }; // the schema refuses a request without a mode
}

/**
 * Fixes a new pay's expiry: the requested one, but no later than the mode allows (whole seconds, so
 * that what is sent is exactly the deadline the lifecycle keeps).
 *
 * @throws AlipayPlusLifecycleError `INVALID_INPUT` when the requested expiry is not in the future.
 */
export function withExpiry(
  { mode, request }: CompletedPay,
  now: number,
  maxExpiryMs: Record<PayMode, number>,
): PreparedPay {
  const id = request.paymentRequestId;
  const requested = request.paymentExpiryTime ? Date.parse(request.paymentExpiryTime) : undefined;
  if (requested !== undefined && requested <= now) {
    throw new AlipayPlusLifecycleError(
      'INVALID_INPUT',
      `pay request ${id}: paymentExpiryTime ${request.paymentExpiryTime} is not in the future; a pay must be sent before it expires: give a later expiry (or none, for the ${mode} maximum); nothing was stored or sent`,
    );
  }
  const latest = now + maxExpiryMs[mode];
  const expiresAt = Math.floor(Math.min(requested ?? latest, latest) / 1000) * 1000;
  if (expiresAt <= now) {
    throw new AlipayPlusLifecycleError(
      'INVALID_INPUT',
      `pay request ${id}: paymentExpiryTime leaves less than a second; give a later expiry; nothing was stored or sent`,
    );
  }
  return { mode, expiresAt, wire: { ...request, paymentExpiryTime: formatAlipayTime(expiresAt) } };
}

/**
 * Whether two pay bodies carry the same payment. The expiry is left out: it is computed from the
 * moment of the call, so asking again later is the same pay, not a new one.
 */
export function samePayContent(a: PayRequest, b: PayRequest): boolean {
  const { paymentExpiryTime: _a, ...restA } = a;
  const { paymentExpiryTime: _b, ...restB } = b;
  return isDeepStrictEqual(JSON.parse(JSON.stringify(restA)), JSON.parse(JSON.stringify(restB)));
}
