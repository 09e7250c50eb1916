export type {
  NotificationHandler,
  NotificationHandlerOptions,
  NotificationRequest,
  NotificationResponse,
} from '../notifications/notification-handler.js';
export { type EngineClock, scaledClock, systemClock } from './clock.js';
export { type Logger, redact, silentLogger } from './logger.js';
export { DEFAULT_MAX_PAY_EXPIRY_MS } from './pay-input.js';
export {
  createPaymentEngine,
  type EngineEvents,
  type LateNotificationEvent,
  type PaymentEngine,
  type PaymentEngineOptions,
  type PaymentView,
  type PayOptions,
  type TransitionEvent,
} from './payment-engine.js';
export { TrackInput } from './track-input.js';
