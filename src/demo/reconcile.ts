import { classifyPay, type PayRowId } from '../../machines/decision-table.js';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import type { AlipayPlusClient } from '../client/alipayplus-client.js';
import type { PaymentRef } from '../protocol/common.js';
import { payModeOf } from '../protocol/pay.js';
import type { OrderTruth } from '../simulator/order-book.js';

/** One payment whose outcome contradicts what really happened at the (simulated) wallet. */
export interface Divergence {
  paymentRequestId: string;
  reason: string;
}

/** The demo's verdict against the simulator's ground truth. */
export interface Reconciliation {
  /** Tracked payments that had no final outcome when the run ended. */
  lost: string[];
  /** Outcomes that disagree with the truth, and cancels sent after a success was seen. */
  divergent: Divergence[];
  /** Outcomes that ask a person to act: counted apart, since a person decides, not the engine. */
  attention: LifecycleOutcome[];
}

/**
 * Whether an outcome is consistent with the truth. A success needs the money taken and kept (not
 * cancelled, nor all refunded: in the demo only a lifecycle refunds, and never one that said
 * "succeeded"); a cancel needs the cancel to have happened; closed and failed need the money never
 * taken (a refund would not make them right: the user would have paid for nothing until someone
 * noticed); refunded needs the money taken and then all returned by refunds, not by a cancel.
 * Attention always passes: it claims nothing about the payment, it hands it to a person.
 */
export function agreesWithTruth(outcome: LifecycleOutcome, truth: OrderTruth): boolean {
  switch (outcome.status) {
    case 'succeeded':
      return truth.charged && !truth.cancelled && truth.status !== 'refunded';
    case 'cancelled':
      return truth.cancelled;
    case 'closed':
    case 'failed':
      return !truth.charged;
    case 'refunded':
      // The simulator's status `refunded`: paid, then refunds totalling the paid amount.
      return truth.charged && !truth.cancelled && truth.status === 'refunded';
    case 'attention':
      return true;
  }
}

/**
 * Reconciles the engine's outcomes with the simulator's ground truth.
 * @param tracked every payment the demo tracked
 * @param outcomes the final outcomes received, by paymentRequestId
 * @param truths the simulator's ground truth at the end of the run
 * @param cancelsAfterSeenSuccess payments the engine sent cancelPayment for after its own client had
 *   handed it an inquiry answer that said paid (see {@link watchClient})
 */
export function reconcile(
  tracked: readonly string[],
  outcomes: ReadonlyMap<string, LifecycleOutcome>,
  truths: readonly OrderTruth[],
  cancelsAfterSeenSuccess: readonly string[],
): Reconciliation {
  const truthById = new Map(truths.map((t) => [t.paymentRequestId, t]));
  const result: Reconciliation = { lost: [], divergent: [], attention: [] };
  for (const id of tracked) {
    const outcome = outcomes.get(id);
    if (!outcome) {
      result.lost.push(id);
      continue;
    }
    if (outcome.status === 'attention') result.attention.push(outcome);
    const truth = truthById.get(id);
    if (!truth) {
      // No order at the wallet: the pay never reached it (a client timeout before the request left, on
      // a starved machine). Nothing was charged, so an outcome that says so (closed, failed,
      // cancelled) is right; one that says money moved is not.
      if (outcome.status === 'succeeded' || outcome.status === 'refunded')
        result.divergent.push({
          paymentRequestId: id,
          reason: `engine says ${outcome.status}, but the simulator has no order with this ID`,
        });
    } else if (!agreesWithTruth(outcome, truth)) {
      result.divergent.push({
        paymentRequestId: id,
        reason: `engine says ${outcome.status}, truth is ${truth.status} (charged ${truth.charged}, cancelled ${truth.cancelled})`,
      });
    }
  }
  for (const id of cancelsAfterSeenSuccess) {
    result.divergent.push({
      paymentRequestId: id,
      reason: 'cancelPayment was sent after an inquiry answer that said paid had reached the engine',
    });
  }
  return result;
}

/** The calls the engine makes: `pay` and `refund` when the client has them. */
type LifecycleCalls = Pick<AlipayPlusClient, 'inquiryPayment' | 'cancelPayment'> &
  Partial<Pick<AlipayPlusClient, 'pay' | 'refund'>>;

/** A client as the engine sees it, and what the engine was told through it. */
export interface WatchedClient {
  client: LifecycleCalls;
  /** Payments cancelled after the engine had received a paid answer for them. */
  cancelsAfterSeenSuccess(): string[];
  /**
   * The first answer to each payment's pay, classified by the pay table, whether or not the
   * lifecycle used it (a notification may have settled the payment while the answer was on its way).
   */
  payAnswers(): ReadonlyMap<string, { row: PayRowId; code: string }>;
}

/**
 * Wraps the client the engine uses, to check the rule "never cancel a payment known to be paid"
 * from the engine's side of the wire. The simulator's call log cannot tell it: an answer the
 * simulator sent may never have reached the engine (a timeout), and cancelling after that is the
 * careful, correct move — the cancel refunds the user. A paid answer is an inquiry's S/S, or a pay's
 * S in a mode where S means paid (not an order or entry code, whose S only shows the code).
 * `pay` and `refund` pass through unchanged; the pay answers are noted for the report.
 */
export function watchClient(client: LifecycleCalls): WatchedClient {
  const paidSeen = new Set<string>();
  const offenders = new Set<string>();
  const payAnswers = new Map<string, { row: PayRowId; code: string }>();
  const idOf = (ref: PaymentRef) => ('paymentRequestId' in ref ? ref.paymentRequestId : ref.paymentId);
  const watched: LifecycleCalls = {
    async inquiryPayment(ref, options) {
      const outcome = await client.inquiryPayment(ref, options);
      // Once the paymentId is known the machine asks by it; the answer names our request ID.
      if (outcome.kind === 'answer' && outcome.paymentResult?.resultStatus === 'S')
        paidSeen.add(outcome.paymentRequestId ?? idOf(ref));
      return outcome;
    },
    cancelPayment(ref, options) {
      if (paidSeen.has(idOf(ref))) offenders.add(idOf(ref));
      return client.cancelPayment(ref, options);
    },
  };
  const pay = client.pay?.bind(client);
  const refund = client.refund?.bind(client);
  if (pay) {
    watched.pay = async (request, options) => {
      const outcome = await pay(request, options);
      const mode = payModeOf(request);
      if (!mode) return outcome;
      const row = classifyPay(outcome, mode);
      if (row === 'paid') paidSeen.add(request.paymentRequestId);
      // Aborted: the lifecycle no longer wanted it (a notification settled the payment first).
      const aborted = outcome.kind === 'no-result' && outcome.reason === 'aborted';
      if (!aborted && !payAnswers.has(request.paymentRequestId)) {
        const code = outcome.kind === 'answer' ? outcome.result.resultCode : `NO_RESULT:${outcome.reason}`;
        payAnswers.set(request.paymentRequestId, { row, code });
      }
      return outcome;
    };
  }
  if (refund) watched.refund = (request, options) => refund(request, options);
  return { client: watched, cancelsAfterSeenSuccess: () => [...offenders], payAnswers: () => payAnswers };
}
