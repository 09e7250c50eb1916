import type { Meter } from '@opentelemetry/api';
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_DASHBOARD_PORT, startDashboardServer } from '../dashboard/server.js';
import { DEFAULT_SQLITE_PATH } from '../stores/sqlite-store.js';
import type { LifecycleStore } from '../stores/store.js';
import {
  CliSettingError,
  describeStore,
  interruptSignal,
  parseStoreSpec,
  reportError,
  type StoreSpec,
  storeFromSpec,
} from './common.js';
import { type CliIo, EXIT } from './io.js';
import { METRICS_PORT_HELP, type MetricsServer, metricsPort, startMetricsServer } from './metrics-server.js';

interface DashboardFlags {
  store: StoreSpec;
  port: number;
  metricsPort?: number;
}

/**
 * What a dashboard can report to Prometheus: no engine runs here, so not the engine's counters, but
 * the store as a whole, read when scraped: the lifecycles in each state (final ones under their
 * status) and the open attention items.
 */
function observeStore(meter: Meter, store: LifecycleStore): void {
  const lifecycles = meter.createObservableGauge('alipayplus.lifecycle.store.lifecycles', {
    description: 'Lifecycles in the store, by state (final ones by their status), read at each scrape',
    unit: '{lifecycle}',
  });
  const attention = meter.createObservableGauge('alipayplus.lifecycle.attention.open', {
    description: 'Open attention items in the store (outcome attention, nothing recorded yet)',
    unit: '{item}',
  });
  meter.addBatchObservableCallback(
    async (result) => {
      const [counts, open] = await Promise.all([store.stateCounts(), store.attentionItems()]);
      for (const [state, count] of Object.entries(counts)) result.observe(lifecycles, count, { state });
      result.observe(attention, open.length);
    },
    [lifecycles, attention],
  );
}

/** A TCP port as commander parses it: a whole number from 0 (any free port) to 65535. */
export function portNumber(name: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65_535) {
      throw new InvalidArgumentError(`${name} must be a whole number from 0 (any free port) to 65535`);
    }
    return parsed;
  };
}

/** A running dashboard and the store it reads. */
export interface RunningDashboard {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves the dashboard on 127.0.0.1:`port` over `store`, which it opens and, on close, closes. A
 * port that is taken or not allowed is a setting to change, so it is a {@link CliSettingError}.
 */
export async function serveDashboard(
  store: LifecycleStore,
  port: number,
  io: CliIo,
  flag = '--port',
): Promise<RunningDashboard> {
  await store.open();
  try {
    const server = await startDashboardServer({
      store,
      port,
      onError: (error) => io.err(`dashboard: ${error instanceof Error ? error.message : String(error)}\n`),
    });
    return {
      url: server.url,
      async close() {
        try {
          await server.close();
        } finally {
          await store.close();
        }
      },
    };
  } catch (error) {
    await store.close();
    const code = (error as { code?: unknown }).code;
    if (code === 'EADDRINUSE') {
      throw new CliSettingError(
        flag,
        `port ${port} on 127.0.0.1 is already in use: give another ${flag}, or ${flag} 0 for a free one`,
        { cause: error },
      );
    }
    if (code === 'EACCES') {
      throw new CliSettingError(
        flag,
        `port ${port} needs privileges this process lacks: give a port above 1023`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}

/** Resolves when `signal` aborts (at once if it has). */
export function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/** `dashboard`: a read-only page on a store: the statechart with live counts, the lag, the queue. */
export function dashboardCommand(io: CliIo, setExit: (code: number) => void): Command {
  return new Command('dashboard')
    .description(
      'serve a read-only page on 127.0.0.1 showing a store: the statechart with live counts, outcomes over time, the decision lag, the attention queue and search by paymentRequestId',
    )
    .option('--store <spec>', 'sqlite:PATH (memory stores live only inside their process)', parseStoreSpec, {
      kind: 'sqlite',
      path: DEFAULT_SQLITE_PATH,
    })
    .option(
      '--port <n>',
      `port on 127.0.0.1 (0 picks a free one)`,
      portNumber('--port'),
      DEFAULT_DASHBOARD_PORT,
    )
    .option(
      '--metrics-port <n>',
      `${METRICS_PORT_HELP}: the store's lifecycles by state and its open attention items`,
      metricsPort,
    )
    .addHelpText(
      'after',
      '\nServes until Ctrl-C. It never writes a lifecycle (opening a store applies pending migrations, as\n' +
        'status does), so it can run beside the engine that owns the payments.\n' +
        'Exit codes: 0 stopped by Ctrl-C; 2 bad usage, no store at that path, or the port is taken.\n',
    )
    .action(async (flags: DashboardFlags) => {
      const interrupt = interruptSignal();
      let dashboard: RunningDashboard | undefined;
      let metricsServer: MetricsServer | undefined;
      try {
        if (flags.store.kind !== 'sqlite') {
          throw new CliSettingError(
            '--store',
            'a memory store lives only inside the process that made it: give --store sqlite:PATH',
          );
        }
        const store = storeFromSpec(flags.store, { mustExist: true });
        // The metrics port is bound first: a taken one is refused before anything else starts.
        if (flags.metricsPort !== undefined) metricsServer = await startMetricsServer(flags.metricsPort, io);
        dashboard = await serveDashboard(store, flags.port, io);
        if (metricsServer) observeStore(metricsServer.meter, store);
        io.out(`Store: ${describeStore(flags.store)}\n`);
        io.out(`dashboard: ${dashboard.url}\n`);
        io.out('Press Ctrl-C to stop.\n');
        await untilAborted(interrupt.signal);
        setExit(EXIT.ok);
      } catch (error) {
        setExit(reportError(io, error));
      } finally {
        await metricsServer?.close();
        await dashboard?.close();
        interrupt.dispose();
      }
    });
}
