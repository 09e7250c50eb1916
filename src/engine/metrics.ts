import {
  type Attributes,
  type BatchObservableResult,
  type Counter,
  createNoopMeter,
  type Histogram,
  type Meter,
  ValueType,
} from '@opentelemetry/api';
import { classifyInquiry } from '../../machines/decision-table.js';
import type { FinalStatus, LifecycleOutcome } from '../../machines/outcome.js';
import { IN_FLIGHT_STATES, type InFlightState } from '../../machines/outcome.js';
import type { InquiryOutcome, NoResult } from '../client/answers.js';
import type { LifecycleStore } from '../stores/store.js';
import type { Logger } from './logger.js';

/** The name the engine asks the global MeterProvider for when no `meter` is given. */
export const METER_NAME = 'alipayplus-lifecycle';

/** The Alipay+ calls the engine makes, as the `api` attribute names them. */
export type { CallApi } from './call-limiter.js';

import type { ActorClock, CallApi } from './call-limiter.js';

/** What became of a notification, as the `verdict` attribute names it. */
export type NotificationVerdict =
  | 'applied'
  | 'duplicate'
  | 'late'
  | 'refused-signature'
  | 'refused-schema'
  | 'refused-client';

// The `state` attribute of the in-flight gauge: the top-level states before an outcome.
export { IN_FLIGHT_STATES, type InFlightState };

/** One instrument the engine reports, for documentation and dashboards. */
export interface EngineMetricDescription {
  name: string;
  kind: 'counter' | 'histogram' | 'observable gauge';
  unit: string;
  attributes: readonly string[];
  description: string;
}

/** Every instrument of the engine, with its unit and attributes. */
export const ENGINE_METRICS = {
  outcomes: {
    name: 'alipayplus.lifecycle.outcomes',
    kind: 'counter',
    unit: '{outcome}',
    attributes: ['status', 'decided_by'],
    description: 'Final outcomes settled (onSettled fired), by status and by what decided them',
  },
  calls: {
    name: 'alipayplus.lifecycle.calls',
    kind: 'counter',
    unit: '{call}',
    attributes: ['api', 'result'],
    description:
      'Alipay+ calls sent, by API and by what came back: the decision-table row of an inquiry, resultStatus:resultCode otherwise, or no-result:<reason>',
  },
  callDuration: {
    name: 'alipayplus.lifecycle.call.duration',
    kind: 'histogram',
    unit: 's',
    attributes: ['api'],
    description:
      'Time from sending an Alipay+ call (after its call slot was free) to its verified answer or no-result',
  },
  decisionLag: {
    name: 'alipayplus.lifecycle.decision.lag',
    kind: 'histogram',
    unit: 's',
    attributes: [],
    description: "Time from the wallet's paymentTime to the outcome's decision, where paymentTime is known",
  },
  inFlight: {
    name: 'alipayplus.lifecycle.lifecycles.in_flight',
    kind: 'observable gauge',
    unit: '{lifecycle}',
    attributes: ['state'],
    description:
      'Lifecycles held by this engine without an outcome yet (sleeping ones included), by top-level state',
  },
  brake: {
    name: 'alipayplus.engine.brake',
    kind: 'observable gauge',
    unit: '{state}',
    attributes: [],
    description:
      "1 while this engine's incident brake is engaged (Alipay+ answering mostly REQUEST_TRAFFIC_EXCEED_LIMIT, 5xx or timeouts: routine polls paced, cancels and last looks not), else 0",
  },
  attentionOpen: {
    name: 'alipayplus.lifecycle.attention.open',
    kind: 'observable gauge',
    unit: '{item}',
    attributes: [],
    description:
      'Open attention items in the store (outcome attention, nobody recorded what they did); read every 30 s, raised at once by a new one',
  },
  notifications: {
    name: 'alipayplus.lifecycle.notifications',
    kind: 'counter',
    unit: '{notification}',
    attributes: ['verdict'],
    description:
      'notifyPayment requests, by verdict: applied, duplicate, late, refused-signature, refused-schema, refused-client',
  },
  storeWriteDuration: {
    name: 'alipayplus.lifecycle.store.write.duration',
    kind: 'histogram',
    unit: 's',
    attributes: ['op'],
    description:
      'Time of one store write: insert (a new lifecycle) or write (a group commit of changed lifecycles)',
  },
  timerLateness: {
    name: 'alipayplus.lifecycle.timer.lateness',
    kind: 'histogram',
    unit: 's',
    attributes: [],
    description:
      "How late the lifecycles' timers fire past their due time, in the engine clock's time, waiting for a call slot included",
  },
} as const satisfies Record<string, EngineMetricDescription>;

