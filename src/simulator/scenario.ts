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
] as const;
export const FaultKind = z.enum(FAULT_KINDS);
export type FaultKind = z.infer<typeof FaultKind>;

/**
 * Faults, per scenario or global. `rates` are per-call probabilities, drawn from a seeded stream per
 * payment and call, so a run reproduces from its seed. `sequence` scripts the first calls to an order
 * exactly (`'none'` for a clean answer), for tests that need one precise fault.
 */
export const FaultSpec = z
  .object({
    rates: z.partialRecord(FaultKind, z.number().min(0).max(1)).default({}),
    sequence: z.array(z.union([FaultKind, z.literal('none')])).default([]),
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

export const MIXES = { realistic: REALISTIC } as const;
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
