// The engine against a store that fails, and a merchant's onSettled that throws: what must survive.
// Each test here reproduces one defect of issue 20 (it failed before the fix, see the commit).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type LifecycleOutcome, memoryStore } from '../src/index.js';
import { payAndTrack, worldsStoppedAfterEach } from './helpers/e2e.js';
import { faultyStore } from './helpers/faulty-store.js';
import { eventually } from './helpers/notify-receiver.js';

const world = worldsStoppedAfterEach();

// An unhandled rejection would end a Node 20 process: each test here fails if one happens.
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);
beforeEach(() => {
  unhandled.length = 0;
  process.on('unhandledRejection', onUnhandled);
});
afterEach(() => {
  process.off('unhandledRejection', onUnhandled);
});

/** Waits for each outcome, or fails naming the ones that never came. */
async function outcomesOf(
  engine: { outcome(id: string): Promise<LifecycleOutcome> },
  ids: string[],
  ms = 10_000,
): Promise<LifecycleOutcome[]> {
  const pending = new Set(ids);
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`no outcome for ${[...pending].join(', ')}`)), ms).unref(),
  );
  return Promise.race([
    Promise.all(
      ids.map((id) =>
        engine.outcome(id).then((o) => {
          pending.delete(id);
          return o;
        }),
      ),
    ),
    timeout,
  ]);
}

describe('store faults and settlement failures', () => {
  it("a write conflict on one lifecycle leaves the batch's other writes durable (no 'error' listener)", async () => {
    const faulty = faultyStore(memoryStore());
    const w = await world({ store: faulty.store });
    const ids = ['CONFLICT-A', 'CONFLICT-B', 'CONFLICT-C'];
    for (const id of ids) await payAndTrack(w, id, { decideAfterMs: 4_000 });
    // Their first inquiries go out together, so the writes of that tick share one batch; the next
    // write of A is refused, as if another writer had changed it.
    faulty.conflictNext('CONFLICT-A');
    await eventually(() => faulty.injected.get('write-conflict') === 1, 5_000);
    expect(w.engine.get('CONFLICT-A')).toBeUndefined(); // stopped here: another writer owns it
    // B and C were written: no later write of theirs conflicts, and both reach their outcome.
    const outcomes = await outcomesOf(w.engine, ['CONFLICT-B', 'CONFLICT-C']);
    expect(outcomes.map((o) => o.status)).toEqual(['succeeded', 'succeeded']);
    expect(faulty.realConflicts).toEqual([]);
    expect(unhandled).toEqual([]);
  });

  it('a markSettled that fails is retried in the process: no unhandled rejection, marked once it works', async () => {
    const faulty = faultyStore(memoryStore());
    const w = await world({ store: faulty.store });
    faulty.failNext('markSettled', 3);
    await payAndTrack(w, 'MARK-1', { decideAfterMs: 1_000 });
    const outcome = await outcomesOf(w.engine, ['MARK-1']);
    expect(outcome[0]?.status).toBe('succeeded');
    await eventually(() => faulty.injected.get('markSettled') === 3, 5_000);
    await eventually(() => w.settled.length === 1, 5_000);
    // The mark was retried until it held: a restart would not fire it again.
    await expect
      .poll(async () => (await w.store.load('MARK-1'))?.settledFired, { timeout: 10_000 })
      .toBe(true);
    expect(w.settled.map((o) => o.paymentRequestId)).toEqual(['MARK-1']);
    expect(unhandled).toEqual([]);
  });

  it('a settled lifecycle is shown with its final context, not an empty one', async () => {
    const w = await world();
    await payAndTrack(w, 'CONTEXT-1', { decideAfterMs: 1_000 });
    await outcomesOf(w.engine, ['CONTEXT-1']);
    const view = w.engine.get('CONTEXT-1');
    expect(view?.final).toBe(true);
    expect(view?.context.paymentRequestId).toBe('CONTEXT-1');
    expect(view?.context.amount).toEqual({ currency: 'JPY', value: '100' });
    expect(
      await w.engine.track({ paymentRequestId: 'CONTEXT-1', amount: view?.context.amount as never }),
    ).toMatchObject({
      context: { paymentRequestId: 'CONTEXT-1' },
    });
  });

  it('an onSettled that throws is fired again in the process, with backoff, until it succeeds', async () => {
    let calls = 0;
    const fired: number[] = [];
    const w = await world({
      engine: {
        onSettled: () => {
          calls += 1;
          fired.push(performance.now());
          if (calls <= 2) throw new Error('the order system had a blip');
        },
      },
    });
    await payAndTrack(w, 'RETRY-1', { decideAfterMs: 1_000 });
    await outcomesOf(w.engine, ['RETRY-1']);
    await eventually(() => calls === 3, 10_000);
    await expect
      .poll(async () => (await w.store.load('RETRY-1'))?.settledFired, { timeout: 5_000 })
      .toBe(true);
    // Fired three times (two throws, one success), and not again after the success.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(calls).toBe(3);
    expect(unhandled).toEqual([]);
  });
});
