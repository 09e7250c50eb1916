import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import type { FinalStatus, LifecycleInput, LifecycleOutcome } from '../machines/index.js';
import type { CancelOutcome, InquiryOutcome, NotifyPaymentRequest } from '../src/index.js';
import { answers, baseInput, LifecycleHarness, notifications, T0 } from './helpers/lifecycle-harness.js';

/**
 * Property tests of the lifecycle statechart: random interleavings of inquiry answers, cancel answers,
 * notifications, merchant CLOSE and time, on the real machine (SimulatedClock, scripted calls).
 * Answers and notifications are named by short labels so that a shrunk counterexample reads as a script.
 */

const HOUR = 3_600_000;
const FINAL_STATUSES: readonly FinalStatus[] = ['succeeded', 'failed', 'closed', 'cancelled', 'attention'];
const OTHER_AMOUNT = { currency: 'JPY', value: '999' };

const INQUIRY_FINAL = {
  paid: () => answers.paid(),
  'paid-other-amount': () => answers.paid({ paymentAmount: OTHER_AMOUNT }),
  closed: () => answers.closed(),
  'payment-failed:USER_BALANCE_NOT_ENOUGH': () => answers.paymentFailed('USER_BALANCE_NOT_ENOUGH'),
  'payment-failed:RISK_REJECT': () => answers.paymentFailed('RISK_REJECT'),
  'call-failed:INVALID_SIGNATURE': () => answers.callFailed('INVALID_SIGNATURE'),
  'call-failed:KEY_NOT_FOUND': () => answers.callFailed('KEY_NOT_FOUND'),
  'call-failed:PROCESS_FAIL': () => answers.callFailed('PROCESS_FAIL'),
  'call-failed:SOME_NEW_FAILURE': () => answers.callFailed('SOME_NEW_FAILURE'),
} satisfies Record<string, () => InquiryOutcome>;

const INQUIRY_AGAIN = {
  processing: () => answers.processing(),
  'order-not-exist': () => answers.orderNotExist(),
  'unknown:UNKNOWN_EXCEPTION': () => answers.unknown('UNKNOWN_EXCEPTION'),
  'unknown:REQUEST_TRAFFIC_EXCEED_LIMIT': () => answers.unknown('REQUEST_TRAFFIC_EXCEED_LIMIT'),
  'no-result:timeout': () => answers.noResult('timeout'),
  'no-result:network': () => answers.noResult('network'),
  'no-result:bad-signature': () => answers.noResult('bad-signature'),
} satisfies Record<string, () => InquiryOutcome>;

const INQUIRY_ANSWERS: Record<string, () => InquiryOutcome> = { ...INQUIRY_FINAL, ...INQUIRY_AGAIN };

const CANCEL_FINAL = {
  ok: () => answers.cancelOk(),
  'F:CANCEL_WINDOW_EXCEED': () => answers.cancelF('CANCEL_WINDOW_EXCEED'),
} satisfies Record<string, () => CancelOutcome>;

const CANCEL_AGAIN = {
  'U:UNKNOWN_EXCEPTION': () => answers.cancelU('UNKNOWN_EXCEPTION'),
  'U:REQUEST_TRAFFIC_EXCEED_LIMIT': () => answers.cancelU('REQUEST_TRAFFIC_EXCEED_LIMIT'),
  'F:PROCESS_FAIL': () => answers.cancelF('PROCESS_FAIL'),
  'F:INVALID_SIGNATURE': () => answers.cancelF('INVALID_SIGNATURE'),
  'F:SOME_NEW_REFUSAL': () => answers.cancelF('SOME_NEW_REFUSAL'),
  'no-result': () => answers.cancelNoResult(),
} satisfies Record<string, () => CancelOutcome>;

const CANCEL_ANSWERS: Record<string, () => CancelOutcome> = { ...CANCEL_FINAL, ...CANCEL_AGAIN };

