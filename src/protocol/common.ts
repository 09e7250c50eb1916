import { z } from 'zod';

/**
 * Wire conventions shared by every Alipay+ call: every scalar is a JSON string, optional fields are
 * omitted or `null`, and unknown extra fields are kept (objects are loose), so a newer Alipay+ field
 * never turns a real answer into a schema failure.
 */

/** The longest ID Alipay+ accepts (`paymentRequestId`, `paymentId`, `acquirerId`, `pspId`, ...). */
export const MAX_ID_LENGTH = 64;

/** A non-empty identifier of at most 64 characters. */
export const Id = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_ID_LENGTH, `must be at most ${MAX_ID_LENGTH} characters`);

/** Optional on the wire means omitted or `null`. */
export const optional = <T extends z.ZodType>(schema: T) => schema.nullish();

export const ResultStatus = z.enum(['S', 'F', 'U']);
export type ResultStatus = z.infer<typeof ResultStatus>;

/** The outcome of a call (`result`) or of a payment (`paymentResult`). */
export const Result = z.looseObject({
  resultCode: z.string().min(1).max(64),
  resultStatus: ResultStatus,
  resultMessage: optional(z.string().max(256)),
});
export type Result = z.infer<typeof Result>;

/** ISO 4217 alphabetic code. */
export const Currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as "JPY"');

/** An amount in the currency's minor unit, as a string of digits. */
export const AmountValue = z
  .string()
  .regex(/^\d{1,20}$/, 'must be a string of digits in the minor unit, such as "100"');

export const Amount = z.looseObject({ currency: Currency, value: AmountValue });
export type Amount = z.infer<typeof Amount>;

/** ISO 8601 date-time with an offset or `Z`, optionally with fractional seconds. */
export const DateTime = z
  .string()
  .regex(
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/,
    'must be ISO 8601 with an offset, such as "2020-01-01T12:01:01+08:30"',
  )
  .refine((value) => !Number.isNaN(Date.parse(value)), 'must be a real date and time');

export const SettlementQuote = z.looseObject({
  quoteId: Id,
  quoteCurrencyPair: z.string().min(1),
  quotePrice: z.string().min(1),
  quoteStartTime: optional(DateTime),
  quoteExpiryTime: optional(DateTime),
  baseCurrency: optional(Currency),
  quoteUnit: optional(z.string()),
});
export type SettlementQuote = z.infer<typeof SettlementQuote>;

/** A reference to one payment: by the ACQP's own request ID or by Alipay+'s payment ID. */
export const PaymentRef = z.union([
  z.object({ paymentRequestId: Id }).strict(),
  z.object({ paymentId: Id }).strict(),
]);
export type PaymentRef = z.infer<typeof PaymentRef>;
