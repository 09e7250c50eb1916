import type { PayRowId } from '../../machines/decision-table.js';
import {
  FINAL_STATUSES,
  type FinalStatus,
  IN_FLIGHT_STATES as IN_FLIGHT,
  type LifecycleOutcome,
} from '../../machines/outcome.js';
import { PAY_MODES, type PayMode } from '../protocol/pay.js';
import { mixLabels } from '../simulator/scenario.js';
import type { DemoProgress, DemoResult } from './run-demo.js';
import { percentile, table } from './stats.js';

export type PayAnswerKind = PayRowId | 'notified-first' | 'none';

/** The pay table's rows, as the report names them, in the order it lists them. */
export const PAY_ANSWER_KINDS: readonly (readonly [PayRowId, string])[] = [
  ['paid', 'paid at once'],
  ['payment-failed', 'failed at once'],
  ['pay-refused', 'refused'],
  ['in-process', 'in process'],
  ['waiting-for-user', 'waiting for the user'],
  ['no-result', 'no result'],
];
/** Payments without a pay answer, listed only when there are some. */
const UNANSWERED: readonly (readonly [PayAnswerKind, string])[] = [
  ['notified-first', 'notified before the answer'],
  ['none', 'no answer'],
];

const seconds = (ms: number | undefined) => (ms === undefined ? '—' : (ms / 1_000).toFixed(1));

/** The figures of a run, computed once: the text report and tests read the same numbers. */
export interface DemoFigures {
  byStatus: Record<FinalStatus, number>;
  /**
   * Pay answers by row, and where each kind ended. `notified-first`: the notification settled the
   * payment before the pay's answer came back (the lifecycle then drops the call); `none`: no answer.
   */
  byPayAnswer: Record<PayAnswerKind, Record<FinalStatus | 'lost', number>>;
  byPayMode: Record<PayMode, number>;
  /** mix label → status → count, in the mix's order. */
  byLabel: [label: string, counts: Record<FinalStatus | 'lost', number>][];
  pays: number;
  inquiries: number;
  cancels: number;
  refunds: number;
  faults: Record<string, number>;
  notificationsTried: number;
  notificationsAcked: number;
  /** Simulated ms from the wallet's decision to our outcome, for payments whose decision we learned. */
  latency: { count: number; p50?: number; p99?: number; max?: number };
  latencyBySource: Record<string, { count: number; p50?: number; p99?: number }>;
  /** Charged by the wallet, then given back by our cancel: an answer was lost, and we played safe. */
  refundedByCancel: number;
}

/** Computes the figures of a run from its outcomes, the ground truth and the simulator's logs. */
export function demoFigures(result: DemoResult): DemoFigures {
  const byStatus = Object.fromEntries(FINAL_STATUSES.map((s) => [s, 0])) as Record<FinalStatus, number>;
  for (const outcome of result.outcomes.values()) byStatus[outcome.status]++;

  const truthById = new Map(result.truths.map((t) => [t.paymentRequestId, t]));
  const labels = new Map<string, Record<FinalStatus | 'lost', number>>();
  const empty = () =>
    Object.fromEntries([...FINAL_STATUSES, 'lost'].map((s) => [s, 0])) as Record<
      FinalStatus | 'lost',
      number
    >;
  for (const label of mixLabels('checkout')) labels.set(label, empty());
  for (const id of result.tracked) {
    const label = truthById.get(id)?.label ?? '(unknown)';
    const counts = labels.get(label) ?? empty();
    labels.set(label, counts);
    counts[result.outcomes.get(id)?.status ?? 'lost']++;
  }

  const byPayAnswer = Object.fromEntries(
    [...PAY_ANSWER_KINDS, ...UNANSWERED].map(([kind]) => [kind, empty()]),
  ) as DemoFigures['byPayAnswer'];
  const byPayMode = Object.fromEntries(PAY_MODES.map((mode) => [mode, 0])) as Record<PayMode, number>;
  for (const id of result.tracked) {
    const answer = result.payAnswers.get(id);
    const outcome = result.outcomes.get(id);
    const kind: PayAnswerKind =
      answer?.row ?? (outcome?.decidedBy.source === 'notification' ? 'notified-first' : 'none');
    byPayAnswer[kind][outcome?.status ?? 'lost']++;
    if (answer) byPayMode[answer.mode]++;
  }

  const faults: Record<string, number> = {};
  const calls = { pay: 0, inquiryPayment: 0, cancelPayment: 0, refund: 0 };
  for (const call of result.calls) {
    calls[call.api]++;
    if (call.fault) faults[call.fault] = (faults[call.fault] ?? 0) + 1;
  }

  const all: number[] = [];
  const bySource = new Map<string, number[]>();
  for (const outcome of result.outcomes.values()) {
    const truth = truthById.get(outcome.paymentRequestId);
    if (truth?.decidedAt === undefined || !learnedTheDecision(outcome)) continue;
    const ms = outcome.decidedAt - truth.decidedAt;
    all.push(ms);
    const list = bySource.get(outcome.decidedBy.source) ?? [];
    list.push(ms);
    bySource.set(outcome.decidedBy.source, list);
  }
  const latencyBySource: DemoFigures['latencyBySource'] = {};
  for (const [source, list] of bySource) {
    latencyBySource[source] = { count: list.length, p50: percentile(list, 50), p99: percentile(list, 99) };
  }

  return {
    byStatus,
    byPayAnswer,
    byPayMode,
    byLabel: [...labels].filter(([, counts]) => Object.values(counts).some((n) => n > 0)),
    pays: calls.pay,
    inquiries: calls.inquiryPayment,
    cancels: calls.cancelPayment,
    refunds: calls.refund,
    faults,
    notificationsTried: result.notifications.length,
    notificationsAcked: result.notifications.filter((n) => n.result === 'acked').length,
    latency: {
      count: all.length,
      p50: percentile(all, 50),
      p99: percentile(all, 99),
      max: all.length > 0 ? Math.max(...all) : undefined,
    },
    latencyBySource,
    refundedByCancel: result.truths.filter(
      (t) => t.charged && t.cancelled && result.outcomes.has(t.paymentRequestId),
    ).length,
  };
}

