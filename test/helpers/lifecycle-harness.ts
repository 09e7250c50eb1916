import { type Actor, createActor, fromPromise, SimulatedClock, type Snapshot } from 'xstate';
import {
  type CallInput,
  type CallResult,
  type LifecycleInput,
  type LifecycleOutcome,
  paymentLifecycleMachine,
} from '../../machines/index.js';
import { stateString } from '../../src/engine/payment-engine.js';
import type {
  CancelOutcome,
  InquiryAnswer,
  InquiryOutcome,
  NotifyPaymentRequest,
  PayOutcome,
  RefundOutcome,
} from '../../src/index.js';

type AnyOutcome = InquiryOutcome | CancelOutcome | PayOutcome | RefundOutcome;

export const T0 = Date.UTC(2026, 0, 15, 3, 0, 0); // 11:00 UTC+8

/** A call the machine made, answered by the test when it chooses. */
export interface PendingCall<T> {
  kind: 'inquiry' | 'cancel' | 'pay' | 'refund';
  /** CallInput for inquiries and cancels; PayCallInput / RefundCallInput for pays and refunds. */
  input: Partial<CallInput> & {
    paymentRequestId: string;
    attempt: number;
    notAfter?: number;
    refundRequestId?: string;
    refundAmount?: { currency: string; value: string };
  };
  sentAt: number;
  aborted: boolean;
  settledAt?: number;
  resolve(outcome: T): void;
}

/**
 * Runs the real lifecycle machine on a SimulatedClock with scripted call actors. Calls stay pending
 * until the test answers them, so every interleaving of answers, notifications and time can be
 * driven on purpose.
 */
export class LifecycleHarness {
  readonly clock = new SimulatedClock();
  readonly calls: PendingCall<AnyOutcome>[] = [];
  actor: Actor<typeof paymentLifecycleMachine>;
  /** When set, a new inquiry is answered at once with what this returns (undefined: leave pending). */
  autoInquiry: ((call: PendingCall<InquiryOutcome>) => InquiryOutcome | undefined) | undefined;
  autoCancel: ((call: PendingCall<CancelOutcome>) => CancelOutcome | undefined) | undefined;
  autoPay: ((call: PendingCall<PayOutcome>) => PayOutcome | undefined) | undefined;
  autoRefund: ((call: PendingCall<RefundOutcome>) => RefundOutcome | undefined) | undefined;
  /** When set, every call result carries this adaptive plan (as the engine adds one to an answer naming a pspId). */
  resultPlan: readonly number[] | undefined;

  constructor(
    readonly input: LifecycleInput,
    snapshot?: Snapshot<unknown>,
    startAt = input.createdAt,
  ) {
    this.clock.set(startAt);
    this.actor = this.create(snapshot);
    this.actor.start();
  }

  private create(snapshot?: Snapshot<unknown>) {
    const call = <T>(kind: PendingCall<T>['kind']) =>
      fromPromise<CallResult<T>, PendingCall<T>['input']>(
        ({ input, signal }) =>
          new Promise<CallResult<T>>((resolve) => {
            const pending: PendingCall<T> = {
              kind,
              input,
              sentAt: this.clock.now(),
              aborted: false,
              resolve: (outcome) => {
                pending.settledAt = this.clock.now();
                const result: CallResult<T> = { outcome, at: this.clock.now() };
                if (this.resultPlan) result.plan = this.resultPlan;
                resolve(result);
              },
            };
            signal.addEventListener('abort', () => {
              pending.aborted = true;
            });
            this.calls.push(pending as PendingCall<AnyOutcome>);
            const auto =
              kind === 'inquiry'
                ? this.autoInquiry?.(pending as unknown as PendingCall<InquiryOutcome>)
                : kind === 'cancel'
                  ? this.autoCancel?.(pending as unknown as PendingCall<CancelOutcome>)
                  : kind === 'pay'
                    ? this.autoPay?.(pending as unknown as PendingCall<PayOutcome>)
                    : this.autoRefund?.(pending as unknown as PendingCall<RefundOutcome>);
            if (auto) pending.resolve(auto as T);
          }),
      );
    const machine = paymentLifecycleMachine.provide({
      actors: {
        pay: call<PayOutcome>('pay') as never,
        inquiryPayment: call<InquiryOutcome>('inquiry') as never,
        cancelPayment: call<CancelOutcome>('cancel') as never,
        refund: call<RefundOutcome>('refund') as never,
      },
    });
    return snapshot
      ? createActor(machine, { clock: this.clock, snapshot, input: this.input })
      : createActor(machine, { clock: this.clock, input: this.input });
  }

  /** Lets promise callbacks and the events they send run to completion. */
  async flush(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  }

  now(): number {
    return this.clock.now();
  }

