import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type AttentionResolution,
  type AttentionResolvedEvent,
  type AuditEntry,
  createPaymentEngine,
  type LifecycleOutcome,
  type LifecycleRecord,
  type LifecycleStore,
  memoryStore,
  sqliteStore,
} from '../src/index.js';
import { postgresStore } from '../src/postgres.js';
import { attentionByMismatch, payAndTrack, worldsStoppedAfterEach } from './helpers/e2e.js';
import { dropSchema, PG_URL, schemaName } from './helpers/postgres.js';
import { fileTempDir } from './helpers/temp-dir.js';

const dir = fileTempDir('apl-attention-');
const pgSchemas: string[] = [];
afterAll(async () => {
  for (const schema of pgSchemas) await dropSchema(schema);
});
let n = 0;

const outcome = (id: string, status: LifecycleOutcome['status'], decidedAt: number): LifecycleOutcome => ({
  status,
  paymentRequestId: id,
  decidedBy: { source: 'inquiry', level: 'call', code: 'ACCESS_DENIED', status: 'F' },
  ...(status === 'attention' ? { attentionReason: 'integration-fault' as const } : {}),
  details: { paymentAmount: { currency: 'JPY', value: '100' } },
  inquiries: 1,
  cancelAttempts: 0,
  decidedAt,
  lateNotifications: [],
});

/** A lifecycle as the engine stores it: final ones carry their outcome and sit in the state of that name. */
const record = (
  id: string,
  status?: LifecycleOutcome['status'],
  decidedAt = 5_000,
  state = 'awaitingResult.pending',
): LifecycleRecord => ({
  paymentRequestId: id,
  version: 3,
  input: { paymentRequestId: id, createdAt: 1_000 },
  state: status ?? state,
  final: status !== undefined,
  snapshot: { value: status ?? state, context: { id } },
  ...(status ? { outcome: outcome(id, status, decidedAt) } : {}),
  settledFired: true,
  createdAt: 1_000 + n++,
  updatedAt: decidedAt,
});

const resolution = (id: string, extra: Partial<AttentionResolution> = {}): AttentionResolution => ({
  paymentRequestId: id,
  action: 'refunded-by-hand',
  note: 'refunded through the wallet portal, ticket 42',
  by: 'kenji',
  at: 9_000,
  ...extra,
});
const auditOf = (r: AttentionResolution): AuditEntry => ({
  paymentRequestId: r.paymentRequestId,
  at: r.at,
  from: 'attention',
  to: 'attention',
  event: 'attention-resolved',
  code: r.action,
});

const stores: [string, () => LifecycleStore][] = [
  ['memory', () => memoryStore()],
  ['sqlite (writer thread)', () => sqliteStore(join(dir, `store-${n++}.db`))],
  ['sqlite (writes in-thread)', () => sqliteStore(join(dir, `store-${n++}.db`), { writerThread: false })],
  [
    'postgres',
    () => {
      const schema = schemaName('apl_attention');
      pgSchemas.push(schema);
      return postgresStore({ connectionString: PG_URL, schema });
    },
  ],
];

