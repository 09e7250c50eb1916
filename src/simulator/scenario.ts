import { z } from 'zod';
import { between, pick, type Random } from './random.js';

/** Every fault the simulator can inject into an answer. */
export const FAULT_KINDS = [
  'latency',
  'timeout',
  'reset',
  'http-500',
  'http-502',
  'http-503',
  'bad-json',
  'missing-signature',
  'wrong-signature',
  'unknown-exception',
  'traffic-limit',
  /** The request is lost before Alipay+ processes it: the connection resets, nothing changes. */
  'drop-request',
] as const;
export const FaultKind = z.enum(FAULT_KINDS);
export type FaultKind = z.infer<typeof FaultKind>;

/**
 * Faults that mean "Alipay+ never processed the request": nothing changes (a cancel does not happen,
 * a pay creates no order). Every other fault strikes after processing, so only the answer is lost.
 */
export const UNPROCESSED_FAULTS: readonly FaultKind[] = [
  'http-500',
  'http-502',
  'http-503',
  'unknown-exception',
  'traffic-limit',
  'drop-request',
];

/** One step of a fault script: a fault, or `'none'` for a clean answer. */
export const ScriptedFault = z.union([FaultKind, z.literal('none')]);
export type ScriptedFault = z.infer<typeof ScriptedFault>;

/**
 * Faults, per scenario or global. `rates` are per-call probabilities, drawn from a seeded stream per
 * payment and call, so a run reproduces from its seed. `sequence` scripts the first calls to an order
 * exactly (`'none'` for a clean answer), for tests that need one precise fault.
 */
export const FaultSpec = z
  .object({
    rates: z.partialRecord(FaultKind, z.number().min(0).max(1)).default({}),
    sequence: z.array(ScriptedFault).default([]),
    /** Added latency, in real ms, when the `latency` fault strikes. */
    latencyMs: z.tuple([z.number().int().min(0), z.number().int().min(0)]).default([200, 1_500]),
  })
  .strict();
export type FaultSpec = z.output<typeof FaultSpec>;
export type FaultSpecInput = z.input<typeof FaultSpec>;

/** How the wallet and Alipay+ behave for one order. Times are simulated ms from the order's creation. */
export const Scenario = z
  .object({
    /** A name for reports, e.g. the mix entry it came from. */
    label: z.string().default('scripted'),
    /** Until then, Alipay+ does not know the order: inquiries answer F ORDER_NOT_EXIST. */
    appearAfterMs: z.number().int().min(0).default(0),
    /** When the wallet decides; `null`: never (the order closes at expiry). */
    decideAfterMs: z.number().int().min(0).nullable().default(2_000),
    decision: z.enum(['paid', 'failed']).default('paid'),
    /** The paymentResult code of a failed decision. */
    failCode: z.string().default('USER_BALANCE_NOT_ENOUGH'),
    notify: z
      .object({
        mode: z.enum(['none', 'on-time', 'late']).default('on-time'),
        /** How late a `late` notification goes out after the decision. */
        lateMs: z.number().int().min(0).default(30_000),
        /** Extra copies of the notification, sent right after the first. */
        duplicates: z.number().int().min(0).default(0),
        /** Inquiries keep answering "in process" this long after the decision (the notification comes first). */
        inquiryLagMs: z.number().int().min(0).default(0),
      })
      .prefault({}),
    /** The first N cancel requests answer U UNKNOWN_EXCEPTION (and change nothing) before one succeeds. */
    cancelUnknownTimes: z.number().int().min(0).default(0),
    /**
     * The payment code the merchant scanned (user-presented pays only): `expired` makes the pay that
     * creates the order answer F EXPIRED_CODE, and the order is failed at once, never charged.
     */
    payCode: z.enum(['valid', 'expired']).default('valid'),
    /**
     * Scripts the successive `pay` calls of this order only (`'none'` for a clean answer). Past its
     * end, pay calls fall back to `faults`. Other APIs use `faults` alone.
     */
    payFaults: z.array(ScriptedFault).default([]),
    faults: FaultSpec.optional(),
  })
  .strict();
export type Scenario = z.output<typeof Scenario>;
export type ScenarioInput = z.input<typeof Scenario>;

const FAILURE_CODES = ['USER_BALANCE_NOT_ENOUGH', 'RISK_REJECT', 'USER_STATUS_ABNORMAL', 'EXPIRED_CODE'];

interface MixEntry {
  label: string;
  weight: number;
  draw(random: Random): ScenarioInput;
}

/**
 * `realistic`: most orders pay within seconds and notify on time; some fail; some notify late or never;
 * some orders appear late; some never finish and close at expiry; a few get duplicated or early
 * notifications, or a cancel that needs retries.
 */
