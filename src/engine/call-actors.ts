import { fromPromise } from 'xstate';
import {
  type CallInput,
  type CallResult,
  type PayCallInput,
  paymentLifecycleMachine,
  type RefundCallInput,
} from '../../machines/payment-lifecycle.js';
import { REFUND_DUE_REASON } from '../../machines/refund-request-id.js';
import type { AlipayPlusClient } from '../client/alipayplus-client.js';
import type {
  CancelOutcome,
  InquiryOutcome,
  NoResult,
  PayOutcome,
  RefundOutcome,
} from '../client/answers.js';
import type { PayRequest } from '../protocol/pay.js';
import type { SharedLifecycleStore } from '../stores/store.js';
import type { CallAdmission, CallApi, CallLimiter } from './call-limiter.js';
import type { EngineClock } from './clock.js';
import type { Lifecycle, LifecycleTable } from './lifecycle.js';
import type { EngineMetrics } from './metrics.js';

/** No pay is signed this close to its expiry: it could not reach Alipay+ before the expiry it carries. */
const PAY_CUTOFF_MS = 1_000;

/** What {@link provideCallActors} needs from the engine. */
export interface CallActorsOptions {
  client: Pick<AlipayPlusClient, 'inquiryPayment' | 'cancelPayment'> &
    Partial<Pick<AlipayPlusClient, 'pay' | 'refund'>>;
  clock: EngineClock;
  /** Admission control: every call waits for a slot. */
  limiter: CallLimiter;
  /** The lifecycles held here (a pay reads its stored request from its own). */
  lifecycles: Pick<LifecycleTable, 'get'>;
  /** Resolves once everything the lifecycle did so far is durable (group commit). */
  durable(lifecycle: Lifecycle): Promise<void>;
  /** The store, if workers share it: side effects need this worker's lease. */
  shared: SharedLifecycleStore | undefined;
  /** Counts and times each call actually sent (not one aborted or refused before sending). */
  metrics: Pick<EngineMetrics, 'call'>;
  /** Sees each sent call's outcome (the incident brake counts them). */
  onCall?(api: CallApi, outcome: InquiryOutcome | CancelOutcome | PayOutcome | RefundOutcome): void;
  /**
   * The adaptive plan for a lifecycle that has no wallet yet, now that an answer names one
   * (`pspId`); `undefined` when it needs none.
   */
  planFor?(paymentRequestId: string, pspId: string): readonly number[] | undefined;
}

const abortedCall = (): NoResult => ({
  kind: 'no-result',
  reason: 'aborted',
  detail: 'aborted while waiting to be sent',
});

const notSent = (detail: string): NoResult => ({ kind: 'no-result', reason: 'not-sent', detail });

/** What a call that got no slot answers: aborted by its lifecycle, or given up as worthless by now. */
const notRun = (verdict: 'aborted' | 'late'): NoResult =>
  verdict === 'late'
    ? notSent(
        'still waiting for a call slot when it was worth nothing any more (Alipay+ overloaded); not sent',
      )
    : abortedCall();

/**
 * How long past the payment's expiry (or past its start, for one started later: a restored lifecycle)
 * a routine poll or the last look may wait for its slot. Later, it only holds up the cancel: the
 * lifecycle cancels without it (a cancel is always safe; the last look only spares a paid payment
 * the cancel).
 */
const INQUIRY_GRACE_MS = 3_000;

const PAY: CallAdmission = { api: 'pay', urgency: 'deadline' };
const REFUND: CallAdmission = { api: 'refund', urgency: 'refund' };
const CANCEL: CallAdmission = { api: 'cancelPayment', urgency: 'cancel' };
const LAST_LOOK: CallAdmission = { api: 'inquiryPayment', urgency: 'deadline' };
const WINDOW_CHECK: CallAdmission = { api: 'inquiryPayment', urgency: 'refund' };

/** An inquiry's admission: by what the machine says it is for. */
function inquiryAdmission(input: CallInput, now: number): CallAdmission {
  if (input.purpose === 'window-check') return WINDOW_CHECK;
  const giveUpAt =
    input.notAfter === undefined ? undefined : Math.max(input.notAfter, now) + INQUIRY_GRACE_MS;
  if (input.purpose === 'last-look') return giveUpAt === undefined ? LAST_LOOK : { ...LAST_LOOK, giveUpAt };
  return { api: 'inquiryPayment', urgency: 'poll', deadline: input.notAfter, giveUpAt };
}

