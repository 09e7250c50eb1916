import type { EventEmitter } from 'node:events';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import type { LifecycleContext } from '../../machines/payment-lifecycle.js';
import type { LifecycleRecord, LifecycleStore, SharedLifecycleStore } from '../stores/store.js';
import type { Entry, PaymentView } from './lifecycle-entry.js';
import type { Logger } from './logger.js';
import type { EngineMetrics } from './metrics.js';

/** Keeps the most recent final outcomes for `get()`, so that memory stays bounded over days. */
const FINISHED_KEPT = 10_000;

/**
 * A failed onSettled or mark is retried after a random wait of up to RETRY_BASE_MS × 2^attempt
 * (full jitter), at most RETRY_MAX_MS: a merchant's order system or a store that had a blip is
 * asked again within seconds, and one that stays down is asked about twice a minute, not in a storm.
 */
const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 30_000;

/** The context of a final lifecycle adopted from the store: its persisted snapshot's. */
function contextOf(record: LifecycleRecord): LifecycleContext | undefined {
  return (record.snapshot as { context?: LifecycleContext } | null | undefined)?.context;
}

/** For a final outcome whose context is not at hand (a stored record without a snapshot). */
const EMPTY_CONTEXT = Object.freeze({}) as LifecycleContext;

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
  /** Retries run again (after a stop). */
  start(): void;
  /** Cancels the retries pending: what they had left to do is unmarked in the store, and the next start fires it. */
  stop(): void;
  /** A recent final outcome, as `engine.get()` shows it. */
  finished(id: string): PaymentView | undefined;
  /**
   * Resolves with the outcome once the payment's settlement has fired (or failed) here. An aborted
   * wait is forgotten (it never resolves).
   */
  waitFor(id: string, signal?: AbortSignal): Promise<LifecycleOutcome>;
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
    await fireSettlement(entry.id, outcome, entry.lastSnapshot?.context);
    entry.stopped = true;
    entries.delete(entry.id);
    entry.actor.stop();
  }

  // Settlements run one at a time, each marked before the next fires: a crash can then repeat at
  // most the one settlement whose mark had not committed, not a whole batch of them.
  let settlements: Promise<void> = Promise.resolve();
  /** Retries waiting for their turn (a failed onSettled or mark), cancelled by stop(). */
  const retries = new Set<ReturnType<typeof setTimeout>>();
  /** Payments with a retry pending. */
  const retrying = new Set<string>();
  let stopped = false;

  /** Fires onSettled and `settled` (and `attention`), then marks it fired. At most once per process. */
  function fireSettlement(
    id: string,
    outcome: LifecycleOutcome,
    context: LifecycleContext | undefined,
    owned = () => true,
  ): Promise<void> {
    return enqueue(() => (owned() ? fireOne(id, outcome, context) : undefined));
  }

  function enqueue(work: () => Promise<void> | undefined): Promise<void> {
    const next = settlements.then(work);
    settlements = next.catch(() => undefined);
    return next;
  }

  /**
   * Runs `work` again after a backoff with full jitter, in its turn, while the lifecycle is still
   * ours: it is kept in `settlingIds` meanwhile, so that its lease is renewed (on a shared store a
   * lost lease drops it there, and its next owner settles it). Never rejects.
   */
  function retryLater(id: string, attempt: number, work: (attempt: number) => Promise<void>): void {
    if (stopped) return; // the next start() settles it: it is unmarked in the store
    settlingIds.add(id);
    retrying.add(id);
    const ceiling = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt);
    const timer = setTimeout(() => {
      retries.delete(timer);
      retrying.delete(id);
      if (stopped || !settlingIds.has(id)) return;
      void enqueue(() => work(attempt + 1)).catch((error: unknown) => {
        logger.error({ err: error, paymentRequestId: id }, 'settlement retry failed');
      });
    }, Math.random() * ceiling);
    timer.unref();
    retries.add(timer);
  }

  async function fireOne(
    id: string,
    outcome: LifecycleOutcome,
    context: LifecycleContext | undefined,
    attempt = 0,
  ): Promise<void> {
    if (shared && performance.now() > shared.leaseValidUntil()) return; // the next owner fires it
    if (attempt === 0)
      remember({
        paymentRequestId: id,
        state: outcome.status,
        final: true,
        context: context ?? EMPTY_CONTEXT,
        outcome,
      });
    try {
      await options.onSettled?.(outcome);
    } catch (error) {
      // Not marked: fired again here after a backoff, and on the next start if the process dies first.
      logger.error(
        { err: error, paymentRequestId: id, attempt },
        'onSettled failed; it fires again after a backoff',
      );
      resolveWaiters(id, outcome);
      retryLater(id, attempt, (next) => fireOne(id, outcome, context, next));
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
    await mark(id, 0);
    // After the first try of the mark, as before the settlement is let go of: outcome() waits for a
    // settlement that is still held, and would miss one resolved earlier.
    resolveWaiters(id, outcome);
  }

  /** Marks the settlement fired; a store that fails is retried (onSettled is not fired again for it). */
  async function mark(id: string, attempt: number): Promise<void> {
    try {
      await store.markSettled(id);
      settlingIds.delete(id); // nothing left to do for it here: its lease need not be renewed
    } catch (error) {
      logger.error(
        { err: error, paymentRequestId: id, attempt },
        'marking a settlement fired failed; retrying after a backoff',
      );
      retryLater(id, attempt, (next) => mark(id, next));
    }
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
        const id = record.paymentRequestId;
        await fireSettlement(id, record.outcome as LifecycleOutcome, contextOf(record), () =>
          settlingIds.has(id),
        );
        if (!retrying.has(id)) settlingIds.delete(id);
      }
    } finally {
      for (const { paymentRequestId: id } of finals) if (!retrying.has(id)) settlingIds.delete(id);
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
    drop(id) {
      settlingIds.delete(id);
      retrying.delete(id);
    },
    start() {
      stopped = false;
    },
    stop() {
      stopped = true;
      for (const timer of retries) clearTimeout(timer);
      retries.clear();
      for (const id of retrying) settlingIds.delete(id);
      retrying.clear();
    },
    finished: (id) => finished.get(id),
    waitFor: (id, signal) =>
      new Promise((resolve) => {
        const list = waiters.get(id) ?? [];
        list.push(resolve);
        waiters.set(id, list);
        signal?.addEventListener('abort', () => {
          const left = (waiters.get(id) ?? []).filter((r) => r !== resolve);
          if (left.length > 0) waiters.set(id, left);
          else waiters.delete(id);
        });
      }),
  };
}
