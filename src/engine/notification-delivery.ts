import type { EventEmitter } from 'node:events';
import type { LifecycleEvent } from '../../machines/payment-lifecycle.js';
import type { LifecycleStore, StoredNotification } from '../stores/store.js';
import type { EngineClock } from './clock.js';
import type { LateNotificationEvent } from './engine-events.js';
import { type Entry, pending } from './lifecycle-entry.js';
import type { Logger } from './logger.js';
import type { EngineMetrics } from './metrics.js';

/** What {@link createNotificationDelivery} needs from the engine. */
export interface NotificationDeliveryOptions {
  store: LifecycleStore;
  clock: EngineClock;
  logger: Logger;
  emitter: EventEmitter;
  /** The lifecycle held here, with its actor (a sleeping one is woken): a notification goes to it. */
  held(id: string): Entry | undefined;
  send(entry: Entry, event: LifecycleEvent): void;
  /** Resolves once everything the entry did so far is durable (group commit). */
  durable(entry: Entry): Promise<void>;
  /** Counts each notification by verdict: applied, duplicate or late. */
  metrics: Pick<EngineMetrics, 'notification'>;
}

/** Feeds stored notifications to their lifecycles: see {@link createNotificationDelivery}. */
export interface NotificationDelivery {
  /** Feeds the lifecycle every notification stored for it and not yet applied. */
  applyInbox(entry: Entry): Promise<void>;
  /** Feeds one stored notification to its lifecycle, or records it as late if the outcome is final. */
  deliverNotification(notification: StoredNotification): Promise<void>;
}

/**
 * Notifications, once stored, reach their lifecycle here: applied once, and durable (with the
 * lifecycle's reaction) before the caller acknowledges. One for a final lifecycle is late; one for
 * an unknown payment waits in the inbox.
 */
export function createNotificationDelivery(options: NotificationDeliveryOptions): NotificationDelivery {
  const { store, clock, logger, emitter, held, send, durable, metrics } = options;

  async function applyInbox(entry: Entry): Promise<void> {
    for (const notification of await store.unappliedNotifications(entry.id))
      await deliverNotification(notification);
  }

  async function deliverNotification(notification: StoredNotification): Promise<void> {
    const entry = held(notification.paymentRequestId);
    if (entry && !entry.stopped && entry.lastSnapshot?.status !== 'done') {
      // The handler and an inbox drain can race for the same notification: apply it once.
      entry.seenNotifications ??= new Set();
      if (entry.seenNotifications.has(notification.id)) {
        metrics.notification('duplicate');
        return;
      }
      entry.seenNotifications.add(notification.id);
      entry.appliedNotifications = pending(entry.appliedNotifications, notification.id);
      const lateBefore = lateCount(entry);
      send(entry, { type: 'NOTIFIED', notification: notification.body, at: clock.now() });
      // One that arrives while cancelling (or later) is kept by the machine as late: it decides nothing.
      metrics.notification(lateCount(entry) > lateBefore ? 'late' : 'applied');
      await durable(entry).catch(() => undefined);
      return;
    }
    const stored = entry ? undefined : await store.load(notification.paymentRequestId);
    const finalState =
      entry?.lastSnapshot?.status === 'done' ? entry.state : stored?.final ? stored.state : undefined;
    if (finalState) {
      metrics.notification((await alreadyApplied(notification, entry)) ? 'duplicate' : 'late');
      // Late: the outcome is final and stays so. Recorded, acknowledged, reported.
      await store.markNotificationApplied(notification.id);
      emitter.emit('late-notification', {
        paymentRequestId: notification.paymentRequestId,
        notification: notification.body,
        state: finalState,
        at: clock.now(),
      } satisfies LateNotificationEvent);
      logger.info({ paymentRequestId: notification.paymentRequestId }, 'late notification recorded');
    }
    // Unknown payment: it waits in the inbox until `track` arrives.
  }

  /**
   * Whether this very notification was applied before (Alipay+ sends it again until acked, and a
   * repeat may come after the outcome it decided): then it is a duplicate, not a late one. Asked
   * only for a notification whose outcome is final; the store knows it after a restart too.
   */
  async function alreadyApplied(
    notification: StoredNotification,
    entry: Entry | undefined,
  ): Promise<boolean> {
    if (entry?.seenNotifications?.has(notification.id)) return true;
    const stored = await store.notifications(notification.paymentRequestId);
    return stored.some((n) => n.id === notification.id && n.applied);
  }

  return { applyInbox, deliverNotification };
}

function lateCount(entry: Entry): number {
  return (entry.lastSnapshot ?? entry.actor.getSnapshot()).context.lateNotifications.length;
}
