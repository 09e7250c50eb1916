import { AlipayPlusLifecycleError } from '../errors.js';
import type { LifecycleRecord, LifecycleStore, LifecycleWrite } from '../stores/store.js';
import type { EngineClock } from './clock.js';
import { type Entry, NOTHING_PENDING, stateString } from './lifecycle-entry.js';
import type { Logger } from './logger.js';
import type { EngineMetrics } from './metrics.js';

/** What {@link createGroupCommit} needs from the engine. */
export interface GroupCommitOptions {
  store: LifecycleStore;
  clock: EngineClock;
  logger: Logger;
  /** The lifecycles held in memory: a write's answer applies to the one held when it comes. */
  entries: ReadonlyMap<string, Entry>;
  metrics: Pick<EngineMetrics, 'storeWrite'>;
  /** The store refused a write: another writer changed the lifecycle since this one read it. */
  onConflict(entry: Entry): void;
  /** A batch was written, or put back to be retried (what became durable shows in its entries). */
  onFlushed(batch: Entry[]): void;
}

/** Persistence, batched per tick: see {@link createGroupCommit}. */
export interface GroupCommit {
  /** Marks the entry changed; its write goes out with the next flush. */
  schedulePersist(entry: Entry): void;
  /** Resolves once everything this entry did so far is durable. */
  durable(entry: Entry): Promise<void>;
  /** Writes what is pending now and resolves once no write is in flight. */
  drain(): Promise<void>;
}

/**
 * Group commit: the lifecycles that changed during a tick are written together, in one store write
 * (one transaction), with their audit entries and the notifications they applied. Each write
 * expects the version this engine last wrote; one refused means another writer owns it now.
 */
export function createGroupCommit(options: GroupCommitOptions): GroupCommit {
  const { store, clock, logger, entries, metrics, onConflict, onFlushed } = options;
  let flushScheduled = false;
  let flushing: Promise<void> | undefined;
  const flushListeners: (() => void)[] = [];
  // Only the payments that changed: a flush must not walk every payment in memory.
  const dirty = new Set<Entry>();

  function schedulePersist(entry: Entry): void {
    entry.dirty = true;
    dirty.add(entry);
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(() => void flush());
  }

  async function flush(): Promise<void> {
    flushScheduled = false;
    if (flushing) await flushing; // one flush at a time, in order
    const batch = [...dirty].filter((e) => e.dirty && !e.stopped);
    dirty.clear();
    if (batch.length === 0) return notifyFlushed();
    const writes: LifecycleWrite[] = batch.map((entry) => {
      const write: LifecycleWrite = {
        record: recordOf(entry, entry.version + 1, clock.now()),
        expectedVersion: entry.version,
        audit: entry.audit,
        appliedNotifications: entry.appliedNotifications,
      };
      entry.version += 1;
      entry.dirty = false;
      entry.audit = NOTHING_PENDING;
      entry.appliedNotifications = NOTHING_PENDING;
      return write;
    });
    flushing = (async () => {
      let lost: Entry[] = [];
      try {
        const conflicts = await metrics.storeWrite('write', () => store.write(writes));
        const refused = new Set(conflicts.map((c) => c.paymentRequestId));
        for (const write of writes) {
          const entry = entries.get(write.record.paymentRequestId);
          if (!entry) continue;
          if (refused.has(entry.id)) lost.push(entry);
          else entry.durableVersion = Math.max(entry.durableVersion, write.record.version);
        }
      } catch (error) {
        lost = [];
        // Nothing was written: put the writes back and try again shortly. Whatever waits for
        // durability (a cancel, an ack, a settlement) keeps waiting: failing safe.
        logger.error({ err: error }, 'store write failed; retrying');
        for (const write of writes) {
          const entry = entries.get(write.record.paymentRequestId);
          if (!entry) continue;
          entry.version = write.expectedVersion;
          entry.audit = [...write.audit, ...entry.audit];
          entry.appliedNotifications = [...write.appliedNotifications, ...entry.appliedNotifications];
          entry.dirty = true;
          dirty.add(entry);
        }
        setTimeout(() => schedulePersistAll(), 200).unref();
      }
      // Outside the try: the store answered, and the other writes of the batch are durable whatever
      // handling a conflict does (it must never make them look unwritten).
      for (const entry of lost) {
        try {
          onConflict(entry);
        } catch (error) {
          logger.error({ err: error, paymentRequestId: entry.id }, 'handling a write conflict failed');
        }
      }
    })();
    await flushing;
    flushing = undefined;
    notifyFlushed();
    onFlushed(batch);
  }

  function schedulePersistAll(): void {
    const first = dirty.values().next().value;
    if (first) schedulePersist(first);
  }

  function notifyFlushed(): void {
    for (const listener of flushListeners.splice(0)) listener();
  }

  async function durable(entry: Entry): Promise<void> {
    // Let the current macrostep's snapshot reach the writer first.
    await new Promise((resolve) => setImmediate(resolve));
    while (!entry.stopped && (entry.dirty || entry.durableVersion < entry.version)) {
      await new Promise<void>((resolve) => flushListeners.push(resolve));
      if (entry.dirty && !flushScheduled && !flushing) schedulePersist(entry);
    }
    if (entry.stopped)
      throw new AlipayPlusLifecycleError(
        'LIFECYCLE_STOPPED',
        `lifecycle ${entry.id} was stopped here before its change was durable (another worker owns it, or the engine stopped)`,
      );
  }

  async function drain(): Promise<void> {
    await flush();
    if (flushing) await flushing;
  }

  return { schedulePersist, durable, drain };
}

/** The stored form of an entry's current snapshot, as its write `version`. */
export function recordOf(entry: Entry, version: number, updatedAt: number): LifecycleRecord {
  const snapshot = entry.lastSnapshot ?? entry.actor.getSnapshot();
  const record: LifecycleRecord = {
    paymentRequestId: entry.id,
    version,
    input: entry.input,
    state: stateString(snapshot.value),
    final: snapshot.status === 'done',
    snapshot: entry.actor.getPersistedSnapshot(),
    settledFired: false,
    createdAt: entry.createdAt,
    updatedAt,
  };
  if (snapshot.output) record.outcome = snapshot.output;
  return record;
}
