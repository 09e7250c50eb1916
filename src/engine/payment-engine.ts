import { EventEmitter } from 'node:events';
import { type Meter, metrics as otelMetrics } from '@opentelemetry/api';
import type { InspectionEvent } from 'xstate';
import { decisionObservation } from '../../machines/inquiry-schedule.js';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import {
  InquiryPlan,
  jitterShare,
  type LifecycleInput,
  type LifecyclePolicyInput,
  resolveLifecycleInput,
} from '../../machines/policy.js';
import type { AlipayPlusClient } from '../client/alipayplus-client.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import {
  createNotificationHandler,
  type NotificationHandler,
  type NotificationHandlerOptions,
  type NotificationPort,
} from '../notifications/notification-handler.js';
import type { PayMode, PayRequest, PayRequestInput } from '../protocol/pay.js';
import { sqliteStore } from '../stores/sqlite-store.js';
import {
  type AttentionResolution,
  isSharedStore,
  type LifecycleStore,
  type StoredLifecycleInput,
} from '../stores/store.js';
import { parseOrThrow } from '../validate.js';
import {
  type AttentionView,
  listAttention,
  type ResolveAttentionInput,
  resolveAttention,
} from './attention.js';
import { provideCallActors } from './call-actors.js';
import { type Admission, admittingClock, type CallApi, CallLimiter, type RateCap } from './call-limiter.js';
import { type EngineClock, systemClock } from './clock.js';
import { DecisionLearner } from './decision-learner.js';
import type { BrakeEvent, EngineEvents } from './engine-events.js';
import { createGroupCommit } from './group-commit.js';
import { type BrakeOptions, callSignal, createIncidentBrake } from './incident-brake.js';
import {
  createLifecycleTable,
  type Lifecycle,
  machineInput,
  type PaymentView,
  viewOfRecord,
} from './lifecycle.js';
import { type Logger, silentLogger } from './logger.js';
import { createEngineMetrics, METER_NAME } from './metrics.js';
import { createNotificationDelivery } from './notification-delivery.js';
import { completePay, MaxPayExpiry, samePayContent, withExpiry } from './pay-input.js';
import { createScaleOut } from './scale-out.js';
import { createSettlement } from './settlement.js';
import { TrackInput } from './track-input.js';

export type { BrakeEvent, EngineEvents, LateNotificationEvent, TransitionEvent } from './engine-events.js';
export { type PaymentView, stateString } from './lifecycle.js';

/** Cancels waiting to retry when an incident ends are sent within this many ms, spread by payment. */
const RECALL_SPREAD_MS = 5_000;

