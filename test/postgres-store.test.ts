import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createAlipayPlusClient,
  createPaymentEngine,
  type LifecycleOutcome,
  type LifecycleRecord,
  type PaymentEngine,
  scaledClock,
} from '../src/index.js';
import { postgresStore } from '../src/postgres.js';
import { createSimulator, type Simulator } from '../src/simulator/index.js';
import { generateTestKeyPair } from './helpers/keys.js';
import { eventually } from './helpers/notify-receiver.js';
import { dropSchema, PG_URL, schemaName } from './helpers/postgres.js';

const schema = schemaName('apl_store');
afterAll(async () => {
  await dropSchema(schema);
});

const record = (id: string, extra: Partial<LifecycleRecord> = {}): LifecycleRecord => ({
  paymentRequestId: id,
  version: 1,
  input: { paymentRequestId: id, createdAt: 1_000 },
  state: 'awaitingResult.pending',
  final: false,
  snapshot: { value: 'x', context: {} },
  settledFired: false,
  createdAt: 1_000,
  updatedAt: 1_000,
  ...extra,
});

/**
 * A pool whose checked-out clients call `before(sql, client)` ahead of each query (pool.query() is
 * left as it is): for stalling or ending a connection in the middle of a transaction.
 */
function interceptedPool(before: (sql: string, client: pg.PoolClient) => Promise<void>): pg.Pool {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
  pool.on('error', () => undefined); // connections this test ends
  const connect = pool.connect.bind(pool) as (callback?: unknown) => Promise<pg.PoolClient>;
  const wrapped = new WeakSet<pg.PoolClient>();
  Object.assign(pool, {
    connect: async (callback?: unknown) => {
      if (callback) return connect(callback);
      const client = await connect();
      if (!wrapped.has(client)) {
        wrapped.add(client);
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        Object.assign(client, {
          query: async (...args: unknown[]) => {
            if (typeof args[0] === 'string') await before(args[0], client);
            return query(...args);
          },
        });
      }
      return client;
    },
  });
  return pool;
}

