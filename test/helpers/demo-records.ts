import type { LifecycleOutcome } from '../../src/index.js';
import type { OrderTruth } from '../../src/simulator/index.js';

/** An outcome for the demo's report and reconciliation: decided by an inquiry at 0 unless `fields` say. */
export function outcomeRecord(
  id: string,
  status: LifecycleOutcome['status'],
  fields: Partial<LifecycleOutcome> = {},
): LifecycleOutcome {
  return {
    status,
    paymentRequestId: id,
    decidedBy: { source: 'inquiry', level: 'payment', code: 'X' },
    details: {},
    inquiries: 1,
    cancelAttempts: 0,
    decidedAt: 0,
    lateNotifications: [],
    ...fields,
  };
}

/** The simulator's truth for one order: still processing, created at 0, expiring at 60 s, unless `fields` say. */
export function truthRecord(id: string, fields: Partial<OrderTruth> = {}): OrderTruth {
  return {
    paymentRequestId: id,
    paymentId: `P${id}`,
    amount: { currency: 'JPY', value: '100' },
    status: 'processing',
    charged: false,
    refunded: false,
    cancelled: false,
    label: 'test',
    createdAt: 0,
    expiresAt: 60_000,
    cancelRequests: 0,
    ...fields,
  };
}