  /** Moves simulated time forward, firing due timers one at a time and letting their effects settle. */
  async advance(ms: number): Promise<void> {
    const target = this.clock.now() + ms;
    // Step timer by timer so that timers armed by a transition are seen at their own time.
    for (let guard = 0; guard < 10_000; guard++) {
      const next = this.nextTimerAt();
      if (next === undefined || next > target) break;
      this.clock.set(Math.max(this.clock.now(), next));
      await this.flush();
    }
    this.clock.set(target);
    await this.flush();
  }

  async advanceTo(at: number): Promise<void> {
    await this.advance(Math.max(0, at - this.clock.now()));
  }

  /** Runs timers until the machine is waiting on a call or is final (or `limitMs` of simulated time passed). */
  async runUntilCallOrFinal(limitMs = 7 * 24 * 3600_000): Promise<void> {
    const end = this.clock.now() + limitMs;
    for (let guard = 0; guard < 100_000; guard++) {
      await this.flush();
      if (this.isFinal() || this.pending()) return;
      const next = this.nextTimerAt();
      if (next === undefined || next > end) return;
      this.clock.set(Math.max(this.clock.now(), next));
    }
  }

  private nextTimerAt(): number | undefined {
    // SimulatedClock keeps its timeouts private; read them for stepping.
    const timeouts = (this.clock as unknown as { timeouts: Map<number, { start: number; timeout: number }> })
      .timeouts;
    let next: number | undefined;
    for (const { start, timeout } of timeouts.values()) {
      const at = start + timeout;
      if (next === undefined || at < next) next = at;
    }
    return next;
  }

  /** The call waiting for an answer, if any (the latest one not yet settled and not aborted). */
  pending(): PendingCall<AnyOutcome> | undefined {
    return this.calls.findLast((c) => c.settledAt === undefined && !c.aborted);
  }

  async answer(outcome: AnyOutcome): Promise<void> {
    const call = this.pending();
    if (!call) throw new Error(`no call is pending in state ${this.state()}`);
    call.resolve(outcome);
    await this.flush();
  }

  async send(event: Parameters<typeof this.actor.send>[0]): Promise<void> {
    this.actor.send(event);
    await this.flush();
  }

  async notify(notification: NotifyPaymentRequest): Promise<void> {
    await this.send({ type: 'NOTIFIED', notification, at: this.clock.now() });
  }

  async close(): Promise<void> {
    await this.send({ type: 'CLOSE', at: this.clock.now() });
  }

  state(): string {
    return stateString(this.actor.getSnapshot().value);
  }

  isFinal(): boolean {
    return this.actor.getSnapshot().status === 'done';
  }

  outcome(): LifecycleOutcome | undefined {
    return this.actor.getSnapshot().output;
  }

  context() {
    return this.actor.getSnapshot().context;
  }

  inquiries(): PendingCall<AnyOutcome>[] {
    return this.calls.filter((c) => c.kind === 'inquiry');
  }

  cancels(): PendingCall<AnyOutcome>[] {
    return this.calls.filter((c) => c.kind === 'cancel');
  }

  pays(): PendingCall<AnyOutcome>[] {
    return this.calls.filter((c) => c.kind === 'pay');
  }

  refunds(): PendingCall<AnyOutcome>[] {
    return this.calls.filter((c) => c.kind === 'refund');
  }

  /** Persists the actor as JSON text, as a store would. */
  persist(): string {
    return JSON.stringify(this.actor.getPersistedSnapshot());
  }

  /** Stops this actor (a crash) and restores a new one from `json` at time `at`, then sends RESUME. */
  static async restore(
    input: LifecycleInput,
    json: string,
    at: number,
    resume = true,
  ): Promise<LifecycleHarness> {
    const restored = new LifecycleHarness(input, JSON.parse(json) as Snapshot<unknown>, at);
    await restored.flush();
    if (resume) await restored.send({ type: 'RESUME', at });
    return restored;
  }

  stop(): void {
    this.actor.stop();
  }
}

export { stateString } from '../../src/engine/payment-engine.js';

// Scripted answers, as the client would resolve them.
const ok = { resultCode: 'SUCCESS', resultStatus: 'S' as const, resultMessage: 'success' };
const meta = { kind: 'answer' as const, raw: '{}', responseTime: '2026-01-15T11:00:00+08:00' };

