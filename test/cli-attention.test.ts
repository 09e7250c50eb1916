import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatAge } from '../src/cli/attention-command.js';
import { type LifecycleStore, sqliteStore } from '../src/index.js';
import { cli } from './helpers/cli.js';
import { attentionByMismatch, createWorld, payAndTrack, type World } from './helpers/e2e.js';
import { fileTempDir, testTempDir } from './helpers/temp-dir.js';

const dir = fileTempDir('apl-cli-attention-');
const seeded = join(dir, 'seeded.db');

async function mismatched(w: World, id: string): Promise<void> {
  expect((await attentionByMismatch(w, id)).status).toBe('attention');
}

// The engine writes a SQLite store once (two attention outcomes and a success); each test works on a copy.
beforeAll(async () => {
  const store = sqliteStore(seeded);
  const w = await createWorld({ store });
  try {
    await mismatched(w, 'ATT-1');
    await mismatched(w, 'ATT-2');
    await payAndTrack(w, 'OK-1', { decideAfterMs: 0 });
    expect((await w.engine.outcome('OK-1')).status).toBe('succeeded');
  } finally {
    await w.stop();
    await store.close();
  }
});

function storeCopy(): { spec: string; path: string } {
  const path = join(testTempDir('apl-cli-attention-'), 'lifecycles.db');
  copyFileSync(seeded, path);
  return { spec: `sqlite:${path}`, path };
}

async function readStore<T>(path: string, read: (store: LifecycleStore) => Promise<T>): Promise<T> {
  const store = sqliteStore(path, { writerThread: false });
  await store.open();
  try {
    return await read(store);
  } finally {
    await store.close();
  }
}

/** Everything a resolution could write: the items with their resolutions, and every audit log. */
const written = (path: string) =>
  readStore(path, async (store) => ({
    items: await store.attentionItems({ all: true }),
    audits: await Promise.all(['ATT-1', 'ATT-2', 'OK-1'].map((id) => store.audit(id))),
  }));

describe('attention list and show', () => {
  it('lists the open items, one line each: id, reason, amount, age and when decided', async () => {
    const { spec } = storeCopy();
    const { code, out } = await cli('attention', 'list', '--store', spec);
    expect(code).toBe(0);
    expect(out).toContain('2 open attention item(s)');
    const lines = out.split('\n').filter((line) => line.startsWith('ATT-'));
    expect(lines.map((line) => line.split(/\s+/)[0])).toEqual(['ATT-1', 'ATT-2']);
    expect(lines[0]).toMatch(/^ATT-1\s+amount-mismatch\s+100 JPY\s+\S+( \S+)?\s+\d{4}-\d\d-\d\dT/);
    expect(out).not.toContain('OK-1');

    const json = JSON.parse((await cli('attention', 'list', '--json', '--store', spec)).out);
    expect(
      json.map((v: { paymentRequestId: string; reason: string }) => [v.paymentRequestId, v.reason]),
    ).toEqual([
      ['ATT-1', 'amount-mismatch'],
      ['ATT-2', 'amount-mismatch'],
    ]);
    expect(json[0].audit.at(-1)).toMatchObject({
      to: 'attention',
      event: 'NOTIFIED',
      code: 'AMOUNT_MISMATCH',
    });
  });

  it('shows one item with its audit history', async () => {
    const { spec } = storeCopy();
    const { code, out } = await cli('attention', 'show', 'ATT-2', '--store', spec);
    expect(code).toBe(0);
    expect(out).toContain('ATT-2: needs a person: amount-mismatch');
    expect(out).toContain('amount 100 JPY');
    expect(out).toContain('open: record what you did with `attention resolve ATT-2');
    expect(out).toMatch(/awaitingResult\.pending\s+attention\s+NOTIFIED\s+AMOUNT_MISMATCH/);
    const json = JSON.parse((await cli('attention', 'show', 'ATT-2', '--store', spec, '--json')).out);
    expect(json).toMatchObject({ paymentRequestId: 'ATT-2', reason: 'amount-mismatch' });
    expect(json.resolution).toBeUndefined();
  });

  it('formats ages by their two largest units', () => {
    expect(formatAge(0)).toBe('0s');
    expect(formatAge(45_999)).toBe('45s');
    expect(formatAge(3 * 3_600_000 + 12 * 60_000 + 5_000)).toBe('3h 12m');
    expect(formatAge(2 * 86_400_000 + 30_000)).toBe('2d');
  });
});

