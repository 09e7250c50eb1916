import { assign, fromPromise, setup } from 'xstate';
import type { CancelOutcome, InquiryOutcome, PayOutcome, RefundOutcome } from '../src/client/answers.js';
import type { Amount, PaymentRef } from '../src/protocol/common.js';
import type { NotifyPaymentRequest } from '../src/protocol/notify-payment.js';
import type { PayMode } from '../src/protocol/pay.js';
import { lookupResultCode } from '../src/protocol/result-codes.js';
import {
  classifyInquiry,
  classifyPay,
  INQUIRY_DECISION_TABLE,
  type InquiryRowId,
  isRefundSucceeded,
  isTrafficLimited,
  PAY_DECISION_TABLE,
  type PayRowId,
} from './decision-table.js';

const TRAFFIC_LIMITED = 'REQUEST_TRAFFIC_EXCEED_LIMIT';

import { isPlan } from './decision-model.js';
import { firstInquiryAt, nextInquiryAt } from './inquiry-schedule.js';
import type {
  AttentionReason,
  CancelReason,
  DecidedBy,
  FinalStatus,
  LateNotification,
  LifecycleOutcome,
  PaymentDetails,
  RefundDetails,
} from './outcome.js';
import {
  type LifecycleInput,
  type ResolvedPolicy,
  resolveLifecycleInput,
  retryWait,
  scheduleAt,
} from './policy.js';
import { refundRequestIdFor } from './refund-request-id.js';

/** What an invoked call resolves with: the client's outcome and when it arrived (epoch ms). */
export interface CallResult<T> {
  outcome: T;
  at: number;
  /**
   * The adaptive plan for the wallet this answer names (`pspId`), when the lifecycle had no wallet
   * yet: the engine plans, the machine takes it (once) and decides the waits from it.
   */
  plan?: readonly number[];
}

/** Input of the invoked `inquiryPayment` and `cancelPayment` actors. */
export interface CallInput {
  paymentRequestId: string;
  ref: PaymentRef;
  /** 1 for the first inquiry (or cancel attempt), 2 for the second, ... A re-run after restore keeps its number. */
  attempt: number;
  /** An inquiry's: what it is for (the engine admits a last look before routine polls). */
  purpose?: InquiryPurpose;
  /** An inquiry's: the payment's expiry; a routine poll is worth nothing after it (the last look is). */
  notAfter?: number;
}

/**
 * Why an inquiry is sent: a routine `poll` while the result is open, the `last-look` at expiry, or the
 * `window-check` after the cancel window closed.
 */
export type InquiryPurpose = 'poll' | 'last-look' | 'window-check';

/** Input of the invoked `pay` actor. The engine holds the request and sends exactly it. */
export interface PayCallInput {
  paymentRequestId: string;
  /** 1 for the first pay; a re-run after a restore keeps its number. */
  attempt: number;
  /**
   * The payment's expiry (epoch ms): the actor must not send the pay at or after it, and answers a
   * `no-result` with reason `not-sent` instead. A pay re-run after a restore carries it too, so no
   * pay ever goes out after expiry, however late the process comes back.
   */
  notAfter: number;
}

/** Input of the invoked `refund` actor: the identical request on every attempt. */
export interface RefundCallInput {
  paymentRequestId: string;
  ref: PaymentRef;
  refundRequestId: string;
  refundAmount: Amount;
  attempt: number;
}

export type LifecycleEvent =
  /** A notification whose signature and schema were already verified. */
  | { type: 'NOTIFIED'; notification: NotifyPaymentRequest; at: number }
  /** The merchant closes the payment early: cancel now. */
  | { type: 'CLOSE'; at: number }
  /** Sent once after a restore: re-arms every timer from the absolute deadlines in context. */
  | { type: 'RESUME'; at: number }
  /**
   * Alipay+ answers again after an incident: a cancel waiting to retry goes now rather than at the
   * end of a wait that grew while every try failed. Ignored in every other state.
   */
  | { type: 'RETRY_NOW'; at: number };

interface AnswerSummary {
  at: number;
  row: InquiryRowId;
  code: string;
  status?: 'S' | 'F' | 'U';
  paymentCode?: string;
  paymentStatus?: 'S' | 'F' | 'U';
}

interface CancelProgress {
  reason: CancelReason;
  startedAt: number;
  /** Cancel requests sent so far, the one in flight included. */
  attempts: number;
  /** F answers other than CANCEL_WINDOW_EXCEED. */
  failures: number;
  nextAttemptAt: number;
  lastCode?: string;
}

interface PayProgress {
  mode: PayMode;
  /** Pay requests started (a re-send after a restore is not counted: it carries the same number). */
  attempts: number;
  row?: PayRowId;
  lastCode?: string;
}

/** Inquiries made once the cancel window has closed, to learn whether money is owed back. */
interface WindowChecks {
  checks: number;
  nextCheckAt: number;
}

interface RefundProgress extends RefundDetails {
  startedAt: number;
  attempts: number;
  nextAttemptAt: number;
  lastCode?: string;
}

/**
 * What a new context holds until it learns something: one frozen empty object and list for every
 * lifecycle, not two new ones each (100,000 in flight). Every change makes a new one (`mergeDetails`,
 * `recordLateNotification`), and `settle` copies, so nothing ever writes into these.
 */
const NO_DETAILS: PaymentDetails = Object.freeze({}) as PaymentDetails;
const NO_LATE_NOTIFICATIONS: LateNotification[] = Object.freeze([]) as unknown as LateNotification[];

/** The lifecycle's context. JSON only, so that a snapshot survives `JSON.stringify` and a restart. */
export interface LifecycleContext {
  paymentRequestId: string;
  amount?: { currency: string; value: string };
  createdAt: number;
  expiresAt: number;
  cancelWindowEndsAt: number;
  policy: ResolvedPolicy;
  /** The wallet, for the adaptive schedule's learning: from the input, else the first answer's `pspId`. */
  walletKey?: string;
  /** The adaptive schedule's inquiry times (ms from `createdAt`), once the lifecycle has them. */
  plan?: readonly number[];
  /** The latest time an answer showed the payment undecided (in process, not yet known). */
  undecidedAt?: number;
  /** The latest time the lifecycle has seen, from event stamps. Delays are measured from here. */
  now: number;
  nextInquiryAt: number;
  /** When the latest inquiry was sent. */
  lastInquiryAt?: number;
  inquiries: number;
  lastAnswer?: AnswerSummary;
  cancel?: CancelProgress;
  /** Present when the lifecycle was started by `pay`. */
  pay?: PayProgress;
  windowChecks?: WindowChecks;
  refund?: RefundProgress;
  details: PaymentDetails;
  lateNotifications: LateNotification[];
  outcome?: LifecycleOutcome;
}

