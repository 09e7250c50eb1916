import { existsSync } from 'node:fs';
import { join, parse } from 'node:path';
import { Command } from 'commander';
import { DEFAULT_DASHBOARD_PORT } from '../dashboard/server.js';
import { formatComparison, scheduleFigures } from '../demo/compare.js';
import { demoFigures, formatReport, progressBlock, progressLine } from '../demo/report.js';
import type { DemoOptions, DemoProgress, DemoResult } from '../demo/run-demo.js';
import { runDemo } from '../demo/run-demo.js';
import { ALL_WALLETS } from '../engine/decision-learner.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import type { LifecycleStore } from '../stores/store.js';
import {
  describeStore,
  fileTimestamp,
  interruptSignal,
  parseStoreSpec,
  reportError,
  type StoreSpec,
  storeFromSpec,
} from './common.js';
import { portNumber, type RunningDashboard, serveDashboard, untilAborted } from './dashboard-command.js';
import {
  type InspectFlags,
  type Inspection,
  inspectionFromFlags,
  inspectOptions,
  RUN_DIR,
} from './inspection.js';
import { type CliIo, EXIT } from './io.js';
import { METRICS_PORT_HELP, type MetricsServer, metricsPort, startMetricsServer } from './metrics-server.js';
import { number } from './simulator-command.js';

interface DemoFlags extends InspectFlags {
  payments: number;
  faultRate: number;
  seed: number;
  speed: number;
  store?: StoreSpec;
  /** `--dashboard` alone: true (the default port). */
  dashboard?: number | true;
  metricsPort?: number;
  adaptive?: boolean;
}

/** `--payments` per run with `--adaptive` when not given: past the 300 observations the learner needs to plan. */
export const ADAPTIVE_DEFAULT_PAYMENTS = 600;

/** 0 when nothing is lost or divergent, 1 when something is, 130 when the run was interrupted. */
export function demoExitCode(result: Pick<DemoResult, 'ended' | 'reconciliation'>): number {
  if (result.ended === 'interrupted') return EXIT.interrupted;
  const { lost, divergent } = result.reconciliation;
  return lost.length === 0 && divergent.length === 0 ? EXIT.ok : EXIT.negative;
}

/**
 * The exit code of `demo --adaptive`'s runs: 130 when one was interrupted, else 1 when either lost or
 * diverged (as {@link demoExitCode} for each), else 0.
 */
export function demoRunsExitCode(results: readonly Pick<DemoResult, 'ended' | 'reconciliation'>[]): number {
  const codes = results.map(demoExitCode);
  if (codes.includes(EXIT.interrupted)) return EXIT.interrupted;
  return codes.every((code) => code === EXIT.ok) ? EXIT.ok : EXIT.negative;
}

/**
 * Where `demo --adaptive` keeps its second (adaptive) run: a new memory store for `memory`; for
 * `sqlite:PATH`, the sibling file with `-adaptive` before the extension (`demo.db` → `demo-adaptive.db`).
 * A SQLite in-memory database (`:memory:` or `''`) is new for every store, so it stays as it is.
 */
export function adaptiveStoreSpec(spec: StoreSpec): StoreSpec {
  if (spec.kind === 'memory' || spec.path === ':memory:' || spec.path === '') return spec;
  const { dir, name, ext } = parse(spec.path);
  const file = name === '' ? `${ext}-adaptive` : `${name}-adaptive${ext}`;
  return { kind: 'sqlite', path: dir === '' ? file : join(dir, file) };
}

/** Refuses, before anything runs, a second-run SQLite file that already holds lifecycles. */
async function refuseUsedFile(spec: StoreSpec): Promise<void> {
  if (spec.kind !== 'sqlite' || spec.path === ':memory:' || spec.path === '' || !existsSync(spec.path))
    return;
  const store = storeFromSpec(spec);
  try {
    await store.open();
    if ((await store.list(1)).length > 0) {
      throw new AlipayPlusLifecycleError(
        'INVALID_OPTIONS',
        `the adaptive run's store sqlite:${spec.path} already holds lifecycles, and the demo reconciles every lifecycle it finds against a fresh simulator: remove it, or give another --store`,
      );
    }
  } finally {
    await store.close();
  }
}

/** What a run learned, as one line: observations per wallet (all wallets together named so). */
function learnedLine(result: DemoResult): string {
  const wallets = [...result.decisionSketches]
    .sort(([a], [b]) => (a === ALL_WALLETS ? 1 : b === ALL_WALLETS ? -1 : a.localeCompare(b)))
    .map(([key, sketch]) => `${key === ALL_WALLETS ? 'all wallets' : key} ${sketch.samples}`);
  return wallets.length > 0 ? wallets.join(', ') : 'nothing';
}

