import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
import {
  type LifecycleRecord,
  type LifecycleStore,
  type LifecycleWrite,
  memoryStore,
  sqliteStore,
} from '../src/index.js';
import { fileTempDir } from './helpers/temp-dir.js';

const dir = fileTempDir('apl-stores-');
let n = 0;

const record = (id: string, extra: Partial<LifecycleRecord> = {}): LifecycleRecord => ({
  paymentRequestId: id,
  version: 1,
  input: { paymentRequestId: id, createdAt: 1_000 },
  state: 'awaitingResult.pending',
  final: false,
  snapshot: { value: { awaitingResult: 'pending' }, context: { n: 1 } },
  settledFired: false,
  createdAt: 1_000 + n++,
  updatedAt: 1_000,
  ...extra,
});

const stores: [string, () => LifecycleStore][] = [
  ['memory', () => memoryStore()],
  ['sqlite (writer thread)', () => sqliteStore(join(dir, `store-${n++}.db`))],
  ['sqlite (writes in-thread)', () => sqliteStore(join(dir, `store-${n++}.db`), { writerThread: false })],
  ['sqlite (:memory:)', () => sqliteStore(':memory:')],
];
const sqliteStores: [string, (path: string) => LifecycleStore][] = [
  ['writer thread', (path) => sqliteStore(path)],
  ['writes in-thread', (path) => sqliteStore(path, { writerThread: false })],
];
const advance = (id: string, from: number, extra: Partial<LifecycleWrite> = {}): LifecycleWrite => ({
  record: record(id, { version: from + 1 }),
  expectedVersion: from,
  audit: [],
  appliedNotifications: [],
  ...extra,
});

describe.each(stores)('%s store', (_name, make) => {
  async function opened() {
    const store = make();
    await store.open();
    return store;
  }

  it('inserts once: a second insert of the same payment is refused and changes nothing', async () => {
    const store = await opened();
    expect(
      await store.insert(record('A'), [{ paymentRequestId: 'A', at: 1, from: '', to: 'x', event: 'TRACK' }]),
    ).toBe(true);
    expect(await store.insert(record('A', { state: 'other' }), [])).toBe(false);
    expect((await store.load('A'))?.state).toBe('awaitingResult.pending');
    expect(await store.audit('A')).toHaveLength(1);
    await store.close();
  });

  it('writes with an optimistic version: a stale writer is refused, the others land in one batch', async () => {
    const store = await opened();
    await store.insert(record('A'), []);
    await store.insert(record('B'), []);
    const conflicts = await store.write([
      {
        record: record('A', { version: 2, state: 'cancelling.requesting' }),
        expectedVersion: 1,
        audit: [],
        appliedNotifications: [],
      },
      { record: record('B', { version: 6 }), expectedVersion: 5, audit: [], appliedNotifications: [] },
    ]);
    expect(conflicts).toEqual([{ paymentRequestId: 'B', expectedVersion: 5 }]);
    expect(await store.load('A')).toMatchObject({ version: 2, state: 'cancelling.requesting' });
    expect(await store.load('B')).toMatchObject({ version: 1 });
    await store.close();
  });

  it('lists the resumable: unfinished, or finished with the settlement not fired', async () => {
    const store = await opened();
    await store.insert(record('open'), []);
    await store.insert(record('done-unsettled', { final: true, state: 'succeeded' }), []);
    await store.insert(record('done-settled', { final: true, state: 'failed' }), []);
    await store.markSettled('done-settled');
    const ids = (await store.listResumable()).map((r) => r.paymentRequestId).sort();
    expect(ids).toEqual(['done-unsettled', 'open']);
    await store.close();
  });

  it('keeps the audit log in order and notifications with their applied flag, once per id', async () => {
    const store = await opened();
    await store.insert(record('A'), [{ paymentRequestId: 'A', at: 1, from: '', to: 'p', event: 'TRACK' }]);
    const body = {
      paymentRequestId: 'A',
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' as const },
    };
    await store.recordNotification({ id: 'n1', paymentRequestId: 'A', receivedAt: 5, body, applied: false });
    await store.recordNotification({ id: 'n1', paymentRequestId: 'A', receivedAt: 6, body, applied: false });
    expect(await store.unappliedNotifications('A')).toHaveLength(1);
    await store.write([
      {
        record: record('A', { version: 2, state: 'succeeded', final: true }),
        expectedVersion: 1,
        audit: [
          { paymentRequestId: 'A', at: 7, from: 'p', to: 'succeeded', event: 'NOTIFIED', code: 'SUCCESS' },
        ],
        appliedNotifications: ['n1'],
      },
    ]);
    expect(await store.unappliedNotifications('A')).toEqual([]);
    expect((await store.audit('A')).map((e) => [e.event, e.code])).toEqual([
      ['TRACK', undefined],
      ['NOTIFIED', 'SUCCESS'],
    ]);
    await store.recordNotification({
      id: 'n2',
      paymentRequestId: 'B',
      receivedAt: 8,
      body: { ...body, paymentRequestId: 'B' },
      applied: false,
    });
    await store.markNotificationApplied('n2');
    expect(await store.notifications('B')).toMatchObject([{ id: 'n2', applied: true }]);
    await store.close();
  });

  it('round-trips the snapshot and outcome as JSON', async () => {
    const store = await opened();
    const snapshot = { value: 'succeeded', context: { nested: { list: [1, 'two', null] } } };
    await store.insert(record('J', { snapshot }), []);
    expect((await store.load('J'))?.snapshot).toEqual(snapshot);
    await store.close();
  });
});