describe('attention resolve', () => {
  it('records what was done: the item leaves the queue, the audit log gains it, the outcome stays', async () => {
    const { spec, path } = storeCopy();
    const before = await readStore(path, (store) => store.load('ATT-1'));
    const { code, out, err } = await cli(
      'attention',
      'resolve',
      'ATT-1',
      '--action',
      'refunded-by-hand',
      '--note',
      'refunded in the wallet portal, ticket 7',
      '--by',
      'kenji',
      '--store',
      spec,
    );
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toMatch(
      /^ATT-1: recorded refunded-by-hand by kenji at \d{4}-.*: refunded in the wallet portal/,
    );
    expect(out).toContain('The outcome stays attention (amount-mismatch)');

    const list = await cli('attention', 'list', '--store', spec);
    expect(list.out).toContain('1 open attention item(s)');
    expect(list.out).not.toMatch(/^ATT-1/m);
    const all = await cli('attention', 'list', '--all', '--store', spec);
    expect(all.out).toMatch(/^ATT-1 .*refunded-by-hand by kenji$/m);
    const show = await cli('attention', 'show', 'ATT-1', '--store', spec);
    expect(show.out).toContain('resolved: refunded-by-hand by kenji');
    expect(show.out).toMatch(/attention\s+attention\s+attention-resolved\s+refunded-by-hand/);

    await readStore(path, async (store) => {
      expect(await store.load('ATT-1')).toEqual(before);
      expect((await store.audit('ATT-1')).at(-1)).toMatchObject({
        from: 'attention',
        to: 'attention',
        event: 'attention-resolved',
        code: 'refunded-by-hand',
      });
    });
  });

  it('exit 2 and nothing written: unknown ID, not in attention, resolved already, bad or missing flags', async () => {
    const { spec, path } = storeCopy();
    const ok = ['--note', 'called the merchant', '--by', 'aiko', '--store', spec];
    expect((await cli('attention', 'resolve', 'ATT-2', '--action', 'confirmed-unpaid', ...ok)).code).toBe(0);
    const before = await written(path);

    const refused: [string[], RegExp][] = [
      [['NOBODY', '--action', 'other', ...ok], /INVALID_INPUT: payment NOBODY is not known to this store/],
      [
        ['OK-1', '--action', 'other', ...ok],
        /ATTENTION_NOT_OPEN: payment OK-1 ended succeeded, not in attention/,
      ],
      [
        ['ATT-2', '--action', 'other', ...ok],
        /ATTENTION_NOT_OPEN: payment ATT-2 was resolved already by aiko at /,
      ],
      [['ATT-1', '--action', 'shrugged', ...ok], /action: .*refunded-by-hand/],
      [
        ['ATT-1', '--action', 'other', '--note', ' ', '--by', 'aiko', '--store', spec],
        /note: say what was done/,
      ],
      [['ATT-1', '--action', 'other', '--by', 'aiko', '--store', spec], /--note/],
      [['ATT-1', '--action', 'other', '--note', 'n', '--by', 'aiko'], /--store/],
      [['ATT-1', '--action', 'other', '--note', 'n', '--by', 'aiko', '--store', 'memory'], /memory store/],
      [
        ['ATT-1', '--action', 'other', '--note', 'n', '--by', 'aiko', '--store', 'postgres://x'],
        /sqlite:PATH/,
      ],
    ];
    for (const [args, message] of refused) {
      const { code, err } = await cli('attention', 'resolve', ...args);
      expect({ args, code }).toEqual({ args, code: 2 });
      expect(err).toMatch(message);
    }
    expect(await written(path)).toEqual(before);
  });

  it('exit 2 for a store that is not there, and none is created', async () => {
    const missing = join(testTempDir('apl-cli-attention-'), 'nothing-here.db');
    for (const args of [
      ['list'],
      ['show', 'ATT-1'],
      ['resolve', 'ATT-1', '--action', 'other', '--note', 'n', '--by', 'b'],
    ]) {
      const { code, err } = await cli('attention', ...args, '--store', `sqlite:${missing}`);
      expect(code).toBe(2);
      expect(err).toContain(`no store at ${missing}`);
    }
    expect(existsSync(missing)).toBe(false);
  });

  it('show: exit 2 for an unknown ID and for a payment not in attention', async () => {
    const { spec } = storeCopy();
    const unknown = await cli('attention', 'show', 'NOBODY', '--store', spec);
    expect([unknown.code, unknown.err]).toEqual([2, expect.stringContaining('NOBODY is not known')]);
    const paid = await cli('attention', 'show', 'OK-1', '--store', spec);
    expect([paid.code, paid.err]).toEqual([2, expect.stringContaining('OK-1 ended succeeded')]);
  });
});
