import { afterAll, describe, expect, it } from 'vitest';
import { type DecisionSketch, MIN_PLAN_SAMPLES, planInquiries } from '../machines/decision-model.js';
import { ALL_WALLETS, DecisionLearner, MAX_WALLETS } from '../src/engine/decision-learner.js';
import { createPaymentEngine, type LifecycleStore, memoryStore, sqliteStore } from '../src/index.js';
import { seededRandom } from '../src/simulator/random.js';
import { postgresStore } from '../src/stores/postgres-store.js';
import { createWorld, type World, worldsStoppedAfterEach } from './helpers/e2e.js';
import { eventually } from './helpers/notify-receiver.js';
import { dropSchema, PG_URL, schemaName } from './helpers/postgres.js';
import { sketchOf } from './helpers/sketches.js';
import { testTempDir } from './helpers/temp-dir.js';

const world = worldsStoppedAfterEach();
const ADAPTIVE = { policy: { inquirySchedule: 'adaptive' as const } };
const MINUTE = 60_000;

/** A sketch of `count` exact decisions, lognormal around `medianMs` (σ 0.5), seeded. */
const planOf = (sketch: DecisionSketch, expiresInMs = MINUTE) =>
  planInquiries(sketch, { expiresInMs, lagTargetMs: 3_000, lagQuantile: 0.99 });

/** Creates an order the simulator decides after `decideAfterMs` (null: never), with no notification. */
function order(w: World, id: string, decideAfterMs: number | null) {
  return w.sim.createOrder({
    paymentRequestId: id,
    expiresAt: w.clock.now() + MINUTE,
    scenario: { decideAfterMs, notify: { mode: 'none' } },
  });
}

async function track(w: World, id: string, decideAfterMs: number | null, walletKey?: string) {
  const created = order(w, id, decideAfterMs);
  return w.engine.track({
    paymentRequestId: id,
    createdAt: created.createdAt,
    paymentExpiryTime: created.expiresAt,
    ...(walletKey ? { walletKey } : {}),
  });
}

describe('adaptive plans', () => {
  it('a wallet whose every payment decided early gets no inquiries in the quiet stretch after, whatever the expiry', () => {
    // Every observation decided (σ 0.5 around 3 s): past ~15 s the sketch says nobody is left.
    const sketch = sketchOf(2_000, 3_000);
    for (const expiresInMs of [60_000, 120_000, 600_000, 3_600_000]) {
      const plan = planOf(sketch, expiresInMs) as number[];
      expect(plan.length).toBeGreaterThan(2);
      expect(plan.length).toBeLessThanOrEqual(12);
      expect(plan.at(-1)).toBeLessThan(30_000);
      for (let i = 1; i < plan.length; i++)
        expect((plan[i] as number) - (plan[i - 1] as number)).toBeGreaterThanOrEqual(500);
    }
  });
});

