import type { InquiryOutcome } from '../src/client/answers.js';
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
    target: 'attention (refund instead)',
    guard: 'isCancelWindowExceeded',
  },
  {
    answer: 'F, any other code',
    target: `retry; after maxCancelFailures F answers, attention`,
    guard: 'isCancelRefused / isCancelRefusedTooOften',
  },
  {
    answer: 'U, or no result',
    target: 'retry until the cancel window ends, then attention',
    guard: '(default)',
  },
] as const;
