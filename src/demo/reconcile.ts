import type { LifecycleOutcome } from '../../machines/outcome.js';
import type { OrderTruth } from '../simulator/order-book.js';
import type { CallRecord } from '../simulator/simulator.js';

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
 * Whether an outcome is consistent with the truth. A success needs the money taken and kept; a
 * cancel needs the cancel to have happened; closed and failed need the money never taken (a refund
 * would not make them right: the user would have paid for nothing until someone noticed). Attention
 * always passes: it claims nothing about the payment, it hands it to a person.
 */
export function agreesWithTruth(outcome: LifecycleOutcome, truth: OrderTruth): boolean {
  switch (outcome.status) {
    case 'succeeded':
      return truth.charged && !truth.cancelled;
    case 'cancelled':
      return truth.cancelled;
    case 'closed':
    case 'failed':
      return !truth.charged;
    case 'attention':
      return true;
  }
}

/**
 * Payments that got a cancelPayment after an inquiry answer that reported them paid reached the
 * engine intact. Only answers with no injected fault count: an answer lost to a fault never told the
 * engine anything, so a cancel after it is the correct, careful move.
 */
export function cancelsAfterSeenSuccess(calls: readonly CallRecord[]): string[] {
  const paidSeen = new Set<string>();
  const offenders = new Set<string>();
  for (const call of calls) {
    const id = call.paymentRequestId;
    if (id === undefined) continue;
    if (call.api === 'inquiryPayment' && call.paymentStatus === 'S' && call.httpStatus === 200 && !call.fault)
      paidSeen.add(id);
    if (call.api === 'cancelPayment' && paidSeen.has(id)) offenders.add(id);
  }
  return [...offenders];
}

/**
 * Reconciles the engine's outcomes with the simulator's ground truth.
 * @param tracked every payment the demo tracked
 * @param outcomes the final outcomes received, by paymentRequestId
 * @param truths the simulator's ground truth at the end of the run
 * @param calls the simulator's call log, in arrival order
 */
export function reconcile(
  tracked: readonly string[],
  outcomes: ReadonlyMap<string, LifecycleOutcome>,
  truths: readonly OrderTruth[],
  calls: readonly CallRecord[],
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
      result.divergent.push({ paymentRequestId: id, reason: 'the simulator has no order with this ID' });
    } else if (!agreesWithTruth(outcome, truth)) {
      result.divergent.push({
        paymentRequestId: id,
        reason: `engine says ${outcome.status}, truth is ${truth.status} (charged ${truth.charged}, cancelled ${truth.cancelled})`,
      });
    }
  }
  for (const id of cancelsAfterSeenSuccess(calls)) {
    result.divergent.push({
      paymentRequestId: id,
      reason: 'cancelPayment was sent after an inquiry had reported the payment paid',
    });
  }
  return result;
}
