import type { LifecycleOutcome } from '../../machines/outcome.js';
import type { CallRecord } from '../simulator/simulator.js';
import type { DemoResult } from './run-demo.js';
import { percentile, table } from './stats.js';

/** What `demo --adaptive` compares of each run: the calls it cost and the lag it bought. */
export interface ScheduleFigures {
  /** The row's name, e.g. `fixed (default)`. */
  schedule: string;
  /** Payments started (the calls are divided by this). */
  payments: number;
  /** Every Alipay+ call the simulator received: pay, inquiryPayment, cancelPayment and refund. */
  calls: number;
  /** The inquiryPayment calls among them. */
  inquiries: number;
  /** `calls / payments`; undefined without payments. */
  callsPerPayment: number | undefined;
  /** `inquiries / payments`; undefined without payments. */
  inquiriesPerPayment: number | undefined;
  /**
   * Simulated ms from the wallet's decision (the simulator's ground truth) to our outcome, over the
   * payments an inquiry decided (succeeded or failed, with a known decision time): the lag the
   * inquiry schedule sets. Nearest-rank percentiles.
   */
  lag: { count: number; p50: number | undefined; p99: number | undefined };
  /** Payments that planned their inquiries from the learned delays. */
  planned: number;
}

/** The part of a run the comparison reads. */
export type ComparedRun = Pick<DemoResult, 'tracked' | 'calls' | 'outcomes' | 'truths'> &
  Partial<Pick<DemoResult, 'plannedPayments'>>;

/** Decided by an inquiry, and the outcome is the wallet's own decision (not a cancel or a close). */
function decidedByInquiry(outcome: LifecycleOutcome): boolean {
  return (
    outcome.decidedBy.source === 'inquiry' && (outcome.status === 'succeeded' || outcome.status === 'failed')
  );
}

/** One run's figures for the comparison. Pure: reads only `run`. */
export function scheduleFigures(schedule: string, run: ComparedRun): ScheduleFigures {
  const payments = run.tracked.length;
  const calls: readonly CallRecord[] = run.calls;
  const inquiries = calls.filter((call) => call.api === 'inquiryPayment').length;
  const decisionAt = new Map<string, number>();
  for (const truth of run.truths) {
    if (truth.decidedAt !== undefined) decisionAt.set(truth.paymentRequestId, truth.decidedAt);
  }
  const lags: number[] = [];
  for (const outcome of run.outcomes.values()) {
    const decided = decisionAt.get(outcome.paymentRequestId);
    if (decided === undefined || !decidedByInquiry(outcome)) continue;
    lags.push(outcome.decidedAt - decided);
  }
  return {
    schedule,
    payments,
    calls: calls.length,
    inquiries,
    callsPerPayment: payments > 0 ? calls.length / payments : undefined,
    inquiriesPerPayment: payments > 0 ? inquiries / payments : undefined,
    lag: { count: lags.length, p50: percentile(lags, 50), p99: percentile(lags, 99) },
    planned: run.plannedPayments ?? 0,
  };
}

const ratio = (value: number | undefined) => (value === undefined ? '—' : value.toFixed(2));
const seconds = (ms: number | undefined) => (ms === undefined ? '—' : (ms / 1_000).toFixed(1));

/**
 * The comparison block: one line per schedule, then what the columns mean. Calls per payment count
 * every Alipay+ call the simulator received (pay, inquiryPayment, cancelPayment, refund); inquiries
 * per payment only the inquiryPayment calls.
 */
export function formatComparison(rows: readonly ScheduleFigures[]): string {
  const header = [
    'schedule',
    'calls/payment',
    'inquiries/payment',
    'p50 lag s',
    'p99 lag s',
    'lag n',
    'planned',
  ];
  const cells = rows.map((row) => [
    row.schedule,
    ratio(row.callsPerPayment),
    ratio(row.inquiriesPerPayment),
    seconds(row.lag.p50),
    seconds(row.lag.p99),
    String(row.lag.count),
    `${row.planned}/${row.payments}`,
  ]);
  // Figures right-aligned under their header (the table aligns text left): padded here to its width.
  const widths = header.map((name, i) => Math.max(name.length, ...cells.map((row) => (row[i] ?? '').length)));
  const aligned = cells.map((row) => row.map((cell, i) => (i === 0 ? cell : cell.padStart(widths[i] ?? 0))));
  const lines = [
    'Schedules compared (same seed, mix and options)',
    table(header, aligned),
    '(calls: every Alipay+ call the simulator received: pay, inquiryPayment, cancelPayment and refund;',
    " lag: simulated s from the wallet's decision to our outcome, over the lag n payments an inquiry decided;",
    ' planned: payments whose inquiries followed the plan made from the learned decision delays)',
  ];
  return `${lines.join('\n')}\n`;
}
