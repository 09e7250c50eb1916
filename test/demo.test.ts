import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { LifecycleOutcome } from '../machines/outcome.js';
import { demoExitCode } from '../src/cli/demo-command.js';
import type { InquiryOutcome, PayOutcome } from '../src/client/answers.js';
import { agreesWithTruth, reconcile, watchClient } from '../src/demo/reconcile.js';
import { progressBlock, progressLine } from '../src/demo/report.js';
import { percentile, table } from '../src/demo/stats.js';
import type { OrderTruth } from '../src/simulator/index.js';
import { cli } from './helpers/cli.js';
import { outcomeRecord, truthRecord } from './helpers/demo-records.js';
import { payRequest } from './helpers/pay-requests.js';
import { fileTempDir } from './helpers/temp-dir.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = fileTempDir('apl-demo-');

function outcome(id: string, status: LifecycleOutcome['status']): LifecycleOutcome {
  return outcomeRecord(id, status);
}

function truth(id: string, fields: Partial<OrderTruth>): OrderTruth {
  return truthRecord(id, fields);
}

describe('demo as a new user runs it', () => {
  it('runs as a child process and ends with exit 0 and "reconciliation: lost 0, divergent 0"', () => {
    const db = join(dir, 'demo.db');
    const started = Date.now();
    const child = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'demo',
        '--payments',
        '30',
        '--speed',
        '120',
        '--store',
        `sqlite:${db}`,
      ],
      { cwd: root, encoding: 'utf8', timeout: 45_000 },
    );
    const elapsed = Date.now() - started;
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    const lines = child.stdout.trimEnd().split('\n');
    expect(lines).toContain('reconciliation: lost 0, divergent 0');
    // Not a terminal: plain progress lines, no escape codes.
    expect(child.stdout).toContain('progress: 30/30 settled, 30 created');
    expect(child.stdout).not.toContain('\x1b[');
    expect(child.stdout).toMatch(/succeeded\s+\d+/);
    expect(child.stdout).toMatch(
      /Latency from the wallet's decision to our outcome \(simulated s, \d+ payments\): p50 [\d.]+, p99 [\d.]+/,
    );
    expect(child.stdout).toMatch(
      /Calls received by the simulator: pay 30, inquiryPayment \d+, cancelPayment \d+, refund \d+/,
    );
    // Every payment started with a pay, and every pay's answer is counted under one kind.
    const payLine = lines.find((line) => line.startsWith('Pay answers: ')) ?? '';
    expect(payLine).toMatch(
      /^Pay answers: paid at once \d+, failed at once \d+, refused \d+, in process \d+, waiting for the user \d+, no result \d+/,
    );
    const counted = [...payLine.matchAll(/ (\d+)(?=,|$)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(counted).toBe(30);
    expect(Number(/paid at once (\d+)/.exec(payLine)?.[1])).toBeGreaterThan(0);
    expect(child.stdout).toMatch(/by mode: user-presented \d+, order-code \d+, entry-code \d+, cashier \d+/);
    expect(child.stdout).toMatch(/^refunded\s+\d+$/m);
    expect(elapsed).toBeLessThan(45_000);
  }, 60_000);

  it('leaves a store that status reads: every lifecycle final, each with its audit history', async () => {
    const store = `sqlite:${join(dir, 'demo.db')}`;
    const list = await cli('status', '--store', store, '--json');
    expect(list.code).toBe(0);
    const records = JSON.parse(list.out) as { paymentRequestId: string; final: boolean }[];
    expect(records).toHaveLength(30);
    expect(records.every((r) => r.final)).toBe(true);
    const first = records[0]?.paymentRequestId ?? '';
    const one = await cli('status', first, '--store', store);
    expect(one.code).toBe(0);
    expect(one.out).toContain('Audit history');
    // The lifecycle started before the pay was sent.
    expect(one.out).toMatch(/\(new\)\s+paying\.sending\s+PAY/);
  });

  it('refuses a store that already holds lifecycles (exit 2), since it reconciles all it finds', async () => {
    const again = await cli('demo', '--payments', '5', '--store', `sqlite:${join(dir, 'demo.db')}`);
    expect(again.code).toBe(2);
    expect(again.err).toContain('the store already holds lifecycles');
  });
});