const REALISTIC: readonly MixEntry[] = [
  { label: 'pays-quickly', weight: 55, draw: (r) => ({ decideAfterMs: between(r, 500, 8_000) }) },
  {
    label: 'pays-late-notification',
    weight: 6,
    draw: (r) => ({
      decideAfterMs: between(r, 1_000, 10_000),
      notify: { mode: 'late', lateMs: between(r, 20_000, 120_000) },
    }),
  },
  {
    label: 'pays-no-notification',
    weight: 5,
    draw: (r) => ({ decideAfterMs: between(r, 1_000, 20_000), notify: { mode: 'none' } }),
  },
  {
    label: 'fails',
    weight: 10,
    draw: (r) => ({
      decideAfterMs: between(r, 500, 10_000),
      decision: 'failed',
      failCode: pick(r, FAILURE_CODES),
    }),
  },
  { label: 'never-finishes', weight: 8, draw: () => ({ decideAfterMs: null }) },
  {
    label: 'appears-late',
    weight: 7,
    draw: (r) => {
      const appear = between(r, 2_000, 10_000);
      return { appearAfterMs: appear, decideAfterMs: appear + between(r, 500, 5_000) };
    },
  },
  { label: 'pays-near-expiry', weight: 4, draw: (r) => ({ decideAfterMs: between(r, 45_000, 58_000) }) },
  {
    label: 'duplicate-notification',
    weight: 3,
    draw: (r) => ({
      decideAfterMs: between(r, 500, 5_000),
      notify: { mode: 'on-time', duplicates: between(r, 1, 3) },
    }),
  },
  {
    label: 'notification-before-inquiry',
    weight: 1,
    draw: (r) => ({
      decideAfterMs: between(r, 500, 5_000),
      notify: { mode: 'on-time', inquiryLagMs: between(r, 3_000, 8_000) },
    }),
  },
  {
    label: 'never-finishes-slow-cancel',
    weight: 1,
    draw: (r) => ({ decideAfterMs: null, cancelUnknownTimes: between(r, 1, 3) }),
  },
];

/** A `realistic` entry under another weight, for mixes that reuse its slower paths. */
function fromRealistic(label: string, weight: number): MixEntry {
  const entry = REALISTIC.find((e) => e.label === label);
  if (!entry) throw new Error(`realistic mix has no entry ${label}`);
  return { ...entry, weight };
}

/**
 * `checkout`: what a merchant's pay sees. Most wallets decide at once (the pay answers S or F);
 * the rest answer U and take the realistic mix's slower paths; a few pays are lost on the way in
 * (never processed) or on the way back (processed, answer lost).
 */
const CHECKOUT: readonly MixEntry[] = [
  { label: 'pays-at-once', weight: 57, draw: () => ({ decideAfterMs: 0 }) },
  {
    label: 'fails-at-once',
    weight: 6,
    draw: (r) => ({
      decideAfterMs: 0,
      decision: 'failed',
      failCode: pick(
        r,
        FAILURE_CODES.filter((code) => code !== 'EXPIRED_CODE'),
      ),
    }),
  },
  { label: 'expired-code', weight: 2, draw: () => ({ payCode: 'expired' }) },
  fromRealistic('pays-quickly', 8),
  fromRealistic('pays-late-notification', 4),
  fromRealistic('pays-no-notification', 3),
  fromRealistic('fails', 3),
  fromRealistic('never-finishes', 5),
  fromRealistic('appears-late', 4),
  fromRealistic('pays-near-expiry', 2),
  fromRealistic('never-finishes-slow-cancel', 1),
  {
    label: 'pay-dropped',
    weight: 3,
    draw: () => ({ decideAfterMs: 0, payFaults: ['drop-request'] }),
  },
  {
    label: 'pay-answer-lost',
    weight: 2,
    draw: () => ({ decideAfterMs: 0, payFaults: ['reset'] }),
  },
];

export const MIXES = { realistic: REALISTIC, checkout: CHECKOUT } as const;
export type MixName = keyof typeof MIXES;

/** Draws one scenario from a mix with the given random stream. */
export function drawScenario(mix: MixName, random: Random): Scenario {
  const entries = MIXES[mix];
  const total = entries.reduce((sum, e) => sum + e.weight, 0);
  let roll = random() * total;
  for (const entry of entries) {
    roll -= entry.weight;
    if (roll < 0) return Scenario.parse({ ...entry.draw(random), label: entry.label });
  }
  const last = entries[entries.length - 1] as MixEntry;
  return Scenario.parse({ ...last.draw(random), label: last.label });
}

/** Draws a scenario of one named entry of a mix (for tests that need each entry). */
export function drawScenarioOf(mix: MixName, label: string, random: Random): Scenario {
  const entry = MIXES[mix].find((e) => e.label === label);
  if (!entry) throw new Error(`mix ${mix} has no entry ${label}`);
  return Scenario.parse({ ...entry.draw(random), label: entry.label });
}

/** The labels of a mix, for reports and tests. */
export function mixLabels(mix: MixName): string[] {
  return MIXES[mix].map((e) => e.label);
}