const NOTIFICATIONS: Record<string, () => NotifyPaymentRequest> = {
  paid: () => notifications.paid(),
  'paid-other-amount': () => notifications.paid({ paymentAmount: OTHER_AMOUNT }),
  closed: () => notifications.closed(),
  'failed:RISK_REJECT': () => notifications.failed('RISK_REJECT'),
  'failed:USER_BALANCE_NOT_ENOUGH': () => notifications.failed('USER_BALANCE_NOT_ENOUGH'),
};

type Command =
  | { t: 'inquiry'; answer: string }
  | { t: 'cancel'; answer: string }
  | { t: 'notify'; notification: string }
  | { t: 'close' }
  | { t: 'advance'; ms: number }
  | { t: 'advanceTo'; mark: 'expiry' | 'cancelWindowEnd'; offsetMs: number };

interface Scenario {
  input: LifecycleInput;
  commands: Command[];
  fallbackInquiries: string[];
  fallbackCancels: string[];
  /** Sent once, when the first cancel call is pending during the drive: a notification racing the cancel. */
  notifyWhileCancelling: string | undefined;
}

const inquiryAnswerArb = fc.oneof(
  { arbitrary: fc.constantFrom(...Object.keys(INQUIRY_FINAL)), weight: 1 },
  { arbitrary: fc.constantFrom(...Object.keys(INQUIRY_AGAIN)), weight: 4 },
);
const cancelAnswerArb = fc.oneof(
  { arbitrary: fc.constantFrom(...Object.keys(CANCEL_FINAL)), weight: 1 },
  { arbitrary: fc.constantFrom(...Object.keys(CANCEL_AGAIN)), weight: 3 },
);

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ t: fc.constant('inquiry' as const), answer: inquiryAnswerArb }), weight: 6 },
  { arbitrary: fc.record({ t: fc.constant('cancel' as const), answer: cancelAnswerArb }), weight: 4 },
  {
    arbitrary: fc.record({
      t: fc.constant('notify' as const),
      notification: fc.constantFrom(...Object.keys(NOTIFICATIONS)),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ t: fc.constant('close' as const) }), weight: 1 },
  {
    arbitrary: fc.record({
      t: fc.constant('advance' as const),
      ms: fc.oneof(fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 3_000, max: 120_000 })),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      t: fc.constant('advanceTo' as const),
      mark: fc.constantFrom('expiry' as const, 'cancelWindowEnd' as const),
      offsetMs: fc.integer({ min: -2_000, max: 60_000 }),
    }),
    weight: 1,
  },
);

const scheduleArb = (min: number, max: number) =>
  fc.array(fc.integer({ min, max }), { minLength: 1, maxLength: 6 });

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    inquiryScheduleMs: scheduleArb(200, 20_000),
    maxInquiries: fc.integer({ min: 1, max: 20 }),
    awaitNotificationAfter: fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
    maxCancelFailures: fc.integer({ min: 1, max: 5 }),
    trafficLimitMultiplier: fc.constantFrom(1, 2, 3, 5),
    // The last cancel interval repeats until the window ends: keep it long enough to bound a run.
    cancelRetryScheduleMs: fc
      .tuple(scheduleArb(500, 60_000), fc.integer({ min: 120_000, max: 600_000 }))
      .map(([head, last]) => [...head, last]),
    expiryMs: fc.integer({ min: 5_000, max: 600_000 }),
    expiryViaPolicy: fc.boolean(),
    /** undefined: the default window (00:15 UTC+8 the next day, about 13 h after T0). */
    cancelWindowAfterExpiryMs: fc.option(fc.integer({ min: 0, max: 2 * HOUR }), { nil: undefined, freq: 3 }),
    commands: fc.array(commandArb, { maxLength: 40 }),
    fallbackInquiries: fc.array(inquiryAnswerArb, { minLength: 1, maxLength: 4 }),
    fallbackCancels: fc.array(cancelAnswerArb, { minLength: 1, maxLength: 4 }),
    notifyWhileCancelling: fc.option(fc.constantFrom(...Object.keys(NOTIFICATIONS)), { nil: undefined }),
  })
  .map((r): Scenario => {
    const policy: NonNullable<LifecycleInput['policy']> = {
      inquiryScheduleMs: r.inquiryScheduleMs,
      maxInquiries: r.maxInquiries,
      maxCancelFailures: r.maxCancelFailures,
      trafficLimitMultiplier: r.trafficLimitMultiplier,
      cancelRetryScheduleMs: r.cancelRetryScheduleMs,
    };
    if (r.awaitNotificationAfter !== undefined) policy.awaitNotificationAfter = r.awaitNotificationAfter;
    if (r.expiryViaPolicy) policy.defaultExpiryMs = r.expiryMs;
    const input = baseInput({ policy });
    if (!r.expiryViaPolicy) input.expiresAt = T0 + r.expiryMs;
    if (r.cancelWindowAfterExpiryMs !== undefined)
      input.cancelWindowEndsAt = T0 + r.expiryMs + r.cancelWindowAfterExpiryMs;
    return {
      input,
      commands: r.commands,
      fallbackInquiries: r.fallbackInquiries,
      fallbackCancels: r.fallbackCancels,
      notifyWhileCancelling: r.notifyWhileCancelling,
    };
  });