const notProvided = (name: string) =>
  fromPromise<never, CallInput>(async () => {
    throw new Error(
      `the ${name} actor was not provided: use paymentLifecycleMachine.provide({ actors: { ${name} } })`,
    );
  });

type AnyEvent = {
  type: string;
  output?: unknown;
  at?: number;
  error?: unknown;
  notification?: NotifyPaymentRequest;
};

/** The inquiry outcome carried by a done event; an error event counts as "no result received". */
function inquiryOf(event: AnyEvent): InquiryOutcome {
  const output = event.output as CallResult<InquiryOutcome> | undefined;
  if (output?.outcome) return output.outcome;
  return { kind: 'no-result', reason: 'network', detail: `the inquiry actor failed: ${String(event.error)}` };
}

function payOf(event: AnyEvent): PayOutcome {
  const output = event.output as CallResult<PayOutcome> | undefined;
  if (output?.outcome) return output.outcome;
  return { kind: 'no-result', reason: 'network', detail: `the pay actor failed: ${String(event.error)}` };
}

function refundOf(event: AnyEvent): RefundOutcome {
  const output = event.output as CallResult<RefundOutcome> | undefined;
  if (output?.outcome) return output.outcome;
  return { kind: 'no-result', reason: 'network', detail: `the refund actor failed: ${String(event.error)}` };
}

function payRow(context: LifecycleContext, event: AnyEvent): PayRowId {
  return classifyPay(payOf(event), context.pay?.mode ?? 'user-presented');
}

/** What a refund gives back: what the wallet says was paid, else the amount the lifecycle knows. */
function refundAmountOf(context: LifecycleContext, event: AnyEvent): Amount | undefined {
  const outcome = inquiryOf(event);
  const paid = outcome.kind === 'answer' ? outcome.paymentAmount : undefined;
  const amount = paid ?? context.details.paymentAmount ?? context.amount;
  return amount ? { currency: amount.currency, value: amount.value } : undefined;
}

/** Rows that show the wallet had not decided when the answer was given. */
const UNDECIDED_ROWS: ReadonlySet<string> = new Set([
  'processing',
  'order-not-exist',
  'waiting-for-user',
  'in-process',
]);

/**
 * What an answer teaches the lifecycle about its wallet: the first `pspId` becomes the wallet key
 * (unless the input named one), and with it comes the engine's plan for that wallet (adaptive only,
 * and only when the lifecycle had none). An answer that shows the payment undecided moves `undecidedAt`.
 */
function learnFromAnswer(
  context: LifecycleContext,
  event: AnyEvent,
  row: string,
  at: number,
): Partial<LifecycleContext> {
  const learned: Partial<LifecycleContext> = {};
  if (UNDECIDED_ROWS.has(row)) learned.undecidedAt = at;
  if (context.walletKey !== undefined) return learned;
  const output = event.output as CallResult<{ kind: string; pspId?: string | null }> | undefined;
  const pspId = output?.outcome?.kind === 'answer' ? output.outcome.pspId : undefined;
  if (typeof pspId !== 'string') return learned;
  learned.walletKey = pspId;
  if (isPlan(output?.plan) && !context.plan && context.policy.inquirySchedule === 'adaptive')
    learned.plan = output.plan;
  return learned;
}

function callCode(outcome: { kind: string; result?: { resultCode: string }; reason?: string }): string {
  return outcome.kind === 'answer' ? (outcome.result?.resultCode ?? '?') : `NO_RESULT:${outcome.reason}`;
}

/**
 * An F answer to a cancel that counts towards `maxCancelFailures`. ORDER_NOT_EXIST does not: before
 * expiry a pay may still be on its way to Alipay+ (a merchant who closes while the pay is out), so
 * the cancel is sent again, like after a U; once the payment has expired it is `closed`.
 */
function isCancelRefusal(outcome: CancelOutcome): boolean {
  return (
    outcome.kind === 'answer' &&
    outcome.result.resultStatus === 'F' &&
    outcome.result.resultCode !== 'ORDER_NOT_EXIST'
  );
}

function cancelOf(event: AnyEvent): CancelOutcome {
  const output = event.output as CallResult<CancelOutcome> | undefined;
  if (output?.outcome) return output.outcome;
  return { kind: 'no-result', reason: 'network', detail: `the cancel actor failed: ${String(event.error)}` };
}

/** The time an event happened: stamped events carry it; timer and error events happen "now". */
function timeOf(context: LifecycleContext, event: AnyEvent): number {
  const output = event.output as { at?: number } | undefined;
  const at =
    typeof event.at === 'number' ? event.at : typeof output?.at === 'number' ? output.at : context.now;
  return Math.max(context.now, at);
}

function inquiryRef(context: LifecycleContext): PaymentRef {
  // Exactly one reference: paymentId once known (it is unambiguous), else our own request ID.
  return context.details.paymentId
    ? { paymentId: context.details.paymentId }
    : { paymentRequestId: context.paymentRequestId };
}

function mergeDetails(details: PaymentDetails, source: Record<string, unknown>): PaymentDetails {
  const merged: PaymentDetails = { ...details };
  const keys = [
    'paymentId',
    'paymentAmount',
    'paymentTime',
    'customerId',
    'walletBrandName',
    'pspId',
    'acquirerId',
    'settlementAmount',
    'settlementQuote',
    'transactions',
    'orderCodeForm',
    'paymentUrl',
  ] as const;
  for (const key of keys) {
    const value = source[key];
    if (value !== undefined && value !== null)
      (merged as Record<string, unknown>)[key] = structuredClone(value);
  }
  return merged;
}

function summarize(outcome: InquiryOutcome, at: number): AnswerSummary {
  const row = classifyInquiry(outcome);
  if (outcome.kind === 'no-result') return { at, row, code: `NO_RESULT:${outcome.reason}` };
  const summary: AnswerSummary = {
    at,
    row,
    code: outcome.result.resultCode,
    status: outcome.result.resultStatus,
  };
  if (outcome.paymentResult) {
    summary.paymentCode = outcome.paymentResult.resultCode;
    summary.paymentStatus = outcome.paymentResult.resultStatus;
  }
  return summary;
}

function sameAmount(a: { currency: string; value: string }, b: { currency: string; value: string }): boolean {
  return a.currency === b.currency && BigInt(a.value) === BigInt(b.value);
}

interface SettleParams {
  status: FinalStatus;
  decidedBy: DecidedBy;
  attentionReason?: AttentionReason;
}