/** How many lifecycles this engine holds in each top-level state (`awaitingResult`, ...). */
export type CountByTopState = () => ReadonlyMap<string, number>;

/**
 * The engine's instruments, as small functions it calls at each event. Every function is cheap
 * with the API's no-op meter (no MeterProvider registered): attribute objects are built once and
 * reused, and the gauges' callbacks never run.
 */
export interface EngineMetrics {
  /** Sends one Alipay+ call through `send`, counting it by its answer and timing it. */
  call<T extends CallOutcomeLike>(api: CallApi, send: () => Promise<T>): Promise<T>;
  /** A settlement fired (`settled` emitted): counts the outcome and its decision lag. */
  settled(outcome: LifecycleOutcome): void;
  notification(verdict: NotificationVerdict): void;
  /** Times one store write. */
  storeWrite<T>(op: 'insert' | 'write', write: () => Promise<T>): Promise<T>;
  /** The clock with each timer's lateness recorded when it fires. */
  timedClock(clock: ActorClock): ActorClock;
  /** Where the in-flight gauge counts: the lifecycles held, live or asleep. */
  observeLifecycles(count: CountByTopState): void;
  /** Reads the open attention items now, then every 30 s until {@link stop}; reports both gauges. */
  start(store: LifecycleStore): Promise<void>;
  /** A person resolved an attention item: one fewer is open. */
  attentionResolved(): void;
  /** The incident brake engaged (`true`) or released. */
  brake(engaged: boolean): void;
  stop(): void;
}

/** What the client's calls resolve to: an answer with a `result`, or no result. */
type CallOutcomeLike =
  | NoResult
  | { kind: 'answer'; result: { resultStatus: string; resultCode: string }; paymentResult?: unknown };

/** The class of the API's no-op meter, what `metrics.getMeter()` gives while no provider is registered. */
const NO_OP_METER = createNoopMeter().constructor;

/** How often the open attention items are read from the store again. */
const ATTENTION_REFRESH_MS = 30_000;

// Seconds, from a loopback answer to a call near its timeout.
const CALL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Seconds, from an answer at once to a notification a day late.
const LAG_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1_800, 3_600, 21_600, 86_400];
const WRITE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const LATENESS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Distinct result codes labelled per API and status; Alipay+ documents a few dozen in all. */
const MAX_CODE_LABELS = 64;
/** What an Alipay+ result code looks like (`ORDER_NOT_EXIST`). */
const RESULT_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;

/**
 * Creates the instruments on `meter` (the engine passes the global API's meter unless given one).
 * Nothing here allocates per event on the hot path beyond what the SDK itself does: each attribute
 * set is one shared object, found by plain Map lookups keyed by strings the answers already carry.
 */
