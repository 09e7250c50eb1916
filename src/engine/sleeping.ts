import { wakeAt } from '../../machines/payment-lifecycle.js';
import type { LifecycleRecord, StoredLifecycleInput } from '../stores/store.js';
import type { EngineClock } from './clock.js';
import { type Entry, NOTHING_PENDING, type PaymentView, viewOfRecord } from './lifecycle-entry.js';

/** A lifecycle kept as its snapshot alone, until its timer is due or an event arrives for it. */
interface Sleeper {
  id: string;
  input: StoredLifecycleInput;
  createdAt: number;
  version: number;
  state: string;
  /** The actor's persisted snapshot: what the store holds, or newer only by unwritten RESUMEs. */
  snapshot: unknown;
  /** Read from the store at a start or an adoption: its waking is the restore (audited as RESUME). */
  restored: boolean;
  timer: unknown;
}

/** What {@link createSleeping} needs from the engine. */
export interface SleepingOptions {
  /** The lifecycles held with an actor: a sleeper moves out of it, and back on waking. */
  entries: Map<string, Entry>;
  /** The engine's time: deadlines are on it. */
  clock: EngineClock;
  /**
   * The actors' clock, which admits a due timer only while a call slot is free: a sleeper due while
   * every slot is taken stays asleep until one frees. Waking at the deadline takes the slot at once
   * (RESUME at or past the deadline starts the call), as the actor's own timer would.
   */
  actorClock: EngineClock;
  /** A wait at least this long (engine ms) is slept; `Infinity` keeps every actor. */
  minSleepMs: number;
  /** Restores a lifecycle into `entries`, started and re-armed (its RESUME written only if it moved). */
  resume(record: LifecycleRecord, woken: boolean): Entry;
}

/** Lifecycles that wait without an actor: see {@link createSleeping}. */
export interface Sleeping {
  readonly size: number;
  ids(): IterableIterator<string>;
  has(id: string): boolean;
  /** Lets the entry's actor go if it only waits for a timer that is far enough away. */
  sleep(entry: Entry): void;
  /**
   * At a start or an adoption: a stored lifecycle that only waits is not restored until it is due
   * (one already due is restored as soon as a call slot is free).
   */
  sleepRecord(record: LifecycleRecord): boolean;
  /** The lifecycle with its actor: held already, or woken now; `undefined` if not held here. */
  held(id: string): Entry | undefined;
  /** What `engine.get()` shows of a sleeping lifecycle. */
  view(id: string): PaymentView | undefined;
  /** Forgets a sleeper (its lease was lost, or the engine stops). */
  drop(id: string): void;
  dropAll(): void;
  /** How many sleep in each top-level state (`awaitingResult`, ...): for the in-flight gauge. */
  countByTopState(): Record<string, number>;
}

/**
 * Most lifecycles in flight are waiting: for the next inquiry, or for the notification until
 * expiry. An XState actor costs about 5 KiB of heap and its creation and collection dominate a
 * restart, so a lifecycle whose only next step is a timer at least `minSleepMs` away, and whose
 * every change is durable, is kept as its persisted snapshot, with one timer. At the deadline (or
 * when a notification, a CLOSE or a lease round needs it) it is restored exactly as a restart
 * restores it: the same snapshot, the same RESUME. Nothing is written for the sleep or the waking.
 */
export function createSleeping(options: SleepingOptions): Sleeping {
  const { entries, clock, actorClock, minSleepMs, resume } = options;
  const sleepers = new Map<string, Sleeper>();

  function put(sleeper: Omit<Sleeper, 'timer'>, until: number): void {
    const slept = sleeper as Sleeper;
    slept.timer = actorClock.setTimeout(() => wake(slept.id), until - clock.now());
    sleepers.set(slept.id, slept);
  }

  function sleep(entry: Entry): void {
    if (!(minSleepMs < Number.POSITIVE_INFINITY)) return;
    if (entry.stopped || entry.settling || entry.dirty || entry.durableVersion !== entry.version) return;
    // Anything not yet written (audit entries, applied notifications) stays with the actor.
    if (entry.audit !== NOTHING_PENDING || entry.appliedNotifications !== NOTHING_PENDING) return;
    if (entry.input.payRequest !== undefined) return;
    const snapshot = entry.lastSnapshot ?? entry.actor.getSnapshot();
    if (snapshot.status !== 'active') return;
    const until = wakeAt(entry.state, snapshot.context);
    if (until === undefined || until - clock.now() < minSleepMs) return;
    const persisted = entry.actor.getPersistedSnapshot();
    entry.stopped = true;
    entries.delete(entry.id);
    entry.actor.stop();
    put(
      {
        id: entry.id,
        input: entry.input,
        createdAt: entry.createdAt,
        version: entry.version,
        state: entry.state,
        snapshot: persisted,
        restored: false,
      },
      until,
    );
  }

  function sleepRecord(record: LifecycleRecord): boolean {
    if (!(minSleepMs < Number.POSITIVE_INFINITY) || record.final || record.input.payRequest !== undefined)
      return false;
    const context = (record.snapshot as { context?: Parameters<typeof wakeAt>[1] }).context;
    const until = context && wakeAt(record.state, context);
    // Whatever its deadline: one that has passed (the process was down, or behind) wakes as soon as
    // a call slot is free, through the admitting clock, rather than all of them inside start().
    if (until === undefined) return false;
    put(
      {
        id: record.paymentRequestId,
        input: record.input,
        createdAt: record.createdAt,
        version: record.version,
        state: record.state,
        snapshot: record.snapshot,
        restored: true,
      },
      until,
    );
    return true;
  }

  function recordOf(sleeper: Sleeper): LifecycleRecord {
    return {
      paymentRequestId: sleeper.id,
      version: sleeper.version,
      input: sleeper.input,
      state: sleeper.state,
      final: false,
      snapshot: sleeper.snapshot,
      settledFired: false,
      createdAt: sleeper.createdAt,
      updatedAt: 0,
    };
  }

  function wake(id: string): Entry | undefined {
    const sleeper = sleepers.get(id);
    if (!sleeper) return undefined;
    sleepers.delete(id);
    actorClock.clearTimeout(sleeper.timer);
    return resume(recordOf(sleeper), !sleeper.restored);
  }

  function drop(id: string): void {
    const sleeper = sleepers.get(id);
    if (!sleeper) return;
    sleepers.delete(id);
    actorClock.clearTimeout(sleeper.timer);
  }

  return {
    get size() {
      return sleepers.size;
    },
    ids: () => sleepers.keys(),
    has: (id) => sleepers.has(id),
    sleep,
    sleepRecord,
    held: (id) => entries.get(id) ?? wake(id),
    view(id) {
      const sleeper = sleepers.get(id);
      return sleeper && viewOfRecord(recordOf(sleeper));
    },
    drop,
    dropAll() {
      for (const id of [...sleepers.keys()]) drop(id);
    },
    countByTopState() {
      // Counted by full state first: a handful of distinct strings, so no slicing per sleeper.
      const byState = new Map<string, number>();
      for (const { state } of sleepers.values()) byState.set(state, (byState.get(state) ?? 0) + 1);
      const counts: Record<string, number> = {};
      for (const [state, n] of byState) {
        const dot = state.indexOf('.');
        const top = dot < 0 ? state : state.slice(0, dot);
        counts[top] = (counts[top] ?? 0) + n;
      }
      return counts;
    },
  };
}
