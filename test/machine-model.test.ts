/**
 * Model-based tests of the payment lifecycle.
 *
 * `createTestModel` (xstate/graph) cannot traverse the real machine: it has `after` timers and
 * invoked calls. So an ABSTRACT model describes what an observer of the real machine sees: its
 * states, and how each scripted stimulus (time passing, an answer to the call in flight, a
 * notification, a close, expiry, a crash and restore) moves it. Every path the graph library derives
 * from the model is then replayed against the REAL machine through the LifecycleHarness (SimulatedClock,
 * scripted calls), and after every step the real machine must be where the model says it is.
 *
 * One abstract model, several configurations, each traversed within its own scope of stimuli:
 * - lifecycle (tracked: the pay went out elsewhere): every stimulus of the inquiry and cancel
 *   lifecycle, in two policies, because `awaitNotificationAfter` and `maxInquiries` can never both be
 *   reached by the same lifecycle:
 *   - polling: one inquiry per second, at most 2 inquiries, then cancel;
 *   - await-notification: after the first non-final answer, stop polling and wait for the notification
 *     until expiry, then one last look.
 *   Past the cancel window they only take the shortest way out (a check that finds the payment paid).
 * - pay (started by pay, user-presented or order code): every pay answer (S, U, F business, F
 *   integration fault, F REPEAT_REQ_INCONSISTENT, no result) and every stimulus while the pay is in
 *   flight (notifications, a close, expiry, a restart); after the pay, a few core answers only.
 * - pay after expiry: started by pay once the payment has expired: no pay, one last look.
 * - window (autoRefund off and on): a few fixed routes into the closed cancel window, then every
 *   answer to the window checks and to the refunds, with restarts, late notifications and closes.
 * All: expiry at 60 s, cancel (and window-check and refund) retries after 1 s and then after 1 h, a
 * cancel window that closes at 30 min (so the second failed cancel attempt is the last one),
 * attention after 2 refused cancels, or after 2 window checks without a final answer once the payment
 * has expired (a cancel answered CANCEL_WINDOW_EXCEED before expiry gets a third check, an hour later).
 *
 * Shortest paths reach every state of the model by every kind of transition into it, with the full
 * set of stimuli of the scope: a late notification and a crash/restore (at the same instant) at most
 * once per path, and REQUEST_TRAFFIC_EXCEED_LIMIT answers. Simple paths enumerate every route through
 * the model without repeating a state, with the core stimuli only (restarts or late notifications
 * would multiply them by eight to twelve, and getSimplePaths() would take minutes).
 *
 * After every step: the real state, the counters (pays, inquiries, window checks, cancel attempts and
 * refusals, refund attempts, late notifications), exactly the call the state implies in flight and its
 * input (a pay's notAfter, a refund's refundRequestId), when that call was sent (schedule, traffic
 * back-off, first inquiry after the pay answer, last look at expiry, window checks, cancel and refund
 * retries), and in a final state the whole outcome. After every path: one outcome at most, no cancel
 * after a success, no success once a cancel went out and inquiries after it only past the window, at
 * most one inquiry of the open lifecycle sent at or after expiry, no pay at or after expiry, and
 * refunds only after a check that found the payment paid, all alike.
 */

import { describe, expect, it } from 'vitest';
import { assign, type SnapshotFrom, setup } from 'xstate';
import { createTestModel, type TestPath } from 'xstate/graph';
import {
  type AttentionReason,
  type CancelReason,
  type LifecycleInput,
  type LifecycleOutcome,
  refundRequestIdFor,
} from '../machines/index.js';
import type {
  CancelOutcome,
  InquiryOutcome,
  NotifyPaymentRequest,
  PayOutcome,
  RefundOutcome,
} from '../src/index.js';
import type { PayMode } from '../src/protocol/pay.js';
import {
  answers,
  baseInput,
  LifecycleHarness,
  notifications,
  type PendingCall,
  stateString,
  T0,
} from './helpers/lifecycle-harness.js';

// ---------------------------------------------------------------------------------------------
// The abstract model
// ---------------------------------------------------------------------------------------------

const MODEL_EVENTS = [
  'TIME_PASSES',
  'PAY_S',
  'PAY_U',
  'PAY_F_BUSINESS',
  'PAY_F_FAULT',
  'PAY_F_REPEAT',
  'PAY_NO_RESULT',
  'ANSWER_SS',
  'ANSWER_SF_CLOSED',
  'ANSWER_SF_OTHER',
  'ANSWER_SU',
  'ANSWER_F_NOT_EXIST',
  'ANSWER_F_FAULT',
  'ANSWER_F_OTHER',
  'ANSWER_U',
  'ANSWER_U_TRAFFIC',
  'NO_RESULT',
  'CANCEL_S',
  'CANCEL_U',
  'CANCEL_F',
  'CANCEL_NOT_EXIST',
  'CANCEL_WINDOW_EXCEED',
  'REFUND_S',
  'REFUND_U',
  'REFUND_F',
  'NOTIFIED_S',
  'NOTIFIED_F',
  'NOTIFIED_CLOSED',
  'NOTIFIED_MISMATCH',
  'CLOSE',
  'EXPIRE',
  'RESTART',
] as const;
type ModelEventType = (typeof MODEL_EVENTS)[number];
type ModelEvent = { type: ModelEventType };

interface ModelContext {
  /** Pay requests sent (1 from the start of a lifecycle started by pay before expiry). */
  pays: number;
  /** Inquiries sent so far (the one in flight included), window checks included. */
  inquiries: number;
  /** ahead: before expiresAt; passed: the clock is at expiresAt; last-look-sent: an inquiry was sent at or after it. */
  expiry: 'ahead' | 'passed' | 'last-look-sent';
  cancelReason: CancelReason | null;
  /** Cancel requests sent so far (the one in flight included). */
  cancelAttempts: number;
  /** Refused (F) cancel answers. */
  cancelFailures: number;
  /** Inquiries sent once the cancel window has closed. */
  windowChecks: number;
  /** Refund requests sent so far (the one in flight included). */
  refundAttempts: number;
  /** Notifications received once the outcome could no longer change (cancelling, windowClosed, refunding). */
  late: number;
  attentionReason: AttentionReason | null;
  /** Whether the lifecycle crashed and was restored from its persisted snapshot. */
  restarted: boolean;
  /** How long the wait before the next inquiry is: traffic after REQUEST_TRAFFIC_EXCEED_LIMIT. */
  backOff: 'normal' | 'traffic';
}

/** Which stimuli a configuration's traversals use (see `allowedEvents`). */
type Scope = 'lifecycle' | 'pay' | 'window';

interface ModelConfig {
  name: string;
  scope: Scope;
  maxInquiries: number;
  awaitNotificationAfter?: number;
  /** Started by pay in this mode; tracked when absent. */
  payMode?: PayMode;
  /** Started by pay only once the payment had expired: no pay goes out. */
  startedAfterExpiry?: boolean;
  autoRefund: boolean;
  /** The abstract states the shortest paths must reach, and where they must restart and notify. */
  reaches: { states: string[]; restartIn: string[]; notifiedIn: string[] };
}

