import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { z } from 'zod';
import { type DecisionSketch, emptySketch, mergeSketches } from '../../machines/decision-model.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import { parseOrThrow } from '../validate.js';
import { loadDriver } from './driver.js';
import { checkWalletKey, parseStoredSketch } from './memory-store.js';
import { readMigrations } from './sql-files.js';
import {
  type AttentionColumns,
  type AttentionItem,
  type AuditEntry,
  type AuditRow,
  attentionItemOf,
  auditEntryOf,
  type LifecycleRecord,
  type LifecycleWrite,
  type SharedLifecycleStore,
  type StoredNotification,
  type WriteConflict,
} from './store.js';

const driver = () => loadDriver<typeof pg>('pg');

/** Where the lifecycles live and how this worker shares them with the others. */
export interface PostgresStoreOptions {
  /** A pool of your own (a pg.Pool); the store then leaves it open at close. Or: */
  pool?: pg.Pool;
  /** A connection string, for a pool of 10 connections that the store owns. */
  connectionString?: string;
  /** This process's name among the workers; default a random UUID. */
  workerId?: string;
  /** How long a lease lasts without renewal, in ms (at least 1,000; default 15,000). Renewal runs every third of it. */
  leaseMs?: number;
  /** The PostgreSQL schema for the tables, created if missing (a lower-case SQL identifier; default `alipayplus`). */
  schema?: string;
  /** Most lifecycles adopted by one worker in one round (default 10,000). */
  adoptBatch?: number;
}

const Options = z
  .object({
    pool: z.custom<pg.Pool>((v) => v instanceof driver().Pool, 'must be a pg.Pool').optional(),
    connectionString: z.string().min(1).optional(),
    /** This process's name among the workers; default a random UUID. */
    workerId: z.string().min(1).max(128).optional(),
    /** How long a lease lasts without renewal. Renewal runs every third of it. */
    leaseMs: z.number().int().min(1_000).default(15_000),
    /** The PostgreSQL schema for the tables (created if missing). */
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier')
      .default('alipayplus'),
    /**
     * Most lifecycles adopted by one worker in one round. A dead worker's 10,000 lifecycles are taken
     * in one round (two when their first round comes before the leases end).
     */
    adoptBatch: z.number().int().positive().default(10_000),
  })
  .strict()
  .refine((o) => o.pool || o.connectionString, { message: 'give a pool or a connectionString' });

// The interface above is the documented face of the schema: this fails to compile when they part.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const optionsMatchSchema: Same<PostgresStoreOptions, z.input<typeof Options>> = true;
void optionsMatchSchema;

interface Row {
  payment_request_id: string;
  version: string;
  state: string;
  final: boolean;
  settled_fired: boolean;
  input: LifecycleRecord['input'];
  snapshot: unknown;
  outcome: LifecycleRecord['outcome'] | null;
  created_at: string;
  updated_at: string;
  epoch: string;
}

