import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { type DecisionSketch, mergeSketches } from '../../machines/decision-model.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import { loadDriver } from './driver.js';
import { checkWalletKey, parseStoredSketch } from './memory-store.js';
import { readMigrations } from './sql-files.js';
import {
  configure,
  createWriter,
  type LifecycleChanges,
  WRITER_MARKER,
  type Writer,
  type WriterOp,
  type WriterRequest,
  type WriterResponse,
} from './sqlite-writer.js';
import {
  type AttentionColumns,
  type AttentionItem,
  type AuditRow,
  attentionItemOf,
  auditEntryOf,
  type LifecycleRecord,
  type LifecycleStore,
  type LifecycleWrite,
  type StoredNotification,
} from './store.js';

export interface SqliteStoreOptions {
  /**
   * `FULL` (default) makes every commit survive power loss; `NORMAL` survives a process crash but may
   * lose the last commits on power loss, for more throughput. See docs/operations.md.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /**
   * `true` (default): every write (`insert`, `write`, `markSettled`, `recordNotification`,
   * `markNotificationApplied`, `resolveAttention`, and the write of `mergeDecisionSketch`) runs on a second connection in a `worker_threads` Worker, one at a
   * time in call order, so that row writes and the commit's fsync never block the event loop. A
   * write's promise still resolves only once its transaction has committed at the `synchronous`
   * level; reads stay on the calling thread and see every write that has resolved. The Worker keeps
   * the process alive only while a write is pending. If it dies, pending and later writes reject with
   * `STORE_UNAVAILABLE` until `close()` and `open()`.
   *
   * `false`: writes run synchronously on the calling thread's connection (lighter for short-lived
   * tools and tests). A `:memory:` database (or `''`, a temporary one) always writes in the calling
   * thread: a Worker cannot share it.
   */
  writerThread?: boolean;
}

/** The default store location, relative to the working directory. */
export const DEFAULT_SQLITE_PATH = './.alipayplus/lifecycles.db';

interface LifecycleRow {
  payment_request_id: string;
  version: number;
  state: string;
  final: number;
  settled_fired: number;
  input: string;
  snapshot: string;
  outcome: string | null;
  created_at: number;
  updated_at: number;
}

function toRecord(row: LifecycleRow): LifecycleRecord {
  const record: LifecycleRecord = {
    paymentRequestId: row.payment_request_id,
    version: row.version,
    state: row.state,
    final: row.final === 1,
    settledFired: row.settled_fired === 1,
    input: JSON.parse(row.input),
    snapshot: JSON.parse(row.snapshot),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.outcome) record.outcome = JSON.parse(row.outcome);
  return record;
}

/** A lifecycle row with its attention resolution's columns (null while the item is open). */
type AttentionRow = LifecycleRow & AttentionColumns;

const toAttentionItem = (row: AttentionRow): AttentionItem => attentionItemOf(toRecord(row), row);

/** Where the store's writes run: on the calling thread, or on the writer thread. */
interface WriterChannel {
  run<K extends WriterOp>(op: K, ...args: Parameters<Writer[K]>): Promise<ReturnType<Writer[K]>>;
  /** Resolves once every write sent before has answered and the writer's connection is closed. */
  close(): Promise<void>;
}

type AnyOp = (...args: unknown[]) => unknown;

const sqlite = () => loadDriver<typeof Database>('better-sqlite3');

function inThreadWriter(db: Database.Database): WriterChannel {
  const writer = createWriter(db);
  return {
    async run(op, ...args) {
      return (writer[op] as AnyOp)(...args) as never;
    },
    async close() {},
  };
}

function unavailable(cause: unknown): AlipayPlusLifecycleError {
  return new AlipayPlusLifecycleError(
    'STORE_UNAVAILABLE',
    "the SQLite store's writer thread stopped: nothing more is written until the store is closed and opened again (engine.stop(), engine.start())",
    { cause },
  );
}

/** The writer's error as the caller would have seen it in-thread (a SqliteError keeps its `code`). */
function reviveError(error: { name: string; message: string; code?: string }): Error {
  if (error.name === 'SqliteError')
    return new (sqlite().SqliteError)(error.message, error.code ?? 'SQLITE_ERROR');
  const revived = new Error(error.message);
  revived.name = error.name;
  if (error.code !== undefined) Object.assign(revived, { code: error.code });
  return revived;
}

