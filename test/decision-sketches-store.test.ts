import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { type DecisionSketch, mergeSketches, SketchBuilder } from '../machines/decision-model.js';
import { type LifecycleStore, memoryStore, sqliteStore } from '../src/index.js';
import { postgresStore } from '../src/postgres.js';
import { readMigrations } from '../src/stores/sql-files.js';
import { dropSchema, PG_URL, schemaName } from './helpers/postgres.js';
import { fileTempDir } from './helpers/temp-dir.js';

const dir = fileTempDir('apl-sketches-');
let n = 0;

/** A batch of observations, as a worker hands it over: `count` decisions, each in (after, by]. */
function batch(count: number, after = 1_000, by = 1_000): DecisionSketch {
  const builder = new SketchBuilder();
  for (let i = 0; i < count; i++) builder.add({ decided: true, after, by });
  return builder.toSketch();
}

/**
 * One place sketches are kept. `store()` opens a store on it (again: another store on the same data,
 * as a restarted process or a second worker sees it; memory: the same store); `writeRaw` puts a row
 * there behind the store's back (the SQL stores).
 */
interface Place {
  store(): Promise<LifecycleStore>;
  writeRaw?(walletKey: string, sketch: string): Promise<void>;
}

const sqlitePlace = (options: { writerThread?: boolean }) => (): Place => {
  const path = join(dir, `sketches-${n++}.db`);
  return {
    async store() {
      const store = sqliteStore(path, options);
      await store.open();
      return store;
    },
    async writeRaw(walletKey, sketch) {
      const db = new Database(path);
      db.pragma('busy_timeout = 5000');
      db.prepare(
        `INSERT INTO decision_sketches (wallet_key, sketch, samples, updated_at) VALUES (?, ?, 0, 0)
           ON CONFLICT (wallet_key) DO UPDATE SET sketch = excluded.sketch`,
      ).run(walletKey, sketch);
      db.close();
    },
  };
};

// A schema per test: each starts from an empty table, and nothing is shared with the other files'
// schemas when the suites run in parallel.
const schemas: string[] = [];
afterAll(async () => {
  for (const schema of schemas) await dropSchema(schema);
});
const postgresPlace = (): Place => {
  const schema = schemaName('apl_sketches');
  schemas.push(schema);
  return {
    async store() {
      const store = postgresStore({ connectionString: PG_URL, schema, workerId: `sk-${n++}` });
      await store.open();
      return store;
    },
    async writeRaw(walletKey, sketch) {
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      await client.query(
        `INSERT INTO "${schema}".decision_sketches (wallet_key, sketch, samples, updated_at) VALUES ($1, $2, 0, 0)
         ON CONFLICT (wallet_key) DO UPDATE SET sketch = excluded.sketch`,
        [walletKey, sketch],
      );
      await client.end();
    },
  };
};

const places: [string, () => Place][] = [
  [
    'memory',
    () => {
      // One store for the whole test: `store()` hands it out again, open.
      const store = memoryStore();
      return { store: async () => store };
    },
  ],
  ['sqlite (writer thread)', sqlitePlace({})],
  ['sqlite (writes in-thread)', sqlitePlace({ writerThread: false })],
  ['postgres', postgresPlace],
];