const EXPIRES_AT = T0 + 60_000;
/** When a lifecycle started after expiry starts. */
const LATE_START_AT = EXPIRES_AT + 5_000;
const CANCEL_WINDOW_ENDS_AT = T0 + 30 * 60_000;
const MAX_CANCEL_FAILURES = 2;
const MAX_WINDOW_CHECKS = 2;
const MAX_REFUND_ATTEMPTS = 3;
const INQUIRY_INTERVAL_MS = 1_000;
const TRAFFIC_LIMITED = 'REQUEST_TRAFFIC_EXCEED_LIMIT';
const TRAFFIC_LIMIT_MULTIPLIER = 3;
/** Cancel, window-check and refund retries: after 1 s, then after 1 h (for a cancel, past the window). */
const RETRY_SCHEDULE_MS = [1_000, 3_600_000];
const REFUND_AMOUNT = { currency: 'JPY', value: '100' };

const isCodeMode = (mode: PayMode | undefined) => mode === 'order-code' || mode === 'entry-code';

function lifecycleInput(config: ModelConfig): LifecycleInput {
  return baseInput({
    expiresAt: EXPIRES_AT,
    cancelWindowEndsAt: CANCEL_WINDOW_ENDS_AT,
    ...(config.payMode === undefined ? {} : { pay: { mode: config.payMode } }),
    ...(config.startedAfterExpiry ? { startedAt: LATE_START_AT } : {}),
    policy: {
      inquiryScheduleMs: [INQUIRY_INTERVAL_MS],
      maxInquiries: config.maxInquiries,
      ...(config.awaitNotificationAfter === undefined
        ? {}
        : { awaitNotificationAfter: config.awaitNotificationAfter }),
      trafficLimitMultiplier: TRAFFIC_LIMIT_MULTIPLIER,
      // The model checks the exact schedule; the jitter of retries has tests of its own
      // (test/retry-jitter.test.ts).
      retryJitter: 'none',
      cancelRetryScheduleMs: RETRY_SCHEDULE_MS,
      maxCancelFailures: MAX_CANCEL_FAILURES,
      maxWindowChecks: MAX_WINDOW_CHECKS,
      autoRefund: config.autoRefund,
    },
  });
}

const startAt = (config: ModelConfig) => (config.startedAfterExpiry ? LATE_START_AT : T0);

function createAbstractMachine(config: ModelConfig) {
  const paying = config.payMode !== undefined && !config.startedAfterExpiry;
  return setup({
    types: { context: {} as ModelContext, events: {} as ModelEvent },
    guards: {
      lastLookSent: ({ context }) => context.expiry === 'last-look-sent',
      inquiryBudgetSpent: ({ context }) => context.inquiries >= config.maxInquiries,
      shouldAwaitNotification: ({ context }) =>
        config.awaitNotificationAfter !== undefined && context.inquiries >= config.awaitNotificationAfter,
      expiryAhead: ({ context }) => context.expiry === 'ahead',
      expiryPassed: ({ context }) => context.expiry !== 'ahead',
      // A restart in a waiting state past expiry: the deadline of its timer has passed (the next
      // inquiry is clamped to expiry), so the RESUME sends the inquiry at once.
      restartPastDeadline: ({ context }) => !context.restarted && context.expiry === 'passed',
      codeMode: () => isCodeMode(config.payMode),
      autoRefund: () => config.autoRefund,
      refusedTooOften: ({ context }) => context.cancelFailures + 1 >= MAX_CANCEL_FAILURES,
      // Attempt 1 is retried after 1 s; attempt 2 would be retried after 1 h, past the window.
      nextRetryAfterWindow: ({ context }) => context.cancelAttempts >= 2,
      // Past the window, but the payment may not have expired yet (a cancel answered CANCEL_WINDOW_EXCEED
      // early): until it has, the checks go on whatever their number.
      windowChecksSpent: ({ context }) =>
        context.windowChecks >= MAX_WINDOW_CHECKS && context.expiry !== 'ahead',
      // A check after the second waits an hour: the payment has expired by then.
      longWait: ({ context }) => context.windowChecks >= 2,
      notRestarted: ({ context }) => !context.restarted,
    },
    actions: {
      sendInquiry: assign(({ context }) => ({
        inquiries: context.inquiries + 1,
        expiry: context.expiry === 'ahead' ? ('ahead' as const) : ('last-look-sent' as const),
      })),
      sendLastLook: assign(({ context }) => ({
        inquiries: context.inquiries + 1,
        expiry: 'last-look-sent' as const,
      })),
      expire: assign({ expiry: 'passed' as const }),
      /** Time went past expiry (by a wait of 30 min or more): nothing else changes. */
      passExpiry: assign(({ context }) => ({
        expiry: context.expiry === 'ahead' ? ('passed' as const) : context.expiry,
      })),
      startCancel: assign((_, params: { reason: CancelReason }) => ({
        cancelReason: params.reason,
        cancelAttempts: 1,
        backOff: 'normal' as const,
      })),
      retryCancel: assign(({ context }) => ({ cancelAttempts: context.cancelAttempts + 1 })),
      countRefusal: assign(({ context }) => ({ cancelFailures: context.cancelFailures + 1 })),
      sendWindowCheck: assign(({ context }) => ({
        inquiries: context.inquiries + 1,
        windowChecks: context.windowChecks + 1,
      })),
      sendRefund: assign(({ context }) => ({ refundAttempts: context.refundAttempts + 1 })),
      attention: assign((_, params: { reason: AttentionReason }) => ({ attentionReason: params.reason })),
      recordLate: assign(({ context }) => ({ late: context.late + 1 })),
      restart: assign({ restarted: true }),
      backOff: assign((_, params: { backOff: 'normal' | 'traffic' }) => ({ backOff: params.backOff })),
    },
  }).createMachine({
    id: 'model',
    context: {
      pays: paying ? 1 : 0,
      inquiries: 0,
      expiry: config.startedAfterExpiry ? 'passed' : 'ahead',
      cancelReason: null,
      cancelAttempts: 0,
      cancelFailures: 0,
      windowChecks: 0,
      refundAttempts: 0,
      late: 0,
      attentionReason: null,
      restarted: false,
      backOff: 'normal',
    },
    initial: paying ? 'paying' : 'awaitingResult',
    states: {
      paying: {
        initial: 'sending',
        on: whileResultOpen(),
        states: {
          sending: {
            on: {
              PAY_S: [{ guard: 'codeMode', target: '#model.awaitingResult' }, { target: '#model.succeeded' }],
              PAY_U: '#model.awaitingResult',
              PAY_NO_RESULT: '#model.awaitingResult',
              PAY_F_BUSINESS: '#model.failed',
              PAY_F_FAULT: {
                target: '#model.attention',
                actions: { type: 'attention', params: { reason: 'pay-refused' } },
              },
              PAY_F_REPEAT: {
                target: '#model.attention',
                actions: { type: 'attention', params: { reason: 'pay-refused' } },
              },
              EXPIRE: { guard: 'expiryAhead', actions: 'expire' },
            },
          },
        },
      },
      awaitingResult: {
        initial: 'pending',
        on: whileResultOpen(),
        states: {
          pending: {
            on: {
              TIME_PASSES: { target: 'inquiring', actions: 'sendInquiry' },
              RESTART: {
                guard: 'restartPastDeadline',
                target: 'inquiring',
                actions: ['restart', 'sendInquiry'],
              },
            },
          },
          inquiring: {
            on: {
              ANSWER_SS: '#model.succeeded',
              ANSWER_SF_CLOSED: '#model.closed',
              ANSWER_SF_OTHER: '#model.failed',
              ANSWER_F_FAULT: {
                target: '#model.attention',
                actions: { type: 'attention', params: { reason: 'integration-fault' } },
              },
              ANSWER_F_OTHER: '#model.failed',
              ANSWER_SU: againOrCancel(),
              ANSWER_F_NOT_EXIST: againOrCancel(),
              ANSWER_U: againOrCancel(),
              ANSWER_U_TRAFFIC: againOrCancel('traffic'),
              NO_RESULT: againOrCancel(),
              EXPIRE: { guard: 'expiryAhead', actions: 'expire' },
            },
          },
        },
      },
      awaitingNotification: {
        initial: 'waiting',
        on: whileResultOpen(),
        states: {
          waiting: {
            on: {
              TIME_PASSES: { target: 'lastLook', actions: 'sendLastLook' },
              RESTART: {
                guard: 'restartPastDeadline',
                target: 'lastLook',
                actions: ['restart', 'sendLastLook'],
              },
            },
          },
          lastLook: {
            on: {
              ANSWER_SS: '#model.succeeded',
              ANSWER_SF_CLOSED: '#model.closed',
              ANSWER_SF_OTHER: '#model.failed',
              ANSWER_F_FAULT: {
                target: '#model.attention',
                actions: { type: 'attention', params: { reason: 'integration-fault' } },
              },
              ANSWER_F_OTHER: '#model.failed',
              ANSWER_SU: cancelExpired(),
              ANSWER_F_NOT_EXIST: cancelExpired(),
              ANSWER_U: cancelExpired(),
              ANSWER_U_TRAFFIC: cancelExpired(),
              NO_RESULT: cancelExpired(),
            },
          },
        },
      },
      cancelling: {
        initial: 'requesting',
        on: onceLate(),
        states: {
          requesting: {
            on: {
              CANCEL_S: '#model.cancelled',
              CANCEL_WINDOW_EXCEED: {
                target: '#model.windowClosed',
                actions: { type: 'backOff', params: { backOff: 'normal' } },
              },
              // Alipay+ never had the order: once it has expired, nothing can be taken any more;
              // before, a pay may still be on its way, so the cancel is retried (not a refusal).
              CANCEL_NOT_EXIST: [{ guard: 'expiryPassed', target: '#model.closed' }, { target: 'retryWait' }],
              CANCEL_F: refused(),
              CANCEL_U: 'retryWait',
              NO_RESULT: 'retryWait',
            },
          },
          retryWait: {
            on: {
              TIME_PASSES: [
                {
                  guard: 'nextRetryAfterWindow',
                  target: '#model.windowClosed',
                  actions: ['passExpiry', { type: 'backOff', params: { backOff: 'normal' } }],
                },
                { target: 'requesting', actions: 'retryCancel' },
              ],
            },
          },
        },
      },
      windowClosed: {
        initial: 'checking',
        on: onceLate(),
        states: {
          checking: {
            entry: 'sendWindowCheck',
            on: {
              ANSWER_SS: [
                { guard: 'autoRefund', target: '#model.refunding' },
                {
                  target: '#model.attention',
                  actions: { type: 'attention', params: { reason: 'refund-due' } },
                },
              ],
              ANSWER_SF_CLOSED: '#model.closed',
              ANSWER_SF_OTHER: '#model.failed',
              ANSWER_F_FAULT: {
                target: '#model.attention',
                actions: { type: 'attention', params: { reason: 'integration-fault' } },
              },
              ANSWER_F_OTHER: '#model.failed',
              ANSWER_SU: checkAgain(),
              ANSWER_F_NOT_EXIST: checkAgain(),
              ANSWER_U: checkAgain(),
              ANSWER_U_TRAFFIC: checkAgain('traffic'),
              NO_RESULT: checkAgain(),
            },
          },
          retryWait: {
            on: {
              TIME_PASSES: [
                { guard: 'longWait', target: 'checking', actions: 'passExpiry' },
                { target: 'checking' },
              ],
            },
          },
        },
      },
      refunding: {
        initial: 'requesting',
        on: onceLate(),
        states: {
          requesting: {
            entry: 'sendRefund',
            on: {
              REFUND_S: '#model.refunded',
              REFUND_F: {
                target: '#model.attention',
                actions: { type: 'attention', params: { reason: 'refund-refused' } },
              },
              REFUND_U: 'retryWait',
              NO_RESULT: 'retryWait',
            },
          },
          retryWait: {
            on: { TIME_PASSES: 'requesting' },
          },
        },
      },
      succeeded: { type: 'final' },
      failed: { type: 'final' },
      closed: { type: 'final' },
      cancelled: { type: 'final' },
      refunded: { type: 'final' },
      attention: { type: 'final' },
    },
  });
}