/**
 * Starts sqlite-writer.js in a Worker on its own connection to `path`; resolves once that connection
 * is open. One port carries the requests and the worker handles one message at a time, so writes
 * commit in call order; each answer is posted after its commit. The Worker is ref'd while a request
 * is pending (the process waits for the commit) and unref'd when idle.
 */
async function startWriterThread(path: string, synchronous: 'FULL' | 'NORMAL'): Promise<WriterChannel> {
  const worker = new Worker(new URL('./sqlite-writer.js', import.meta.url), {
    workerData: { [WRITER_MARKER]: { path, synchronous } },
    // Plain JavaScript needs no loader (tsx), and some of the parent's flags (`--input-type`) would
    // stop a worker started from a file.
    execArgv: [],
  });
  const pending = new Map<number, { resolve: (value: never) => void; reject: (error: unknown) => void }>();
  let nextId = 1;
  let failure: unknown;
  let stopped = false;
  let started: { resolve: () => void; reject: (error: unknown) => void } | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    started = { resolve, reject };
  });

  const fail = (cause: unknown) => {
    if (failure !== undefined) return;
    failure = cause;
    const error = unavailable(cause);
    started?.reject(error);
    for (const op of pending.values()) op.reject(error);
    pending.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) =>
    fail(
      stopped ? new Error('the writer thread was closed') : new Error(`the writer thread exited (${code})`),
    ),
  );
  worker.on('message', (message: WriterResponse) => {
    if ('ready' in message) return started?.resolve();
    const op = pending.get(message.id);
    if (!op) return;
    pending.delete(message.id);
    if (pending.size === 0) worker.unref();
    if (message.error) op.reject(reviveError(message.error));
    else op.resolve(message.result as never);
  });

  const send = <T>(request: WriterRequest) =>
    new Promise<T>((resolve, reject) => {
      if (failure !== undefined) return reject(unavailable(failure));
      worker.postMessage(request); // throws (rejects) on an uncloneable argument, before it counts as pending
      if (pending.size === 0) worker.ref();
      pending.set(request.id, { resolve, reject });
    });

  try {
    await ready;
  } catch (error) {
    await worker.terminate();
    throw error;
  }
  started = undefined;
  worker.unref();

  return {
    run(op, ...args) {
      return send({ id: nextId++, op, args } as WriterRequest);
    },
    async close() {
      // After every request sent before it (FIFO): pending writes commit first.
      if (failure === undefined) await send({ id: nextId++, op: 'close' }).catch(() => undefined);
      stopped = true;
      await worker.terminate();
    },
  };
}

interface OpenStore {
  db: Database.Database;
  statements: Statements;
  writer: WriterChannel;
}

type Statements = ReturnType<typeof prepareReads>;

function prepareReads(d: Database.Database) {
  return {
    load: d.prepare<[string], LifecycleRow>('SELECT * FROM lifecycles WHERE payment_request_id = ?'),
    resumable: d.prepare<[], LifecycleRow>(
      'SELECT * FROM lifecycles WHERE final = 0 OR settled_fired = 0 ORDER BY created_at',
    ),
    auditOf: d.prepare<[string], AuditRow>(
      'SELECT at, from_state, to_state, event, code FROM audit_log WHERE payment_request_id = ? ORDER BY id',
    ),
    notificationsOf: d.prepare<[string], { id: string; received_at: number; body: string; applied: number }>(
      'SELECT id, received_at, body, applied FROM notifications WHERE payment_request_id = ? ORDER BY received_at, id',
    ),
    withUnapplied: d.prepare<[], { payment_request_id: string }>(
      'SELECT DISTINCT payment_request_id FROM notifications WHERE applied = 0',
    ),
    list: d.prepare<[number], LifecycleRow>('SELECT * FROM lifecycles ORDER BY created_at DESC LIMIT ?'),
    lateUnapplied: d.prepare<
      [],
      { id: string; payment_request_id: string; received_at: number; body: string }
    >(
      `SELECT n.id, n.payment_request_id, n.received_at, n.body FROM notifications n
         JOIN lifecycles l ON l.payment_request_id = n.payment_request_id
        WHERE n.applied = 0 AND l.final = 1 ORDER BY n.received_at`,
    ),
    // Without ANALYZE statistics SQLite prefers the resumable index, which holds every final
    // lifecycle; the partial index holds the attention outcomes alone. The WHERE repeats its condition.
    attention: d.prepare<[number], AttentionRow>(
      `SELECT l.*, r.action, r.note, r.resolved_by, r.resolved_at
         FROM lifecycles l INDEXED BY lifecycles_attention LEFT JOIN attention_resolutions r ON r.payment_request_id = l.payment_request_id
        WHERE l.final = 1 AND json_extract(l.outcome, '$.status') = 'attention'
          AND (? = 1 OR r.payment_request_id IS NULL)
        ORDER BY json_extract(l.outcome, '$.decidedAt'), l.payment_request_id`,
    ),
    sketches: d.prepare<[], { wallet_key: string; sketch: string }>(
      'SELECT wallet_key, sketch FROM decision_sketches',
    ),
    sketchesOf: d.prepare<[string], { wallet_key: string; sketch: string }>(
      'SELECT wallet_key, sketch FROM decision_sketches WHERE wallet_key IN (SELECT value FROM json_each(?))',
    ),
    sketchRevisions: d.prepare<[], { wallet_key: string; revision: number }>(
      'SELECT wallet_key, revision FROM decision_sketches',
    ),
    sketchOf: d.prepare<[string], { sketch: string }>(
      'SELECT sketch FROM decision_sketches WHERE wallet_key = ?',
    ),
    stateCounts: d.prepare<[], { key: string; n: number }>(
      `SELECT CASE WHEN final = 1 THEN coalesce(json_extract(outcome, '$.status'), state) ELSE state END AS key,
              count(*) AS n
         FROM lifecycles GROUP BY key`,
    ),
  };
}