/** Succeeded or failed: the outcome reports the wallet's own decision (a cancel or a close does not). */
function learnedTheDecision(outcome: LifecycleOutcome): boolean {
  return outcome.status === 'succeeded' || outcome.status === 'failed';
}

/** The final report; its last line is exactly `reconciliation: lost N, divergent M`. */
export function formatReport(result: DemoResult, figures: DemoFigures = demoFigures(result)): string {
  const lines: string[] = [];
  const { reconciliation: rec } = result;
  lines.push('');
  lines.push('Outcomes');
  lines.push(
    table(
      ['status', 'payments'],
      [
        ...FINAL_STATUSES.map((s) => [s, figures.byStatus[s]] as [string, number]),
        ['no outcome (lost)', rec.lost.length],
      ],
    ),
  );
  lines.push('');
  const total = (counts: Record<FinalStatus | 'lost', number>) =>
    Object.values(counts).reduce((a, b) => a + b, 0);
  const unanswered = UNANSWERED.filter(([kind]) => total(figures.byPayAnswer[kind]) > 0);
  lines.push(
    `Pay answers: ${[...PAY_ANSWER_KINDS, ...unanswered].map(([kind, name]) => `${name} ${total(figures.byPayAnswer[kind])}`).join(', ')}`,
  );
  lines.push(`  by mode: ${PAY_MODES.map((mode) => `${mode} ${figures.byPayMode[mode]}`).join(', ')}`);
  const kinds = [...PAY_ANSWER_KINDS, ...unanswered].filter(([kind]) => total(figures.byPayAnswer[kind]) > 0);
  lines.push(
    table(
      ['pay answer', 'payments', ...FINAL_STATUSES, 'lost'],
      kinds.map(([kind, name]) => {
        const counts = figures.byPayAnswer[kind];
        return [name, total(counts), ...FINAL_STATUSES.map((s) => counts[s]), counts.lost];
      }),
    ),
  );
  lines.push('');
  lines.push('By scenario of the checkout mix');
  lines.push(
    table(
      ['scenario', ...FINAL_STATUSES, 'lost'],
      figures.byLabel.map(([label, counts]) => [label, ...FINAL_STATUSES.map((s) => counts[s]), counts.lost]),
    ),
  );
  lines.push('');
  const faultList = Object.entries(figures.faults)
    .sort((a, b) => b[1] - a[1])
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  const faultTotal = Object.values(figures.faults).reduce((a, b) => a + b, 0);
  lines.push(
    `Calls received by the simulator: pay ${figures.pays}, inquiryPayment ${figures.inquiries}, ` +
      `cancelPayment ${figures.cancels}, refund ${figures.refunds}`,
  );
  lines.push(`Faults injected: ${faultTotal}${faultList ? ` (${faultList})` : ''}`);
  lines.push(
    `Notifications: ${figures.notificationsTried} deliveries tried, ${figures.notificationsAcked} acknowledged; ` +
      `${result.lateNotifications} arrived after the outcome was final (recorded, outcome unchanged)`,
  );
  const { latency } = figures;
  lines.push(
    `Latency from the wallet's decision to our outcome (simulated s, ${latency.count} payments): ` +
      `p50 ${seconds(latency.p50)}, p99 ${seconds(latency.p99)}, max ${seconds(latency.max)}`,
  );
  for (const [source, l] of Object.entries(figures.latencyBySource).sort((a, b) => b[1].count - a[1].count)) {
    lines.push(`  decided by ${source}: ${l.count} payments, p50 ${seconds(l.p50)}, p99 ${seconds(l.p99)}`);
  }
  lines.push(
    `Charged, then given back by our cancel (an answer was lost, so the lifecycle played safe): ${figures.refundedByCancel}`,
  );
  const reasons = new Map<string, number>();
  for (const o of rec.attention)
    reasons.set(o.attentionReason ?? '?', (reasons.get(o.attentionReason ?? '?') ?? 0) + 1);
  lines.push(
    `Needs a person (attention, not counted as divergent): ${rec.attention.length}` +
      (reasons.size > 0 ? ` (${[...reasons].map(([r, n]) => `${r} ${n}`).join(', ')})` : ''),
  );
  if (result.engineErrors.length > 0) {
    lines.push(`Engine errors: ${result.engineErrors.length}, first: ${result.engineErrors[0]}`);
  }
  const endedHow = {
    'all-settled': 'every payment has its outcome',
    'grace-expired': 'stopped waiting: the grace period after the last expiry passed',
    interrupted: 'interrupted',
  }[result.ended];
  lines.push(
    `Run: ${seconds(result.realMs)} s real, ${seconds(result.simMs)} s simulated at ${result.speed}×; ended: ${endedHow}`,
  );
  const shown = 10;
  if (result.ended === 'interrupted') {
    // Not lost in the engine's sense: stopped mid-way, they stay stored (in a SQLite store) and
    // resume when an engine starts on it. Counted as lost here all the same: this run did not end them.
    if (rec.lost.length > 0) lines.push(`  interrupted: ${rec.lost.length} payments had no outcome yet`);
  } else {
    for (const id of rec.lost.slice(0, shown)) lines.push(`  lost: ${id}`);
    if (rec.lost.length > shown) lines.push(`  ... and ${rec.lost.length - shown} more lost`);
  }
  for (const d of rec.divergent.slice(0, shown))
    lines.push(`  divergent: ${d.paymentRequestId}: ${d.reason}`);
  if (rec.divergent.length > shown) lines.push(`  ... and ${rec.divergent.length - shown} more divergent`);
  lines.push(`reconciliation: lost ${rec.lost.length}, divergent ${rec.divergent.length}`);
  return `${lines.join('\n')}\n`;
}