/** Options of {@link createPaymentEngine}. */
export interface PaymentEngineOptions {
  /**
   * The Alipay+ client (or anything with its methods). `pay` is needed by `engine.pay()`, `refund`
   * by a policy with `autoRefund`. The engine does not close it.
   */
  client: Pick<AlipayPlusClient, 'inquiryPayment' | 'cancelPayment'> &
    Partial<Pick<AlipayPlusClient, 'pay' | 'refund'>>;
  /** Where lifecycles live. Default: SQLite at `./.alipayplus/lifecycles.db`. */
  store?: LifecycleStore;
  /** The lifecycle policy for every payment (each `track` may override parts of it). */
  policy?: LifecyclePolicyInput;
  clock?: EngineClock;
  logger?: Logger;
  /** Called once per payment with its final outcome, after the outcome is durable. Make it idempotent: see docs. */
  onSettled?: (outcome: LifecycleOutcome) => void | Promise<void>;
  /** Receives XState inspection events of every lifecycle (e.g. the Stately inspector's `inspect`). */
  inspect?: (event: InspectionEvent) => void;
  /**
   * Alipay+ calls in flight at most; the others wait, unsigned, and go out by urgency: cancels, then
   * last looks and pays, then refunds, then routine polls (earliest expiry first). Default 256.
   */
  maxConcurrentCalls?: number;
  /**
   * Per-API caps on this engine's calls per second (engine clock), as token buckets, e.g.
   * `{ inquiryPayment: { perSecond: 50 } }`. Default: none. Workers sharing a PostgreSQL store each
   * have their own: the fleet's rate is the sum (see docs/configuration.md).
   */
  rateCaps?: Partial<Record<CallApi, RateCap>>;
  /**
   * The order in which waiting calls go out: `by-urgency` (the default, as `maxConcurrentCalls`
   * says) or `first-come`, in order of arrival, which is how the engine worked before and is kept
   * to measure the difference (bench/overload.ts). Keep the default.
   */
  admission?: Admission;
  /**
   * The incident brake: when most of Alipay+'s recent answers are REQUEST_TRAFFIC_EXCEED_LIMIT, 5xx
   * or timeouts, routine polls are paced (default 5 a second) while cancels, last looks, pays and
   * refunds keep their slots; it releases on its own when answers come back. `false` turns it off.
   * See docs/configuration.md for the thresholds.
   */
  brake?: BrakeOptions | false;
  /** `paymentNotifyUrl` of every `engine.pay()` whose request names none: the notification endpoint. */
  paymentNotifyUrl?: string;
  /**
   * The longest expiry `engine.pay()` sends, per mode (ms). Defaults: user-presented 1 min, cashier
   * 10 min, order and entry code 5 min.
   */
  maxPayExpiryMs?: Partial<Record<PayMode, number>>;
  /**
   * A lifecycle that only waits for a timer at least this far away (engine clock ms), with all its
   * changes durable, lets its actor go and is kept as its snapshot until the timer is due or an
   * event arrives for it (then restored as a restart restores it). Default 5,000; `Infinity` keeps
   * every actor. With `inspect`, every actor is kept, so that the inspector sees every lifecycle.
   */
  sleepAfterMs?: number;
  /**
   * Where the engine's instruments (`alipayplus.lifecycle.*`, see docs/operations.md) are made.
   * Default: the global API's meter `alipayplus-lifecycle`, a no-op costing nothing unless a
   * MeterProvider was registered before the engine was created.
   */
  meter?: Meter;
  /**
   * How often (real ms, whatever the engine's clock: it paces I/O) the decision delays learned here
   * are merged into the store, where other workers and a restart find them. Default 5,000.
   */
  learningFlushMs?: number;
}

/** Options of one `engine.pay()`. */
export interface PayOptions {
  /** Overrides of the engine's policy for this payment (validated with it as a whole). */
  policy?: LifecyclePolicyInput;
  /** The wallet the pay is routed to, for the adaptive schedule; else the pay answer's `pspId`. */
  walletKey?: string;
}

/** The engine's interface: see {@link createPaymentEngine}. */
export interface PaymentEngine {
  start(): Promise<void>;
  track(input: TrackInput): Promise<PaymentView>;
  /**
   * Starts a lifecycle before `pay` is sent: stores it (state `paying`, with the exact request)
   * durably, then signs and sends the pay, and resolves once the pay's answer is decided (the view
   * then shows `succeeded`, `failed`, `attention`, or the inquiry lifecycle; for an order or entry
   * code, `context.details` carries the code). The same request again resolves with the same
   * lifecycle; other content under the same paymentRequestId is refused (`PAYMENT_REQUEST_REUSED`).
   */
  pay(request: PayRequestInput, options?: PayOptions): Promise<PaymentView>;
  outcome(paymentRequestId: string): Promise<LifecycleOutcome>;
  close(paymentRequestId: string): Promise<PaymentView>;
  get(paymentRequestId: string): PaymentView | undefined;
  /**
   * The open attention items (outcome `attention`, nobody has recorded what they did), oldest
   * decision first, each with its reason, amount, age and audit history; `all` adds resolved ones.
   */
  attention(options?: { all?: boolean }): Promise<AttentionView[]>;
  /**
   * Records what a person did about an open attention item, with an audit entry, and emits
   * `attention-resolved`; the outcome never changes. Refused with nothing written: bad input or an
   * unknown payment (`INVALID_INPUT`), one not in attention or resolved already (`ATTENTION_NOT_OPEN`).
   */
  resolve(paymentRequestId: string, input: ResolveAttentionInput): Promise<AttentionResolution>;
  on<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): PaymentEngine;
  off<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): PaymentEngine;
  /** The notification endpoint: a `node:http` listener with a framework-neutral `handle()`. */
  notificationHandler(options: NotificationHandlerOptions): NotificationHandler;
  stop(): Promise<void>;
  readonly store: LifecycleStore;
  /** Lifecycles held by this engine and not yet final, sleeping ones included. */
  readonly activeCount: number;
  /** Of those, the ones waiting without an actor (see `sleepAfterMs`). */
  readonly sleepingCount: number;
}