/** While the result is open (paying, awaitingResult, awaitingNotification): a notification settles, a close cancels. */
function whileResultOpen() {
  return {
    NOTIFIED_S: '#model.succeeded',
    NOTIFIED_F: '#model.failed',
    NOTIFIED_CLOSED: '#model.closed',
    NOTIFIED_MISMATCH: {
      target: '#model.attention',
      actions: { type: 'attention', params: { reason: 'amount-mismatch' } },
    },
    CLOSE: {
      target: '#model.cancelling',
      actions: { type: 'startCancel', params: { reason: 'closed-by-merchant' } },
    },
    RESTART: { guard: 'notRestarted', actions: 'restart' },
  } as const;
}

/** Once a cancel went out: a notification is recorded, nothing else; a close changes nothing. */
function onceLate() {
  return {
    NOTIFIED_S: { actions: 'recordLate' },
    NOTIFIED_F: { actions: 'recordLate' },
    NOTIFIED_CLOSED: { actions: 'recordLate' },
    NOTIFIED_MISMATCH: { actions: 'recordLate' },
    CLOSE: {},
    RESTART: { guard: 'notRestarted', actions: 'restart' },
  } as const;
}

/** A refused cancel: retried, until it was refused too often. */
function refused() {
  return [
    {
      guard: 'refusedTooOften',
      target: '#model.attention',
      actions: ['countRefusal', { type: 'attention', params: { reason: 'cancel-refused' } }],
    },
    { target: 'retryWait', actions: 'countRefusal' },
  ] as const;
}

/** A non-final answer while polling: cancel after the last look or the last inquiry, else wait or ask again. */
function againOrCancel(backOff: 'normal' | 'traffic' = 'normal') {
  return [
    {
      guard: 'lastLookSent',
      target: '#model.cancelling',
      actions: { type: 'startCancel', params: { reason: 'expired' } },
    },
    {
      guard: 'inquiryBudgetSpent',
      target: '#model.cancelling',
      actions: { type: 'startCancel', params: { reason: 'max-inquiries' } },
    },
    {
      guard: 'shouldAwaitNotification',
      target: '#model.awaitingNotification',
      actions: { type: 'backOff', params: { backOff: 'normal' } },
    },
    { target: 'pending', actions: { type: 'backOff', params: { backOff } } },
  ] as const;
}

/** A non-final answer to the last look: cancel. */
function cancelExpired() {
  return {
    target: '#model.cancelling',
    actions: { type: 'startCancel', params: { reason: 'expired' } },
  } as const;
}

