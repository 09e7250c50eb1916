// The package's public API, named one by one: what is not listed here is internal and may change in
// any release. `etc/*.api.md` is the report of this surface; test/package.test.ts fails when the
// surface changes and the report was not updated (`npm run api:update`).
//
// Importing this module loads no database driver: better-sqlite3 loads when the first SQLite store
// is created, and the PostgreSQL store lives in `alipayplus-lifecycle/postgres`, with `pg` as an
// optional peer dependency.

export type { DecisionSketch } from '../machines/decision-model.js';
// The statechart and its decision table, for the inspector, the visualizer and reading outcomes.
export {
  CANCEL_TABLE,
  classifyInquiry,
  classifyPay,
  type DecisionRow,
  INQUIRY_DECISION_TABLE,
  type InquiryRowId,
  NOTIFICATION_TABLE,
  PAY_DECISION_TABLE,
  type PayDecisionRow,
  type PayRowId,
  type PayRowTarget,
  REFUND_TABLE,
  type RowTarget,
  WINDOW_CLOSED_TABLE,
} from '../machines/decision-table.js';
export {
  type AttentionReason,
  type CancelReason,
  type DecidedBy,
  FINAL_STATUSES,
  type FinalStatus,
  IN_FLIGHT_STATES,
  type InFlightState,
  type LateNotification,
  type LifecycleOutcome,
  type PaymentDetails,
  type RefundDetails,
} from '../machines/outcome.js';
export {
  type CallInput,
  type CallResult,
  type InquiryPurpose,
  type LifecycleContext,
  type LifecycleEvent,
  type LifecycleTag,
  type PayCallInput,
  type PaymentLifecycleMachine,
  paymentLifecycleMachine,
  type RefundCallInput,
} from '../machines/payment-lifecycle.js';
export type { LifecycleInput, LifecyclePolicyInput, ResolvedPolicy } from '../machines/policy.js';
export { refundRequestIdFor } from '../machines/refund-request-id.js';
// The signed Alipay+ client, usable alone.
export {
  type AlipayPlusClient,
  type AlipayPlusClientOptions,
  API_PATHS,
  type ApiName,
  type CallOptions,
  createAlipayPlusClient,
} from './client/alipayplus-client.js';
export type {
  CancelAnswer,
  CancelOutcome,
  InquiryAnswer,
  InquiryOutcome,
  NoResult,
  NoResultReason,
  PayAnswer,
  PayOutcome,
  RefundAnswer,
  RefundOutcome,
} from './client/answers.js';
export {
  createKeyRing,
  type KeyOptions,
  type KeyRing,
  type KeyRingOptions,
  type KeyRingStatus,
  type SigningKey,
  type SigningKeyInput,
} from './client/key-ring.js';
export type { KeyInput } from './client/keys.js';
export { keyFingerprint, type PublicKeyEntryInput, type PublicKeyStatus } from './client/public-key-set.js';
// Signing by hand, for "signature verify fails" and for answers built outside the library.
export {
  buildSignatureHeader,
  buildSignContent,
  parseSignatureHeader,
  SIGNATURE_ALGORITHM,
  type SignatureHeader,
  type SignedParts,
  signContent,
  signContentAsync,
  verifyContent,
  verifyContentAsync,
} from './client/signature.js';
export { lifecycleJson, lifecycleMermaid } from './diagram.js';
// The engine: one lifecycle per payment, from before `pay` to its final outcome.
export type { AttentionView, ResolveAttentionInput } from './engine/attention.js';
export type { Admission, CallApi, CallUrgency, RateCap } from './engine/call-limiter.js';
export type { AttentionResolvedEvent, BrakeEvent } from './engine/engine-events.js';
export type { BrakeOptions } from './engine/incident-brake.js';
export {
  createPaymentEngine,
  DEFAULT_MAX_PAY_EXPIRY_MS,
  type EngineClock,
  type EngineEvents,
  type LateNotificationEvent,
  type Logger,
  type PaymentEngine,
  type PaymentEngineOptions,
  type PaymentView,
  type PayOptions,
  scaledClock,
  silentLogger,
  systemClock,
  type TrackInput,
  type TransitionEvent,
} from './engine/index.js';
export {
  ENGINE_METRICS,
  type EngineMetricDescription,
  METER_NAME,
  type NotificationVerdict,
} from './engine/metrics.js';
export {
  AlipayPlusLifecycleError,
  type ErrorCode,
  KeyError,
  ValidationError,
} from './errors.js';
export type {
  NotificationHandler,
  NotificationHandlerOptions,
  NotificationRequest,
  NotificationResponse,
} from './notifications/notification-handler.js';
// The wire format (spec): the types of what is sent and answered, and the result-code catalog.
export type { CancelPaymentResponse } from './protocol/cancel-payment.js';
export {
  type Amount,
  MAX_ID_LENGTH,
  type PaymentRef,
  type Result,
  type ResultStatus,
  type SettlementQuote,
} from './protocol/common.js';
export type { InquiryPaymentResponse, Transaction } from './protocol/inquiry-payment.js';
export type { NotifyPaymentRequest } from './protocol/notify-payment.js';
export {
  type OrderCodeForm,
  PAY_MODES,
  type PayMode,
  type PayRequest,
  type PayRequestInput,
  type PayResponse,
} from './protocol/pay.js';
export type { RefundRequest, RefundRequestInput, RefundResponse } from './protocol/refund.js';
export {
  lookupResultCode,
  RESULT_CODES,
  type ResultAction,
  type ResultCodeEntry,
  type ResultCodeLookup,
  type ResultScope,
} from './protocol/result-codes.js';
// The stores that need no server. PostgreSQL: `alipayplus-lifecycle/postgres`.
export { memoryStore } from './stores/memory-store.js';
export { DEFAULT_SQLITE_PATH, type SqliteStoreOptions, sqliteStore } from './stores/sqlite-store.js';
export {
  ATTENTION_ACTIONS,
  type AttentionAction,
  type AttentionItem,
  type AttentionResolution,
  type AuditEntry,
  type LifecycleRecord,
  type LifecycleStore,
  type LifecycleWrite,
  type ResolveAttentionResult,
  type SharedLifecycleStore,
  type StoredLifecycleInput,
  type StoredNotification,
  type WriteConflict,
} from './stores/store.js';