function toRecord(row: Row): LifecycleRecord {
  const record: LifecycleRecord = {
    paymentRequestId: row.payment_request_id,
    version: Number(row.version),
    state: row.state,
    final: row.final,
    settledFired: row.settled_fired,
    input: row.input,
    snapshot: row.snapshot,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
  if (row.outcome) record.outcome = row.outcome;
  return record;
}

/** A lifecycle row with its attention resolution's columns (null while the item is open). */
type AttentionRow = Row & AttentionColumns;

const toAttentionItem = (row: AttentionRow): AttentionItem => attentionItemOf(toRecord(row), row);

/** The row a wallet's first merge inserts to have something to lock; the same transaction replaces it. */
const EMPTY_SKETCH = JSON.stringify(emptySketch());

/** The server ended the connection (terminated, or timed out in a transaction): it cannot be reused. */
function isConnectionGone(error: Error): boolean {
  const code = (error as { code?: string }).code;
  return code === '57P01' || code === '25P03' || /Connection terminated/i.test(error.message);
}

/**
 * Lifecycles in PostgreSQL, shared by N engine processes: each lifecycle row has an owner, a fencing
 * epoch and a lease; writes are conditional on owner and epoch; dead workers' lifecycles are adopted
 * with `FOR UPDATE SKIP LOCKED`; notifications wake their owner through LISTEN/NOTIFY.
 */
export function postgresStore(options: PostgresStoreOptions): SharedLifecycleStore {
  const { Pool } = driver(); // DRIVER_MISSING here, before anything else, when pg is not installed
  const config = parseOrThrow(Options, options, 'PostgreSQL store options', 'INVALID_OPTIONS');
  const workerId = config.workerId ?? randomUUID();
  const leaseMs = config.leaseMs;
  const schema = `"${config.schema}"`;
  const channel = `alipayplus_${config.schema}`;
  /** Wakes the other workers when lifecycles are given back (a drain), so they adopt at once. */
  const releasedChannel = `alipayplus_${config.schema}_released`;
  const ownPool = !config.pool;
  const pool = config.pool ?? new Pool({ connectionString: config.connectionString, max: 10 });
  // Renewal and adoption get connections of their own: queued behind bulk writes in the shared pool,
  // a renewal could arrive after the lease ran out, and another worker would take the lifecycles.
  const leasePool = new Pool({ ...(pool as unknown as { options: pg.PoolConfig }).options, max: 2 });
  // An idle pooled connection that the server ends is dropped by the pool; unheard, the event would
  // crash the process.
  const dropped = () => undefined;
  if (ownPool) pool.on('error', dropped);
  leasePool.on('error', dropped);
  // A checked-out connection has no pool listener: one the server ends (a restart, an administrator,
  // that timeout) while it is handed from one query to the next waiting one emits 'error' before its
  // new user can listen, and unheard that ends the process. Every connection gets a listener for
  // good; the failure still reaches the query that uses the connection.
  for (const each of [pool, leasePool]) each.on('connect', (client) => client.on('error', dropped));
  const lq = <R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]) =>
    leasePool.query<R>(text, values as unknown[]);
  /** Epoch per owned lifecycle: every write names it (fencing). */
  const epochs = new Map<string, number>();
  // Leases are renewed by wall time measured here: after a pause (SIGSTOP, GC, a frozen VM) this
  // runs out, and the engine stops starting side effects before anyone could have adopted.
  let leaseValidUntil = 0;
  const SAFETY = 0.8;
  let opened = false;

  const q = <R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]) =>
    pool.query<R>(text, values as unknown[]);

  // A worker frozen inside a transaction (SIGSTOP, a stalled VM) holds its row locks, and adoption
  // skips locked rows: PostgreSQL ends such a transaction well before the lease runs out, so that
  // the rows can be adopted. The frozen worker's writes then fail, and fencing refuses the retry.
  const idleInTransactionMs = Math.max(500, Math.floor(leaseMs / 2));
  async function tx<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await pool.connect();
      // A connection the server ends between two statements (that timeout, a restart) reports it as
      // an 'error' event, which would crash the process unheard: the next query fails instead.
      let lost: Error | undefined;
      const onError = (error: Error) => {
        lost = error;
      };
      client.on('error', onError);
      let committing = false;
      try {
        await client.query(`BEGIN; SET LOCAL idle_in_transaction_session_timeout = ${idleInTransactionMs}`);
        const result = await work(client);
        committing = true;
        await client.query('COMMIT');
        return result;
      } catch (error) {
        lost ??= error instanceof Error && isConnectionGone(error) ? error : undefined;
        if (!lost) await client.query('ROLLBACK').catch(() => undefined);
        // Lost before COMMIT was sent (a stall past that timeout, a server restart): nothing was
        // written, so the work runs once more on a fresh connection. Every write in it is conditional
        // (on version, owner and epoch, or ON CONFLICT), so a worker that lost its lifecycles
        // meanwhile changes nothing. Once COMMIT was sent, whether it landed is unknown: no retry.
        if (lost && !committing && attempt === 1) continue;
        throw error;
      } finally {
        client.off('error', onError);
        client.release(lost);
      }
    }
  }

  function owned(rows: Row[]): LifecycleRecord[] {
    for (const row of rows) epochs.set(row.payment_request_id, Number(row.epoch));
    return rows.map(toRecord);
  }

  function ensureOpen(): void {
    if (!opened)
      throw new AlipayPlusLifecycleError(
        'STORE_UNAVAILABLE',
        'the PostgreSQL store is not open: call open() (engine.start() does)',
      );
  }

  const store: SharedLifecycleStore = {
    workerId,
    leaseMs,

    async open() {
      if (opened) return;
      await tx(async (client) => {
        // One migrator at a time across all workers.
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
          `alipayplus-lifecycle:${config.schema}`,
        ]);
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
        );
        const done = new Set(
          (
            await client.query<{ version: number }>(`SELECT version FROM ${schema}.schema_migrations`)
          ).rows.map((r) => r.version),
        );
        for (const migration of readMigrations('postgres')) {
          if (done.has(migration.version)) continue;
          await client.query(migration.sql.replaceAll('__SCHEMA__', schema));
          await client.query(`INSERT INTO ${schema}.schema_migrations (version, name) VALUES ($1, $2)`, [
            migration.version,
            migration.name,
          ]);
        }
      });
      await q(
        `INSERT INTO ${schema}.workers (worker_id, heartbeat_at) VALUES ($1, now())
         ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()`,
        [workerId],
      );
      leaseValidUntil = performance.now() + leaseMs * SAFETY;
      opened = true;
    },

    async close() {
      // No longer a live worker: adoption stops setting a part aside for this one.
      if (opened)
        await lq(`DELETE FROM ${schema}.workers WHERE worker_id = $1`, [workerId]).catch(() => undefined);
      await leasePool.end();
      if (ownPool) await pool.end();
      opened = false;
    },

    async load(id) {
      ensureOpen();
      const { rows } = await q<Row>(`SELECT * FROM ${schema}.lifecycles WHERE payment_request_id = $1`, [id]);
      return rows[0] && toRecord(rows[0]);
    },

    async insert(record, audit) {
      ensureOpen();
      return tx(async (client) => {
        const { rows } = await client.query<Row>(
          `INSERT INTO ${schema}.lifecycles
             (payment_request_id, version, state, final, settled_fired, input, snapshot, outcome, created_at, updated_at,
              owner, epoch, lease_expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, now() + $12 * interval '1 millisecond')
           ON CONFLICT (payment_request_id) DO NOTHING
           RETURNING *`,
          [
            record.paymentRequestId,
            record.version,
            record.state,
            record.final,
            record.settledFired,
            JSON.stringify(record.input),
            JSON.stringify(record.snapshot),
            record.outcome ? JSON.stringify(record.outcome) : null,
            record.createdAt,
            record.updatedAt,
            workerId,
            leaseMs,
          ],
        );
        if (rows.length === 0) return false;
        owned(rows);
        await insertAudit(client, audit);
        return true;
      });
    },

    async write(writes: LifecycleWrite[]): Promise<WriteConflict[]> {
      ensureOpen();
      if (writes.length === 0) return [];
      return tx(async (client) => {
        // One statement for the whole batch: conditional on version, owner and epoch (fencing).
        const { rows } = await client.query<{ payment_request_id: string }>(
          `WITH v AS (
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bool[], $6::bool[], $7::text[],
                                  $8::text[], $9::bigint[], $10::bigint[])
                    AS v(id, version, expected, state, final, settled, snapshot, outcome, updated_at, epoch)
           ), locked AS (
             SELECT l.payment_request_id FROM ${schema}.lifecycles l JOIN v ON l.payment_request_id = v.id
              ORDER BY l.payment_request_id FOR UPDATE OF l
           )
           UPDATE ${schema}.lifecycles AS l
              SET version = v.version, state = v.state, final = v.final, settled_fired = v.settled,
                  snapshot = v.snapshot::jsonb, outcome = v.outcome::jsonb, updated_at = v.updated_at
             FROM v JOIN locked ON locked.payment_request_id = v.id
            WHERE l.payment_request_id = v.id AND l.version = v.expected AND l.owner = $11 AND l.epoch = v.epoch
        RETURNING l.payment_request_id`,
          [
            writes.map((w) => w.record.paymentRequestId),
            writes.map((w) => w.record.version),
            writes.map((w) => w.expectedVersion),
            writes.map((w) => w.record.state),
            writes.map((w) => w.record.final),
            writes.map((w) => w.record.settledFired),
            writes.map((w) => JSON.stringify(w.record.snapshot)),
            writes.map((w) => (w.record.outcome ? JSON.stringify(w.record.outcome) : null)),
            writes.map((w) => w.record.updatedAt),
            writes.map((w) => epochs.get(w.record.paymentRequestId) ?? -1),
            workerId,
          ],
        );
        const written = new Set(rows.map((r) => r.payment_request_id));
        const landed = writes.filter((w) => written.has(w.record.paymentRequestId));
        await insertAudit(
          client,
          landed.flatMap((w) => w.audit),
        );
        const applied = landed.flatMap((w) => w.appliedNotifications);
        if (applied.length > 0) {
          await client.query(`UPDATE ${schema}.notifications SET applied = true WHERE id = ANY($1::text[])`, [
            applied,
          ]);
        }
        return writes
          .filter((w) => !written.has(w.record.paymentRequestId))
          .map((w) => ({ paymentRequestId: w.record.paymentRequestId, expectedVersion: w.expectedVersion }));
      });
    },

    async listResumable() {
      // Shared stores resume through adopt(): only lifecycles nobody holds a live lease on.
      return store.adopt();
    },

    async markSettled(id) {
      ensureOpen();
      await q(
        `UPDATE ${schema}.lifecycles SET settled_fired = true WHERE payment_request_id = $1 AND owner = $2`,
        [id, workerId],
      );
    },

    async audit(id) {
      ensureOpen();
      const { rows } = await q<AuditRow>(
        `SELECT at, from_state, to_state, event, code FROM ${schema}.audit_log WHERE payment_request_id = $1 ORDER BY id`,
        [id],
      );
      return rows.map((row) => auditEntryOf(id, row));
    },

    async recordNotification(n: StoredNotification) {
      ensureOpen();
      // Stored and announced in one transaction: the owner is woken only for what is durable.
      await tx(async (client) => {
        await client.query(
          `INSERT INTO ${schema}.notifications (id, payment_request_id, received_at, body, applied)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
          [n.id, n.paymentRequestId, n.receivedAt, JSON.stringify(n.body), n.applied],
        );
        await client.query('SELECT pg_notify($1, $2)', [channel, n.paymentRequestId]);
      });
    },

    async unappliedOfFinal() {
      ensureOpen();
      // Final lifecycles of this worker, or of nobody alive: one worker reports each.
      const { rows } = await q<{
        id: string;
        payment_request_id: string;
        received_at: string;
        body: StoredNotification['body'];
      }>(
        `SELECT n.id, n.payment_request_id, n.received_at, n.body
           FROM ${schema}.notifications n
           JOIN ${schema}.lifecycles l ON l.payment_request_id = n.payment_request_id
          WHERE n.applied = false AND l.final = true
            AND (l.owner = $1 OR l.owner IS NULL OR l.lease_expires_at < now())
          ORDER BY n.received_at`,
        [workerId],
      );
      return rows.map((r) => ({
        id: r.id,
        paymentRequestId: r.payment_request_id,
        receivedAt: Number(r.received_at),
        body: r.body,
        applied: false,
      }));
    },
    async unappliedNotifications(id) {
      return (await store.notifications(id)).filter((n) => !n.applied);
    },
    async withUnappliedNotifications() {
      ensureOpen();
      const { rows } = await q<{ payment_request_id: string }>(
        `SELECT DISTINCT payment_request_id FROM ${schema}.notifications WHERE applied = false`,
      );
      return rows.map((r) => r.payment_request_id);
    },

    async markNotificationApplied(id) {
      ensureOpen();
      await q(`UPDATE ${schema}.notifications SET applied = true WHERE id = $1`, [id]);
    },

    async notifications(id) {
      ensureOpen();
      const { rows } = await q<{
        id: string;
        received_at: string;
        body: StoredNotification['body'];
        applied: boolean;
      }>(
        `SELECT id, received_at, body, applied FROM ${schema}.notifications WHERE payment_request_id = $1 ORDER BY received_at, id`,
        [id],
      );
      return rows.map((r) => ({
        id: r.id,
        paymentRequestId: id,
        receivedAt: Number(r.received_at),
        body: r.body,
        applied: r.applied,
      }));
    },

    async list(limit = 1_000) {
      ensureOpen();
      const { rows } = await q<Row>(`SELECT * FROM ${schema}.lifecycles ORDER BY created_at DESC LIMIT $1`, [
        limit,
      ]);
      return rows.map(toRecord);
    },

    async attentionItems(options = {}) {
      ensureOpen();
      // The WHERE repeats the partial index's condition, so that the planner can use it.
      const { rows } = await q<AttentionRow>(
        `SELECT l.*, r.action, r.note, r.resolved_by, r.resolved_at
           FROM ${schema}.lifecycles l
           LEFT JOIN ${schema}.attention_resolutions r ON r.payment_request_id = l.payment_request_id
          WHERE l.final AND l.outcome->>'status' = 'attention' AND ($1 OR r.payment_request_id IS NULL)
          ORDER BY (l.outcome->>'decidedAt')::numeric, l.payment_request_id`,
        [options.all === true],
      );
      return rows.map(toAttentionItem);
    },

    async resolveAttention(resolution, audit) {
      ensureOpen();
      // No lease is needed: the lifecycle row is only read (a final outcome never changes), and the
      // resolution's primary key settles two people resolving at once.
      return tx(async (client) => {
        const { rows } = await client.query<{ final: boolean; status: string | null }>(
          `SELECT final, outcome->>'status' AS status FROM ${schema}.lifecycles WHERE payment_request_id = $1`,
          [resolution.paymentRequestId],
        );
        const lifecycle = rows[0];
        if (!lifecycle) return 'unknown';
        if (!lifecycle.final || lifecycle.status !== 'attention') return 'not-attention';
        const inserted = await client.query(
          `INSERT INTO ${schema}.attention_resolutions (payment_request_id, action, note, resolved_by, resolved_at)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_request_id) DO NOTHING`,
          [resolution.paymentRequestId, resolution.action, resolution.note, resolution.by, resolution.at],
        );
        if (inserted.rowCount !== 1) return 'already-resolved';
        await insertAudit(client, [audit]);
        return 'resolved';
      });
    },

    async stateCounts() {
      ensureOpen();
      const { rows } = await q<{ key: string; n: number }>(
        `SELECT CASE WHEN final THEN coalesce(outcome->>'status', state) ELSE state END AS key, count(*)::int AS n
           FROM ${schema}.lifecycles GROUP BY 1`,
      );
      return Object.fromEntries(rows.map((row) => [row.key, row.n]));
    },

    async decisionSketches(walletKeys) {
      ensureOpen();
      const { rows } = await q<{ wallet_key: string; sketch: string }>(
        walletKeys
          ? `SELECT wallet_key, sketch FROM ${schema}.decision_sketches WHERE wallet_key = ANY($1)`
          : `SELECT wallet_key, sketch FROM ${schema}.decision_sketches`,
        walletKeys ? [[...walletKeys]] : [],
      );
      const sketches = new Map<string, DecisionSketch>();
      for (const row of rows) {
        const sketch = parseStoredSketch(row.sketch);
        if (sketch) sketches.set(row.wallet_key, sketch);
      }
      return sketches;
    },

    async decisionSketchRevisions() {
      ensureOpen();
      const { rows } = await q<{ wallet_key: string; revision: string }>(
        `SELECT wallet_key, revision FROM ${schema}.decision_sketches`,
      );
      return new Map(rows.map((row) => [row.wallet_key, Number(row.revision)]));
    },

    async mergeDecisionSketch(walletKey, newer) {
      checkWalletKey(walletKey);
      ensureOpen();
      const batch = structuredClone(newer); // as it was when handed over, whenever the lock is ours
      // Read, merge and write under the row's lock, so that two workers' batches both land. The row
      // is made first (a no-op once it exists): a wallet's first two merges at once would otherwise
      // find nothing to lock, and the second insert would overwrite the first. The second waits on
      // the first's uncommitted insert, then on its lock, and reads what the first committed.
      return tx(async (client) => {
        await client.query(
          `INSERT INTO ${schema}.decision_sketches (wallet_key, sketch, samples, updated_at)
           VALUES ($1, $2, 0, $3) ON CONFLICT (wallet_key) DO NOTHING`,
          [walletKey, EMPTY_SKETCH, Date.now()],
        );
        const { rows } = await client.query<{ sketch: string }>(
          `SELECT sketch FROM ${schema}.decision_sketches WHERE wallet_key = $1 FOR UPDATE`,
          [walletKey],
        );
        const merged = mergeSketches(parseStoredSketch(rows[0]?.sketch), batch);
        await client.query(
          `INSERT INTO ${schema}.decision_sketches (wallet_key, sketch, samples, updated_at, revision)
           VALUES ($1, $2, $3, $4, 1)
           ON CONFLICT (wallet_key) DO UPDATE
             SET sketch = excluded.sketch, samples = excluded.samples, updated_at = excluded.updated_at,
                 revision = ${schema}.decision_sketches.revision + 1`,
          [walletKey, JSON.stringify(merged), merged.samples, Date.now()],
        );
        return merged;
      });
    },

    async acquire(id) {
      ensureOpen();
      const { rows } = await q<Row>(
        `UPDATE ${schema}.lifecycles
            SET owner = $2, epoch = epoch + 1, lease_expires_at = now() + $3 * interval '1 millisecond'
          WHERE payment_request_id = $1 AND (final = false OR settled_fired = false)
            AND (owner IS NULL OR owner = $2 OR lease_expires_at < now())
      RETURNING *`,
        [id, workerId, leaseMs],
      );
      return owned(rows)[0];
    },

    async renew(ownedIds) {
      ensureOpen();
      const started = performance.now();
      const { rows } = await lq<{ payment_request_id: string }>(
        `WITH beat AS (
           INSERT INTO ${schema}.workers (worker_id, heartbeat_at) VALUES ($1, now())
           ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()
         )
         , o AS (SELECT * FROM unnest($3::text[], $4::bigint[]) AS o(id, epoch))
         , locked AS (
           SELECT l.payment_request_id FROM ${schema}.lifecycles l JOIN o ON l.payment_request_id = o.id
            ORDER BY l.payment_request_id FOR UPDATE OF l
         )
         UPDATE ${schema}.lifecycles AS l SET lease_expires_at = now() + $2 * interval '1 millisecond'
           FROM o JOIN locked ON locked.payment_request_id = o.id
          WHERE l.owner = $1 AND l.payment_request_id = o.id AND l.epoch = o.epoch
            AND (l.final = false OR l.settled_fired = false)
      RETURNING l.payment_request_id`,
        [workerId, leaseMs, ownedIds, ownedIds.map((id) => epochs.get(id) ?? -1)],
      );
      // Valid from when the renewal was sent, not when it returned.
      leaseValidUntil = started + leaseMs * SAFETY;
      const kept = new Set(rows.map((r) => r.payment_request_id));
      const lost = ownedIds.filter((id) => !kept.has(id));
      for (const id of lost) epochs.delete(id);
      return lost;
    },

    async adopt() {
      ensureOpen();
      // Each live worker takes the part of the adoptable lifecycles that hashes to its rank among the
      // live workers (the `workers` heartbeats, this one's refreshed here), so a dead worker's payments spread across the
      // survivors and are all taken in their first rounds after the lease ran out. A dead worker's
      // heartbeat ends with its leases (one renewal sets both), so it has no part by then. A part
      // nobody took for a third of the lease (its worker died too, or the live set changed), and a
      // lifecycle given back (no lease), goes to whoever looks first.
      const { rows } = await lq<Row>(
        `WITH beat AS (
           INSERT INTO ${schema}.workers (worker_id, heartbeat_at) VALUES ($1, now())
           ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()
         ), live AS (
           SELECT worker_id FROM ${schema}.workers
            WHERE heartbeat_at > now() - $2 * interval '1 millisecond' AND worker_id <> $1
           UNION ALL SELECT $1
         ), ranked AS (
           SELECT worker_id, (row_number() OVER (ORDER BY worker_id) - 1)::bigint AS rank,
                  count(*) OVER ()::bigint AS n
             FROM live
         ), me AS (
           SELECT rank, n FROM ranked WHERE worker_id = $1
         ), candidates AS (
           SELECT l.payment_request_id FROM ${schema}.lifecycles l LEFT JOIN me ON true
            WHERE (l.final = false OR l.settled_fired = false)
              AND (l.owner IS NULL OR l.lease_expires_at < now())
              AND (l.lease_expires_at IS NULL
                   OR l.lease_expires_at < now() - $4 * interval '1 millisecond'
                   OR mod(abs(hashtext(l.payment_request_id)::bigint), me.n) = me.rank)
            ORDER BY l.lease_expires_at NULLS FIRST
            LIMIT $3
            FOR UPDATE OF l SKIP LOCKED
         )
         UPDATE ${schema}.lifecycles AS l
            SET owner = $1, epoch = l.epoch + 1, lease_expires_at = now() + $2 * interval '1 millisecond'
           FROM candidates c
          WHERE l.payment_request_id = c.payment_request_id
      RETURNING l.*`,
        [workerId, leaseMs, config.adoptBatch, Math.floor(leaseMs / 3)],
      );
      return owned(rows);
    },

    async release(ids) {
      if (!opened || ids.length === 0) return;
      await q(
        `UPDATE ${schema}.lifecycles SET owner = NULL, lease_expires_at = NULL
          WHERE owner = $1 AND payment_request_id = ANY($2::text[])`,
        [workerId, ids],
      );
      await q(`DELETE FROM ${schema}.workers WHERE worker_id = $1`, [workerId]);
      await q('SELECT pg_notify($1, $2)', [releasedChannel, workerId]);
      for (const id of ids) epochs.delete(id);
    },

    async ownedWithUnappliedNotifications() {
      ensureOpen();
      const { rows } = await q<{ payment_request_id: string }>(
        `SELECT DISTINCT n.payment_request_id
           FROM ${schema}.notifications n
           JOIN ${schema}.lifecycles l ON l.payment_request_id = n.payment_request_id
          WHERE n.applied = false AND l.owner = $1 AND l.final = false`,
        [workerId],
      );
      return rows.map((r) => r.payment_request_id);
    },

    async listen(listener, onReleased) {
      ensureOpen();
      let stopped = false;
      /** The connection listening now, and how to detach from it. */
      let held: { client: pg.PoolClient; detach(): void } | undefined;
      let retry: NodeJS.Timeout | undefined;
      const onNotification = (message: pg.Notification) => {
        if (message.channel === channel && message.payload) listener(message.payload);
        else if (message.channel === releasedChannel && message.payload !== workerId) onReleased?.();
      };
      // A dedicated connection: LISTEN does not survive being handed back to a pool. If the server
      // ends it, it is opened again (after 0.5 s, then up to every 10 s while the server is away);
      // what was sent meanwhile is found by the engine's polling backstop, and a drain missed is
      // caught by asking for adoption once LISTEN is back.
      const connect = async (): Promise<void> => {
        const next = await pool.connect();
        const detach = () => {
          next.off('notification', onNotification);
          next.off('error', onLost);
        };
        const onLost = (error: Error) => {
          detach();
          next.release(error);
          // Lost while LISTEN was being set up: the failed query tells connect()'s caller instead.
          if (held?.client !== next) return;
          held = undefined;
          if (!stopped) schedule(500);
        };
        next.on('error', onLost);
        next.on('notification', onNotification);
        try {
          await next.query(`LISTEN ${channel}`);
          if (onReleased) await next.query(`LISTEN ${releasedChannel}`);
        } catch (error) {
          // Unless the connection's own 'error' came first and gave it back already.
          if (next.listeners('error').includes(onLost)) {
            detach();
            next.release(error instanceof Error ? error : true);
          }
          throw error;
        }
        held = { client: next, detach };
        if (stopped) await unlisten();
      };
      const schedule = (waitMs: number) => {
        retry = setTimeout(() => {
          retry = undefined;
          connect()
            .then(() => onReleased?.())
            .catch(() => {
              if (!stopped) schedule(Math.min(waitMs * 2, 10_000));
            });
        }, waitMs);
        retry.unref();
      };
      const unlisten = async () => {
        stopped = true;
        clearTimeout(retry);
        const current = held;
        held = undefined;
        if (!current) return;
        current.detach();
        await current.client.query('UNLISTEN *').catch(() => undefined);
        current.client.release();
      };
      await connect();
      return unlisten;
    },

    leaseValidUntil: () => leaseValidUntil,
  };

  async function insertAudit(client: pg.PoolClient, entries: AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await client.query(
      `INSERT INTO ${schema}.audit_log (payment_request_id, at, from_state, to_state, event, code)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])`,
      [
        entries.map((e) => e.paymentRequestId),
        entries.map((e) => e.at),
        entries.map((e) => e.from),
        entries.map((e) => e.to),
        entries.map((e) => e.event),
        entries.map((e) => e.code ?? null),
      ],
    );
  }

  return store;
}
