import type { EventEmitter } from 'node:events';
import { type Actor, createActor, type InspectionEvent, type Snapshot } from 'xstate';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import type {
  LifecycleContext,
  LifecycleEvent,
  paymentLifecycleMachine,
} from '../../machines/payment-lifecycle.js';
import type { LifecycleInput } from '../../machines/policy.js';
import type { NotifyPaymentRequest } from '../protocol/notify-payment.js';
import type { AuditEntry, LifecycleRecord, StoredLifecycleInput } from '../stores/store.js';
import type { EngineClock } from './clock.js';
import type { LateNotificationEvent, TransitionEvent } from './engine-events.js';

/** One payment's root actor. */
export type LifecycleActor = Actor<typeof paymentLifecycleMachine>;
/** What a lifecycle actor's `getSnapshot()` returns. */
export type LifecycleSnapshot = ReturnType<LifecycleActor['getSnapshot']>;

/** What `engine.get()` shows of one payment. */
export interface PaymentView {
  paymentRequestId: string;
  state: string;
  final: boolean;
  context: LifecycleContext;
  outcome?: LifecycleOutcome;
}

/** One payment held in memory: its actor, and what the next write of it carries. */
export interface Entry {
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

/**
 * What an entry holds between writes when it has nothing to add: one shared, frozen empty list, so
 * that a write does not leave two new arrays behind in each of 100,000 entries. A new array is made
 * on the first push.
 */
export const NOTHING_PENDING: never[] = Object.freeze([]) as unknown as never[];

/** Adds to an entry's pending list (audit entries, applied notifications), making it on first need. */
export function pending<T>(list: T[], item: T): T[] {
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

/** The states that invoke an inquiry when their waiting state's timer fires. */
const INQUIRING = 'awaitingResult.inquiring';
const LAST_LOOK = 'awaitingNotification.lastLook';

/** States in which a notification can no longer change the outcome (a cancel may be on its way). */
const LATE_STATES = /^(cancelling|windowClosed|refunding)/;

/** The machine's input: the stored input without the pay request, which stays with the engine. */
export function machineInput(input: StoredLifecycleInput): LifecycleInput {
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

/**
 * The event behind a snapshot when no inspector is attached (inspection costs an object per
 * action and event on every lifecycle): external events are the ones the engine is sending;
 * internal ones follow from the state they leave.
 */
function inferredEvent(sending: LifecycleEvent | undefined, from: string, to: string): { type: string } {
  if (sending) return sending;
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

/** What {@link createLifecycleEntries} needs from the engine. */
export interface LifecycleEntriesOptions {
  /** The engine's lifecycles in memory: `resume` adds to it. */
  entries: Map<string, Entry>;
  /** The lifecycle machine with the engine's calls provided. */
  machine: typeof paymentLifecycleMachine;
  /** Stamps audit entries and events. */
  clock: EngineClock;
  /** The actors' own clock (their timers). */
  actorClock: EngineClock;
  /** The engine's `inspect` option: with it, observed snapshots come with the event that caused them. */
  inspect: ((event: InspectionEvent) => void) | undefined;
  emitter: EventEmitter;
  /** Schedules the entry's write (group commit). */
  persist(entry: Entry): void;
  /** The lifecycle has left `paying` (or was stopped there). */
  leftPaying(entry: Entry): void;
}

/** Spawns, resumes and feeds the lifecycle actors; see {@link createLifecycleEntries}. */
export interface LifecycleEntries {
  spawn(id: string, input: StoredLifecycleInput, createdAt: number, snapshot?: unknown): Entry;
  /**
   * Restores a stored lifecycle into `entries`, started and re-armed. `woken`: a sleeper (see
   * sleeping.ts), whose RESUME is no event worth an audit entry unless it moves the lifecycle.
   */
  resume(record: LifecycleRecord, woken?: boolean): Entry;
  /** Sends an external event, so that the audit log can name it without an inspector. */
  send(entry: Entry, event: LifecycleEvent): void;
}

/**
 * The per-transition hot path: every snapshot of every lifecycle is observed here, becomes an
 * audit entry and a `transition` event, and is handed to the group commit.
 */
export function createLifecycleEntries(options: LifecycleEntriesOptions): LifecycleEntries {
  const { entries, machine, clock, actorClock, inspect, emitter, persist, leftPaying } = options;
  /** The sleeper being restored right now (see `resume`). */
  let waking: Entry | undefined;

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
    const event = (cause ?? inferredEvent(entry.sending, entry.state, to)) as { type: string; at?: number };
    const from = entry.state;
    entry.state = to;
    if (event.type === 'xstate.init') return;
    // A sleeper woken at its deadline goes on as its timer would have: the audit says so.
    const eventLabel =
      entry === waking && event.type === 'RESUME' && from !== to
        ? eventName(inferredEvent(undefined, from, to).type)
        : eventName(event.type);
    const external = event.type === 'NOTIFIED' || event.type === 'CLOSE' || event.type === 'RESUME';
    // A sleeper restored at its deadline resumes where it was: nothing to record.
    if (from === to && entry === waking) return;
    if (from !== to || external) {
      const audit: AuditEntry = { paymentRequestId: entry.id, at: clock.now(), from, to, event: eventLabel };
      const code = decidingCode(snapshot, event.type, event);
      if (code) audit.code = code;
      entry.audit = pending(entry.audit, audit);
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
    // The same for a RESUME at or past the deadline, which starts the inquiry at once.
    if (
      (to === INQUIRING || to === LAST_LOOK) &&
      (event.type.startsWith('xstate.after.') || event.type === 'RESUME')
    )
      return;
    // Nor is a RESUME that changed no state: it re-arms timers from what is stored already, and a
    // crash before the next write restores that same snapshot and resumes it again. (A restart of
    // 100,000 lifecycles would otherwise rewrite every one of them.)
    if (event.type === 'RESUME' && from === to) return;
    persist(entry);
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
      audit: NOTHING_PENDING,
      appliedNotifications: NOTHING_PENDING,
      stopped: false,
      settling: false,
      sending: undefined,
    } as unknown as Entry;
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

  function resume(record: LifecycleRecord, woken = false): Entry {
    const entry = spawn(record.paymentRequestId, record.input, record.createdAt, record.snapshot);
    entry.version = record.version;
    entry.durableVersion = record.version;
    entries.set(entry.id, entry);
    entry.actor.start();
    // XState does not re-arm `after` timers of a restored actor (statelyai/xstate#5331): RESUME does.
    if (woken) waking = entry;
    try {
      send(entry, { type: 'RESUME', at: clock.now() });
    } finally {
      waking = undefined;
    }
    return entry;
  }

  return { spawn, resume, send };
}

/** What `engine.get()` shows of a lifecycle held in memory. */
export function view(entry: Entry): PaymentView {
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

/** What `engine.get()` shows of a stored lifecycle that is not held here. */
export function viewOfRecord(record: LifecycleRecord): PaymentView {
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