/** What the runs reached, so that the test can show the invariants were exercised, not vacuous. */
const coverage = new Map<string, number>();
const count = (key: string) => coverage.set(key, (coverage.get(key) ?? 0) + 1);

const DRIVE_STEP_CAP = 5_000;

/** Applies one scenario to a fresh harness, checking the invariants after every step. */
class PropertyRun {
  readonly h: LifecycleHarness;
  readonly expiresAt: number;
  readonly cancelWindowEndsAt: number;
  readonly maxInquiries: number;
  /** Cancel calls made when a success was first observed; none may follow. */
  private cancelsAtSuccess: number | undefined;
  private cancellingStarted = false;
  private firstFinal: { value: unknown; output: LifecycleOutcome | undefined } | undefined;
  private readonly states = new Set<string>();

  constructor(readonly scenario: Scenario) {
    this.h = new LifecycleHarness(scenario.input);
    const context = this.h.context();
    this.expiresAt = context.expiresAt;
    this.cancelWindowEndsAt = context.cancelWindowEndsAt;
    this.maxInquiries = context.policy.maxInquiries;
  }

  fail(message: string): never {
    const log = this.h.calls.map((c) => `${c.kind}@${c.sentAt - T0}${c.aborted ? '(aborted)' : ''}`);
    throw new Error(
      `${message}\n  state ${this.h.state()}, now T0+${this.h.now() - T0}, expiresAt T0+${this.expiresAt - T0}, ` +
        `cancelWindowEndsAt T0+${this.cancelWindowEndsAt - T0}\n  calls: ${log.join(' ')}`,
    );
  }

  /** The invariants that must hold after every step. */
  check(): void {
    const snapshot = this.h.actor.getSnapshot();
    if (snapshot.status === 'error') this.fail(`the actor errored: ${String(snapshot.error)}`);

    // JSON-only context.
    const context = snapshot.context;
    if (!isDeepStrictEqual(JSON.parse(JSON.stringify(context)), context))
      this.fail(`the context does not survive a JSON round trip: ${JSON.stringify(context)}`);

    const state = this.h.state();
    this.states.add(state);
    if (state.startsWith('cancelling') || this.h.cancels().length > 0) this.cancellingStarted = true;

    // 1. One final outcome, never changed once reached.
    if (snapshot.status === 'done') {
      const current = { value: snapshot.value, output: snapshot.output };
      if (this.firstFinal === undefined) this.firstFinal = structuredClone(current);
      else if (!isDeepStrictEqual(current, this.firstFinal))
        this.fail(
          `the outcome changed after it was reached: ${JSON.stringify(this.firstFinal)} -> ${JSON.stringify(current)}`,
        );
    } else if (this.firstFinal !== undefined) {
      this.fail(`the actor left its final state: status ${snapshot.status}`);
    }

    // 2. No cancel after a success was observed.
    if (this.cancelsAtSuccess !== undefined && this.h.cancels().length > this.cancelsAtSuccess)
      this.fail(
        `a cancel was sent after a success was observed (${this.cancelsAtSuccess} cancels before, ` +
          `${this.h.cancels().length} now)`,
      );

    // 4. No inquiry sent after expiry, except a single last look.
    const inquiries = this.h.inquiries();
    const afterExpiry = inquiries.filter((c) => c.sentAt > this.expiresAt).length;
    const atOrAfterExpiry = inquiries.filter((c) => c.sentAt >= this.expiresAt).length;
    if (afterExpiry > 1) this.fail(`${afterExpiry} inquiries were sent after expiresAt`);
    if (atOrAfterExpiry > 1) this.fail(`${atOrAfterExpiry} inquiries were sent at or after expiresAt`);

    // 5. The inquiry budget, plus one last look at most.
    if (inquiries.length > this.maxInquiries + 1)
      this.fail(`${inquiries.length} inquiries were sent; maxInquiries is ${this.maxInquiries}`);
  }

