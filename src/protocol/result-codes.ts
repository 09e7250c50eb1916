import type { ResultStatus } from './common.js';

/**
 * What a result code asks the ACQP to do:
 * - `proceed`: the call succeeded; read the payment-level result.
 * - `final`: the outcome is known; stop.
 * - `retry`: ask again later (inquiry) or send the same request again (cancel).
 * - `retry-slower`: as `retry`, but Alipay+ is shedding load; back off harder.
 * - `needs-person`: retrying will not help; a person must look (configuration, business failure).
 * - `refund-instead`: the cancel window has closed; only a refund can return the money.
 */
export type ResultAction = 'proceed' | 'final' | 'retry' | 'retry-slower' | 'needs-person' | 'refund-instead';

/** Where a code appears: the `result` of a call, or a payment's `paymentResult`. */
export type ResultScope = 'pay' | 'inquiryPayment' | 'cancelPayment' | 'refund' | 'paymentResult';

export interface ResultCodeEntry {
  readonly code: string;
  readonly status: ResultStatus;
  readonly scopes: readonly ResultScope[];
  readonly action: ResultAction;
  readonly meaning: string;
}

const CALLS: readonly ResultScope[] = ['pay', 'inquiryPayment', 'cancelPayment', 'refund'];

/** Integration faults on the ACQP's side: the payment's real status stays unknown. */
const INTEGRATION_FAULTS: readonly [string, string][] = [
  ['PARAM_ILLEGAL', 'A request field is missing or malformed.'],
  ['METHOD_NOT_SUPPORTED', 'The HTTP method is not supported by this API.'],
  ['MEDIA_TYPE_NOT_ACCEPTABLE', 'The Content-Type or Accept header is not acceptable.'],
  ['INVALID_API', 'The API path is wrong.'],
  ['INVALID_CLIENT', 'The Client-Id is unknown to Alipay+.'],
  ['INVALID_SIGNATURE', 'Alipay+ could not verify the request signature.'],
  ['SIGNATURE_INVALID', 'Alipay+ could not verify the request signature (alternative spelling).'],
  ['KEY_NOT_FOUND', 'Alipay+ has no public key registered for this client and key version.'],
  ['ACCESS_DENIED', 'This client may not call this API.'],
  ['NO_INTERFACE_DEF', 'The API is not defined for this client.'],
];

const PAYMENT_FAILURES: readonly [string, string][] = [
  ['USER_BALANCE_NOT_ENOUGH', "The user's balance is too low."],
  ['RISK_REJECT', 'The wallet rejected the payment for risk reasons.'],
  ['USER_NOT_EXIST', 'The user does not exist in the wallet.'],
  ['USER_STATUS_ABNORMAL', "The user's account is frozen or otherwise abnormal."],
  ['UNAVAILABLE_PAYMENT_METHOD', 'No payment method of the user can pay this order.'],
  ['USER_PAYMENT_VERIFICATION_FAILED', "The user's payment verification failed."],
  ['USER_KYC_NOT_QUALIFIED', 'The user has not passed KYC for this payment.'],
  ['MERCHANT_NOT_REGISTERED', 'The merchant is not registered with the wallet.'],
  ['MERCHANT_KYB_NOT_QUALIFIED', 'The merchant has not passed KYB.'],
  ['PAYMENT_AMOUNT_EXCEED_LIMIT', 'The amount exceeds the per-payment limit.'],
  ['USER_AMOUNT_EXCEED_LIMIT', "The amount exceeds the user's limit."],
  ['PAYMENT_COUNT_EXCEED_LIMIT', 'The user has made too many payments.'],
  ['INVALID_TOKEN', 'The access token is invalid.'],
  ['EXPIRED_ACCESS_TOKEN', 'The access token has expired.'],
  ['CURRENCY_NOT_SUPPORT', 'The currency is not supported.'],
  ['BUSINESS_NOT_SUPPORT', 'The wallet does not support this business.'],
  ['INVALID_CONTRACT', 'The contract is invalid.'],
  ['EXPIRED_CODE', 'The payment code has expired.'],
  ['INVALID_CODE', 'The payment code is invalid.'],
];

