import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { type LifecycleRecord, type LifecycleStore, memoryStore, sqliteStore } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'apl-stores-'));
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
  ['sqlite', () => sqliteStore(join(dir, `store-${n++}.db`))],
];

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
    expect(db.prepare('SELECT count(*) AS n FROM schema_migrations').get()).toEqual({ n: 1 });
    db.close();
  });

  it('creates its folder, and says what to do when used before open()', async () => {
    const store = sqliteStore(join(dir, 'nested', 'deeper', 'x.db'));
    await expect(store.load('x')).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    await store.open();
    expect(await store.load('x')).toBeUndefined();
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
    await store.markNotificationApplied('late');
    expect(await store.unappliedOfFinal()).toEqual([]);
    await store.close();
  });
});
