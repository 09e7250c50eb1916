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
import type { CallLimiter } from './call-limiter.js';
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

/** The lifecycle machine with the engine's calls: pay, refund, inquiry and cancel, each through the limiter. */
export function provideCallActors(options: CallActorsOptions): typeof paymentLifecycleMachine {
  const { client, clock, limiter, lifecycles, durable, shared, metrics, planFor } = options;

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

  return paymentLifecycleMachine.provide({
    actors: {
      pay: fromPromise<CallResult<PayOutcome>, PayCallInput>(async ({ input, signal }) => {
        // Sent only once `paying` (with the exact request) is durable: a crash cannot lose a sent pay.
        if (!(await mayAct(input.paymentRequestId))) return { outcome: abortedCall(), at: clock.now() };
        const request = lifecycles.get(input.paymentRequestId)?.payRequest as PayRequest | undefined;
        const send = () => {
          // Checked once a call slot is ours, right before signing: no pay in the last second before
          // expiry (it could not arrive in time) nor after it.
          if (clock.now() >= input.notAfter - PAY_CUTOFF_MS)
            return Promise.resolve(notSent('the payment expires within a second, or has expired'));
          if (!request || !client.pay) return Promise.resolve(notSent('no pay request or no client.pay'));
          const payClient = client as Required<typeof client>; // has pay(): checked just above
          return metrics.call('pay', () => payClient.pay(request, { signal }));
        };
        return resultOf(input.paymentRequestId, await limiter.run(signal, send, abortedCall));
      }),
      refund: fromPromise<CallResult<RefundOutcome>, RefundCallInput>(async ({ input, signal }) => {
        // Sent only once `refunding` is durable, with the same refundRequestId every time.
        if (!(await mayAct(input.paymentRequestId))) return { outcome: abortedCall(), at: clock.now() };
        const refund = client.refund;
        if (!refund) return { outcome: notSent('the client has no refund()'), at: clock.now() };
        const request = {
          refundRequestId: input.refundRequestId,
          ...input.ref,
          refundAmount: input.refundAmount,
          refundReason: REFUND_DUE_REASON,
        };
        return {
          outcome: await limiter.run(
            signal,
            () => metrics.call('refund', () => refund(request, { signal })),
            abortedCall,
          ),
          at: clock.now(),
        };
      }),
      inquiryPayment: fromPromise<CallResult<InquiryOutcome>, CallInput>(async ({ input, signal }) =>
        resultOf(
          input.paymentRequestId,
          await limiter.run(
            signal,
            () => metrics.call('inquiryPayment', () => client.inquiryPayment(input.ref, { signal })),
            abortedCall,
          ),
        ),
      ),
      cancelPayment: fromPromise<CallResult<CancelOutcome>, CallInput>(async ({ input, signal }) => {
        // A cancel goes out only once "cancelling" is durable: a crash now cannot forget that it was sent.
        if (!(await mayAct(input.paymentRequestId))) return { outcome: abortedCall(), at: clock.now() };
        return {
          outcome: await limiter.run(
            signal,
            () => metrics.call('cancelPayment', () => client.cancelPayment(input.ref, { signal })),
            abortedCall,
          ),
          at: clock.now(),
        };
      }),
    },
  });
}