/** Draws progress: in place on a terminal, as plain lines elsewhere. */
function progressPrinter(io: CliIo): (p: DemoProgress) => void {
  if (!io.isTTY) return (p) => io.out(`${progressLine(p)}\n`);
  let drawn = 0;
  return (p) => {
    const lines = progressBlock(p);
    // Back to the first line of the previous drawing, then overwrite each line whole.
    const up = drawn > 0 ? `\x1b[${drawn}F` : '';
    io.out(`${up}${lines.map((line) => `\x1b[2K${line}\n`).join('')}`);
    drawn = lines.length;
  };
}

/** `demo`: the main job, against the embedded simulator, ending with a reconciliation line. */
export function demoCommand(io: CliIo, setExit: (code: number) => void): Command {
  const command = new Command('demo')
    .description(
      'send a few hundred pays of the checkout mix to the embedded Alipay+ simulator on a compressed clock, follow each to its outcome, then reconcile every outcome with the ground truth',
    )
    .option(
      '--payments <n>',
      `payments to start with engine.pay (per run; with --adaptive the default is ${ADAPTIVE_DEFAULT_PAYMENTS})`,
      number('--payments', 1, 100_000),
      300,
    )
    .option(
      '--fault-rate <r>',
      'probability of an injected fault per call, 0 to 1',
      number('--fault-rate', 0, 1),
      0.05,
    )
    .option(
      '--seed <n>',
      'seed of the mix and the faults (same seed, same scenarios)',
      number('--seed', 0, 2 ** 31),
      1,
    )
    .option(
      '--speed <x>',
      'clock speed: simulated ms per real ms (60: a one-minute expiry passes in a second)',
      number('--speed', 1, 10_000),
      60,
    )
    .option(
      '--store <spec>',
      `sqlite:PATH or memory (default: a new sqlite:${RUN_DIR}/demo-<timestamp>.db)`,
      parseStoreSpec,
    )
    .option(
      '--dashboard [port]',
      `serve the dashboard page on 127.0.0.1 while the demo runs and after it, until Ctrl-C (port default ${DEFAULT_DASHBOARD_PORT}; 0 picks a free one)`,
      portNumber('--dashboard'),
    )
    .option(
      '--metrics-port <n>',
      `${METRICS_PORT_HELP}, while the demo runs and after it, until Ctrl-C`,
      metricsPort,
    )
    .option(
      '--adaptive',
      'run twice with the same seed, mix and options: first the fixed schedule (as without this flag), then ' +
        "policy inquirySchedule 'adaptive', starting from the decision delays the first run learned; then " +
        'compare calls per payment and the lag. The second run keeps its lifecycles in a new memory store, ' +
        'or in the sibling file PATH-adaptive.EXT of sqlite:PATH',
    );
  return inspectOptions(command)
    .addHelpText(
      'after',
      '\nExit codes: 0 every payment has an outcome that agrees with the ground truth; 1 lost or divergent\n' +
        'payments (or a failure while running); 2 bad usage; 130 interrupted.\n',
    )
    .action(async (flags: DemoFlags, self: Command) => {
      const stamp = fileTimestamp();
      const spec: StoreSpec = flags.store ?? { kind: 'sqlite', path: join(RUN_DIR, `demo-${stamp}.db`) };
      const adaptiveSpec = flags.adaptive ? adaptiveStoreSpec(spec) : undefined;
      // --adaptive needs a warm learner for its second run: more payments, unless the user chose.
      const payments =
        flags.adaptive && self.getOptionValueSource('payments') === 'default'
          ? ADAPTIVE_DEFAULT_PAYMENTS
          : flags.payments;
      let inspection: Inspection | undefined;
      let dashboard: RunningDashboard | undefined;
      let metrics: MetricsServer | undefined;
      const interrupt = interruptSignal();
      try {
        // First: a port that is taken ends the command (exit 2) before anything is created.
        if (flags.metricsPort !== undefined) metrics = await startMetricsServer(flags.metricsPort, io);
        if (adaptiveSpec) await refuseUsedFile(adaptiveSpec);
        const store = storeFromSpec(spec);
        io.out(
          `alipayplus-lifecycle demo: ${payments} pays from the checkout mix, fault rate ${flags.faultRate}, ` +
            `seed ${flags.seed}, clock ${flags.speed}× real time\n`,
        );
        if (adaptiveSpec) {
          io.out(
            `Two runs (--adaptive): the fixed schedule, then the adaptive one starting from what the first learned\n`,
          );
          io.out(
            spec.kind === 'memory'
              ? 'Store: memory (gone when the process exits), a new one for each run\n'
              : `Store: ${describeStore(spec)} (fixed run), ${describeStore(adaptiveSpec)} (adaptive run)\n`,
          );
        } else {
          io.out(`Store: ${describeStore(spec)}\n`);
        }
        const dashboardPort = flags.dashboard === true ? DEFAULT_DASHBOARD_PORT : flags.dashboard;
        // The dashboard reads the demo's file through a store of its own, which stays open after
        // the demo closes its one; a memory store exists only in this process, so it is shared.
        const serve = (on: StoreSpec, shared: LifecycleStore, port: number) =>
          serveDashboard(on.kind === 'memory' ? shared : storeFromSpec(on), port, io, '--dashboard');
        if (dashboardPort !== undefined) {
          dashboard = await serve(spec, store, dashboardPort);
          io.out(`dashboard: ${dashboard.url}\n`);
        }
        inspection = await inspectionFromFlags(flags, io, stamp);
        if (inspection && payments > 50) {
          io.out('  (The inspector shows every actor; --payments 20 keeps it readable.)\n');
        }
        const active = inspection;
        const common: Omit<DemoOptions, 'store'> = {
          payments,
          faultRate: flags.faultRate,
          seed: flags.seed,
          speed: flags.speed,
          ...(active ? { inspect: (event) => active.inspect(event) } : {}),
          ...(metrics ? { meter: metrics.meter } : {}),
          progressIntervalMs: io.isTTY ? 100 : 1_000,
          signal: interrupt.signal,
        };
        const results: DemoResult[] = [];
        if (!adaptiveSpec) {
          results.push(await runDemo({ ...common, store, onProgress: progressPrinter(io) }));
          await inspection?.stop();
          io.out(formatReport(results[0] as DemoResult, demoFigures(results[0] as DemoResult)));
        } else {
          io.out(`\nRun 1 of 2: fixed schedule (default), store ${describeStore(spec)}\n`);
          const fixed = await runDemo({ ...common, store, onProgress: progressPrinter(io) });
          results.push(fixed);
          const fixedReport = `\n== Run 1 of 2: fixed schedule (default) ==${formatReport(fixed, demoFigures(fixed))}`;
          if (fixed.ended === 'interrupted') {
            await inspection?.stop();
            io.out(fixedReport);
          } else {
            const adaptiveStore = storeFromSpec(adaptiveSpec);
            if (dashboard && dashboardPort !== undefined) {
              // Now the adaptive run's store, on the same port (the one bound, when 0 picked it).
              const port = Number(new URL(dashboard.url).port) || dashboardPort;
              await dashboard.close();
              dashboard = undefined;
              dashboard = await serve(adaptiveSpec, adaptiveStore, port);
              io.out(`dashboard: ${dashboard.url} now shows the adaptive run's store\n`);
            }
            const where = adaptiveSpec.kind === 'memory' ? 'a new memory store' : describeStore(adaptiveSpec);
            io.out(
              `\nRun 2 of 2: adaptive schedule, store ${where}, starting from the ` +
                `decision delays run 1 learned (observations: ${learnedLine(fixed)})\n`,
            );
            let adaptive: DemoResult;
            try {
              adaptive = await runDemo({
                ...common,
                store: adaptiveStore,
                policy: { inquirySchedule: 'adaptive' },
                decisionSketches: fixed.decisionSketches,
                onProgress: progressPrinter(io),
              });
            } catch (error) {
              io.out(fixedReport); // what the first run found is not lost with the second
              throw error;
            }
            results.push(adaptive);
            await inspection?.stop();
            io.out(fixedReport);
            io.out(
              `\n== Run 2 of 2: adaptive schedule (policy inquirySchedule 'adaptive') ==` +
                formatReport(adaptive, demoFigures(adaptive)),
            );
            if (adaptive.ended !== 'interrupted') {
              io.out(
                `\n${formatComparison([
                  scheduleFigures('fixed (default)', fixed),
                  scheduleFigures('adaptive', adaptive),
                ])}`,
              );
            }
          }
        }
        if (spec.kind === 'sqlite') {
          io.out(
            `Lifecycles and their audit history (in simulated time): alipayplus-lifecycle status --store sqlite:${spec.path}\n`,
          );
          if (adaptiveSpec?.kind === 'sqlite' && results.length > 1) {
            io.out(`  the adaptive run's: alipayplus-lifecycle status --store sqlite:${adaptiveSpec.path}\n`);
          }
        }
        if (inspection) io.out(`Inspection events: ${inspection.count} written to ${inspection.jsonlPath}\n`);
        setExit(demoRunsExitCode(results));
        const interrupted = results.some((result) => result.ended === 'interrupted');
        if (inspection?.viewerUrl && io.isTTY && !interrupted) {
          // A person is watching: keep the page's source alive until they are done with it.
          io.out(`The inspector bridge keeps serving ${inspection.viewerUrl}; press Ctrl-C to exit.\n`);
          await new Promise<void>((resolve) => {
            if (interrupt.signal.aborted) resolve();
            interrupt.signal.addEventListener('abort', () => resolve(), { once: true });
          });
        }
        if (metrics && !interrupted) {
          // The final counts stay readable (by Prometheus, or curl) after the report, until Ctrl-C.
          io.out(`The metrics endpoint keeps serving ${metrics.url}; press Ctrl-C to exit.\n`);
          if (!dashboard) await untilAborted(interrupt.signal);
        }
        if (dashboard && !interrupted) {
          io.out(`The dashboard keeps serving ${dashboard.url}; press Ctrl-C to exit.\n`);
          await untilAborted(interrupt.signal);
        }
      } catch (error) {
        setExit(reportError(io, error));
      } finally {
        await inspection?.stop();
        await inspection?.close();
        await dashboard?.close();
        await metrics?.close();
        interrupt.dispose();
      }
    });
}
