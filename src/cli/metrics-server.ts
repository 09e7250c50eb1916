import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Meter } from '@opentelemetry/api';
import { InvalidArgumentError } from 'commander';
import { METER_NAME } from '../engine/metrics.js';
import { CliSettingError } from './common.js';
import type { CliIo } from './io.js';

/** The flag every command that runs an engine takes. */
export const METRICS_PORT_FLAG = '--metrics-port';

export const METRICS_PORT_HELP =
  'serve the engine metrics as Prometheus text at http://127.0.0.1:N/metrics (0 picks a free port)';

/** `--metrics-port N`, as commander parses it: a whole number from 0 (any free port) to 65535. */
export function metricsPort(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isInteger(parsed) || parsed > 65_535) {
    throw new InvalidArgumentError(
      `${METRICS_PORT_FLAG} must be a whole number from 0 (any free port) to 65535`,
    );
  }
  return parsed;
}

/** A running metrics endpoint and the meter whose instruments it serves. */
export interface MetricsServer {
  /** Pass it to `createPaymentEngine({ meter })`. */
  readonly meter: Meter;
  /** `http://127.0.0.1:N/metrics`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves Prometheus text at `http://127.0.0.1:port/metrics` (0: a free port) for the engine given
 * the returned meter, and prints its URL. The SDK and the exporter are loaded here, on demand: the
 * library itself depends on `@opentelemetry/api` alone. The port is bound before this resolves, so
 * a command can refuse a taken one (a {@link CliSettingError}, exit 2) before it does anything else.
 */
export async function startMetricsServer(port: number, io: CliIo): Promise<MetricsServer> {
  const [{ MeterProvider }, { PrometheusExporter }] = await Promise.all([
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/exporter-prometheus'),
  ]);
  // The exporter's own server would listen on every interface and treats port 0 as its default
  // port; this one listens on loopback only, on exactly the port asked for, and serves the exporter.
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') return exporter.getMetricsRequestHandler(req, res);
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
  });
  await listen(server, port);
  server.on('error', (error) => io.err(`metrics: ${error.message}\n`));
  const provider = new MeterProvider({ readers: [exporter] });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  io.out(`metrics: ${url}\n`);
  let closed: Promise<void> | undefined;
  return {
    meter: provider.getMeter(METER_NAME),
    url,
    close() {
      closed ??= (async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await provider.shutdown();
      })();
      return closed;
    },
  };
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        reject(
          new CliSettingError(
            METRICS_PORT_FLAG,
            `port ${port} on 127.0.0.1 is already in use: give another ${METRICS_PORT_FLAG}, or ${METRICS_PORT_FLAG} 0 for a free one; nothing was started`,
            { cause: error },
          ),
        );
      } else if (error.code === 'EACCES') {
        reject(
          new CliSettingError(
            METRICS_PORT_FLAG,
            `port ${port} needs privileges this process lacks: give a ${METRICS_PORT_FLAG} above 1023; nothing was started`,
            { cause: error },
          ),
        );
      } else {
        reject(error);
      }
    };
    server.once('error', failed);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', failed);
      resolve();
    });
  });
}
