import { z } from 'zod';
import { Amount, Id } from '../src/protocol/common.js';
import { PAY_MODES, type PayMode } from '../src/protocol/pay.js';
import { parseOrThrow } from '../src/validate.js';
import { MAX_PLAN_LENGTH } from './decision-model.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Alipay+ measures the cancel window in UTC+8. */
const UTC_PLUS_8 = 8 * HOUR;

const positiveMs = z.number().int().positive();

/** How a lifecycle polls, waits and cancels. Every knob has a default; see docs/configuration.md. */
export const LifecyclePolicy = z
  .object({
    /** Wait before each inquiry, in ms: the first from creation, then from the previous answer. The last value repeats. */
    inquiryScheduleMs: z.array(positiveMs).min(1).default([2_000, 2_000, 3_000, 3_000, 5_000, 5_000, 10_000]),
    /**
     * `fixed` asks on `inquiryScheduleMs`. `adaptive` asks at the times the engine plans from what it
     * learned of the wallet's decision delays (see docs/configuration.md), falling back to the fixed
     * schedule until it has learned enough. The safety rules hold either way.
     */
    inquirySchedule: z.enum(['fixed', 'adaptive']).default('fixed'),
    /** Adaptive only: the lag (wallet decision to our outcome) to keep under, at `lagQuantile`. */
    lagTargetMs: positiveMs.default(3_000),
    /** Adaptive only: the share of decided payments whose lag stays under `lagTargetMs`. */
    lagQuantile: z.number().min(0.5).max(0.9999).default(0.99),
    /** Inquiries after which the lifecycle stops asking and cancels, even before expiry. */
    maxInquiries: z.number().int().positive().default(60),
    /** Stop polling after this many inquiries and wait for the notification until expiry (then one last look). */
    awaitNotificationAfter: z.number().int().positive().optional(),
    /** An answer of REQUEST_TRAFFIC_EXCEED_LIMIT multiplies the next wait by this. */
    trafficLimitMultiplier: z.number().min(1).default(3),
    /**
     * Retries (a cancel's, a refund's, a check after the cancel window, and the inquiry after a
     * REQUEST_TRAFFIC_EXCEED_LIMIT) wait a random share of their scheduled wait: "full jitter", so
     * that payments that failed together do not retry together. The share is drawn from the payment
     * and the attempt, so a lifecycle replays the same waits. `none`: exactly the schedule.
     */
    retryJitter: z.enum(['full', 'none']).default('full'),
    /** Wait before each cancel retry, in ms. The last value repeats. */
    cancelRetryScheduleMs: z
      .array(positiveMs)
      .min(1)
      .default([1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000]),
    /** F answers to a cancel (other than CANCEL_WINDOW_EXCEED) before the lifecycle asks for a person. */
    maxCancelFailures: z.number().int().positive().default(3),
    /** Expiry when the payment gives none: the user-presented default of 1 minute. */
    defaultExpiryMs: positiveMs.default(MINUTE),
    /**
     * Past the cancel window, an inquiry that shows the payment paid means money is owed back. With
     * `autoRefund` the lifecycle sends the refund itself (ending `refunded`); without it, it stops in
     * `attention` with reason `refund-due`, for a person to refund with one command.
     */
    autoRefund: z.boolean().default(false),
    /** Inquiries past the cancel window without a final answer before the lifecycle asks for a person. */
    maxWindowChecks: z.number().int().positive().default(10),
  })
  .strict();

export type LifecyclePolicyInput = z.input<typeof LifecyclePolicy>;
export type ResolvedPolicy = z.output<typeof LifecyclePolicy>;

/** Inquiry times in ms from creation, strictly increasing; bounded so that a snapshot stays small. */
export const InquiryPlan = z
  .array(z.number().int().nonnegative())
  .max(MAX_PLAN_LENGTH)
  .refine((plan) => plan.every((at, i) => i === 0 || at > (plan[i - 1] as number)), {
    message: 'must be strictly increasing',
  });