/** A non-final answer past the window: check again, a bounded number of times. */
function checkAgain(backOff: 'normal' | 'traffic' = 'normal') {
  return [
    {
      guard: 'windowChecksSpent',
      target: '#model.attention',
      actions: { type: 'attention', params: { reason: 'unresolved-after-window' } },
    },
    { target: 'retryWait', actions: { type: 'backOff', params: { backOff } } },
  ] as const;
}

type AbstractMachine = ReturnType<typeof createAbstractMachine>;
type ModelSnapshot = SnapshotFrom<AbstractMachine>;
type ModelPath = TestPath<ModelSnapshot, ModelEvent>;

const isNotification = (type: ModelEventType) => type.startsWith('NOTIFIED_');
const isFinalModelState = (snapshot: ModelSnapshot) => snapshot.status === 'done';

const LATE_STATES = ['cancelling', 'windowClosed', 'refunding'] as const;
const isLate = (snapshot: ModelSnapshot) => LATE_STATES.some((state) => snapshot.matches(state));
const afterWindow = (snapshot: ModelSnapshot) =>
  snapshot.matches('windowClosed') || snapshot.matches('refunding');

/** The stimuli of the open lifecycle and the cancel that the pay configurations still use after the pay. */
const PAY_SCOPE_AFTER_PAY: ReadonlySet<ModelEventType> = new Set<ModelEventType>([
  'TIME_PASSES',
  'ANSWER_SS',
  'ANSWER_SU',
  'NO_RESULT',
  'CANCEL_S',
  'CANCEL_U',
  'CANCEL_NOT_EXIST',
  'CANCEL_WINDOW_EXCEED',
  'REFUND_S',
  'NOTIFIED_S',
  'EXPIRE',
]);
/** The routes of the window configurations into the closed window: a close, or polling out of budget. */
const WINDOW_SCOPE_BEFORE_WINDOW: ReadonlySet<ModelEventType> = new Set<ModelEventType>([
  'TIME_PASSES',
  'PAY_NO_RESULT',
  'CLOSE',
  'ANSWER_SU',
  'CANCEL_U',
  'CANCEL_WINDOW_EXCEED',
]);
/** Past the window, simple paths skip the answers that act exactly like another one. */
const WINDOW_SCOPE_CORE_SKIPS: ReadonlySet<ModelEventType> = new Set<ModelEventType>([
  'ANSWER_F_NOT_EXIST',
  'ANSWER_U',
]);

/**
 * Bounds the traversal: one restart and one late notification per path, at most; EXPIRE only once.
 * `full` (shortest paths) allows restarts, late notifications and traffic-limited answers (a U like
 * any other, but for its longer back-off); simple paths do without. Each scope then keeps its own part
 * of the model (see the file comment).
 */
function allowedEvents(config: ModelConfig, full: boolean) {
  return (snapshot: ModelSnapshot, event: ModelEvent): boolean => {
    const type = event.type;
    if (type === 'RESTART' && (!full || snapshot.context.restarted)) return false;
    if (isNotification(type) && isLate(snapshot) && (!full || snapshot.context.late > 0)) return false;
    if (type === 'EXPIRE' && snapshot.context.expiry !== 'ahead') return false;
    if (type === 'ANSWER_U_TRAFFIC' && !full) return false;
    // A close once a cancel went out changes nothing: tried past the window only.
    if (type === 'CLOSE' && isLate(snapshot)) return config.scope === 'window' && afterWindow(snapshot);
    switch (config.scope) {
      case 'lifecycle':
        if (afterWindow(snapshot)) return type === 'ANSWER_SS' || type === 'REFUND_S';
        if (type === 'CANCEL_NOT_EXIST') return full;
        return true;
      case 'pay':
        if (snapshot.matches('paying')) return true;
        if (type === 'RESTART' || (isNotification(type) && isLate(snapshot))) return false;
        if (afterWindow(snapshot)) return type === 'ANSWER_SS' || type === 'REFUND_S';
        return PAY_SCOPE_AFTER_PAY.has(type);
      case 'window':
        // A refund is retried at most twice here (the real one is retried until S or F).
        if ((type === 'REFUND_U' || type === 'NO_RESULT') && snapshot.matches('refunding'))
          return snapshot.context.refundAttempts < MAX_REFUND_ATTEMPTS;
        if (afterWindow(snapshot)) return full || !WINDOW_SCOPE_CORE_SKIPS.has(type);
        if (type === 'CLOSE') return snapshot.matches('paying');
        if (type === 'CANCEL_WINDOW_EXCEED') return snapshot.context.cancelAttempts === 1;
        return WINDOW_SCOPE_BEFORE_WINDOW.has(type);
    }
  };
}

interface ModelPaths {
  config: ModelConfig;
  shortest: ModelPath[];
  simple: ModelPath[];
}

function modelPaths(config: ModelConfig): ModelPaths {
  const machine = createAbstractMachine(config);
  // Shortest paths: a vertex is a state *and the transition into it*, so every transition is reached.
  const full = createTestModel(machine, { filterEvents: allowedEvents(config, true) });
  // Simple paths: a vertex is a state (value and context), so no path repeats one.
  const core = createTestModel(machine, {
    filterEvents: allowedEvents(config, false),
    serializeTransition: () => '',
  });
  return {
    config,
    shortest: full.getShortestPaths(),
    simple: core.getSimplePaths({ toState: isFinalModelState }),
  };
}

const OPEN = ['awaitingResult.pending', 'awaitingResult.inquiring'];
const CANCELLING = ['cancelling.requesting', 'cancelling.retryWait'];
const FINALS = ['succeeded', 'failed', 'closed', 'cancelled', 'attention'];

const CONFIGS: ModelConfig[] = [
  {
    name: 'polling',
    scope: 'lifecycle',
    maxInquiries: 2,
    autoRefund: false,
    reaches: {
      states: [...OPEN, ...CANCELLING, 'windowClosed.checking', ...FINALS],
      restartIn: [...OPEN, ...CANCELLING],
      notifiedIn: [...OPEN, ...CANCELLING],
    },
  },
  {
    name: 'await-notification',
    scope: 'lifecycle',
    maxInquiries: 5,
    awaitNotificationAfter: 1,
    autoRefund: true,
    reaches: {
      states: [
        ...OPEN,
        'awaitingNotification.waiting',
        'awaitingNotification.lastLook',
        ...CANCELLING,
        'windowClosed.checking',
        'refunding.requesting',
        ...FINALS,
        'refunded',
      ],
      restartIn: [...OPEN, 'awaitingNotification.waiting', 'awaitingNotification.lastLook', ...CANCELLING],
      notifiedIn: [...OPEN, 'awaitingNotification.waiting', 'awaitingNotification.lastLook', ...CANCELLING],
    },
  },
  {
    name: 'pay, user-presented',
    scope: 'pay',
    maxInquiries: 2,
    payMode: 'user-presented',
    autoRefund: false,
    reaches: {
      states: ['paying.sending', ...OPEN, ...CANCELLING, 'windowClosed.checking', ...FINALS],
      restartIn: ['paying.sending'],
      notifiedIn: ['paying.sending', ...OPEN],
    },
  },
  {
    name: 'pay, order code',
    scope: 'pay',
    maxInquiries: 2,
    payMode: 'order-code',
    autoRefund: true,
    reaches: {
      states: [
        'paying.sending',
        ...OPEN,
        ...CANCELLING,
        'windowClosed.checking',
        'refunding.requesting',
        ...FINALS,
        'refunded',
      ],
      restartIn: ['paying.sending'],
      notifiedIn: ['paying.sending', ...OPEN],
    },
  },
  {
    name: 'pay, started after expiry',
    scope: 'pay',
    maxInquiries: 2,
    payMode: 'cashier',
    startedAfterExpiry: true,
    autoRefund: false,
    reaches: {
      // No pay: one last look at once, then cancel.
      states: [
        ...OPEN,
        ...CANCELLING,
        'windowClosed.checking',
        'succeeded',
        'closed',
        'cancelled',
        'attention',
      ],
      restartIn: [],
      notifiedIn: ['awaitingResult.pending', 'awaitingResult.inquiring'],
    },
  },
  ...[false, true].map(
    (autoRefund): ModelConfig => ({
      name: `window, autoRefund ${autoRefund ? 'on' : 'off'}`,
      scope: 'window',
      maxInquiries: 2,
      payMode: 'user-presented',
      autoRefund,
      reaches: {
        states: [
          'paying.sending',
          ...OPEN,
          ...CANCELLING,
          'windowClosed.checking',
          'windowClosed.retryWait',
          ...(autoRefund ? ['refunding.requesting', 'refunding.retryWait', 'refunded'] : []),
          'failed',
          'closed',
          'attention',
        ],
        restartIn: [
          'windowClosed.checking',
          'windowClosed.retryWait',
          ...(autoRefund ? ['refunding.requesting', 'refunding.retryWait'] : []),
        ],
        notifiedIn: [
          'windowClosed.checking',
          'windowClosed.retryWait',
          ...(autoRefund ? ['refunding.requesting', 'refunding.retryWait'] : []),
        ],
      },
    }),
  ),
];
const MODELS = CONFIGS.map(modelPaths);

