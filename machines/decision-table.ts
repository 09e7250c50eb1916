import type { InquiryOutcome, PayOutcome, RefundOutcome } from '../src/client/answers.js';
import type { PayMode } from '../src/protocol/pay.js';
import { lookupResultCode } from '../src/protocol/result-codes.js';

/**
 * The decision table of the "inquire about payment result" page, as data. The machine builds its
 * guarded transitions from these rows, `docs/result-table.md` is generated from them, and each row
 * names the unit test that pins it down — so the code, the doc and the tests cannot drift apart.
 */
export type InquiryRowId =
  | 'paid'
  | 'order-closed'
  | 'payment-failed'
  | 'processing'
  | 'order-not-exist'
  | 'integration-fault'
  | 'call-failed'
  | 'unknown-exception'
  | 'no-result';

/** Where a row leads: a final state, or "inquire again later, or cancel once expired / out of inquiries". */
export type RowTarget = 'succeeded' | 'closed' | 'failed' | 'attention' | 'again-or-cancel';

export interface DecisionRow {
  readonly id: InquiryRowId;
  /** `result.resultStatus` (and code) of the inquiry call. */
  readonly result: string;
  /** `paymentResult.resultStatus` (and code). */
  readonly paymentResult: string;
  readonly meaning: string;
  /** The named guard in the machine. */
  readonly guard: string;
  readonly target: RowTarget;
  /** The title of the unit test in test/machine-decision-table.test.ts that covers this row. */
  readonly test: string;
}

export const INQUIRY_DECISION_TABLE: readonly DecisionRow[] = [
  {
    id: 'paid',
    result: 'S',
    paymentResult: 'S',
    meaning: 'The payment succeeded.',
    guard: 'isPaid',
    target: 'succeeded',
    test: 'row paid: S/S → succeeded',
  },
  {
    id: 'order-closed',
    result: 'S',
    paymentResult: 'F, ORDER_IS_CLOSED',
    meaning: 'The order is closed or cancelled; it was not paid.',
    guard: 'isOrderClosed',
    target: 'closed',
    test: 'row order-closed: S/F ORDER_IS_CLOSED → closed',
  },
  {
    id: 'payment-failed',
    result: 'S',
    paymentResult: 'F, any other code',
    meaning: 'The payment failed; the code says why.',
    guard: 'isPaymentFailed',
    target: 'failed',
    test: 'row payment-failed: S/F other → failed with the payment code',
  },
  {
    id: 'processing',
    result: 'S',
    paymentResult: 'U',
    meaning:
      'Still processing: inquire again with a growing interval; at expiry or after the last inquiry, cancel.',
    guard: 'isStillProcessing',
    target: 'again-or-cancel',
    test: 'row processing: S/U → again, then cancel',
  },
  {
    id: 'order-not-exist',
    result: 'F, ORDER_NOT_EXIST',
    paymentResult: '—',
    meaning:
      'Alipay+ does not know the order yet: inquire again; at expiry or after the last inquiry, cancel.',
    guard: 'isOrderNotYetKnown',
    target: 'again-or-cancel',
    test: 'row order-not-exist: F ORDER_NOT_EXIST → again, then cancel',
  },
  {
    id: 'integration-fault',
    result:
      'F, a code the catalog marks "needs a person" (INVALID_SIGNATURE, KEY_NOT_FOUND, PROCESS_FAIL, ...)',
    paymentResult: '—',
    meaning:
      "The inquiry itself was refused (configuration or business fault). The payment's real status is unknown, so it is not marked failed: a person must look.",
    guard: 'isIntegrationFault',
    target: 'attention',
    test: 'row integration-fault: F needs-person code → attention, never failed',
  },
  {
    id: 'call-failed',
    result: 'F, any other code',
    paymentResult: '—',
    meaning: 'The payment failed at call level; the outcome is marked as decided by a call-level code.',
    guard: 'isCallFailed',
    target: 'failed',
    test: 'row call-failed: F other → failed, marked call-level',
  },
  {
    id: 'unknown-exception',
    result: 'U',
    paymentResult: '—',
    meaning:
      'Unknown exception: inquire again (REQUEST_TRAFFIC_EXCEED_LIMIT backs off harder); at expiry or after the last inquiry, cancel.',
    guard: 'isUnknownException',
    target: 'again-or-cancel',
    test: 'row unknown-exception: U → again, then cancel',
  },
  {
    id: 'no-result',
    result: 'no result received (timeout, network, HTTP status, bad body, bad signature)',
    paymentResult: '—',
    meaning: 'Unknown: inquire again; at expiry or after the last inquiry, cancel.',
    guard: 'isNoResult',
    target: 'again-or-cancel',
    test: 'row no-result: no result → again, then cancel',
  },
];

