import { generateKeyPair, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { z } from 'zod';
import { API_PATHS } from '../client/alipayplus-client.js';
import { type KeyInput, KeyInputSchema, loadPrivateKey, loadPublicKey } from '../client/keys.js';
import type { PublicKeyEntryInput } from '../client/public-key-set.js';
import {
  KeyVersionSchema,
  keyErrorAt,
  PublicKeyEntrySchema,
  PublicKeySet,
} from '../client/public-key-set.js';
import {
  buildSignatureHeader,
  buildSignContent,
  parseSignatureHeader,
  signContentAsync,
} from '../client/signature.js';
import { Amount, Id } from '../protocol/common.js';
import type { NotifyPaymentRequest } from '../protocol/notify-payment.js';
import { type PayMode, PayRequest, payModeOf } from '../protocol/pay.js';
import { RefundRequest } from '../protocol/refund.js';
import { parseOrThrow } from '../validate.js';
import { createLoadModel, LoadSpec, type LoadSpecInput } from './load.js';
import { DEFAULT_NOTIFY_RETRY_MS, type DeliveryRecord, Notifier } from './notifier.js';
import {
  applyCancel,
  decisionAt,
  inquiryViewAt,
  newOrder,
  type OrderTruth,
  refundedValue,
  type SimOrder,
  truthAt,
  unknownOrderTruth,
} from './order-book.js';
import { streamFor } from './random.js';
import {
  drawScenario,
  FAULT_KINDS,
  type FaultKind,
  FaultSpec,
  type FaultSpecInput,
  MIXES,
  type MixName,
  Scenario,
  type ScenarioInput,
  UNPROCESSED_FAULTS,
} from './scenario.js';
import {
  type CreateKeyInput,
  SimulatorKeys,
  type SimulatorKeysView,
  type SimulatorKeyView,
} from './simulator-keys.js';

/** How long after its creation a paid order can be refunded (spec §9: "about a year"). */
export const REFUND_WINDOW_MS = 365 * 24 * 3_600_000;

const SimulatorOptions = z
  .object({
    port: z.number().int().min(0).max(65_535).default(0),
    host: z.string().default('127.0.0.1'),
    /** The ACQP's Client-Id: requests must carry it. */
    clientId: Id,
    /** The ACQP's public key, to verify requests and notification acks (or give `acqpPublicKeys`). */
    acqpPublicKey: KeyInputSchema.optional(),
    /** The ACQP's public keys, each perhaps with its keyVersion: a request verifies with any. */
    acqpPublicKeys: z.array(PublicKeyEntrySchema).min(1).optional(),
    /** The simulator's own (Alipay+) signing key; generated when absent. */
    privateKey: KeyInputSchema.optional(),
    /** The version of `privateKey`, named in every signature the simulator makes. */
    keyVersion: KeyVersionSchema.default(1),
    /** The simulated clock, epoch ms. Default: real time, sped up by `timeFactor`. */
    now: z.custom<() => number>((v) => typeof v === 'function').optional(),
    /** Simulated ms per real ms when `now` is not given: 60 makes a 1-minute expiry pass in a second. */
    timeFactor: z.number().positive().default(1),
    /** Scenarios per paymentRequestId; others are drawn from `mix`, or the default scenario. */
    scenarios: z.record(z.string(), Scenario).default({}),
    mix: z.enum(Object.keys(MIXES) as [MixName, ...MixName[]]).optional(),
    /** Faults for every call (a scenario's own faults replace them). */
    faults: FaultSpec.optional(),
    /** Shorthand: this probability of a fault per call, spread evenly over the fault kinds. */
    faultRate: z.number().min(0).max(1).optional(),
    /** Alipay+ under load: a capacity (answers per simulated second) and outage windows. */
    load: LoadSpec.optional(),
    seed: z.number().int().default(1),
    /** The expiry of an order whose pay request names none. */
    defaultExpiryMs: z.number().int().positive().default(60_000),
    notifyRetryScheduleMs: z.array(z.number().int().min(0)).default(DEFAULT_NOTIFY_RETRY_MS),
    notifyAckTimeoutMs: z.number().int().positive().default(5_000),
    /** Real ms a `timeout` fault holds a request before dropping it. */
    holdMs: z.number().int().positive().default(30_000),
    tickMs: z.number().int().positive().default(5),
    /**
     * For load tests: answers with the same body in the same second reuse one signature (the
     * response-time is then whole seconds), so that the simulator's own RSA work does not limit the
     * client it measures. Every answer is still validly signed.
     */
    signatureCache: z.boolean().default(false),
  })
  .strict()
  .superRefine((value, ctx) => {
    if ((value.acqpPublicKey === undefined) === (value.acqpPublicKeys === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['acqpPublicKey'],
        message: 'give acqpPublicKey or acqpPublicKeys (exactly one)',
      });
    }
  });

export type SimulatorOptions = z.input<typeof SimulatorOptions>;

/** One API call the simulator received, as it answered it. */
export interface CallRecord {
  seq: number;
  at: number;
  api: 'pay' | 'inquiryPayment' | 'cancelPayment' | 'refund';
  paymentRequestId?: string;
  paymentId?: string;
  /** For a refund call. */
  refundRequestId?: string;
  /** The request's `Request-Time` header: when the ACQP signed it. */
  requestTime?: string;
  /** The keyVersion the request's `Signature` header named (absent when it could not be parsed). */
  keyVersion?: number;
  signatureValid: boolean;
  fault?: FaultKind;
  /** The fault (or the held-back answer) came from the load model: past capacity, or an outage. */
  overload?: 'capacity' | 'outage' | 'slow';
  httpStatus?: number;
  resultCode?: string;
  resultStatus?: string;
  paymentStatus?: string;
}

