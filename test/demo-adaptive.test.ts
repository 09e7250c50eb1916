import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MIN_PLAN_SAMPLES } from '../machines/decision-model.js';
import type { LifecycleOutcome } from '../machines/outcome.js';
import { adaptiveStoreSpec, demoRunsExitCode } from '../src/cli/demo-command.js';
import { type ComparedRun, formatComparison, scheduleFigures } from '../src/demo/compare.js';
import { runDemo } from '../src/demo/run-demo.js';
import { ALL_WALLETS } from '../src/engine/decision-learner.js';
import type { OrderTruth } from '../src/simulator/index.js';
import type { CallRecord } from '../src/simulator/simulator.js';
import { memoryStore } from '../src/stores/memory-store.js';
import { sqliteStore } from '../src/stores/sqlite-store.js';
import type { LifecycleStore } from '../src/stores/store.js';
import { outcomeRecord, truthRecord } from './helpers/demo-records.js';
import { sketchOf } from './helpers/sketches.js';
import { fileTempDir } from './helpers/temp-dir.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = fileTempDir('apl-demo-adaptive-');

function outcome(
  id: string,
  status: LifecycleOutcome['status'],
  source: LifecycleOutcome['decidedBy']['source'],
  decidedAt: number,
): LifecycleOutcome {
  return outcomeRecord(id, status, { decidedBy: { source, level: 'payment', code: 'X' }, decidedAt });
}

function truth(id: string, decidedAt?: number): OrderTruth {
  return truthRecord(id, {
    status: 'paid',
    charged: true,
    ...(decidedAt === undefined ? {} : { decidedAt }),
  });
}

let seq = 0;
function call(api: CallRecord['api'], paymentRequestId: string): CallRecord {
  seq++;
  return { seq, at: seq, api, paymentRequestId, signatureValid: true };
}

/** The stored lifecycles of a store (a memory store stays readable after the demo closed it). */
async function records(store: LifecycleStore, ids: readonly string[]) {
  return Promise.all(ids.map(async (id) => (await store.load(id)) ?? expect.unreachable(`no ${id}`)));
}

const planOf = (snapshot: unknown) => (snapshot as { context?: { plan?: number[] } }).context?.plan;