/** The row an inquiry outcome falls in. Exactly one row matches any outcome. */
export function classifyInquiry(outcome: InquiryOutcome): InquiryRowId {
  if (outcome.kind === 'no-result') return 'no-result';
  const { result, paymentResult } = outcome;
  switch (result.resultStatus) {
    case 'S':
      if (!paymentResult) return 'no-result'; // the schema already refuses this; fail closed regardless
      if (paymentResult.resultStatus === 'S') return 'paid';
      if (paymentResult.resultStatus === 'U') return 'processing';
      return paymentResult.resultCode === 'ORDER_IS_CLOSED' ? 'order-closed' : 'payment-failed';
    case 'F':
      if (result.resultCode === 'ORDER_NOT_EXIST') return 'order-not-exist';
      return lookupResultCode('inquiryPayment', result.resultCode, 'F').action === 'needs-person'
        ? 'integration-fault'
        : 'call-failed';
    case 'U':
      return 'unknown-exception';
  }
}

/** True when the answer is Alipay+ shedding load, so the next wait grows by the traffic multiplier. */
export function isTrafficLimited(outcome: { kind: string; result?: { resultCode: string } }): boolean {
  return outcome.kind === 'answer' && outcome.result?.resultCode === 'REQUEST_TRAFFIC_EXCEED_LIMIT';
}

/** How the machine treats a notification (`paymentResult` is S or F only). */
export const NOTIFICATION_TABLE = [
  { paymentResult: 'S', target: 'succeeded', guard: 'isNotifiedPaid' },
  { paymentResult: 'F, ORDER_IS_CLOSED', target: 'closed', guard: 'isNotifiedClosed' },
  { paymentResult: 'F, any other code', target: 'failed', guard: 'isNotifiedFailed' },
  {
    paymentResult: 'any, but the amount differs from the known amount',
    target: 'attention',
    guard: 'isAmountMismatch',
  },
] as const;

/** How the machine treats a cancel answer. */
export const CANCEL_TABLE = [
  { answer: 'S', target: 'cancelled', guard: 'isCancelled' },
  {
    answer: 'F, CANCEL_WINDOW_EXCEED',
    target: 'windowClosed: one more inquiry, then the refund path',
    guard: 'isCancelWindowExceeded',
  },
  {
    answer: 'F, ORDER_NOT_EXIST, once the payment has expired',
    target: 'closed (Alipay+ never had the order, and an expired pay can no longer be taken)',
    guard: 'isCancelOfUnknownExpiredOrder',
  },
  {
    answer: 'F, ORDER_NOT_EXIST, before the payment has expired',
    target: 'retry, not counted as a refusal: a pay may still be on its way (a close while the pay is out)',
    guard: '(default)',
  },
  {
    answer: 'F, any other code',
    target: `retry; after maxCancelFailures F answers, attention`,
    guard: 'isCancelRefused / isCancelRefusedTooOften',
  },
  {
    answer: 'U, or no result',
    target: 'retry until the cancel window ends, then windowClosed',
    guard: '(default)',
  },
] as const;

// ---- pay ------------------------------------------------------------------------------------------

export type PayRowId =
  | 'paid'
  | 'waiting-for-user'
  | 'payment-failed'
  | 'pay-refused'
  | 'in-process'
  | 'never-sent'
  | 'no-result';

/** Where a pay row leads: a final state, or the inquiry lifecycle (`awaitingResult`). */
export type PayRowTarget = 'succeeded' | 'failed' | 'attention' | 'awaitingResult';

export interface PayDecisionRow {
  readonly id: PayRowId;
  readonly answer: string;
  readonly modes: string;
  readonly meaning: string;
  readonly guard: string;
  readonly target: PayRowTarget;
  /** The title of the unit test in test/machine-decision-table.test.ts that covers this row. */
  readonly test: string;
}

/** The modes whose pay creates a code for the user to scan or open: its answer says nothing of payment. */
const CODE_MODES: readonly PayMode[] = ['order-code', 'entry-code'];

