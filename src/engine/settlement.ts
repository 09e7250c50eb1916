import type { EventEmitter } from 'node:events';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import type { LifecycleContext } from '../../machines/payment-lifecycle.js';
import type { LifecycleRecord, LifecycleStore, SharedLifecycleStore } from '../stores/store.js';
import type { Entry, PaymentView } from './lifecycle-entry.js';
import type { Logger } from './logger.js';
import type { EngineMetrics } from './metrics.js';

/** Keeps the most recent final outcomes for `get()`, so that memory stays bounded over days. */
const FINISHED_KEPT = 10_000;

/** What {@link createSettlement} needs from the engine. */
export interface SettlementOptions {
  store: LifecycleStore;
  /** The store, if workers share it: a settlement fires only while this worker's lease holds. */
  shared: SharedLifecycleStore | undefined;
  /** The lifecycles held in memory: a settled one leaves it. */
  entries: Map<string, Entry>;
  emitter: EventEmitter;
  logger: Logger;
  onSettled: ((outcome: LifecycleOutcome) => void | Promise<void>) | undefined;
  metrics: Pick<EngineMetrics, 'settled'>;
  /** Sees each lifecycle settled here, once, with its final context (the adaptive schedule learns). */
  observe?(context: LifecycleContext, outcome: LifecycleOutcome): void;
}

/** Settlements, fired once per payment: see {@link createSettlement}. */
export interface Settlement {
  /** Settles a final lifecycle held in memory, once its final snapshot is durable. */
  settle(entry: Entry): Promise<void>;
  /** Fires the settlements of final lifecycles adopted from the store (at start, or a dead worker's). */
  settleAdopted(finals: LifecycleRecord[]): Promise<void>;
  /** Final lifecycles adopted for their settlement: not in `entries`, renewed all the same. */
  readonly settlingIds: ReadonlySet<string>;
  /** Another worker owns this lifecycle now: an adopted settlement of it does not fire here. */
  drop(id: string): void;
  /** A recent final outcome, as `engine.get()` shows it. */
  finished(id: string): PaymentView | undefined;
  /** Resolves with the outcome once the payment's settlement has fired (or failed). */
  waitFor(id: string): Promise<LifecycleOutcome>;
}

/**
 * Fires `onSettled`, `settled` and `attention` once per payment, after the outcome is durable, and
 * marks each settlement fired in the store. Settlements run one at a time.
 */
export function createSettlement(options: SettlementOptions): Settlement {
  const { store, shared, entries, emitter, logger } = options;
  const finished = new Map<string, PaymentView>();
  const waiters = new Map<string, ((outcome: LifecycleOutcome) => void)[]>();
  const settlingIds = new Set<string>();

  async function settle(entry: Entry): Promise<void> {
    // Only once the final snapshot itself is durable: a later flush calls again otherwise.
    if (entry.settling || entry.stopped || entry.dirty || entry.durableVersion < entry.version) return;
    entry.settling = true;
    const outcome = entry.lastSnapshot?.output as LifecycleOutcome;
    try {
      if (entry.lastSnapshot) options.observe?.(entry.lastSnapshot.context, outcome);
    } catch (error) {
      logger.warn(
        { paymentRequestId: entry.id, error: String(error) },
        'learning from a settled lifecycle failed',
      );
    }
    await fireSettlement(entry.id, outcome);
    entry.stopped = true;
    entries.delete(entry.id);
    entry.actor.stop();
  }

  // Settlements run one at a time, each marked before the next fires: a crash can then repeat at
  // most the one settlement whose mark had not committed, not a whole batch of them.
  let settlements: Promise<void> = Promise.resolve();

  /** Fires onSettled and `settled` (and `attention`), then marks it fired. At most once per process. */
  function fireSettlement(id: string, outcome: LifecycleOutcome, owned = () => true): Promise<void> {
    const next = settlements.then(() => (owned() ? fireOne(id, outcome) : undefined));
    settlements = next.catch(() => undefined);
    return next;
  }

  async function fireOne(id: string, outcome: LifecycleOutcome): Promise<void> {
    if (shared && performance.now() > shared.leaseValidUntil()) return; // the next owner fires it
    remember({
      paymentRequestId: id,
      state: outcome.status,
      final: true,
      context: {} as LifecycleContext,
      outcome,
    });
    try {
      await options.onSettled?.(outcome);
    } catch (error) {
      // Not marked: it fires again on the next start.
      logger.error({ err: error, paymentRequestId: id }, 'onSettled failed; it will fire again on restart');
      resolveWaiters(id, outcome);
      return;
    }
    emitter.emit('settled', outcome);
    try {
      options.metrics.settled(outcome);
    } catch (error) {
      // A metric is never a reason to leave a settlement unmarked (it would fire again).
      logger.warn({ err: error, paymentRequestId: id }, 'outcome metrics failed');
    }
    if (outcome.status === 'attention') emitter.emit('attention', outcome);
    await store.markSettled(id);
    resolveWaiters(id, outcome);
  }

  /**
   * Final lifecycles adopted for their settlement. Every one of them is renewed from now until its
   * own settlement is marked, not only the one firing: settlements run one at a time, and a lease
   * that ran out while waiting its turn would let another worker adopt and fire it a second time.
   */
  async function settleAdopted(finals: LifecycleRecord[]): Promise<void> {
    for (const record of finals) settlingIds.add(record.paymentRequestId);
    try {
      for (const record of finals) {
        // Fired only if still ours when its turn comes: renewal drops one lost to another worker.
        await fireSettlement(record.paymentRequestId, record.outcome as LifecycleOutcome, () =>
          settlingIds.has(record.paymentRequestId),
        );
        settlingIds.delete(record.paymentRequestId);
      }
    } finally {
      for (const record of finals) settlingIds.delete(record.paymentRequestId);
    }
  }

  function remember(view: PaymentView): void {
    finished.set(view.paymentRequestId, view);
    if (finished.size > FINISHED_KEPT) finished.delete(finished.keys().next().value as string);
  }

  function resolveWaiters(id: string, outcome: LifecycleOutcome): void {
    for (const resolve of waiters.get(id) ?? []) resolve(outcome);
    waiters.delete(id);
  }

  return {
    settle,
    settleAdopted,
    settlingIds,
    drop: (id) => void settlingIds.delete(id),
    finished: (id) => finished.get(id),
    waitFor: (id) =>
      new Promise((resolve) => {
        const list = waiters.get(id) ?? [];
        list.push(resolve);
        waiters.set(id, list);
      }),
  };
}