/** The lifecycle machine with the engine's calls: pay, refund, inquiry and cancel, each through the limiter. */
export function provideCallActors(options: CallActorsOptions): typeof paymentLifecycleMachine {
  const { client, clock, limiter, lifecycles, durable, shared, planFor, onCall } = options;
  /** A call, counted and timed, and shown to `onCall`. */
  const metrics = {
    async call<T extends InquiryOutcome | CancelOutcome | PayOutcome | RefundOutcome>(
      api: CallApi,
      send: () => Promise<T>,
    ): Promise<T> {
      const outcome = await options.metrics.call(api, send);
      onCall?.(api, outcome);
      return outcome;
    },
  };

  /** An answer's result, with the plan for its wallet when the lifecycle learns its wallet from it. */
  function resultOf<T extends InquiryOutcome | PayOutcome>(
    paymentRequestId: string,
    outcome: T,
  ): CallResult<T> {
    const at = clock.now();
    const pspId = outcome.kind === 'answer' ? outcome.pspId : undefined;
    if (!planFor || typeof pspId !== 'string') return { outcome, at };
    const plan = planFor(paymentRequestId, pspId);
    return plan ? { outcome, at, plan } : { outcome, at };
  }

  /**
   * Whether this worker may start a side effect (a pay, a cancel, a refund) for the lifecycle: only
   * once everything it did so far is durable, and only while its lease surely holds (a paused or
   * partitioned worker's lifecycles may belong to another by now: it stops here, the owner decides).
   */
  async function mayAct(id: string): Promise<boolean> {
    const lifecycle = lifecycles.get(id);
    if (lifecycle) await durable(lifecycle);
    if (shared && performance.now() > shared.leaseValidUntil()) {
      lifecycle?.stop('lease-expired');
      return false;
    }
    return true;
  }

  /**
   * A side effect (a pay, a cancel, a refund): its call slot is taken first, in its turn by urgency,
   * and only then is it checked that everything its lifecycle did is durable and the lease holds.
   * Taken the other way round, the slot a due cancel was given would go to a poll while the cancel
   * waited for its write.
   */
  function sideEffect<T>(
    id: string,
    admission: CallAdmission,
    signal: AbortSignal,
    send: () => Promise<T | NoResult>,
  ): Promise<T | NoResult> {
    return limiter.run(admission, signal, async () => ((await mayAct(id)) ? send() : abortedCall()), notRun);
  }

  return paymentLifecycleMachine.provide({
    actors: {
      pay: fromPromise<CallResult<PayOutcome>, PayCallInput>(async ({ input, signal }) => {
        // Sent only once `paying` (with the exact request) is durable: a crash cannot lose a sent pay.
        const lifecycle = lifecycles.get(input.paymentRequestId);
        const send = (): Promise<PayOutcome> => {
          const request = lifecycle?.payRequest as PayRequest | undefined;
          // Checked once a call slot is ours, right before signing: no pay in the last second before
          // expiry (it could not arrive in time) nor after it.
          if (clock.now() >= input.notAfter - PAY_CUTOFF_MS)
            return Promise.resolve(notSent('the payment expires within a second, or has expired'));
          if (!request || !client.pay) return Promise.resolve(notSent('no pay request or no client.pay'));
          const payClient = client as Required<typeof client>; // has pay(): checked just above
          lifecycle?.payLeaving();
          return metrics.call('pay', () => payClient.pay(request, { signal }));
        };
        // A pay still waiting for its slot at the cut-off is not sent (Alipay+ overloaded, calls
        // paced). If no pay for this payment ever left, nothing reached Alipay+: the lifecycle fails
        // without an inquiry or a cancel. Else it goes on as for any pay without an answer.
        const admission = { ...PAY, giveUpAt: input.notAfter - PAY_CUTOFF_MS };
        const outcome = await sideEffect(input.paymentRequestId, admission, signal, send);
        const neverLeft =
          outcome.kind === 'no-result' && outcome.reason === 'not-sent' && lifecycle?.payNeverLeft === true;
        return resultOf(
          input.paymentRequestId,
          neverLeft
            ? {
                kind: 'no-result',
                reason: 'never-sent',
                detail: `${outcome.detail}; no pay for it ever left this engine`,
              }
            : outcome,
        );
      }),
      refund: fromPromise<CallResult<RefundOutcome>, RefundCallInput>(async ({ input, signal }) => {
        // Sent only once `refunding` is durable, with the same refundRequestId every time.
        const refund = client.refund;
        if (!refund) return { outcome: notSent('the client has no refund()'), at: clock.now() };
        const request = {
          refundRequestId: input.refundRequestId,
          ...input.ref,
          refundAmount: input.refundAmount,
          refundReason: REFUND_DUE_REASON,
        };
        return {
          outcome: await sideEffect(input.paymentRequestId, REFUND, signal, () =>
            metrics.call('refund', () => refund(request, { signal })),
          ),
          at: clock.now(),
        };
      }),
      inquiryPayment: fromPromise<CallResult<InquiryOutcome>, CallInput>(async ({ input, signal }) =>
        resultOf(
          input.paymentRequestId,
          await limiter.run(
            inquiryAdmission(input, clock.now()),
            signal,
            () => metrics.call('inquiryPayment', () => client.inquiryPayment(input.ref, { signal })),
            notRun,
          ),
        ),
      ),
      cancelPayment: fromPromise<CallResult<CancelOutcome>, CallInput>(async ({ input, signal }) => {
        // A cancel goes out only once "cancelling" is durable: a crash now cannot forget that it was sent.
        return {
          outcome: await sideEffect(input.paymentRequestId, CANCEL, signal, () =>
            metrics.call('cancelPayment', () => client.cancelPayment(input.ref, { signal })),
          ),
          at: clock.now(),
        };
      }),
    },
  });
}
