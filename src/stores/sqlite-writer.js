// The SQLite store's writes, in plain JavaScript so that a worker thread can load this file as it is
// (under vitest, under tsx, and from dist/, where the build copies it). Types: sqlite-writer.d.ts.
//
// The store runs createWriter() on a second connection inside a worker thread (the bootstrap at the
// end of this file), so that row writes and the fsync of each commit never block the event loop; or
// on its own connection in the calling thread (`:memory:`, or `writerThread: false`).
import { createRequire } from 'node:module';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

/** The key of `workerData` that makes this module start a writer when loaded in a worker. */
export const WRITER_MARKER = 'alipayplusSqliteWriter';

/** The pragmas every connection of the store uses, the main one and the writer's alike. */
export function configure(db, synchronous) {
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
  db.pragma('busy_timeout = 5000');
  return db;
}

/** Every mutating operation of the store, each in one transaction (a single statement is one). */
export function createWriter(db) {
  const insert = db.prepare(
    `INSERT INTO lifecycles (payment_request_id, version, state, final, settled_fired, input, snapshot, outcome, created_at, updated_at)
     VALUES (@id, @version, @state, @final, @settled, @input, @snapshot, @outcome, @createdAt, @updatedAt)
     ON CONFLICT (payment_request_id) DO NOTHING`,
  );
  const update = db.prepare(
    `UPDATE lifecycles SET version = @version, state = @state, final = @final, settled_fired = @settled,
       snapshot = @snapshot, outcome = @outcome, updated_at = @updatedAt
     WHERE payment_request_id = @id AND version = @expected`,
  );
  const audit = db.prepare(
    'INSERT INTO audit_log (payment_request_id, at, from_state, to_state, event, code) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const applied = db.prepare('UPDATE notifications SET applied = 1 WHERE id = ?');
  const markSettled = db.prepare('UPDATE lifecycles SET settled_fired = 1 WHERE payment_request_id = ?');
  const notify = db.prepare(
    `INSERT INTO notifications (id, payment_request_id, received_at, body, applied) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (id) DO NOTHING`,
  );

  const addAudit = (entries) => {
    for (const e of entries) audit.run(e.paymentRequestId, e.at, e.from, e.to, e.event, e.code ?? null);
  };

  const lifecycleOutcome = db.prepare(
    `SELECT final, json_extract(outcome, '$.status') AS status FROM lifecycles WHERE payment_request_id = ?`,
  );
  const resolution = db.prepare(
    `INSERT INTO attention_resolutions (payment_request_id, action, note, resolved_by, resolved_at)
     VALUES (@paymentRequestId, @action, @note, @by, @at)
     ON CONFLICT (payment_request_id) DO NOTHING`,
  );
  // IMMEDIATE: it reads before it writes, and another process (the CLI beside a running engine) may
  // write in between; a deferred transaction would then fail to upgrade instead of waiting its turn.
  const resolveAttention = db.transaction((row, entry) => {
    const lifecycle = lifecycleOutcome.get(row.paymentRequestId);
    if (!lifecycle) return 'unknown';
    if (lifecycle.final !== 1 || lifecycle.status !== 'attention') return 'not-attention';
    if (resolution.run(row).changes !== 1) return 'already-resolved';
    addAudit([entry]);
    return 'resolved';
  }).immediate;

  // The merge itself runs on the calling thread (the store serialises its merges): this writes the result.
  const putSketch = db.prepare(
    `INSERT INTO decision_sketches (wallet_key, sketch, samples, updated_at, revision)
     VALUES (@walletKey, @sketch, @samples, @updatedAt, 1)
     ON CONFLICT (wallet_key) DO UPDATE SET
       sketch = excluded.sketch, samples = excluded.samples, updated_at = excluded.updated_at,
       revision = decision_sketches.revision + 1`,
  );

  return {
    insert: db.transaction((row, entries) => {
      const inserted = insert.run(row).changes === 1;
      if (inserted) addAudit(entries);
      return inserted;
    }),
    write: db.transaction((writes) => {
      const conflicts = [];
      for (const write of writes) {
        if (update.run(write.params).changes !== 1) {
          conflicts.push({ paymentRequestId: write.params.id, expectedVersion: write.params.expected });
          continue;
        }
        addAudit(write.audit);
        for (const id of write.applied) applied.run(id);
      }
      return conflicts;
    }),
    markSettled(id) {
      markSettled.run(id);
    },
    recordNotification(n) {
      notify.run(n.id, n.paymentRequestId, n.receivedAt, n.body, n.applied);
    },
    markNotificationApplied(id) {
      applied.run(id);
    },
    resolveAttention,
    putDecisionSketch(row) {
      putSketch.run(row);
    },
  };
}

// ---- the worker: one message at a time, in order, each answered once it has committed ------------

if (!isMainThread && parentPort && workerData?.[WRITER_MARKER]) {
  const port = parentPort;
  const { path, synchronous } = workerData[WRITER_MARKER];
  // Required here, not imported at the top: the main thread imports this file for createWriter(), and
  // importing the package must not load the native driver before a SQLite store is created.
  const Database = createRequire(import.meta.url)('better-sqlite3');
  const db = configure(new Database(path), synchronous);
  const writer = createWriter(db);
  port.on('message', (message) => {
    if (message.op === 'close') {
      db.close();
      port.postMessage({ id: message.id });
      port.close();
      return;
    }
    try {
      port.postMessage({ id: message.id, result: writer[message.op](...message.args) });
    } catch (error) {
      port.postMessage({
        id: message.id,
        error: {
          name: error?.name ?? 'Error',
          message: error?.message ?? String(error),
          code: error?.code,
        },
      });
    }
  });
  port.postMessage({ ready: true });
}