function settle(context: LifecycleContext, at: number, params: SettleParams): LifecycleOutcome {
  const outcome: LifecycleOutcome = {
    status: params.status,
    paymentRequestId: context.paymentRequestId,
    decidedBy: params.decidedBy,
    // Copies: the context may share its empty ones, and an outcome is the caller's to keep.
    details: { ...context.details },
    inquiries: context.inquiries,
    cancelAttempts: context.cancel?.attempts ?? 0,
    decidedAt: at,
    lateNotifications: [...context.lateNotifications],
  };
  if (context.details.paymentId) outcome.paymentId = context.details.paymentId;
  if (params.attentionReason) outcome.attentionReason = params.attentionReason;
  if (context.cancel) outcome.cancelReason = context.cancel.reason;
  if (context.refund) {
    const { refundRequestId, refundAmount, refundId, refundTime } = context.refund;
    const refund: RefundDetails = { refundRequestId, refundAmount };
    if (refundId) refund.refundId = refundId;
    if (refundTime) refund.refundTime = refundTime;
    outcome.refund = refund;
  }
  return outcome;
}

/** What a pay answer decides, as the outcome records it. */
function decidedByPay(outcome: PayOutcome, row: PayRowId): DecidedBy {
  if (outcome.kind === 'no-result')
    return { source: 'pay', level: 'call', code: `NO_RESULT:${outcome.reason}` };
  const decided: DecidedBy = {
    source: 'pay',
    level: row === 'paid' || row === 'payment-failed' ? 'payment' : 'call',
    code: outcome.result.resultCode,
    status: outcome.result.resultStatus,
  };
  if (outcome.result.resultMessage) decided.message = outcome.result.resultMessage;
  return decided;
}

/** What an inquiry answer decides, as the outcome records it. */
function decidedByInquiry(outcome: InquiryOutcome): DecidedBy {
  if (outcome.kind === 'no-result')
    return { source: 'inquiry', level: 'call', code: `NO_RESULT:${outcome.reason}` };
  const row = classifyInquiry(outcome);
  const byPayment = row === 'paid' || row === 'order-closed' || row === 'payment-failed';
  const result = byPayment && outcome.paymentResult ? outcome.paymentResult : outcome.result;
  const decided: DecidedBy = {
    source: 'inquiry',
    level: byPayment ? 'payment' : 'call',
    code: result.resultCode,
    status: result.resultStatus,
  };
  if (result.resultMessage) decided.message = result.resultMessage;
  return decided;
}

function decidedByNotification(notification: NotifyPaymentRequest): DecidedBy {
  const { paymentResult } = notification;
  const decided: DecidedBy = {
    source: 'notification',
    level: 'payment',
    code: paymentResult.resultCode,
    status: paymentResult.resultStatus,
  };
  if (paymentResult.resultMessage) decided.message = paymentResult.resultMessage;
  return decided;
}

const FINAL_ROWS: Record<string, FinalStatus> = {};
for (const row of INQUIRY_DECISION_TABLE) {
  if (row.target !== 'again-or-cancel') FINAL_ROWS[row.id] = row.target;
}

/**
 * The deadline of the one timer of each plain waiting state (epoch ms): the machine's own delays
 * read it, and so does {@link wakeAt}. Nothing but that timer, a notification or a CLOSE can move a
 * lifecycle out of these states.
 */
const WAITS = {
  'awaitingResult.pending': (context: LifecycleContext) => context.nextInquiryAt,
  'awaitingNotification.waiting': (context: LifecycleContext) => context.expiresAt,
} as const;

/**
 * What a state means to the engine, read with `snapshot.hasTag()` rather than from state names (a
 * renamed state keeps its tags, and `test/lifecycle-tags.test.ts` checks which states carry them):
 * - `payUndecided`: the pay has not been decided; `engine.pay()` waits for the lifecycle to leave it.
 * - `pollWait`: its timer starts a routine poll, which may wait for a call slot behind more urgent
 *   calls (and is not sent at all past the payment's expiry: the last look replaces it).
 * - `readByTimer`: the state only reads (an inquiry). Entered by its timer (or by RESUME at its
 *   deadline) it is not written: a crash before the answer restores the waiting state, past its
 *   deadline, which inquires again. Its answer's write carries the audit entry.
 * - `sealed`: a cancel may be on its way, so a notification can no longer change the outcome: it is
 *   recorded as late.
 * - `cancelCall`: a call's answer here is the cancel's, and its code is the one the audit shows.
 * - `cancelRetryWait`: a cancel waits to be sent again; RETRY_NOW sends it at once (the engine does,
 *   when Alipay+ answers again after an incident).
 */
export type LifecycleTag =
  | 'payUndecided'
  | 'pollWait'
  | 'readByTimer'
  | 'sealed'
  | 'cancelCall'
  | 'cancelRetryWait';

/**
 * When a lifecycle resting in a plain waiting state (`awaitingResult.pending`,
 * `awaitingNotification.waiting`) next has something to do on its own: its timer's deadline. An
 * engine may keep such a lifecycle as its stored snapshot alone, without an actor, and restore it
 * then (or when an event for it arrives). `undefined` for every other state.
 */
export function wakeAt(state: string, context: LifecycleContext): number | undefined {
  return state in WAITS ? WAITS[state as keyof typeof WAITS](context) : undefined;
}

/**
 * The payment lifecycle: from "result unknown" to exactly one final outcome.
 *
 * Pure: no I/O, no clock reads, no globals. The calls are invoked actors provided by name
 * (`inquiryPayment`, `cancelPayment`); time comes from event stamps (`at`) and call results, and
 * every deadline is absolute in context, so that RESUME after a restore re-arms each timer for the
 * time that remains.
 */