// The input never changes after the insert: updates do not serialise it again.
const changes = (record: LifecycleRecord): LifecycleChanges => ({
  id: record.paymentRequestId,
  version: record.version,
  state: record.state,
  final: record.final ? 1 : 0,
  settled: record.settledFired ? 1 : 0,
  snapshot: JSON.stringify(record.snapshot),
  outcome: record.outcome ? JSON.stringify(record.outcome) : null,
  updatedAt: record.updatedAt,
});

/**
 * The embedded default: one SQLite file in WAL mode (better-sqlite3 12). The engine batches writes
 * into one transaction per tick; they run on a writer thread by default (see
 * {@link SqliteStoreOptions.writerThread}), reads on the calling thread.
 */
export function sqliteStore(
  path: string = DEFAULT_SQLITE_PATH,
  options: SqliteStoreOptions = {},
): LifecycleStore {
  sqlite(); // DRIVER_MISSING here, not at open(), when better-sqlite3 is not usable
  const synchronous = options.synchronous ?? 'FULL';
  let current: OpenStore | undefined;
  let opening: Promise<void> | undefined;
  let closing: Promise<void> | undefined;
  // A merge reads the stored sketch here, merges here, and writes through the writer: merges run one
  // at a time, so that none reads a sketch another is about to replace (one process uses the file).
  // Never rejects: a failed merge rejects its own caller only.
  let merging: Promise<unknown> = Promise.resolve();

  const handle = () => {
    if (!current)
      throw new AlipayPlusLifecycleError(
        'STORE_UNAVAILABLE',
        'the SQLite store is not open: call open() (engine.start() does)',
      );
    return current;
  };
  const st = () => handle().statements;
  const writer = () => handle().writer;

  // `:memory:` and `''` (a temporary file) are private to one connection: no writer thread then.
  const inMemory = path === ':memory:' || path === '';

  async function openNow(): Promise<void> {
    if (!inMemory) mkdirSync(dirname(path), { recursive: true });
    const d = configure(new (sqlite())(path), synchronous);
    try {
      d.exec(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
      );
      const migrate = d.transaction(() => {
        const done = new Set(
          d
            .prepare<[], { version: number }>('SELECT version FROM schema_migrations')
            .all()
            .map((r) => r.version),
        );
        for (const migration of readMigrations('sqlite')) {
          if (done.has(migration.version)) continue;
          d.exec(migration.sql);
          d.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
            migration.version,
            migration.name,
            Date.now(),
          );
        }
      });
      migrate.immediate();
      const statements = prepareReads(d);
      const w =
        inMemory || options.writerThread === false
          ? inThreadWriter(d)
          : await startWriterThread(path, synchronous);
      current = { db: d, statements, writer: w };
    } catch (error) {
      d.close();
      throw error;
    }
  }

  return {
    async open() {
      if (closing) await closing;
      if (current) return;
      opening ??= openNow().finally(() => {
        opening = undefined;
      });
      await opening;
    },
    async close() {
      if (opening) await opening.catch(() => undefined);
      if (closing) return closing;
      const open = current;
      if (!open) return;
      current = undefined; // later calls reject at once; writes already sent still commit
      const merges = merging; // and so do the merges already accepted
      closing = (async () => {
        try {
          await merges;
          await open.writer.close();
        } finally {
          open.db.close();
        }
      })().finally(() => {
        closing = undefined;
      });
      return closing;
    },
    async load(id) {
      const row = st().load.get(id);
      return row && toRecord(row);
    },
    async insert(record, audit) {
      return writer().run(
        'insert',
        { ...changes(record), input: JSON.stringify(record.input), createdAt: record.createdAt },
        audit,
      );
    },
    async write(writes: LifecycleWrite[]) {
      return writer().run(
        'write',
        writes.map((write) => ({
          params: { ...changes(write.record), expected: write.expectedVersion },
          audit: write.audit,
          applied: write.appliedNotifications,
        })),
      );
    },
    async listResumable() {
      return st().resumable.all().map(toRecord);
    },
    async markSettled(id) {
      return writer().run('markSettled', id);
    },
    async audit(id) {
      return st()
        .auditOf.all(id)
        .map((row) => auditEntryOf(id, row));
    },
    async recordNotification(n: StoredNotification) {
      return writer().run('recordNotification', {
        id: n.id,
        paymentRequestId: n.paymentRequestId,
        receivedAt: n.receivedAt,
        body: JSON.stringify(n.body),
        applied: n.applied ? 1 : 0,
      });
    },
    async markNotificationApplied(id) {
      return writer().run('markNotificationApplied', id);
    },
    async unappliedOfFinal() {
      return st()
        .lateUnapplied.all()
        .map((row) => ({
          id: row.id,
          paymentRequestId: row.payment_request_id,
          receivedAt: row.received_at,
          body: JSON.parse(row.body),
          applied: false,
        }));
    },
    async unappliedNotifications(id) {
      return (await this.notifications(id)).filter((n) => !n.applied);
    },
    async withUnappliedNotifications() {
      return st()
        .withUnapplied.all()
        .map((row) => row.payment_request_id);
    },
    async notifications(id) {
      return st()
        .notificationsOf.all(id)
        .map((row) => ({
          id: row.id,
          paymentRequestId: id,
          receivedAt: row.received_at,
          body: JSON.parse(row.body),
          applied: row.applied === 1,
        }));
    },
    async list(limit = 1_000) {
      return st().list.all(limit).map(toRecord);
    },
    async attentionItems(options = {}) {
      return st()
        .attention.all(options.all ? 1 : 0)
        .map(toAttentionItem);
    },
    async resolveAttention(resolution, audit) {
      const { paymentRequestId, action, note, by, at } = resolution; // exactly the statement's parameters
      return writer().run('resolveAttention', { paymentRequestId, action, note, by, at }, audit);
    },
    async stateCounts() {
      return Object.fromEntries(
        st()
          .stateCounts.all()
          .map((row) => [row.key, row.n]),
      );
    },
    async decisionSketches(walletKeys) {
      const sketches = new Map<string, DecisionSketch>();
      const rows = walletKeys ? st().sketchesOf.all(JSON.stringify(walletKeys)) : st().sketches.all();
      for (const row of rows) {
        const sketch = parseStoredSketch(row.sketch);
        if (sketch) sketches.set(row.wallet_key, sketch);
      }
      return sketches;
    },
    async decisionSketchRevisions() {
      return new Map(
        st()
          .sketchRevisions.all()
          .map((row) => [row.wallet_key, row.revision]),
      );
    },
    async mergeDecisionSketch(walletKey, newer) {
      checkWalletKey(walletKey);
      // Taken now: a merge accepted before close() still runs on this connection and commits.
      const open = handle();
      const batch = structuredClone(newer); // as it was when handed over, whenever its turn comes
      const merge = merging.then(async () => {
        const merged = mergeSketches(
          parseStoredSketch(open.statements.sketchOf.get(walletKey)?.sketch),
          batch,
        );
        await open.writer.run('putDecisionSketch', {
          walletKey,
          sketch: JSON.stringify(merged),
          samples: merged.samples,
          updatedAt: Date.now(),
        });
        return merged;
      });
      merging = merge.catch(() => undefined);
      return merge;
    },
  };
}