describe('sqlite store', () => {
  it('survives reopening, applies its migrations once, and runs in WAL mode', async () => {
    const path = join(dir, 'reopen.db');
    const first = sqliteStore(path);
    await first.open();
    await first.insert(record('keep'), []);
    await first.close();
    const second = sqliteStore(path);
    await second.open();
    expect((await second.load('keep'))?.paymentRequestId).toBe('keep');
    await second.close();
    const db = new Database(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.prepare('SELECT count(*) AS n FROM schema_migrations').get()).toEqual({ n: 3 });
    db.close();
  });

  it('creates its folder, and says what to do when used before open()', async () => {
    const store = sqliteStore(join(dir, 'nested', 'deeper', 'x.db'));
    await expect(store.load('x')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await store.open();
    expect(await store.load('x')).toBeUndefined();
    await store.close();
  });
});

describe.each(sqliteStores)('sqlite store, %s', (_name, make) => {
  it('a failing write rejects with the SQLite error and commits nothing of its batch; the next write works', async () => {
    const store = make(join(dir, `fail-${n++}.db`));
    await store.open();
    await store.insert(record('A'), []);
    await store.insert(record('B'), []);
    // An audit entry without its event violates NOT NULL: the whole group commit rolls back.
    const bad = { paymentRequestId: 'B', at: 1, from: 'p', to: 'q', event: null as unknown as string };
    await expect(store.write([advance('A', 1), advance('B', 1, { audit: [bad] })])).rejects.toMatchObject({
      name: 'SqliteError',
      code: 'SQLITE_CONSTRAINT_NOTNULL',
    });
    expect((await store.load('A'))?.version).toBe(1);
    expect(await store.write([advance('A', 1), advance('B', 1)])).toEqual([]);
    expect((await store.load('B'))?.version).toBe(2);
    await store.close();
  });

  it('commits writes in call order, each visible to a read once it resolves', async () => {
    const store = make(join(dir, `order-${n++}.db`));
    await store.open();
    await store.insert(record('A'), []);
    // Sent without waiting: each names the version the one before it writes.
    const writes = Array.from({ length: 20 }, (_, i) =>
      store
        .write([
          advance('A', i + 1, {
            audit: [{ paymentRequestId: 'A', at: i, from: `s${i}`, to: `s${i + 1}`, event: 'E' }],
          }),
        ])
        .then(async (conflicts) => ({ conflicts, read: (await store.load('A'))?.version })),
    );
    const done = await Promise.all(writes);
    expect(done.map((d) => d.conflicts)).toEqual(done.map(() => []));
    for (const [i, d] of done.entries()) expect(d.read).toBeGreaterThanOrEqual(i + 2);
    expect((await store.audit('A')).map((e) => e.at)).toEqual(done.map((_, i) => i));
    await store.close();
  });

  it('close() lets the writes already sent commit; later calls reject with a typed error; open() works again', async () => {
    const store = make(join(dir, `close-${n++}.db`));
    await store.open();
    const inserting = store.insert(record('A'), []);
    const closing = store.close();
    await expect(store.markSettled('A')).rejects.toMatchObject({
      name: 'AlipayPlusLifecycleError',
      code: 'STORE_UNAVAILABLE',
    });
    await expect(inserting).resolves.toBe(true);
    await closing;
    await store.close();
    await expect(store.load('A')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await store.open();
    expect((await store.load('A'))?.paymentRequestId).toBe('A');
    await store.close();
  });

  it('two stores on one file: each sees what the other committed, and a stale write is refused', async () => {
    const path = join(dir, `shared-${n++}.db`);
    const [one, two] = [make(path), make(path)];
    await one.open();
    await two.open();
    await one.insert(record('A'), []);
    expect(await two.insert(record('A'), [])).toBe(false);
    expect(await two.write([advance('A', 1)])).toEqual([]);
    expect(await one.write([advance('A', 1)])).toEqual([{ paymentRequestId: 'A', expectedVersion: 1 }]);
    expect((await one.load('A'))?.version).toBe(2);
    await Promise.all([one.close(), two.close()]);
  });
});

describe('sqlite store: the writer thread', () => {
  const repoRoot = fileURLToPath(new URL('..', import.meta.url));
  const indexUrl = new URL('../src/index.ts', import.meta.url).href;

  /** Runs an ESM snippet under tsx; resolves with its exit code and how long it lived after its last line. */
  function child(body: string): Promise<{ code: number | null; lines: string[]; afterLastLineMs: number }> {
    const script = `const { sqliteStore } = await import(${JSON.stringify(indexUrl)});\n${body}`;
    const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    let lastLineAt = performance.now();
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      lines.push(...chunk.split('\n').filter(Boolean));
      lastLineAt = performance.now();
    });
    const killer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    return new Promise((resolve) =>
      proc.on('exit', (code) => {
        clearTimeout(killer);
        resolve({ code, lines, afterLastLineMs: performance.now() - lastLineAt });
      }),
    );
  }
  const insertA = `{ paymentRequestId: 'A', version: 1, input: {}, state: 's', final: true, snapshot: {}, settledFired: false, createdAt: 1, updatedAt: 1 }`;
  const settledOf = (path: string) => {
    const db = new Database(path, { readonly: true });
    const row = db.prepare('SELECT settled_fired FROM lifecycles WHERE payment_request_id = ?').get('A');
    db.close();
    return row;
  };

  it('does not keep the process alive after close()', async () => {
    const path = join(dir, `exit-${n++}.db`);
    const run = await child(`
      const store = sqliteStore(${JSON.stringify(path)});
      await store.open();
      await store.insert(${insertA}, []);
      await store.markSettled('A');
      await store.close();
      console.log('closed');
    `);
    expect(run).toMatchObject({ code: 0, lines: ['closed'] });
    expect(run.afterLastLineMs).toBeLessThan(3_000);
    expect(settledOf(path)).toEqual({ settled_fired: 1 });
  }, 20_000);

  it('keeps the process alive while a write is pending, and not once it has committed', async () => {
    const path = join(dir, `pending-${n++}.db`);
    const run = await child(`
      const store = sqliteStore(${JSON.stringify(path)});
      await store.open();
      await store.insert(${insertA}, []);
      store.markSettled('A').then(() => console.log('marked'));
      console.log('sent');
    `);
    expect(run).toMatchObject({ code: 0, lines: ['sent', 'marked'] });
    expect(run.afterLastLineMs).toBeLessThan(3_000);
    expect(settledOf(path)).toEqual({ settled_fired: 1 });
  }, 20_000);

  it('when it dies, pending and later writes reject with STORE_UNAVAILABLE, reads go on, close() and open() recover', async () => {
    const store = sqliteStore(join(dir, `dies-${n++}.db`));
    await store.open();
    await store.insert(record('A', { final: true }), []);
    const post = vi.spyOn(Worker.prototype, 'postMessage').mockImplementationOnce(function (this: Worker) {
      void this.terminate();
    });
    await expect(store.markSettled('A')).rejects.toMatchObject({
      name: 'AlipayPlusLifecycleError',
      code: 'STORE_UNAVAILABLE',
    });
    post.mockRestore();
    await expect(store.insert(record('B'), [])).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect((await store.load('A'))?.settledFired).toBe(false);
    await store.close();
    await store.open();
    await store.markSettled('A');
    expect((await store.load('A'))?.settledFired).toBe(true);
    await store.close();
  });
});

describe.each(stores)('%s store: late notifications left unapplied', (_name, make) => {
  it('unappliedOfFinal lists unapplied notifications of final lifecycles only', async () => {
    const store = make();
    await store.open();
    await store.insert(record('FIN', { final: true, state: 'succeeded' }), []);
    await store.insert(record('OPEN'), []);
    const body = (id: string) => ({
      paymentRequestId: id,
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' as const },
    });
    await store.recordNotification({
      id: 'late',
      paymentRequestId: 'FIN',
      receivedAt: 1,
      body: body('FIN'),
      applied: false,
    });
    await store.recordNotification({
      id: 'open',
      paymentRequestId: 'OPEN',
      receivedAt: 1,
      body: body('OPEN'),
      applied: false,
    });
    expect((await store.unappliedOfFinal()).map((n) => n.id)).toEqual(['late']);
    expect((await store.withUnappliedNotifications()).sort()).toEqual(['FIN', 'OPEN']);
    await store.markNotificationApplied('late');
    expect(await store.unappliedOfFinal()).toEqual([]);
    expect(await store.withUnappliedNotifications()).toEqual(['OPEN']);
    await store.markNotificationApplied('open');
    expect(await store.withUnappliedNotifications()).toEqual([]);
    await store.close();
  });
});