/** The catalog, as data. `docs/` and the tests read it; nothing else hard-codes a code's handling. */
export const RESULT_CODES: readonly ResultCodeEntry[] = [
  {
    code: 'SUCCESS',
    status: 'S',
    scopes: ['inquiryPayment'],
    action: 'proceed',
    meaning: 'The inquiry succeeded; paymentResult holds the payment status.',
  },
  {
    code: 'SUCCESS',
    status: 'S',
    scopes: ['cancelPayment'],
    action: 'final',
    meaning: 'The payment is cancelled; any money taken is returned to the user.',
  },
  {
    code: 'SUCCESS',
    status: 'S',
    scopes: ['pay'],
    action: 'final',
    meaning:
      'The payment succeeded (user-presented, cashier); for an order or entry code: the code was created.',
  },
  {
    code: 'PAYMENT_IN_PROCESS',
    status: 'U',
    scopes: ['pay'],
    action: 'retry',
    meaning: 'The payment is being processed (or waits for the user): inquire, await the notification.',
  },
  {
    code: 'REPEAT_REQ_INCONSISTENT',
    status: 'F',
    scopes: ['pay'],
    action: 'needs-person',
    meaning:
      'A pay with this paymentRequestId and other content was received before. The first one stands; a person must look.',
  },
  {
    code: 'SUCCESS',
    status: 'S',
    scopes: ['refund'],
    action: 'final',
    meaning: 'The refund succeeded; the money goes back to the user.',
  },
  {
    code: 'REFUND_AMOUNT_EXCEED',
    status: 'F',
    scopes: ['refund'],
    action: 'needs-person',
    meaning: 'The refunds would exceed the paid amount.',
  },
  {
    code: 'REFUND_WINDOW_EXCEED',
    status: 'F',
    scopes: ['refund'],
    action: 'needs-person',
    meaning: 'The refund window (about a year) has closed.',
  },
  {
    code: 'ORDER_STATUS_INVALID',
    status: 'F',
    scopes: ['refund'],
    action: 'needs-person',
    meaning: 'The payment is not in a state that can be refunded (it was not paid).',
  },
  {
    code: 'ORDER_NOT_EXIST',
    status: 'F',
    scopes: ['inquiryPayment'],
    action: 'retry',
    meaning: 'Alipay+ does not know the order (yet): keep inquiring until expiry, then cancel.',
  },
  {
    code: 'UNKNOWN_EXCEPTION',
    status: 'U',
    scopes: CALLS,
    action: 'retry',
    meaning: 'Alipay+ hit an unknown exception; the status is unknown. Ask again.',
  },
  {
    code: 'REQUEST_TRAFFIC_EXCEED_LIMIT',
    status: 'U',
    scopes: CALLS,
    action: 'retry-slower',
    meaning: 'Alipay+ is rate-limiting this client. Ask again, backing off harder.',
  },
  {
    code: 'PROCESS_FAIL',
    status: 'F',
    scopes: CALLS,
    action: 'needs-person',
    meaning: 'A business failure at Alipay+. Retrying will not help; a person must look.',
  },
  {
    code: 'CANCEL_WINDOW_EXCEED',
    status: 'F',
    scopes: ['cancelPayment'],
    action: 'refund-instead',
    meaning: 'The cancel window (00:15 UTC+8 the next day) has closed; only a refund can return money.',
  },
  ...INTEGRATION_FAULTS.map(
    ([code, meaning]): ResultCodeEntry => ({
      code,
      status: 'F',
      scopes: CALLS,
      action: 'needs-person',
      meaning: `${meaning} An integration fault on the ACQP's side; the payment's real status is unknown.`,
    }),
  ),
  {
    code: 'SUCCESS',
    status: 'S',
    scopes: ['paymentResult'],
    action: 'final',
    meaning: 'The payment succeeded.',
  },
  {
    code: 'PAYMENT_IN_PROCESS',
    status: 'U',
    scopes: ['paymentResult'],
    action: 'retry',
    meaning: 'The payment is still being processed; inquire again later.',
  },
  {
    code: 'ORDER_IS_CLOSED',
    status: 'F',
    scopes: ['paymentResult'],
    action: 'final',
    meaning: 'The order is closed, cancelled or timed out; it was not paid.',
  },
  ...PAYMENT_FAILURES.map(
    ([code, meaning]): ResultCodeEntry => ({
      code,
      status: 'F',
      scopes: ['pay', 'paymentResult'],
      action: 'final',
      meaning: `${meaning} The payment failed.`,
    }),
  ),
];

/** What an unknown code means: decided by its `resultStatus` alone, per scope. */
const FALLBACK: Record<ResultScope, Record<ResultStatus, ResultAction>> = {
  // A pay's F is the payment's own failure unless the catalog says it is a fault on our side.
  pay: { S: 'final', F: 'final', U: 'retry' },
  refund: { S: 'final', F: 'needs-person', U: 'retry' },
  inquiryPayment: { S: 'proceed', F: 'final', U: 'retry' },
  // An unknown F to a cancel is retried a bounded number of times, then left for a person.
  cancelPayment: { S: 'final', F: 'needs-person', U: 'retry' },
  paymentResult: { S: 'final', F: 'final', U: 'retry' },
};

const index = new Map<string, ResultCodeEntry>();
for (const entry of RESULT_CODES) {
  for (const scope of entry.scopes) index.set(`${scope}:${entry.code}`, entry);
}

export interface ResultCodeLookup extends ResultCodeEntry {
  /** False when the code is not in the catalog and was judged by its status alone. */
  readonly known: boolean;
}

/**
 * Looks a code up in the catalog. A code that is unknown, or known with another status than the one
 * received, is judged by the received `resultStatus` alone and marked `known: false`.
 */
export function lookupResultCode(scope: ResultScope, code: string, status: ResultStatus): ResultCodeLookup {
  const entry = index.get(`${scope}:${code}`);
  if (entry && entry.status === status) return { ...entry, known: true };
  return {
    code,
    status,
    scopes: [scope],
    action: FALLBACK[scope][status],
    meaning: `Code ${code} is not in the catalog for ${scope} with status ${status}; handled by its status.`,
    known: false,
  };
}
