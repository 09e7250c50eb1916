import { EventEmitter } from 'node:events';
import { type Actor, createActor, fromPromise, type InspectionEvent, type Snapshot } from 'xstate';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import {
  type CallInput,
  type CallResult,
  type LifecycleContext,
  type LifecycleEvent,
  type PayCallInput,
  paymentLifecycleMachine,
  type RefundCallInput,
} from '../../machines/payment-lifecycle.js';
import {
  type LifecycleInput,
  type LifecyclePolicyInput,
  resolveLifecycleInput,
} from '../../machines/policy.js';
import type { AlipayPlusClient } from '../client/alipayplus-client.js';
import type {
  CancelOutcome,
  InquiryOutcome,
  NoResult,
  PayOutcome,
  RefundOutcome,
} from '../client/answers.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import type { NotifyPaymentRequest } from '../protocol/notify-payment.js';
import type { PayMode, PayRequest, PayRequestInput } from '../protocol/pay.js';
import { sqliteStore } from '../stores/sqlite-store.js';
import {
  type AuditEntry,
  isSharedStore,
  type LifecycleRecord,
  type LifecycleStore,
  type LifecycleWrite,
  type StoredLifecycleInput,
  type StoredNotification,
} from '../stores/store.js';
import { parseOrThrow } from '../validate.js';
import { admittingClock, CallLimiter } from './call-limiter.js';
import { type EngineClock, systemClock } from './clock.js';
import { type Logger, silentLogger } from './logger.js';
import {
  createNotificationHandler,
  type NotificationHandler,
  type NotificationHandlerOptions,
} from './notification-handler.js';
import { completePay, MaxPayExpiry, samePayContent, withExpiry } from './pay-input.js';
import { TrackInput } from './track-input.js';

type LifecycleActor = Actor<typeof paymentLifecycleMachine>;
type LifecycleSnapshot = ReturnType<LifecycleActor['getSnapshot']>;

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
  /** Alipay+ calls in flight at most; the others wait, unsigned. Default 256. */
  maxConcurrentCalls?: number;
  /** `paymentNotifyUrl` of every `engine.pay()` whose request names none: the notification endpoint. */
  paymentNotifyUrl?: string;
  /**
   * The longest expiry `engine.pay()` sends, per mode (ms). Defaults: user-presented 1 min, cashier
   * 10 min, order and entry code 5 min.
   */
  maxPayExpiryMs?: Partial<Record<PayMode, number>>;
}

/** Options of one `engine.pay()`. */
export interface PayOptions {
  /** Overrides of the engine's policy for this payment (validated with it as a whole). */
  policy?: LifecyclePolicyInput;
}

/** What `engine.get()` shows of one payment. */
export interface PaymentView {
  paymentRequestId: string;
  state: string;
  final: boolean;
  context: LifecycleContext;
  outcome?: LifecycleOutcome;
}

export interface TransitionEvent {
  paymentRequestId: string;
  from: string;
  to: string;
  event: string;
  code?: string;
  at: number;
}

export interface LateNotificationEvent {
  paymentRequestId: string;
  notification: NotifyPaymentRequest;
  /** The state it arrived in: `cancelling...`, or a final state. */
  state: string;
  at: number;
}

export interface EngineEvents {
  transition: [TransitionEvent];
  settled: [LifecycleOutcome];
  attention: [LifecycleOutcome];
  'late-notification': [LateNotificationEvent];
  error: [Error];
}

interface Entry {
  id: string;
  actor: LifecycleActor;
  /** As stored; the pay request is let go once the lifecycle has left `paying`. */
  input: StoredLifecycleInput;
  createdAt: number;
  state: string;
  /** Version of the last write handed to the store (or read from it). */
  version: number;
  /** Version known durable. */
  durableVersion: number;
  lastSnapshot: LifecycleSnapshot | undefined;
  dirty: boolean;
  audit: AuditEntry[];
  appliedNotifications: string[];
  stopped: boolean;
  settling: boolean;
  /** The external event being sent right now (for the audit log). */
  sending: LifecycleEvent | undefined;
  /** Notifications already fed to this actor (created on the first one). */
  seenNotifications?: Set<string>;
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
  on<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): PaymentEngine;
  off<K extends keyof EngineEvents>(event: K, listener: (...args: EngineEvents[K]) => void): PaymentEngine;
  /** The notification endpoint: a `node:http` listener with a framework-neutral `handle()`. */
  notificationHandler(options: NotificationHandlerOptions): NotificationHandler;
  /** Feeds a verified notification (the notification handler calls this after storing it). */
  deliverNotification(notification: StoredNotification): Promise<void>;
  /** Stores a verified notification durably; resolves once it is safe to acknowledge. */
  storeNotification(notification: StoredNotification): Promise<void>;
  stop(): Promise<void>;
  readonly store: LifecycleStore;
  readonly clock: EngineClock;
  /** Lifecycles held in memory (not yet final). */
  readonly activeCount: number;
}