describe('comparing the schedules', () => {
  const run: ComparedRun = {
    tracked: ['a', 'b', 'c', 'd'],
    calls: [
      call('pay', 'a'),
      call('pay', 'b'),
      call('pay', 'c'),
      call('pay', 'd'),
      call('inquiryPayment', 'a'),
      call('inquiryPayment', 'a'),
      call('inquiryPayment', 'b'),
      call('cancelPayment', 'c'),
      call('refund', 'd'),
      call('inquiryPayment', 'c'),
    ],
    outcomes: new Map([
      // Decided by an inquiry, the wallet decided at 1 s: lag 2 s.
      ['a', outcome('a', 'succeeded', 'inquiry', 3_000)],
      // Decided by an inquiry, lag 5 s.
      ['b', outcome('b', 'failed', 'inquiry', 15_000)],
      // A notification decided it: not the schedule's lag.
      ['c', outcome('c', 'succeeded', 'notification', 2_500)],
      // Closed by an inquiry: no decision of the wallet's to lag behind.
      ['d', outcome('d', 'closed', 'inquiry', 60_000)],
    ]),
    truths: [truth('a', 1_000), truth('b', 10_000), truth('c', 2_000), truth('d')],
    plannedPayments: 3,
  };

  it('counts every call and the inquiries per payment, and the lag of inquiry-decided payments only', () => {
    const figures = scheduleFigures('adaptive', run);
    expect(figures).toEqual({
      schedule: 'adaptive',
      payments: 4,
      calls: 10,
      inquiries: 4,
      callsPerPayment: 2.5,
      inquiriesPerPayment: 1,
      lag: { count: 2, p50: 2_000, p99: 5_000 },
      planned: 3,
    });
  });

  it('leaves out an inquiry-decided payment whose decision time the truth lacks, and needs payments to divide', () => {
    const noTruth = scheduleFigures('fixed (default)', { ...run, truths: [truth('a')] });
    expect(noTruth.lag).toEqual({ count: 0, p50: undefined, p99: undefined });
    expect(noTruth.planned).toBe(3);
    const empty = scheduleFigures('fixed (default)', {
      tracked: [],
      calls: [],
      outcomes: new Map(),
      truths: [],
    });
    expect(empty).toMatchObject({
      payments: 0,
      callsPerPayment: undefined,
      inquiriesPerPayment: undefined,
      planned: 0,
    });
  });

  it('prints one line per schedule, figures right-aligned under their headers', () => {
    const fixed = scheduleFigures('fixed (default)', { ...run, plannedPayments: 0 });
    const none = scheduleFigures('adaptive', { tracked: [], calls: [], outcomes: new Map(), truths: [] });
    expect(formatComparison([fixed, none])).toBe(
      [
        'Schedules compared (same seed, mix and options)',
        'schedule         calls/payment  inquiries/payment  p50 lag s  p99 lag s  lag n  planned',
        '---------------  -------------  -----------------  ---------  ---------  -----  -------',
        'fixed (default)           2.50               1.00        2.0        5.0      2      0/4',
        'adaptive                     —                  —          —          —      0      0/0',
        '(calls: every Alipay+ call the simulator received: pay, inquiryPayment, cancelPayment and refund;',
        " lag: simulated s from the wallet's decision to our outcome, over the lag n payments an inquiry decided;",
        ' planned: payments whose inquiries followed the plan made from the learned decision delays)',
        '',
      ].join('\n'),
    );
  });

  it('the two runs exit 0 only when neither lost nor diverged; 130 when one was interrupted', () => {
    const clean = { lost: [], divergent: [], attention: [] };
    const ok = { ended: 'all-settled' as const, reconciliation: clean };
    const lost = { ended: 'grace-expired' as const, reconciliation: { ...clean, lost: ['x'] } };
    const divergent = {
      ended: 'all-settled' as const,
      reconciliation: { ...clean, divergent: [{ paymentRequestId: 'x', reason: 'r' }] },
    };
    expect(demoRunsExitCode([ok, ok])).toBe(0);
    expect(demoRunsExitCode([lost, ok])).toBe(1);
    expect(demoRunsExitCode([ok, divergent])).toBe(1);
    expect(demoRunsExitCode([ok, { ended: 'interrupted', reconciliation: clean }])).toBe(130);
    expect(demoRunsExitCode([ok])).toBe(0);
  });

  it('the adaptive run keeps its lifecycles beside the first run’s: a new memory store, or PATH-adaptive', () => {
    expect(adaptiveStoreSpec({ kind: 'memory' })).toEqual({ kind: 'memory' });
    expect(adaptiveStoreSpec({ kind: 'sqlite', path: 'runs/demo.db' })).toEqual({
      kind: 'sqlite',
      path: join('runs', 'demo-adaptive.db'),
    });
    expect(adaptiveStoreSpec({ kind: 'sqlite', path: 'demo' })).toEqual({
      kind: 'sqlite',
      path: 'demo-adaptive',
    });
    expect(adaptiveStoreSpec({ kind: 'sqlite', path: '/tmp/a.b/x.sqlite' })).toEqual({
      kind: 'sqlite',
      path: '/tmp/a.b/x-adaptive.sqlite',
    });
    expect(adaptiveStoreSpec({ kind: 'sqlite', path: ':memory:' })).toEqual({
      kind: 'sqlite',
      path: ':memory:',
    });
  });
});

describe('runDemo with the adaptive schedule', () => {
  it('seeds the store with sketches that are not warm: the payments are adaptive but keep the fixed schedule', async () => {
    const first = await runDemo({ payments: 20, store: memoryStore() });
    expect(first.inquirySchedule).toBe('fixed');
    expect(first.plannedPayments).toBe(0);
    const learned = first.decisionSketches.get(ALL_WALLETS)?.samples ?? 0;
    expect(learned).toBeGreaterThan(0);
    expect(learned).toBeLessThan(MIN_PLAN_SAMPLES);

    const store = memoryStore();
    const second = await runDemo({
      payments: 20,
      store,
      policy: { inquirySchedule: 'adaptive' },
      decisionSketches: first.decisionSketches,
    });
    expect(second.inquirySchedule).toBe('adaptive');
    expect(second.reconciliation.lost).toEqual([]);
    expect(second.reconciliation.divergent).toEqual([]);
    // The second store received the first run's sketches, and learned on from them.
    const stored = await store.decisionSketches();
    expect(stored.get(ALL_WALLETS)?.samples).toBeGreaterThan(learned);
    expect(second.decisionSketches.get(ALL_WALLETS)?.samples).toBe(stored.get(ALL_WALLETS)?.samples);
    const lifecycles = await records(store, second.tracked);
    expect(lifecycles.every((r) => r.input.policy?.inquirySchedule === 'adaptive')).toBe(true);
    // Fewer than MIN_PLAN_SAMPLES observations: no plan, the fixed schedule.
    expect(second.plannedPayments).toBe(0);
    expect(lifecycles.filter((r) => planOf(r.snapshot) !== undefined)).toEqual([]);
  }, 60_000);

  it('seeded with warm sketches, every payment of the adaptive run plans its inquiries', async () => {
    const warm = new Map([[ALL_WALLETS, sketchOf(MIN_PLAN_SAMPLES + 50, 4_000)]]);
    const store = memoryStore();
    const run = await runDemo({
      payments: 20,
      store,
      policy: { inquirySchedule: 'adaptive' },
      decisionSketches: warm,
    });
    expect(run.reconciliation.lost).toEqual([]);
    expect(run.reconciliation.divergent).toEqual([]);
    expect(run.plannedPayments).toBe(20);
    const lifecycles = await records(store, run.tracked);
    expect(lifecycles).toHaveLength(20);
    for (const record of lifecycles) expect(planOf(record.snapshot)?.length).toBeGreaterThan(0);
  }, 60_000);

  it('refuses a store that holds lifecycles before writing the seed into it', async () => {
    const store = memoryStore();
    const used = await runDemo({ payments: 3, store });
    const before = (await store.decisionSketches()).get(ALL_WALLETS)?.samples;
    await expect(
      runDemo({
        payments: 3,
        store,
        policy: { inquirySchedule: 'adaptive' },
        decisionSketches: used.decisionSketches,
      }),
    ).rejects.toThrow('the store already holds lifecycles');
    expect((await store.decisionSketches()).get(ALL_WALLETS)?.samples).toBe(before);
  }, 60_000);
});

