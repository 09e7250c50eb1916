import { Command } from 'commander';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import { createAlipayPlusClient } from '../client/alipayplus-client.js';
import { createPaymentEngine, type TransitionEvent } from '../engine/payment-engine.js';
import type { TrackInput } from '../engine/track-input.js';
import { DEFAULT_SQLITE_PATH } from '../stores/sqlite-store.js';
import {
  CliSettingError,
  describeStore,
  interruptSignal,
  parseStoreSpec,
  reportError,
  type StoreSpec,
  storeFromSpec,
} from './common.js';
import { clientOptionsOf, type EndpointFlags, resolveEndpointSettings } from './config.js';
import { endpointOptions } from './endpoint-options.js';
import { type InspectFlags, type Inspection, inspectionFromFlags, inspectOptions } from './inspection.js';
import { type CliIo, EXIT } from './io.js';

interface TrackFlags extends EndpointFlags, InspectFlags {
  requestId: string;
  paymentId?: string;
  expiresAt?: string;
  createdAt?: string;
  json?: boolean;
}

const iso = (ms: number) => new Date(ms).toISOString();

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
 * A payment that expired before anyone tracked it has nothing left to wait for; said here with the
 * way forward, rather than as the engine's "expiresAt must be after createdAt" when no creation time
 * is given (it defaults to now).
 */
function refuseExpired(id: string, expiresAt: TrackInput['paymentExpiryTime']): void {
  const ms = typeof expiresAt === 'string' ? Date.parse(expiresAt) : expiresAt;
  if (ms === undefined || !Number.isFinite(ms) || ms > Date.now()) return;
  throw new CliSettingError(
    '--expires-at',
    `payment ${id} expired at ${iso(ms)}, before it was tracked: inquire it once (alipayplus-lifecycle inquire --request-id ${id}) and cancel it if it is still in process; nothing was stored`,
  );
}

export function transitionLine(t: TransitionEvent): string {
  return `${iso(t.at)}  ${t.from || '(new)'} → ${t.to}  (${t.event}${t.code ? `, ${t.code}` : ''})`;
}

export function outcomeLines(outcome: LifecycleOutcome): string[] {
  const by = outcome.decidedBy;
  const lines = [
    `Outcome: ${outcome.status}, decided by ${by.source} (${by.level}-level code ${by.code}${by.status ? `, ${by.status}` : ''}) at ${iso(outcome.decidedAt)}`,
    `  inquiries ${outcome.inquiries}, cancel attempts ${outcome.cancelAttempts}`,
  ];
  if (outcome.attentionReason)
    lines.push(`  needs a person: ${outcome.attentionReason} (see docs/result-table.md for what to do)`);
  if (outcome.cancelReason) lines.push(`  cancelled because: ${outcome.cancelReason}`);
  const d = outcome.details;
  if (d.paymentId) lines.push(`  paymentId ${d.paymentId}`);
  if (d.paymentAmount) lines.push(`  amount ${d.paymentAmount.value} ${d.paymentAmount.currency}`);
  if (d.paymentTime) lines.push(`  paid at ${d.paymentTime}`);
  for (const late of outcome.lateNotifications) {
    lines.push(
      `  late notification in ${late.state}: ${late.resultStatus} ${late.resultCode}${late.flagged ? ' (FLAGGED: the user was charged; the cancel refunds them)' : ''}`,
    );
  }
  return lines;
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
          'the paymentExpiryTime sent with pay: ISO 8601 with offset, or epoch ms (default: 1 minute from now)',
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
        .option('--json', 'print each transition and the outcome as JSON lines'),
    ),
  )
    .addHelpText(
      'after',
      'Notifications are not received here (no endpoint is exposed): the lifecycle polls, and cancels at expiry.\n' +
        'Other unfinished lifecycles in the same store are resumed while this one runs, as any engine start does.\n' +
        'Exit codes: 0 a final outcome (succeeded, failed, closed, cancelled); 1 attention (a person must act) or a\n' +
        'failure while running; 2 bad usage, settings or input; 130 interrupted (the lifecycle stays stored).\n',
    )
    .action(async (flags: TrackFlags) => {
      let inspection: Inspection | undefined;
      const interrupt = interruptSignal();
      const cleanup: (() => Promise<void>)[] = [];
      try {
        refuseExpired(flags.requestId, expiry(flags.expiresAt));
        const settings = resolveEndpointSettings(flags);
        const spec: StoreSpec = settings.store ?? { kind: 'sqlite', path: DEFAULT_SQLITE_PATH };
        const client = createAlipayPlusClient(clientOptionsOf(settings));
        cleanup.push(() => client.close());
        const store = storeFromSpec(spec);
        cleanup.push(() => store.close());
        inspection = await inspectionFromFlags(flags, flags.json ? { ...io, out: () => undefined } : io);
        const active = inspection;
        const engine = createPaymentEngine({
          client,
          store,
          ...(settings.policy ? { policy: settings.policy } : {}),
          ...(active ? { inspect: (event) => active.inspect(event) } : {}),
        });
        cleanup.unshift(() => engine.stop());
        const id = flags.requestId;
        engine.on('transition', (t) => {
          if (t.paymentRequestId !== id) return;
          io.out(flags.json ? `${JSON.stringify({ transition: t })}\n` : `${transitionLine(t)}\n`);
        });
        engine.on('error', (error) => io.err(`engine error: ${error.message}\n`));
        if (!flags.json) io.out(`Store: ${describeStore(spec)}\n`);
        await engine.start();
        if (!flags.json) {
          const others = engine.activeCount - (engine.get(id) ? 1 : 0);
          if (others > 0) io.out(`(${others} other unfinished lifecycles in this store resumed as well)\n`);
        }
        const input: TrackInput = { paymentRequestId: id };
        if (flags.paymentId) input.paymentId = flags.paymentId;
        const expiresAt = expiry(flags.expiresAt);
        if (expiresAt !== undefined) input.paymentExpiryTime = expiresAt;
        const createdAt = creation(flags.createdAt);
        if (createdAt !== undefined) input.createdAt = createdAt;
        const view = await engine.track(input);
        if (!flags.json) {
          const c = view.context;
          io.out(
            view.final
              ? `${id} is already final in this store.\n`
              : `Tracking ${id}: ${view.state}; expires ${iso(c.expiresAt)}, cancel window ends ${iso(c.cancelWindowEndsAt)}\n`,
          );
        }
        // The engine's timers are unref'ed (pending lifecycles alone must not keep a host process
        // alive), so this command holds the process open itself while it waits for the outcome.
        const keepAlive = setInterval(() => undefined, 60_000);
        cleanup.push(async () => clearInterval(keepAlive));
        const outcome = await Promise.race([
          engine.outcome(id),
          new Promise<undefined>((resolve) => {
            if (interrupt.signal.aborted) resolve(undefined);
            interrupt.signal.addEventListener('abort', () => resolve(undefined), { once: true });
          }),
        ]);
        if (!outcome) {
          io.err(
            `interrupted: ${id} stays stored in ${describeStore(spec)} and resumes when an engine starts on it\n`,
          );
          setExit(EXIT.interrupted);
          return;
        }
        io.out(flags.json ? `${JSON.stringify({ outcome })}\n` : `${outcomeLines(outcome).join('\n')}\n`);
        setExit(outcome.status === 'attention' ? EXIT.negative : EXIT.ok);
      } catch (error) {
        setExit(reportError(io, error));
      } finally {
        for (const step of cleanup) await step().catch(() => undefined);
        await inspection?.stop();
        await inspection?.close();
        interrupt.dispose();
      }
    });
}