/** Interned state strings: each lifecycle keeps one, and thousands must not each own a copy. */
const stateStrings = new Map<string, Map<string, string>>();

/** `{ awaitingResult: 'pending' }` → `'awaitingResult.pending'` (the same string object every time). */
export function stateString(value: unknown): string {
  if (typeof value === 'string') return value;
  for (const key in value as Record<string, unknown>) {
    const child = stateString((value as Record<string, unknown>)[key]);
    let byChild = stateStrings.get(key);
    if (!byChild) {
      byChild = new Map();
      stateStrings.set(key, byChild);
    }
    let joined = byChild.get(child);
    if (joined === undefined) {
      joined = `${key}.${child}`;
      byChild.set(child, joined);
    }
    return joined;
  }
  return '?.';
}

/** No pay is signed this close to its expiry: it could not reach Alipay+ before the expiry it carries. */
const PAY_CUTOFF_MS = 1_000;

/** The states that invoke an inquiry when their waiting state's timer fires. */
const INQUIRING = 'awaitingResult.inquiring';
const LAST_LOOK = 'awaitingNotification.lastLook';

/** States in which a notification can no longer change the outcome (a cancel may be on its way). */
const LATE_STATES = /^(cancelling|windowClosed|refunding)/;

/** The machine's input: the stored input without the pay request, which stays with the engine. */
function machineInput(input: StoredLifecycleInput): LifecycleInput {
  if (input.payRequest === undefined) return input;
  const { payRequest: _request, ...rest } = input;
  return rest;
}

function eventName(type: string): string {
  if (type.startsWith('xstate.done.actor.')) return 'call.done';
  if (type.startsWith('xstate.error.actor.')) return 'call.error';
  if (type.startsWith('xstate.after.')) return `timer.${type.split('.')[2]}`;
  return type;
}

function decidingCode(snapshot: LifecycleSnapshot, eventType: string, event: unknown): string | undefined {
  const { context } = snapshot;
  if (snapshot.status === 'done') return context.outcome?.decidedBy.code;
  if (eventType === 'NOTIFIED')
    return (event as { notification: NotifyPaymentRequest }).notification.paymentResult.resultCode;
  if (eventType.startsWith('xstate.done.actor.') || eventType.startsWith('xstate.error.actor.')) {
    if (stateString(snapshot.value).startsWith('cancelling') && context.cancel?.lastCode)
      return context.cancel.lastCode;
    return context.lastAnswer?.paymentCode ?? context.lastAnswer?.code;
  }
  return undefined;
}