describe.each(stores)('attention queue in the %s store', (_name, make) => {
  async function opened(...records: LifecycleRecord[]) {
    const store = make();
    await store.open();
    for (const r of records)
      await store.insert(r, [
        { paymentRequestId: r.paymentRequestId, at: 1, from: '', to: r.state, event: 'TRACK' },
      ]);
    return store;
  }

  it('lists final attention outcomes oldest decision first; resolved ones only with `all`', async () => {
    const store = await opened(
      record('late', 'attention', 8_000),
      record('early', 'attention', 2_000),
      record('paid', 'succeeded', 1_000),
      record('waiting'),
      record('middle', 'attention', 4_000),
    );
    expect((await store.attentionItems()).map((i) => i.record.paymentRequestId)).toEqual([
      'early',
      'middle',
      'late',
    ]);
    expect(await store.resolveAttention(resolution('middle'), auditOf(resolution('middle')))).toBe(
      'resolved',
    );

    const open = await store.attentionItems();
    expect(open.map((i) => i.record.paymentRequestId)).toEqual(['early', 'late']);
    expect(open.every((i) => i.resolution === undefined)).toBe(true);
    const all = await store.attentionItems({ all: true });
    expect(all.map((i) => [i.record.paymentRequestId, i.resolution?.by])).toEqual([
      ['early', undefined],
      ['middle', 'kenji'],
      ['late', undefined],
    ]);
    expect(all[1]?.resolution).toEqual(resolution('middle'));
    expect(all[1]?.record.outcome).toEqual(outcome('middle', 'attention', 4_000));
    await store.close();
  });

  it('records the resolution with its audit entry, and leaves the lifecycle row as it was', async () => {
    const store = await opened(record('A', 'attention'));
    const before = await store.load('A');
    const r = resolution('A', { action: 'confirmed-unpaid', note: 'wallet says never charged' });
    expect(await store.resolveAttention(r, auditOf(r))).toBe('resolved');
    expect(await store.load('A')).toEqual(before);
    expect((await store.audit('A')).map((e) => [e.event, e.from, e.to, e.code, e.at])).toEqual([
      ['TRACK', '', 'attention', undefined, 1],
      ['attention-resolved', 'attention', 'attention', 'confirmed-unpaid', 9_000],
    ]);
    await store.close();
  });

  it('refuses an unknown, a non-attention and an already resolved payment, and writes nothing then', async () => {
    const store = await opened(record('done', 'succeeded'), record('open'), record('A', 'attention'));
    const first = resolution('A');
    expect(await store.resolveAttention(first, auditOf(first))).toBe('resolved');
    const snapshot = async () => ({
      items: await store.attentionItems({ all: true }),
      audits: await Promise.all(['done', 'open', 'A', 'ghost'].map((id) => store.audit(id))),
      records: await Promise.all(['done', 'open', 'A', 'ghost'].map((id) => store.load(id))),
    });
    const before = await snapshot();

    const refusals = [
      ['ghost', 'unknown'],
      ['done', 'not-attention'],
      ['open', 'not-attention'],
      ['A', 'already-resolved'],
    ] as const;
    for (const [id, expected] of refusals) {
      const second = resolution(id, { by: 'someone-else', action: 'other', at: 9_500 });
      expect(await store.resolveAttention(second, auditOf(second))).toBe(expected);
    }
    expect(await snapshot()).toEqual(before);
    expect(before.items[0]?.resolution?.by).toBe('kenji');
    await store.close();
  });

  it('lets exactly one of two resolutions at once through', async () => {
    const store = await opened(record('A', 'attention'));
    const one = resolution('A', { by: 'one' });
    const two = resolution('A', { by: 'two' });
    const answers = await Promise.all([
      store.resolveAttention(one, auditOf(one)),
      store.resolveAttention(two, auditOf(two)),
    ]);
    expect(answers.sort()).toEqual(['already-resolved', 'resolved']);
    expect((await store.audit('A')).filter((e) => e.event === 'attention-resolved')).toHaveLength(1);
    await store.close();
  });

  it('counts lifecycles per state, final ones under their status', async () => {
    const store = await opened(
      record('a', 'attention'),
      record('b', 'attention'),
      record('c', 'succeeded'),
      record('d'),
      record('e'),
      record('f', undefined, 0, 'cancelling.requesting'),
    );
    const r = resolution('a');
    await store.resolveAttention(r, auditOf(r)); // a resolution leaves the count as it was
    expect(await store.stateCounts()).toEqual({
      attention: 2,
      succeeded: 1,
      'awaitingResult.pending': 2,
      'cancelling.requesting': 1,
    });
    await store.close();
  });
});

// ---- the engine ---------------------------------------------------------------------------------

const world = worldsStoppedAfterEach();