export const paymentLifecycleMachine = setup({
  types: {
    context: {} as LifecycleContext,
    events: {} as LifecycleEvent,
    input: {} as LifecycleInput,
    output: {} as LifecycleOutcome,
    tags: {} as LifecycleTag,
  },
  actors: {
    pay: notProvided('pay') as unknown as ReturnType<
      typeof fromPromise<CallResult<PayOutcome>, PayCallInput>
    >,
    inquiryPayment: notProvided('inquiryPayment') as unknown as ReturnType<
      typeof fromPromise<CallResult<InquiryOutcome>, CallInput>
    >,
    refund: notProvided('refund') as unknown as ReturnType<
      typeof fromPromise<CallResult<RefundOutcome>, RefundCallInput>
    >,
    cancelPayment: notProvided('cancelPayment') as unknown as ReturnType<
      typeof fromPromise<CallResult<CancelOutcome>, CallInput>
    >,
  },
  delays: {
    untilNextInquiry: ({ context }) => Math.max(0, WAITS['awaitingResult.pending'](context) - context.now),
    untilExpiry: ({ context }) => Math.max(0, WAITS['awaitingNotification.waiting'](context) - context.now),
    untilCancelRetry: ({ context }) =>
      Math.max(0, (context.cancel?.nextAttemptAt ?? context.now) - context.now),
    untilCancelWindowEnds: ({ context }) => Math.max(0, context.cancelWindowEndsAt - context.now),
    untilWindowCheck: ({ context }) =>
      Math.max(0, (context.windowChecks?.nextCheckAt ?? context.now) - context.now),
    untilRefundRetry: ({ context }) =>
      Math.max(0, (context.refund?.nextAttemptAt ?? context.now) - context.now),
  },
  guards: {
    // One guard per row of the pay table (machines/decision-table.ts).
    isPayPaid: ({ context, event }) => payRow(context, event) === 'paid',
    isPayWaitingForUser: ({ context, event }) => payRow(context, event) === 'waiting-for-user',
    isPayFailed: ({ context, event }) => payRow(context, event) === 'payment-failed',
    isPayRefused: ({ context, event }) => payRow(context, event) === 'pay-refused',
    isPayInProcess: ({ context, event }) => payRow(context, event) === 'in-process',
    isPayNoResult: ({ context, event }) => payRow(context, event) === 'no-result',
    isPayNeverSent: ({ context, event }) => payRow(context, event) === 'never-sent',
    isStartedByPay: ({ context }) => context.pay !== undefined,
    /** No pay goes out at or after expiry. */
    isPastExpiry: ({ context }) => context.now >= context.expiresAt,
    /** A RESUME at or past a waiting state's deadline: its timer would fire at once. */
    isInquiryDue: ({ context, event }) => timeOf(context, event) >= WAITS['awaitingResult.pending'](context),
    isExpiryDue: ({ context, event }) =>
      timeOf(context, event) >= WAITS['awaitingNotification.waiting'](context),

    // One guard per row of the decision table (machines/decision-table.ts).
    isPaid: ({ event }) => classifyInquiry(inquiryOf(event)) === 'paid',
    isOrderClosed: ({ event }) => classifyInquiry(inquiryOf(event)) === 'order-closed',
    isPaymentFailed: ({ event }) => classifyInquiry(inquiryOf(event)) === 'payment-failed',
    isStillProcessing: ({ event }) => classifyInquiry(inquiryOf(event)) === 'processing',
    isOrderNotYetKnown: ({ event }) => classifyInquiry(inquiryOf(event)) === 'order-not-exist',
    isIntegrationFault: ({ event }) => classifyInquiry(inquiryOf(event)) === 'integration-fault',
    isCallFailed: ({ event }) => classifyInquiry(inquiryOf(event)) === 'call-failed',
    isUnknownException: ({ event }) => classifyInquiry(inquiryOf(event)) === 'unknown-exception',
    isNoResult: ({ event }) => classifyInquiry(inquiryOf(event)) === 'no-result',

    // When an answer is not final: cancel, wait for the notification, or inquire again.
    isLastLookDone: ({ context }) => (context.lastInquiryAt ?? Number.NEGATIVE_INFINITY) >= context.expiresAt,
    isInquiryBudgetSpent: ({ context }) => context.inquiries >= context.policy.maxInquiries,
    shouldAwaitNotification: ({ context }) =>
      context.policy.awaitNotificationAfter !== undefined &&
      context.inquiries >= context.policy.awaitNotificationAfter,

    // Notifications.
    isAmountMismatch: ({ context, event }) => {
      const notification = event.type === 'NOTIFIED' ? event.notification : undefined;
      if (!notification) return false;
      if (notification.paymentRequestId !== context.paymentRequestId) return true;
      const amount = notification.paymentAmount;
      return Boolean(context.amount && amount && !sameAmount(context.amount, amount));
    },
    isNotifiedPaid: ({ event }) =>
      event.type === 'NOTIFIED' && event.notification.paymentResult.resultStatus === 'S',
    isNotifiedClosed: ({ event }) =>
      event.type === 'NOTIFIED' &&
      event.notification.paymentResult.resultStatus === 'F' &&
      event.notification.paymentResult.resultCode === 'ORDER_IS_CLOSED',
    isNotifiedFailed: ({ event }) =>
      event.type === 'NOTIFIED' && event.notification.paymentResult.resultStatus === 'F',

    // Cancel answers.
    isCancelled: ({ event }) => {
      const outcome = cancelOf(event);
      return outcome.kind === 'answer' && outcome.result.resultStatus === 'S';
    },
    isCancelWindowExceeded: ({ event }) => {
      const outcome = cancelOf(event);
      return (
        outcome.kind === 'answer' &&
        outcome.result.resultStatus === 'F' &&
        lookupResultCode('cancelPayment', outcome.result.resultCode, 'F').action === 'refund-instead'
      );
    },
    // Alipay+ never had the order, and once it has expired no pay for it can be taken any more.
    isCancelOfUnknownExpiredOrder: ({ context, event }) => {
      const outcome = cancelOf(event);
      return (
        outcome.kind === 'answer' &&
        outcome.result.resultStatus === 'F' &&
        outcome.result.resultCode === 'ORDER_NOT_EXIST' &&
        timeOf(context, event) >= context.expiresAt
      );
    },
    isCancelRefused: ({ event }) => isCancelRefusal(cancelOf(event)),
    isCancelRefusedTooOften: ({ context, event }) =>
      isCancelRefusal(cancelOf(event)) &&
      (context.cancel?.failures ?? 0) + 1 >= context.policy.maxCancelFailures,
    // Both the planned attempt and the present must be inside the window: after a restore that comes
    // back past the window's end, the retry timer fires at once too, and must not send a cancel.
    isCancelRetryBeforeWindowEnds: ({ context }) =>
      (context.cancel?.nextAttemptAt ?? Number.POSITIVE_INFINITY) < context.cancelWindowEndsAt &&
      context.now < context.cancelWindowEndsAt,

    // After the cancel window.
    /** Paid, the policy refunds by itself, and the amount to give back is known. */
    isPaidWithAutoRefund: ({ context, event }) =>
      classifyInquiry(inquiryOf(event)) === 'paid' &&
      context.policy.autoRefund &&
      refundAmountOf(context, event) !== undefined,
    // Only once the payment has expired: until then the wallet may still decide (a long expiry
    // that outlives the cancel window), and asking on is the only way to learn it.
    isWindowCheckBudgetSpent: ({ context }) =>
      (context.windowChecks?.checks ?? 0) >= context.policy.maxWindowChecks &&
      context.now >= context.expiresAt,

    // Refund answers.
    isRefunded: ({ event }) => isRefundSucceeded(refundOf(event)),
    isRefundRefused: ({ event }) => {
      const outcome = refundOf(event);
      return outcome.kind === 'answer' && outcome.result.resultStatus === 'F';
    },
  },
  actions: {
    observeTime: assign({ now: ({ context, event }) => timeOf(context, event) }),

    countPayAttempt: assign(({ context }) => ({
      pay: context.pay && { ...context.pay, attempts: context.pay.attempts + 1 },
    })),

    /** A pay answer: its details, and the first inquiry one schedule step later (at once past expiry). */
    recordPayAnswer: assign(({ context, event }) => {
      const outcome = payOf(event);
      const at = timeOf(context, event);
      const pay = context.pay as PayProgress;
      const row = payRow(context, event);
      const learned = learnFromAnswer(context, event, row, at);
      const next = { ...context, ...learned };
      return {
        ...learned,
        now: at,
        pay: { ...pay, row, lastCode: callCode(outcome) },
        details: outcome.kind === 'answer' ? mergeDetails(context.details, outcome) : context.details,
        nextInquiryAt: nextInquiryAt(next, at, false),
      };
    }),

    /** Entered `paying` at or after expiry: no pay; the inquiry lifecycle takes its last look at once. */
    skipPay: assign(({ context }) => ({
      pay: { ...(context.pay as PayProgress), lastCode: 'NOT_SENT:expired' },
      nextInquiryAt: context.now,
    })),

    settleByPay: assign(({ context, event }) => {
      const outcome = payOf(event);
      const row = payRow(context, event);
      const status: FinalStatus =
        row === 'paid'
          ? 'succeeded'
          : row === 'payment-failed' || row === 'never-sent'
            ? 'failed'
            : 'attention';
      const params: SettleParams = { status, decidedBy: decidedByPay(outcome, row) };
      if (status === 'attention') params.attentionReason = 'pay-refused';
      return { outcome: settle(context, context.now, params) };
    }),

    /** After a restore the call in flight is sent again, now: that send is the one that counts. */
    resendAfterRestore: assign(({ context, event }) => {
      const now = timeOf(context, event);
      return { now, lastInquiryAt: now };
    }),

    /** A polling timer fired: the inquiry is sent now, at its deadline. */
    sendInquiry: assign(({ context }) => {
      const now = Math.max(context.now, context.nextInquiryAt);
      return { now, lastInquiryAt: now, inquiries: context.inquiries + 1 };
    }),
    /** The notification-wait cut-off fired: one last look, at expiry. */
    sendLastLook: assign(({ context }) => {
      const now = Math.max(context.now, context.expiresAt);
      return { now, lastInquiryAt: now, inquiries: context.inquiries + 1 };
    }),

    recordAnswer: assign(({ context, event }) => {
      const outcome = inquiryOf(event);
      const at = timeOf(context, event);
      const lastAnswer = summarize(outcome, at);
      return {
        ...learnFromAnswer(context, event, lastAnswer.row, at),
        now: at,
        lastAnswer,
        details: outcome.kind === 'answer' ? mergeDetails(context.details, outcome) : context.details,
      };
    }),

    /** Next inquiry: by the fixed schedule or the plan (machines/inquiry-schedule.ts), clamped to expiry. */
    scheduleNextInquiry: assign(({ context }) => ({
      nextInquiryAt: nextInquiryAt(context, context.now, context.lastAnswer?.code === TRAFFIC_LIMITED),
    })),

    recordNotification: assign(({ context, event }) => ({
      now: timeOf(context, event),
      details:
        event.type === 'NOTIFIED' ? mergeDetails(context.details, event.notification) : context.details,
    })),

    recordLateNotification: assign(({ context, event }, params: { state: string }) => {
      if (event.type !== 'NOTIFIED') return {};
      const { paymentResult } = event.notification;
      const late: LateNotification = {
        at: timeOf(context, event),
        state: params.state,
        resultStatus: paymentResult.resultStatus,
        resultCode: paymentResult.resultCode,
        flagged: paymentResult.resultStatus === 'S',
      };
      return { now: late.at, lateNotifications: [...context.lateNotifications, late] };
    }),

    startCancel: assign(({ context, event }, params: { reason: CancelReason }) => {
      const now = timeOf(context, event);
      return {
        now,
        cancel: { reason: params.reason, startedAt: now, attempts: 0, failures: 0, nextAttemptAt: now },
      };
    }),

    countCancelAttempt: assign(({ context }) => ({
      cancel: context.cancel && { ...context.cancel, attempts: context.cancel.attempts + 1 },
    })),

    scheduleCancelRetry: assign(({ context, event }) => {
      const outcome = cancelOf(event);
      const now = timeOf(context, event);
      const cancel = context.cancel as CancelProgress;
      const refused = isCancelRefusal(outcome);
      const base = scheduleAt(context.policy.cancelRetryScheduleMs, cancel.attempts - 1);
      const scheduled = isTrafficLimited(outcome) ? base * context.policy.trafficLimitMultiplier : base;
      const wait = retryWait(scheduled, context.policy, context.paymentRequestId, 'cancel', cancel.attempts);
      return {
        now,
        cancel: {
          ...cancel,
          failures: cancel.failures + (refused ? 1 : 0),
          nextAttemptAt: now + wait,
          lastCode: outcome.kind === 'answer' ? outcome.result.resultCode : `NO_RESULT:${outcome.reason}`,
        },
      };
    }),

    recordCancelAnswer: assign(({ context, event }) => {
      const cancel = context.cancel as CancelProgress;
      return { now: timeOf(context, event), cancel: { ...cancel, lastCode: callCode(cancelOf(event)) } };
    }),

    /** The cancel window has closed (or Alipay+ says so): inquire once more, now. */
    startWindowCheck: assign(({ context, event }) => {
      const now = Math.max(timeOf(context, event), context.now);
      return { now, windowChecks: { checks: 0, nextCheckAt: now } };
    }),
    /** The retry timer ran to the end of the cancel window, with the cancel still unconfirmed. */
    startWindowCheckAtWindowEnd: assign(({ context }) => {
      const now = Math.max(context.now, context.cancelWindowEndsAt);
      return { now, windowChecks: { checks: 0, nextCheckAt: now } };
    }),
    sendWindowCheck: assign(({ context }) => {
      const checks = context.windowChecks as WindowChecks;
      const now = Math.max(context.now, checks.nextCheckAt);
      return {
        now,
        lastInquiryAt: now,
        inquiries: context.inquiries + 1,
        windowChecks: { ...checks, checks: checks.checks + 1 },
      };
    }),
    scheduleWindowCheck: assign(({ context }) => {
      const checks = context.windowChecks as WindowChecks;
      const base = scheduleAt(context.policy.cancelRetryScheduleMs, checks.checks - 1);
      const limited = context.lastAnswer?.code === TRAFFIC_LIMITED;
      const scheduled = limited ? base * context.policy.trafficLimitMultiplier : base;
      const wait = retryWait(scheduled, context.policy, context.paymentRequestId, 'window', checks.checks);
      return { windowChecks: { ...checks, nextCheckAt: context.now + wait } };
    }),

    /** Past the window, an inquiry decided: settle as it says, with the reason given. */
    settleAfterWindow: assign(
      ({ context, event }, params: { status: FinalStatus; attentionReason?: AttentionReason }) => {
        const settleParams: SettleParams = {
          status: params.status,
          decidedBy: decidedByInquiry(inquiryOf(event)),
        };
        if (params.attentionReason) settleParams.attentionReason = params.attentionReason;
        return { outcome: settle(context, context.now, settleParams) };
      },
    ),

    startRefund: assign(({ context, event }) => {
      const now = timeOf(context, event);
      const refund: RefundProgress = {
        refundRequestId: refundRequestIdFor(context.paymentRequestId),
        refundAmount: refundAmountOf(context, event) as Amount,
        startedAt: now,
        attempts: 0,
        nextAttemptAt: now,
      };
      return { now, refund };
    }),
    countRefundAttempt: assign(({ context }) => ({
      refund: context.refund && { ...context.refund, attempts: context.refund.attempts + 1 },
    })),
    scheduleRefundRetry: assign(({ context, event }) => {
      const outcome = refundOf(event);
      const now = timeOf(context, event);
      const refund = context.refund as RefundProgress;
      const base = scheduleAt(context.policy.cancelRetryScheduleMs, refund.attempts - 1);
      const scheduled = isTrafficLimited(outcome) ? base * context.policy.trafficLimitMultiplier : base;
      const wait = retryWait(scheduled, context.policy, context.paymentRequestId, 'refund', refund.attempts);
      return { now, refund: { ...refund, nextAttemptAt: now + wait, lastCode: callCode(outcome) } };
    }),
    settleByRefund: assign(
      ({ context, event }, params: { status: FinalStatus; attentionReason?: AttentionReason }) => {
        const outcome = refundOf(event);
        const now = timeOf(context, event);
        const refund: RefundProgress = { ...(context.refund as RefundProgress), lastCode: callCode(outcome) };
        if (outcome.kind === 'answer' && outcome.result.resultStatus === 'S') {
          if (outcome.refundId) refund.refundId = outcome.refundId;
          if (outcome.refundTime) refund.refundTime = outcome.refundTime;
        }
        const decidedBy: DecidedBy = { source: 'refund', level: 'call', code: callCode(outcome) };
        if (outcome.kind === 'answer') {
          decidedBy.status = outcome.result.resultStatus;
          if (outcome.result.resultMessage) decidedBy.message = outcome.result.resultMessage;
        }
        const settleParams: SettleParams = { status: params.status, decidedBy };
        if (params.attentionReason) settleParams.attentionReason = params.attentionReason;
        const next = { ...context, now, refund };
        return { now, refund, outcome: settle(next, now, settleParams) };
      },
    ),

    settleByInquiry: assign(({ context, event }) => {
      const outcome = inquiryOf(event);
      const row = classifyInquiry(outcome);
      const status = FINAL_ROWS[row] ?? 'attention';
      const params: SettleParams = { status, decidedBy: decidedByInquiry(outcome) };
      if (status === 'attention') params.attentionReason = 'integration-fault';
      return { outcome: settle(context, context.now, params) };
    }),

    settleByNotification: assign(({ context, event }, params: { status: FinalStatus }) => {
      if (event.type !== 'NOTIFIED') return {};
      const settleParams: SettleParams = {
        status: params.status,
        decidedBy: decidedByNotification(event.notification),
      };
      if (params.status === 'attention') {
        settleParams.attentionReason = 'amount-mismatch';
        settleParams.decidedBy = {
          ...settleParams.decidedBy,
          source: 'notification',
          code: 'AMOUNT_MISMATCH',
        };
      }
      return { outcome: settle(context, context.now, settleParams) };
    }),

    settleByCancel: assign(
      ({ context, event }, params: { status: FinalStatus; attentionReason?: AttentionReason }) => {
        const outcome = cancelOf(event);
        const at = timeOf(context, event);
        const decidedBy: DecidedBy =
          outcome.kind === 'answer'
            ? {
                source: 'cancel',
                level: 'call',
                code: outcome.result.resultCode,
                status: outcome.result.resultStatus,
              }
            : { source: 'cancel', level: 'call', code: `NO_RESULT:${outcome.reason}` };
        if (outcome.kind === 'answer' && outcome.result.resultMessage)
          decidedBy.message = outcome.result.resultMessage;
        const settleParams: SettleParams = { status: params.status, decidedBy };
        if (params.attentionReason) settleParams.attentionReason = params.attentionReason;
        const cancel = context.cancel as CancelProgress;
        // Only the F answer that ends in `cancel-refused` is a refusal; ORDER_NOT_EXIST past expiry is not.
        const refused =
          outcome.kind === 'answer' && outcome.result.resultStatus === 'F' && params.status === 'attention';
        const failures = cancel.failures + (refused ? 1 : 0);
        const next = { ...context, now: at, cancel: { ...cancel, failures } };
        return { now: at, cancel: next.cancel, outcome: settle(next, at, settleParams) };
      },
    ),
  },
}).createMachine({
  id: 'paymentLifecycle',
  context: ({ input }) => {
    const resolved = resolveLifecycleInput(input);
    const context: LifecycleContext = {
      paymentRequestId: resolved.paymentRequestId,
      createdAt: resolved.createdAt,
      expiresAt: resolved.expiresAt,
      cancelWindowEndsAt: resolved.cancelWindowEndsAt,
      policy: resolved.policy,
      now: resolved.startedAt,
      nextInquiryAt: firstInquiryAt({
        createdAt: resolved.createdAt,
        expiresAt: resolved.expiresAt,
        policy: resolved.policy,
        ...(resolved.inquiryPlan ? { plan: resolved.inquiryPlan } : {}),
      }),
      inquiries: 0,
      details: resolved.paymentId ? { paymentId: resolved.paymentId } : NO_DETAILS,
      lateNotifications: NO_LATE_NOTIFICATIONS,
    };
    if (resolved.amount) context.amount = resolved.amount;
    if (resolved.payMode) context.pay = { mode: resolved.payMode, attempts: 0 };
    if (resolved.walletKey !== undefined) context.walletKey = resolved.walletKey;
    if (resolved.inquiryPlan) context.plan = resolved.inquiryPlan;
    return context;
  },
  // A lifecycle started by pay begins before the pay is sent; one started by track, after.
  initial: 'starting',
  output: ({ context }) => context.outcome as LifecycleOutcome,
  states: {
    starting: {
      always: [{ guard: 'isStartedByPay', target: 'paying' }, { target: 'awaitingResult' }],
    },
    paying: {
      tags: ['payUndecided'],
      initial: 'checking',
      on: whileResultOpen(),
      states: {
        checking: {
          always: [
            { guard: 'isPastExpiry', target: '#paymentLifecycle.awaitingResult', actions: 'skipPay' },
            { target: 'sending' },
          ],
        },
        sending: {
          entry: 'countPayAttempt',
          invoke: {
            src: 'pay',
            input: ({ context }) => ({
              paymentRequestId: context.paymentRequestId,
              attempt: context.pay?.attempts ?? 1,
              notAfter: context.expiresAt,
            }),
            onDone: payTransitions(),
            // The call actor itself failed (it should not): "no result received".
            onError: { target: '#paymentLifecycle.awaitingResult', actions: 'recordPayAnswer' },
          },
          // The invoked pay is re-run by the restore itself (and refuses to go out past expiry).
          on: { RESUME: { actions: 'observeTime' } },
        },
      },
    },
    awaitingResult: {
      initial: 'pending',
      on: whileResultOpen(),
      states: {
        pending: {
          tags: ['pollWait'],
          after: { untilNextInquiry: { target: 'inquiring', actions: 'sendInquiry' } },
          on: {
            // Restored at or past its deadline: the inquiry goes out now, as the timer's would.
            RESUME: [
              { guard: 'isInquiryDue', target: 'inquiring', actions: ['observeTime', 'sendInquiry'] },
              { target: 'pending', reenter: true, actions: 'observeTime' },
            ],
          },
        },
        inquiring: {
          tags: ['readByTimer'],
          invoke: {
            src: 'inquiryPayment',
            input: inquiryInput('poll'),
            onDone: inquiryTransitions('polling'),
            // The call actor itself failed (it should not: the client never throws): "no result received".
            onError: { target: 'deciding', actions: 'recordAnswer' },
          },
          // The invoked call is re-run by the restore itself: RESUME records that it was sent again, now.
          on: { RESUME: { actions: 'resendAfterRestore' } },
        },
        /** A non-final answer was recorded: cancel, wait for the notification, or inquire again. */
        deciding: {
          always: [
            {
              guard: 'isLastLookDone',
              target: '#paymentLifecycle.cancelling',
              actions: { type: 'startCancel', params: { reason: 'expired' } },
            },
            {
              guard: 'isInquiryBudgetSpent',
              target: '#paymentLifecycle.cancelling',
              actions: { type: 'startCancel', params: { reason: 'max-inquiries' } },
            },
            { guard: 'shouldAwaitNotification', target: '#paymentLifecycle.awaitingNotification' },
            { target: 'pending', actions: 'scheduleNextInquiry' },
          ],
        },
      },
    },
    awaitingNotification: {
      initial: 'waiting',
      on: whileResultOpen(),
      states: {
        waiting: {
          after: { untilExpiry: { target: 'lastLook', actions: 'sendLastLook' } },
          on: {
            RESUME: [
              { guard: 'isExpiryDue', target: 'lastLook', actions: ['observeTime', 'sendLastLook'] },
              { target: 'waiting', reenter: true, actions: 'observeTime' },
            ],
          },
        },
        lastLook: {
          tags: ['readByTimer'],
          invoke: {
            src: 'inquiryPayment',
            input: inquiryInput('last-look'),
            onDone: inquiryTransitions('last-look'),
            onError: {
              target: '#paymentLifecycle.cancelling',
              actions: ['recordAnswer', { type: 'startCancel', params: { reason: 'expired' } }],
            },
          },
          on: { RESUME: { actions: 'resendAfterRestore' } },
        },
      },
    },
    cancelling: {
      tags: ['sealed', 'cancelCall'],
      initial: 'requesting',
      on: {
        // Once a cancel is on its way the only possible outcome is cancelled: record, change nothing.
        NOTIFIED: { actions: { type: 'recordLateNotification', params: { state: 'cancelling' } } },
      },
      states: {
        requesting: {
          entry: 'countCancelAttempt',
          invoke: {
            src: 'cancelPayment',
            input: ({ context }) => ({
              paymentRequestId: context.paymentRequestId,
              ref: { paymentRequestId: context.paymentRequestId },
              attempt: context.cancel?.attempts ?? 1,
            }),
            onDone: cancelTransitions(),
            onError: { target: 'retryWait', actions: 'scheduleCancelRetry' },
          },
          on: { RESUME: { actions: 'observeTime' } },
        },
        retryWait: {
          tags: ['cancelRetryWait'],
          after: {
            untilCancelRetry: {
              guard: 'isCancelRetryBeforeWindowEnds',
              target: 'requesting',
              actions: 'observeTime',
            },
            untilCancelWindowEnds: {
              target: '#paymentLifecycle.windowClosed',
              actions: 'startWindowCheckAtWindowEnd',
            },
          },
          on: {
            RESUME: { target: 'retryWait', reenter: true, actions: 'observeTime' },
            // Still inside the cancel window: at its end the timer above has left this state.
            RETRY_NOW: { target: 'requesting', actions: 'observeTime' },
          },
        },
      },
    },
    /**
     * The cancel window has closed with the payment unresolved: one more inquiry decides. Paid (and
     * never reported succeeded) means money is owed back: a refund, or a person. A cancel may have
     * been sent, so as in `cancelling`, a notification is recorded and changes nothing.
     */
    windowClosed: {
      tags: ['sealed'],
      initial: 'checking',
      on: { NOTIFIED: { actions: { type: 'recordLateNotification', params: { state: 'windowClosed' } } } },
      states: {
        checking: {
          entry: 'sendWindowCheck',
          invoke: {
            src: 'inquiryPayment',
            input: inquiryInput('window-check'),
            onDone: windowCheckTransitions(),
            onError: windowCheckTransitions().slice(-2),
          },
          on: { RESUME: { actions: 'observeTime' } },
        },
        retryWait: {
          after: { untilWindowCheck: { target: 'checking', actions: 'observeTime' } },
          on: { RESUME: { target: 'retryWait', reenter: true, actions: 'observeTime' } },
        },
      },
    },
    /** A refund of what was paid, with a refundRequestId derived from the payment: never twice. */
    refunding: {
      tags: ['sealed'],
      initial: 'requesting',
      on: { NOTIFIED: { actions: { type: 'recordLateNotification', params: { state: 'refunding' } } } },
      states: {
        requesting: {
          entry: 'countRefundAttempt',
          invoke: {
            src: 'refund',
            input: ({ context }) => {
              const refund = context.refund as RefundProgress;
              return {
                paymentRequestId: context.paymentRequestId,
                ref: inquiryRef(context),
                refundRequestId: refund.refundRequestId,
                refundAmount: refund.refundAmount,
                attempt: refund.attempts,
              };
            },
            onDone: refundTransitions(),
            onError: { target: 'retryWait', actions: 'scheduleRefundRetry' },
          },
          on: { RESUME: { actions: 'observeTime' } },
        },
        retryWait: {
          after: { untilRefundRetry: { target: 'requesting', actions: 'observeTime' } },
          on: { RESUME: { target: 'retryWait', reenter: true, actions: 'observeTime' } },
        },
      },
    },
    succeeded: { type: 'final', output: ({ context }) => context.outcome },
    failed: { type: 'final', output: ({ context }) => context.outcome },
    closed: { type: 'final', output: ({ context }) => context.outcome },
    cancelled: { type: 'final', output: ({ context }) => context.outcome },
    refunded: { type: 'final', output: ({ context }) => context.outcome },
    attention: { type: 'final', output: ({ context }) => context.outcome },
  },
});

