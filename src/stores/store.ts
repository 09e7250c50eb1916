import type { LifecycleOutcome } from '../../machines/outcome.js';
import type { LifecycleInput } from '../../machines/policy.js';
import type { NotifyPaymentRequest } from '../protocol/notify-payment.js';

/** One lifecycle as stored: the persisted XState snapshot and what the engine needs around it. */
export interface LifecycleRecord {
  paymentRequestId: string;
  /** Optimistic version: every save must name the version it read. */
  version: number;
  input: LifecycleInput;
  /** The state value as a dotted path, e.g. `awaitingResult.pending`. */
  state: string;
  final: boolean;
  /** `actor.getPersistedSnapshot()`, JSON. */
  snapshot: unknown;
  outcome?: LifecycleOutcome;
  /** Whether `onSettled` / `settled` fired for the outcome. */
  settledFired: boolean;
  createdAt: number;
  updatedAt: number;
}

/** One transition, kept for auditors. */
export interface AuditEntry {
  paymentRequestId: string;
  at: number;
  from: string;
  to: string;
  /** The event that caused it, e.g. `NOTIFIED`, `xstate.done.actor...`, `xstate.after...`. */
  event: string;
  /** The result code that decided it, when there was one. */
  code?: string;
}

/** A verified notification, stored before it is acknowledged. */
export interface StoredNotification {
  id: string;
  paymentRequestId: string;
  receivedAt: number;
  body: NotifyPaymentRequest;
  /** Fed to the lifecycle (or found late and recorded). Unapplied ones are replayed on start and on track. */
  applied: boolean;
}

/** A write the engine hands the store: a lifecycle's new snapshot and the audit entries leading to it. */
export interface LifecycleWrite {
  record: LifecycleRecord;
  /** The version the engine read: the write fails if the stored one differs (another writer won). */
  expectedVersion: number;
  audit: AuditEntry[];
  /** Notifications this write applied. */
  appliedNotifications: string[];
}

/** A write refused because another writer changed the lifecycle first. */
export interface WriteConflict {
  paymentRequestId: string;
  expectedVersion: number;
}

/**
 * Where lifecycles live. Implementations: memory (tests), SQLite (embedded default), PostgreSQL
 * (scale-out). Stores know snapshots, not Alipay+.
 */
export interface LifecycleStore {
  /** Creates tables, applies migrations. Idempotent. */
  open(): Promise<void>;
  close(): Promise<void>;
  load(paymentRequestId: string): Promise<LifecycleRecord | undefined>;
  /** Inserts a new lifecycle; resolves false when it exists already (track is idempotent). */
  insert(record: LifecycleRecord, audit: AuditEntry[]): Promise<boolean>;
  /**
   * Applies writes in one transaction (group commit). Resolves with the writes refused for a version
   * conflict; the others are durable when it resolves.
   */
  write(writes: LifecycleWrite[]): Promise<WriteConflict[]>;
  /** Lifecycles not final, or final with the settlement not yet fired. */
  listResumable(): Promise<LifecycleRecord[]>;
  /** Marks `settledFired` (durably). */
  markSettled(paymentRequestId: string): Promise<void>;
  audit(paymentRequestId: string): Promise<AuditEntry[]>;
  /** Stores a verified notification durably (before it is acknowledged). */
  recordNotification(notification: StoredNotification): Promise<void>;
  unappliedNotifications(paymentRequestId: string): Promise<StoredNotification[]>;
  /** Marks a notification handled without a lifecycle write (it arrived after the outcome was final). */
  markNotificationApplied(id: string): Promise<void>;
  notifications(paymentRequestId: string): Promise<StoredNotification[]>;
  /** Every lifecycle (for `status` and reconciliation); newest first, at most `limit`. */
  list(limit?: number): Promise<LifecycleRecord[]>;
}
