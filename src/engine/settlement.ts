import type { EventEmitter } from 'node:events';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import type { LifecycleContext } from '../../machines/payment-lifecycle.js';
import type { LifecycleStore, SharedLifecycleStore } from '../stores/store.js';
import type { FinalOutcome, Lifecycle, PaymentView } from './lifecycle.js';
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

/** For a final outcome whose context is not at hand (a stored record without a snapshot). */
const EMPTY_CONTEXT = Object.freeze({}) as LifecycleContext;

/** What {@link createSettlement} needs from the engine. */
export interface SettlementOptions {
  store: LifecycleStore;
  /** The store, if workers share it: a settlement fires only while this worker's lease holds. */
  shared: SharedLifecycleStore | undefined;
  emitter: EventEmitter;
  logger: Logger;
  onSettled: ((outcome: LifecycleOutcome) => void | Promise<void>) | undefined;
  metrics: Pick<EngineMetrics, 'settled'>;
  /** Sees each lifecycle settled here, once, with its final context (the adaptive schedule learns). */
  observe?(context: LifecycleContext, outcome: LifecycleOutcome): void;
}

/** Settlements, fired once per payment: see {@link createSettlement}. */
export interface Settlement {
  /**
   * Settles a final lifecycle held live, once its final snapshot is durable (a later flush asks
   * again otherwise). It stays held, in phase `settling`, until its settlement is marked in the
   * store; then it stops. Resolves after the first try.
   */
  settle(lifecycle: Lifecycle): Promise<void>;
  /** The same for final lifecycles adopted from the store (phase `settling`), one after another. */
  settleAdopted(adopted: Lifecycle[]): Promise<void>;
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
 * marks each settlement fired in the store. Settlements run one at a time. A failing onSettled or
 * mark is retried in the process, with backoff, while the lifecycle is still ours (held, its lease
 * renewed); if the process dies first, it is unmarked and fires at the next start.
 */
export function createSettlement(options: SettlementOptions): Settlement {
  const { store, shared, emitter, logger } = options;
  const finished = new Map<string, PaymentView>();
  const waiters = new Map<string, ((outcome: LifecycleOutcome) => void)[]>();

  // Settlements run one at a time, each marked before the next fires: a crash can then repeat at
  // most the one settlement whose mark had not committed, not a whole batch of them.
  let settlements: Promise<void> = Promise.resolve();
  /** Retries waiting for their turn (a failed onSettled or mark), cancelled by stop(). */
  const retries = new Set<ReturnType<typeof setTimeout>>();
  let stopped = false;

  async function settle(lifecycle: Lifecycle): Promise<void> {
    const final = lifecycle.beginSettling();
    if (!final) return;
    try {
      options.observe?.(final.context as LifecycleContext, final.outcome);
    } catch (error) {
      logger.warn(
        { paymentRequestId: lifecycle.id, error: String(error) },
        'learning from a settled lifecycle failed',
      );
    }
    await enqueue(() => fireOne(lifecycle, final, 0));
  }

  async function settleAdopted(adopted: Lifecycle[]): Promise<void> {
    // Each waits its turn held (renewed), so that its lease cannot run out meanwhile and let
    // another worker adopt and fire it a second time.
    await Promise.all(
      adopted.map((lifecycle) => {
        const final = { outcome: lifecycle.outcome as LifecycleOutcome, context: lifecycle.view().context };
        return enqueue(() => fireOne(lifecycle, final, 0));
      }),
    );
  }

  function enqueue(work: () => Promise<void> | undefined): Promise<void> {
    const next = settlements.then(work);
    settlements = next.catch(() => undefined);
    return next;
  }

  /**
   * Runs `work` again after a backoff with full jitter, in its turn, while the lifecycle is still
   * ours: it stays held, in phase `settling`, so that its lease is renewed (on a shared store a
   * lost lease stops it, and its next owner settles it). Never rejects.
   */
  function retryLater(lifecycle: Lifecycle, attempt: number, work: (attempt: number) => Promise<void>): void {
    if (stopped) return; // the next start() settles it: it is unmarked in the store
    const ceiling = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt);
    const timer = setTimeout(() => {
      retries.delete(timer);
      if (stopped || lifecycle.phase !== 'settling') return;
      void enqueue(() => work(attempt + 1)).catch((error: unknown) => {
        logger.error({ err: error, paymentRequestId: lifecycle.id }, 'settlement retry failed');
      });
    }, Math.random() * ceiling);
    timer.unref();
    retries.add(timer);
  }

  /** Fires onSettled and `settled` (and `attention`), then marks it fired. At most once per process. */
  async function fireOne(lifecycle: Lifecycle, final: FinalOutcome, attempt: number): Promise<void> {
    const { id } = lifecycle;
    const { outcome } = final;
    // Fired only while still ours: a lease lost meanwhile stopped it, and the next owner fires it.
    if (lifecycle.phase !== 'settling') return;
    if (shared && performance.now() > shared.leaseValidUntil()) {
      lifecycle.stop('lease-expired'); // unmarked: the next owner fires it
      return;
    }
    if (attempt === 0)
      remember({
        paymentRequestId: id,
        state: outcome.status,
        final: true,
        context: final.context ?? EMPTY_CONTEXT,
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
      retryLater(lifecycle, attempt, (next) => fireOne(lifecycle, final, next));
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
    await mark(lifecycle, 0);
    // After the first try of the mark: outcome() waits for a settlement that is still held, and
    // would miss one resolved earlier.
    resolveWaiters(id, outcome);
  }

  /** Marks the settlement fired; a store that fails is retried (onSettled is not fired again for it). */
  async function mark(lifecycle: Lifecycle, attempt: number): Promise<void> {
    try {
      await store.markSettled(lifecycle.id);
      lifecycle.stop('settled'); // nothing left to do for it here: its lease need not be renewed
    } catch (error) {
      logger.error(
        { err: error, paymentRequestId: lifecycle.id, attempt },
        'marking a settlement fired failed; retrying after a backoff',
      );
      retryLater(lifecycle, attempt, (next) => mark(lifecycle, next));
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
    start() {
      stopped = false;
    },
    stop() {
      stopped = true;
      for (const timer of retries) clearTimeout(timer);
      retries.clear();
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