/** The input of every inquiry: exactly one reference, and the inquiry's number. */
function inquiryInput(purpose: InquiryPurpose) {
  return ({ context }: { context: LifecycleContext }): CallInput => ({
    paymentRequestId: context.paymentRequestId,
    ref: inquiryRef(context),
    attempt: context.inquiries,
    purpose,
    notAfter: context.expiresAt,
  });
}

/** What `awaitingResult` and `awaitingNotification` both take: a notification, or the merchant closing. */
function whileResultOpen() {
  return {
    NOTIFIED: notificationTransitions(),
    CLOSE: {
      target: '#paymentLifecycle.cancelling',
      actions: { type: 'startCancel', params: { reason: 'closed-by-merchant' } },
    },
  } as const;
}

/** NOTIFIED while the result is open: a mismatch asks for a person; S, closed and failed are final. */
function notificationTransitions() {
  return [
    {
      guard: 'isAmountMismatch',
      target: '#paymentLifecycle.attention',
      actions: ['recordNotification', { type: 'settleByNotification', params: { status: 'attention' } }],
    },
    {
      guard: 'isNotifiedPaid',
      target: '#paymentLifecycle.succeeded',
      actions: ['recordNotification', { type: 'settleByNotification', params: { status: 'succeeded' } }],
    },
    {
      guard: 'isNotifiedClosed',
      target: '#paymentLifecycle.closed',
      actions: ['recordNotification', { type: 'settleByNotification', params: { status: 'closed' } }],
    },
    {
      guard: 'isNotifiedFailed',
      target: '#paymentLifecycle.failed',
      actions: ['recordNotification', { type: 'settleByNotification', params: { status: 'failed' } }],
    },
  ] as const;
}

