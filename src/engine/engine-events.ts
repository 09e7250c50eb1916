import type { AttentionReason, LifecycleOutcome } from '../../machines/outcome.js';
import type { NotifyPaymentRequest } from '../protocol/notify-payment.js';
import type { AttentionResolution } from '../stores/store.js';

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

/** A person's resolution of an attention item, once it is durable (`engine.resolve()`). */
export interface AttentionResolvedEvent extends AttentionResolution {
  /** Why the lifecycle had asked for a person; the outcome itself is unchanged. */
  reason: AttentionReason;
}

/** What the engine emits, by event name: see `engine.on()`. */
/** The incident brake engaged or released (see `brake` in the engine's options). */
export interface BrakeEvent {
  engaged: boolean;
  /** Answers counted in the brake's window, and how many of them were overload signs. */
  window: { calls: number; overload: number };
  at: number;
}

export interface EngineEvents {
  brake: [BrakeEvent];
  transition: [TransitionEvent];
  settled: [LifecycleOutcome];
  attention: [LifecycleOutcome];
  'late-notification': [LateNotificationEvent];
  'attention-resolved': [AttentionResolvedEvent];
  error: [Error];
}