describe('DecisionLearner', () => {
  const seen = { decided: true, after: 2_000, by: 2_000 } as const;

  it('a merge that fails keeps its batch for the next flush: nothing learned is lost', async () => {
    const store = memoryStore();
    const merge = store.mergeDecisionSketch.bind(store);
    let failing = true;
    store.mergeDecisionSketch = async (key, sketch) => {
      if (failing) throw new Error('database unavailable');
      return merge(key, sketch);
    };
    const learner = new DecisionLearner({ store, now: () => 0 });
    for (let i = 0; i < 5; i++) learner.observe('W', seen);
    await expect(learner.flush()).rejects.toThrow('database unavailable');
    // Learned meanwhile: goes after the kept batch.
    for (let i = 0; i < 3; i++) learner.observe('W', seen);
    failing = false;
    await learner.flush();
    const stored = await store.decisionSketches();
    expect(stored.get('W')?.samples).toBe(8);
    expect(stored.get(ALL_WALLETS)?.samples).toBe(8);
    // And the learner plans from what is stored (nothing counted twice).
    expect(learner.sketchOf('W')?.samples).toBe(8);
  });

  it('a flush reads back only the sketches that some worker merged since the last read', async () => {
    const store = memoryStore();
    const read = store.decisionSketches.bind(store);
    const asked: (readonly string[] | undefined)[] = [];
    store.decisionSketches = (walletKeys) => {
      asked.push(walletKeys);
      return read(walletKeys);
    };
    const learner = new DecisionLearner({ store, now: () => 0 });
    const other = new DecisionLearner({ store, now: () => 0 });
    for (let i = 0; i < 4; i++) learner.observe('W', seen);
    await learner.flush();
    const keysOf = (keys: readonly string[] | undefined) => [...(keys ?? ['(all)'])].sort();
    expect(asked.splice(0).map(keysOf)).toEqual([[ALL_WALLETS, 'W']]);
    // Nothing merged since: nothing is read or parsed again.
    await learner.flush();
    expect(asked).toEqual([]);
    // Another worker merges a wallet: that one (and all wallets) is read back, and planned from.
    for (let i = 0; i < 2; i++) other.observe('V', seen);
    await other.flush();
    asked.length = 0;
    await learner.flush();
    expect(asked.map(keysOf)).toEqual([[ALL_WALLETS, 'V']]);
    expect(learner.sketchOf('V')?.samples).toBe(2);
    expect(learner.sketchOf(ALL_WALLETS)?.samples).toBe(6);
    expect(learner.sketchOf('W')?.samples).toBe(4);
  });

  it(`learns at most ${MAX_WALLETS} wallets on their own; past that, a new wallet counts only in all wallets`, () => {
    const learner = new DecisionLearner({ now: () => 0 });
    for (let i = 0; i < MAX_WALLETS + 50; i++) learner.observe(`W${i}`, seen);
    expect(learner.walletCount).toBe(MAX_WALLETS + 1);
    expect(learner.sketchOf(`W${MAX_WALLETS + 10}`)).toBeUndefined();
    expect(learner.sketchOf(ALL_WALLETS)?.samples).toBe(MAX_WALLETS + 50);
  });

  it('re-plans a wallet only after 50 new observations and a second of its clock', () => {
    let now = 0;
    const learner = new DecisionLearner({ now: () => now });
    const random = seededRandom(3);
    const observe = (count: number, medianMs: number) => {
      for (let i = 0; i < count; i++) {
        const at = medianMs * Math.exp(0.5 * (random() - 0.5) * 4);
        learner.observe('W', { decided: true, after: at, by: at });
      }
    };
    const request = { walletKey: 'W', expiresInMs: MINUTE, lagTargetMs: 3_000, lagQuantile: 0.99 };
    observe(MIN_PLAN_SAMPLES, 3_000);
    const first = learner.planFor(request);
    expect(first).toBeDefined();
    // Shared: one array for every payment of the wallet.
    expect(learner.planFor(request)).toBe(first);
    observe(49, 20_000);
    now += 5_000;
    expect(learner.planFor(request)).toBe(first);
    observe(1, 20_000);
    expect(learner.planFor(request)).not.toBe(first);
  });
});

