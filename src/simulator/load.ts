import { z } from 'zod';
import type { FaultKind } from './scenario.js';

/**
 * How much Alipay+ can answer, for overload tests: a capacity (answers per simulated second) and
 * outage windows. A call past the capacity, or inside an outage, is not processed: it gets the
 * configured fault instead. `slow` overflow is the exception: the call is processed, and its answer
 * is held back.
 */
export const LoadSpec = z
  .object({
    /** Answers per simulated second; unset: no limit. */
    capacityPerSecond: z.number().positive().optional(),
    /** What a call past the capacity gets. */
    overflow: z.enum(['traffic-limit', 'http-503', 'slow']).default('traffic-limit'),
    /** `slow` overflow: real ms the answer is held back. */
    slowMs: z.number().int().min(0).default(3_000),
    /** Windows of simulated time (epoch ms, `from` included, `until` not) in which every call fails. */
    outages: z
      .array(
        z
          .object({
            from: z.number().int(),
            until: z.number().int(),
            fault: z.enum(['http-503', 'reset', 'timeout']).default('http-503'),
          })
          .strict()
          .refine((o) => o.until > o.from, { message: 'until must be after from' }),
      )
      .default([]),
  })
  .strict();
export type LoadSpec = z.output<typeof LoadSpec>;
export type LoadSpecInput = z.input<typeof LoadSpec>;

/** What the load model says of one call: go on, hold the answer back, or fail it unprocessed. */
export type LoadVerdict =
  | { kind: 'ok' }
  | { kind: 'slow'; ms: number }
  | { kind: 'fail'; fault: FaultKind; why: 'capacity' | 'outage' };

const OK: LoadVerdict = { kind: 'ok' };

/** The load model's state: the calls answered in the current simulated second. */
export interface LoadModel {
  verdict(now: number): LoadVerdict;
  set(spec: LoadSpecInput | undefined): void;
  readonly spec: LoadSpec | undefined;
}

export function createLoadModel(initial: LoadSpec | undefined): LoadModel {
  let spec = initial;
  let second = Number.NaN;
  let answered = 0;
  return {
    get spec() {
      return spec;
    },
    set(next) {
      spec = next === undefined ? undefined : LoadSpec.parse(next);
      answered = 0;
    },
    verdict(now) {
      if (!spec) return OK;
      const outage = spec.outages.find((o) => now >= o.from && now < o.until);
      if (outage) return { kind: 'fail', fault: outage.fault, why: 'outage' };
      if (spec.capacityPerSecond === undefined) return OK;
      const current = Math.floor(now / 1_000);
      if (current !== second) {
        second = current;
        answered = 0;
      }
      if (answered < spec.capacityPerSecond) {
        answered += 1;
        return OK;
      }
      if (spec.overflow === 'slow') return { kind: 'slow', ms: spec.slowMs };
      return { kind: 'fail', fault: spec.overflow, why: 'capacity' };
    },
  };
}