/** Keeps the most recent final outcomes for `get()`, so that memory stays bounded over days. */
const FINISHED_KEPT = 10_000;

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
  const emitter = new EventEmitter();
  const entries = new Map<string, Entry>();
  const finished = new Map<string, PaymentView>();
  const tracking = new Map<string, Promise<PaymentView>>();
  /** engine.pay() calls waiting for their pay's answer to be decided. */
  const payWaiters = new Map<string, (() => void)[]>();
  const maxPayExpiryMs = MaxPayExpiry.parse(options.maxPayExpiryMs ?? {});
  const waiters = new Map<string, ((outcome: LifecycleOutcome) => void)[]>();
  // Identical policies are shared between contexts: thousands of payments, one policy object.
  const policies = new Map<string, ReturnType<typeof resolveLifecycleInput>['policy']>();
  let started = false;
  let stopping = false;
  const shared = isSharedStore(store) ? store : undefined;
  const background: NodeJS.Timeout[] = [];
  let unlisten: (() => Promise<void>) | undefined;
  /** Final lifecycles adopted for their settlement: not in `entries`, renewed all the same. */
  const settlingIds = new Set<string>();

  // ---- persistence: group commit ---------------------------------------------------------------

  let flushScheduled = false;
  let flushing: Promise<void> | undefined;
  const flushListeners: (() => void)[] = [];
  // Only the payments that changed: a flush must not walk every payment in memory.
  const dirty = new Set<Entry>();

  function schedulePersist(entry: Entry): void {
    entry.dirty = true;
    dirty.add(entry);
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(() => void flush());
  }

  async function flush(): Promise<void> {
    flushScheduled = false;
    if (flushing) await flushing; // one flush at a time, in order
    const batch = [...dirty].filter((e) => e.dirty && !e.stopped);
    dirty.clear();
    if (batch.length === 0) return notifyFlushed();
    const writes: LifecycleWrite[] = batch.map((entry) => {
      const write: LifecycleWrite = {
        record: recordOf(entry, entry.version + 1),
        expectedVersion: entry.version,
        audit: entry.audit,
        appliedNotifications: entry.appliedNotifications,
      };
      entry.version += 1;
      entry.dirty = false;
      entry.audit = [];
      entry.appliedNotifications = [];
      return write;
    });
    flushing = (async () => {
      try {
        const conflicts = await store.write(writes);
        const refused = new Set(conflicts.map((c) => c.paymentRequestId));
        for (const write of writes) {
          const entry = entries.get(write.record.paymentRequestId);
          if (!entry) continue;
          if (refused.has(entry.id)) loseOwnership(entry);
          else entry.durableVersion = Math.max(entry.durableVersion, write.record.version);
        }
      } catch (error) {
        // Nothing was written: put the writes back and try again shortly. Whatever waits for
        // durability (a cancel, an ack, a settlement) keeps waiting: failing safe.
        logger.error({ err: error }, 'store write failed; retrying');
        for (const write of writes) {
          const entry = entries.get(write.record.paymentRequestId);
          if (!entry) continue;
          entry.version = write.expectedVersion;
          entry.audit = [...write.audit, ...entry.audit];
          entry.appliedNotifications = [...write.appliedNotifications, ...entry.appliedNotifications];
          entry.dirty = true;
          dirty.add(entry);
        }
        setTimeout(() => schedulePersistAll(), 200).unref();
      }
    })();
    await flushing;
    flushing = undefined;
    notifyFlushed();
    for (const entry of batch) if (entry.lastSnapshot?.status === 'done') void settle(entry);
  }

  function schedulePersistAll(): void {
    const first = dirty.values().next().value;
    if (first) schedulePersist(first);
  }

  function notifyFlushed(): void {
    for (const listener of flushListeners.splice(0)) listener();
  }

  /** Resolves once everything this entry did so far is durable. */
  async function durable(entry: Entry): Promise<void> {
    // Let the current macrostep's snapshot reach the writer first.
    await new Promise((resolve) => setImmediate(resolve));
    while (!entry.stopped && (entry.dirty || entry.durableVersion < entry.version)) {
      await new Promise<void>((resolve) => flushListeners.push(resolve));
      if (entry.dirty && !flushScheduled && !flushing) schedulePersist(entry);
    }
    if (entry.stopped)
      throw new AlipayPlusLifecycleError('INVALID_OPTIONS', `lifecycle ${entry.id} was stopped`);
  }

  function recordOf(entry: Entry, version: number): LifecycleRecord {
    const snapshot = entry.lastSnapshot ?? entry.actor.getSnapshot();
    const record: LifecycleRecord = {
      paymentRequestId: entry.id,
      version,
      input: entry.input,
      state: stateString(snapshot.value),
      final: snapshot.status === 'done',
      snapshot: entry.actor.getPersistedSnapshot(),
      settledFired: false,
      createdAt: entry.createdAt,
      updatedAt: clock.now(),
    };
    if (snapshot.output) record.outcome = snapshot.output;
    return record;
  }

  function loseOwnership(entry: Entry): void {
    logger.error(
      { paymentRequestId: entry.id },
      'lifecycle changed by another writer; stopping the local actor',
    );
    stopEntry(entry);
    emitter.emit(
      'error',
      new AlipayPlusLifecycleError('INVALID_OPTIONS', `lifecycle ${entry.id} was changed by another writer`),
    );
  }

  function stopEntry(entry: Entry): void {
    entry.stopped = true;
    entries.delete(entry.id);
    entry.actor.stop();
    leftPaying(entry);
  }

  // ---- the machine, with the engine's calls -----------------------------------------------------

  const limiter = new CallLimiter(options.maxConcurrentCalls ?? 256);
  // The actors' timers: due ones wait for a call slot while the limiter is full (see admittingClock).
  const actorClock = admittingClock(clock, limiter);
  const abortedCall = (): NoResult => ({
    kind: 'no-result',
    reason: 'aborted',
    detail: 'aborted while waiting to be sent',
  });

  /**
   * Whether this worker may start a side effect (a pay, a cancel, a refund) for the lifecycle: only
   * once everything it did so far is durable, and only while its lease surely holds (a paused or
   * partitioned worker's lifecycles may belong to another by now: it stops here, the owner decides).
   */
  async function mayAct(id: string): Promise<boolean> {
    const entry = entries.get(id);
    if (entry) await durable(entry);
    if (shared && performance.now() > shared.leaseValidUntil()) {
      if (entry) stopEntry(entry);
      return false;
    }
    return true;
  }

  const notSent = (detail: string): NoResult => ({ kind: 'no-result', reason: 'not-sent', detail });

  const machine = paymentLifecycleMachine.provide({
    actors: {
      pay: fromPromise<CallResult<PayOutcome>, PayCallInput>(async ({ input, signal }) => {
        // Sent only once `paying` (with the exact request) is durable: a crash cannot lose a sent pay.
        if (!(await mayAct(input.paymentRequestId))) return { outcome: abortedCall(), at: clock.now() };
        const request = entries.get(input.paymentRequestId)?.input.payRequest as PayRequest | undefined;
        const send = () => {
          // Checked once a call slot is ours, right before signing: no pay in the last second before
          // expiry (it could not arrive in time) nor after it.
          if (clock.now() >= input.notAfter - PAY_CUTOFF_MS)
            return Promise.resolve(notSent('the payment expires within a second, or has expired'));
          if (!request || !client.pay) return Promise.resolve(notSent('no pay request or no client.pay'));
          return client.pay(request, { signal });
        };
        return { outcome: await limiter.run(signal, send, abortedCall), at: clock.now() };
      }),
      refund: fromPromise<CallResult<RefundOutcome>, RefundCallInput>(async ({ input, signal }) => {
        // Sent only once `refunding` is durable, with the same refundRequestId every time.
        if (!(await mayAct(input.paymentRequestId))) return { outcome: abortedCall(), at: clock.now() };
        const refund = client.refund;
        if (!refund) return { outcome: notSent('the client has no refund()'), at: clock.now() };
        const request = {
          refundRequestId: input.refundRequestId,
          ...input.ref,
          refundAmount: input.refundAmount,
          refundReason: 'payment result unconfirmed when the cancel window closed',
        };
        return {
          outcome: await limiter.run(signal, () => refund(request, { signal }), abortedCall),
          at: clock.now(),
        };
      }),
      inquiryPayment: fromPromise<CallResult<InquiryOutcome>, CallInput>(async ({ input, signal }) => ({
        outcome: await limiter.run(signal, () => client.inquiryPayment(input.ref, { signal }), abortedCall),
        at: clock.now(),
      })),
      cancelPayment: fromPromise<CallResult<CancelOutcome>, CallInput>(async ({ input, signal }) => {
        // A cancel goes out only once "cancelling" is durable: a crash now cannot forget that it was sent.
        if (!(await mayAct(input.paymentRequestId))) return { outcome: abortedCall(), at: clock.now() };
        return {
          outcome: await limiter.run(signal, () => client.cancelPayment(input.ref, { signal }), abortedCall),
          at: clock.now(),
        };
      }),
    },
  });

  /**
   * The event behind a snapshot when no inspector is attached (inspection costs an object per
   * action and event on every lifecycle): external events are the ones the engine is sending;
   * internal ones follow from the state they leave.
   */
  function inferredEvent(entry: Entry, to: string): { type: string } {
    if (entry.sending) return entry.sending;
    const from = entry.state;
    if (from.endsWith('.pending')) return { type: 'xstate.after.untilNextInquiry' };
    if (from.endsWith('.waiting')) return { type: 'xstate.after.untilExpiry' };
    if (from === 'cancelling.retryWait') {
      return {
        type: to.startsWith('windowClosed')
          ? 'xstate.after.untilCancelWindowEnds'
          : 'xstate.after.untilCancelRetry',
      };
    }
    if (from === 'windowClosed.retryWait') return { type: 'xstate.after.untilWindowCheck' };
    if (from === 'refunding.retryWait') return { type: 'xstate.after.untilRefundRetry' };
    return { type: 'xstate.done.actor.call' };
  }

  function send(entry: Entry, event: LifecycleEvent): void {
    entry.sending = event;
    try {
      entry.actor.send(event);
    } finally {
      entry.sending = undefined;
    }
  }

  function observe(entry: Entry, snapshot: LifecycleSnapshot, cause: unknown): void {
    if (entry.stopped || snapshot === entry.lastSnapshot) return;
    entry.lastSnapshot = snapshot;
    const to = stateString(snapshot.value);
    const event = (cause ?? inferredEvent(entry, to)) as { type: string; at?: number };
    const from = entry.state;
    entry.state = to;
    if (event.type === 'xstate.init') return;
    const eventLabel = eventName(event.type);
    const external = event.type === 'NOTIFIED' || event.type === 'CLOSE' || event.type === 'RESUME';
    if (from !== to || external) {
      const audit: AuditEntry = { paymentRequestId: entry.id, at: clock.now(), from, to, event: eventLabel };
      const code = decidingCode(snapshot, event.type, event);
      if (code) audit.code = code;
      entry.audit.push(audit);
      if (emitter.listenerCount('transition') > 0)
        emitter.emit('transition', { ...audit, paymentRequestId: entry.id } satisfies TransitionEvent);
    }
    if (from.startsWith('paying') && !to.startsWith('paying')) leftPaying(entry);
    if (event.type === 'NOTIFIED' && LATE_STATES.test(from) && LATE_STATES.test(to)) {
      emitter.emit('late-notification', {
        paymentRequestId: entry.id,
        notification: (event as unknown as { notification: NotifyPaymentRequest }).notification,
        state: to,
        at: clock.now(),
      } satisfies LateNotificationEvent);
    }
    // A timer that starts an inquiry is not written: the inquiry is a read, and a crash before its
    // answer restores the waiting state, whose deadline has passed, so it simply inquires again.
    // Its audit entry goes with the answer's write. Every other transition is written.
    if ((to === INQUIRING || to === LAST_LOOK) && event.type.startsWith('xstate.after.')) return;
    schedulePersist(entry);
  }

  /** The pay is decided: its waiters resume, and the request (re-sent only from `paying`) is let go. */
  function leftPaying(entry: Entry): void {
    if (entry.input.payRequest !== undefined) entry.input = machineInput(entry.input);
    const list = payWaiters.get(entry.id);
    if (!list) return;
    payWaiters.delete(entry.id);
    for (const resolve of list) resolve();
  }

  function spawn(id: string, input: StoredLifecycleInput, createdAt: number, snapshot?: unknown): Entry {
    const entry = {
      id,
      input,
      createdAt,
      state: '',
      version: 0,
      durableVersion: 0,
      lastSnapshot: undefined,
      dirty: false,
      audit: [],
      appliedNotifications: [],
      stopped: false,
      settling: false,
      sending: undefined,
    } as unknown as Entry;
    const { inspect } = options;
    // One object shape for every payment (no conditional spreads): XState copies these options
    // into each actor, and differing shapes cost a hidden class per payment.
    const actor = createActor(machine, {
      // The inspector (and any log of actor IDs) shows the payment, not a session number.
      id,
      input: machineInput(input),
      clock: actorClock as never,
      snapshot: snapshot as Snapshot<unknown> | undefined,
      inspect: inspect
        ? (inspection: InspectionEvent) => {
            inspect(inspection);
            if (inspection.type === '@xstate.snapshot' && inspection.actorRef === entry.actor) {
              observe(entry, inspection.snapshot as LifecycleSnapshot, inspection.event);
            }
          }
        : undefined,
    });
    entry.actor = actor;
    entry.lastSnapshot = actor.getSnapshot();
    entry.state = stateString(entry.lastSnapshot.value);
    if (!inspect)
      // Positional handlers, not an observer object: a named closure per payment costs more heap.
      actor.subscribe(
        (next) => observe(entry, next, undefined),
        () => undefined,
      );
    return entry;
  }

  // ---- settlement ---------------------------------------------------------------------------------

  async function settle(entry: Entry): Promise<void> {
    // Only once the final snapshot itself is durable: a later flush calls again otherwise.
    if (entry.settling || entry.stopped || entry.dirty || entry.durableVersion < entry.version) return;
    entry.settling = true;
    const outcome = entry.lastSnapshot?.output as LifecycleOutcome;
    await fireSettlement(entry.id, outcome);
    entry.stopped = true;
    entries.delete(entry.id);
    entry.actor.stop();
  }

  // Settlements run one at a time, each marked before the next fires: a crash can then repeat at
  // most the one settlement whose mark had not committed, not a whole batch of them.
  let settlements: Promise<void> = Promise.resolve();

  /** Fires onSettled and `settled` (and `attention`), then marks it fired. At most once per process. */
  function fireSettlement(id: string, outcome: LifecycleOutcome, owned = () => true): Promise<void> {
    const next = settlements.then(() => (owned() ? fireOne(id, outcome) : undefined));
    settlements = next.catch(() => undefined);
    return next;
  }

  async function fireOne(id: string, outcome: LifecycleOutcome): Promise<void> {
    if (shared && performance.now() > shared.leaseValidUntil()) return; // the next owner fires it
    remember({
      paymentRequestId: id,
      state: outcome.status,
      final: true,
      context: {} as LifecycleContext,
      outcome,
    });
    try {
      await options.onSettled?.(outcome);
    } catch (error) {
      // Not marked: it fires again on the next start.
      logger.error({ err: error, paymentRequestId: id }, 'onSettled failed; it will fire again on restart');
      resolveWaiters(id, outcome);
      return;
    }
    emitter.emit('settled', outcome);
    if (outcome.status === 'attention') emitter.emit('attention', outcome);
    await store.markSettled(id);
    resolveWaiters(id, outcome);
  }

  function remember(view: PaymentView): void {
    finished.set(view.paymentRequestId, view);
    if (finished.size > FINISHED_KEPT) finished.delete(finished.keys().next().value as string);
  }

  function resolveWaiters(id: string, outcome: LifecycleOutcome): void {
    for (const resolve of waiters.get(id) ?? []) resolve(outcome);
    waiters.delete(id);
  }

  // ---- notifications ------------------------------------------------------------------------------

  async function applyInbox(entry: Entry): Promise<void> {
    for (const notification of await store.unappliedNotifications(entry.id))
      await deliverNotification(notification);
  }

  async function deliverNotification(notification: StoredNotification): Promise<void> {
    const entry = entries.get(notification.paymentRequestId);
    if (entry && !entry.stopped && entry.lastSnapshot?.status !== 'done') {
      // The handler and an inbox drain can race for the same notification: apply it once.
      entry.seenNotifications ??= new Set();
      if (entry.seenNotifications.has(notification.id)) return;
      entry.seenNotifications.add(notification.id);
      entry.appliedNotifications.push(notification.id);
      send(entry, { type: 'NOTIFIED', notification: notification.body, at: clock.now() });
      await durable(entry).catch(() => undefined);
      return;
    }
    const stored = entry ? undefined : await store.load(notification.paymentRequestId);
    const finalState =
      entry?.lastSnapshot?.status === 'done' ? entry.state : stored?.final ? stored.state : undefined;
    if (finalState) {
      // Late: the outcome is final and stays so. Recorded, acknowledged, reported.
      await store.markNotificationApplied(notification.id);
      emitter.emit('late-notification', {
        paymentRequestId: notification.paymentRequestId,
        notification: notification.body,
        state: finalState,
        at: clock.now(),
      } satisfies LateNotificationEvent);
      logger.info({ paymentRequestId: notification.paymentRequestId }, 'late notification recorded');
    }
    // Unknown payment: it waits in the inbox until `track` arrives.
  }

  // ---- the public API ------------------------------------------------------------------------------

  function view(entry: Entry): PaymentView {
    const snapshot = entry.lastSnapshot ?? entry.actor.getSnapshot();
    const result: PaymentView = {
      paymentRequestId: entry.id,
      state: stateString(snapshot.value),
      final: snapshot.status === 'done',
      context: snapshot.context,
    };
    if (snapshot.output) result.outcome = snapshot.output;
    return result;
  }

  function viewOfRecord(record: LifecycleRecord): PaymentView {
    const snapshot = record.snapshot as { context: LifecycleContext };
    const result: PaymentView = {
      paymentRequestId: record.paymentRequestId,
      state: record.state,
      final: record.final,
      context: snapshot.context,
    };
    if (record.outcome) result.outcome = record.outcome;
    return result;
  }

  function ensureRunning(): void {
    if (!started || stopping) {
      throw new AlipayPlusLifecycleError(
        'INVALID_OPTIONS',
        'the engine is not running: call engine.start() first',
      );
    }
  }

  function resume(record: LifecycleRecord): Entry {
    const entry = spawn(record.paymentRequestId, record.input, record.createdAt, record.snapshot);
    entry.version = record.version;
    entry.durableVersion = record.version;
    entries.set(entry.id, entry);
    entry.actor.start();
    // XState does not re-arm `after` timers of a restored actor (statelyai/xstate#5331): RESUME does.
    send(entry, { type: 'RESUME', at: clock.now() });
    return entry;
  }

  async function trackNew(parsed: ReturnType<typeof TrackInput.parse>): Promise<PaymentView> {
    const id = parsed.paymentRequestId;
    const stored = await store.load(id);
    if (stored) {
      if (stored.final) return viewOfRecord(stored);
      const existing = entries.get(id);
      if (existing) return view(existing);
      if (!shared) return view(resume(stored));
      // Shared: resume it here only if no other worker holds a live lease on it.
      const acquired = await shared.acquire(id);
      return acquired ? view(resume(acquired)) : viewOfRecord(stored);
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

    const entry = spawn(id, input, input.createdAt);
    const record = recordOf(entry, 1);
    const inserted = await store.insert(record, [
      { paymentRequestId: id, at: now, from: '', to: record.state, event },
    ]);
    if (!inserted) {
      // Another engine (or an earlier call) stored it first: take what is stored.
      const again = await store.load(id);
      if (!again) throw new AlipayPlusLifecycleError('INVALID_INPUT', `payment ${id} could not be stored`);
      return again.final ? viewOfRecord(again) : view(entries.get(id) ?? resume(again));
    }
    entry.version = 1;
    entry.durableVersion = 1;
    entries.set(id, entry);
    entry.actor.start();
    await applyInbox(entry);
    return view(entry);
  }

  /**
   * Resumes lifecycles this engine now owns (at start, or adopted from a dead worker) and fires the
   * settlements of the final ones. `start()` waits for those settlements; an adoption round does not:
   * they queue behind this worker's own, and the next round must not wait for them.
   */
  async function takeOver(records: LifecycleRecord[], waitForSettlements = true): Promise<void> {
    const resumed: Entry[] = [];
    for (const record of records) {
      if (record.final || entries.has(record.paymentRequestId)) continue;
      resumed.push(resume(record));
    }
    const settling = settleAdopted(records.filter((record) => record.final && record.outcome));
    if (!waitForSettlements)
      settling.catch((error: unknown) => logger.error({ err: error }, 'adopted settlements failed'));
    // A new owner first drains the inbox: notifications that arrived while nobody owned it.
    for (const entry of resumed) await applyInbox(entry);
    if (waitForSettlements) await settling;
  }

  /**
   * Final lifecycles adopted for their settlement. Every one of them is renewed from now until its
   * own settlement is marked, not only the one firing: settlements run one at a time, and a lease
   * that ran out while waiting its turn would let another worker adopt and fire it a second time.
   */
  async function settleAdopted(finals: LifecycleRecord[]): Promise<void> {
    for (const record of finals) settlingIds.add(record.paymentRequestId);
    try {
      for (const record of finals) {
        // Fired only if still ours when its turn comes: renewal drops one lost to another worker.
        await fireSettlement(record.paymentRequestId, record.outcome as LifecycleOutcome, () =>
          settlingIds.has(record.paymentRequestId),
        );
        settlingIds.delete(record.paymentRequestId);
      }
    } finally {
      for (const record of finals) settlingIds.delete(record.paymentRequestId);
    }
  }

  /** Leases, adoption and notification routing, on real time (not the engine's clock). */
  async function startSharing(store: NonNullable<typeof shared>): Promise<void> {
    const every = (ms: number, task: () => Promise<void>) => {
      let running = false;
      const timer = setInterval(() => {
        if (running || stopping) return;
        running = true;
        task()
          .catch((error: unknown) => logger.error({ err: error }, 'scale-out task failed'))
          .finally(() => {
            running = false;
          });
      }, ms);
      timer.unref();
      background.push(timer);
    };
    const period = Math.max(200, Math.floor(store.leaseMs / 3));
    every(period, async () => {
      const lost = await store.renew([...entries.keys(), ...settlingIds]);
      for (const id of lost) {
        settlingIds.delete(id);
        const entry = entries.get(id);
        if (entry) {
          logger.warn({ paymentRequestId: id }, 'lease lost; another worker owns this lifecycle now');
          stopEntry(entry);
        }
      }
    });
    // Adoption a little off the renewal beat, so that workers do not all query at once.
    every(period + Math.floor(Math.random() * 100), async () => takeOver(await store.adopt(), false));
    // The backstop for a missed LISTEN wake-up.
    every(period * 2, async () => {
      for (const id of await store.ownedWithUnappliedNotifications()) {
        const entry = entries.get(id);
        if (entry) await applyInbox(entry);
      }
    });
    unlisten = await store.listen((id) => {
      const entry = entries.get(id);
      if (entry)
        void applyInbox(entry).catch((error: unknown) => logger.error({ err: error }, 'inbox failed'));
    });
  }

  /** Resolves once the lifecycle has left `paying` (or is no longer held here). */
  function payDecided(id: string): Promise<void> {
    const entry = entries.get(id);
    if (!entry || entry.stopped || !entry.state.startsWith('paying')) return Promise.resolve();
    return new Promise((resolve) => {
      const list = payWaiters.get(id) ?? [];
      list.push(resolve);
      payWaiters.set(id, list);
    });
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
      const held = entries.get(id) ?? (!shared ? resume(stored) : undefined);
      if (!held) return viewOfRecord(stored);
      await payDecided(id);
      return view(held);
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
    const started = await insertNew(input, 'PAY');
    await payDecided(id);
    const entry = entries.get(id);
    return entry ? view(entry) : started;
  }

  const engine: PaymentEngine = {
    store,
    clock,
    get activeCount() {
      return entries.size;
    },

    async start() {
      if (started) return;
      await store.open();
      started = true;
      stopping = false;
      const resumable = await store.listResumable();
      // Renewal first: settling what was just adopted takes a while (one settlement at a time), and
      // its leases must not run out meanwhile, or another worker would adopt and fire them again.
      if (shared) await startSharing(shared);
      await takeOver(resumable);
      // Late notifications whose recording a crash cut short: recorded and reported now.
      for (const notification of await store.unappliedOfFinal()) await deliverNotification(notification);
      logger.info({ resumed: resumable.length }, 'engine started');
    },

    async track(input) {
      ensureRunning();
      const parsed = parseOrThrow(TrackInput, input, 'track input');
      const id = parsed.paymentRequestId;
      const existing = entries.get(id);
      if (existing) return view(existing);
      const known = finished.get(id);
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
      const entry = entries.get(id);
      const done =
        entry?.lastSnapshot?.status === 'done' ? entry.lastSnapshot.output : finished.get(id)?.outcome;
      if (done && !entry) return done;
      if (!entry) {
        const stored = await store.load(id);
        if (!stored)
          throw new AlipayPlusLifecycleError(
            'INVALID_INPUT',
            `payment ${id} is not tracked: call track() first`,
          );
        if (stored.final && stored.outcome) return stored.outcome;
      }
      return new Promise((resolve) => {
        const list = waiters.get(id) ?? [];
        list.push(resolve);
        waiters.set(id, list);
      });
    },

    async close(id) {
      ensureRunning();
      const entry = entries.get(id);
      if (!entry) {
        const stored = finished.get(id) ?? (await store.load(id).then((r) => r && viewOfRecord(r)));
        if (!stored)
          throw new AlipayPlusLifecycleError(
            'INVALID_INPUT',
            `payment ${id} is not tracked: nothing to close`,
          );
        return stored;
      }
      send(entry, { type: 'CLOSE', at: clock.now() });
      return view(entry);
    },

    get(id) {
      const entry = entries.get(id);
      return entry ? view(entry) : finished.get(id);
    },

    on(event, listener) {
      emitter.on(event, listener as (...args: unknown[]) => void);
      return engine;
    },
    off(event, listener) {
      emitter.off(event, listener as (...args: unknown[]) => void);
      return engine;
    },

    async storeNotification(notification) {
      ensureRunning();
      await store.recordNotification(notification);
    },

    deliverNotification,

    notificationHandler(handlerOptions) {
      return createNotificationHandler(engine, handlerOptions, logger);
    },

    async stop() {
      if (!started) return;
      stopping = true;
      // Everything already decided reaches the store; nothing after this point is written.
      for (const timer of background.splice(0)) clearInterval(timer);
      await flush();
      if (flushing) await flushing;
      const owned = [...entries.keys()];
      for (const entry of [...entries.values()]) stopEntry(entry);
      if (shared) {
        await unlisten?.();
        unlisten = undefined;
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
