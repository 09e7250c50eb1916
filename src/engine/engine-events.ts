import type { LifecycleOutcome } from '../../machines/outcome.js';
import type { NotifyPaymentRequest } from '../protocol/notify-payment.js';

/** One step of a lifecycle, as written to its audit log (`engine.on('transition')`). */
export interface TransitionEvent {
  paymentRequestId: string;
  from: string;
  to: string;
  event: string;
  code?: string;
  at: number;
}

/** A notification that arrived once it could no longer change the outcome. */
export interface LateNotificationEvent {
  paymentRequestId: string;
  notification: NotifyPaymentRequest;
  /** The state it arrived in: `cancelling...`, or a final state. */
  state: string;
  at: number;
}

/** What the engine emits, by event name: see `engine.on()`. */
export interface EngineEvents {
  transition: [TransitionEvent];
  settled: [LifecycleOutcome];
  attention: [LifecycleOutcome];
  'late-notification': [LateNotificationEvent];
  error: [Error];
}