describe('reconciliation', () => {
  it('agreement with the truth follows the rules: success kept, cancel happened, close or failure never charged', () => {
    const paid = truth('a', { status: 'paid', charged: true });
    const refunded = truth('a', { status: 'cancelled', charged: true, refunded: true, cancelled: true });
    const closed = truth('a', { status: 'closed' });
    expect(agreesWithTruth(outcome('a', 'succeeded'), paid)).toBe(true);
    expect(agreesWithTruth(outcome('a', 'succeeded'), refunded)).toBe(false);
    expect(agreesWithTruth(outcome('a', 'succeeded'), closed)).toBe(false);
    expect(agreesWithTruth(outcome('a', 'cancelled'), refunded)).toBe(true);
    expect(agreesWithTruth(outcome('a', 'cancelled'), closed)).toBe(false);
    expect(agreesWithTruth(outcome('a', 'closed'), closed)).toBe(true);
    expect(agreesWithTruth(outcome('a', 'failed'), paid)).toBe(false);
    expect(agreesWithTruth(outcome('a', 'closed'), refunded)).toBe(false);
    expect(agreesWithTruth(outcome('a', 'attention'), paid)).toBe(true);
    // Refunded: paid, then all of it given back by refunds (not by a cancel).
    const refundedByRefund = truth('a', { status: 'refunded', charged: true, refunded: true });
    expect(agreesWithTruth(outcome('a', 'refunded'), refundedByRefund)).toBe(true);
    expect(agreesWithTruth(outcome('a', 'refunded'), paid)).toBe(false);
    expect(agreesWithTruth(outcome('a', 'refunded'), refunded)).toBe(false);
    expect(agreesWithTruth(outcome('a', 'refunded'), closed)).toBe(false);
    expect(agreesWithTruth(outcome('a', 'succeeded'), refundedByRefund)).toBe(false);
  });

  it('counts lost, divergent and attention apart', () => {
    const outcomes = new Map([
      ['ok', outcome('ok', 'succeeded')],
      ['wrong', outcome('wrong', 'failed')],
      ['person', outcome('person', 'attention')],
      ['ghost', outcome('ghost', 'succeeded')],
      ['never-sent', outcome('never-sent', 'closed')],
    ]);
    const truths = [
      truth('ok', { status: 'paid', charged: true }),
      truth('wrong', { status: 'paid', charged: true }),
      truth('person', { status: 'paid', charged: true }),
      truth('missing', { status: 'processing' }),
    ];
    // 'never-sent' has no order at the wallet and says nothing was charged: right. 'ghost' has none
    // either, and says it succeeded: divergent.
    const result = reconcile(['ok', 'wrong', 'person', 'ghost', 'never-sent', 'missing'], outcomes, truths, [
      'ok',
    ]);
    expect(result.lost).toEqual(['missing']);
    expect(result.attention.map((o) => o.paymentRequestId)).toEqual(['person']);
    expect(result.divergent.map((d) => d.paymentRequestId)).toEqual(['wrong', 'ghost', 'ok']);
    expect(result.divergent[0]?.reason).toContain('engine says failed, truth is paid');
    expect(result.divergent[1]?.reason).toContain('engine says succeeded, but the simulator has no order');
    expect(result.divergent[2]?.reason).toContain('cancelPayment was sent after');
  });

  it('the demo exits 0 only when nothing is lost or divergent; 130 when interrupted', () => {
    const clean = { lost: [], divergent: [], attention: [] };
    expect(demoExitCode({ ended: 'all-settled', reconciliation: clean })).toBe(0);
    expect(demoExitCode({ ended: 'grace-expired', reconciliation: { ...clean, lost: ['x'] } })).toBe(1);
    expect(
      demoExitCode({
        ended: 'all-settled',
        reconciliation: { ...clean, divergent: [{ paymentRequestId: 'x', reason: 'r' }] },
      }),
    ).toBe(1);
    expect(demoExitCode({ ended: 'interrupted', reconciliation: clean })).toBe(130);
  });

  it('watches what the engine was told: a cancel after a paid answer reached it is caught, by either reference', async () => {
    const paid = {
      kind: 'answer',
      raw: '{}',
      responseTime: 't',
      result: { resultCode: 'SUCCESS', resultStatus: 'S' },
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' },
      paymentRequestId: 'by-payment-id',
    } as unknown as InquiryOutcome;
    const processing = { ...paid, paymentResult: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' } };
    const answers = new Map<string, InquiryOutcome>([
      ['paid', { ...paid, paymentRequestId: 'paid' } as InquiryOutcome],
      ['P-1', paid],
      ['unsure', processing as InquiryOutcome],
    ]);
    const watched = watchClient({
      inquiryPayment: async (ref) =>
        answers.get('paymentId' in ref ? ref.paymentId : ref.paymentRequestId) as InquiryOutcome,
      cancelPayment: async () => ({ kind: 'no-result', reason: 'timeout', detail: '' }),
    });
    await watched.client.inquiryPayment({ paymentRequestId: 'paid' });
    await watched.client.inquiryPayment({ paymentId: 'P-1' });
    await watched.client.inquiryPayment({ paymentRequestId: 'unsure' });
    await watched.client.cancelPayment({ paymentRequestId: 'unsure' });
    expect(watched.cancelsAfterSeenSuccess()).toEqual([]);
    await watched.client.cancelPayment({ paymentRequestId: 'by-payment-id' });
    await watched.client.cancelPayment({ paymentRequestId: 'paid' });
    expect(watched.cancelsAfterSeenSuccess().sort()).toEqual(['by-payment-id', 'paid']);
  });

  it('passes pay and refund through; a pay S counts as paid only where S means paid (not for a code)', async () => {
    const paidAnswer = {
      kind: 'answer',
      raw: '{}',
      responseTime: 't',
      result: { resultCode: 'SUCCESS', resultStatus: 'S' },
    } as unknown as PayOutcome;
    const refunds: string[] = [];
    const watched = watchClient({
      inquiryPayment: async () => ({ kind: 'no-result', reason: 'timeout', detail: '' }),
      cancelPayment: async () => ({ kind: 'no-result', reason: 'timeout', detail: '' }),
      pay: async () => paidAnswer,
      refund: async (request) => {
        refunds.push(request.refundRequestId);
        return { kind: 'no-result', reason: 'timeout', detail: '' };
      },
    });
    await watched.client.pay?.(payRequest('scanned'));
    await watched.client.pay?.(payRequest('code', 'order-code'));
    await watched.client.refund?.({
      refundRequestId: 'R-1',
      paymentRequestId: 'scanned',
      refundAmount: { currency: 'JPY', value: '1' },
    });
    expect(refunds).toEqual(['R-1']);
    expect(watched.payAnswers().get('scanned')).toEqual({ row: 'paid', code: 'SUCCESS' });
    expect(watched.payAnswers().get('code')).toEqual({ row: 'waiting-for-user', code: 'SUCCESS' });
    await watched.client.cancelPayment({ paymentRequestId: 'code' });
    expect(watched.cancelsAfterSeenSuccess()).toEqual([]);
    await watched.client.cancelPayment({ paymentRequestId: 'scanned' });
    expect(watched.cancelsAfterSeenSuccess()).toEqual(['scanned']);
  });
});

describe('report helpers', () => {
  it('percentiles are nearest-rank: every figure was really measured', () => {
    expect(percentile([], 50)).toBeUndefined();
    expect(percentile([5], 99)).toBe(5);
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile([1, 2, 3, 1000], 99)).toBe(1000);
  });

  it('tables align text left and numbers right', () => {
    expect(
      table(
        ['status', 'n'],
        [
          ['succeeded', 12],
          ['failed', 3],
        ],
      ),
    ).toBe('status      n\n---------  --\nsucceeded  12\nfailed      3');
  });

  it('progress shows a bar and every state, in a fixed order', () => {
    const progress = {
      total: 4,
      created: 4,
      settled: 2,
      byState: { awaitingResult: 1, cancelling: 1, succeeded: 2 },
      realElapsedMs: 1_500,
      simElapsedMs: 90_000,
    };
    const [bar, inFlight, outcomes] = progressBlock(progress, 10);
    expect(bar).toBe('[#####-----]  50%  2/4 settled, 4 created  1.5 s (90.0 s simulated)');
    expect(inFlight).toBe(
      'in flight: paying 0  awaitingResult 1  awaitingNotification 0  cancelling 1  windowClosed 0  refunding 0',
    );
    expect(outcomes).toBe('outcomes:  succeeded 2  failed 0  closed 0  cancelled 0  refunded 0  attention 0');
    expect(progressLine(progress)).toBe(
      'progress: 2/4 settled, 4 created; paying 0, awaitingResult 1, awaitingNotification 0, cancelling 1, windowClosed 0, refunding 0, succeeded 2, failed 0, closed 0, cancelled 0, refunded 0, attention 0 (1.5 s real, 90.0 s simulated)',
    );
  });
});
