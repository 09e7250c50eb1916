import { Command } from 'commander';
import type { TrackInput } from '../engine/track-input.js';
import { DEFAULT_SQLITE_PATH } from '../stores/sqlite-store.js';
import { CliSettingError, parseStoreSpec, reportError } from './common.js';
import { endpointOptions } from './endpoint-options.js';
import { inspectOptions } from './inspection.js';
import type { CliIo } from './io.js';
import { iso, type LifecycleFlags, runLifecycle } from './lifecycle-run.js';
import { METRICS_PORT_HELP, metricsPort } from './metrics-server.js';

interface TrackFlags extends LifecycleFlags {
  requestId: string;
  paymentId?: string;
  expiresAt?: string;
  createdAt?: string;
}

/** `--expires-at`: epoch ms, or ISO 8601 with an offset (the `paymentExpiryTime` sent with `pay`). */
function expiry(value: string | undefined): TrackInput['paymentExpiryTime'] {
  if (value === undefined) return undefined;
  return /^\d+$/.test(value) ? Number(value) : value;
}

/** `--created-at`: epoch ms, or ISO 8601 with an offset. */
function creation(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) {
    throw new CliSettingError(
      '--created-at',
      `--created-at ${value} is neither epoch ms nor an ISO 8601 time`,
    );
  }
  return ms;
}

/**
 * An expired payment is tracked all the same (it may have been charged: it gets a last look, then a
 * cancel or the refund path), but only when we know when it was created: without `--created-at` it
 * would be created now, after its own expiry. Said here, with the way forward, before anything is
 * opened; the engine refuses it too.
 */
function refuseExpiredWithoutCreation(
  id: string,
  expiresAt: TrackInput['paymentExpiryTime'],
  createdAt: number | undefined,
): void {
  if (createdAt !== undefined) return;
  const ms = typeof expiresAt === 'string' ? Date.parse(expiresAt) : expiresAt;
  if (ms === undefined || !Number.isFinite(ms) || ms > Date.now()) return;
  throw new CliSettingError(
    '--created-at',
    `payment ${id} expired at ${iso(ms)}: give --created-at (when its pay was sent, ISO 8601 or epoch ms) to track it; the lifecycle then takes a last look at once and cancels it, or past the cancel window takes the refund path; nothing was stored`,
  );
}

/** `track`: one lifecycle to its end against the configured endpoint, printing each transition. */
export function trackCommand(io: CliIo, setExit: (code: number) => void): Command {
  return inspectOptions(
    endpointOptions(
      new Command('track')
        .description(
          'run one lifecycle to its final outcome against the configured endpoint, printing each transition',
        )
        .requiredOption('--request-id <id>', 'the paymentRequestId whose result is unknown')
        .option('--payment-id <id>', "Alipay+'s paymentId, if pay returned one")
        .option(
          '--expires-at <time>',
          'the paymentExpiryTime sent with pay: ISO 8601 with offset, or epoch ms (default: 1 minute after --created-at)',
        )
        .option(
          '--created-at <time>',
          'when the payment was created: ISO 8601 with offset, or epoch ms (default now; the cancel window counts from it)',
        )
        .option(
          '--store <spec>',
          `sqlite:PATH or memory (default sqlite:${DEFAULT_SQLITE_PATH})`,
          parseStoreSpec,
        )
        .option('--json', 'print each transition and the outcome as JSON lines')
        .option('--metrics-port <n>', METRICS_PORT_HELP, metricsPort),
    ),
  )
    .addHelpText(
      'after',
      'Notifications are not received here (no endpoint is exposed): the lifecycle polls, and cancels at expiry.\n' +
        'A payment whose expiry has passed is tracked all the same (give --created-at): a last look, then a cancel,\n' +
        'or past the cancel window the refund path. Other unfinished lifecycles in the same store are resumed\n' +
        'while this one runs, as any engine start does.\n' +
        'Exit codes: 0 a final outcome (succeeded, failed, closed, cancelled, refunded); 1 attention (a person\n' +
        'must act) or a failure while running; 2 bad usage, settings or input; 130 interrupted (the lifecycle\n' +
        'stays stored).\n',
    )
    .action(async (flags: TrackFlags) => {
      const id = flags.requestId;
      let input: TrackInput;
      try {
        input = { paymentRequestId: id };
        if (flags.paymentId) input.paymentId = flags.paymentId;
        const expiresAt = expiry(flags.expiresAt);
        if (expiresAt !== undefined) input.paymentExpiryTime = expiresAt;
        const createdAt = creation(flags.createdAt);
        if (createdAt !== undefined) input.createdAt = createdAt;
        refuseExpiredWithoutCreation(id, expiresAt, createdAt);
      } catch (error) {
        setExit(reportError(io, error));
        return;
      }
      await runLifecycle(io, setExit, flags, {
        id,
        start: (engine) => engine.track(input),
        started: (view) => {
          const c = view.context;
          return {
            lines: [
              view.final
                ? `${id} is already final in this store.`
                : `Tracking ${id}: ${view.state}; expires ${iso(c.expiresAt)}, cancel window ends ${iso(c.cancelWindowEndsAt)}`,
            ],
          };
        },
      });
    });
}
