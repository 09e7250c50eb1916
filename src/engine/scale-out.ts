import type { LifecycleRecord, SharedLifecycleStore } from '../stores/store.js';
import type { Entry } from './lifecycle-entry.js';
import type { Logger } from './logger.js';
import type { Settlement } from './settlement.js';
import type { Sleeping } from './sleeping.js';

/** What {@link createScaleOut} needs from the engine. */
export interface ScaleOutOptions {
  logger: Logger;
  /** The lifecycles held in memory: the ones whose leases this worker renews. */
  entries: ReadonlyMap<string, Entry>;
  /** The lifecycles held here without an actor: their leases are renewed too. */
  sleeping: Pick<Sleeping, 'ids' | 'has' | 'sleepRecord' | 'held' | 'drop'>;
  settlement: Pick<Settlement, 'settleAdopted' | 'settlingIds' | 'drop'>;
  /** Restores a stored lifecycle into `entries`, started and re-armed. */
  resume(record: LifecycleRecord): Entry;
  applyInbox(entry: Entry): Promise<void>;
  /** The payments with notifications not yet applied (one query). */
  withUnappliedNotifications(): Promise<string[]>;
  /** Lets go of a lifecycle another worker owns now. */
  stopEntry(entry: Entry): void;
  /** The engine is stopping: no round starts any more. */
  isStopping(): boolean;
}

/** Taking lifecycles over and the scale-out rounds: see {@link createScaleOut}. */
export interface ScaleOut {
  /**
   * Resumes lifecycles this engine now owns (at start, or adopted from a dead worker) and fires the
   * settlements of the final ones. `start()` waits for those settlements; an adoption round does not:
   * they queue behind this worker's own, and the next round must not wait for them.
   */
  takeOver(records: LifecycleRecord[], waitForSettlements?: boolean): Promise<void>;
  /** Starts the rounds: lease renewal, adoption, the inbox backstop, and LISTEN. */
  startSharing(store: SharedLifecycleStore): Promise<void>;
  /** Stops the rounds (the LISTEN goes on until {@link ScaleOut.stopListening}). */
  stopRounds(): void;
  stopListening(): Promise<void>;
}

/**
 * Sharing lifecycles between workers over a shared store: leases renewed, a dead worker's
 * lifecycles adopted, notifications routed to the owner by LISTEN (with a polling backstop).
 */
export function createScaleOut(options: ScaleOutOptions): ScaleOut {
  const {
    logger,
    entries,
    sleeping,
    settlement,
    resume,
    applyInbox,
    withUnappliedNotifications,
    stopEntry,
    isStopping,
  } = options;
  const background: NodeJS.Timeout[] = [];
  let unlisten: (() => Promise<void>) | undefined;

  async function takeOver(records: LifecycleRecord[], waitForSettlements = true): Promise<void> {
    const resumed: string[] = [];
    for (const record of records) {
      const id = record.paymentRequestId;
      if (record.final || entries.has(id) || sleeping.has(id)) continue;
      // One that only waits for a far timer is not restored until then (see sleeping.ts).
      if (!sleeping.sleepRecord(record)) resume(record);
      resumed.push(id);
    }
    const settling = settlement.settleAdopted(records.filter((record) => record.final && record.outcome));
    if (!waitForSettlements)
      settling.catch((error: unknown) => logger.error({ err: error }, 'adopted settlements failed'));
    // A new owner first drains the inbox: notifications that arrived while nobody owned it. One
    // query says which lifecycles have any, rather than one query per lifecycle (100,000 at start).
    // A notification stored after it reaches the lifecycle directly, from the handler.
    if (resumed.length > 0) {
      const waiting = new Set(await withUnappliedNotifications());
      for (const id of resumed) {
        const entry = waiting.has(id) ? sleeping.held(id) : undefined;
        if (entry) await applyInbox(entry);
      }
    }
    if (waitForSettlements) await settling;
  }

  /** Leases, adoption and notification routing, on real time (not the engine's clock). */
  async function startSharing(store: SharedLifecycleStore): Promise<void> {
    /** Runs `task` every `ms`, never two at once; the function returned runs it now as well. */
    const every = (ms: number, task: () => Promise<void>) => {
      let running = false;
      let again = false;
      const run = () => {
        if (isStopping()) return;
        if (running) {
          again = true; // asked for while running: once more right after
          return;
        }
        running = true;
        again = false;
        task()
          .catch((error: unknown) => logger.error({ err: error }, 'scale-out task failed'))
          .finally(() => {
            running = false;
            if (again) run();
          });
      };
      const timer = setInterval(run, ms);
      timer.unref();
      background.push(timer);
      return run;
    };
    const period = Math.max(200, Math.floor(store.leaseMs / 3));
    every(period, async () => {
      const lost = await store.renew([...entries.keys(), ...sleeping.ids(), ...settlement.settlingIds]);
      for (const id of lost) {
        settlement.drop(id);
        sleeping.drop(id);
        const entry = entries.get(id);
        if (entry) {
          logger.warn({ paymentRequestId: id }, 'lease lost; another worker owns this lifecycle now');
          stopEntry(entry);
        }
      }
    });
    // Adoption a little off the renewal beat, so that workers do not all query at once.
    const adoptNow = every(period + Math.floor(Math.random() * 100), async () =>
      takeOver(await store.adopt(), false),
    );
    // The backstop for a missed LISTEN wake-up.
    every(period * 2, async () => {
      for (const id of await store.ownedWithUnappliedNotifications()) {
        const entry = sleeping.held(id);
        if (entry) await applyInbox(entry);
      }
    });
    unlisten = await store.listen(
      (id) => {
        const entry = sleeping.held(id);
        if (entry)
          void applyInbox(entry).catch((error: unknown) => logger.error({ err: error }, 'inbox failed'));
      },
      // A worker drained: its lifecycles have no owner and no lease, so they are adopted at once.
      adoptNow,
    );
  }

  function stopRounds(): void {
    for (const timer of background.splice(0)) clearInterval(timer);
  }

  async function stopListening(): Promise<void> {
    await unlisten?.();
    unlisten = undefined;
  }

  return { takeOver, startSharing, stopRounds, stopListening };
}