describe('demo --adaptive as a user runs it', () => {
  it('runs fixed then adaptive from what the first learned, and compares them (child process)', async () => {
    // Few payments: at 60× on a starved machine, hundreds of pays at once time out, and their cancels
    // then retry faster than the CPU answers them. A warm start that plans every payment is shown in
    // process above.
    const payments = 80;
    const db = join(dir, 'runs.db');
    const sibling = join(dir, 'runs-adaptive.db');
    const child = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'demo',
        '--adaptive',
        '--payments',
        String(payments),
        '--store',
        `sqlite:${db}`,
      ],
      { cwd: root, encoding: 'utf8', timeout: 60_000 },
    );
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    const out = child.stdout;
    expect(out).toContain(`Store: sqlite:${db} (fixed run), sqlite:${sibling} (adaptive run)`);
    expect(out).toContain(`progress: ${payments}/${payments} settled`);
    expect(out).toMatch(
      /Run 2 of 2: adaptive schedule, store sqlite:.*runs-adaptive\.db, starting from .*all wallets \d+/,
    );
    // Each run's usual report, under its heading, in order; then the comparison.
    const fixedAt = out.indexOf('== Run 1 of 2: fixed schedule (default) ==\nOutcomes\n');
    const adaptiveAt = out.indexOf(
      "== Run 2 of 2: adaptive schedule (policy inquirySchedule 'adaptive') ==\nOutcomes\n",
    );
    const comparedAt = out.indexOf('Schedules compared (same seed, mix and options)');
    expect(fixedAt).toBeGreaterThan(0);
    expect(adaptiveAt).toBeGreaterThan(fixedAt);
    expect(comparedAt).toBeGreaterThan(adaptiveAt);
    expect(out.match(/^reconciliation: lost 0, divergent 0$/gm)).toHaveLength(2);
    expect(out.match(new RegExp(`^Calls received by the simulator: pay ${payments}, `, 'gm'))).toHaveLength(
      2,
    );
    const row = (name: string) =>
      new RegExp(
        `^${name.replace(/[()]/g, '\\$&')} +\\d+\\.\\d\\d +\\d+\\.\\d\\d +[\\d.—]+ +[\\d.—]+ +\\d+ +(\\d+)/${payments}$`,
        'm',
      );
    // The first run never plans. The second starts from what the first learned: warm when that is
    // MIN_PLAN_SAMPLES observations or more, and then every payment plans. How many the first run
    // observes depends on the machine's speed (on a starved one, many pays time out and are cancelled
    // without an in-process answer to learn from), so the count is read from the output.
    expect(row('fixed (default)').exec(out)?.[1]).toBe('0');
    const learned = Number(
      /starting from the decision delays run 1 learned \(observations: .*all wallets (\d+)\)/.exec(out)?.[1],
    );
    expect(learned).toBeGreaterThan(0);
    const planned = Number(row('adaptive').exec(out)?.[1]);
    if (learned >= MIN_PLAN_SAMPLES) expect(planned).toBe(payments);
    else expect(planned).toBeLessThan(payments);
    expect(out).toContain(`status --store sqlite:${sibling}`);

    // The adaptive run's store: its own lifecycles, and the sketches it was seeded with plus its own.
    expect(existsSync(sibling)).toBe(true);
    const store = sqliteStore(sibling);
    await store.open();
    try {
      const stored = await store.list(payments + 10);
      expect(stored).toHaveLength(payments);
      // Adaptive, and as many planned from the learned delays as the report says (the plan is in the
      // lifecycle's context).
      for (const record of stored) expect(record.input.policy?.inquirySchedule).toBe('adaptive');
      expect(stored.filter((record) => (planOf(record.snapshot)?.length ?? 0) > 0)).toHaveLength(planned);
      // Seeded with what the first run learned, and learned on from there.
      expect((await store.decisionSketches()).get(ALL_WALLETS)?.samples).toBeGreaterThan(learned);
    } finally {
      await store.close();
    }
  }, 90_000);
});
