import {
  type DecisionObservation,
  type DecisionSketch,
  emptySketch,
  MIN_PLAN_SAMPLES,
  planInquiries,
  SketchBuilder,
} from '../../machines/decision-model.js';
import type { LifecycleStore } from '../stores/store.js';

/** The sketch of every wallet together: used for a wallet that has too few observations of its own. */
export const ALL_WALLETS = '';

/** Wallets learned separately; past this many, a new wallet's observations go only to {@link ALL_WALLETS}. */
export const MAX_WALLETS = 1_000;

export interface DecisionLearnerOptions {
  /** Where the sketches are shared and kept: workers over one store learn together. */
  store?: Pick<LifecycleStore, 'decisionSketches' | 'decisionSketchRevisions' | 'mergeDecisionSketch'>;
  /** The clock that spaces re-plans (epoch ms; the engine's clock). */
  now: () => number;
  /** Observations of a wallet between two plans of it (default 50). */
  replanEvery?: number;
  /** And at least this long between two plans of one wallet and expiry (default 1 s). */
  replanAfterMs?: number;
}

export interface PlanRequest {
  walletKey: string | undefined;
  expiresInMs: number;
  lagTargetMs: number;
  lagQuantile: number;
}

interface WalletModel {
  /** The sketch as last merged with the store, with this worker's newer observations added. */
  builder: SketchBuilder;
  /** This worker's observations not yet merged into the store. */
  pending: SketchBuilder | undefined;
}

interface CachedPlan {
  plan: readonly number[] | undefined;
  samples: number;
  at: number;
}

/**
 * The adaptive schedule's learning: observations of settled lifecycles go into a sketch per wallet
 * (and one of all wallets), which workers merge through the store; plans are made from the sketches
 * and cached, one shared array per wallet, expiry and target. Memory is bounded: a fixed-size sketch
 * for each of at most {@link MAX_WALLETS} wallets.
 */
export class DecisionLearner {
  private readonly wallets = new Map<string, WalletModel>();
  private readonly plans = new Map<string, CachedPlan>();
  /** The store's revision of each sketch as this worker last read it. */
  private readonly revisions = new Map<string, number>();
  private readonly replanEvery: number;
  private readonly replanAfterMs: number;
  private flushing: Promise<void> | undefined;

  constructor(private readonly options: DecisionLearnerOptions) {
    this.replanEvery = options.replanEvery ?? 50;
    this.replanAfterMs = options.replanAfterMs ?? 1_000;
  }

  /**
   * Reads the shared sketches that changed since this worker last read them (all of them at start: a
   * restart keeps what was learned). A flush reads back only what some worker merged meanwhile, so a
   * quiet store costs one small query, and not a parse of every wallet's sketch.
   */
  async load(): Promise<void> {
    const store = this.options.store;
    if (!store) return;
    const revisions = await store.decisionSketchRevisions();
    let room = MAX_WALLETS + 1 - this.wallets.size;
    const changed: string[] = [];
    for (const [key, revision] of revisions) {
      if (this.revisions.get(key) === revision) continue;
      if (!this.wallets.has(key)) {
        if (room <= 0) continue;
        room--;
      }
      changed.push(key);
    }
    if (changed.length === 0) return;
    const stored = await store.decisionSketches(changed);
    for (const key of changed) {
      this.revisions.set(key, revisions.get(key) as number);
      const sketch = stored.get(key);
      if (!sketch) continue; // not a sketch this version reads: as if there were none
      const model = this.wallets.get(key);
      const builder = new SketchBuilder(sketch);
      if (model?.pending) builder.addNewer(model.pending.toSketch());
      this.wallets.set(key, { builder, pending: model?.pending });
    }
  }

  /** One settled lifecycle's observation: for its wallet (if it has one) and for all wallets. */
  observe(walletKey: string | undefined, observation: DecisionObservation): void {
    this.modelOf(ALL_WALLETS)?.builder.add(observation);
    this.pendingOf(ALL_WALLETS)?.add(observation);
    if (walletKey === undefined || walletKey === ALL_WALLETS) return;
    const model = this.modelOf(walletKey);
    if (!model) return;
    model.builder.add(observation);
    this.pendingOf(walletKey)?.add(observation);
  }

