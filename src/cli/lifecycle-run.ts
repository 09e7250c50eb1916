import type { LifecycleOutcome } from '../../machines/outcome.js';
import { createAlipayPlusClient } from '../client/alipayplus-client.js';
import {
  createPaymentEngine,
  type PaymentEngine,
  type PaymentView,
  type TransitionEvent,
} from '../engine/payment-engine.js';
import { DEFAULT_SQLITE_PATH } from '../stores/sqlite-store.js';
import { describeStore, interruptSignal, reportError, type StoreSpec, storeFromSpec } from './common.js';
import { clientOptionsOf, type EndpointFlags, resolveEndpointSettings } from './config.js';
import { type InspectFlags, type Inspection, inspectionFromFlags } from './inspection.js';
import { type CliIo, EXIT } from './io.js';
import { startMetricsServer } from './metrics-server.js';

/** The flags of the commands that run one lifecycle to its end (`track`, `pay`). */
export interface LifecycleFlags extends EndpointFlags, InspectFlags {
  json?: boolean;
  /** `--metrics-port`: serve the engine's metrics while the lifecycle runs. */
  metricsPort?: number;
}

/** How a command starts its lifecycle, and what it says once it has. */
export interface LifecycleStart {
  /** The payment whose transitions are printed. */
  id: string;
  /** Starts (or finds) the lifecycle; resolves with its view once the start is decided. */
  start(engine: PaymentEngine): Promise<PaymentView>;
  /** Printed once started, before the wait: text lines, and for `--json` one object (optional). */
  started(view: PaymentView): { lines: string[]; json?: Record<string, unknown> };
}

export const iso = (ms: number) => new Date(ms).toISOString();

export function transitionLine(t: TransitionEvent): string {
  return `${iso(t.at)}  ${t.from || '(new)'} → ${t.to}  (${t.event}${t.code ? `, ${t.code}` : ''})`;
}

/** The outcome for people; with the store, the command that remedies a refund that is due. */
export function outcomeLines(outcome: LifecycleOutcome, store?: StoreSpec): string[] {
  const by = outcome.decidedBy;
  const lines = [
    `Outcome: ${outcome.status}, decided by ${by.source} (${by.level}-level code ${by.code}${by.status ? `, ${by.status}` : ''}) at ${iso(outcome.decidedAt)}`,
    `  inquiries ${outcome.inquiries}, cancel attempts ${outcome.cancelAttempts}`,
  ];
  if (outcome.attentionReason)
    lines.push(`  needs a person: ${outcome.attentionReason} (see docs/result-table.md for what to do)`);
  if (outcome.attentionReason === 'refund-due') {
    const where = store && store.kind === 'sqlite' ? ` --store sqlite:${store.path}` : '';
    lines.push(`  remedy: alipayplus-lifecycle refund ${outcome.paymentRequestId}${where}`);
  }
  if (outcome.cancelReason) lines.push(`  cancelled because: ${outcome.cancelReason}`);
  const d = outcome.details;
  if (d.paymentId) lines.push(`  paymentId ${d.paymentId}`);
  if (d.paymentAmount) lines.push(`  amount ${d.paymentAmount.value} ${d.paymentAmount.currency}`);
  if (d.paymentTime) lines.push(`  paid at ${d.paymentTime}`);
  const refund = outcome.refund;
  if (refund) {
    lines.push(
      `  refund ${refund.refundRequestId}: ${refund.refundAmount.value} ${refund.refundAmount.currency}` +
        (refund.refundId ? `, refundId ${refund.refundId}` : '') +
        (refund.refundTime ? ` at ${refund.refundTime}` : ''),
    );
  }
  for (const late of outcome.lateNotifications) {
    lines.push(
      `  late notification in ${late.state}: ${late.resultStatus} ${late.resultCode}${late.flagged ? ' (FLAGGED: the user was charged; the cancel refunds them)' : ''}`,
    );
  }
  return lines;
}

/**
 * Runs one lifecycle to its outcome against the configured endpoint: the engine on the `--store`,
 * every transition of the payment printed, then the outcome. Exit 0 for a final outcome, 1 for
 * `attention` (or a failure while running), 2 for bad settings, 130 when interrupted (the lifecycle
 * stays stored and resumes when an engine starts on the store).
 */
export async function runLifecycle(
  io: CliIo,
  setExit: (code: number) => void,
  flags: LifecycleFlags,
  run: LifecycleStart,
): Promise<void> {
  let inspection: Inspection | undefined;
  const interrupt = interruptSignal();
  const cleanup: (() => Promise<void>)[] = [];
  const print = (text: string, json: unknown) =>
    io.out(flags.json ? `${JSON.stringify(json)}\n` : `${text}\n`);
  try {
    const settings = resolveEndpointSettings(flags);
    const spec: StoreSpec = settings.store ?? { kind: 'sqlite', path: DEFAULT_SQLITE_PATH };
    // Before the store and the client: a taken port ends the command (exit 2) with nothing opened.
    // With --json, its URL goes to stderr, so that stdout stays JSON lines.
    const metrics =
      flags.metricsPort === undefined
        ? undefined
        : await startMetricsServer(flags.metricsPort, flags.json ? { ...io, out: io.err } : io);
    if (metrics) cleanup.push(() => metrics.close());
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
      ...(metrics ? { meter: metrics.meter } : {}),
    });
    cleanup.unshift(() => engine.stop());
    const { id } = run;
    engine.on('transition', (t) => {
      if (t.paymentRequestId === id) print(transitionLine(t), { transition: t });
    });
    engine.on('error', (error) => io.err(`engine error: ${error.message}\n`));
    if (!flags.json) io.out(`Store: ${describeStore(spec)}\n`);
    await engine.start();
    if (!flags.json) {
      const others = engine.activeCount - (engine.get(id) ? 1 : 0);
      if (others > 0) io.out(`(${others} other unfinished lifecycles in this store resumed as well)\n`);
    }
    const view = await run.start(engine);
    const said = run.started(view);
    if (flags.json) {
      if (said.json) io.out(`${JSON.stringify(said.json)}\n`);
    } else if (said.lines.length > 0) {
      io.out(`${said.lines.join('\n')}\n`);
    }
    // The engine's timers are unref'ed (pending lifecycles alone must not keep a host process
    // alive), so the command holds the process open itself while it waits for the outcome.
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
    print(outcomeLines(outcome, spec).join('\n'), { outcome });
    setExit(outcome.status === 'attention' ? EXIT.negative : EXIT.ok);
  } catch (error) {
    setExit(reportError(io, error));
  } finally {
    for (const step of cleanup) await step().catch(() => undefined);
    await inspection?.stop();
    await inspection?.close();
    interrupt.dispose();
  }
}