export const answers = {
  paid: (extra: Record<string, unknown> = {}): InquiryAnswer => ({
    ...meta,
    result: ok,
    paymentResult: ok,
    paymentId: 'PAY-1',
    paymentAmount: { currency: 'JPY', value: '100' },
    ...extra,
  }),
  closed: (): InquiryAnswer => ({
    ...meta,
    result: ok,
    paymentResult: { resultCode: 'ORDER_IS_CLOSED', resultStatus: 'F', resultMessage: 'closed' },
  }),
  paymentFailed: (code = 'USER_BALANCE_NOT_ENOUGH'): InquiryAnswer => ({
    ...meta,
    result: ok,
    paymentResult: { resultCode: code, resultStatus: 'F' },
  }),
  processing: (): InquiryAnswer => ({
    ...meta,
    result: ok,
    paymentResult: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' },
  }),
  orderNotExist: (): InquiryAnswer => ({
    ...meta,
    result: { resultCode: 'ORDER_NOT_EXIST', resultStatus: 'F' },
  }),
  callFailed: (code = 'SOME_NEW_FAILURE'): InquiryAnswer => ({
    ...meta,
    result: { resultCode: code, resultStatus: 'F' },
  }),
  unknown: (code = 'UNKNOWN_EXCEPTION'): InquiryAnswer => ({
    ...meta,
    result: { resultCode: code, resultStatus: 'U' },
  }),
  noResult: (reason: 'timeout' | 'network' | 'bad-signature' = 'timeout'): InquiryOutcome => ({
    kind: 'no-result',
    reason,
    detail: 'scripted',
  }),
  cancelOk: (): CancelOutcome => ({ ...meta, result: ok, acquirerId: 'ACQ', pspId: 'PSP' }),
  cancelU: (code = 'UNKNOWN_EXCEPTION'): CancelOutcome => ({
    ...meta,
    result: { resultCode: code, resultStatus: 'U' },
  }),
  cancelF: (code = 'PROCESS_FAIL'): CancelOutcome => ({
    ...meta,
    result: { resultCode: code, resultStatus: 'F' },
  }),
  cancelNoResult: (): CancelOutcome => ({ kind: 'no-result', reason: 'timeout', detail: 'scripted' }),
  payS: (extra: Record<string, unknown> = {}): PayOutcome => ({
    ...meta,
    result: ok,
    paymentId: 'PAY-1',
    paymentAmount: { currency: 'JPY', value: '100' },
    paymentTime: '2026-01-15T11:00:01+08:00',
    ...extra,
  }),
  payU: (code = 'PAYMENT_IN_PROCESS'): PayOutcome => ({
    ...meta,
    result: { resultCode: code, resultStatus: 'U' },
    paymentId: 'PAY-1',
  }),
  payF: (code = 'USER_BALANCE_NOT_ENOUGH'): PayOutcome => ({
    ...meta,
    result: { resultCode: code, resultStatus: 'F' },
  }),
  payNoResult: (reason: 'timeout' | 'network' | 'not-sent' | 'never-sent' = 'timeout'): PayOutcome => ({
    kind: 'no-result',
    reason,
    detail: 'scripted',
  }),
  refundS: (): RefundOutcome => ({
    ...meta,
    result: ok,
    refundId: 'RF-ID-1',
    refundTime: '2026-01-16T11:00:00+08:00',
    refundAmount: { currency: 'JPY', value: '100' },
  }),
  refundU: (code = 'UNKNOWN_EXCEPTION'): RefundOutcome => ({
    ...meta,
    result: { resultCode: code, resultStatus: 'U' },
  }),
  refundF: (code = 'REFUND_AMOUNT_EXCEED'): RefundOutcome => ({
    ...meta,
    result: { resultCode: code, resultStatus: 'F' },
  }),
  refundNoResult: (): RefundOutcome => ({ kind: 'no-result', reason: 'timeout', detail: 'scripted' }),
};

export const notifications = {
  paid: (extra: Partial<NotifyPaymentRequest> = {}): NotifyPaymentRequest => ({
    paymentRequestId: 'REQ-1',
    paymentId: 'PAY-1',
    paymentResult: ok,
    paymentAmount: { currency: 'JPY', value: '100' },
    ...extra,
  }),
  closed: (): NotifyPaymentRequest => ({
    paymentRequestId: 'REQ-1',
    paymentResult: { resultCode: 'ORDER_IS_CLOSED', resultStatus: 'F' },
  }),
  failed: (code = 'RISK_REJECT'): NotifyPaymentRequest => ({
    paymentRequestId: 'REQ-1',
    paymentResult: { resultCode: code, resultStatus: 'F' },
  }),
};

/**
 * A lifecycle's input for the machine tests. Retries wait exactly their schedule here (`retryJitter:
 * 'none'`), so that the tests can name each wait; the jitter has tests of its own
 * (test/retry-jitter.test.ts). A test's own policy may set it back.
 */
export const baseInput = (extra: Partial<LifecycleInput> = {}): LifecycleInput => ({
  paymentRequestId: 'REQ-1',
  amount: { currency: 'JPY', value: '100' },
  createdAt: T0,
  ...extra,
  policy: { retryJitter: 'none', ...extra.policy },
});