/**
 * The guarded transitions of an inquiry answer, one per row of the decision table: final rows
 * settle; "again or cancel" rows go on to `deciding` (or, after the last look of
 * `awaitingNotification`, straight to cancelling).
 */
function inquiryTransitions(mode: 'polling' | 'last-look') {
  return INQUIRY_DECISION_TABLE.map((row) => {
    if (row.target !== 'again-or-cancel') {
      return {
        guard: row.guard,
        target: `#paymentLifecycle.${row.target}`,
        actions: ['recordAnswer', 'settleByInquiry'],
      };
    }
    return mode === 'last-look'
      ? {
          guard: row.guard,
          target: '#paymentLifecycle.cancelling',
          actions: ['recordAnswer', { type: 'startCancel', params: { reason: 'expired' } }],
        }
      : { guard: row.guard, target: 'deciding', actions: 'recordAnswer' };
  }) as never;
}

/** The guarded transitions of a pay answer, one per row of the pay table. */
function payTransitions() {
  return PAY_DECISION_TABLE.map((row) =>
    row.target === 'awaitingResult'
      ? { guard: row.guard, target: '#paymentLifecycle.awaitingResult', actions: 'recordPayAnswer' }
      : {
          guard: row.guard,
          target: `#paymentLifecycle.${row.target}`,
          actions: ['recordPayAnswer', 'settleByPay'],
        },
  ) as never;
}