  /**
   * The inquiry plan for a payment (ms from its creation), or `undefined` while neither its wallet
   * nor all wallets together have enough observations: the fixed schedule is used then.
   */
  planFor(request: PlanRequest): readonly number[] | undefined {
    const own = request.walletKey !== undefined ? this.wallets.get(request.walletKey) : undefined;
    const key = own && own.builder.samples >= MIN_PLAN_SAMPLES ? (request.walletKey as string) : ALL_WALLETS;
    const model = this.wallets.get(key);
    if (!model || model.builder.samples < MIN_PLAN_SAMPLES) return undefined;
    const expiresInMs = Math.max(1_000, Math.round(request.expiresInMs / 1_000) * 1_000);
    const cacheKey = `${key}\u0000${expiresInMs}\u0000${request.lagTargetMs}\u0000${request.lagQuantile}`;
    const cached = this.plans.get(cacheKey);
    const samples = model.builder.samples;
    const now = this.options.now();
    if (
      cached &&
      (Math.abs(samples - cached.samples) < this.replanEvery || now - cached.at < this.replanAfterMs)
    )
      return cached.plan;
    const plan = planInquiries(model.builder.toSketch(), {
      expiresInMs,
      lagTargetMs: request.lagTargetMs,
      lagQuantile: request.lagQuantile,
    });
    const shared = plan ? Object.freeze(plan) : undefined;
    this.plans.set(cacheKey, { plan: shared, samples, at: now });
    return shared;
  }

  /** The sketch this worker plans from for a wallet ({@link ALL_WALLETS} for all), if any. */
  sketchOf(walletKey: string): DecisionSketch | undefined {
    return this.wallets.get(walletKey)?.builder.toSketch();
  }

  /** Wallets with a sketch here ({@link ALL_WALLETS} included). */
  get walletCount(): number {
    return this.wallets.size;
  }

  /**
   * Merges this worker's new observations into the store, then reads every stored sketch back: what
   * other workers learned meanwhile reaches this one's plans. One flush at a time; a failed merge
   * keeps its batch for the next.
   */
  flush(): Promise<void> {
    if (!this.options.store) return Promise.resolve();
    this.flushing ??= this.flushNow().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushNow(): Promise<void> {
    const store = this.options.store as NonNullable<DecisionLearnerOptions['store']>;
    for (const [key, model] of this.wallets) {
      const batch = model.pending;
      if (!batch || batch.samples === 0) continue;
      model.pending = undefined;
      try {
        const merged = await store.mergeDecisionSketch(key, batch.toSketch());
        const builder = new SketchBuilder(merged);
        // Observations made while the merge was on its way are newer than the merged sketch.
        if (model.pending) builder.addNewer((model.pending as SketchBuilder).toSketch());
        model.builder = builder;
      } catch (error) {
        // Kept for the next flush: the batch goes first, then what came after it.
        const kept = new SketchBuilder(batch.toSketch(), false);
        if (model.pending) kept.addNewer((model.pending as SketchBuilder).toSketch());
        model.pending = kept;
        throw error;
      }
    }
    await this.load();
  }

  private modelOf(key: string): WalletModel | undefined {
    let model = this.wallets.get(key);
    if (!model) {
      if (key !== ALL_WALLETS && this.wallets.size >= MAX_WALLETS + 1) return undefined;
      model = { builder: new SketchBuilder(emptySketch()), pending: undefined };
      this.wallets.set(key, model);
    }
    return model;
  }

  private pendingOf(key: string): SketchBuilder | undefined {
    if (!this.options.store) return undefined;
    const model = this.wallets.get(key);
    if (!model) return undefined;
    model.pending ??= new SketchBuilder(undefined, false);
    return model.pending;
  }
}