describe.each(places)('%s store: decision sketches', (name, make) => {
  it('an empty store has none', async () => {
    const store = await make().store();
    expect(await store.decisionSketches()).toEqual(new Map());
    await store.close();
  });

  it('merges each batch after the stored sketch, per wallet key', async () => {
    const store = await make().store();
    const first = batch(3, 1_000, 2_500);
    const second = batch(2, 4_000, 4_000);
    const merged = await store.mergeDecisionSketch('walletA', first);
    expect(merged).toEqual(mergeSketches(undefined, first));
    expect(await store.decisionSketches()).toEqual(new Map([['walletA', merged]]));

    const again = await store.mergeDecisionSketch('walletA', second);
    expect(again).toEqual(mergeSketches(merged, second));
    expect(again.samples).toBe(5);

    // '' (every wallet together) is a key of its own.
    const all = await store.mergeDecisionSketch('', second);
    expect(all).toEqual(mergeSketches(undefined, second));
    expect(await store.decisionSketches()).toEqual(
      new Map([
        ['walletA', again],
        ['', all],
      ]),
    );
    await store.close();
  });

  it("counts each wallet's merges in its revision, and reads the sketches of the wallets asked for", async () => {
    const store = await make().store();
    expect(await store.decisionSketchRevisions()).toEqual(new Map());
    await store.mergeDecisionSketch('walletA', batch(1));
    const a = await store.mergeDecisionSketch('walletA', batch(2));
    const b = await store.mergeDecisionSketch('walletB', batch(1));
    expect(await store.decisionSketchRevisions()).toEqual(
      new Map([
        ['walletA', 2],
        ['walletB', 1],
      ]),
    );
    expect(await store.decisionSketches(['walletB'])).toEqual(new Map([['walletB', b]]));
    expect(await store.decisionSketches(['walletA', 'nobody'])).toEqual(new Map([['walletA', a]]));
    expect(await store.decisionSketches([])).toEqual(new Map());
    await store.close();
  });

  it('hands out copies: changing one changes nothing stored', async () => {
    const store = await make().store();
    const newer = batch(1);
    const merged = await store.mergeDecisionSketch('w', newer);
    const expected = structuredClone(merged);
    merged.samples = 99;
    merged.long.decided.fill(7);
    newer.long.decided.fill(7);
    const read = await store.decisionSketches();
    expect(read.get('w')).toEqual(expected);
    (read.get('w') as DecisionSketch).short.decided.fill(7);
    expect((await store.decisionSketches()).get('w')).toEqual(expected);
    await store.close();
  });

  it('loses no batch when merges come at once', async () => {
    const place = make();
    // PostgreSQL: two workers on one database; the others: one store.
    const workers = name === 'postgres' ? [await place.store(), await place.store()] : [await place.store()];
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (workers[i % workers.length] as LifecycleStore).mergeDecisionSketch('walletA', batch(1)),
      ),
    );
    const stored = (await (workers[0] as LifecycleStore).decisionSketches()).get('walletA');
    expect(stored?.samples).toBe(20);
    // Each merge saw the ones before it: every count from 1 to 20 once.
    expect(results.map((r) => r.samples).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    // Identical batches: in whatever order they landed, the result is the sequential one.
    let sequential: DecisionSketch | undefined;
    for (let i = 0; i < 20; i++) sequential = mergeSketches(sequential, batch(1));
    expect(stored).toEqual(sequential);
    for (const worker of workers) await worker.close();
  });

  it('refuses a wallet key longer than 64 characters, storing nothing', async () => {
    const store = await make().store();
    const error = await store.mergeDecisionSketch('w'.repeat(65), batch(1)).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'AlipayPlusLifecycleError', code: 'INVALID_INPUT' });
    expect((error as Error).message).toMatch(/at most 64 characters.*nothing was stored/);
    expect(await store.decisionSketches()).toEqual(new Map());
    // 64 is fine.
    expect((await store.mergeDecisionSketch('w'.repeat(64), batch(1))).samples).toBe(1);
    expect([...(await store.decisionSketches()).keys()]).toEqual(['w'.repeat(64)]);
    await store.close();
  });
});

// Only the stores that keep data on disk: reopening, and rows written there by hand.
describe.each(places.filter(([name]) => name !== 'memory'))(
  '%s store: decision sketches on disk',
  (_name, make) => {
    it('survives reopening', async () => {
      const place = make();
      const first = await place.store();
      const merged = await first.mergeDecisionSketch('walletA', batch(4, 500, 9_000));
      await first.close();
      const second = await place.store();
      expect(await second.decisionSketches()).toEqual(new Map([['walletA', merged]]));
      // And merging goes on from it.
      const newer = batch(1);
      expect(await second.mergeDecisionSketch('walletA', newer)).toEqual(mergeSketches(merged, newer));
      await second.close();
    });

    it('skips a stored value that is not a sketch, and merges over it as over none', async () => {
      const place = make();
      const store = await place.store();
      const kept = await store.mergeDecisionSketch('good', batch(2));
      await place.writeRaw?.('broken', '{"version": 2, "long": ');
      await place.writeRaw?.('foreign', JSON.stringify({ ...batch(1), version: 1 }));
      expect(await store.decisionSketches()).toEqual(new Map([['good', kept]]));
      const newer = batch(3, 2_000, 2_000);
      for (const key of ['broken', 'foreign']) {
        expect(await store.mergeDecisionSketch(key, newer)).toEqual(mergeSketches(undefined, newer));
      }
      expect(await store.decisionSketches()).toEqual(
        new Map([
          ['good', kept],
          ['broken', mergeSketches(undefined, newer)],
          ['foreign', mergeSketches(undefined, newer)],
        ]),
      );
      await store.close();
    });
  },
);

