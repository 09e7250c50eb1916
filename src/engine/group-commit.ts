import { AlipayPlusLifecycleError } from '../errors.js';
import type { LifecycleStore, LifecycleWrite } from '../stores/store.js';
import type { EngineClock } from './clock.js';
import type { Lifecycle } from './lifecycle.js';
import type { Logger } from './logger.js';
import type { EngineMetrics } from './metrics.js';

/** What {@link createGroupCommit} needs from the engine. */
export interface GroupCommitOptions {
  store: LifecycleStore;
  clock: EngineClock;
  logger: Logger;
  metrics: Pick<EngineMetrics, 'storeWrite'>;
  /** The store refused a write: another writer changed the lifecycle since this one read it. */
  onConflict(lifecycle: Lifecycle): void;
  /** A batch was written, or put back to be retried (what became durable shows in its lifecycles). */
  onFlushed(batch: Lifecycle[]): void;
}

/** Persistence, batched per tick: see {@link createGroupCommit}. */
export interface GroupCommit {
  /** The lifecycle changed: its write goes out with the next flush. */
  schedulePersist(lifecycle: Lifecycle): void;
  /** Resolves once everything this lifecycle did so far is durable; rejects if it is stopped first. */
  durable(lifecycle: Lifecycle): Promise<void>;
  /** Writes what is pending now and resolves once no write is in flight. */
  drain(): Promise<void>;
}

/** How long a write the store failed waits before it goes out again. */
const RETRY_MS = 200;

/**
 * Group commit: the lifecycles that changed during a tick are written together, in one store write
 * (one transaction), with their audit entries and the notifications they applied. Each write
 * expects the version this engine last wrote; one refused means another writer owns it now.
 */
export function createGroupCommit(options: GroupCommitOptions): GroupCommit {
  const { store, clock, logger, metrics, onConflict, onFlushed } = options;
  let flushScheduled = false;
  let flushing: Promise<void> | undefined;
  const flushListeners: (() => void)[] = [];
  // Only the lifecycles that changed: a flush must not walk every payment in memory.
  const dirty = new Set<Lifecycle>();

  function schedulePersist(lifecycle: Lifecycle): void {
    dirty.add(lifecycle);
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(() => void flush());
  }

  async function flush(): Promise<void> {
    flushScheduled = false;
    if (flushing) await flushing; // one flush at a time, in order
    const now = clock.now();
    const batch: Lifecycle[] = [];
    const writes: LifecycleWrite[] = [];
    for (const lifecycle of dirty) {
      const write = lifecycle.takeWrite(now);
      if (!write) continue;
      batch.push(lifecycle);
      writes.push(write);
    }
    dirty.clear();
    if (batch.length === 0) return notifyFlushed();
    flushing = (async () => {
      const lost: Lifecycle[] = [];
      try {
        const conflicts = await metrics.storeWrite('write', () => store.write(writes));
        const refused = new Set(conflicts.map((c) => c.paymentRequestId));
        batch.forEach((lifecycle, i) => {
          if (refused.has(lifecycle.id)) lost.push(lifecycle);
          else lifecycle.written((writes[i] as LifecycleWrite).record.version);
        });
      } catch (error) {
        // Nothing was written: each write is put back and goes out again shortly. Whatever waits
        // for durability (a cancel, an ack, a settlement) keeps waiting: failing safe.
        logger.error({ err: error }, 'store write failed; retrying');
        batch.forEach((lifecycle, i) => {
          lifecycle.unwritten(writes[i] as LifecycleWrite);
          if (lifecycle.isDirty) dirty.add(lifecycle);
        });
        setTimeout(() => {
          const first = dirty.values().next().value;
          if (first) schedulePersist(first);
        }, RETRY_MS).unref();
      }
      // Outside the try: the store answered, and the other writes of the batch are durable whatever
      // handling a conflict does (it must never make them look unwritten).
      for (const lifecycle of lost) {
        try {
          onConflict(lifecycle);
        } catch (error) {
          logger.error({ err: error, paymentRequestId: lifecycle.id }, 'handling a write conflict failed');
        }
      }
    })();
    await flushing;
    flushing = undefined;
    notifyFlushed();
    onFlushed(batch);
  }

  function notifyFlushed(): void {
    for (const listener of flushListeners.splice(0)) listener();
  }

  async function durable(lifecycle: Lifecycle): Promise<void> {
    // Let the current macrostep's snapshot reach the writer first.
    await new Promise((resolve) => setImmediate(resolve));
    while (lifecycle.phase !== 'gone' && !lifecycle.isDurable) {
      await new Promise<void>((resolve) => flushListeners.push(resolve));
      if (lifecycle.isDirty && !flushScheduled && !flushing) schedulePersist(lifecycle);
    }
    if (lifecycle.phase === 'gone')
      throw new AlipayPlusLifecycleError(
        'LIFECYCLE_STOPPED',
        `lifecycle ${lifecycle.id} was stopped here before its change was durable (another worker owns it, or the engine stopped)`,
      );
  }

  async function drain(): Promise<void> {
    await flush();
    if (flushing) await flushing;
  }

  return { schedulePersist, durable, drain };
}