describe('adaptive inquiry schedule in the engine', () => {
  it("a payment of a known wallet gets the wallet's plan, and its inquiries go out at the planned times", async () => {
    const store = memoryStore();
    const sketch = sketchOf(1_000, 10_000);
    await store.mergeDecisionSketch('WALLET-A', sketch);
    // 20× real time: a timer late by a few ms of a busy machine stays well inside half a gap.
    const w = await world({ store, engine: ADAPTIVE, factor: 20 });
    const expected = planOf((await store.decisionSketches()).get('WALLET-A') as DecisionSketch) as number[];
    expect(expected.length).toBeGreaterThan(3);
    // Decided halfway between two planned inquiries past 20 s.
    const k = expected.findIndex((offset) => offset > 20_000);
    const decideAfterMs = Math.round(((expected[k - 1] as number) + (expected[k] as number)) / 2);

    const view = await track(w, 'ADAPT-1', decideAfterMs, 'WALLET-A');
    expect(view.context.walletKey).toBe('WALLET-A');
    expect(view.context.plan).toEqual(expected);
    // The plan is stored with the input, so a restart plans nothing anew.
    expect((await store.load('ADAPT-1'))?.input.inquiryPlan).toEqual(expected);

    const outcome = await w.engine.outcome('ADAPT-1');
    expect(outcome.status).toBe('succeeded');
    const createdAt = view.context.createdAt;
    const sent = w.sim.calls().filter((c) => c.api === 'inquiryPayment' && c.paymentRequestId === 'ADAPT-1');
    // One inquiry per planned time up to the first after the decision, never early.
    const due = expected.slice(0, k + 1);
    expect(sent).toHaveLength(due.length);
    for (const [i, call] of sent.entries())
      expect(call.at).toBeGreaterThanOrEqual(createdAt + (due[i] as number));
  });

  it('a payment without a wallet key takes the wallet named by the first answer (pspId), with its plan; an unknown wallet uses all wallets together', async () => {
    const store = memoryStore();
    await store.mergeDecisionSketch('SIM_WALLET', sketchOf(1_000, 20_000));
    await store.mergeDecisionSketch('', sketchOf(1_000, 5_000, 8));
    const w = await world({ store, engine: ADAPTIVE });
    const stored = await store.decisionSketches();

    // Not known at the start: all wallets' plan; the first answer names SIM_WALLET, whose plan is taken.
    const first = await track(w, 'ADAPT-PSP', null);
    expect(first.context.walletKey).toBeUndefined();
    expect(first.context.plan).toEqual(planOf(stored.get('') as DecisionSketch));
    // Keeps the plan it started with: a lifecycle's plan never flips mid-way.
    await eventually(() => (w.engine.get('ADAPT-PSP')?.context.inquiries ?? 0) >= 1);
    await eventually(() => w.engine.get('ADAPT-PSP')?.context.walletKey === 'SIM_WALLET');
    expect(w.engine.get('ADAPT-PSP')?.context.plan).toEqual(planOf(stored.get('') as DecisionSketch));

    // Without any plan at the start (too few observations of all wallets), the pspId brings one.
    const bare = memoryStore();
    await bare.mergeDecisionSketch('SIM_WALLET', sketchOf(1_000, 20_000));
    const v = await world({ store: bare, engine: ADAPTIVE });
    const fresh = await track(v, 'ADAPT-PSP-2', null);
    expect(fresh.context.plan).toBeUndefined();
    await eventually(() => v.engine.get('ADAPT-PSP-2')?.context.walletKey === 'SIM_WALLET');
    expect(v.engine.get('ADAPT-PSP-2')?.context.plan).toEqual(
      planOf((await bare.decisionSketches()).get('SIM_WALLET') as DecisionSketch),
    );

    // A wallet the learner has never seen: all wallets together.
    const unknown = await track(w, 'ADAPT-UNKNOWN', 3_000, 'NEW-WALLET');
    expect(unknown.context.plan).toEqual(planOf(stored.get('') as DecisionSketch));
  });

  it.each([
    ['a wallet key of 65 characters', { walletKey: 'W'.repeat(65) }, /walletKey/],
    ['an unknown schedule', { policy: { inquirySchedule: 'smart' } }, /inquirySchedule/],
    ['a lag quantile of 1.5', { policy: { inquirySchedule: 'adaptive', lagQuantile: 1.5 } }, /lagQuantile/],
    ['a lag target of 0', { policy: { inquirySchedule: 'adaptive', lagTargetMs: 0 } }, /lagTargetMs/],
  ])('refuses %s with INVALID_INPUT naming the field, storing nothing', async (_name, extra, field) => {
    const store = memoryStore();
    const w = await world({ store });
    const error = await w.engine
      .track({ paymentRequestId: 'BAD-ADAPT', ...(extra as object) })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'INVALID_INPUT' });
    expect((error as Error).message).toMatch(field);
    expect(await store.load('BAD-ADAPT')).toBeUndefined();
    expect(w.engine.activeCount).toBe(0);
  });

  it('the fixed policy gets no plan, whatever was learned', async () => {
    const store = memoryStore();
    await store.mergeDecisionSketch('WALLET-A', sketchOf(1_000, 10_000));
    const w = await world({ store });
    const view = await track(w, 'FIXED-1', 3_000, 'WALLET-A');
    expect(view.context.plan).toBeUndefined();
    expect((await store.load('FIXED-1'))?.input.inquiryPlan).toBeUndefined();
  });

  it('learns from settled lifecycles: stop() merges into the store, and a restarted engine plans from it', async () => {
    const dir = testTempDir('adaptive-restart');
    const path = `${dir}/lifecycles.db`;
    const seeded = sqliteStore(path);
    await seeded.open();
    // Just under the warm-up: no plan yet.
    await seeded.mergeDecisionSketch('SIM_WALLET', sketchOf(MIN_PLAN_SAMPLES - 10, 4_000));
    await seeded.close();

    const w = await createWorld({ store: sqliteStore(path), engine: ADAPTIVE });
    try {
      expect((await track(w, 'LEARN-0', 2_000, 'SIM_WALLET')).context.plan).toBeUndefined();
      const ids = Array.from({ length: 15 }, (_, i) => `LEARN-${i + 1}`);
      for (const [i, id] of ids.entries()) await track(w, id, 1_000 + 500 * i, 'SIM_WALLET');
      // And two that never decide: cancelled at expiry, observed as undecided.
      await track(w, 'LEARN-NEVER-1', null, 'SIM_WALLET');
      await track(w, 'LEARN-NEVER-2', null, 'SIM_WALLET');
      const outcomes = await Promise.all(
        ['LEARN-0', ...ids, 'LEARN-NEVER-1', 'LEARN-NEVER-2'].map((id) => w.engine.outcome(id)),
      );
      expect(outcomes.filter((o) => o.status === 'succeeded')).toHaveLength(16);
    } finally {
      await w.stop();
    }

    const reopened = sqliteStore(path);
    await reopened.open();
    const sketches = await reopened.decisionSketches();
    // 16 decided + 2 undecided, for the wallet and for all wallets together.
    expect(sketches.get('SIM_WALLET')?.samples).toBe(MIN_PLAN_SAMPLES - 10 + 18);
    expect(sketches.get('')?.samples).toBe(18);
    const undecided = (sketches.get('SIM_WALLET') as DecisionSketch).long.undecided.reduce(
      (a, b) => a + b,
      0,
    );
    expect(undecided).toBeGreaterThan(1.9);
    await reopened.close();

    const again = await createWorld({ store: sqliteStore(path), engine: ADAPTIVE });
    try {
      const view = await track(again, 'LEARN-AFTER', 2_000, 'SIM_WALLET');
      expect(view.context.plan).toEqual(planOf(sketches.get('SIM_WALLET') as DecisionSketch));
    } finally {
      await again.stop();
    }
  });
});