describe('postgresStore: ownership, leases and fencing', () => {
  it('migrates idempotently, even when several workers open at once', async () => {
    const stores = [1, 2, 3].map((i) =>
      postgresStore({ connectionString: PG_URL, schema, workerId: `m${i}` }),
    );
    await Promise.all(stores.map((s) => s.open()));
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    const { rows } = await client.query(`SELECT count(*)::int AS n FROM "${schema}".schema_migrations`);
    expect(rows[0].n).toBe(3);
    await client.end();
    await Promise.all(stores.map((s) => s.close()));
  });

  it('a worker that lost its lease cannot write: the adopter fences it out', async () => {
    const a = postgresStore({ connectionString: PG_URL, schema, workerId: 'A', leaseMs: 1_000 });
    const b = postgresStore({ connectionString: PG_URL, schema, workerId: 'B', leaseMs: 1_000 });
    await a.open();
    await b.open();
    expect(await a.insert(record('F1'), [])).toBe(true);
    expect(await b.acquire('F1')).toBeUndefined(); // A's lease is live
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // A is "paused" past its lease
    const adopted = await b.adopt();
    expect(adopted.map((r) => r.paymentRequestId)).toContain('F1');
    const write = {
      record: record('F1', { version: 2, state: 'cancelling.requesting' }),
      expectedVersion: 1,
      audit: [],
      appliedNotifications: [],
    };
    expect(await a.write([write])).toEqual([{ paymentRequestId: 'F1', expectedVersion: 1 }]);
    expect(await b.write([write])).toEqual([]);
    expect(await a.renew(['F1'])).toEqual(['F1']); // A learns it lost F1
    expect((await b.load('F1'))?.state).toBe('cancelling.requesting');
    await a.close();
    await b.close();
  });

  it('a worker frozen inside a transaction does not block adoption: the server ends that transaction, and fencing refuses its retry', async () => {
    // A's pool stalls the audit insert of one write: A then sits inside its transaction holding the
    // row lock, as a worker stopped by SIGSTOP or a frozen VM would.
    let stallMs = 0;
    const pool = interceptedPool(async (sql) => {
      if (stallMs > 0 && sql.includes('audit_log')) {
        const ms = stallMs;
        stallMs = 0; // once: the retry on a fresh connection runs unhindered
        await new Promise((resolve) => setTimeout(resolve, ms));
      }
    });
    const a = postgresStore({ pool, schema, workerId: 'FA', leaseMs: 1_000 });
    const b = postgresStore({ connectionString: PG_URL, schema, workerId: 'FB', leaseMs: 1_000 });
    await a.open();
    await b.open();
    expect(await a.insert(record('F2'), [])).toBe(true);
    stallMs = 2_500;
    const stalled = a.write([
      {
        record: record('F2', { version: 2, state: 'cancelling.requesting' }),
        expectedVersion: 1,
        audit: [
          {
            paymentRequestId: 'F2',
            at: 2,
            from: 'awaitingResult.pending',
            to: 'cancelling.requesting',
            event: 'CLOSE',
          },
        ],
        appliedNotifications: [],
      },
    ]);
    await new Promise((resolve) => setTimeout(resolve, 1_200)); // past A's lease
    expect((await b.adopt()).map((r) => r.paymentRequestId)).toContain('F2');
    // The server ended A's transaction; A ran it again on a fresh connection, and fencing refused it.
    expect(await stalled).toEqual([{ paymentRequestId: 'F2', expectedVersion: 1 }]);
    const stored = await b.load('F2');
    expect(stored?.version).toBe(1);
    expect(stored?.state).toBe('awaitingResult.pending');
    expect(await b.audit('F2')).toEqual([]);
    await a.close();
    await b.close();
    await pool.end();
  });

  it('a transaction whose connection is ended before its COMMIT runs once more on a fresh connection: the track is not lost', async () => {
    const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
    // Ends the server process of the connection right after its insert, before the audit and the
    // COMMIT, as a server restart or a stall past idle_in_transaction_session_timeout would.
    let endAfterInsert = 0;
    const pool = interceptedPool(async (sql, client) => {
      if (endAfterInsert > 0 && sql.includes('audit_log')) {
        endAfterInsert--;
        const pid = (client as unknown as { processID: number }).processID;
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        await new Promise((resolve) => setTimeout(resolve, 50)); // the 'error' event arrives
      }
    });
    const store = postgresStore({ pool, schema, workerId: 'TX', leaseMs: 5_000 });
    await store.open();
    const audit = (id: string) => [
      { paymentRequestId: id, at: 1, from: '', to: 'awaitingResult.pending', event: 'TRACK' },
    ];
    endAfterInsert = 1;
    expect(await store.insert(record('T1'), audit('T1'))).toBe(true);
    expect(endAfterInsert).toBe(0); // the first attempt was ended
    expect((await store.load('T1'))?.version).toBe(1);
    expect((await store.audit('T1')).map((e) => e.event)).toEqual(['TRACK']);
    // Ended twice running: the error reaches the caller, and nothing was stored.
    endAfterInsert = 2;
    await expect(store.insert(record('T2'), audit('T2'))).rejects.toThrow();
    expect(await store.load('T2')).toBeUndefined();
    expect(await store.audit('T2')).toEqual([]);
    await store.close();
    await pool.end();
    await admin.end();
  });

  it("a dead worker's lifecycles are all adopted in the survivors' first rounds, spread across them", async () => {
    const dead = postgresStore({ connectionString: PG_URL, schema, workerId: 'SP-dead', leaseMs: 1_000 });
    await dead.open();
    const ids = Array.from({ length: 40 }, (_, i) => `SP-${i}`);
    for (const id of ids) await dead.insert(record(id), []);
    // It died just now: its heartbeat is old and its leases have just run out. Set in the database
    // rather than waited for, so that a slow machine cannot age the leases past the third of a lease
    // after which any worker takes them all (the case this test is not about).
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await admin.query(
      `UPDATE ${schema}.workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'SP-dead'`,
    );
    await admin.query(`UPDATE ${schema}.lifecycles SET lease_expires_at = now() WHERE owner = 'SP-dead'`);
    await admin.end();
    // Leases of 10 s: the survivors' parts stay theirs for 3.3 s, however slowly the rounds below run.
    const b = postgresStore({ connectionString: PG_URL, schema, workerId: 'SP-b', leaseMs: 10_000 });
    const c = postgresStore({ connectionString: PG_URL, schema, workerId: 'SP-c', leaseMs: 10_000 });
    await b.open();
    await c.open();
    // One round each, back to back: nothing is left for a later round.
    const byB = (await b.adopt()).map((r) => r.paymentRequestId).filter((id) => id.startsWith('SP-'));
    const byC = (await c.adopt()).map((r) => r.paymentRequestId).filter((id) => id.startsWith('SP-'));
    expect([...byB, ...byC].sort()).toEqual([...ids].sort());
    expect(byB.length).toBeGreaterThanOrEqual(8);
    expect(byC.length).toBeGreaterThanOrEqual(8);
    for (const store of [dead, b, c]) await store.close();
  });

  it('renewal keeps a lease alive; release hands it over at once', async () => {
    const a = postgresStore({ connectionString: PG_URL, schema, workerId: 'RA', leaseMs: 1_000 });
    const b = postgresStore({ connectionString: PG_URL, schema, workerId: 'RB', leaseMs: 1_000 });
    await a.open();
    await b.open();
    await a.insert(record('R1'), []);
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await a.renew(['R1'])).toEqual([]);
    }
    expect((await b.adopt()).map((r) => r.paymentRequestId)).not.toContain('R1');
    await a.release(['R1']);
    expect((await b.adopt()).map((r) => r.paymentRequestId)).toContain('R1');
    await a.close();
    await b.close();
  });

  it('stores notifications once and wakes listeners on every worker', async () => {
    const a = postgresStore({ connectionString: PG_URL, schema, workerId: 'NA' });
    const b = postgresStore({ connectionString: PG_URL, schema, workerId: 'NB' });
    await a.open();
    await b.open();
    const heard: string[] = [];
    const stop = await a.listen((id) => heard.push(id));
    const body = {
      paymentRequestId: 'N1',
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' as const },
    };
    await b.recordNotification({ id: 'n-1', paymentRequestId: 'N1', receivedAt: 1, body, applied: false });
    await b.recordNotification({ id: 'n-1', paymentRequestId: 'N1', receivedAt: 2, body, applied: false });
    await eventually(() => heard.length >= 1);
    expect(heard[0]).toBe('N1');
    expect(await a.unappliedNotifications('N1')).toHaveLength(1);
    await stop();
    await a.close();
    await b.close();
  });

  it('a release wakes the other workers (not the one releasing), so that they adopt at once', async () => {
    const a = postgresStore({ connectionString: PG_URL, schema, workerId: 'WA' });
    const b = postgresStore({ connectionString: PG_URL, schema, workerId: 'WB' });
    await a.open();
    await b.open();
    await a.insert(record('W1'), []);
    expect(await a.acquire('W1')).toBeDefined();
    let wokenA = 0;
    let wokenB = 0;
    const stopA = await a.listen(
      () => undefined,
      () => wokenA++,
    );
    const stopB = await b.listen(
      () => undefined,
      () => wokenB++,
    );
    await a.release(['W1']);
    await eventually(() => wokenB === 1);
    expect((await b.adopt()).map((r) => r.paymentRequestId)).toContain('W1');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(wokenA).toBe(0);
    await stopA();
    await stopB();
    await a.close();
    await b.close();
  });

  it('refuses bad options with INVALID_OPTIONS', () => {
    expect(() => postgresStore({ schema: 'Bad-Name', connectionString: PG_URL })).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTIONS' }),
    );
    expect(() => postgresStore({} as never)).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTIONS' }),
    );
  });
});