const CreateOrder = z
  .object({
    paymentRequestId: Id,
    amount: Amount.default({ currency: 'JPY', value: '100' }),
    /** Epoch ms or ISO 8601. Default: creation + defaultExpiryMs. */
    expiresAt: z.union([z.number().int(), z.iso.datetime({ offset: true })]).optional(),
    notifyUrl: z.url().optional(),
    scenario: Scenario.optional(),
  })
  .strict();
export type CreateOrderInput = z.input<typeof CreateOrder>;

const RefRequest = z.looseObject({ paymentRequestId: Id.nullish(), paymentId: Id.nullish() });

/** The in-process and HTTP admin powers, alike. */
export interface SimulatorAdmin {
  now(): number;
  createOrder(input: CreateOrderInput): OrderTruth;
  order(paymentRequestId: string): OrderTruth | undefined;
  orders(): OrderTruth[];
  calls(): CallRecord[];
  notifications(): DeliveryRecord[];
  setFaults(faults: FaultSpecInput | undefined): void;
  /** Sets (or with `undefined` lifts) the capacity and outage windows (see `LoadSpec`). */
  setLoad(load: LoadSpecInput | undefined): void;
  /** Forgets orders, calls and notifications; keys stay as they are. */
  reset(): void;
  /** The simulator's own keys (public halves) and the ACQP keys it trusts. */
  keys(): SimulatorKeysView;
  /**
   * Generates a new signing key pair (as Alipay+ announces a rotation): by default the next
   * keyVersion, not used until {@link SimulatorAdmin.useKey} (or `activate: true`).
   */
  createKey(input?: CreateKeyInput): Promise<SimulatorKeyView>;
  /** Signs answers and notifications with the key of this version from now on. */
  useKey(keyVersion: number): SimulatorKeyView;
  /** Trusts one more ACQP public key (the ACQP registered a new key). */
  addAcqpPublicKey(entry: PublicKeyEntryInput): SimulatorKeysView;
  /** Stops trusting an ACQP public key, by keyVersion or by the key itself. */
  retireAcqpPublicKey(which: number | KeyInput): SimulatorKeysView;
}

export interface Simulator extends SimulatorAdmin {
  /** Starts listening; resolves with the base URL. */
  start(): Promise<string>;
  stop(): Promise<void>;
  readonly url: string;
  /**
   * The public key (PEM, SPKI) of the key the simulator signs with now: what an ACQP configures as
   * the Alipay+ public key. It changes on {@link SimulatorAdmin.useKey}.
   */
  readonly publicKeyPem: string;
  /** The version of that key, named in every signature the simulator makes. */
  readonly keyVersion: number;
  /** Notifications not yet delivered or retried. */
  pendingNotifications(): number;
}

const jsonHeaders = { 'content-type': 'application/json; charset=UTF-8' };

/** An answer, and the order it concerns once processing is done (a pay may have created it). */
interface Processed {
  answer: Record<string, unknown>;
  order?: SimOrder;
}

/** A pay Alipay+ never processed, for an order it does not know: kept for the ground truth only. */
interface UnknownPay {
  paymentRequestId: string;
  amount: { currency: string; value: string };
  createdAt: number;
  expiresAt: number;
  label: string;
  payMode: PayMode;
}

/** A refund request processed once: its content, and the answer every repeat gets. */
interface RefundEntry {
  order: SimOrder;
  amount: { currency: string; value: string };
  answer: Record<string, unknown>;
}

const SUCCESS = { resultCode: 'SUCCESS', resultStatus: 'S', resultMessage: 'success' } as const;

/** The first schema issue as `path: message`, for a PARAM_ILLEGAL answer (at most 256 characters). */
function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'bad request';
  const where = issue.path.length > 0 ? issue.path.join('.') : '(root)';
  return `${where}: ${issue.message}`.slice(0, 256);
}

/** A JSON value with sorted keys and without null or absent fields: "omitted or null" are the same. */
function canonical(value: unknown): string {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>)
          .filter(([, field]) => field != null)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([key, field]) => [key, strip(field)]),
      );
    }
    return v;
  };
  return JSON.stringify(strip(value ?? null)) ?? 'null';
}

/** The first field a repeated pay may not change that it did change (spec §8), or undefined. */
function inconsistentPayField(first: PayRequest, repeat: PayRequest): string | undefined {
  const fields: [string, unknown, unknown][] = [
    ['paymentAmount', first.paymentAmount, repeat.paymentAmount],
    ['paymentFactor', first.paymentFactor, repeat.paymentFactor],
    ['settlementStrategy', first.settlementStrategy, repeat.settlementStrategy],
    [
      'paymentMethod.paymentMethodType',
      first.paymentMethod.paymentMethodType,
      repeat.paymentMethod.paymentMethodType,
    ],
  ];
  return fields.find(([, a, b]) => canonical(a) !== canonical(b))?.[0];
}

/**
 * An Alipay+ stand-in over real HTTP with real signatures: `pay`, `inquiryPayment`, `cancelPayment`
 * and `refund`, a scripted wallet per order, signed notifications with retries, seeded faults,
 * and an admin API under `/__sim/`.
 */
