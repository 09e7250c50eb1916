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
 * Two policies are modelled, because `awaitNotificationAfter` and `maxInquiries` can never both be
 * reached by the same lifecycle:
 * - polling: one inquiry per second, at most 2 inquiries, then cancel;
 * - await-notification: after the first non-final answer, stop polling and wait for the notification
 *   until expiry, then one last look.
 * Both: expiry at 60 s, cancel retries after 1 s and then after 1 h, a cancel window that closes at
 * 30 min (so the second failed cancel attempt is the last one), attention after 2 refused cancels.
 *
 * Shortest paths reach every state of the model by every kind of transition into it, with the full
 * set of stimuli: a late notification and a crash/restore (at the same instant) at most once per path,
 * and REQUEST_TRAFFIC_EXCEED_LIMIT answers. Simple paths enumerate every route through the model
 * without repeating a state, with the core stimuli only (restarts or late notifications would
 * multiply them by eight to twelve, and getSimplePaths() would take minutes).
 *
 * After every step: the real state, the counters (inquiries, cancel attempts and refusals, late
 * notifications), exactly the call the state implies in flight, when that call was sent (schedule,
 * traffic back-off, last look at expiry, cancel retry), and in a final state the whole outcome. After
 * every path: one outcome at most, no cancel after a success, only cancelled or attention once a
 * cancel went out, no inquiry after a cancel, and at most one inquiry sent at or after expiry.
 */

import { describe, expect, it } from 'vitest';
import { assign, type SnapshotFrom, setup } from 'xstate';
import { createTestModel, type TestPath } from 'xstate/graph';
import type { AttentionReason, CancelReason, LifecycleInput, LifecycleOutcome } from '../machines/index.js';
import type { CancelOutcome, InquiryOutcome, NotifyPaymentRequest } from '../src/index.js';
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
  'CANCEL_WINDOW_EXCEED',
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
  /** Inquiries sent so far (the one in flight included). */
  inquiries: number;
  /** ahead: before expiresAt; passed: the clock is at expiresAt; last-look-sent: an inquiry was sent at or after it. */
  expiry: 'ahead' | 'passed' | 'last-look-sent';
  cancelReason: CancelReason | null;
  /** Cancel requests sent so far (the one in flight included). */
  cancelAttempts: number;
  /** Refused (F) cancel answers. */
  cancelFailures: number;
  /** Notifications received while cancelling. */
  late: number;
  attentionReason: AttentionReason | null;
  /** Whether the lifecycle crashed and was restored from its persisted snapshot. */
  restarted: boolean;
  /** How long the wait before the next inquiry is: traffic after REQUEST_TRAFFIC_EXCEED_LIMIT. */
  backOff: 'normal' | 'traffic';
}

interface ModelConfig {
  name: string;
  maxInquiries: number;
  awaitNotificationAfter?: number;
}

const EXPIRES_AT = T0 + 60_000;
const CANCEL_WINDOW_ENDS_AT = T0 + 30 * 60_000;
const MAX_CANCEL_FAILURES = 2;
const INQUIRY_INTERVAL_MS = 1_000;
const TRAFFIC_LIMITED = 'REQUEST_TRAFFIC_EXCEED_LIMIT';
const TRAFFIC_LIMIT_MULTIPLIER = 3;
/** The first cancel retry comes after 1 s; the next one would be after the window closed. */
const CANCEL_RETRY_MS = 1_000;

function lifecycleInput(config: ModelConfig): LifecycleInput {
  return baseInput({
    expiresAt: EXPIRES_AT,
    cancelWindowEndsAt: CANCEL_WINDOW_ENDS_AT,
    policy: {
      inquiryScheduleMs: [INQUIRY_INTERVAL_MS],
      maxInquiries: config.maxInquiries,
      ...(config.awaitNotificationAfter === undefined
        ? {}
        : { awaitNotificationAfter: config.awaitNotificationAfter }),
      trafficLimitMultiplier: TRAFFIC_LIMIT_MULTIPLIER,
      cancelRetryScheduleMs: [CANCEL_RETRY_MS, 3_600_000],
      maxCancelFailures: MAX_CANCEL_FAILURES,
    },
  });
}