// ---------------------------------------------------------------------------------------------
// Driving the real machine
// ---------------------------------------------------------------------------------------------

type AnyOutcome = InquiryOutcome | CancelOutcome | PayOutcome | RefundOutcome;
type Call = PendingCall<AnyOutcome>;
type CallKind = Call['kind'];

const OPEN_STATES = ['paying', 'awaitingResult', 'awaitingNotification'] as const;
const isOpen = (snapshot: ModelSnapshot) => OPEN_STATES.some((state) => snapshot.matches(state));

/** The kind of call the real machine must have in flight in an abstract state. */
function callIn(snapshot: ModelSnapshot): CallKind | undefined {
  if (snapshot.matches({ paying: 'sending' })) return 'pay';
  if (
    snapshot.matches({ awaitingResult: 'inquiring' }) ||
    snapshot.matches({ awaitingNotification: 'lastLook' }) ||
    snapshot.matches({ windowClosed: 'checking' })
  )
    return 'inquiry';
  if (snapshot.matches({ cancelling: 'requesting' })) return 'cancel';
  if (snapshot.matches({ refunding: 'requesting' })) return 'refund';
  return undefined;
}

const mismatchNotification = (): NotifyPaymentRequest =>
  notifications.paid({ paymentAmount: { currency: 'JPY', value: '999' } });

const ORDER_CODE_FORM = {
  expireTime: '2026-01-15T11:05:00+08:00',
  codeDetails: [{ codeValueType: 'QRCODE', codeValue: 'https://qr.example/model' }],
};

/** One replay of one abstract path on a fresh real lifecycle. */
class Replay {
  harness: LifecycleHarness;
  readonly input: LifecycleInput;
  /** Calls of harnesses that crashed (a restart replaces the harness). */
  private readonly retired: Call[] = [];
  /** The abstract state the next stimulus is applied in. */
  private current: ModelSnapshot | undefined;
  /** The last stimulus, and the abstract state it was applied in. */
  last: { type: ModelEventType; from: ModelSnapshot } | undefined;
  /** Cancel calls made when a success (pay S, S/S answer, S notification) reached the open lifecycle. */
  cancelsAtSuccess: number | undefined;
  /** Result statuses and states of the notifications sent once the outcome could no longer change. */
  readonly lateSent: { status: 'S' | 'F'; state: string }[] = [];
  readonly trace: string[] = [];
  /** When the pay answer arrived. */
  private payAnsweredAt: number | undefined;
  /** When the latest inquiry answer arrived, and whether it asked to back off harder. */
  private lastInquiryAnswer: { at: number; trafficLimited: boolean } | undefined;
  private lastCancelAnswerAt: number | undefined;
  private lastRefundAnswerAt: number | undefined;
  /** When the cancel window closed for this lifecycle: its end, or a CANCEL_WINDOW_EXCEED answer. */
  private windowClosedAt: number | undefined;
  /** When the window check that found the payment paid was answered. */
  paidCheckAnsweredAt: number | undefined;

  /** Every distinct outcome the real machine's snapshots carried, in order. */
  readonly outcomes: LifecycleOutcome[] = [];

  constructor(readonly config: ModelConfig) {
    this.input = lifecycleInput(config);
    this.harness = new LifecycleHarness(this.input, undefined, startAt(config));
    this.watch();
  }

  /** Records each outcome the real machine settles (a second one would break "exactly one outcome"). */
  private watch(): void {
    this.harness.actor.subscribe((snapshot) => {
      const outcome = snapshot.context.outcome;
      if (outcome && outcome !== this.outcomes.at(-1)) this.outcomes.push(outcome);
    });
  }

  calls(): Call[] {
    return [...this.retired, ...this.harness.calls];
  }

  private ofKind(kind: CallKind): Call[] {
    return this.calls().filter((call) => call.kind === kind);
  }

  cancels(): Call[] {
    return this.ofKind('cancel');
  }

  inquiries(): Call[] {
    return this.ofKind('inquiry');
  }

  pays(): Call[] {
    return this.ofKind('pay');
  }

  refunds(): Call[] {
    return this.ofKind('refund');
  }

  private from(): ModelSnapshot {
    if (!this.current) throw new Error('the replay has not checked its initial state');
    return this.current;
  }

  private async answer(kind: CallKind, outcome: AnyOutcome): Promise<void> {
    expect(this.harness.pending()?.kind, `a ${kind} call is in flight`).toBe(kind);
    const at = this.harness.now();
    if (kind === 'inquiry') {
      this.lastInquiryAnswer = {
        at,
        trafficLimited: outcome.kind === 'answer' && outcome.result.resultCode === TRAFFIC_LIMITED,
      };
    } else if (kind === 'cancel') this.lastCancelAnswerAt = at;
    else if (kind === 'refund') this.lastRefundAnswerAt = at;
    else this.payAnsweredAt = at;
    await this.harness.answer(outcome);
  }

  /** An inquiry answer; a success counts as one only while the result is open. */
  private async inquiryAnswer(outcome: InquiryOutcome): Promise<void> {
    const from = this.from();
    const paid = outcome.kind === 'answer' && outcome.paymentResult?.resultStatus === 'S';
    if (paid && isOpen(from)) this.cancelsAtSuccess ??= this.cancels().length;
    if (paid && from.matches('windowClosed')) this.paidCheckAnsweredAt = this.harness.now();
    await this.answer('inquiry', outcome);
  }