/** What starts a lifecycle. Times are epoch ms. */
export const LifecycleInput = z
  .object({
    paymentRequestId: Id,
    paymentId: Id.optional(),
    amount: Amount.optional(),
    createdAt: z.number().int().nonnegative(),
    expiresAt: z.number().int().nonnegative().optional(),
    /**
     * When the lifecycle starts, i.e. now (epoch ms); default `createdAt`. A payment tracked some time
     * after its creation keeps its absolute deadlines: its first wait is measured from here.
     */
    startedAt: z.number().int().nonnegative().optional(),
    /** The end of the cancel window; by default 00:15 UTC+8 on the day after `createdAt`. */
    cancelWindowEndsAt: z.number().int().nonnegative().optional(),
    policy: LifecyclePolicy.prefault({}),
    /**
     * The wallet the payment goes to (the caller's routing, or the pay answer's `pspId`): the
     * adaptive schedule learns per wallet. Without it the first answer's `pspId` is taken.
     */
    walletKey: Id.optional(),
    /**
     * Adaptive only: when to inquire, in ms from `createdAt`, increasing (the engine's plan for the
     * wallet). Without it the fixed schedule is used until an answer brings a plan.
     */
    inquiryPlan: InquiryPlan.optional(),
    /**
     * Set when the lifecycle starts before `pay` is sent (engine.pay): it begins in `paying`. The
     * request itself stays with the engine, which re-sends exactly it.
     */
    pay: z
      .object({ mode: z.enum(PAY_MODES) })
      .strict()
      .optional(),
  })
  .strict()
  .refine((input) => input.expiresAt === undefined || input.expiresAt > input.createdAt, {
    message: 'expiresAt must be after createdAt',
    path: ['expiresAt'],
  })
  .refine((input) => input.cancelWindowEndsAt === undefined || input.cancelWindowEndsAt > input.createdAt, {
    message: 'cancelWindowEndsAt must be after createdAt',
    path: ['cancelWindowEndsAt'],
  });

export type LifecycleInput = z.input<typeof LifecycleInput>;

export interface ResolvedLifecycleInput {
  paymentRequestId: string;
  paymentId?: string;
  amount?: { currency: string; value: string };
  createdAt: number;
  startedAt: number;
  expiresAt: number;
  cancelWindowEndsAt: number;
  policy: ResolvedPolicy;
  payMode?: PayMode;
  walletKey?: string;
  inquiryPlan?: number[];
}

/** 00:15 (UTC+8) of the day after `createdAt`: the last moment Alipay+ accepts a cancel. */
export function defaultCancelWindowEnd(createdAt: number): number {
  const localDayStart = Math.floor((createdAt + UTC_PLUS_8) / DAY) * DAY;
  return localDayStart + DAY + 15 * MINUTE - UTC_PLUS_8;
}

/**
 * Validates and defaults a lifecycle's input.
 * @throws ValidationError `INVALID_INPUT` naming each bad field.
 */
export function resolveLifecycleInput(input: LifecycleInput): ResolvedLifecycleInput {
  const parsed = parseOrThrow(LifecycleInput, input, 'lifecycle input');
  const resolved: ResolvedLifecycleInput = {
    paymentRequestId: parsed.paymentRequestId,
    createdAt: parsed.createdAt,
    startedAt: Math.max(parsed.createdAt, parsed.startedAt ?? parsed.createdAt),
    expiresAt: parsed.expiresAt ?? parsed.createdAt + parsed.policy.defaultExpiryMs,
    cancelWindowEndsAt: parsed.cancelWindowEndsAt ?? defaultCancelWindowEnd(parsed.createdAt),
    policy: parsed.policy,
  };
  if (parsed.paymentId !== undefined) resolved.paymentId = parsed.paymentId;
  if (parsed.pay) resolved.payMode = parsed.pay.mode;
  if (parsed.walletKey !== undefined) resolved.walletKey = parsed.walletKey;
  // A plan is kept only by the adaptive policy (as given: the engine shares one array per wallet).
  if (input.inquiryPlan && parsed.policy.inquirySchedule === 'adaptive')
    resolved.inquiryPlan = input.inquiryPlan;
  if (parsed.amount) resolved.amount = { currency: parsed.amount.currency, value: parsed.amount.value };
  return resolved;
}

/** The n-th entry of a schedule (0-based), the last one repeating. */
export function scheduleAt(schedule: readonly number[], index: number): number {
  return schedule[Math.min(Math.max(index, 0), schedule.length - 1)] as number;
}

/**
 * A retry's wait under the policy's `retryJitter`: with `full`, a share in [0, 1) of `waitMs`, the
 * same for the same payment, kind of retry and attempt (FNV-1a over the three: the machine stays
 * pure, and a restored lifecycle waits as it would have), but spread across payments.
 */
export function retryWait(
  waitMs: number,
  policy: { retryJitter: 'full' | 'none' },
  paymentRequestId: string,
  kind: string,
  attempt: number,
): number {
  if (policy.retryJitter === 'none') return waitMs;
  return Math.floor(waitMs * jitterShare(`${kind}:${attempt}:${paymentRequestId}`));
}

/** A share in [0, 1) from a string: FNV-1a (32 bits), then a final mix so that near keys spread. */
export function jitterShare(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  return (hash >>> 0) / 2 ** 32;
}