export function createSimulator(options: SimulatorOptions): Simulator {
  const config = parseOrThrow(SimulatorOptions, options, 'simulator options', 'INVALID_OPTIONS');
  const privateKey: KeyObject = config.privateKey
    ? keyErrorAt('privateKey', () => loadPrivateKey(config.privateKey as KeyInput))
    : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const acqpKeys = new PublicKeySet(
    'acqpPublicKeys',
    config.acqpPublicKeys ?? [
      keyErrorAt('acqpPublicKey', () => loadPublicKey(config.acqpPublicKey as KeyInput)),
    ],
  );
  const keys = new SimulatorKeys({ privateKey, keyVersion: config.keyVersion }, acqpKeys);
  // Signs the `wrong-signature` fault: a valid RSA signature by a key nobody trusts. Generated off
  // the event loop, on first need.
  let strangerKey: Promise<KeyObject> | undefined;
  const stranger = () => {
    strangerKey ??= new Promise<KeyObject>((resolve, reject) =>
      generateKeyPair('rsa', { modulusLength: 2048 }, (error, _publicKey, key) =>
        error ? reject(error) : resolve(key),
      ),
    );
    return strangerKey;
  };

  const realStart = performance.now();
  const simStart = Date.now();
  const now =
    config.now ?? (() => Math.floor(simStart + (performance.now() - realStart) * config.timeFactor));

  let globalFaults: FaultSpec | undefined = config.faults ?? evenFaults(config.faultRate);
  const load = createLoadModel(config.load);
  const orders = new Map<string, SimOrder>();
  const byPaymentId = new Map<string, SimOrder>();
  /** Pays never processed, for orders Alipay+ does not know (ground truth only). */
  const unknownPays = new Map<string, UnknownPay>();
  /** Refund requests processed, by refundRequestId: the idempotency record. */
  const refundsByRequestId = new Map<string, RefundEntry>();
  const callIndex = new Map<string, number>();
  let callLog: CallRecord[] = [];
  let seq = 0;
  let paymentSeq = 0;
  let refundSeq = 0;

  const notifier = new Notifier({
    clientId: config.clientId,
    keys,
    now,
    retryScheduleMs: config.notifyRetryScheduleMs,
    ackTimeoutMs: config.notifyAckTimeoutMs,
    tickMs: config.tickMs,
  });

  function scenarioFor(paymentRequestId: string, given?: Scenario): Scenario {
    if (given) return given;
    const scripted = config.scenarios[paymentRequestId];
    if (scripted) return scripted;
    if (config.mix) return drawScenario(config.mix, streamFor(config.seed, `mix:${paymentRequestId}`));
    return Scenario.parse({});
  }

  function addOrder(fields: {
    paymentRequestId: string;
    amount: { currency: string; value: string };
    expiresAt?: number;
    notifyUrl?: string;
    scenario?: Scenario;
    payRequest?: PayRequest;
    payMode?: PayMode;
  }): SimOrder {
    const existing = orders.get(fields.paymentRequestId);
    if (existing) return existing; // pay is idempotent on paymentRequestId
    const createdAt = now();
    paymentSeq++;
    const order = newOrder({
      paymentRequestId: fields.paymentRequestId,
      paymentId: `2026${String(createdAt).slice(-9)}${String(paymentSeq).padStart(8, '0')}`,
      amount: fields.amount,
      createdAt,
      expiresAt: fields.expiresAt ?? createdAt + config.defaultExpiryMs,
      ...(fields.notifyUrl ? { notifyUrl: fields.notifyUrl } : {}),
      scenario: scenarioFor(fields.paymentRequestId, fields.scenario),
      ...(fields.payRequest ? { payRequest: fields.payRequest } : {}),
      ...(fields.payMode ? { payMode: fields.payMode } : {}),
    });
    orders.set(order.paymentRequestId, order);
    byPaymentId.set(order.paymentId, order);
    unknownPays.delete(order.paymentRequestId);
    scheduleNotification(order);
    return order;
  }

  function scheduleNotification(order: SimOrder): void {
    const decided = decisionAt(order);
    const { notify } = order.scenario;
    if (decided === undefined || !order.notifyUrl || notify.mode === 'none') return;
    const at = decided + (notify.mode === 'late' ? notify.lateMs : 0);
    notifier.schedule(
      at,
      order.notifyUrl,
      notificationBody(order, decided),
      notify.duplicates,
      () => decisionAt(order) !== undefined,
    );
  }

  function notificationBody(order: SimOrder, decided: number): NotifyPaymentRequest {
    const paid = order.scenario.decision === 'paid';
    const body: NotifyPaymentRequest = {
      paymentResult: paid
        ? { resultCode: 'SUCCESS', resultStatus: 'S', resultMessage: 'success' }
        : { resultCode: order.scenario.failCode, resultStatus: 'F', resultMessage: 'payment failed' },
      paymentRequestId: order.paymentRequestId,
      paymentId: order.paymentId,
      paymentAmount: order.amount,
      acquirerId: 'SIM_ACQUIRER',
      pspId: 'SIM_WALLET',
    };
    if (paid) {
      body.paymentTime = new Date(decided).toISOString();
      body.customerId = `cust-${order.paymentId.slice(-6)}`;
      body.walletBrandName = 'SimWallet';
    }
    return body;
  }

  /**
   * Which fault (if any) strikes this call: for a pay, the scenario's `payFaults` first; then the
   * scenario's (else the global) fault script; then seeded rates. Calls are counted per API and order.
   */
  function faultFor(
    scenario: Scenario | undefined,
    api: CallRecord['api'],
    paymentRequestId: string,
  ): FaultKind | undefined {
    const key = `${api}:${paymentRequestId}`;
    const index = callIndex.get(key) ?? 0;
    callIndex.set(key, index + 1);
    if (api === 'pay') {
      const scriptedPay = scenario?.payFaults[index];
      if (scriptedPay !== undefined) return scriptedPay === 'none' ? undefined : scriptedPay;
    }
    const spec = scenario?.faults ?? globalFaults;
    if (!spec) return undefined;
    const scripted = spec.sequence[index];
    if (scripted !== undefined) return scripted === 'none' ? undefined : scripted;
    const random = streamFor(config.seed, `fault:${key}:${index}`);
    for (const kind of FAULT_KINDS) {
      const rate = spec.rates[kind] ?? 0;
      if (rate > 0 && random() < rate) return kind;
    }
    return undefined;
  }

  function inquiryAnswer(order: SimOrder | undefined): Record<string, unknown> {
    const t = now();
    const view = order ? inquiryViewAt(order, t) : 'unknown-to-alipay';
    if (!order || view === 'unknown-to-alipay') {
      return {
        result: { resultCode: 'ORDER_NOT_EXIST', resultStatus: 'F', resultMessage: 'order does not exist' },
      };
    }
    const o = order;
    const base = {
      result: SUCCESS,
      paymentRequestId: o.paymentRequestId,
      paymentId: o.paymentId,
      paymentAmount: o.amount,
      acquirerId: 'SIM_ACQUIRER',
      pspId: 'SIM_WALLET',
    };
    switch (view) {
      case 'paid': {
        const answer: Record<string, unknown> = {
          ...base,
          paymentResult: SUCCESS,
          ...paidDetails(o, t),
        };
        const refunds = o.refunds.filter((r) => r.at <= t);
        if (refunds.length > 0) {
          answer.transactions = refunds.map((r) => ({
            transactionResult: SUCCESS,
            transactionId: r.refundId,
            transactionRequestId: r.refundRequestId,
            transactionType: 'REFUND',
            transactionStatus: 'SUCCESS',
            transactionAmount: r.amount,
            transactionTime: new Date(r.at).toISOString(),
          }));
        }
        return answer;
      }
      case 'failed':
        return {
          ...base,
          paymentResult: { resultCode: o.scenario.failCode, resultStatus: 'F', resultMessage: 'failed' },
        };
      case 'closed':
      case 'cancelled':
        return {
          ...base,
          paymentResult: {
            resultCode: 'ORDER_IS_CLOSED',
            resultStatus: 'F',
            resultMessage: 'order is closed',
          },
        };
      default:
        return {
          ...base,
          paymentResult: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U', resultMessage: 'in process' },
        };
    }
  }

  /** The details of a paid order, as inquiries and pay answers carry them. */
  function paidDetails(order: SimOrder, t: number): Record<string, unknown> {
    return {
      paymentTime: new Date(decisionAt(order) ?? t).toISOString(),
      customerId: `cust-${order.paymentId.slice(-6)}`,
      walletBrandName: 'SimWallet',
      settlementAmount: order.amount,
    };
  }

  /** What a pay (first or repeated) answers from the order's state right after processing. */
  function payAnswer(order: SimOrder): Record<string, unknown> {
    const t = now();
    const view = inquiryViewAt(order, t);
    const ids = { paymentRequestId: order.paymentRequestId, paymentId: order.paymentId };
    if (view === 'closed' || view === 'cancelled') {
      return refuse('ORDER_IS_CLOSED', 'the order is closed');
    }
    // An order or entry code waits for the user to scan it: the answer carries the code, never a result.
    if (order.payMode === 'order-code') {
      return {
        result: SUCCESS,
        ...ids,
        orderCodeForm: {
          paymentMethodType: order.payRequest?.paymentMethod.paymentMethodType ?? 'CONNECT_WALLET',
          expireTime: new Date(order.expiresAt).toISOString(),
          codeDetails: [
            {
              codeValueType: 'QRCODE',
              codeValue: `https://qr.alipayplus-sim.example/order/${order.paymentId}`,
              displayType: 'MIDDLE',
            },
          ],
        },
      };
    }
    if (order.payMode === 'entry-code') {
      return {
        result: SUCCESS,
        ...ids,
        paymentUrl: `https://pay.alipayplus-sim.example/entry/${order.paymentId}`,
      };
    }
    if (view === 'paid') {
      return {
        result: SUCCESS,
        ...ids,
        paymentAmount: order.amount,
        ...paidDetails(order, t),
        acquirerId: 'SIM_ACQUIRER',
        pspId: 'SIM_WALLET',
      };
    }
    if (view === 'failed') return refuse(order.scenario.failCode, 'payment failed');
    return {
      result: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U', resultMessage: 'payment in process' },
      ...ids,
    };
  }

  /**
   * Processes a pay: creates the order (first pay), records the request, and answers from the order's
   * state; a repeat changes nothing, and a repeat that changes a fixed field is REPEAT_REQ_INCONSISTENT.
   */
  function processPay(body: PayRequest, scenario: Scenario): Processed {
    const mode = payModeOf(body) as PayMode; // the schema refuses a pay without a mode
    const existing = orders.get(body.paymentRequestId);
    if (existing?.payRequest) {
      const changed = inconsistentPayField(existing.payRequest, body);
      if (changed) {
        return {
          order: existing,
          answer: refuse(
            'REPEAT_REQ_INCONSISTENT',
            `a pay with this paymentRequestId and another ${changed} was received before`,
          ),
        };
      }
      return { order: existing, answer: payAnswer(existing) };
    }
    if (existing) {
      // Made by createOrder: the first pay only records what it asked for.
      existing.payRequest = body;
      existing.payMode = mode;
      return { order: existing, answer: payAnswer(existing) };
    }
    const expiry = body.paymentExpiryTime ? Date.parse(body.paymentExpiryTime) : undefined;
    const effective: Scenario =
      mode === 'user-presented' && scenario.payCode === 'expired'
        ? { ...scenario, appearAfterMs: 0, decideAfterMs: 0, decision: 'failed', failCode: 'EXPIRED_CODE' }
        : scenario;
    const order = addOrder({
      paymentRequestId: body.paymentRequestId,
      amount: { currency: body.paymentAmount.currency, value: body.paymentAmount.value },
      ...(expiry !== undefined ? { expiresAt: expiry } : {}),
      ...(body.paymentNotifyUrl ? { notifyUrl: body.paymentNotifyUrl } : {}),
      scenario: effective,
      payRequest: body,
      payMode: mode,
    });
    return { order, answer: payAnswer(order) };
  }

  /** Notes a pay that was never processed, for an order Alipay+ does not know: the truth must show it. */
  function noteUnknownPay(body: PayRequest, scenario: Scenario): void {
    if (orders.has(body.paymentRequestId) || unknownPays.has(body.paymentRequestId)) return;
    const createdAt = now();
    const expiry = body.paymentExpiryTime ? Date.parse(body.paymentExpiryTime) : undefined;
    unknownPays.set(body.paymentRequestId, {
      paymentRequestId: body.paymentRequestId,
      amount: { currency: body.paymentAmount.currency, value: body.paymentAmount.value },
      createdAt,
      expiresAt: expiry ?? createdAt + config.defaultExpiryMs,
      label: scenario.label,
      payMode: payModeOf(body) as PayMode,
    });
  }

  /**
   * Processes a refund: only a paid, not cancelled order, within the refund window, while the refunds
   * stay within the paid amount. The answer is kept: a repeat of the refundRequestId gets it again.
   */
  function processRefund(order: SimOrder, body: RefundRequest): Record<string, unknown> {
    const t = now();
    const truth = truthAt(order, t);
    const amount = { currency: body.refundAmount.currency, value: body.refundAmount.value };
    const value = BigInt(amount.value);
    let answer: Record<string, unknown>;
    if (!truth.charged || truth.cancelled) {
      answer = refuse('ORDER_STATUS_INVALID', 'only a paid, not cancelled payment can be refunded');
    } else if (t > order.createdAt + REFUND_WINDOW_MS) {
      answer = refuse('REFUND_WINDOW_EXCEED', 'the refund window has closed');
    } else if (amount.currency !== order.amount.currency) {
      answer = refuse(
        'PARAM_ILLEGAL',
        `refundAmount.currency: must be ${order.amount.currency}, the payment's`,
      );
    } else if (value === 0n) {
      answer = refuse('PARAM_ILLEGAL', 'refundAmount.value: must be more than 0');
    } else if (refundedValue(order, t) + value > BigInt(order.amount.value)) {
      answer = refuse('REFUND_AMOUNT_EXCEED', 'the refunds would exceed the paid amount');
    } else {
      refundSeq++;
      const refundId = `3026${String(t).slice(-9)}${String(refundSeq).padStart(8, '0')}`;
      order.refunds.push({ refundRequestId: body.refundRequestId, refundId, amount, at: t });
      answer = {
        result: SUCCESS,
        refundRequestId: body.refundRequestId,
        refundId,
        refundTime: new Date(t).toISOString(),
        refundAmount: amount,
        paymentRequestId: order.paymentRequestId,
        paymentId: order.paymentId,
      };
    }
    refundsByRequestId.set(body.refundRequestId, { order, amount, answer });
    return answer;
  }

  // ---- HTTP -------------------------------------------------------------------------------------

  let server: Server | undefined;
  let url = '';
  const signatures = new Map<string, string>();
  const sockets = new Set<Socket>();
  const held = new Set<ServerResponse>();

  async function readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** Answers 200 with a body signed over the request's own method, path and Client-Id. */
  async function sendSigned(
    res: ServerResponse,
    path: string,
    clientId: string,
    body: string,
    mode: 'good' | 'missing' | 'wrong' = 'good',
  ): Promise<void> {
    const headers: Record<string, string> = { ...jsonHeaders };
    if (mode !== 'missing') {
      const cacheable = config.signatureCache && mode === 'good';
      const time = new Date(cacheable ? Math.floor(now() / 1000) * 1000 : now()).toISOString();
      // Read once, so that a key switched during the signing cannot pair this signature with
      // another version; the version is part of the cache key for the same reason.
      const { privateKey, keyVersion } = keys.active;
      const key = `${keyVersion}\n${path}\n${clientId}\n${time}\n${body}`;
      let signature = cacheable ? signatures.get(key) : undefined;
      if (signature === undefined) {
        signature = await signContentAsync(
          buildSignContent({ method: 'POST', path, clientId, time, body }),
          mode === 'wrong' ? await stranger() : privateKey,
        );
        if (cacheable) {
          if (signatures.size >= 1_000) signatures.clear();
          signatures.set(key, signature);
        }
      }
      headers['response-time'] = time;
      headers.signature = buildSignatureHeader({ signature, keyVersion });
    }
    if (res.destroyed) return;
    res.writeHead(200, headers);
    res.end(body);
  }

  function refuse(code: string, message: string) {
    return { result: { resultCode: code, resultStatus: 'F', resultMessage: message } };
  }

  async function handleApi(
    req: IncomingMessage,
    res: ServerResponse,
    api: CallRecord['api'],
    path: string,
  ): Promise<void> {
    const raw = await readBody(req);
    const record: CallRecord = { seq: ++seq, at: now(), api, signatureValid: false };
    const requestTime = req.headers['request-time'];
    if (typeof requestTime === 'string') record.requestTime = requestTime;
    callLog.push(record);

    const clientId = String(req.headers['client-id'] ?? '');
    let signatureValid = false;
    try {
      const header = parseSignatureHeader(String(req.headers.signature ?? ''));
      record.keyVersion = header.keyVersion;
      const content = buildSignContent({
        method: req.method ?? 'POST',
        path,
        clientId,
        time: String(req.headers['request-time'] ?? ''),
        body: raw,
      });
      signatureValid = keys.verifyAcqp(content, header);
    } catch {
      signatureValid = false;
    }
    record.signatureValid = signatureValid;

    let answer: Record<string, unknown> = {};
    let order: SimOrder | undefined;
    /** Whose faults apply: the order's scenario, or for a first pay the scenario it will get. */
    let scenario: Scenario | undefined;
    /** The processing itself, run only when no fault stops the request before Alipay+ handles it. */
    let apply: (() => Processed) | undefined;
    /** What a request that was never processed still leaves behind (a dropped first pay: the truth). */
    let unprocessed: (() => void) | undefined;
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      json = undefined;
    }
    if (clientId !== config.clientId) {
      answer = refuse('INVALID_CLIENT', `unknown Client-Id ${clientId.slice(0, 64)}`);
    } else if (!signatureValid) {
      answer = refuse('INVALID_SIGNATURE', 'the request signature does not verify');
    } else if (api === 'pay') {
      const parsed = PayRequest.safeParse(json);
      if (!parsed.success) answer = refuse('PARAM_ILLEGAL', firstIssue(parsed.error));
      else {
        const body = parsed.data;
        order = orders.get(body.paymentRequestId);
        const payScenario = order?.scenario ?? scenarioFor(body.paymentRequestId);
        scenario = payScenario;
        record.paymentRequestId = body.paymentRequestId;
        apply = () => processPay(body, payScenario);
        unprocessed = () => noteUnknownPay(body, payScenario);
      }
    } else if (api === 'refund') {
      const parsed = RefundRequest.safeParse(json);
      if (!parsed.success) answer = refuse('PARAM_ILLEGAL', firstIssue(parsed.error));
      else {
        const body = parsed.data;
        record.refundRequestId = body.refundRequestId;
        // Both given: paymentId wins, as for the other calls.
        const target =
          body.paymentId != null
            ? byPaymentId.get(body.paymentId)
            : orders.get(body.paymentRequestId as string);
        const first = refundsByRequestId.get(body.refundRequestId);
        order = first?.order ?? target;
        record.paymentRequestId = order?.paymentRequestId ?? body.paymentRequestId ?? undefined;
        if (first) {
          const same =
            target === first.order &&
            first.amount.currency === body.refundAmount.currency &&
            first.amount.value === body.refundAmount.value;
          apply = () => ({
            answer: same
              ? first.answer
              : refuse(
                  'REPEAT_REQ_INCONSISTENT',
                  'a refund with this refundRequestId and another payment or amount was received before',
                ),
          });
        } else if (!target) {
          answer = refuse('ORDER_NOT_EXIST', 'order does not exist');
        } else {
          apply = () => ({ answer: processRefund(target, body) });
        }
      }
    } else {
      const parsed = RefRequest.safeParse(json);
      const ref = parsed.success ? parsed.data : undefined;
      if (!ref || (ref.paymentId == null && ref.paymentRequestId == null)) {
        answer = refuse('PARAM_ILLEGAL', 'one of paymentRequestId or paymentId is required');
      } else {
        // Both given: paymentId wins (as Antom documents); we send only one.
        order =
          ref.paymentId != null ? byPaymentId.get(ref.paymentId) : orders.get(ref.paymentRequestId as string);
        record.paymentRequestId = order?.paymentRequestId ?? ref.paymentRequestId ?? undefined;
        if (api === 'inquiryPayment') {
          answer = inquiryAnswer(order);
        } else if (!order) {
          answer = refuse('ORDER_NOT_EXIST', 'order does not exist');
        } else {
          const target = order;
          apply = () => {
            const verdict = applyCancel(target, now());
            if (verdict.kind === 'unknown') {
              return {
                answer: {
                  result: { resultCode: 'UNKNOWN_EXCEPTION', resultStatus: 'U', resultMessage: 'try again' },
                },
              };
            }
            if (verdict.kind === 'window-exceeded') {
              return {
                answer: refuse('CANCEL_WINDOW_EXCEED', 'the cancel window has closed; refund instead'),
              };
            }
            return { answer: { result: SUCCESS, acquirerId: 'SIM_ACQUIRER', pspId: 'SIM_WALLET' } };
          };
        }
      }
    }
    scenario ??= order?.scenario;

    // Past capacity or in an outage, the load model decides; else the scenario's faults do.
    const accepted = signatureValid && clientId === config.clientId;
    const loaded = accepted ? load.verdict(now()) : undefined;
    if (loaded?.kind === 'fail') record.overload = loaded.why;
    if (loaded?.kind === 'slow') {
      record.overload = 'slow';
      await new Promise((resolve) => setTimeout(resolve, loaded.ms));
    }
    const fault =
      loaded?.kind === 'fail'
        ? loaded.fault
        : accepted
          ? faultFor(scenario, api, record.paymentRequestId ?? '?')
          : undefined;
    if (fault) record.fault = fault;

    // Faults that mean "Alipay+ did not process it" leave every order untouched, as does every call
    // the load model refused (past capacity, or in an outage), whatever fault it answers with.
    const processed = !fault || (!UNPROCESSED_FAULTS.includes(fault) && loaded?.kind !== 'fail');
    if (processed && apply) {
      const done = apply();
      answer = done.answer;
      order = done.order ?? order;
    } else if (!processed) {
      unprocessed?.();
      if (fault === 'drop-request') answer = {}; // never reached Alipay+: nothing was answered
    }
    if (order) {
      record.paymentRequestId = order.paymentRequestId;
      record.paymentId = order.paymentId;
    }

    const result = answer.result as { resultCode?: string; resultStatus?: string } | undefined;
    record.resultCode = result?.resultCode;
    record.resultStatus = result?.resultStatus;
    record.paymentStatus = (answer.paymentResult as { resultStatus?: string } | undefined)?.resultStatus;

    switch (fault) {
      case 'timeout':
        held.add(res);
        res.on('close', () => held.delete(res));
        setTimeout(() => res.destroy(), config.holdMs).unref();
        record.httpStatus = 0;
        return;
      case 'reset':
      case 'drop-request':
        record.httpStatus = 0;
        req.socket.destroy();
        return;
      case 'http-500':
      case 'http-502':
      case 'http-503': {
        const status = Number(fault.slice(5));
        record.httpStatus = status;
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end('simulated server error');
        return;
      }
      case 'latency': {
        const spec = scenario?.faults ?? globalFaults;
        const [min, max] = spec?.latencyMs ?? [200, 1_500];
        const random = streamFor(config.seed, `latency:${record.seq}`);
        await new Promise((resolve) => setTimeout(resolve, Math.round(min + random() * (max - min))));
        break;
      }
      case 'bad-json':
        record.httpStatus = 200;
        return sendSigned(res, path, clientId, '{"result": {"resultCode": "SUCC');
      case 'unknown-exception':
        answer = {
          result: { resultCode: 'UNKNOWN_EXCEPTION', resultStatus: 'U', resultMessage: 'unknown exception' },
        };
        break;
      case 'traffic-limit':
        answer = {
          result: {
            resultCode: 'REQUEST_TRAFFIC_EXCEED_LIMIT',
            resultStatus: 'U',
            resultMessage: 'too many requests',
          },
        };
        break;
      default:
        break;
    }
    if (fault === 'unknown-exception' || fault === 'traffic-limit') {
      record.resultCode = (answer.result as { resultCode: string }).resultCode;
      record.resultStatus = 'U';
      record.paymentStatus = undefined;
    }
    record.httpStatus = 200;
    const mode = fault === 'missing-signature' ? 'missing' : fault === 'wrong-signature' ? 'wrong' : 'good';
    await sendSigned(res, path, clientId, JSON.stringify(answer), mode);
  }

  const admin: SimulatorAdmin = {
    now,
    createOrder(input) {
      const parsed = parseOrThrow(CreateOrder, input, 'simulator order');
      const expiresAt =
        typeof parsed.expiresAt === 'string' ? Date.parse(parsed.expiresAt) : parsed.expiresAt;
      const order = addOrder({
        paymentRequestId: parsed.paymentRequestId,
        amount: parsed.amount,
        ...(expiresAt !== undefined ? { expiresAt } : {}),
        ...(parsed.notifyUrl ? { notifyUrl: parsed.notifyUrl } : {}),
        ...(parsed.scenario ? { scenario: parsed.scenario } : {}),
      });
      return truthAt(order, now());
    },
    order(paymentRequestId) {
      const order = orders.get(paymentRequestId);
      if (order) return truthAt(order, now());
      const unknown = unknownPays.get(paymentRequestId);
      return unknown && unknownOrderTruth(unknown);
    },
    orders: () => [
      ...[...orders.values()].map((order) => truthAt(order, now())),
      ...[...unknownPays.values()].map((unknown) => unknownOrderTruth(unknown)),
    ],
    calls: () => [...callLog],
    notifications: () => [...notifier.log],
    setLoad(spec) {
      load.set(spec);
    },
    setFaults(faults) {
      globalFaults = faults === undefined ? undefined : FaultSpec.parse(faults);
    },
    reset() {
      orders.clear();
      byPaymentId.clear();
      unknownPays.clear();
      refundsByRequestId.clear();
      callIndex.clear();
      callLog = [];
      notifier.log.length = 0;
      notifier.clear();
    },
    keys: () => keys.view(),
    createKey: (input) => keys.create(input),
    useKey: (keyVersion) => keys.use(keyVersion),
    addAcqpPublicKey(entry) {
      keys.addAcqp(entry);
      return keys.view();
    },
    retireAcqpPublicKey(which) {
      keys.retireAcqp(which);
      return keys.view();
    },
  };

  /**
   * The key routes of the admin API: `GET /__sim/keys`, `POST /__sim/keys` (a new key pair),
   * `PUT /__sim/keys/active` (sign with another version), `POST /__sim/acqp-keys` and
   * `DELETE /__sim/acqp-keys/:keyVersion`. Undefined for any other route.
   */
  async function handleKeyAdmin(
    method: string | undefined,
    resource: string | undefined,
    id: string | undefined,
    body: unknown,
  ): Promise<{ status: number; body: unknown } | undefined> {
    if (resource === 'keys' && !id) {
      if (method === 'GET') return { status: 200, body: admin.keys() };
      if (method === 'POST') return { status: 201, body: await admin.createKey(body ?? {}) };
    }
    if (resource === 'keys' && id === 'active' && method === 'PUT') {
      const { keyVersion } = parseOrThrow(z.object({ keyVersion: KeyVersionSchema }), body, 'active key');
      return { status: 200, body: admin.useKey(keyVersion) };
    }
    if (resource === 'acqp-keys' && !id && method === 'POST') {
      const entry = parseOrThrow(
        z.object({ key: z.string().min(1), keyVersion: KeyVersionSchema.optional() }).strict(),
        body,
        'ACQP public key',
      );
      return { status: 201, body: admin.addAcqpPublicKey(entry) };
    }
    if (resource === 'acqp-keys' && id && method === 'DELETE') {
      const keyVersion = parseOrThrow(z.coerce.number().pipe(KeyVersionSchema), id, 'keyVersion');
      return { status: 200, body: admin.retireAcqpPublicKey(keyVersion) };
    }
    return undefined;
  }

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, jsonHeaders);
      res.end(JSON.stringify(body));
    };
    const raw = await readBody(req);
    try {
      const body = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : undefined;
      const [, , resource, id] = path.split('/'); // '', '__sim', resource, id
      if (req.method === 'GET' && resource === 'time') return reply(200, { now: now() });
      if (req.method === 'GET' && resource === 'orders' && id) {
        const order = admin.order(decodeURIComponent(id));
        return order ? reply(200, order) : reply(404, { error: 'NOT_FOUND', message: `no order ${id}` });
      }
      if (req.method === 'GET' && resource === 'orders') return reply(200, admin.orders());
      if (req.method === 'POST' && resource === 'orders') return reply(201, admin.createOrder(body));
      if (req.method === 'GET' && resource === 'calls') return reply(200, admin.calls());
      if (req.method === 'GET' && resource === 'notifications') return reply(200, admin.notifications());
      if (req.method === 'PUT' && resource === 'faults') {
        admin.setFaults(body ?? undefined);
        return reply(200, { ok: true });
      }
      if (req.method === 'PUT' && resource === 'load') {
        admin.setLoad(body ?? undefined);
        return reply(200, { ok: true });
      }
      if (req.method === 'GET' && resource === 'load') return reply(200, load.spec ?? null);
      if (req.method === 'POST' && resource === 'reset') {
        admin.reset();
        return reply(200, { ok: true });
      }
      const keyRoute = await handleKeyAdmin(req.method, resource, id, body);
      if (keyRoute) return reply(keyRoute.status, keyRoute.body);
      return reply(404, { error: 'NOT_FOUND', message: `no admin route ${req.method} ${path}` });
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'BAD_REQUEST';
      return reply(400, { error: code, message: error instanceof Error ? error.message : String(error) });
    }
  }

  const routes = new Map<string, CallRecord['api']>([
    [API_PATHS.pay, 'pay'],
    [API_PATHS.inquiryPayment, 'inquiryPayment'],
    [API_PATHS.cancelPayment, 'cancelPayment'],
    [API_PATHS.refund, 'refund'],
  ]);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '/';
    const pathname = path.split('?')[0] ?? path;
    try {
      if (pathname.startsWith('/__sim/')) return await handleAdmin(req, res, pathname);
      const api = routes.get(pathname);
      if (api && req.method === 'POST') return await handleApi(req, res, api, path);
      res.writeHead(404, jsonHeaders);
      res.end(JSON.stringify({ error: 'NOT_FOUND' }));
    } catch (error) {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, jsonHeaders);
        res.end(JSON.stringify({ error: 'SIMULATOR_ERROR', message: String(error) }));
      }
    }
  }

  return {
    ...admin,
    get url() {
      return url;
    },
    get publicKeyPem() {
      return keys.activePublicKeyPem;
    },
    get keyVersion() {
      return keys.active.keyVersion;
    },
    pendingNotifications: () => notifier.pending,
    async start() {
      if (server) return url;
      server = createServer((req, res) => void handle(req, res));
      server.keepAliveTimeout = 30_000;
      server.on('connection', (socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve, reject) => {
        server?.once('error', reject);
        server?.listen(config.port, config.host, () => resolve());
      });
      const { port } = server.address() as AddressInfo;
      url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
      notifier.start();
      return url;
    },
    async stop() {
      await notifier.stop();
      for (const res of held) res.destroy();
      for (const socket of sockets) socket.destroy();
      if (server) await new Promise<void>((resolve) => server?.close(() => resolve()));
      server = undefined;
    },
  };
}

/**
 * `faultRate` R: each call draws one fault with total probability ≈ R, spread over the kinds that
 * existed before `drop-request` (left out, so that a given rate and seed keep drawing the same faults;
 * script it, or give it a rate, to get it).
 */
const EVEN_FAULT_KINDS = FAULT_KINDS.filter((kind) => kind !== 'drop-request');
function evenFaults(rate: number | undefined): FaultSpec | undefined {
  if (!rate) return undefined;
  const each = rate / EVEN_FAULT_KINDS.length;
  return FaultSpec.parse({ rates: Object.fromEntries(EVEN_FAULT_KINDS.map((kind) => [kind, each])) });
}

export type { ScenarioInput };