  /** `trusted`: a success whose amount matches (a mismatched one is a security event, not a success). */
  private async notify(notification: NotifyPaymentRequest, trusted = true): Promise<void> {
    const from = this.from();
    const status = notification.paymentResult.resultStatus === 'S' ? 'S' : 'F';
    const late = LATE_STATES.find((state) => from.matches(state));
    if (late) this.lateSent.push({ status, state: late });
    else if (trusted && status === 'S' && isOpen(from)) this.cancelsAtSuccess ??= this.cancels().length;
    await this.harness.notify(notification);
  }

  private async restart(): Promise<void> {
    const json = this.harness.persist();
    const at = this.harness.now();
    this.harness.stop();
    this.retired.push(...this.harness.calls);
    this.harness = await LifecycleHarness.restore(this.input, json, at);
    this.watch();
  }

  async stimulate(type: ModelEventType): Promise<void> {
    const from = this.from();
    this.last = { type, from };
    this.trace.push(type);
    switch (type) {
      case 'TIME_PASSES':
        return this.harness.runUntilCallOrFinal();
      case 'PAY_S':
        if (!isCodeMode(this.config.payMode)) this.cancelsAtSuccess ??= this.cancels().length;
        return this.answer(
          'pay',
          isCodeMode(this.config.payMode) ? answers.payS({ orderCodeForm: ORDER_CODE_FORM }) : answers.payS(),
        );
      case 'PAY_U':
        return this.answer('pay', answers.payU());
      case 'PAY_F_BUSINESS':
        return this.answer(
          'pay',
          answers.payF(isCodeMode(this.config.payMode) ? 'EXPIRED_CODE' : 'USER_BALANCE_NOT_ENOUGH'),
        );
      case 'PAY_F_FAULT':
        return this.answer('pay', answers.payF('INVALID_SIGNATURE'));
      case 'PAY_F_REPEAT':
        return this.answer('pay', answers.payF('REPEAT_REQ_INCONSISTENT'));
      case 'PAY_NO_RESULT':
        return this.answer('pay', answers.payNoResult('timeout'));
      case 'ANSWER_SS':
        return this.inquiryAnswer(answers.paid());
      case 'ANSWER_SF_CLOSED':
        return this.inquiryAnswer(answers.closed());
      case 'ANSWER_SF_OTHER':
        return this.inquiryAnswer(answers.paymentFailed());
      case 'ANSWER_SU':
        return this.inquiryAnswer(answers.processing());
      case 'ANSWER_F_NOT_EXIST':
        return this.inquiryAnswer(answers.orderNotExist());
      case 'ANSWER_F_FAULT':
        return this.inquiryAnswer(answers.callFailed('INVALID_SIGNATURE'));
      case 'ANSWER_F_OTHER':
        return this.inquiryAnswer(answers.callFailed('SOME_NEW_FAILURE'));
      case 'ANSWER_U':
        return this.inquiryAnswer(answers.unknown());
      case 'ANSWER_U_TRAFFIC':
        return this.inquiryAnswer(answers.unknown(TRAFFIC_LIMITED));
      case 'NO_RESULT':
        if (from.matches('cancelling')) return this.answer('cancel', answers.cancelNoResult());
        if (from.matches('refunding')) return this.answer('refund', answers.refundNoResult());
        return this.inquiryAnswer(answers.noResult());
      case 'CANCEL_S':
        return this.answer('cancel', answers.cancelOk());
      case 'CANCEL_U':
        return this.answer('cancel', answers.cancelU());
      case 'CANCEL_F':
        return this.answer('cancel', answers.cancelF('PROCESS_FAIL'));
      case 'CANCEL_NOT_EXIST':
        return this.answer('cancel', answers.cancelF('ORDER_NOT_EXIST'));
      case 'CANCEL_WINDOW_EXCEED':
        return this.answer('cancel', answers.cancelF('CANCEL_WINDOW_EXCEED'));
      case 'REFUND_S':
        return this.answer('refund', answers.refundS());
      case 'REFUND_U':
        return this.answer('refund', answers.refundU());
      case 'REFUND_F':
        return this.answer('refund', answers.refundF('REFUND_AMOUNT_EXCEED'));
      case 'NOTIFIED_S':
        return this.notify(notifications.paid());
      case 'NOTIFIED_F':
        return this.notify(notifications.failed());
      case 'NOTIFIED_CLOSED':
        return this.notify(notifications.closed());
      case 'NOTIFIED_MISMATCH':
        return this.notify(mismatchNotification(), false);
      case 'CLOSE':
        return this.harness.close();
      case 'EXPIRE':
        return this.harness.advanceTo(EXPIRES_AT);
      case 'RESTART':
        return this.restart();
    }
  }

  /** The real machine must be where the abstract model is. */
  check(model: ModelSnapshot): void {
    const entering = model.matches('windowClosed') && !this.current?.matches('windowClosed');
    if (entering && this.windowClosedAt === undefined)
      this.windowClosedAt =
        this.last?.type === 'CANCEL_WINDOW_EXCEED' ? this.lastCancelAnswerAt : CANCEL_WINDOW_ENDS_AT;
    this.current = model;
    const where = `after ${this.trace.join(' → ') || 'start'}`;
    const h = this.harness;
    const ctx = model.context;
    const real = h.context();
    const done = isFinalModelState(model);

    expect(h.state(), where).toBe(stateString(model.value));
    expect(h.isFinal(), where).toBe(done);

    // Calls counted in context, each sent once (a re-run after a restore keeps its number).
    expect(attempts(this.pays()), where).toEqual(range(ctx.pays));
    expect(real.pay?.attempts ?? 0, where).toBe(ctx.pays);
    expect(real.inquiries, where).toBe(ctx.inquiries);
    expect(attempts(this.inquiries()), where).toEqual(range(ctx.inquiries));
    expect(real.windowChecks?.checks ?? 0, where).toBe(ctx.windowChecks);
    expect(attempts(this.refunds()), where).toEqual(range(ctx.refundAttempts));
    expect(real.refund?.attempts ?? 0, where).toBe(ctx.refundAttempts);

    // Cancel progress.
    expect(attempts(this.cancels()), where).toEqual(range(ctx.cancelAttempts));
    if (ctx.cancelReason === null) {
      expect(real.cancel, where).toBeUndefined();
    } else {
      expect(real.cancel?.reason, where).toBe(ctx.cancelReason);
      expect(real.cancel?.attempts, where).toBe(ctx.cancelAttempts);
      expect(real.cancel?.failures, where).toBe(ctx.cancelFailures);
    }
    expect(real.lateNotifications, where).toHaveLength(ctx.late);

    // An order code reaches the details.
    if (this.config.payMode === 'order-code' && this.trace.includes('PAY_S'))
      expect(real.details.orderCodeForm, `${where}: the order code`).toEqual(ORDER_CODE_FORM);

    // Exactly the call the abstract state names is in flight, and no other.
    const live = this.calls().filter((call) => call.settledAt === undefined && !call.aborted);
    const kind = callIn(model);
    if (kind === undefined) {
      expect(live, where).toHaveLength(0);
    } else {
      expect(
        live.map((call) => call.kind),
        where,
      ).toEqual([kind]);
      const call = live[0] as Call;
      const attempt = {
        pay: ctx.pays,
        inquiry: ctx.inquiries,
        cancel: ctx.cancelAttempts,
        refund: ctx.refundAttempts,
      };
      expect(call.input.attempt, where).toBe(attempt[kind]);
      if (kind === 'pay') this.checkPay(call);
      if (kind === 'inquiry') this.checkInquiryTime(model, call);
      if (kind === 'cancel') this.checkCancelTime(call);
      if (kind === 'refund') this.checkRefund(call);
    }

    if (!done) {
      expect(h.outcome(), where).toBeUndefined();
      return;
    }
    const outcome = h.outcome();
    expect(outcome?.status, where).toBe(model.value);
    expect(outcome?.attentionReason, where).toBe(ctx.attentionReason ?? undefined);
    expect(outcome?.cancelReason, where).toBe(ctx.cancelReason ?? undefined);
    expect(outcome?.inquiries, where).toBe(ctx.inquiries);
    expect(outcome?.cancelAttempts, where).toBe(ctx.cancelAttempts);
    expect(outcome?.decidedAt, `${where}: decided when it happened`).toBe(h.now());
    expect(
      outcome?.lateNotifications.map((late) => [late.resultStatus, late.flagged, late.state]),
      `${where}: late notifications, a late success flagged`,
    ).toEqual(this.lateSent.map(({ status, state }) => [status, status === 'S', state]));
    expect(outcome?.decidedBy.source, `${where}: decided by`).toBe(this.decidedBy());
    if (ctx.refundAttempts === 0) {
      expect(outcome?.refund, where).toBeUndefined();
    } else {
      expect(outcome?.refund, `${where}: the refund`).toEqual({
        refundRequestId: refundRequestIdFor('REQ-1'),
        refundAmount: REFUND_AMOUNT,
        ...(model.value === 'refunded'
          ? { refundId: 'RF-ID-1', refundTime: '2026-01-16T11:00:00+08:00' }
          : {}),
      });
    }
  }