describe('two engines sharing PostgreSQL', () => {
  const acqp = generateTestKeyPair();
  const alipay = generateTestKeyPair();
  const clock = scaledClock(60);
  let sim: Simulator;
  const engines: { engine: PaymentEngine; server: Server; url: string; settled: LifecycleOutcome[] }[] = [];
  const engineSchema = schemaName('apl_engines');

  async function worker(workerId: string) {
    const client = createAlipayPlusClient({
      baseUrl: sim.url,
      clientId: 'PG_CLIENT',
      privateKey: acqp.privatePem,
      alipayPublicKey: sim.publicKeyPem,
      now: clock.now,
    });
    const settled: LifecycleOutcome[] = [];
    const engine = createPaymentEngine({
      client,
      store: postgresStore({ connectionString: PG_URL, schema: engineSchema, workerId, leaseMs: 1_500 }),
      clock,
      onSettled: (o) => {
        settled.push(o);
      },
    });
    await engine.start();
    const server = createServer(
      engine.notificationHandler({
        alipayPublicKey: sim.publicKeyPem,
        privateKey: acqp.privatePem,
        clientId: 'PG_CLIENT',
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alipayplus/notify`;
    const w = { engine, server, url, settled };
    engines.push(w);
    return w;
  }

  beforeAll(async () => {
    sim = createSimulator({
      clientId: 'PG_CLIENT',
      acqpPublicKey: acqp.publicPem,
      privateKey: alipay.privatePem,
      now: clock.now,
    });
    await sim.start();
  });
  afterEach(async () => {
    for (const w of engines.splice(0)) {
      await w.engine.stop();
      w.server.close();
    }
  });
  afterAll(async () => {
    await sim.stop();
    await dropSchema(engineSchema);
  });

  it('a notification that lands on the worker that does not own the payment is applied by the owner', async () => {
    const a = await worker('owner');
    const b = await worker('other');
    // The order notifies B's endpoint; A tracks (and owns) the payment.
    const order = sim.createOrder({
      paymentRequestId: 'X-1',
      notifyUrl: b.url,
      scenario: { decideAfterMs: 600, notify: { inquiryLagMs: 600_000 } },
    });
    await a.engine.track({ paymentRequestId: 'X-1', amount: order.amount, createdAt: order.createdAt });
    const outcome = await a.engine.outcome('X-1');
    expect(outcome).toMatchObject({ status: 'succeeded', decidedBy: { source: 'notification' } });
    expect(a.settled.map((o) => o.paymentRequestId)).toEqual(['X-1']);
    expect(b.settled).toEqual([]);
    expect(b.engine.get('X-1')).toBeUndefined();
  });

  it('outcome() on a worker that does not own the payment resolves once the owner settles it', async () => {
    const a = await worker('settler');
    const b = await worker('asker');
    const order = sim.createOrder({ paymentRequestId: 'X-OUT', scenario: { decideAfterMs: 6_000 } });
    await a.engine.track({ paymentRequestId: 'X-OUT', amount: order.amount, createdAt: order.createdAt });
    // B holds no copy: its answer comes from the store, once A's outcome is there.
    const asked = b.engine.outcome('X-OUT');
    const outcome = await Promise.race([
      asked,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("B's outcome() never resolved")), 15_000).unref(),
      ),
    ]);
    expect(outcome).toMatchObject({ paymentRequestId: 'X-OUT', status: 'succeeded' });
    expect(await a.engine.outcome('X-OUT')).toEqual(outcome);
    expect(b.engine.activeCount).toBe(0);
  });

  it('track on a second worker does not steal a lifecycle with a live owner', async () => {
    const a = await worker('keeper');
    const b = await worker('visitor');
    const order = sim.createOrder({ paymentRequestId: 'X-2', scenario: { decideAfterMs: 30_000 } });
    await a.engine.track({ paymentRequestId: 'X-2', createdAt: order.createdAt });
    const view = await b.engine.track({ paymentRequestId: 'X-2', createdAt: order.createdAt });
    expect(view.final).toBe(false);
    expect(b.engine.activeCount).toBe(0);
    expect(a.engine.activeCount).toBe(1);
  });

  it('final lifecycles adopted for their settlement keep their leases while they wait their turn: each fires once', async () => {
    // A worker died with three outcomes final and not yet settled; settling each takes 700 ms, so
    // the last waits longer than a lease (1,000 ms) for its turn.
    const gone = postgresStore({
      connectionString: PG_URL,
      schema: engineSchema,
      workerId: 'gone',
      leaseMs: 1_000,
    });
    await gone.open();
    const ids = ['W-1', 'W-2', 'W-3'];
    for (const id of ids) {
      const outcome = {
        paymentRequestId: id,
        status: 'succeeded',
        decidedBy: { level: 'payment', code: 'SUCCESS' },
      };
      await gone.insert(record(id, { final: true, state: 'succeeded', outcome: outcome as never }), []);
    }
    await gone.close();
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // its leases run out
    const fired: string[] = [];
    const idle = {
      inquiryPayment: async () => ({ kind: 'no-result', reason: 'network', detail: 'unused' }) as const,
    };
    const settler = (workerId: string) =>
      createPaymentEngine({
        client: { ...idle, cancelPayment: idle.inquiryPayment },
        store: postgresStore({ connectionString: PG_URL, schema: engineSchema, workerId, leaseMs: 1_000 }),
        clock,
        onSettled: async (o) => {
          fired.push(`${workerId} ${o.paymentRequestId}`);
          await new Promise((resolve) => setTimeout(resolve, 700));
        },
      });
    const first = settler('first');
    await first.start();
    await eventually(() => fired.length >= 1, 3_000);
    const second = settler('second'); // would adopt any lifecycle whose lease ran out
    await second.start();
    await eventually(() => fired.length >= 3, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await first.stop();
    await second.stop();
    // Each once, and all by the worker that adopted them: their leases never ran out.
    expect(fired.sort()).toEqual(['first W-1', 'first W-2', 'first W-3']);
  });

  it('a drained worker hands its lifecycles over at once, and the adopter finishes them', async () => {
    const a = await worker('leaving');
    const b = await worker('staying');
    const ids = ['D-1', 'D-2', 'D-3'];
    for (const id of ids) {
      const order = sim.createOrder({
        paymentRequestId: id,
        scenario: { decideAfterMs: 20_000, notify: { mode: 'none' } },
      });
      await a.engine.track({ paymentRequestId: id, createdAt: order.createdAt });
    }
    await a.engine.stop();
    await eventually(() => ids.every((id) => b.engine.get(id) !== undefined), 3_000);
    const outcomes = await Promise.all(ids.map((id) => b.engine.outcome(id)));
    expect(outcomes.map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  });
});

describe('postgresStore: late notifications left unapplied', () => {
  it('unappliedOfFinal lists them for final lifecycles of this worker', async () => {
    const store = postgresStore({ connectionString: PG_URL, schema, workerId: 'L' });
    await store.open();
    await store.insert(record('LF', { final: true, state: 'succeeded' }), []);
    await store.insert(record('LO'), []);
    const body = (id: string) => ({
      paymentRequestId: id,
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' as const },
    });
    await store.recordNotification({
      id: 'pg-late',
      paymentRequestId: 'LF',
      receivedAt: 1,
      body: body('LF'),
      applied: false,
    });
    await store.recordNotification({
      id: 'pg-open',
      paymentRequestId: 'LO',
      receivedAt: 1,
      body: body('LO'),
      applied: false,
    });
    expect((await store.unappliedOfFinal()).map((n) => n.id)).toEqual(['pg-late']);
    // The schema is shared by this file's tests: only these two payments are looked at.
    const mine = async () =>
      (await store.withUnappliedNotifications()).filter((id) => id === 'LF' || id === 'LO').sort();
    expect(await mine()).toEqual(['LF', 'LO']);
    await store.markNotificationApplied('pg-open');
    expect(await mine()).toEqual(['LF']);
    await store.close();
  });
});