describe('sqlite store: decision sketches', () => {
  it('a merge accepted before close() still commits', async () => {
    const path = join(dir, `close-${n++}.db`);
    const store = sqliteStore(path);
    await store.open();
    const merges = [store.mergeDecisionSketch('w', batch(1)), store.mergeDecisionSketch('w', batch(1))];
    await store.close();
    expect((await Promise.all(merges)).map((m) => m.samples)).toEqual([1, 2]);
    await expect(store.mergeDecisionSketch('w', batch(1))).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    await store.open();
    expect((await store.decisionSketches()).get('w')?.samples).toBe(2);
    await store.close();
  });

  it('migrates a database made before decision sketches forward', async () => {
    const path = join(dir, `old-${n++}.db`);
    const db = new Database(path);
    db.exec(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
    );
    for (const migration of readMigrations('sqlite').filter((m) => m.version <= 2)) {
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)').run(migration.version, migration.name);
    }
    db.close();
    const store = sqliteStore(path);
    await store.open();
    expect((await store.mergeDecisionSketch('', batch(1))).samples).toBe(1);
    await store.close();
    const after = new Database(path, { readonly: true });
    expect(after.prepare('SELECT version FROM schema_migrations ORDER BY version').all()).toEqual([
      { version: 1 },
      { version: 2 },
      { version: 3 },
    ]);
    expect(after.prepare('SELECT wallet_key, samples FROM decision_sketches').all()).toEqual([
      { wallet_key: '', samples: 1 },
    ]);
    after.close();
  });
});

describe('postgres store: decision sketches', () => {
  it("a wallet's first merges, from two workers at once, both land", async () => {
    // Many rounds of the race the empty row guards against: no row yet, two inserts at once.
    const schema = schemaName('apl_sketches_first');
    schemas.push(schema);
    const [a, b] = [0, 1].map((i) =>
      postgresStore({ connectionString: PG_URL, schema, workerId: `first-${i}` }),
    );
    await (a as LifecycleStore).open();
    await (b as LifecycleStore).open();
    for (let round = 0; round < 10; round++) {
      const key = `wallet-${round}`;
      await Promise.all([a, b].map((store) => (store as LifecycleStore).mergeDecisionSketch(key, batch(1))));
      expect((await (a as LifecycleStore).decisionSketches()).get(key)?.samples).toBe(2);
    }
    await (a as LifecycleStore).close();
    await (b as LifecycleStore).close();
  });

  it('migrates a schema made before decision sketches forward', async () => {
    const schema = schemaName('apl_sketches_old');
    schemas.push(schema);
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`CREATE SCHEMA "${schema}"`);
    await client.query(
      `CREATE TABLE "${schema}".schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    for (const migration of readMigrations('postgres').filter((m) => m.version <= 2)) {
      await client.query(migration.sql.replaceAll('__SCHEMA__', `"${schema}"`));
      await client.query(`INSERT INTO "${schema}".schema_migrations (version, name) VALUES ($1, $2)`, [
        migration.version,
        migration.name,
      ]);
    }
    const store = postgresStore({ connectionString: PG_URL, schema, workerId: 'old' });
    await store.open();
    expect((await store.mergeDecisionSketch('', batch(1))).samples).toBe(1);
    await store.close();
    const { rows } = await client.query(`SELECT version FROM "${schema}".schema_migrations ORDER BY version`);
    expect(rows.map((r) => r.version)).toEqual([1, 2, 3]);
    await client.end();
  });
});