  /** The pay: sent at the start, before expiry, for this payment, never after its expiry (notAfter). */
  private checkPay(call: Call): void {
    const where = `after ${this.trace.join(' → ') || 'start'}: the pay`;
    expect(call.input, where).toEqual({ paymentRequestId: 'REQ-1', attempt: 1, notAfter: EXPIRES_AT });
    expect(firstSent(this.pays(), 1), `${where} went out at the start`).toBe(T0);
  }

  /** The inquiry in flight went out when the schedule says (a restore re-runs it under the same number). */
  private checkInquiryTime(model: ModelSnapshot, call: Call): void {
    const sentAt = firstSent(this.inquiries(), call.input.attempt);
    const where = `after ${this.trace.join(' → ')}: inquiry ${call.input.attempt} sent`;
    const answer = this.lastInquiryAnswer;
    const wait = (base: number) => (answer?.trafficLimited ? base * TRAFFIC_LIMIT_MULTIPLIER : base);
    if (model.matches('windowClosed')) {
      if (model.context.windowChecks === 1) {
        expect(sentAt, `${where} when the window closed`).toBe(this.windowClosedAt);
      } else {
        const base = RETRY_SCHEDULE_MS[model.context.windowChecks - 2] as number;
        expect(sentAt, `${where} one retry interval after the previous check`).toBe(
          (answer?.at ?? 0) + wait(base),
        );
      }
      return;
    }
    if (model.context.expiry === 'last-look-sent') {
      expect(sentAt, `${where} at expiry (the last look)`).toBe(
        this.config.startedAfterExpiry ? LATE_START_AT : Math.max(EXPIRES_AT, this.payAnsweredAt ?? 0),
      );
    } else {
      expect(sentAt, `${where} before expiry`).toBeLessThan(EXPIRES_AT);
    }
    if (call.input.attempt === 1) {
      // One interval after creation, or after the pay answer (clamped to expiry).
      const from = this.payAnsweredAt ?? T0;
      const expected = this.config.startedAfterExpiry
        ? LATE_START_AT
        : Math.max(from, Math.min(from + INQUIRY_INTERVAL_MS, EXPIRES_AT));
      expect(
        sentAt,
        `${where} one interval after ${this.payAnsweredAt ? 'the pay answer' : 'creation'}`,
      ).toBe(expected);
    } else if (answer && model.context.expiry !== 'last-look-sent') {
      expect(sentAt, `${where} one interval after the previous answer`).toBe(
        Math.min(answer.at + wait(INQUIRY_INTERVAL_MS), EXPIRES_AT),
      );
    }
  }

  /** A cancel retry goes out one retry interval after the previous cancel answer. */
  private checkCancelTime(call: Call): void {
    if (call.input.attempt === 1 || this.lastCancelAnswerAt === undefined) return;
    expect(
      firstSent(this.cancels(), call.input.attempt),
      `after ${this.trace.join(' → ')}: cancel ${call.input.attempt} sent`,
    ).toBe(this.lastCancelAnswerAt + (RETRY_SCHEDULE_MS[0] as number));
  }

  /** A refund: the identical request each time, at once after the paid check, then on the retry schedule. */
  private checkRefund(call: Call): void {
    const where = `after ${this.trace.join(' → ')}: refund ${call.input.attempt}`;
    expect({ ...call.input, attempt: 0 }, where).toEqual({
      paymentRequestId: 'REQ-1',
      ref: { paymentId: 'PAY-1' },
      refundRequestId: refundRequestIdFor('REQ-1'),
      refundAmount: REFUND_AMOUNT,
      attempt: 0,
    });
    const sentAt = firstSent(this.refunds(), call.input.attempt);
    if (call.input.attempt === 1) expect(sentAt, `${where} sent at once`).toBe(this.paidCheckAnsweredAt);
    else
      expect(sentAt, `${where} sent one retry interval after the previous answer`).toBe(
        (this.lastRefundAnswerAt ?? 0) + (RETRY_SCHEDULE_MS[call.input.attempt - 2] as number),
      );
  }

  /** What decided the outcome, from the last stimulus. */
  private decidedBy(): string {
    const last = this.last;
    if (!last) return 'nothing';
    if (last.type.startsWith('PAY_')) return 'pay';
    if (last.type.startsWith('REFUND_')) return 'refund';
    if (last.type.startsWith('CANCEL_')) return 'cancel';
    if (isNotification(last.type)) return 'notification';
    if (last.type.startsWith('ANSWER_') || last.type === 'NO_RESULT') return 'inquiry';
    return 'lifecycle';
  }
}

/** The distinct attempt numbers of some calls, ascending. */
function attempts(calls: Call[]): number[] {
  return [...new Set(calls.map((call) => call.input.attempt))].sort((a, b) => a - b);
}

