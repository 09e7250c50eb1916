import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { AlipayPlusLifecycleError } from '../errors.js';
import { readMigrations } from './sql-files.js';
import type {
  AuditEntry,
  LifecycleRecord,
  LifecycleStore,
  LifecycleWrite,
  StoredNotification,
  WriteConflict,
} from './store.js';

export interface SqliteStoreOptions {
  /**
   * `FULL` (default) makes every commit survive power loss; `NORMAL` survives a process crash but may
   * lose the last commits on power loss, for more throughput. See docs/operations.md.
   */
  synchronous?: 'FULL' | 'NORMAL';
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

/**
 * The embedded default: one SQLite file in WAL mode (better-sqlite3 12). Writes are synchronous
 * and batched by the engine into one transaction per tick.
 */
export function sqliteStore(
  path: string = DEFAULT_SQLITE_PATH,
  options: SqliteStoreOptions = {},
): LifecycleStore {
  let db: Database.Database | undefined;
  const handle = () => {
    if (!db)
      throw new AlipayPlusLifecycleError(
        'INVALID_OPTIONS',
        'the SQLite store is not open: call open() (engine.start() does)',
      );
    return db;
  };
  let statements: ReturnType<typeof prepare> | undefined;

  function prepare(d: Database.Database) {
    return {
      load: d.prepare<[string], LifecycleRow>('SELECT * FROM lifecycles WHERE payment_request_id = ?'),
      insert: d.prepare(
        `INSERT INTO lifecycles (payment_request_id, version, state, final, settled_fired, input, snapshot, outcome, created_at, updated_at)
         VALUES (@id, @version, @state, @final, @settled, @input, @snapshot, @outcome, @createdAt, @updatedAt)
         ON CONFLICT (payment_request_id) DO NOTHING`,
      ),
      update: d.prepare(
        `UPDATE lifecycles SET version = @version, state = @state, final = @final, settled_fired = @settled,
           snapshot = @snapshot, outcome = @outcome, updated_at = @updatedAt
         WHERE payment_request_id = @id AND version = @expected`,
      ),
      audit: d.prepare(
        'INSERT INTO audit_log (payment_request_id, at, from_state, to_state, event, code) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      applied: d.prepare('UPDATE notifications SET applied = 1 WHERE id = ?'),
      resumable: d.prepare<[], LifecycleRow>(
        'SELECT * FROM lifecycles WHERE final = 0 OR settled_fired = 0 ORDER BY created_at',
      ),
      markSettled: d.prepare('UPDATE lifecycles SET settled_fired = 1 WHERE payment_request_id = ?'),
      auditOf: d.prepare<
        [string],
        { at: number; from_state: string; to_state: string; event: string; code: string | null }
      >(
        'SELECT at, from_state, to_state, event, code FROM audit_log WHERE payment_request_id = ? ORDER BY id',
      ),
      notify: d.prepare(
        `INSERT INTO notifications (id, payment_request_id, received_at, body, applied) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING`,
      ),
      notificationsOf: d.prepare<
        [string],
        { id: string; received_at: number; body: string; applied: number }
      >(
        'SELECT id, received_at, body, applied FROM notifications WHERE payment_request_id = ? ORDER BY received_at, id',
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
    };
  }
  const st = () => {
    handle();
    return statements as ReturnType<typeof prepare>;
  };

  // The input never changes after the insert: updates do not serialise it again.
  const changes = (record: LifecycleRecord) => ({
    id: record.paymentRequestId,
    version: record.version,
    state: record.state,
    final: record.final ? 1 : 0,
    settled: record.settledFired ? 1 : 0,
    snapshot: JSON.stringify(record.snapshot),
    outcome: record.outcome ? JSON.stringify(record.outcome) : null,
    updatedAt: record.updatedAt,
  });
  const params = (record: LifecycleRecord) => ({
    ...changes(record),
    input: JSON.stringify(record.input),
    createdAt: record.createdAt,
  });

  const addAudit = (entries: AuditEntry[]) => {
    for (const e of entries) st().audit.run(e.paymentRequestId, e.at, e.from, e.to, e.event, e.code ?? null);
  };

  return {
    async open() {
      if (db) return;
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      const d = new Database(path);
      d.pragma('journal_mode = WAL');
      d.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
      d.pragma('busy_timeout = 5000');
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
      db = d;
      statements = prepare(d);
    },
    async close() {
      db?.close();
      db = undefined;
      statements = undefined;
    },
    async load(id) {
      const row = st().load.get(id);
      return row && toRecord(row);
    },
    async insert(record, audit) {
      return handle().transaction(() => {
        const inserted = st().insert.run(params(record)).changes === 1;
        if (inserted) addAudit(audit);
        return inserted;
      })();
    },
    async write(writes: LifecycleWrite[]) {
      return handle().transaction(() => {
        const conflicts: WriteConflict[] = [];
        for (const write of writes) {
          const changed = st().update.run({
            ...changes(write.record),
            expected: write.expectedVersion,
          }).changes;
          if (changed !== 1) {
            conflicts.push({
              paymentRequestId: write.record.paymentRequestId,
              expectedVersion: write.expectedVersion,
            });
            continue;
          }
          addAudit(write.audit);
          for (const id of write.appliedNotifications) st().applied.run(id);
        }
        return conflicts;
      })();
    },
    async listResumable() {
      return st().resumable.all().map(toRecord);
    },
    async markSettled(id) {
      st().markSettled.run(id);
    },
    async audit(id) {
      return st()
        .auditOf.all(id)
        .map((row) => {
          const entry: AuditEntry = {
            paymentRequestId: id,
            at: row.at,
            from: row.from_state,
            to: row.to_state,
            event: row.event,
          };
          if (row.code !== null) entry.code = row.code;
          return entry;
        });
    },
    async recordNotification(n: StoredNotification) {
      st().notify.run(n.id, n.paymentRequestId, n.receivedAt, JSON.stringify(n.body), n.applied ? 1 : 0);
    },
    async markNotificationApplied(id) {
      st().applied.run(id);
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
  };
}