/** How the machine treats the answer to `pay` (spec §8). Exactly one row matches any answer. */
export const PAY_DECISION_TABLE: readonly PayDecisionRow[] = [
  {
    id: 'paid',
    answer: 'S',
    modes: 'user-presented, cashier',
    meaning: 'The payment succeeded.',
    guard: 'isPayPaid',
    target: 'succeeded',
    test: 'pay row paid: S (user-presented) → succeeded',
  },
  {
    id: 'waiting-for-user',
    answer: 'S or U',
    modes: 'order code, entry code',
    meaning:
      'The code was created and waits for the user: inquire, await the notification, cancel at expiry (the inquiry lifecycle).',
    guard: 'isPayWaitingForUser',
    target: 'awaitingResult',
    test: 'pay row waiting-for-user: S with an order code → the inquiry lifecycle',
  },
  {
    id: 'payment-failed',
    answer:
      'F, a business failure (USER_BALANCE_NOT_ENOUGH, EXPIRED_CODE, any code not marked "needs a person")',
    modes: 'any',
    meaning: 'The payment failed; nothing was taken.',
    guard: 'isPayFailed',
    target: 'failed',
    test: 'pay row payment-failed: F business failure → failed',
  },
  {
    id: 'pay-refused',
    answer: 'F, an integration fault (INVALID_SIGNATURE, PARAM_ILLEGAL, ...) or REPEAT_REQ_INCONSISTENT',
    modes: 'any',
    meaning:
      'The pay itself was refused, or an earlier pay with this ID had other content. What Alipay+ holds is unknown: a person must look.',
    guard: 'isPayRefused',
    target: 'attention',
    test: 'pay row pay-refused: F integration fault or REPEAT_REQ_INCONSISTENT → attention',
  },
  {
    id: 'in-process',
    answer: 'U (PAYMENT_IN_PROCESS, UNKNOWN_EXCEPTION, ...)',
    modes: 'user-presented, cashier',
    meaning:
      "The result is unknown: the seed's situation. Inquire, await the notification, cancel at expiry.",
    guard: 'isPayInProcess',
    target: 'awaitingResult',
    test: 'pay row in-process: U → the inquiry lifecycle',
  },
  {
    id: 'never-sent',
    answer:
      'never sent: the engine gave up waiting for a call slot at the cut-off, and no pay for this payment ever left it',
    modes: 'any',
    meaning:
      'Nothing reached Alipay+, so nothing can have been charged: failed, without an inquiry or a cancel (Alipay+ overloaded: see docs/operations.md).',
    guard: 'isPayNeverSent',
    target: 'failed',
    test: 'pay row never-sent: given up before any pay left → failed, no inquiry, no cancel',
  },
  {
    id: 'no-result',
    answer: 'no result (timeout, network, HTTP status, bad body, bad signature, not sent past expiry)',
    modes: 'any',
    meaning: 'The pay may or may not have been processed: the inquiry lifecycle finds out.',
    guard: 'isPayNoResult',
    target: 'awaitingResult',
    test: 'pay row no-result: no result → the inquiry lifecycle',
  },
];

/** The row a pay answer falls in, given the pay's mode. */
export function classifyPay(outcome: PayOutcome, mode: PayMode): PayRowId {
  if (outcome.kind === 'no-result') return outcome.reason === 'never-sent' ? 'never-sent' : 'no-result';
  const { result } = outcome;
  switch (result.resultStatus) {
    case 'S':
      return CODE_MODES.includes(mode) ? 'waiting-for-user' : 'paid';
    case 'U':
      return CODE_MODES.includes(mode) ? 'waiting-for-user' : 'in-process';
    case 'F':
      return lookupResultCode('pay', result.resultCode, 'F').action === 'needs-person'
        ? 'pay-refused'
        : 'payment-failed';
  }
}

// ---- after the cancel window ----------------------------------------------------------------------

/**
 * How the machine treats the inquiry it makes once the cancel window has closed (spec §9): was the
 * payment paid, and so is money owed back?
 */
export const WINDOW_CLOSED_TABLE = [
  {
    answer: 'S/S: paid (and the merchant was never told "succeeded")',
    target: 'refunding when the policy sets autoRefund; else attention (refund-due)',
    guard: 'isPaidWithAutoRefund / isPaid',
  },
  { answer: 'S/F ORDER_IS_CLOSED', target: 'closed', guard: 'isOrderClosed' },
  { answer: 'S/F any other code', target: 'failed', guard: 'isPaymentFailed' },
  {
    answer: 'F, a code marked "needs a person"',
    target: 'attention (integration-fault)',
    guard: 'isIntegrationFault',
  },
  { answer: 'F, any other code', target: 'failed', guard: 'isCallFailed' },
  {
    answer: 'S/U, F ORDER_NOT_EXIST, U, or no result',
    target:
      'inquire again on the cancel retry schedule; after maxWindowChecks, once the payment has expired, attention (unresolved-after-window)',
    guard: '(default)',
  },
] as const;

// ---- refund ---------------------------------------------------------------------------------------

/** How the machine treats a refund answer. */
export const REFUND_TABLE = [
  { answer: 'S', target: 'refunded', guard: 'isRefunded' },
  { answer: 'F, any code', target: 'attention (refund-refused)', guard: 'isRefundRefused' },
  {
    answer: 'U, or no result',
    target: 'the identical request again (same refundRequestId), on the refund retry schedule, until S or F',
    guard: '(default)',
  },
] as const;

/** True when a refund answer says the money went back. */
export function isRefundSucceeded(outcome: RefundOutcome): boolean {
  return outcome.kind === 'answer' && outcome.result.resultStatus === 'S';
}
