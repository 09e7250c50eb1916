// Types of sqlite-writer.js (plain JavaScript so that a worker thread can load it as it is).
import type Database from 'better-sqlite3';
import type { AttentionResolution, AuditEntry, ResolveAttentionResult, WriteConflict } from './store.js';

/** A lifecycle row's changing columns, the parameters of the UPDATE (JSON already serialised). */
export interface LifecycleChanges {
  id: string;
  version: number;
  state: string;
  final: 0 | 1;
  settled: 0 | 1;
  snapshot: string;
  outcome: string | null;
  updatedAt: number;
}

/** A new lifecycle row, the parameters of the INSERT. */
export interface LifecycleInsert extends LifecycleChanges {
  input: string;
  createdAt: number;
}

/** One write of a group commit. */
export interface WriteParams {
  params: LifecycleChanges & { expected: number };
  audit: AuditEntry[];
  /** Notification IDs to mark applied. */
  applied: string[];
}

export interface NotificationRow {
  id: string;
  paymentRequestId: string;
  receivedAt: number;
  /** The notification body, JSON. */
  body: string;
  applied: 0 | 1;
}

/** A wallet's merged decision sketch, the parameters of its upsert (JSON already serialised). */
export interface DecisionSketchRow {
  walletKey: string;
  /** The DecisionSketch, JSON. */
  sketch: string;
  samples: number;
  /** Epoch ms of the write. */
  updatedAt: number;
}

/** The store's mutating operations; each runs in one transaction and returns once it has committed. */
export interface Writer {
  /** True when inserted (the audit entries are appended then only). */
  insert(row: LifecycleInsert, audit: AuditEntry[]): boolean;
  /** The writes refused because the stored version was not the expected one. */
  write(writes: WriteParams[]): WriteConflict[];
  markSettled(paymentRequestId: string): void;
  recordNotification(row: NotificationRow): void;
  markNotificationApplied(id: string): void;
  /** Writes the resolution and its audit entry only when the lifecycle is an open `attention` outcome. */
  resolveAttention(resolution: AttentionResolution, audit: AuditEntry): ResolveAttentionResult;
  /** Stores a wallet's decision sketch, replacing the one stored (the caller merged them). */
  putDecisionSketch(row: DecisionSketchRow): void;
}

export type WriterOp = keyof Writer;

/** A request to the writer thread; `close` closes its connection and ends the thread. */
export type WriterRequest =
  | { [K in WriterOp]: { id: number; op: K; args: Parameters<Writer[K]> } }[WriterOp]
  | { id: number; op: 'close' };

/** The writer thread's messages: `ready` once its connection is open, then one answer per request. */
export type WriterResponse =
  | { ready: true }
  | { id: number; result?: unknown; error?: { name: string; message: string; code?: string } };

export const WRITER_MARKER: 'alipayplusSqliteWriter';

/** Sets WAL, `synchronous` and `busy_timeout` on a connection; returns it. */
export function configure(db: Database.Database, synchronous: 'FULL' | 'NORMAL'): Database.Database;

export function createWriter(db: Database.Database): Writer;