  private observeSuccess(): void {
    this.cancelsAtSuccess ??= this.h.cancels().length;
  }

  /** Sends an event; after the final state xstate warns about the stopped actor, which is expected here. */
  private async quietly(action: () => Promise<void>): Promise<void> {
    if (!this.h.isFinal()) return action();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      await action();
    } finally {
      warn.mockRestore();
    }
  }

  private async answerInquiry(label: string): Promise<void> {
    const make = INQUIRY_ANSWERS[label];
    if (!make) throw new Error(`unknown inquiry answer ${label}`);
    const outcome = make();
    if (
      outcome.kind === 'answer' &&
      outcome.result.resultStatus === 'S' &&
      outcome.paymentResult?.resultStatus === 'S'
    )
      this.observeSuccess();
    await this.h.answer(outcome);
  }

  private async answerCancel(label: string): Promise<void> {
    const make = CANCEL_ANSWERS[label];
    if (!make) throw new Error(`unknown cancel answer ${label}`);
    await this.h.answer(make());
  }

  private async notify(label: string): Promise<void> {
    const make = NOTIFICATIONS[label];
    if (!make) throw new Error(`unknown notification ${label}`);
    const notification = make();
    if (!this.h.isFinal() && !this.h.state().startsWith('cancelling')) {
      if (notification.paymentResult.resultStatus === 'S') this.observeSuccess();
    } else if (!this.h.isFinal()) {
      count('notification while cancelling');
    }
    await this.quietly(() => this.h.notify(notification));
  }

  async apply(command: Command): Promise<void> {
    const pending = this.h.pending();
    switch (command.t) {
      case 'inquiry':
        if (pending?.kind === 'inquiry') await this.answerInquiry(command.answer);
        break;
      case 'cancel':
        if (pending?.kind === 'cancel') await this.answerCancel(command.answer);
        break;
      case 'notify':
        await this.notify(command.notification);
        break;
      case 'close':
        if (!this.h.isFinal() && !this.h.state().startsWith('cancelling')) count('close before cancelling');
        await this.quietly(() => this.h.close());
        break;
      case 'advance':
        await this.h.advance(command.ms);
        break;
      case 'advanceTo': {
        const mark = command.mark === 'expiry' ? this.expiresAt : this.cancelWindowEndsAt;
        await this.h.advanceTo(mark + command.offsetMs);
        break;
      }
    }
    this.check();
  }

  /** Answers whatever is pending with the scripted fallbacks and lets time pass until the machine is final. */
  async drive(): Promise<void> {
    const { fallbackInquiries, fallbackCancels } = this.scenario;
    let lateNotification = this.scenario.notifyWhileCancelling;
    let inquiryAnswers = 0;
    let cancelAnswers = 0;
    for (let step = 0; step < DRIVE_STEP_CAP && !this.h.isFinal(); step++) {
      const pending = this.h.pending();
      if (pending?.kind === 'inquiry') {
        await this.answerInquiry(
          fallbackInquiries[inquiryAnswers++ % fallbackInquiries.length] ?? 'processing',
        );
      } else if (pending?.kind === 'cancel' && lateNotification !== undefined) {
        await this.notify(lateNotification);
        lateNotification = undefined;
      } else if (pending?.kind === 'cancel') {
        await this.answerCancel(fallbackCancels[cancelAnswers++ % fallbackCancels.length] ?? 'ok');
      } else {
        await this.h.runUntilCallOrFinal();
        if (!this.h.isFinal() && !this.h.pending())
          this.fail('stuck: not final, no call pending and no timer armed');
      }
      this.check();
    }
    if (!this.h.isFinal()) this.fail(`not final after ${DRIVE_STEP_CAP} drive steps`);
  }

  /** The end-of-run checks: one final outcome, consistent with what happened, and immune to later events. */
  async finish(): Promise<void> {
    const snapshot = this.h.actor.getSnapshot();
    const output = snapshot.output;
    if (snapshot.status !== 'done') this.fail(`not done: ${snapshot.status}`);
    if (output === undefined) this.fail('done without an output');
    if (!FINAL_STATUSES.includes(output.status)) this.fail(`unexpected final status ${output.status}`);
    if (snapshot.value !== output.status)
      this.fail(`final state ${JSON.stringify(snapshot.value)} but output status ${output.status}`);

    // 3. Once cancelling started, only cancelled or attention.
    if (this.cancellingStarted && output.status !== 'cancelled' && output.status !== 'attention')
      this.fail(`cancelling had started, yet the outcome is ${output.status}`);

    // 1. More events after done change nothing and send nothing.
    const calls = this.h.calls.length;
    for (const label of Object.keys(NOTIFICATIONS)) await this.notify(label);
    await this.quietly(() => this.h.close());
    await this.quietly(() => this.h.send({ type: 'RESUME', at: this.h.now() }));
    await this.h.advance(2 * 24 * HOUR);
    this.check();
    if (this.h.calls.length !== calls) this.fail('a call was made after the final state');

    count(`final ${output.status}`);
    if (output.attentionReason) count(`attention ${output.attentionReason}`);
    if (output.cancelReason) count(`cancel reason ${output.cancelReason}`);
    if (output.lateNotifications.some((n) => n.flagged)) count('flagged late notification');
    if (this.cancelsAtSuccess !== undefined) count('success observed, run continued');
    if (this.h.inquiries().some((c) => c.sentAt > this.expiresAt)) count('inquiry after expiresAt');
    if (this.h.inquiries().some((c) => c.sentAt === this.expiresAt)) count('inquiry at expiresAt');
    if (this.h.inquiries().length === this.maxInquiries) count('inquiry budget spent');
    if (this.h.inquiries().some((c) => c.aborted)) count('inquiry aborted');
    for (const state of this.states) count(`state ${state}`);
  }
}