function createAbstractMachine(config: ModelConfig) {
  return setup({
    types: { context: {} as ModelContext, events: {} as ModelEvent },
    guards: {
      lastLookSent: ({ context }) => context.expiry === 'last-look-sent',
      inquiryBudgetSpent: ({ context }) => context.inquiries >= config.maxInquiries,
      shouldAwaitNotification: ({ context }) =>
        config.awaitNotificationAfter !== undefined && context.inquiries >= config.awaitNotificationAfter,
      expiryAhead: ({ context }) => context.expiry === 'ahead',
      refusedTooOften: ({ context }) => context.cancelFailures + 1 >= MAX_CANCEL_FAILURES,
      // Attempt 1 is retried after 1 s; attempt 2 would be retried after 1 h, past the window.
      nextRetryAfterWindow: ({ context }) => context.cancelAttempts >= 2,
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
      startCancel: assign((_, params: { reason: CancelReason }) => ({
        cancelReason: params.reason,
        cancelAttempts: 1,
        backOff: 'normal' as const,
      })),
      retryCancel: assign(({ context }) => ({ cancelAttempts: context.cancelAttempts + 1 })),
      countRefusal: assign(({ context }) => ({ cancelFailures: context.cancelFailures + 1 })),
      attention: assign((_, params: { reason: AttentionReason }) => ({ attentionReason: params.reason })),
      recordLate: assign(({ context }) => ({ late: context.late + 1 })),
      restart: assign({ restarted: true }),
      backOff: assign((_, params: { backOff: 'normal' | 'traffic' }) => ({ backOff: params.backOff })),
    },
  }).createMachine({
    id: 'model',
    context: {
      inquiries: 0,
      expiry: 'ahead',
      cancelReason: null,
      cancelAttempts: 0,
      cancelFailures: 0,
      late: 0,
      attentionReason: null,
      restarted: false,
      backOff: 'normal',
    },
    initial: 'awaitingResult',
    states: {
      awaitingResult: {
        initial: 'pending',
        on: {
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
        },
        states: {
          pending: {
            on: { TIME_PASSES: { target: 'inquiring', actions: 'sendInquiry' } },
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
        on: {
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
        },
        states: {
          waiting: {
            on: { TIME_PASSES: { target: 'lastLook', actions: 'sendLastLook' } },
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
        on: {
          NOTIFIED_S: { actions: 'recordLate' },
          NOTIFIED_F: { actions: 'recordLate' },
          NOTIFIED_CLOSED: { actions: 'recordLate' },
          NOTIFIED_MISMATCH: { actions: 'recordLate' },
          RESTART: { guard: 'notRestarted', actions: 'restart' },
        },
        states: {
          requesting: {
            on: {
              CANCEL_S: '#model.cancelled',
              CANCEL_WINDOW_EXCEED: {
                target: '#model.attention',
                actions: { type: 'attention', params: { reason: 'refund-required' } },
              },
              CANCEL_F: [
                {
                  guard: 'refusedTooOften',
                  target: '#model.attention',
                  actions: ['countRefusal', { type: 'attention', params: { reason: 'cancel-refused' } }],
                },
                { target: 'retryWait', actions: 'countRefusal' },
              ],
              CANCEL_U: 'retryWait',
              NO_RESULT: 'retryWait',
            },
          },
          retryWait: {
            on: {
              TIME_PASSES: [
                {
                  guard: 'nextRetryAfterWindow',
                  target: '#model.attention',
                  actions: { type: 'attention', params: { reason: 'cancel-window-closed' } },
                },
                { target: 'requesting', actions: 'retryCancel' },
              ],
            },
          },
        },
      },
      succeeded: { type: 'final' },
      failed: { type: 'final' },
      closed: { type: 'final' },
      cancelled: { type: 'final' },
      attention: { type: 'final' },
    },
  });
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

type AbstractMachine = ReturnType<typeof createAbstractMachine>;
type ModelSnapshot = SnapshotFrom<AbstractMachine>;
type ModelPath = TestPath<ModelSnapshot, ModelEvent>;

const isNotification = (type: ModelEventType) => type.startsWith('NOTIFIED_');

/**
 * Bounds the traversal: one restart and one late notification per path, at most; EXPIRE only once.
 * Without `full`, no restarts, late notifications or traffic-limited answers (a U like any other,
 * but for its longer back-off).
 */
function boundedEvents(full: boolean) {
  return (snapshot: ModelSnapshot, event: ModelEvent): boolean => {
    if (event.type === 'RESTART') return full && !snapshot.context.restarted;
    if (event.type === 'ANSWER_U_TRAFFIC') return full;
    if (isNotification(event.type) && snapshot.matches('cancelling'))
      return full && snapshot.context.late === 0;
    if (event.type === 'EXPIRE') return snapshot.context.expiry === 'ahead';
    return true;
  };
}

const isFinalModelState = (snapshot: ModelSnapshot) => snapshot.status === 'done';

interface ModelPaths {
  config: ModelConfig;
  shortest: ModelPath[];
  simple: ModelPath[];
}

function modelPaths(config: ModelConfig): ModelPaths {
  const machine = createAbstractMachine(config);
  // Shortest paths: a vertex is a state *and the transition into it*, so every transition is reached.
  const full = createTestModel(machine, { filterEvents: boundedEvents(true) });
  // Simple paths: a vertex is a state (value and context), so no path repeats one.
  const core = createTestModel(machine, {
    filterEvents: boundedEvents(false),
    serializeTransition: () => '',
  });
  return {
    config,
    shortest: full.getShortestPaths(),
    simple: core.getSimplePaths({ toState: isFinalModelState }),
  };
}

const CONFIGS: ModelConfig[] = [
  { name: 'polling', maxInquiries: 2 },
  { name: 'await-notification', maxInquiries: 5, awaitNotificationAfter: 1 },
];
const MODELS = CONFIGS.map(modelPaths);

// ---------------------------------------------------------------------------------------------
// Driving the real machine
// ---------------------------------------------------------------------------------------------

type Call = PendingCall<InquiryOutcome | CancelOutcome>;

const OPEN_STATES = ['awaitingResult', 'awaitingNotification'] as const;
const isOpen = (snapshot: ModelSnapshot) => OPEN_STATES.some((state) => snapshot.matches(state));

/** The kind of call the real machine must have in flight in an abstract state. */
function callIn(snapshot: ModelSnapshot): 'inquiry' | 'cancel' | undefined {
  if (
    snapshot.matches({ awaitingResult: 'inquiring' }) ||
    snapshot.matches({ awaitingNotification: 'lastLook' })
  )
    return 'inquiry';
  if (snapshot.matches({ cancelling: 'requesting' })) return 'cancel';
  return undefined;
}

const mismatchNotification = (): NotifyPaymentRequest =>
  notifications.paid({ paymentAmount: { currency: 'JPY', value: '999' } });

/** One replay of one abstract path on a fresh real lifecycle. */
class Replay {
  harness: LifecycleHarness;
  /** Calls of harnesses that crashed (a restart replaces the harness). */
  private readonly retired: Call[] = [];
  /** The abstract state the next stimulus is applied in. */
  private current: ModelSnapshot | undefined;
  /** The last stimulus, and the abstract state it was applied in. */
  last: { type: ModelEventType; from: ModelSnapshot } | undefined;
  /** Cancel calls made when a success (S/S answer, S notification) reached the open lifecycle. */
  cancelsAtSuccess: number | undefined;
  /** Result statuses of the notifications sent while cancelling. */
  readonly lateSent: ('S' | 'F')[] = [];
  readonly trace: string[] = [];
  /** When the latest inquiry answer arrived, and whether it asked to back off harder. */
  private lastInquiryAnswer: { at: number; trafficLimited: boolean } | undefined;
  private lastCancelAnswerAt: number | undefined;

  /** Every distinct outcome the real machine's snapshots carried, in order. */
  readonly outcomes: LifecycleOutcome[] = [];

  constructor(readonly input: LifecycleInput) {
    this.harness = new LifecycleHarness(input);
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

  cancels(): Call[] {
    return this.calls().filter((call) => call.kind === 'cancel');
  }

  inquiries(): Call[] {
    return this.calls().filter((call) => call.kind === 'inquiry');
  }

  private from(): ModelSnapshot {
    if (!this.current) throw new Error('the replay has not checked its initial state');
    return this.current;
  }

  private async answer(kind: 'inquiry' | 'cancel', outcome: InquiryOutcome | CancelOutcome): Promise<void> {
    expect(this.harness.pending()?.kind, `a ${kind} call is in flight`).toBe(kind);
    const at = this.harness.now();
    if (kind === 'inquiry')
      this.lastInquiryAnswer = {
        at,
        trafficLimited: outcome.kind === 'answer' && outcome.result.resultCode === TRAFFIC_LIMITED,
      };
    else this.lastCancelAnswerAt = at;
    await this.harness.answer(outcome);
  }

  /** `trusted`: a success whose amount matches (a mismatched one is a security event, not a success). */
  private async notify(notification: NotifyPaymentRequest, trusted = true): Promise<void> {
    const from = this.from();
    if (from.matches('cancelling'))
      this.lateSent.push(notification.paymentResult.resultStatus === 'S' ? 'S' : 'F');
    else if (trusted && notification.paymentResult.resultStatus === 'S' && isOpen(from))
      this.cancelsAtSuccess ??= this.cancels().length;
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
      case 'ANSWER_SS':
        this.cancelsAtSuccess ??= this.cancels().length;
        return this.answer('inquiry', answers.paid());
      case 'ANSWER_SF_CLOSED':
        return this.answer('inquiry', answers.closed());
      case 'ANSWER_SF_OTHER':
        return this.answer('inquiry', answers.paymentFailed());
      case 'ANSWER_SU':
        return this.answer('inquiry', answers.processing());
      case 'ANSWER_F_NOT_EXIST':
        return this.answer('inquiry', answers.orderNotExist());
      case 'ANSWER_F_FAULT':
        return this.answer('inquiry', answers.callFailed('INVALID_SIGNATURE'));
      case 'ANSWER_F_OTHER':
        return this.answer('inquiry', answers.callFailed('SOME_NEW_FAILURE'));
      case 'ANSWER_U':
        return this.answer('inquiry', answers.unknown());
      case 'ANSWER_U_TRAFFIC':
        return this.answer('inquiry', answers.unknown(TRAFFIC_LIMITED));
      case 'NO_RESULT':
        return from.matches('cancelling')
          ? this.answer('cancel', answers.cancelNoResult())
          : this.answer('inquiry', answers.noResult());
      case 'CANCEL_S':
        return this.answer('cancel', answers.cancelOk());
      case 'CANCEL_U':
        return this.answer('cancel', answers.cancelU());
      case 'CANCEL_F':
        return this.answer('cancel', answers.cancelF('PROCESS_FAIL'));
      case 'CANCEL_WINDOW_EXCEED':
        return this.answer('cancel', answers.cancelF('CANCEL_WINDOW_EXCEED'));
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
    this.current = model;
    const where = `after ${this.trace.join(' → ') || 'start'}`;
    const h = this.harness;
    const ctx = model.context;
    const real = h.context();
    const done = isFinalModelState(model);

    expect(h.state(), where).toBe(stateString(model.value));
    expect(h.isFinal(), where).toBe(done);

    // Inquiries: counted in context, each sent once (a re-run after a restore keeps its number).
    expect(real.inquiries, where).toBe(ctx.inquiries);
    expect(attempts(this.inquiries()), where).toEqual(range(ctx.inquiries));

    // Cancel progress.
    expect(attempts(this.cancels()), where).toEqual(range(ctx.cancelAttempts));
    if (ctx.cancelReason === null) {
      expect(real.cancel, where).toBeUndefined();
    } else {
      expect(real.cancel?.reason, where).toBe(ctx.cancelReason);
      expect(real.cancel?.attempts, where).toBe(ctx.cancelAttempts);
      // Not in a final state: settling on CANCEL_WINDOW_EXCEED counts it as a refusal too, although
      // CancelProgress.failures says it is not one; no outcome field carries the count.
      if (!done) expect(real.cancel?.failures, where).toBe(ctx.cancelFailures);
    }
    expect(real.lateNotifications, where).toHaveLength(ctx.late);

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
      expect(call.input.attempt, where).toBe(kind === 'inquiry' ? ctx.inquiries : ctx.cancelAttempts);
      if (kind === 'inquiry') this.checkInquiryTime(model, call);
      if (kind === 'cancel') this.checkCancelTime(call);
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
    if (ctx.attentionReason === 'cancel-window-closed')
      expect(outcome?.decidedAt, `${where}: decided when the window closed`).toBe(CANCEL_WINDOW_ENDS_AT);
    expect(
      outcome?.lateNotifications.map((late) => [late.resultStatus, late.flagged]),
      `${where}: late notifications, a late success flagged`,
    ).toEqual(this.lateSent.map((status) => [status, status === 'S']));
    expect(outcome?.decidedBy.source, `${where}: decided by`).toBe(this.decidedBy());
  }

  /** The inquiry in flight went out when the schedule says (a restore re-runs it under the same number). */
  private checkInquiryTime(model: ModelSnapshot, call: Call): void {
    const sentAt = firstSent(this.inquiries(), call.input.attempt);
    const where = `after ${this.trace.join(' → ')}: inquiry ${call.input.attempt} sent`;
    if (model.context.expiry === 'last-look-sent') {
      expect(sentAt, `${where} at expiry (the last look)`).toBe(EXPIRES_AT);
    } else {
      expect(sentAt, `${where} before expiry`).toBeLessThan(EXPIRES_AT);
    }
    if (call.input.attempt === 1) {
      expect(sentAt, `${where} one interval after creation`).toBe(T0 + INQUIRY_INTERVAL_MS);
    } else if (this.lastInquiryAnswer && model.context.expiry !== 'last-look-sent') {
      const { at, trafficLimited } = this.lastInquiryAnswer;
      const wait = trafficLimited ? INQUIRY_INTERVAL_MS * TRAFFIC_LIMIT_MULTIPLIER : INQUIRY_INTERVAL_MS;
      expect(sentAt, `${where} one interval after the previous answer`).toBe(Math.min(at + wait, EXPIRES_AT));
    }
  }

  /** A cancel retry goes out one retry interval after the previous cancel answer. */
  private checkCancelTime(call: Call): void {
    if (call.input.attempt === 1 || this.lastCancelAnswerAt === undefined) return;
    expect(
      firstSent(this.cancels(), call.input.attempt),
      `after ${this.trace.join(' → ')}: cancel ${call.input.attempt} sent`,
    ).toBe(this.lastCancelAnswerAt + CANCEL_RETRY_MS);
  }

  /** What decided the outcome, from the last stimulus. */
  private decidedBy(): string {
    const last = this.last;
    if (!last) return 'nothing';
    if (last.type === 'TIME_PASSES') return 'lifecycle';
    if (last.type.startsWith('CANCEL_') || last.from.matches('cancelling')) return 'cancel';
    if (isNotification(last.type)) return 'notification';
    return 'inquiry';
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
  const run = new Replay(lifecycleInput(config));
  const events: Record<string, () => Promise<void>> = {};
  for (const type of MODEL_EVENTS) events[type] = () => run.stimulate(type);
  await path.test({ states: { '*': (state) => run.check(state) }, events });

  const h = run.harness;
  const trace = run.trace.join(' → ');

  // No cancel once a success reached the open lifecycle (a success can only end it).
  if (run.cancelsAtSuccess !== undefined) {
    expect(run.cancelsAtSuccess, `${trace}: cancels before the success`).toBe(0);
    expect(run.cancels(), `${trace}: no cancel after a success`).toHaveLength(0);
    expect(h.outcome()?.status, trace).toBe('succeeded');
  }
  // Once a cancel was sent, the only outcomes are cancelled and attention; no inquiry follows it.
  const calls = run.calls();
  const firstCancel = calls.findIndex((call) => call.kind === 'cancel');
  if (firstCancel >= 0) {
    expect(h.state(), `${trace}: after a cancel`).toMatch(/^(cancelling\.|cancelled$|attention$)/);
    expect(
      calls.slice(firstCancel).filter((call) => call.kind === 'inquiry'),
      `${trace}: no inquiry after the cancel`,
    ).toHaveLength(0);
  }
  // At most one inquiry is first sent at or after expiry: the last look.
  const inquiries = run.inquiries();
  const afterExpiry = attempts(inquiries).filter((attempt) => firstSent(inquiries, attempt) >= EXPIRES_AT);
  expect(afterExpiry.length, `${trace}: inquiries sent at or after expiry`).toBeLessThanOrEqual(1);

  // At most one outcome: it is set once, at the final step, and a day later nothing has changed.
  expect(run.outcomes, `${trace}: outcomes settled`).toHaveLength(h.isFinal() ? 1 : 0);
  if (h.isFinal()) {
    const outcome = structuredClone(h.outcome());
    const state = h.state();
    const callCount = h.calls.length;
    await h.advance(24 * 3_600_000);
    expect(h.state(), `${trace}: final stays final`).toBe(state);
    expect(h.outcome(), `${trace}: the outcome never changes`).toEqual(outcome);
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
      const reached = new Set(
        model.shortest.flatMap((path) => path.steps.map((step) => stateString(step.state.value))),
      );
      const expected = [
        'awaitingResult.pending',
        'awaitingResult.inquiring',
        'cancelling.requesting',
        'cancelling.retryWait',
        'succeeded',
        'failed',
        'closed',
        'cancelled',
        'attention',
      ];
      if (model.config.awaitNotificationAfter !== undefined)
        expected.push('awaitingNotification.waiting', 'awaitingNotification.lastLook');
      expect([...reached].sort(), model.config.name).toEqual(expected.sort());

      // Where the shortest paths crash and restore, and where a notification arrives late.
      const appliedIn = (type: ModelEventType) =>
        new Set(
          model.shortest.flatMap((path) =>
            path.steps.flatMap((step, i) => {
              const before = path.steps[i - 1];
              return step.event.type === type && before ? [stateString(before.state.value)] : [];
            }),
          ),
        );
      const open = expected.filter((state) => state.includes('.'));
      expect([...appliedIn('RESTART')].sort(), `${model.config.name}: restarts`).toEqual(open.sort());
      expect([...appliedIn('NOTIFIED_S')].sort(), `${model.config.name}: notifications`).toEqual(open.sort());
    }
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
