import { z } from 'zod';
import { Amount, DateTime, Id } from '../protocol/common.js';

/** What `engine.track()` takes: a payment whose result is unknown. */
export const TrackInput = z
  .object({
    paymentRequestId: Id,
    paymentId: Id.optional(),
    amount: Amount.optional(),
    /** The `paymentExpiryTime` sent with `pay`: ISO 8601 with an offset, or epoch ms. */
    paymentExpiryTime: z.union([DateTime, z.number().int().positive()]).optional(),
    /** When the payment was created (epoch ms); default now. The cancel window is counted from it. */
    createdAt: z.number().int().positive().optional(),
    /**
     * The wallet the payment went to, from the caller's routing: the adaptive schedule learns per
     * wallet. Without it the first answer's `pspId` is taken.
     */
    walletKey: Id.optional(),
    /** Overrides of the engine's policy for this payment (validated with it as a whole). */
    policy: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export type TrackInput = z.input<typeof TrackInput>;