/**
 * Creates the engine: one XState actor per payment, held in a Map; every transition persisted
 * (batched per tick); cancels sent only once `cancelling` is durable; settlements fired once the
 * outcome is durable; everything resumable after a crash.
 */
export function createPaymentEngine(options: PaymentEngineOptions): PaymentEngine {
  const { client } = options;
  const store = options.store ?? sqliteStore();
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const metrics = createEngineMetrics(options.meter ?? otelMetrics.getMeter(METER_NAME), logger);
  const emitter = new EventEmitter();
  const tracking = new Map<string, Promise<PaymentView>>();
  const maxPayExpiryMs = MaxPayExpiry.parse(options.maxPayExpiryMs ?? {});
  // Identical policies are shared between contexts: thousands of payments, one policy object.
  const policies = new Map<string, ReturnType<typeof resolveLifecycleInput>['policy']>();
  let started = false;
  let stopping = false;
  const shared = isSharedStore(store) ? store : undefined;
  // What the adaptive schedule learns: from every lifecycle settled here, whatever its policy.
  const learner = new DecisionLearner({ store, now: () => clock.now() });
  let learningTimer: ReturnType<typeof setInterval> | undefined;
  const flushLearning = () =>
    learner.flush().catch((error: unknown) => {
      logger.warn({ error: String(error) }, 'merging the learned decision delays into the store failed');
    });

  /** The adaptive plan for a payment of this wallet and expiry, under its policy's target. */
  function planOf(
    policy: { inquirySchedule: string; lagTargetMs: number; lagQuantile: number },
    walletKey: string | undefined,
    expiresInMs: number,
  ): readonly number[] | undefined {
    if (policy.inquirySchedule !== 'adaptive') return undefined;
    const { lagTargetMs, lagQuantile } = policy;
    return learner.planFor({ walletKey, expiresInMs, lagTargetMs, lagQuantile });
  }

  const settlement = createSettlement({
    store,
    shared,
    emitter,
    logger,
    onSettled: options.onSettled,
    metrics,
    observe(context, outcome) {
      const observed = decisionObservation(context, outcome);
      if (observed) learner.observe(observed.walletKey, observed.observation);
    },
  });
  const groupCommit = createGroupCommit({
    store,
    clock,
    logger,
    metrics,
    onConflict: loseOwnership,
    onFlushed(batch) {
      // settle() itself waits for the final snapshot to be durable: a batch put back is retried first.
      for (const lifecycle of batch) {
        if (lifecycle.isFinal) void settlement.settle(lifecycle);
        else lifecycle.sleepIfIdle();
      }
    },
  });
  const { durable } = groupCommit;

  const limiter = new CallLimiter({
    limit: options.maxConcurrentCalls ?? 256,
    clock,
    rateCaps: options.rateCaps,
    admission: options.admission,
  });
  // The actors' timers: due ones wait for a call slot while the limiter is full (see admittingClock).
  const admitting = admittingClock(clock, limiter);
  const actorClock = metrics.timedClock(admitting);
  const brake =
    options.brake === false
      ? undefined
      : createIncidentBrake(
          () => clock.now(),
          options.brake ?? {},
          (engaged, window) => {
            limiter.pacePolls(engaged ? brake?.pollsPerSecond : undefined);
            metrics.brake(engaged);
            // Once per change, never per call.
            if (engaged)
              logger.warn(
                { ...window, pollsPerSecond: brake?.pollsPerSecond },
                'incident brake engaged: Alipay+ is answering mostly REQUEST_TRAFFIC_EXCEED_LIMIT, 5xx or timeouts; routine polls paced, cancels and last looks not',
              );
            else {
              logger.info({ ...window }, 'incident brake released: Alipay+ answers again');
              recallCancels();
            }
            emitter.emit('brake', { engaged, window, at: clock.now() } satisfies BrakeEvent);
          },
          (callsPerSecond) => limiter.paceCalls(callsPerSecond),
        );
  /**
   * After an incident: every cancel waiting to retry goes within RECALL_SPREAD_MS, spread by
   * payment, instead of at the end of a wait that grew while every try failed (up to 5 minutes).
   */
  function recallCancels(): void {
    for (const lifecycle of lifecycles.all()) {
      if (!lifecycle.hasTag('cancelRetryWait')) continue;
      const id = lifecycle.id;
      clock.setTimeout(
        () => {
          const held = lifecycles.held(id);
          if (held?.hasTag('cancelRetryWait')) held.send({ type: 'RETRY_NOW', at: clock.now() });
        },
        Math.floor(jitterShare(`recall:${id}`) * RECALL_SPREAD_MS),
      );
    }
  }
  const machine = provideCallActors({
    client,
    clock,
    limiter,
    lifecycles: { get: (id) => lifecycles.get(id) },
    durable,
    shared,
    metrics,
    onCall: brake && ((api, outcome) => brake.observe(api, callSignal(outcome))),
    planFor(id, pspId) {
      const context = lifecycles.get(id)?.view().context;
      if (!context || context.walletKey !== undefined || context.plan) return undefined;
      return planOf(context.policy, pspId, context.expiresAt - context.createdAt);
    },
  });
  const lifecycles = createLifecycleTable({
    machine,
    clock,
    actorClock,
    inspect: options.inspect,
    emitter,
    minSleepMs: options.inspect ? Number.POSITIVE_INFINITY : (options.sleepAfterMs ?? 5_000),
    persist: groupCommit.schedulePersist,
    stopped(lifecycle, reason) {
      if (reason === 'lease-lost')
        logger.warn({ paymentRequestId: lifecycle.id }, 'lease lost; another worker owns this lifecycle now');
      else if (reason === 'lease-expired')
        logger.warn(
          { paymentRequestId: lifecycle.id },
          'lease not renewed in time; letting go of this lifecycle (its next owner decides)',
        );
    },
  });
  metrics.observeLifecycles(() => lifecycles.countByTopState());
  const { applyInbox, deliverNotification } = createNotificationDelivery({
    store,
    clock,
    logger,
    emitter,
    lifecycles,
    durable,
    metrics,
  });
  const scaleOut = createScaleOut({
    logger,
    lifecycles,
    settlement,
    applyInbox,
    withUnappliedNotifications: () => store.withUnappliedNotifications(),
    isStopping: () => stopping,
  });

  function loseOwnership(lifecycle: Lifecycle): void {
    logger.error(
      { paymentRequestId: lifecycle.id },
      'lifecycle changed by another writer; stopping the local actor',
    );
    lifecycle.stop('conflict');
    // Node's EventEmitter throws an 'error' nobody listens to: told only to those who asked.
    if (emitter.listenerCount('error') > 0)
      emitter.emit(
        'error',
        new AlipayPlusLifecycleError(
          'OWNERSHIP_LOST',
          `lifecycle ${lifecycle.id} was changed by another writer: this engine stopped its copy`,
        ),
      );
  }

  /**
   * The outcome of a lifecycle another worker holds: read from the store, at a growing interval (at
   * most every 2 s), until it is final; or from here, if this worker adopts and settles it meanwhile.
   * A store that fails is asked again at the next interval.
   */
  async function outcomeFromStore(id: string): Promise<LifecycleOutcome> {
    const done = new AbortController();
    const here = settlement.waitFor(id, done.signal);
    try {
      for (let waitMs = 100; ; waitMs = Math.min(waitMs * 2, 2_000)) {
        const settledHere = await Promise.race([
          here,
          new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), waitMs).unref()),
        ]);
        if (settledHere) return settledHere;
        const stored = await store.load(id).catch((error: unknown) => {
          logger.warn(
            { err: error, paymentRequestId: id },
            'reading an outcome from the store failed; asking again',
          );
          return undefined;
        });
        if (stored?.final && stored.outcome) return stored.outcome;
      }
    } finally {
      done.abort();
    }
  }

  // ---- the public API ------------------------------------------------------------------------------

  function ensureRunning(): void {
    if (!started || stopping) {
      throw new AlipayPlusLifecycleError(
        'NOT_STARTED',
        'the engine is not running: call engine.start() first',
      );
    }
  }

  async function trackNew(parsed: ReturnType<typeof TrackInput.parse>): Promise<PaymentView> {
    const id = parsed.paymentRequestId;
    const stored = await store.load(id);
    if (stored) {
      if (stored.final) return viewOfRecord(stored);
      const held = lifecycles.get(id);
      if (held) return held.view();
      if (!shared) return lifecycles.restore(stored).view();
      // Shared: resume it here only if no other worker holds a live lease on it.
      const acquired = await shared.acquire(id);
      return acquired ? lifecycles.restore(acquired).view() : viewOfRecord(stored);
    }
    const now = clock.now();
    const createdAt = parsed.createdAt ?? now;
    const expiresAt =
      parsed.paymentExpiryTime === undefined
        ? undefined
        : typeof parsed.paymentExpiryTime === 'number'
          ? parsed.paymentExpiryTime
          : Date.parse(parsed.paymentExpiryTime);
    const input: LifecycleInput = {
      paymentRequestId: id,
      createdAt,
      startedAt: now,
      policy: { ...(options.policy ?? {}), ...(parsed.policy ?? {}) } as LifecyclePolicyInput,
    };
    if (parsed.paymentId) input.paymentId = parsed.paymentId;
    if (parsed.walletKey !== undefined) input.walletKey = parsed.walletKey;
    if (parsed.amount) input.amount = { currency: parsed.amount.currency, value: parsed.amount.value };
    if (expiresAt !== undefined) input.expiresAt = expiresAt;
    if (expiresAt !== undefined && expiresAt <= createdAt && parsed.createdAt === undefined) {
      throw new AlipayPlusLifecycleError(
        'INVALID_INPUT',
        `payment ${id}: paymentExpiryTime ${new Date(expiresAt).toISOString()} has passed, and without createdAt the payment would be created now, after it: give createdAt (epoch ms of the pay) to track it; nothing was stored`,
      );
    }
    // An expiry that has passed is no reason to refuse: the payment may have been charged. The
    // lifecycle takes its last look at once, then cancels, or past the window takes the refund path.
    return insertNew(input, 'TRACK');
  }

  /** Validates the input, shares its policy object, stores the new lifecycle and starts it. */
  async function insertNew(input: StoredLifecycleInput, event: 'TRACK' | 'PAY'): Promise<PaymentView> {
    const id = input.paymentRequestId;
    const now = clock.now();
    const resolved = resolveLifecycleInput(machineInput(input)); // throws INVALID_INPUT naming the field
    const policyKey = JSON.stringify(resolved.policy);
    if (!policies.has(policyKey)) policies.set(policyKey, resolved.policy);
    input.policy = policies.get(policyKey) as LifecyclePolicyInput;
    if (input.inquiryPlan === undefined) {
      const plan = planOf(resolved.policy, resolved.walletKey, resolved.expiresAt - resolved.createdAt);
      // Checked like the caller's input: a plan the machine would refuse is not given to it.
      if (plan && InquiryPlan.safeParse(plan).success) input.inquiryPlan = plan as number[];
    }

    const lifecycle = await lifecycles.start(
      input,
      (record) =>
        metrics.storeWrite('insert', () =>
          store.insert(record, [{ paymentRequestId: id, at: now, from: '', to: record.state, event }]),
        ),
      clock.now(),
    );
    if (!lifecycle) {
      // Another engine (or an earlier call) stored it first: take what is stored.
      const again = await store.load(id);
      if (!again) throw new AlipayPlusLifecycleError('INVALID_INPUT', `payment ${id} could not be stored`);
      if (again.final) return viewOfRecord(again);
      return viewOf(id) ?? lifecycles.restore(again).view();
    }
    await applyInbox(lifecycle);
    const shown = lifecycle.view();
    lifecycle.sleepIfIdle();
    return shown;
  }

  /** Resolves once the lifecycle has left `paying` (or is no longer held here). */
  function payDecided(id: string): Promise<void> {
    return lifecycles.get(id)?.payDecided() ?? Promise.resolve();
  }

  function reused(id: string, why: string): AlipayPlusLifecycleError {
    return new AlipayPlusLifecycleError(
      'PAYMENT_REQUEST_REUSED',
      `payment ${id} ${why}: one paymentRequestId is one pay. Use a new paymentRequestId for a new payment; nothing was stored or sent`,
    );
  }

  async function payNew(request: PayRequestInput, payOptions: PayOptions | undefined): Promise<PaymentView> {
    if (!client.pay)
      throw new AlipayPlusLifecycleError(
        'INVALID_OPTIONS',
        "the engine's client has no pay(): pass the Alipay+ client",
      );
    const completed = completePay(request, options.paymentNotifyUrl);
    const id = completed.request.paymentRequestId;
    const stored = await store.load(id);
    if (stored) {
      // A pay asked for again (a retry, a restart): the same content joins the lifecycle, whatever
      // the time; other content is refused.
      const earlier = stored.input.payRequest as PayRequest | undefined;
      if (!earlier) throw reused(id, 'was tracked, not started by engine.pay()');
      if (!samePayContent(earlier, completed.request))
        throw reused(id, 'was already sent with other content');
      if (stored.final) return viewOfRecord(stored);
      // Held here already (in any phase), or restored now unless another worker may hold it.
      const lifecycle = lifecycles.get(id) ?? (!shared ? lifecycles.restore(stored) : undefined);
      if (!lifecycle) return viewOfRecord(stored);
      await payDecided(id);
      return viewOf(id) ?? lifecycle.view();
    }
    const now = clock.now();
    const prepared = withExpiry(completed, now, maxPayExpiryMs);
    const { paymentAmount } = prepared.wire;
    const input: StoredLifecycleInput = {
      paymentRequestId: id,
      amount: { currency: paymentAmount.currency, value: paymentAmount.value },
      createdAt: now,
      startedAt: now,
      expiresAt: prepared.expiresAt,
      policy: { ...(options.policy ?? {}), ...(payOptions?.policy ?? {}) } as LifecyclePolicyInput,
      pay: { mode: prepared.mode },
      payRequest: prepared.wire,
    };
    if (payOptions?.walletKey !== undefined) input.walletKey = payOptions.walletKey;
    const started = await insertNew(input, 'PAY');
    await payDecided(id);
    return viewOf(id) ?? started;
  }

  /** What `engine.get()` shows of a lifecycle held here (in any phase). */
  function viewOf(id: string): PaymentView | undefined {
    return lifecycles.get(id)?.view();
  }

  const engine: PaymentEngine = {
    store,
    get activeCount() {
      return lifecycles.activeCount;
    },
    get sleepingCount() {
      return lifecycles.sleepingCount;
    },

    async start() {
      if (started) return;
      await store.open();
      await learner.load();
      learningTimer = setInterval(flushLearning, options.learningFlushMs ?? 5_000);
      learningTimer.unref();
      started = true;
      stopping = false;
      settlement.start();
      const resumable = await store.listResumable();
      // Renewal first: settling what was just adopted takes a while (one settlement at a time), and
      // its leases must not run out meanwhile, or another worker would adopt and fire them again.
      if (shared) await scaleOut.startSharing(shared);
      await scaleOut.takeOver(resumable);
      // Late notifications whose recording a crash cut short: recorded and reported now.
      for (const notification of await store.unappliedOfFinal()) await deliverNotification(notification);
      await metrics.start(store);
      logger.info({ resumed: resumable.length }, 'engine started');
    },

    async track(input) {
      ensureRunning();
      const parsed = parseOrThrow(TrackInput, input, 'track input');
      const id = parsed.paymentRequestId;
      const existing = viewOf(id);
      if (existing) return existing;
      const known = settlement.finished(id);
      if (known) return known;
      const pending = tracking.get(id);
      if (pending) return pending;
      const promise = trackNew(parsed).finally(() => tracking.delete(id));
      tracking.set(id, promise);
      return promise;
    },

    async pay(request, payOptions) {
      ensureRunning();
      const id = (request as { paymentRequestId?: unknown })?.paymentRequestId;
      if (typeof id !== 'string') return payNew(request, payOptions); // refused there, naming the field
      // Concurrent calls for one payment share one start (track and pay alike).
      const pending = tracking.get(id);
      if (pending) {
        await pending.catch(() => undefined);
        return engine.pay(request, payOptions);
      }
      const promise = payNew(request, payOptions).finally(() => tracking.delete(id));
      tracking.set(id, promise);
      return promise;
    },

    async outcome(id) {
      const lifecycle = lifecycles.get(id);
      // Fired here already (a settlement still retrying its onSettled or mark is held meanwhile).
      const done = settlement.finished(id)?.outcome;
      if (done && (!lifecycle || lifecycle.phase === 'settling')) return done;
      if (!lifecycle) {
        const stored = await store.load(id);
        if (!stored)
          throw new AlipayPlusLifecycleError(
            'INVALID_INPUT',
            `payment ${id} is not tracked: call track() first`,
          );
        if (stored.final && stored.outcome) return stored.outcome;
        // Held by another worker: it settles there, and this one learns it from the store.
        if (shared) return outcomeFromStore(id);
      }
      return settlement.waitFor(id);
    },

    async close(id) {
      ensureRunning();
      const lifecycle = lifecycles.held(id);
      if (!lifecycle) {
        const stored = settlement.finished(id) ?? (await store.load(id).then((r) => r && viewOfRecord(r)));
        if (!stored)
          throw new AlipayPlusLifecycleError(
            'INVALID_INPUT',
            `payment ${id} is not tracked: nothing to close`,
          );
        return stored;
      }
      lifecycle.send({ type: 'CLOSE', at: clock.now() });
      return lifecycle.view();
    },

    async attention(attentionOptions) {
      ensureRunning();
      return listAttention(store, clock.now(), attentionOptions);
    },

    async resolve(id, input) {
      ensureRunning();
      const { resolution, reason } = await resolveAttention(store, id, input, clock.now());
      metrics.attentionResolved();
      emitter.emit('attention-resolved', { ...resolution, reason });
      return resolution;
    },

    get(id) {
      return viewOf(id) ?? settlement.finished(id);
    },

    on(event, listener) {
      emitter.on(event, listener as (...args: unknown[]) => void);
      return engine;
    },
    off(event, listener) {
      emitter.off(event, listener as (...args: unknown[]) => void);
      return engine;
    },

    notificationHandler(handlerOptions) {
      // The endpoint's port: this engine's store and delivery, kept off the public interface.
      const port: NotificationPort = {
        now: () => clock.now(),
        async record(notification) {
          ensureRunning();
          await store.recordNotification(notification);
        },
        deliver: deliverNotification,
        refused: metrics.notification,
      };
      return createNotificationHandler(port, handlerOptions, logger);
    },

    async stop() {
      if (!started) return;
      stopping = true;
      metrics.stop();
      // Everything already decided reaches the store; nothing after this point is written.
      scaleOut.stopRounds();
      await groupCommit.drain();
      clearInterval(learningTimer);
      await flushLearning();
      // Settlements still retrying are given back too: unmarked, the next owner (or start) fires them.
      const owned = [...lifecycles.ids()];
      settlement.stop();
      lifecycles.stopAll('engine-stopped');
      if (shared) {
        await scaleOut.stopListening();
        // Drain: give the leases back so that the other workers adopt at once, not after the lease.
        await shared.release(owned);
      }
      if (!options.store) await store.close();
      started = false;
      logger.info({}, 'engine stopped');
    },
  };
  return engine;
}
