import type { EventEmitter } from 'node:events';
import { type Actor, createActor, type InspectionEvent, type Snapshot, type StateNode } from 'xstate';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import {
  type LifecycleContext,
  type LifecycleEvent,
  type LifecycleTag,
  type paymentLifecycleMachine,
  wakeAt,
} from '../../machines/payment-lifecycle.js';
import type { LifecycleInput } from '../../machines/policy.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import type { NotifyPaymentRequest } from '../protocol/notify-payment.js';
import type { AuditEntry, LifecycleRecord, LifecycleWrite, StoredLifecycleInput } from '../stores/store.js';
import type { ActorClock, CallUrgency, TimerOwner } from './call-limiter.js';
import type { EngineClock } from './clock.js';
import type { LateNotificationEvent, TransitionEvent } from './engine-events.js';

// A lifecycle's whole in-memory life is in this file: how it is started, restored, fed events,
// observed, written, put to sleep and woken, settled and stopped. The engine's other modules ask a
// `Lifecycle` and tell it; none of them edits its fields or the table that holds it.
//
//               start / resume ──▶ live ◀──── wake (timer due, event, lease round)
//                                   │  ╲
//                     only a far    │   ╲ final and durable
//                     timer left    ▼    ▼
//                                 asleep  settling ── marked ──▶ gone
//   adopt (final, unmarked) ─────────────▲
//   stop(reason) from any phase ──────────────────────────────▶ gone
//
// `gone` lifecycles are out of the table; another object (a restart, a new adoption) may hold the
// same payment later, from the store.

/** One payment's root actor. */
export type LifecycleActor = Actor<typeof paymentLifecycleMachine>;
/** What a lifecycle actor's `getSnapshot()` returns. */
export type LifecycleSnapshot = ReturnType<LifecycleActor['getSnapshot']>;

const CANCEL_TIMER = { urgency: 'cancel' } as const;
const DEADLINE_TIMER = { urgency: 'deadline' } as const;
const REFUND_TIMER = { urgency: 'refund' } as const;

/** What `engine.get()` shows of one payment. */
export interface PaymentView {
  paymentRequestId: string;
  state: string;
  final: boolean;
  context: LifecycleContext;
  outcome?: LifecycleOutcome;
}

/**
 * - `live`: an actor runs it.
 * - `asleep`: it only waits for a far timer; kept as its persisted snapshot and one timer.
 * - `settling`: final and durable; its settlement (onSettled, then the mark) is under way.
 * - `gone`: stopped; out of the table.
 */
export type LifecyclePhase = 'live' | 'asleep' | 'settling' | 'gone';

/** Why a lifecycle was stopped here (logged; each is a different story in an incident). */
export type StopReason =
  /** The store refused its write: another writer changed it. */
  | 'conflict'
  /** A lease round found another worker holds it. */
  | 'lease-lost'
  /** This worker's lease could not be renewed in time: it may be another's by now. */
  | 'lease-expired'
  /** Its settlement was fired and marked. */
  | 'settled'
  /** The engine stops. */
  | 'engine-stopped';

/** What a notification fed to a live lifecycle did. */
export type NotifyVerdict = 'applied' | 'late' | 'duplicate';

/** A final outcome with the context it was decided in: what a settlement fires. */
export interface FinalOutcome {
  outcome: LifecycleOutcome;
  /** `undefined` for a stored record without a snapshot. */
  context: LifecycleContext | undefined;
}

/**
 * What an entry holds between writes when it has nothing to add: one shared, frozen empty list, so
 * that a write does not leave two new arrays behind in each of 100,000 lifecycles. A new array is
 * made on the first push.
 */
const NOTHING_PENDING: never[] = Object.freeze([]) as unknown as never[];