/** When the call numbered `attempt` was first sent. */
function firstSent(calls: Call[], attempt: number): number {
  return Math.min(...calls.filter((call) => call.input.attempt === attempt).map((call) => call.sentAt));
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** Replays one abstract path on the real machine, checking every state, then the invariants. */
async function replay(config: ModelConfig, path: ModelPath): Promise<void> {
  const run = new Replay(config);
  const events: Record<string, () => Promise<void>> = {};
  for (const type of MODEL_EVENTS) events[type] = () => run.stimulate(type);
  await path.test({ states: { '*': (state) => run.check(state) }, events });

  const h = run.harness;
  const trace = run.trace.join(' → ');
  const ctx = path.state.context;
  const outcome = h.outcome();

  // No cancel once a success reached the open lifecycle (a success can only end it).
  if (run.cancelsAtSuccess !== undefined) {
    expect(run.cancelsAtSuccess, `${trace}: cancels before the success`).toBe(0);
    expect(run.cancels(), `${trace}: no cancel after a success`).toHaveLength(0);
    expect(outcome?.status, trace).toBe('succeeded');
  }
  // Once a cancel was sent: no success, and inquiries only once the window has closed (the checks).
  const calls = run.calls();
  const firstCancel = calls.findIndex((call) => call.kind === 'cancel');
  if (firstCancel >= 0) {
    expect(h.state(), `${trace}: after a cancel`).toMatch(
      /^(cancelling\.|windowClosed\.|refunding\.|cancelled$|closed$|failed$|refunded$|attention$)/,
    );
    const after = attempts(calls.slice(firstCancel).filter((call) => call.kind === 'inquiry'));
    expect(after, `${trace}: the only inquiries after the cancel are the window checks`).toEqual(
      range(ctx.windowChecks).map((n) => ctx.inquiries - ctx.windowChecks + n),
    );
    if (outcome?.status === 'closed' || outcome?.status === 'failed')
      expect(outcome.decidedBy.source, `${trace}: decided after a cancel`).toMatch(/^(cancel|inquiry)$/);
  }
  // At most one inquiry of the open lifecycle is first sent at or after expiry: the last look.
  const inquiries = run.inquiries();
  const afterExpiry = attempts(inquiries).filter(
    (attempt) => attempt <= ctx.inquiries - ctx.windowChecks && firstSent(inquiries, attempt) >= EXPIRES_AT,
  );
  expect(afterExpiry.length, `${trace}: inquiries sent at or after expiry`).toBeLessThanOrEqual(1);
  // No pay at or after expiry; every pay is this payment's one pay.
  for (const pay of run.pays()) {
    expect(pay.input, `${trace}: the pay`).toEqual({
      paymentRequestId: 'REQ-1',
      attempt: 1,
      notAfter: EXPIRES_AT,
    });
  }
  expect(attempts(run.pays()), `${trace}: one pay`).toEqual(
    config.payMode && !config.startedAfterExpiry ? [1] : [],
  );
  if (run.pays().length > 0) expect(firstSent(run.pays(), 1), trace).toBeLessThan(EXPIRES_AT);
  // Refunds: only with autoRefund, only after a check that found the payment paid, never with a success.
  const refunds = run.refunds();
  if (refunds.length > 0) {
    expect(config.autoRefund, `${trace}: a refund without autoRefund`).toBe(true);
    expect(run.paidCheckAnsweredAt, `${trace}: a refund without a paid check`).toBeDefined();
    expect(Math.min(...refunds.map((call) => call.sentAt)), trace).toBeGreaterThanOrEqual(
      run.paidCheckAnsweredAt ?? Number.POSITIVE_INFINITY,
    );
    expect(new Set(refunds.map((call) => call.input.refundRequestId)), trace).toEqual(
      new Set([refundRequestIdFor('REQ-1')]),
    );
    expect(outcome?.status, `${trace}: a refund and a success`).not.toBe('succeeded');
  }

  // At most one outcome: it is set once, at the final step, and a day later nothing has changed.
  expect(run.outcomes, `${trace}: outcomes settled`).toHaveLength(h.isFinal() ? 1 : 0);
  if (h.isFinal()) {
    const settled = structuredClone(outcome);
    const state = h.state();
    const callCount = h.calls.length;
    await h.advance(24 * 3_600_000);
    expect(h.state(), `${trace}: final stays final`).toBe(state);
    expect(h.outcome(), `${trace}: the outcome never changes`).toEqual(settled);
    expect(h.calls, `${trace}: no call after the outcome`).toHaveLength(callCount);
  }
  h.stop();
}

/** The path's stimuli; the generator starts every path with a step for `xstate.init`. */
const pathName = (path: ModelPath) =>
  path.steps
    .map((step): string => step.event.type)
    .filter((type) => type !== 'xstate.init')
    .join(' → ') || '(start)';

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

describe('model-based testing of the payment lifecycle', () => {
  it('derives paths from the abstract models', () => {
    let shortest = 0;
    let simple = 0;
    for (const model of MODELS) {
      expect(model.shortest.length, model.config.name).toBeGreaterThan(0);
      expect(model.simple.length, model.config.name).toBeGreaterThan(0);
      expect(model.simple.every((path) => isFinalModelState(path.state))).toBe(true);
      shortest += model.shortest.length;
      simple += model.simple.length;
      console.log(
        `model-based (${model.config.name}): ${model.shortest.length} shortest paths, ${model.simple.length} simple paths`,
      );
    }
    console.log(`model-based: ${shortest} shortest paths, ${simple} simple paths`);
  });

  it('reaches every abstract state of each model, every final status included', () => {
    for (const model of MODELS) {
      const { name, reaches } = model.config;
      const reached = new Set(
        model.shortest.flatMap((path) => path.steps.map((step) => stateString(step.state.value))),
      );
      expect([...reached].sort(), name).toEqual([...reaches.states].sort());

      // Where the shortest paths crash and restore, and where a notification arrives.
      const appliedIn = (type: ModelEventType) =>
        new Set(
          model.shortest.flatMap((path) =>
            path.steps.flatMap((step, i) => {
              const before = path.steps[i - 1];
              return step.event.type === type && before ? [stateString(before.state.value)] : [];
            }),
          ),
        );
      expect([...appliedIn('RESTART')].sort(), `${name}: restarts`).toEqual([...reaches.restartIn].sort());
      expect([...appliedIn('NOTIFIED_S')].sort(), `${name}: notifications`).toEqual(
        [...reaches.notifiedIn].sort(),
      );
    }
  });

  it('starts by pay with every pay answer, and ends past the window with every outcome, autoRefund on and off', () => {
    const stimuli = (names: string[]) =>
      new Set(
        MODELS.filter((model) => names.includes(model.config.name)).flatMap((model) =>
          [...model.shortest, ...model.simple].flatMap((path) => path.steps.map((step) => step.event.type)),
        ),
      );
    const pay = stimuli(['pay, user-presented', 'pay, order code']);
    for (const type of ['PAY_S', 'PAY_U', 'PAY_F_BUSINESS', 'PAY_F_FAULT', 'PAY_F_REPEAT', 'PAY_NO_RESULT'])
      expect(pay.has(type as ModelEventType), type).toBe(true);
    const finalsOf = (name: string) =>
      new Set(
        MODELS.find((model) => model.config.name === name)?.simple.map((path) =>
          `${String(path.state.value)} ${path.state.context.attentionReason ?? ''}`.trim(),
        ),
      );
    expect([...finalsOf('window, autoRefund off')].sort()).toEqual(
      [
        'attention integration-fault',
        'attention refund-due',
        'attention unresolved-after-window',
        'closed',
        'failed',
      ].sort(),
    );
    expect([...finalsOf('window, autoRefund on')].sort()).toEqual(
      [
        'attention integration-fault',
        'attention refund-refused',
        'attention unresolved-after-window',
        'closed',
        'failed',
        'refunded',
      ].sort(),
    );
  });

  for (const model of MODELS) {
    describe(`${model.config.name}: shortest paths`, () => {
      for (const path of model.shortest) {
        it(pathName(path), () => replay(model.config, path));
      }
    });
    describe(`${model.config.name}: simple paths`, () => {
      for (const path of model.simple) {
        it(pathName(path), () => replay(model.config, path));
      }
    });
  }
});