/** One plain progress line (no escape codes): for logs, pipes and CI. */
export function progressLine(p: DemoProgress): string {
  const states = [...IN_FLIGHT, ...FINAL_STATUSES].map((s) => `${s} ${p.byState[s] ?? 0}`).join(', ');
  return `progress: ${p.settled}/${p.total} settled, ${p.created} created; ${states} (${seconds(p.realElapsedMs)} s real, ${seconds(p.simElapsedMs)} s simulated)`;
}

/** The live display on a terminal: a bar, the lifecycles in flight per state, the outcomes so far. */
export function progressBlock(p: DemoProgress, width = 40): string[] {
  const done = p.total === 0 ? 1 : p.settled / p.total;
  const filled = Math.round(done * width);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  const percent = `${Math.floor(done * 100)}%`.padStart(4);
  const counts = (states: readonly string[]) => states.map((s) => `${s} ${p.byState[s] ?? 0}`).join('  ');
  return [
    `${bar} ${percent}  ${p.settled}/${p.total} settled, ${p.created} created  ${seconds(p.realElapsedMs)} s (${seconds(p.simElapsedMs)} s simulated)`,
    `in flight: ${counts(IN_FLIGHT)}`,
    `outcomes:  ${counts(FINAL_STATUSES)}`,
  ];
}
