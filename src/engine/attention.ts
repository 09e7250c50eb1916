import { z } from 'zod';
import type { AttentionReason } from '../../machines/outcome.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import { Id } from '../protocol/common.js';
import {
  ATTENTION_ACTIONS,
  type AttentionItem,
  type AttentionResolution,
  type AuditEntry,
  type LifecycleRecord,
  type LifecycleStore,
} from '../stores/store.js';
import { parseOrThrow } from '../validate.js';

/** What a person gives when they record what they did about an attention item. */
export const ResolveAttentionInput = z
  .object({
    action: z.enum(ATTENTION_ACTIONS),
    // Trimmed first, so that a note of spaces counts as no note: the next person needs to read why.
    note: z.string().trim().min(1, 'say what was done').max(500),
    by: z.string().trim().min(1, 'say who did it').max(100),
  })
  .strict();
export type ResolveAttentionInput = z.input<typeof ResolveAttentionInput>;

/** One attention item as a person works it: why it stopped, how much, how long ago, and its history. */
export interface AttentionView {
  paymentRequestId: string;
  reason: AttentionReason;
  amount?: { currency: string; value: string };
  /** When the lifecycle decided it needs a person (epoch ms). */
  decidedAt: number;
  /** How long it has waited, by the clock the view was made with. */
  ageMs: number;
  audit: AuditEntry[];
  resolution?: AttentionResolution;
}

/** The audit event a resolution writes; its `code` is the action. */
export const ATTENTION_RESOLVED_EVENT = 'attention-resolved';

export function attentionViewOf(item: AttentionItem, audit: AuditEntry[], now: number): AttentionView {
  const { record } = item;
  const outcome = record.outcome;
  const decidedAt = outcome?.decidedAt ?? record.updatedAt;
  const paid = outcome?.details.paymentAmount ?? record.input.amount;
  const view: AttentionView = {
    paymentRequestId: record.paymentRequestId,
    // Every attention outcome the machine makes names its reason; one that does not leaves what
    // Alipay+ holds unknown, which is what an integration fault means too.
    reason: outcome?.attentionReason ?? 'integration-fault',
    decidedAt,
    ageMs: Math.max(0, now - decidedAt),
    audit,
  };
  if (paid) view.amount = { currency: paid.currency, value: paid.value };
  if (item.resolution) view.resolution = item.resolution;
  return view;
}

/** The attention items with their audit history, oldest decision first; open ones unless `all`. */
export async function listAttention(
  store: LifecycleStore,
  now: number,
  options: { all?: boolean } = {},
): Promise<AttentionView[]> {
  const items = await store.attentionItems(options.all ? { all: true } : {});
  const views: AttentionView[] = [];
  for (const item of items) {
    views.push(attentionViewOf(item, await store.audit(item.record.paymentRequestId), now));
  }
  return views;
}

/** One attention item (open or resolved) with its audit history, or undefined when it is none. */
export async function findAttention(
  store: LifecycleStore,
  paymentRequestId: string,
  now: number,
): Promise<AttentionView | undefined> {
  const item = (await store.attentionItems({ all: true })).find(
    (i) => i.record.paymentRequestId === paymentRequestId,
  );
  return item && attentionViewOf(item, await store.audit(paymentRequestId), now);
}

/**
 * One attention item (open or resolved) with its audit history. Refused: an unknown payment
 * (`INVALID_INPUT`), one whose outcome is not attention (`ATTENTION_NOT_OPEN`, naming its status).
 */
export async function requireAttention(
  store: LifecycleStore,
  paymentRequestId: string,
  now: number,
): Promise<AttentionView> {
  const id = parseOrThrow(Id, paymentRequestId, 'paymentRequestId');
  const view = await findAttention(store, id, now);
  if (view) return view;
  const record = await store.load(id);
  throw record ? notAttention(record) : unknownPayment(id);
}

/**
 * Records what a person did about an open attention item: the resolution and its audit entry, in
 * one transaction. The outcome and the lifecycle's snapshot stay as they are. Refused, with nothing
 * written: bad input and an unknown payment (`INVALID_INPUT`), a payment that is not an open
 * attention item (`ATTENTION_NOT_OPEN`).
 */
export async function resolveAttention(
  store: LifecycleStore,
  paymentRequestId: string,
  input: ResolveAttentionInput,
  at: number,
): Promise<{ resolution: AttentionResolution; reason: AttentionReason }> {
  const id = parseOrThrow(Id, paymentRequestId, 'paymentRequestId');
  const parsed = parseOrThrow(ResolveAttentionInput, input, 'attention resolution');
  const record = await store.load(id);
  if (!record) throw unknownPayment(id);
  const resolution: AttentionResolution = { paymentRequestId: id, ...parsed, at };
  // A final lifecycle never moves again: the entry goes from its final state to the same state.
  const audit: AuditEntry = {
    paymentRequestId: id,
    at,
    from: record.state,
    to: record.state,
    event: ATTENTION_RESOLVED_EVENT,
    code: parsed.action,
  };
  const answer = await store.resolveAttention(resolution, audit);
  if (answer === 'resolved')
    return { resolution, reason: record.outcome?.attentionReason ?? 'integration-fault' };
  if (answer === 'unknown') throw unknownPayment(id);
  if (answer === 'not-attention') throw notAttention(record);
  const earlier = (await findAttention(store, id, at))?.resolution;
  const who = earlier ? ` by ${earlier.by} at ${new Date(earlier.at).toISOString()} (${earlier.action})` : '';
  throw new AlipayPlusLifecycleError(
    'ATTENTION_NOT_OPEN',
    `payment ${id} was resolved already${who}: a resolution is recorded once; see its audit history`,
  );
}

function notAttention(record: LifecycleRecord): AlipayPlusLifecycleError {
  const status = record.final
    ? `ended ${record.outcome?.status ?? record.state}`
    : `is still in ${record.state}`;
  return new AlipayPlusLifecycleError(
    'ATTENTION_NOT_OPEN',
    `payment ${record.paymentRequestId} ${status}, not in attention: only a payment whose outcome is attention has an item to show or resolve`,
  );
}

function unknownPayment(id: string): AlipayPlusLifecycleError {
  return new AlipayPlusLifecycleError(
    'INVALID_INPUT',
    `payment ${id} is not known to this store: check the paymentRequestId and the store`,
  );
}
