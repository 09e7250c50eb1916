import type { LifecycleStore, LifecycleWrite, WriteConflict } from '../../src/index.js';

/** A store method that can be made to fail. */
export type StoreMethod = {
  [K in keyof LifecycleStore]: LifecycleStore[K] extends (...args: never[]) => Promise<unknown> ? K : never;
}[keyof LifecycleStore];

/** How a call fails: it rejects at once, or hangs `hangMs` (past any sensible timeout) and then rejects. */
export type FaultHow = 'reject' | 'hang';

export interface FaultyStore<S extends LifecycleStore = LifecycleStore> {
  /** The store to give the engine: the real one, with the faults armed here. */
  readonly store: S;
  /** The next `count` calls of `method` fail. */
  failNext(method: StoreMethod, count?: number, how?: FaultHow): void;
  /**
   * The next write that includes `paymentRequestId` reports it as a version conflict, without
   * writing it, as when another writer changed it; the batch's other writes go through.
   */
  conflictNext(paymentRequestId: string): void;
  /** From now on, each call of `methods` (default: every method but open/close) fails with this chance. */
  failAtRate(
    rate: number,
    options?: { methods?: StoreMethod[]; how?: FaultHow; random?: () => number },
  ): void;
  /** No more faults (the armed `failNext` ones included). */
  heal(): void;
  /** Faults injected, by method. */
  readonly injected: ReadonlyMap<string, number>;
  /** Conflicts the real store itself answered (not injected ones): a writer that lost track of its versions. */
  readonly realConflicts: WriteConflict[];
}

/** The error an injected fault rejects with. */
export class InjectedStoreFault extends Error {
  constructor(method: string, how: FaultHow) {
    super(`injected store fault in ${method} (${how})`);
    this.name = 'InjectedStoreFault';
  }
}

/**
 * Wraps a store so that any of its methods fails transiently on demand: rejects, hangs then rejects,
 * or reports a write conflict. Everything else passes through, so a shared store stays shared.
 */
export function faultyStore<S extends LifecycleStore>(inner: S, hangMs = 2_000): FaultyStore<S> {
  const armed = new Map<string, { count: number; how: FaultHow }>();
  const conflicts = new Set<string>();
  const injected = new Map<string, number>();
  const realConflicts: WriteConflict[] = [];
  let rate:
    | { rate: number; methods: Set<string> | undefined; how: FaultHow; random: () => number }
    | undefined;

  function faultFor(method: string): FaultHow | undefined {
    const next = armed.get(method);
    if (next && next.count > 0) {
      next.count -= 1;
      return next.how;
    }
    if (!rate || method === 'open' || method === 'close') return undefined;
    if (rate.methods && !rate.methods.has(method)) return undefined;
    return rate.random() < rate.rate ? rate.how : undefined;
  }

  async function fail(method: string, how: FaultHow): Promise<never> {
    injected.set(method, (injected.get(method) ?? 0) + 1);
    if (how === 'hang') await new Promise((resolve) => setTimeout(resolve, hangMs));
    throw new InjectedStoreFault(method, how);
  }

  async function write(writes: LifecycleWrite[]): Promise<WriteConflict[]> {
    const refused = writes.filter((w) => conflicts.delete(w.record.paymentRequestId));
    const passed = writes.filter((w) => !refused.includes(w));
    const answered = passed.length > 0 ? await inner.write(passed) : [];
    realConflicts.push(...answered);
    if (refused.length > 0)
      injected.set('write-conflict', (injected.get('write-conflict') ?? 0) + refused.length);
    return [
      ...answered,
      ...refused.map((w) => ({
        paymentRequestId: w.record.paymentRequestId,
        expectedVersion: w.expectedVersion,
      })),
    ];
  }

  const store = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => {
        const how = faultFor(property);
        if (how) return fail(property, how);
        if (property === 'write') return write(args[0] as LifecycleWrite[]);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });

  return {
    store,
    failNext(method, count = 1, how = 'reject') {
      armed.set(method, { count, how });
    },
    conflictNext(id) {
      conflicts.add(id);
    },
    failAtRate(chance, options = {}) {
      rate = {
        rate: chance,
        methods: options.methods && new Set(options.methods),
        how: options.how ?? 'reject',
        random: options.random ?? Math.random,
      };
    },
    heal() {
      armed.clear();
      conflicts.clear();
      rate = undefined;
    },
    injected,
    realConflicts,
  };
}