function pending<T>(list: T[], item: T): T[] {
  if (list === NOTHING_PENDING) return [item];
  list.push(item);
  return list;
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

/** The machine's input: the stored input without the pay request, which stays with the engine. */
export function machineInput(input: StoredLifecycleInput): LifecycleInput {
  if (input.payRequest === undefined) return input;
  const { payRequest: _request, ...rest } = input;
  return rest;
}

/** The audit's name of an event. */
function eventName(type: string): string {
  if (type.startsWith('xstate.done.actor.')) return 'call.done';
  if (type.startsWith('xstate.error.actor.')) return 'call.error';
  if (type.startsWith('xstate.after.')) return `timer.${type.split('.')[2]}`;
  return type;
}

const isCallAnswer = (type: string) =>
  type.startsWith('xstate.done.actor.') || type.startsWith('xstate.error.actor.');

/** The result code the audit entry of this transition shows, if any. */
function decidingCode(snapshot: LifecycleSnapshot, eventType: string, event: unknown): string | undefined {
  const { context } = snapshot;
  if (snapshot.status === 'done') return context.outcome?.decidedBy.code;
  if (eventType === 'NOTIFIED')
    return (event as { notification: NotifyPaymentRequest }).notification.paymentResult.resultCode;
  if (isCallAnswer(eventType)) {
    if (snapshot.hasTag('cancelCall') && context.cancel?.lastCode) return context.cancel.lastCode;
    return context.lastAnswer?.paymentCode ?? context.lastAnswer?.code;
  }
  return undefined;
}

/** A delayed transition of a state: its event type, and the state path it leads to. */
export interface Timer {
  eventType: string;
  target: string | undefined;
}

/** Every state's delayed transitions, read from the machine (not from its state names). */
function timersOf(machine: typeof paymentLifecycleMachine): Map<string, Timer[]> {
  const timers = new Map<string, Timer[]>();
  const walk = (node: StateNode<LifecycleContext, LifecycleEvent>) => {
    const after = node.after.map((transition) => ({
      eventType: String(transition.eventType),
      target: transition.target?.[0]?.path.join('.'),
    }));
    if (after.length > 0) timers.set(node.path.join('.'), after);
    for (const child of Object.values(node.states)) walk(child);
  };
  walk(machine.root);
  return timers;
}

/** Every state path's tags, with those of its ancestors (a snapshot in a child state has them all). */
function tagsOf(machine: typeof paymentLifecycleMachine): Map<string, ReadonlySet<string>> {
  const tags = new Map<string, ReadonlySet<string>>();
  const walk = (node: StateNode<LifecycleContext, LifecycleEvent>, inherited: ReadonlySet<string>) => {
    const own = new Set([...inherited, ...node.tags]);
    tags.set(node.path.join('.'), own);
    for (const child of Object.values(node.states)) walk(child, own);
  };
  walk(machine.root, new Set());
  return tags;
}

/** The state paths `to` is in: itself and its ancestors ('a.b.c' → 'a.b.c', 'a.b', 'a'). */
function within(to: string, path: string): boolean {
  return to === path || (to.startsWith(path) && to.charCodeAt(path.length) === 46) /* '.' */;
}

/** What every lifecycle of one engine shares: the machine, the clocks, and where it reports. */
export interface LifecycleTableOptions {
  /** The lifecycle machine with the engine's calls provided. */
  machine: typeof paymentLifecycleMachine;
  /** Stamps audit entries and events. */
  clock: EngineClock;
  /**
   * The actors' clock (their timers, and a sleeper's): a due timer waits for a call slot while the
   * limiter is full. Waking at the deadline takes the slot at once (RESUME at or past the deadline
   * starts the call), as the actor's own timer would.
   */
  actorClock: ActorClock;
  /** The engine's `inspect` option: with it, observed snapshots come with the event that caused them. */
  inspect: ((event: InspectionEvent) => void) | undefined;
  emitter: EventEmitter;
  /** A wait at least this long (engine ms) is slept; `Infinity` keeps every actor. */
  minSleepMs: number;
  /** Schedules the lifecycle's write (group commit). */
  persist(lifecycle: Lifecycle): void;
  /** Told of every stop, with its reason (the engine logs it). */
  stopped?(lifecycle: Lifecycle, reason: StopReason): void;
}

/** @internal The engine's internals, shared by its lifecycles: see {@link createLifecycleTable}. */
export interface Home extends LifecycleTableOptions {
  table: Map<string, Lifecycle>;
  timers: Map<string, Timer[]>;
  /** Every state path's tags, its ancestors' included: for a lifecycle without a snapshot object. */
  tags: Map<string, ReadonlySet<string>>;
  /** How many are live and asleep (final ones included until they settle). */
  counts: { live: number; asleep: number };
  /** engine.pay() calls waiting for the pay's answer to be decided. */
  payWaiters: Map<string, (() => void)[]>;
  /** The sleeper being woken right now: its RESUME is no event worth an audit entry unless it moves it. */
  waking: Lifecycle | undefined;
}

/** What a live lifecycle holds besides its identity: its actor and what its next write carries. */
class Live {
  /** The last snapshot observed: `getSnapshot()` without the call. */
  snapshot: LifecycleSnapshot;
  /** Changed since its last write was taken. */
  dirty = false;
  /** Version known durable. */
  durableVersion: number;
  audit: AuditEntry[] = NOTHING_PENDING;
  appliedNotifications: string[] = NOTHING_PENDING;
  /** The external event being sent right now (for the audit log). */
  sending: LifecycleEvent | undefined = undefined;
  /** Notifications already fed to this actor (made on the first one). */
  seenNotifications: Set<string> | undefined = undefined;

  constructor(
    readonly actor: LifecycleActor,
    version: number,
  ) {
    this.snapshot = actor.getSnapshot();
    this.durableVersion = version;
  }
}

/**
 * One payment held by this engine: the only owner of its in-memory state. It is one object from
 * the moment it is started or restored here until it is stopped, whatever phase it goes through.
 */
export class Lifecycle implements TimerOwner {
  readonly id: string;
  private readonly home: Home;
  private storedInput: StoredLifecycleInput;
  private currentPhase: LifecyclePhase;
  /** Version of the last write handed to the store (or read from it). */
  private writtenVersion: number;
  private currentState: string;
  /** Its actor and pending write: while live (and while settling one that settled here). */
  private live: Live | undefined;
  /** Asleep: its persisted snapshot. Settling: its final outcome. Gone: its last view. */
  private kept: unknown;
  /** Asleep: the timer that wakes it. */
  private timer: unknown;
  /** Asleep since it was read from the store: its waking is the restore (audited as RESUME). */
  private restored: boolean;
  /**
   * Whether a pay for it may have left an engine: true for a lifecycle read from the store (an
   * earlier process, or another worker, may have sent one before it stopped), and once this one
   * hands its pay to the client. False only for one started here whose pay was never handed over.
   */
  private payMayHaveLeft: boolean;

  constructor(home: Home, id: string, input: StoredLifecycleInput, version: number, state: string) {
    this.home = home;
    this.id = id;
    this.storedInput = input;
    this.currentPhase = 'gone';
    this.writtenVersion = version;
    this.currentState = state;
    this.live = undefined;
    this.kept = undefined;
    this.timer = undefined;
    this.restored = false;
    this.payMayHaveLeft = true;
  }

  // ---- what it is ------------------------------------------------------------------------------

  get phase(): LifecyclePhase {
    return this.currentPhase;
  }
  /** The dotted state path, e.g. `awaitingResult.pending`. */
  get state(): string {
    return this.currentState;
  }
  get version(): number {
    return this.writtenVersion;
  }
  /** The exact pay request, while the pay is undecided (it is let go once the lifecycle leaves `paying`). */
  get payRequest(): unknown {
    return this.storedInput.payRequest;
  }
  /** Whether its current state carries the tag (asleep or live). */
  hasTag(tag: LifecycleTag): boolean {
    return this.home.tags.get(this.currentState)?.has(tag) === true;
  }
  /** No pay for this payment has left an engine: it was started here, and its pay never handed over. */
  get payNeverLeft(): boolean {
    return !this.payMayHaveLeft;
  }
  /** Its pay is being handed to the client now (called before signing). */
  payLeaving(): void {
    this.payMayHaveLeft = true;
  }
  /** Whether it holds a final outcome (live and done, or settling). */
  get isFinal(): boolean {
    return this.currentPhase === 'settling' || this.live?.snapshot.status === 'done';
  }
  /** The final outcome, if it has one. */
  get outcome(): LifecycleOutcome | undefined {
    if (this.currentPhase === 'settling') return (this.kept as FinalOutcome).outcome;
    return this.live?.snapshot.status === 'done' ? this.live.snapshot.output : undefined;
  }
  /** Nothing it did here is waiting to be written. */
  get isDurable(): boolean {
    const live = this.live;
    return (
      this.currentPhase !== 'live' || !live || (!live.dirty && live.durableVersion >= this.writtenVersion)
    );
  }

  /** What `engine.get()` shows. */
  view(): PaymentView {
    if (this.currentPhase === 'gone') return this.kept as PaymentView;
    if (this.currentPhase === 'settling') {
      const { outcome, context } = this.kept as FinalOutcome;
      const state = this.currentState;
      return { paymentRequestId: this.id, state, final: true, context: context ?? EMPTY_CONTEXT, outcome };
    }
    if (!this.live) return viewOfRecord(this.recordAsleep());
    const { snapshot } = this.live;
    const result: PaymentView = {
      paymentRequestId: this.id,
      state: this.currentState,
      final: snapshot.status === 'done',
      context: snapshot.context,
    };
    if (snapshot.output) result.outcome = snapshot.output;
    return result;
  }

  // ---- events ----------------------------------------------------------------------------------

  /** Sends an external event to its actor (it must be live: see {@link LifecycleTable.held}). */
  send(event: LifecycleEvent): void {
    const live = this.liveOrThrow();
    live.sending = event;
    try {
      live.actor.send(event);
    } finally {
      live.sending = undefined;
    }
  }

  /**
   * Feeds a stored notification, once per actor: the handler and an inbox drain can race for the
   * same one. `late`: the machine kept it without letting it decide (a cancel may be on its way).
   */
  notify(id: string, body: NotifyPaymentRequest, at: number): NotifyVerdict {
    const live = this.liveOrThrow();
    live.seenNotifications ??= new Set();
    if (live.seenNotifications.has(id)) return 'duplicate';
    live.seenNotifications.add(id);
    live.appliedNotifications = pending(live.appliedNotifications, id);
    const lateBefore = live.snapshot.context.lateNotifications.length;
    this.send({ type: 'NOTIFIED', notification: body, at });
    return live.snapshot.context.lateNotifications.length > lateBefore ? 'late' : 'applied';
  }

  /** Whether this notification was fed to this actor already. */
  hasSeen(notificationId: string): boolean {
    return this.live?.seenNotifications?.has(notificationId) ?? false;
  }

  /** Resolves once the pay is decided (the lifecycle has left `paying`), or it is no longer held here. */
  payDecided(): Promise<void> {
    if (this.currentPhase !== 'live' || !this.live?.snapshot.hasTag('payUndecided')) return Promise.resolve();
    const { payWaiters } = this.home;
    return new Promise((resolve) => {
      const list = payWaiters.get(this.id) ?? [];
      list.push(resolve);
      payWaiters.set(this.id, list);
    });
  }

  /**
   * Every snapshot of every lifecycle comes here: it becomes an audit entry and a `transition`
   * event, and is handed to the group commit. The hot path.
   */
  private observe(snapshot: LifecycleSnapshot, cause: unknown): void {
    const live = this.live;
    if (!live || this.currentPhase !== 'live' || snapshot === live.snapshot) return;
    const home = this.home;
    const before = live.snapshot;
    live.snapshot = snapshot;
    const from = this.currentState;
    const to = stateString(snapshot.value);
    this.currentState = to;
    const event = (cause ?? this.inferredEvent(live.sending, from, to)) as { type: string; at?: number };
    if (event.type === 'xstate.init') return;
    const woken = this === home.waking && event.type === 'RESUME';
    // A sleeper restored at its deadline resumes where it was: nothing to record.
    if (woken && from === to) return;
    // A sleeper woken at its deadline goes on as its timer would have: the audit says so.
    const label = woken ? eventName(this.inferredEvent(undefined, from, to).type) : eventName(event.type);
    const external = event.type === 'NOTIFIED' || event.type === 'CLOSE' || event.type === 'RESUME';
    if (from !== to || external) {
      const audit: AuditEntry = { paymentRequestId: this.id, at: home.clock.now(), from, to, event: label };
      const code = decidingCode(snapshot, event.type, event);
      if (code) audit.code = code;
      live.audit = pending(live.audit, audit);
      if (home.emitter.listenerCount('transition') > 0)
        home.emitter.emit('transition', { ...audit } satisfies TransitionEvent);
    }
    if (before.hasTag('payUndecided') && !snapshot.hasTag('payUndecided')) this.leftPaying();
    if (event.type === 'NOTIFIED' && before.hasTag('sealed') && snapshot.hasTag('sealed')) {
      home.emitter.emit('late-notification', {
        paymentRequestId: this.id,
        notification: (event as unknown as { notification: NotifyPaymentRequest }).notification,
        state: to,
        at: home.clock.now(),
      } satisfies LateNotificationEvent);
    }
    // A timer that starts a read (an inquiry) is not written: a crash before its answer restores
    // the waiting state, whose deadline has passed, so it simply inquires again. Its audit entry
    // goes with the answer's write. The same for a RESUME at or past the deadline.
    if (snapshot.hasTag('readByTimer') && (event.type.startsWith('xstate.after.') || event.type === 'RESUME'))
      return;
    // Nor is a RESUME that changed no state: it re-arms timers from what is stored already, and a
    // crash before the next write restores that same snapshot and resumes it again. (A restart of
    // 100,000 lifecycles would otherwise rewrite every one of them.)
    if (event.type === 'RESUME' && from === to) return;
    live.dirty = true;
    home.persist(this);
  }

  /**
   * The event behind a snapshot when no inspector is attached (inspection costs an object per
   * action and event on every lifecycle): external events are the ones being sent; internal ones
   * are the timer of the state it leaves that leads where it went, else a call's answer.
   */
  private inferredEvent(sending: LifecycleEvent | undefined, from: string, to: string): { type: string } {
    if (sending) return sending;
    const timers = this.home.timers.get(from);
    if (timers) {
      const timer = timers.find((t) => t.target !== undefined && within(to, t.target)) ?? timers[0];
      if (timer) return { type: timer.eventType };
    }
    return { type: 'xstate.done.actor.call' };
  }

  /** The pay is decided: its waiters resume, and the request (re-sent only from `paying`) is let go. */
  private leftPaying(): void {
    if (this.storedInput.payRequest !== undefined) this.storedInput = machineInput(this.storedInput);
    const { payWaiters } = this.home;
    const list = payWaiters.get(this.id);
    if (!list) return;
    payWaiters.delete(this.id);
    for (const resolve of list) resolve();
  }

  // ---- writes (the group commit asks and tells) --------------------------------------------------

  /** Its record as stored at `version`. */
  recordAt(version: number, updatedAt: number): LifecycleRecord {
    // Not only while live: a new lifecycle's first record is made before it is held (see `start`).
    const live = this.live;
    if (!live) return this.liveOrThrow() as never;
    const { snapshot } = live;
    const record: LifecycleRecord = {
      paymentRequestId: this.id,
      version,
      input: this.storedInput,
      state: this.currentState,
      final: snapshot.status === 'done',
      snapshot: live.actor.getPersistedSnapshot(),
      settledFired: false,
      createdAt: this.storedInput.createdAt,
      updatedAt,
    };
    if (snapshot.output) record.outcome = snapshot.output;
    return record;
  }

  /**
   * Its next write, if it changed since the last one: the write expects the version last written,
   * and carries the audit entries and notifications since.
   */
  takeWrite(now: number): LifecycleWrite | undefined {
    const live = this.live;
    if (this.currentPhase !== 'live' || !live?.dirty) return undefined;
    const write: LifecycleWrite = {
      record: this.recordAt(this.writtenVersion + 1, now),
      expectedVersion: this.writtenVersion,
      audit: live.audit,
      appliedNotifications: live.appliedNotifications,
    };
    this.writtenVersion += 1;
    live.dirty = false;
    live.audit = NOTHING_PENDING;
    live.appliedNotifications = NOTHING_PENDING;
    return write;
  }

  /** The store committed its write at `version`. */
  written(version: number): void {
    if (this.live && version > this.live.durableVersion) this.live.durableVersion = version;
  }

  /** The store failed before writing anything: the write is put back, to go out with the next one. */
  unwritten(write: LifecycleWrite): void {
    const live = this.live;
    if (this.currentPhase === 'gone' || !live) return;
    this.writtenVersion = write.expectedVersion;
    live.audit = [...write.audit, ...live.audit];
    live.appliedNotifications = [...write.appliedNotifications, ...live.appliedNotifications];
    live.dirty = true;
  }

  /** Changed since its last write was taken (the group commit writes it at its next flush). */
  get isDirty(): boolean {
    return this.currentPhase === 'live' && (this.live?.dirty ?? false);
  }

  // ---- sleep ---------------------------------------------------------------------------------------

  /**
   * Lets its actor go if it only waits for a timer at least `minSleepMs` away, with every change
   * durable: it is kept as its persisted snapshot and one timer, and restored at the deadline (or
   * when an event or a lease round needs it) exactly as a restart restores it. Nothing is written
   * for the sleep or the waking.
   */
  sleepIfIdle(): void {
    const home = this.home;
    const live = this.live;
    if (!(home.minSleepMs < Number.POSITIVE_INFINITY) || this.currentPhase !== 'live' || !live) return;
    if (live.dirty || live.durableVersion !== this.writtenVersion) return;
    // Anything not yet written (audit entries, applied notifications) stays with the actor.
    if (live.audit !== NOTHING_PENDING || live.appliedNotifications !== NOTHING_PENDING) return;
    if (this.storedInput.payRequest !== undefined || live.snapshot.status !== 'active') return;
    const until = wakeAt(this.currentState, live.snapshot.context);
    if (until === undefined || until - home.clock.now() < home.minSleepMs) return;
    const persisted = live.actor.getPersistedSnapshot();
    this.live = undefined;
    live.actor.stop();
    this.asleep(persisted, until, false);
  }

  /** Phase `asleep`: the snapshot alone, and the timer that wakes it at `until`. */
  private asleep(snapshot: unknown, until: number, restored: boolean): void {
    const home = this.home;
    this.setPhase('asleep');
    this.kept = snapshot;
    this.restored = restored;
    this.timer = home.actorClock.setTimeout(() => this.wake(), until - home.clock.now(), this);
  }

  /** Restores its actor (asleep → live), re-armed by RESUME: the same snapshot and event as a restart. */
  wake(): this {
    if (this.currentPhase !== 'asleep') return this;
    const home = this.home;
    home.actorClock.clearTimeout(this.timer);
    const snapshot = this.kept;
    this.timer = undefined;
    this.kept = undefined;
    this.run(snapshot, !this.restored);
    return this;
  }

  /** Its stored form while asleep (what a restart would read). */
  private recordAsleep(): LifecycleRecord {
    return {
      paymentRequestId: this.id,
      version: this.writtenVersion,
      input: this.storedInput,
      state: this.currentState,
      final: false,
      snapshot: this.kept,
      settledFired: false,
      createdAt: this.storedInput.createdAt,
      updatedAt: 0,
    };
  }

  // ---- settlement ----------------------------------------------------------------------------------

  /**
   * Final and durable: phase `settling`, its actor let go, and its outcome returned, once. Not yet
   * durable (a later flush asks again), not final, or settling already: `undefined`.
   */
  beginSettling(): FinalOutcome | undefined {
    const live = this.live;
    if (this.currentPhase !== 'live' || !live || live.snapshot.status !== 'done' || !this.isDurable)
      return undefined;
    const final: FinalOutcome = {
      outcome: live.snapshot.output as LifecycleOutcome,
      context: live.snapshot.context,
    };
    this.live = undefined;
    live.actor.stop();
    this.kept = final;
    this.setPhase('settling');
    return final;
  }

  // ---- the end -------------------------------------------------------------------------------------

  /** Lets go of it here, whatever its phase: the actor or timer stops, and it leaves the table. */
  stop(reason: StopReason): void {
    if (this.currentPhase === 'gone') return;
    const home = this.home;
    if (this.currentPhase === 'asleep') home.actorClock.clearTimeout(this.timer);
    const live = this.live;
    // What it last was stays readable (a caller holding it may still show it).
    const last = this.view();
    this.setPhase('gone');
    this.live = undefined;
    this.kept = last;
    this.timer = undefined;
    if (home.table.get(this.id) === this) home.table.delete(this.id);
    live?.actor.stop();
    this.leftPaying();
    home.stopped?.(this, reason);
  }

  // ---- its actor's clock ---------------------------------------------------------------------------

  /** @internal Its actor's clock: the engine's time. */
  now(): number {
    return this.home.actorClock.now();
  }

  /** @internal Its actor's clock: a timer named as this lifecycle's, so that a poll may wait for a slot. */
  setTimeout(fn: () => void, ms: number): unknown {
    return this.home.actorClock.setTimeout(fn, ms, this);
  }

  /** @internal Its actor's clock. */
  clearTimeout(handle: unknown): void {
    this.home.actorClock.clearTimeout(handle);
  }

  /**
   * Asked when one of its timers fires while calls wait for a slot: how urgent the call it starts is,
   * read from its state's tags (a cancel's retry, a routine poll due by the expiry, refund work, or
   * else the last look at expiry).
   */
  timerAdmission(): { urgency: CallUrgency; deadline?: number } {
    const tags = this.home.tags.get(this.currentState);
    if (tags?.has('cancelCall')) return CANCEL_TIMER;
    if (tags?.has('sealed')) return REFUND_TIMER;
    if (!tags?.has('pollWait')) return DEADLINE_TIMER;
    const context =
      this.live?.snapshot.context ?? (this.kept as { context?: LifecycleContext } | undefined)?.context;
    const deadline = context?.expiresAt;
    // At or past its expiry, what the wait leads to is the last look, not a routine poll.
    if (deadline !== undefined && deadline <= this.home.clock.now()) return DEADLINE_TIMER;
    return { urgency: 'poll', deadline };
  }

  // ---- inside ------------------------------------------------------------------------------------

  private liveOrThrow(): Live {
    if (this.currentPhase !== 'live' || !this.live)
      throw new AlipayPlusLifecycleError(
        'LIFECYCLE_STOPPED',
        `lifecycle ${this.id} is ${this.currentPhase} here, not live: it cannot take events now`,
      );
    return this.live;
  }

  private setPhase(phase: LifecyclePhase): void {
    const counts = this.home.counts;
    if (this.currentPhase === 'live') counts.live -= 1;
    else if (this.currentPhase === 'asleep') counts.asleep -= 1;
    if (phase === 'live') counts.live += 1;
    else if (phase === 'asleep') counts.asleep += 1;
    this.currentPhase = phase;
  }

  /** Makes its actor (from a persisted snapshot, or new), not started. */
  private makeActor(snapshot: unknown): Live {
    const home = this.home;
    const { inspect } = home;
    // One object shape for every payment (no conditional spreads): XState copies these options
    // into each actor, and differing shapes cost a hidden class per payment.
    const actor = createActor(home.machine, {
      // The inspector (and any log of actor IDs) shows the payment, not a session number.
      id: this.id,
      input: machineInput(this.storedInput),
      // Its actor's timers go through the lifecycle, which tells the clock which start a routine poll.
      clock: this as never,
      snapshot: snapshot as Snapshot<unknown> | undefined,
      inspect: inspect
        ? (inspection: InspectionEvent) => {
            inspect(inspection);
            if (inspection.type === '@xstate.snapshot' && inspection.actorRef === this.live?.actor)
              this.observe(inspection.snapshot as LifecycleSnapshot, inspection.event);
          }
        : undefined,
    });
    const live = new Live(actor, this.writtenVersion);
    this.currentState = stateString(live.snapshot.value);
    if (!inspect)
      // Positional handlers, not an observer object: a named closure per payment costs more heap.
      actor.subscribe(
        (next) => this.observe(next, undefined),
        () => undefined,
      );
    return live;
  }

  /**
   * Phase `live` from a persisted snapshot: started, and re-armed with RESUME (XState does not
   * re-arm the `after` timers of a restored actor, statelyai/xstate#5331). `woken`: a sleeper put to
   * sleep here, whose RESUME is worth an audit entry only if it moves the lifecycle.
   */
  private run(snapshot: unknown, woken: boolean): void {
    const home = this.home;
    this.live = this.makeActor(snapshot);
    this.setPhase('live');
    home.table.set(this.id, this);
    this.live.actor.start();
    if (woken) home.waking = this;
    try {
      this.send({ type: 'RESUME', at: home.clock.now() });
    } finally {
      home.waking = undefined;
    }
  }

  /** @internal The table's: starts a new lifecycle whose first record the store has just taken. */
  static begin(home: Home, lifecycle: Lifecycle, live: Live): void {
    lifecycle.live = live;
    lifecycle.writtenVersion = 1;
    live.durableVersion = 1;
    lifecycle.setPhase('live');
    home.table.set(lifecycle.id, lifecycle);
    live.actor.start();
  }

  /** @internal The table's: a new lifecycle's actor, before the store has its first record. */
  static prepare(home: Home, id: string, input: StoredLifecycleInput): { lifecycle: Lifecycle; live: Live } {
    const lifecycle = new Lifecycle(home, id, input, 0, '');
    lifecycle.payMayHaveLeft = false;
    const live = lifecycle.makeActor(undefined);
    lifecycle.live = live;
    return { lifecycle, live };
  }

  /** @internal The table's: a stored lifecycle, restored live or put to sleep. */
  static restore(home: Home, record: LifecycleRecord, sleepy: boolean): Lifecycle {
    const lifecycle = new Lifecycle(
      home,
      record.paymentRequestId,
      record.input,
      record.version,
      record.state,
    );
    const context = (record.snapshot as { context?: LifecycleContext } | undefined)?.context;
    const until =
      sleepy && home.minSleepMs < Number.POSITIVE_INFINITY && record.input.payRequest === undefined && context
        ? wakeAt(record.state, context)
        : undefined;
    if (until !== undefined) {
      // Whatever its deadline: one that has passed (the process was down, or behind) wakes as soon
      // as a call slot is free, through the admitting clock, rather than all of them inside start().
      home.table.set(lifecycle.id, lifecycle);
      lifecycle.asleep(record.snapshot, until, true);
    } else lifecycle.run(record.snapshot, false);
    return lifecycle;
  }

  /** @internal The table's: a final lifecycle adopted for its settlement. */
  static settling(home: Home, record: LifecycleRecord): Lifecycle {
    const lifecycle = new Lifecycle(
      home,
      record.paymentRequestId,
      record.input,
      record.version,
      record.state,
    );
    const final: FinalOutcome = { outcome: record.outcome as LifecycleOutcome, context: contextOf(record) };
    lifecycle.kept = final;
    lifecycle.setPhase('settling');
    home.table.set(lifecycle.id, lifecycle);
    return lifecycle;
  }
}

/** For a final outcome whose context is not at hand (a stored record without a snapshot). */
const EMPTY_CONTEXT = Object.freeze({}) as LifecycleContext;

/** The context of a stored lifecycle: its persisted snapshot's. */
function contextOf(record: LifecycleRecord): LifecycleContext | undefined {
  return (record.snapshot as { context?: LifecycleContext } | null | undefined)?.context;
}

/** What `engine.get()` shows of a stored lifecycle that is not held here. */
export function viewOfRecord(record: LifecycleRecord): PaymentView {
  const result: PaymentView = {
    paymentRequestId: record.paymentRequestId,
    state: record.state,
    final: record.final,
    context: contextOf(record) ?? EMPTY_CONTEXT,
  };
  if (record.outcome) result.outcome = record.outcome;
  return result;
}

/** The one table of the lifecycles this engine holds: see {@link createLifecycleTable}. */
export interface LifecycleTable {
  /** The lifecycle held here, in any phase but `gone`. */
  get(id: string): Lifecycle | undefined;
  /** The lifecycle with its actor: live already, or woken now; `undefined` if not held here or settling. */
  held(id: string): Lifecycle | undefined;
  /** Every payment held here (live, asleep, settling): the leases this worker renews. */
  ids(): IterableIterator<string>;
  all(): IterableIterator<Lifecycle>;
  /** Live and asleep (final ones until they settle). */
  readonly activeCount: number;
  readonly sleepingCount: number;
  /**
   * Starts a new lifecycle: its actor is made, `insert` stores its first record, and only then is it
   * held and started. `undefined` if the store had it already (nothing was started).
   */
  start(
    input: StoredLifecycleInput,
    insert: (record: LifecycleRecord) => Promise<boolean>,
    now: number,
  ): Promise<Lifecycle | undefined>;
  /**
   * Restores a stored lifecycle (at a start, an adoption, a track): live, or asleep if `sleepy` and
   * it only waits. One held here already is returned as it is.
   */
  restore(record: LifecycleRecord, sleepy?: boolean): Lifecycle;
  /** Holds a final stored lifecycle whose settlement has not fired, for its settlement (or returns the one held). */
  adoptFinal(record: LifecycleRecord): Lifecycle;
  /** Stops every lifecycle held here. */
  stopAll(reason: StopReason): void;
  /** How many are live or asleep in each top-level state (`awaitingResult`, ...): the in-flight gauge. */
  countByTopState(): Map<string, number>;
}

/** The lifecycles of one engine, held in one table; each owned by its {@link Lifecycle}. */
export function createLifecycleTable(options: LifecycleTableOptions): LifecycleTable {
  const home: Home = {
    ...options,
    table: new Map(),
    timers: timersOf(options.machine),
    tags: tagsOf(options.machine),
    counts: { live: 0, asleep: 0 },
    payWaiters: new Map(),
    waking: undefined,
  };
  const { table } = home;

  return {
    get: (id) => table.get(id),
    held(id) {
      const lifecycle = table.get(id);
      if (!lifecycle) return undefined;
      if (lifecycle.phase === 'asleep') return lifecycle.wake();
      return lifecycle.phase === 'live' ? lifecycle : undefined;
    },
    ids: () => table.keys(),
    all: () => table.values(),
    get activeCount() {
      return home.counts.live + home.counts.asleep;
    },
    get sleepingCount() {
      return home.counts.asleep;
    },
    async start(input, insert, now) {
      const { lifecycle, live } = Lifecycle.prepare(home, input.paymentRequestId, input);
      const inserted = await insert(lifecycle.recordAt(1, now));
      if (!inserted) return undefined;
      Lifecycle.begin(home, lifecycle, live);
      return lifecycle;
    },
    // One object per payment: one held already stays its owner.
    restore: (record, sleepy = false) =>
      table.get(record.paymentRequestId) ?? Lifecycle.restore(home, record, sleepy),
    adoptFinal: (record) => table.get(record.paymentRequestId) ?? Lifecycle.settling(home, record),
    stopAll(reason) {
      for (const lifecycle of [...table.values()]) lifecycle.stop(reason);
    },
    countByTopState() {
      // Counted by full state first: a handful of distinct strings, so no slicing per lifecycle.
      const byState = new Map<string, number>();
      for (const lifecycle of table.values()) {
        if (lifecycle.phase === 'settling') continue;
        byState.set(lifecycle.state, (byState.get(lifecycle.state) ?? 0) + 1);
      }
      const counts = new Map<string, number>();
      for (const [state, n] of byState) {
        const dot = state.indexOf('.');
        const top = dot < 0 ? state : state.slice(0, dot);
        counts.set(top, (counts.get(top) ?? 0) + n);
      }
      return counts;
    },
  };
}
