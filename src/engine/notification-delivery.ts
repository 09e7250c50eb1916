import type { EventEmitter } from 'node:events';
import type { LifecycleStore, StoredNotification } from '../stores/store.js';
import type { EngineClock } from './clock.js';
import type { LateNotificationEvent } from './engine-events.js';
import type { Lifecycle, LifecycleTable } from './lifecycle.js';
import type { Logger } from './logger.js';
import type { EngineMetrics } from './metrics.js';

/** What {@link createNotificationDelivery} needs from the engine. */
export interface NotificationDeliveryOptions {
  store: LifecycleStore;
  clock: EngineClock;
  logger: Logger;
  emitter: EventEmitter;
  /** The lifecycles held here: a notification goes to its own (a sleeping one is woken). */
  lifecycles: Pick<LifecycleTable, 'get' | 'held'>;
  /** Resolves once everything the lifecycle did so far is durable (group commit). */
  durable(lifecycle: Lifecycle): Promise<void>;
  /** Counts each notification by verdict: applied, duplicate or late. */
  metrics: Pick<EngineMetrics, 'notification'>;
}

/** Feeds stored notifications to their lifecycles: see {@link createNotificationDelivery}. */
export interface NotificationDelivery {
  /** Feeds the lifecycle every notification stored for it and not yet applied. */
  applyInbox(lifecycle: Lifecycle): Promise<void>;
  /** Feeds one stored notification to its lifecycle, or records it as late if the outcome is final. */
  deliverNotification(notification: StoredNotification): Promise<void>;
}

/**
 * Notifications, once stored, reach their lifecycle here: applied once, and durable (with the
 * lifecycle's reaction) before the caller acknowledges. One for a final lifecycle is late; one for
 * an unknown payment waits in the inbox.
 */
export function createNotificationDelivery(options: NotificationDeliveryOptions): NotificationDelivery {
  const { store, clock, logger, emitter, lifecycles, durable, metrics } = options;

  async function applyInbox(lifecycle: Lifecycle): Promise<void> {
    for (const notification of await store.unappliedNotifications(lifecycle.id))
      await deliverNotification(notification);
  }

  async function deliverNotification(notification: StoredNotification): Promise<void> {
    const id = notification.paymentRequestId;
    const held = lifecycles.get(id);
    const lifecycle = held && !held.isFinal ? lifecycles.held(id) : undefined;
    if (lifecycle) {
      // One that arrives while cancelling (or later) is kept by the machine as late: it decides nothing.
      metrics.notification(lifecycle.notify(notification.id, notification.body, clock.now()));
      await durable(lifecycle).catch(() => undefined);
      return;
    }
    const stored = held?.isFinal ? undefined : await store.load(id);
    const finalState = held?.isFinal ? held.state : stored?.final ? stored.state : undefined;
    if (finalState) {
      metrics.notification((await alreadyApplied(notification, held)) ? 'duplicate' : 'late');
      // Late: the outcome is final and stays so. Recorded, acknowledged, reported.
      await store.markNotificationApplied(notification.id);
      emitter.emit('late-notification', {
        paymentRequestId: id,
        notification: notification.body,
        state: finalState,
        at: clock.now(),
      } satisfies LateNotificationEvent);
      logger.info({ paymentRequestId: id }, 'late notification recorded');
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
    lifecycle: Lifecycle | undefined,
  ): Promise<boolean> {
    if (lifecycle?.hasSeen(notification.id)) return true;
    const stored = await store.notifications(notification.paymentRequestId);
    return stored.some((n) => n.id === notification.id && n.applied);
  }

  return { applyInbox, deliverNotification };
}
