import type { DecisionSketch } from '../../machines/decision-model.js';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import type { LifecycleInput } from '../../machines/policy.js';
import type { NotifyPaymentRequest } from '../protocol/notify-payment.js';

/** A lifecycle's input as stored: the machine's input, and the exact pay request when engine.pay started it. */
export type StoredLifecycleInput = LifecycleInput & {
  /** The exact `pay` body, stored before it was first signed; a re-send sends exactly it. */
  payRequest?: Record<string, unknown>;
};

/** One lifecycle as stored: the persisted XState snapshot and what the engine needs around it. */
export interface LifecycleRecord {
  paymentRequestId: string;
  /** Optimistic version: every save must name the version it read. */
  version: number;
  /** Written once, at insert. */
  input: StoredLifecycleInput;
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

/** An `audit_log` row as both SQL stores select it (`at` comes back as text from PostgreSQL's bigint). */
export interface AuditRow {
  at: number | string;
  from_state: string;
  to_state: string;
  event: string;
  code: string | null;
}

export function auditEntryOf(paymentRequestId: string, row: AuditRow): AuditEntry {
  const entry: AuditEntry = {
    paymentRequestId,
    at: Number(row.at),
    from: row.from_state,
    to: row.to_state,
    event: row.event,
  };
  if (row.code !== null) entry.code = row.code;
  return entry;
}

/** What a person may record having done about a lifecycle that ended in `attention`. */
export const ATTENTION_ACTIONS = [
  'refunded-by-hand',
  'confirmed-paid',
  'confirmed-unpaid',
  'cancelled-by-hand',
  'other',
] as const;
export type AttentionAction = (typeof ATTENTION_ACTIONS)[number];

/**
 * What a person did about an `attention` outcome. It is kept beside the lifecycle, never in it: the
 * outcome and the snapshot stay exactly as the lifecycle decided them.
 */
export interface AttentionResolution {
  paymentRequestId: string;
  action: AttentionAction;
  note: string;
  /** Who did it, as they gave it. */
  by: string;
  /** Epoch ms, from the engine's clock. */
  at: number;
}

/** A final lifecycle whose outcome is `attention`, with its resolution once somebody recorded one. */
export interface AttentionItem {
  record: LifecycleRecord;
  resolution?: AttentionResolution;
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
  /**
   * The payments that have notifications not yet applied, in one query: `start()` and adoption drain
   * the inbox of those alone, instead of asking once per resumed lifecycle.
   */
  withUnappliedNotifications(): Promise<string[]>;
  /** Marks a notification handled without a lifecycle write (it arrived after the outcome was final). */
  markNotificationApplied(id: string): Promise<void>;
  /**
   * Unapplied notifications of lifecycles that are final: late ones whose handling a crash cut short.
   * `start()` records and reports them.
   */
  unappliedOfFinal(): Promise<StoredNotification[]>;
  notifications(paymentRequestId: string): Promise<StoredNotification[]>;
  /** Every lifecycle (for `status` and reconciliation); newest first, at most `limit`. */
  list(limit?: number): Promise<LifecycleRecord[]>;
  /** Final lifecycles whose outcome is `attention`, oldest decision first; open ones only unless `all`. */
  attentionItems(options?: { all?: boolean }): Promise<AttentionItem[]>;
  /** Records the resolution and its audit entry in one transaction; anything but 'resolved' wrote nothing. */
  resolveAttention(
    resolution: AttentionResolution,
    audit: AuditEntry,
  ): Promise<'resolved' | 'unknown' | 'not-attention' | 'already-resolved'>;
  /** How many lifecycles are in each state (final ones under their status, e.g. 'succeeded'), in one query. */
  stateCounts(): Promise<Record<string, number>>;
  /**
   * The adaptive schedule's learned decision-delay sketches, by wallet key ('' is every wallet
   * together), all of them or those of `walletKeys`. A stored value that is not a sketch of the
   * current layout is left out.
   */
  decisionSketches(walletKeys?: readonly string[]): Promise<Map<string, DecisionSketch>>;
  /**
   * Each stored sketch's revision, by wallet key: a number that grows with every merge of that
   * wallet, so that a reader fetches again only the sketches that changed.
   */
  decisionSketchRevisions(): Promise<Map<string, number>>;
  /**
   * Adds `newer` (observations made since this worker last merged) to a wallet's stored sketch, in one
   * atomic step against other workers, and returns the merged sketch. A missing or foreign stored value
   * counts as empty.
   */
  mergeDecisionSketch(walletKey: string, newer: DecisionSketch): Promise<DecisionSketch>;
}

/** What {@link LifecycleStore.resolveAttention} answers. */
export type ResolveAttentionResult = Awaited<ReturnType<LifecycleStore['resolveAttention']>>;

/**
 * What a store adds when several engine processes share it (PostgreSQL): ownership with leases and
 * fencing, adoption of a dead worker's lifecycles, and notification routing to the owner. The engine
 * uses these when they are present, and treats every lifecycle as its own when they are not.
 */
export interface SharedLifecycleStore extends LifecycleStore {
  readonly workerId: string;
  readonly leaseMs: number;
  /** Takes ownership of one lifecycle if nobody holds a live lease on it; resolves with it then. */
  acquire(paymentRequestId: string): Promise<LifecycleRecord | undefined>;
  /** Renews every lease this worker holds, in one statement; resolves with the IDs it no longer owns. */
  renew(owned: readonly string[]): Promise<string[]>;
  /** Adopts lifecycles whose lease ran out (this worker's share of them); each comes with a new epoch. */
  adopt(): Promise<LifecycleRecord[]>;
  /** Gives leases up (a drain before a deploy), so that other workers adopt at once. */
  release(paymentRequestIds: readonly string[]): Promise<void>;
  /** IDs of owned lifecycles with notifications not yet applied (the backstop for missed wake-ups). */
  ownedWithUnappliedNotifications(): Promise<string[]>;
  /** Calls `listener` with a payment ID whenever any worker stores a notification for it. */
  listen(
    listener: (paymentRequestId: string) => void,
    /** Called when another worker gives lifecycles back (a drain): adopt them now, not next round. */
    onReleased?: () => void,
  ): Promise<() => Promise<void>>;
  /**
   * Until when (performance.now() ms) this worker's leases are surely valid. No side effect (a
   * cancel) may start after it: the worker may have been paused and its lifecycles adopted.
   */
  leaseValidUntil(): number;
}

export function isSharedStore(store: LifecycleStore): store is SharedLifecycleStore {
  return typeof (store as Partial<SharedLifecycleStore>).adopt === 'function';
}

/** The resolution columns of an attention row, as SQL stores read them (all null while open). */
export interface AttentionColumns {
  payment_request_id: string;
  action: AttentionAction | null;
  note: string | null;
  resolved_by: string | null;
  /** Epoch ms; PostgreSQL hands a bigint over as a string. */
  resolved_at: number | string | null;
}

/** An attention item from its lifecycle record and its row's resolution columns. */
export function attentionItemOf(record: LifecycleRecord, row: AttentionColumns): AttentionItem {
  const item: AttentionItem = { record };
  if (row.action !== null)
    item.resolution = {
      paymentRequestId: row.payment_request_id,
      action: row.action,
      note: row.note ?? '',
      by: row.resolved_by ?? '',
      at: Number(row.resolved_at ?? 0),
    };
  return item;
}