describe('engine.attention() and engine.resolve()', () => {
  const resolveInput = {
    action: 'confirmed-paid',
    note: 'merchant confirmed the charge',
    by: 'aiko',
  } as const;

  it('lists open items with reason, amount, age and audit history; a resolution takes one off the queue', async () => {
    const w = await world();
    const first = await attentionByMismatch(w, 'ATT-1');
    const second = await attentionByMismatch(w, 'ATT-2');
    await payAndTrack(w, 'OK-1', { decideAfterMs: 0 });
    expect((await w.engine.outcome('OK-1')).status).toBe('succeeded');
    expect([first.status, first.attentionReason]).toEqual(['attention', 'amount-mismatch']);

    const before = w.clock.now();
    const open = await w.engine.attention();
    expect(open.map((v) => v.paymentRequestId)).toEqual(['ATT-1', 'ATT-2']);
    expect(open[0]).toMatchObject({
      reason: 'amount-mismatch',
      amount: first.details.paymentAmount,
      decidedAt: first.decidedAt,
    });
    expect(open[0]?.ageMs).toBeGreaterThanOrEqual(0);
    expect(open[0]?.ageMs).toBeLessThanOrEqual(w.clock.now() - first.decidedAt);
    expect(open[1]?.decidedAt).toBe(second.decidedAt);
    expect(open[0]?.audit.at(-1)).toMatchObject({
      to: 'attention',
      event: 'NOTIFIED',
      code: 'AMOUNT_MISMATCH',
    });
    expect(open[0]?.resolution).toBeUndefined();

    const events: AttentionResolvedEvent[] = [];
    w.engine.on('attention-resolved', (event) => events.push(event));
    const stored = await w.store.load('ATT-1');
    const resolution = await w.engine.resolve('ATT-1', resolveInput);
    const after = w.clock.now();
    expect(resolution).toMatchObject({ paymentRequestId: 'ATT-1', ...resolveInput });
    expect(resolution.at).toBeGreaterThanOrEqual(before);
    expect(resolution.at).toBeLessThanOrEqual(after);
    expect(events).toEqual([{ ...resolution, reason: 'amount-mismatch' }]);

    expect((await w.engine.attention()).map((v) => v.paymentRequestId)).toEqual(['ATT-2']);
    const all = await w.engine.attention({ all: true });
    expect(all.map((v) => [v.paymentRequestId, v.resolution?.by])).toEqual([
      ['ATT-1', 'aiko'],
      ['ATT-2', undefined],
    ]);
    expect(all[0]?.audit.at(-1)).toEqual({
      paymentRequestId: 'ATT-1',
      at: resolution.at,
      from: 'attention',
      to: 'attention',
      event: 'attention-resolved',
      code: 'confirmed-paid',
    });
    // The outcome and the stored lifecycle are exactly what the lifecycle decided.
    expect(await w.engine.outcome('ATT-1')).toEqual(first);
    expect(await w.store.load('ATT-1')).toEqual(stored);
  });

  it('refuses with a typed error and writes nothing: unknown, not in attention, resolved already, bad input', async () => {
    const w = await world();
    await attentionByMismatch(w, 'ATT-1');
    await payAndTrack(w, 'OK-1', { decideAfterMs: 0 });
    await w.engine.outcome('OK-1');
    await w.engine.resolve('ATT-1', {
      action: 'refunded-by-hand',
      note: 'refunded at the counter',
      by: 'kenji',
    });
    const events: unknown[] = [];
    w.engine.on('attention-resolved', (event) => events.push(event));
    const state = async () => ({
      items: await w.store.attentionItems({ all: true }),
      audits: await Promise.all(['ATT-1', 'OK-1'].map((id) => w.store.audit(id))),
    });
    const before = await state();

    await expect(w.engine.resolve('NOPE-1', resolveInput)).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringContaining('NOPE-1 is not known'),
    });
    await expect(w.engine.resolve('OK-1', resolveInput)).rejects.toMatchObject({
      code: 'ATTENTION_NOT_OPEN',
      message: expect.stringContaining('ended succeeded'),
    });
    const resolvedAt = new Date(before.items[0]?.resolution?.at ?? 0).toISOString();
    await expect(w.engine.resolve('ATT-1', resolveInput)).rejects.toMatchObject({
      code: 'ATTENTION_NOT_OPEN',
      message: expect.stringContaining(`resolved already by kenji at ${resolvedAt}`),
    });
    const bad = [
      { ...resolveInput, action: 'shrugged' },
      { ...resolveInput, note: '   ' },
      { ...resolveInput, note: 'x'.repeat(501) },
      { ...resolveInput, by: '' },
      { ...resolveInput, by: 'y'.repeat(101) },
      { action: 'other', note: 'missing who' },
    ];
    for (const input of bad) {
      await expect(w.engine.resolve('OK-1', input as never)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    }
    expect(await state()).toEqual(before);
    expect(events).toEqual([]);
  });

  it('needs a started engine', async () => {
    const engine = createPaymentEngine({
      client: { inquiryPayment: async () => never(), cancelPayment: async () => never() },
      store: memoryStore(),
    });
    await expect(engine.attention()).rejects.toMatchObject({ code: 'NOT_STARTED' });
    await expect(engine.resolve('ATT-1', { action: 'other', note: 'n', by: 'b' })).rejects.toMatchObject({
      code: 'NOT_STARTED',
    });
  });
});

function never(): never {
  throw new Error('no call is expected');
}