async function runScenario(scenario: Scenario): Promise<void> {
  const run = new PropertyRun(scenario);
  try {
    run.check();
    for (const command of scenario.commands) await run.apply(command);
    await run.drive();
    await run.finish();
  } finally {
    run.h.stop();
  }
}

const seed = process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) };

describe('lifecycle properties over random interleavings', () => {
  it('one final outcome; no cancel after success; cancelling ends cancelled/attention; inquiry bounds; JSON context', async () => {
    await fc.assert(fc.asyncProperty(scenarioArb, runScenario), { numRuns: 200, ...seed });

    // The invariants above are only meaningful if the runs reach the situations they speak about.
    const reached = (key: string) => expect(coverage.get(key) ?? 0, key).toBeGreaterThan(0);
    for (const status of FINAL_STATUSES) reached(`final ${status}`);
    for (const reason of ['expired', 'max-inquiries', 'closed-by-merchant'])
      reached(`cancel reason ${reason}`);
    for (const reason of [
      'integration-fault',
      'amount-mismatch',
      'refund-required',
      'cancel-refused',
      'cancel-window-closed',
    ])
      reached(`attention ${reason}`);
    for (const key of [
      'success observed, run continued',
      'notification while cancelling',
      'flagged late notification',
      'close before cancelling',
      'inquiry after expiresAt',
      'inquiry at expiresAt',
      'inquiry budget spent',
      'inquiry aborted',
      'state awaitingNotification.lastLook',
      'state cancelling.retryWait',
    ])
      reached(key);
  }, 120_000);
});
