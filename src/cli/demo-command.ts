import { join } from 'node:path';
import { Command } from 'commander';
import { DEFAULT_DASHBOARD_PORT } from '../dashboard/server.js';
import { demoFigures, formatReport, progressBlock, progressLine } from '../demo/report.js';
import type { DemoProgress, DemoResult } from '../demo/run-demo.js';
import { runDemo } from '../demo/run-demo.js';
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
}

/** 0 when nothing is lost or divergent, 1 when something is, 130 when the run was interrupted. */
export function demoExitCode(result: Pick<DemoResult, 'ended' | 'reconciliation'>): number {
  if (result.ended === 'interrupted') return EXIT.interrupted;
  const { lost, divergent } = result.reconciliation;
  return lost.length === 0 && divergent.length === 0 ? EXIT.ok : EXIT.negative;
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
    .option('--payments <n>', 'payments to start with engine.pay', number('--payments', 1, 100_000), 300)
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
    );
  return inspectOptions(command)
    .addHelpText(
      'after',
      '\nExit codes: 0 every payment has an outcome that agrees with the ground truth; 1 lost or divergent\n' +
        'payments (or a failure while running); 2 bad usage; 130 interrupted.\n',
    )
    .action(async (flags: DemoFlags) => {
      const stamp = fileTimestamp();
      const spec: StoreSpec = flags.store ?? { kind: 'sqlite', path: join(RUN_DIR, `demo-${stamp}.db`) };
      let inspection: Inspection | undefined;
      let dashboard: RunningDashboard | undefined;
      let metrics: MetricsServer | undefined;
      const interrupt = interruptSignal();
      try {
        // First: a port that is taken ends the command (exit 2) before anything is created.
        if (flags.metricsPort !== undefined) metrics = await startMetricsServer(flags.metricsPort, io);
        const store = storeFromSpec(spec);
        io.out(
          `alipayplus-lifecycle demo: ${flags.payments} pays from the checkout mix, fault rate ${flags.faultRate}, ` +
            `seed ${flags.seed}, clock ${flags.speed}× real time\n`,
        );
        io.out(`Store: ${describeStore(spec)}\n`);
        if (flags.dashboard !== undefined) {
          // The dashboard reads the demo's file through a store of its own, which stays open after
          // the demo closes its one; a memory store exists only in this process, so it is shared.
          dashboard = await serveDashboard(
            spec.kind === 'memory' ? store : storeFromSpec(spec),
            flags.dashboard === true ? DEFAULT_DASHBOARD_PORT : flags.dashboard,
            io,
            '--dashboard',
          );
          io.out(`dashboard: ${dashboard.url}\n`);
        }
        inspection = await inspectionFromFlags(flags, io, stamp);
        if (inspection && flags.payments > 50) {
          io.out('  (The inspector shows every actor; --payments 20 keeps it readable.)\n');
        }
        const active = inspection;
        const result = await runDemo({
          payments: flags.payments,
          faultRate: flags.faultRate,
          seed: flags.seed,
          speed: flags.speed,
          store,
          ...(active ? { inspect: (event) => active.inspect(event) } : {}),
          ...(metrics ? { meter: metrics.meter } : {}),
          onProgress: progressPrinter(io),
          progressIntervalMs: io.isTTY ? 100 : 1_000,
          signal: interrupt.signal,
        });
        await inspection?.stop();
        io.out(formatReport(result, demoFigures(result)));
        if (spec.kind === 'sqlite') {
          io.out(
            `Lifecycles and their audit history (in simulated time): alipayplus-lifecycle status --store sqlite:${spec.path}\n`,
          );
        }
        if (inspection) io.out(`Inspection events: ${inspection.count} written to ${inspection.jsonlPath}\n`);
        setExit(demoExitCode(result));
        if (inspection?.viewerUrl && io.isTTY && result.ended !== 'interrupted') {
          // A person is watching: keep the page's source alive until they are done with it.
          io.out(`The inspector bridge keeps serving ${inspection.viewerUrl}; press Ctrl-C to exit.\n`);
          await new Promise<void>((resolve) => {
            if (interrupt.signal.aborted) resolve();
            interrupt.signal.addEventListener('abort', () => resolve(), { once: true });
          });
        }
        if (metrics && result.ended !== 'interrupted') {
          // The final counts stay readable (by Prometheus, or curl) after the report, until Ctrl-C.
          io.out(`The metrics endpoint keeps serving ${metrics.url}; press Ctrl-C to exit.\n`);
          if (!dashboard) await untilAborted(interrupt.signal);
        }
        if (dashboard && result.ended !== 'interrupted') {
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
