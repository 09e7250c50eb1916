import type { LifecycleRecord, SharedLifecycleStore } from '../stores/store.js';
import type { Lifecycle, LifecycleTable } from './lifecycle.js';
import type { Logger } from './logger.js';
import type { Settlement } from './settlement.js';

/** What {@link createScaleOut} needs from the engine. */
export interface ScaleOutOptions {
  logger: Logger;
  /** The lifecycles held here: the ones whose leases this worker renews. */
  lifecycles: LifecycleTable;
  settlement: Pick<Settlement, 'settleAdopted'>;
  applyInbox(lifecycle: Lifecycle): Promise<void>;
  /** The payments with notifications not yet applied (one query). */
  withUnappliedNotifications(): Promise<string[]>;
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
  const { logger, lifecycles, settlement, applyInbox, withUnappliedNotifications, isStopping } = options;
  const background: NodeJS.Timeout[] = [];
  let unlisten: (() => Promise<void>) | undefined;

  async function takeOver(records: LifecycleRecord[], waitForSettlements = true): Promise<void> {
    const resumed: string[] = [];
    const finals: Lifecycle[] = [];
    for (const record of records) {
      const id = record.paymentRequestId;
      if (lifecycles.get(id)) continue;
      if (record.final) {
        if (record.outcome) finals.push(lifecycles.adoptFinal(record));
        continue;
      }
      // One that only waits for a far timer is not restored until then (see lifecycle.ts).
      lifecycles.restore(record, true);
      resumed.push(id);
    }
    const settling = settlement.settleAdopted(finals);
    if (!waitForSettlements)
      settling.catch((error: unknown) => logger.error({ err: error }, 'adopted settlements failed'));
    // A new owner first drains the inbox: notifications that arrived while nobody owned it. One
    // query says which lifecycles have any, rather than one query per lifecycle (100,000 at start).
    // A notification stored after it reaches the lifecycle directly, from the handler.
    if (resumed.length > 0) {
      const waiting = new Set(await withUnappliedNotifications());
      for (const id of resumed) {
        const lifecycle = waiting.has(id) ? lifecycles.held(id) : undefined;
        if (lifecycle) await applyInbox(lifecycle);
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
      const lost = await store.renew([...lifecycles.ids()]);
      for (const id of lost) lifecycles.get(id)?.stop('lease-lost');
    });
    // Adoption a little off the renewal beat, so that workers do not all query at once.
    const adoptNow = every(period + Math.floor(Math.random() * 100), async () =>
      takeOver(await store.adopt(), false),
    );
    // The backstop for a missed LISTEN wake-up.
    every(period * 2, async () => {
      for (const id of await store.ownedWithUnappliedNotifications()) {
        const lifecycle = lifecycles.held(id);
        if (lifecycle) await applyInbox(lifecycle);
      }
    });
    unlisten = await store.listen(
      (id) => {
        const lifecycle = lifecycles.held(id);
        if (lifecycle)
          void applyInbox(lifecycle).catch((error: unknown) => logger.error({ err: error }, 'inbox failed'));
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
