// The engine when Alipay+ cannot keep up: a pay that never got a call slot before its cut-off fails
// without a call (nothing reached Alipay+), and cancels waiting to retry go soon after the incident
// brake releases instead of at the end of a wait that grew during the incident.
import { describe, expect, it } from 'vitest';
import type { CancelOutcome, InquiryOutcome, PayOutcome } from '../src/client/answers.js';
import { demoPayRequest } from '../src/demo/checkout.js';
import { createPaymentEngine, type LifecycleOutcome, memoryStore } from '../src/index.js';
import { eventually } from './helpers/notify-receiver.js';

const processing: InquiryOutcome = {
  kind: 'answer',
  raw: '{}',
  responseTime: '2026-01-01T00:00:00Z',
  result: { resultCode: 'SUCCESS', resultStatus: 'S' },
  paymentResult: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' },
};
const cancelled: CancelOutcome = {
  kind: 'answer',
  raw: '{}',
  responseTime: '2026-01-01T00:00:00Z',
  result: { resultCode: 'SUCCESS', resultStatus: 'S' },
};
const unavailable = { kind: 'no-result', reason: 'http-status', httpStatus: 503, detail: '503' } as const;
const idOf = (ref: object) => ('paymentRequestId' in ref ? String(ref.paymentRequestId) : '');

/** A user-presented pay that expires in `expiresInMs`. */
const payRequest = (id: string, expiresInMs: number) => ({
  ...demoPayRequest(id, 0, { currency: 'JPY', value: '100' }, Date.now(), 'user-presented'),
  paymentExpiryTime: new Date(Date.now() + expiresInMs).toISOString(),
});

describe('the engine under overload', () => {
  it('a pay still waiting for a call slot at its cut-off, with no pay ever sent, fails without any call', async () => {
    const sent: string[] = [];
    const engine = createPaymentEngine({
      client: {
        // The one slot is held by an inquiry that never answers.
        inquiryPayment: (ref) => {
          sent.push(`inquiry ${idOf(ref)}`);
          return new Promise<InquiryOutcome>(() => undefined);
        },
        cancelPayment: (ref) => {
          sent.push(`cancel ${idOf(ref)}`);
          return Promise.resolve(cancelled);
        },
        pay: (request) => {
          sent.push(`pay ${request.paymentRequestId}`);
          return new Promise<PayOutcome>(() => undefined);
        },
      },
      store: memoryStore(),
      maxConcurrentCalls: 1,
    });
    const outcomes: LifecycleOutcome[] = [];
    engine.on('settled', (outcome) => outcomes.push(outcome));
    await engine.start();
    try {
      const now = Date.now();
      await engine.track({
        paymentRequestId: 'HOLDER',
        createdAt: now - 1_000,
        paymentExpiryTime: now + 600_000,
      });
      await eventually(() => sent.length === 1);
      // Expires in 2 to 3 s (whole seconds): given up 1 s before, never sent.
      const view = await engine.pay(payRequest('STARVED', 3_000));
      expect(view.state).toBe('failed');
      expect(view.outcome).toMatchObject({
        status: 'failed',
        decidedBy: { source: 'pay', level: 'call', code: 'NO_RESULT:never-sent' },
      });
      await eventually(() => outcomes.some((o) => o.paymentRequestId === 'STARVED'));
      expect(sent).toEqual(['inquiry HOLDER']); // no pay, no inquiry, no cancel for STARVED
    } finally {
      await engine.stop();
    }
  });

  it('cancels waiting to retry after an outage go within seconds of the brake releasing', async () => {
    let down = true;
    const cancelsAt = new Map<string, number[]>();
    let releasedAt: number | undefined;
    const engine = createPaymentEngine({
      client: {
        inquiryPayment: async () => (down ? unavailable : processing),
        cancelPayment: async (ref) => {
          const list = cancelsAt.get(idOf(ref)) ?? [];
          list.push(Date.now());
          cancelsAt.set(idOf(ref), list);
          return down ? unavailable : cancelled;
        },
      },
      store: memoryStore(),
      brake: { windowMs: 1_000, minCalls: 10, minCallsPerSecond: 50 },
      // Every failed cancel waits a minute: without the recall, none would retry within this test.
      policy: { inquiryScheduleMs: [100], cancelRetryScheduleMs: [60_000], retryJitter: 'none' },
    });
    engine.on('brake', (event) => {
      if (!event.engaged) releasedAt = Date.now();
    });
    await engine.start();
    try {
      const now = Date.now();
      const expired = Array.from({ length: 20 }, (_, i) => `EXPIRED-${i}`);
      for (const id of expired)
        await engine.track({ paymentRequestId: id, createdAt: now - 61_000, paymentExpiryTime: now - 1_000 });
      // A payment still inside its expiry keeps polling: its answers are what the brake sees.
      await engine.track({ paymentRequestId: 'POLLING', createdAt: now, paymentExpiryTime: now + 600_000 });
      await eventually(() => expired.every((id) => cancelsAt.get(id)?.length === 1));
      await eventually(() => expired.every((id) => engine.get(id)?.state === 'cancelling.retryWait'));
      down = false; // Alipay+ answers again
      await eventually(() => releasedAt !== undefined, 5_000);
      await eventually(() => expired.every((id) => cancelsAt.get(id)?.length === 2), 8_000);
      const retried = expired.map((id) => (cancelsAt.get(id) as number[])[1] as number);
      // Within the 5 s spread after the release (a minute before their own schedule), and spread.
      expect(Math.max(...retried) - (releasedAt as number)).toBeLessThan(6_000);
      expect(new Set(retried).size).toBeGreaterThan(5);
      await eventually(() => expired.every((id) => engine.get(id)?.state === 'cancelled'));
    } finally {
      await engine.stop();
    }
  });
});
