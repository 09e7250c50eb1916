import { type DecisionSketch, isSketch, mergeSketches } from '../../machines/decision-model.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import type {
  AttentionResolution,
  AuditEntry,
  LifecycleRecord,
  LifecycleStore,
  LifecycleWrite,
  StoredNotification,
  WriteConflict,
} from './store.js';

/** The longest wallet key a store keeps a decision sketch under (the SQL stores' key column). */
export const MAX_WALLET_KEY_LENGTH = 64;

/**
 * Refuses a wallet key no store keeps a sketch under, before anything is written. Every store checks
 * with this one function, so that they refuse alike.
 */
export function checkWalletKey(walletKey: string): void {
  if (typeof walletKey !== 'string' || walletKey.length > MAX_WALLET_KEY_LENGTH)
    throw new AlipayPlusLifecycleError(
      'INVALID_INPUT',
      `a decision sketch's wallet key must be a string of at most ${MAX_WALLET_KEY_LENGTH} characters (got ${
        typeof walletKey === 'string' ? `${walletKey.length} characters` : typeof walletKey
      }): key sketches by a short wallet identifier ('' for every wallet together); nothing was stored`,
    );
}

/**
 * A stored sketch's JSON text as a sketch, or `undefined` when it does not parse or is not a sketch
 * of the current layout (a foreign or older value counts as none).
 */
export function parseStoredSketch(text: string | null | undefined): DecisionSketch | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return isSketch(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Keeps everything in memory: for tests and demos. It copies on the way in and out (as a real store
 * serialises), so that a test cannot pass only because an object was shared.
 */
export function memoryStore(): LifecycleStore {
  const lifecycles = new Map<string, LifecycleRecord>();
  const audits = new Map<string, AuditEntry[]>();
  const inbox = new Map<string, StoredNotification[]>();
  const resolutions = new Map<string, AttentionResolution>();
  const sketches = new Map<string, DecisionSketch>();
  const sketchRevisions = new Map<string, number>();
  const copy = <T>(value: T): T => structuredClone(value);

  return {
    async open() {},
    async close() {},
    async load(id) {
      const record = lifecycles.get(id);
      return record && copy(record);
    },
    async insert(record, audit) {
      if (lifecycles.has(record.paymentRequestId)) return false;
      lifecycles.set(record.paymentRequestId, copy(record));
      audits.set(record.paymentRequestId, copy(audit));
      return true;
    },
    async write(writes: LifecycleWrite[]) {
      const conflicts: WriteConflict[] = [];
      for (const write of writes) {
        const id = write.record.paymentRequestId;
        const current = lifecycles.get(id);
        if (!current || current.version !== write.expectedVersion) {
          conflicts.push({ paymentRequestId: id, expectedVersion: write.expectedVersion });
          continue;
        }
        lifecycles.set(id, copy(write.record));
        audits.get(id)?.push(...copy(write.audit));
        const applied = new Set(write.appliedNotifications);
        for (const n of inbox.get(id) ?? []) if (applied.has(n.id)) n.applied = true;
      }
      return conflicts;
    },
    async listResumable() {
      return [...lifecycles.values()].filter((r) => !r.final || !r.settledFired).map(copy);
    },
    async markSettled(id) {
      const record = lifecycles.get(id);
      if (record) record.settledFired = true;
    },
    async audit(id) {
      return copy(audits.get(id) ?? []);
    },
    async recordNotification(notification) {
      const list = inbox.get(notification.paymentRequestId) ?? [];
      if (!list.some((n) => n.id === notification.id)) list.push(copy(notification));
      inbox.set(notification.paymentRequestId, list);
    },
    async markNotificationApplied(id) {
      for (const list of inbox.values()) for (const n of list) if (n.id === id) n.applied = true;
    },
    async unappliedOfFinal() {
      const late: StoredNotification[] = [];
      for (const [id, list] of inbox) {
        if (lifecycles.get(id)?.final) late.push(...list.filter((n) => !n.applied));
      }
      return copy(late);
    },
    async withUnappliedNotifications() {
      return [...inbox].filter(([, list]) => list.some((n) => !n.applied)).map(([id]) => id);
    },
    async unappliedNotifications(id) {
      return copy((inbox.get(id) ?? []).filter((n) => !n.applied));
    },
    async notifications(id) {
      return copy(inbox.get(id) ?? []);
    },
    async list(limit = 1_000) {
      return [...lifecycles.values()]
        .sort((a, b) => b.createdAt - a.createdAt)
        .slice(0, limit)
        .map(copy);
    },
    async attentionItems(options = {}) {
      return [...lifecycles.values()]
        .filter((r) => r.final && r.outcome?.status === 'attention')
        .filter((r) => options.all || !resolutions.has(r.paymentRequestId))
        .sort(
          (a, b) =>
            (a.outcome?.decidedAt ?? 0) - (b.outcome?.decidedAt ?? 0) ||
            (a.paymentRequestId < b.paymentRequestId ? -1 : 1),
        )
        .map((r) => {
          const resolution = resolutions.get(r.paymentRequestId);
          return resolution ? { record: copy(r), resolution: copy(resolution) } : { record: copy(r) };
        });
    },
    async resolveAttention(resolution, audit) {
      const record = lifecycles.get(resolution.paymentRequestId);
      if (!record) return 'unknown';
      if (!record.final || record.outcome?.status !== 'attention') return 'not-attention';
      if (resolutions.has(resolution.paymentRequestId)) return 'already-resolved';
      resolutions.set(resolution.paymentRequestId, copy(resolution));
      audits.get(resolution.paymentRequestId)?.push(copy(audit));
      return 'resolved';
    },
    async stateCounts() {
      const counts: Record<string, number> = {};
      for (const r of lifecycles.values()) {
        const key = r.final ? (r.outcome?.status ?? r.state) : r.state;
        counts[key] = (counts[key] ?? 0) + 1;
      }
      return counts;
    },
    async decisionSketches(walletKeys) {
      const wanted = walletKeys ? new Set(walletKeys) : undefined;
      return new Map(
        [...sketches]
          .filter(([key]) => !wanted || wanted.has(key))
          .map(([key, sketch]) => [key, copy(sketch)]),
      );
    },
    async decisionSketchRevisions() {
      return new Map(sketchRevisions);
    },
    async mergeDecisionSketch(walletKey, newer) {
      checkWalletKey(walletKey);
      // Synchronous from the read to the write: no other merge can come in between.
      const merged = mergeSketches(sketches.get(walletKey), newer);
      sketches.set(walletKey, copy(merged));
      sketchRevisions.set(walletKey, (sketchRevisions.get(walletKey) ?? 0) + 1);
      return merged;
    },
  };
}