describe('adaptive learning shared over PostgreSQL', () => {
  const schema = schemaName('adaptive');
  afterAll(() => dropSchema(schema));

  it("one worker's observations reach another worker's plans through the store", async () => {
    const setup = postgresStore({ connectionString: PG_URL, schema, workerId: 'adapt-setup' });
    await setup.open();
    await setup.mergeDecisionSketch('SIM_WALLET', sketchOf(MIN_PLAN_SAMPLES - 5, 4_000));
    await setup.close();

    const workerStore = (id: string): LifecycleStore =>
      postgresStore({ connectionString: PG_URL, schema, workerId: id, leaseMs: 10_000 });
    const a = await createWorld({
      store: workerStore('adapt-a'),
      engine: { ...ADAPTIVE, learningFlushMs: 100 },
    });
    // Worker B shares the simulator's clock but runs its own engine on the same database.
    const b = createPaymentEngine({
      client: a.client,
      store: workerStore('adapt-b'),
      clock: a.clock,
      ...ADAPTIVE,
      learningFlushMs: 100,
    });
    await b.start();
    try {
      const created = order(a, 'SHARED-B0', 2_000);
      const before = await b.track({
        paymentRequestId: 'SHARED-B0',
        createdAt: created.createdAt,
        paymentExpiryTime: created.expiresAt,
        walletKey: 'SIM_WALLET',
      });
      expect(before.context.plan).toBeUndefined();
      const ids = Array.from({ length: 8 }, (_, i) => `SHARED-A${i}`);
      for (const [i, id] of ids.entries()) await track(a, id, 1_000 + 700 * i, 'SIM_WALLET');
      for (const id of ids) expect((await a.engine.outcome(id)).status).toBe('succeeded');
      // A merges within its flush interval; B reads it back at its own next flush.
      let planned = false;
      for (let round = 0; !planned; round++) {
        if (round > 100) throw new Error("worker B never planned from worker A's observations");
        await new Promise((resolve) => setTimeout(resolve, 100));
        const next = order(a, `SHARED-B${round + 1}`, 2_000);
        const view = await b.track({
          paymentRequestId: next.paymentRequestId,
          createdAt: next.createdAt,
          paymentExpiryTime: next.expiresAt,
          walletKey: 'SIM_WALLET',
        });
        planned = view.context.plan !== undefined;
      }
    } finally {
      await b.stop();
      await a.stop();
    }
  });
});