/** The guarded transitions of the inquiry made past the cancel window (WINDOW_CLOSED_TABLE). */
function windowCheckTransitions() {
  const settleAs = (guard: string, status: FinalStatus, attentionReason?: AttentionReason) => ({
    guard,
    target: `#paymentLifecycle.${status}`,
    actions: [
      'recordAnswer',
      { type: 'settleAfterWindow', params: attentionReason ? { status, attentionReason } : { status } },
    ],
  });
  return [
    {
      guard: 'isPaidWithAutoRefund',
      target: '#paymentLifecycle.refunding',
      actions: ['recordAnswer', 'startRefund'],
    },
    settleAs('isPaid', 'attention', 'refund-due'),
    settleAs('isOrderClosed', 'closed'),
    settleAs('isPaymentFailed', 'failed'),
    settleAs('isIntegrationFault', 'attention', 'integration-fault'),
    settleAs('isCallFailed', 'failed'),
    // Not final (in process, not known, U, no result): ask again, a bounded number of times.
    settleAs('isWindowCheckBudgetSpent', 'attention', 'unresolved-after-window'),
    { target: 'retryWait', actions: ['recordAnswer', 'scheduleWindowCheck'] },
  ] as never[];
}

/** The guarded transitions of a refund answer (REFUND_TABLE). */
function refundTransitions() {
  return [
    {
      guard: 'isRefunded',
      target: '#paymentLifecycle.refunded',
      actions: { type: 'settleByRefund', params: { status: 'refunded' } },
    },
    {
      guard: 'isRefundRefused',
      target: '#paymentLifecycle.attention',
      actions: { type: 'settleByRefund', params: { status: 'attention', attentionReason: 'refund-refused' } },
    },
    { target: 'retryWait', actions: 'scheduleRefundRetry' },
  ] as const as never;
}

/** The guarded transitions of a cancel answer. */
function cancelTransitions() {
  return [
    {
      guard: 'isCancelled',
      target: '#paymentLifecycle.cancelled',
      actions: { type: 'settleByCancel', params: { status: 'cancelled' } },
    },
    {
      guard: 'isCancelWindowExceeded',
      target: '#paymentLifecycle.windowClosed',
      actions: ['recordCancelAnswer', 'startWindowCheck'],
    },
    {
      guard: 'isCancelOfUnknownExpiredOrder',
      target: '#paymentLifecycle.closed',
      actions: { type: 'settleByCancel', params: { status: 'closed' } },
    },
    {
      guard: 'isCancelRefusedTooOften',
      target: '#paymentLifecycle.attention',
      actions: { type: 'settleByCancel', params: { status: 'attention', attentionReason: 'cancel-refused' } },
    },
    { guard: 'isCancelRefused', target: 'retryWait', actions: 'scheduleCancelRetry' },
    // U or no result: the same cancel again, until the window ends.
    { target: 'retryWait', actions: 'scheduleCancelRetry' },
  ] as const as never;
}

export type PaymentLifecycleMachine = typeof paymentLifecycleMachine;