export function createEngineMetrics(meter: Meter, logger?: Logger): EngineMetrics {
  const m = ENGINE_METRICS;
  // With no MeterProvider the API hands out a no-op meter: then the two wrappers on the hot path (one
  // per call, one per pending timer) are not put in at all; the other hooks are rare and cheap.
  const measured = meter.constructor !== NO_OP_METER;
  const outcomes = meter.createCounter(m.outcomes.name, {
    unit: m.outcomes.unit,
    description: m.outcomes.description,
    valueType: ValueType.INT,
  });
  const calls = meter.createCounter(m.calls.name, {
    unit: m.calls.unit,
    description: m.calls.description,
    valueType: ValueType.INT,
  });
  const callDuration = histogram(meter, m.callDuration, CALL_BUCKETS);
  const decisionLag = histogram(meter, m.decisionLag, LAG_BUCKETS);
  const storeWriteDuration = histogram(meter, m.storeWriteDuration, WRITE_BUCKETS);
  const timerLateness = histogram(meter, m.timerLateness, LATENESS_BUCKETS);
  const notifications: Counter = meter.createCounter(m.notifications.name, {
    unit: m.notifications.unit,
    description: m.notifications.description,
    valueType: ValueType.INT,
  });
  const inFlight = meter.createObservableGauge(m.inFlight.name, {
    unit: m.inFlight.unit,
    description: m.inFlight.description,
    valueType: ValueType.INT,
  });
  const brakeGauge = meter.createObservableGauge(m.brake.name, {
    unit: m.brake.unit,
    description: m.brake.description,
    valueType: ValueType.INT,
  });
  let braking = false;
  const attentionOpen = meter.createObservableGauge(m.attentionOpen.name, {
    unit: m.attentionOpen.unit,
    description: m.attentionOpen.description,
    valueType: ValueType.INT,
  });

  const apiAttributes = {
    pay: { api: 'pay' },
    inquiryPayment: { api: 'inquiryPayment' },
    cancelPayment: { api: 'cancelPayment' },
    refund: { api: 'refund' },
  } satisfies Record<CallApi, Attributes>;
  const writeAttributes = { insert: { op: 'insert' }, write: { op: 'write' } } as const;
  const stateAttributes = {} as Record<InFlightState, Attributes>;
  for (const state of IN_FLIGHT_STATES) stateAttributes[state] = { state };

  /** Per API, `result` label → its attribute set. */
  const callAttributes: Record<CallApi, Map<string, Attributes>> = {
    pay: new Map(),
    inquiryPayment: new Map(),
    cancelPayment: new Map(),
    refund: new Map(),
  };
  /** Per API and resultStatus, resultCode → its attribute set (at most MAX_CODE_LABELS of each). */
  const codeAttributes: Record<CallApi, Map<string, Map<string, Attributes>>> = {
    pay: new Map(),
    inquiryPayment: new Map(),
    cancelPayment: new Map(),
    refund: new Map(),
  };

  function attributesOf(api: CallApi, result: string): Attributes {
    const known = callAttributes[api];
    let attributes = known.get(result);
    if (!attributes) {
      attributes = { api, result };
      known.set(result, attributes);
    }
    return attributes;
  }

  /**
   * `S`, or `F:CODE` / `U:CODE`. Codes come from the other side of the wire, so the labels they make
   * are bounded: a code that does not look like one, or any past the first {@link MAX_CODE_LABELS}
   * of an API, is counted as `F:other` (or `U:other`).
   */
  function answerAttributes(api: CallApi, status: string, code: string): Attributes {
    if (status === 'S') return attributesOf(api, 'S');
    let byCode = codeAttributes[api].get(status);
    if (!byCode) {
      byCode = new Map();
      codeAttributes[api].set(status, byCode);
    }
    const cached = byCode.get(code);
    if (cached) return cached;
    if (byCode.size >= MAX_CODE_LABELS || !RESULT_CODE.test(code))
      return attributesOf(api, `${status}:other`);
    const attributes = attributesOf(api, `${status}:${code}`);
    byCode.set(code, attributes);
    return attributes;
  }

  function resultAttributes(api: CallApi, outcome: CallOutcomeLike): Attributes {
    if (outcome.kind === 'no-result') return attributesOf(api, noResultLabel(outcome.reason));
    if (api === 'inquiryPayment') return attributesOf(api, classifyInquiry(outcome as InquiryOutcome));
    return answerAttributes(api, outcome.result.resultStatus, outcome.result.resultCode);
  }

  /** status → decidedBy.source → attribute set. */
  const outcomeAttributes = new Map<FinalStatus, Map<string, Attributes>>();
  function outcomeAttributesOf(status: FinalStatus, source: string): Attributes {
    let bySource = outcomeAttributes.get(status);
    if (!bySource) {
      bySource = new Map();
      outcomeAttributes.set(status, bySource);
    }
    let attributes = bySource.get(source);
    if (!attributes) {
      attributes = { status, decided_by: source };
      bySource.set(source, attributes);
    }
    return attributes;
  }

  const verdictAttributes = new Map<NotificationVerdict, Attributes>();

  // ---- the gauges: read only when a reader collects --------------------------------------------

  let countByTopState: CountByTopState | undefined;
  /** Full state string ('awaitingResult.pending') → its in-flight top-level state, or null if final. */
  const topLevel = new Map<string, InFlightState | null>();
  function topLevelOf(state: string): InFlightState | null {
    let top = topLevel.get(state);
    if (top === undefined) {
      const dot = state.indexOf('.');
      const name = dot < 0 ? state : state.slice(0, dot);
      top = (IN_FLIGHT_STATES as readonly string[]).includes(name) ? (name as InFlightState) : null;
      topLevel.set(state, top);
    }
    return top;
  }

  /**
   * The number of open attention items: read from the store at start and every 30 s, raised by one
   * at once for each new attention outcome and lowered for each resolution in between. Between two
   * reads it can thus be off by what other processes did (another worker's outcomes, a resolution
   * through the CLI): at most 30 s stale.
   */
  let openAttention = 0;
  let attentionKnown = false;
  let store: LifecycleStore | undefined;
  let refreshTimer: NodeJS.Timeout | undefined;
  let refreshing = false;

  async function refreshAttention(): Promise<void> {
    if (refreshing || !store || typeof store.attentionItems !== 'function') return;
    refreshing = true;
    try {
      openAttention = (await store.attentionItems()).length;
      attentionKnown = true;
    } catch (error) {
      logger?.warn({ err: error }, 'open attention items could not be read for the metrics; trying again');
    } finally {
      refreshing = false;
    }
  }

  function observe(result: BatchObservableResult): void {
    const counts = {} as Record<InFlightState, number>;
    for (const state of IN_FLIGHT_STATES) counts[state] = 0;
    for (const [state, n] of countByTopState?.() ?? []) {
      const top = topLevelOf(state);
      if (top) counts[top] += n;
    }
    for (const state of IN_FLIGHT_STATES) result.observe(inFlight, counts[state], stateAttributes[state]);
    if (attentionKnown) result.observe(attentionOpen, openAttention);
    result.observe(brakeGauge, braking ? 1 : 0);
  }
  let observing = false;

  return {
    async call(api, send) {
      if (!measured) return send();
      const started = performance.now();
      let outcome: Awaited<ReturnType<typeof send>> & CallOutcomeLike;
      try {
        outcome = await send();
      } catch (error) {
        calls.add(1, attributesOf(api, 'error'));
        throw error;
      }
      callDuration.record((performance.now() - started) / 1_000, apiAttributes[api]);
      calls.add(1, resultAttributes(api, outcome));
      return outcome;
    },

    settled(outcome) {
      // A stored outcome written before a field existed may lack it: a metric never fails a settlement.
      outcomes.add(1, outcomeAttributesOf(outcome.status, outcome.decidedBy?.source ?? 'lifecycle'));
      const paidAt = outcome.details?.paymentTime;
      if (paidAt !== undefined) {
        const lag = outcome.decidedAt - Date.parse(paidAt);
        // An unparsable time gives NaN, and a wallet clock ahead of ours a negative lag: neither is recorded.
        if (lag >= 0) decisionLag.record(lag / 1_000);
      }
      if (outcome.status === 'attention') openAttention += 1;
    },

    notification(verdict) {
      let attributes = verdictAttributes.get(verdict);
      if (!attributes) {
        attributes = { verdict };
        verdictAttributes.set(verdict, attributes);
      }
      notifications.add(1, attributes);
    },

    async storeWrite(op, write) {
      const started = performance.now();
      try {
        return await write();
      } finally {
        storeWriteDuration.record((performance.now() - started) / 1_000, writeAttributes[op]);
      }
    },

    timedClock(clock) {
      if (!measured) return clock;
      // Measured on the engine's clock, the one the lifecycles' deadlines are on: real seconds with
      // the system clock, simulated seconds under a scaled one (the demo). The real due time of a
      // scaled clock's timer is not known here, so performance.now() could not measure it.
      return {
        now: () => clock.now(),
        setTimeout(fn, ms, owner) {
          const due = clock.now() + Math.max(0, ms);
          return clock.setTimeout(
            () => {
              const late = clock.now() - due;
              timerLateness.record(late > 0 ? late / 1_000 : 0);
              fn();
            },
            ms,
            owner,
          );
        },
        clearTimeout: (handle) => clock.clearTimeout(handle),
      };
    },

    observeLifecycles(count) {
      countByTopState = count;
    },

    async start(given) {
      store = given;
      if (!observing) {
        meter.addBatchObservableCallback(observe, [inFlight, attentionOpen, brakeGauge]);
        observing = true;
      }
      await refreshAttention();
      clearInterval(refreshTimer);
      refreshTimer = setInterval(() => void refreshAttention(), ATTENTION_REFRESH_MS).unref();
    },

    brake(engaged) {
      braking = engaged;
    },

    attentionResolved() {
      if (openAttention > 0) openAttention -= 1;
    },

    stop() {
      clearInterval(refreshTimer);
      refreshTimer = undefined;
      if (observing) {
        // A stopped engine reports nothing: another engine on the same meter may report instead.
        meter.removeBatchObservableCallback(observe, [inFlight, attentionOpen]);
        observing = false;
      }
    },
  };
}

/** The `result` label of a no-result: the reasons are a closed set, so each label string is built once. */
const noResultLabels = new Map<string, string>();
function noResultLabel(reason: string): string {
  let label = noResultLabels.get(reason);
  if (!label) {
    label = `no-result:${reason}`;
    noResultLabels.set(reason, label);
  }
  return label;
}

function histogram(meter: Meter, described: EngineMetricDescription, buckets: number[]): Histogram {
  return meter.createHistogram(described.name, {
    unit: described.unit,
    description: described.description,
    advice: { explicitBucketBoundaries: buckets },
  });
}
