import { describe, expect, it } from 'vitest';
import { defaultCancelWindowEnd, resolveLifecycleInput } from '../machines/index.js';
import { answers, baseInput, LifecycleHarness, notifications, T0 } from './helpers/lifecycle-harness.js';

const sentTimes = (h: LifecycleHarness) => h.inquiries().map((c) => c.sentAt - T0);

/** Drives a lifecycle whose every inquiry answers S/U into cancelling; returns it with the cancel pending. */
async function intoCancelling(extra = {}) {
  const h = new LifecycleHarness(baseInput(extra));
  h.autoInquiry = () => answers.processing();
  await h.runUntilCallOrFinal();
  expect(h.state()).toBe('cancelling.requesting');
  h.autoInquiry = undefined;
  return h;
}

describe('polling schedule', () => {
  it('grows per the default schedule, the last interval repeating, with an inquiry at expiry', async () => {
    const h = await intoCancelling();
    expect(sentTimes(h)).toEqual([
      2_000, 4_000, 7_000, 10_000, 15_000, 20_000, 30_000, 40_000, 50_000, 60_000,
    ]);
  });

  it('is clamped so that an inquiry happens exactly at expiresAt', async () => {
    const h = await intoCancelling({ expiresAt: T0 + 9_000 });
    expect(sentTimes(h)).toEqual([2_000, 4_000, 7_000, 9_000]);
  });

  it('measures each interval from the previous answer, not from the send', async () => {
    const h = new LifecycleHarness(baseInput());
    await h.runUntilCallOrFinal();
    await h.advance(1_500); // the answer takes 1.5 s
    await h.answer(answers.processing());
    expect(h.context().nextInquiryAt).toBe(T0 + 3_500 + 2_000);
  });

  it('follows a custom schedule', async () => {
    const h = await intoCancelling({ policy: { inquiryScheduleMs: [1_000, 5_000] }, expiresAt: T0 + 20_000 });
    expect(sentTimes(h)).toEqual([1_000, 6_000, 11_000, 16_000, 20_000]);
  });

  it('REQUEST_TRAFFIC_EXCEED_LIMIT backs off harder than an ordinary U', async () => {
    const h = new LifecycleHarness(baseInput());
    await h.runUntilCallOrFinal();
    await h.answer(answers.unknown('REQUEST_TRAFFIC_EXCEED_LIMIT'));
    const limited = h.context().nextInquiryAt - h.now();
    const u = new LifecycleHarness(baseInput());
    await u.runUntilCallOrFinal();
    await u.answer(answers.unknown());
    const ordinary = u.context().nextInquiryAt - u.now();
    expect(ordinary).toBe(2_000);
    expect(limited).toBe(6_000);
  });

  it('sends paymentId once it is known, and paymentRequestId before', async () => {
    const h = new LifecycleHarness(baseInput());
    await h.runUntilCallOrFinal();
    expect(h.pending()?.input.ref).toEqual({ paymentRequestId: 'REQ-1' });
    await h.answer({ ...answers.processing(), paymentId: 'PAY-77' });
    await h.runUntilCallOrFinal();
    expect(h.pending()?.input.ref).toEqual({ paymentId: 'PAY-77' });
    expect(h.pending()?.input.attempt).toBe(2);
  });
});

describe('expiry and the last look', () => {
  it('never throws away an answer in flight at expiry: a success after expiry is a success', async () => {
    const h = new LifecycleHarness(baseInput({ expiresAt: T0 + 5_000 }));
    await h.runUntilCallOrFinal(); // inquiry at 2 s
    await h.answer(answers.processing());
    await h.runUntilCallOrFinal(); // inquiry at 4 s
    expect(h.pending()?.sentAt).toBe(T0 + 4_000);
    await h.advance(3_000); // expiry passes while the inquiry is in flight
    expect(h.state()).toBe('awaitingResult.inquiring');
    await h.answer(answers.paid());
    expect(h.outcome()?.status).toBe('succeeded');
    expect(h.cancels()).toHaveLength(0);
  });

  it('an answer that arrives after expiry to an inquiry sent before it gets one last look at once', async () => {
    const h = new LifecycleHarness(baseInput({ expiresAt: T0 + 5_000 }));
    await h.runUntilCallOrFinal();
    await h.answer(answers.processing());
    await h.runUntilCallOrFinal(); // sent at 4 s
    await h.advance(3_000); // 7 s, past expiry
    await h.answer(answers.processing());
    expect(h.state()).toBe('awaitingResult.pending');
    await h.runUntilCallOrFinal();
    expect(h.pending()?.sentAt).toBe(T0 + 7_000);
    await h.answer(answers.processing());
    expect(h.state()).toBe('cancelling.requesting');
    expect(h.inquiries().filter((c) => c.sentAt >= T0 + 5_000)).toHaveLength(1);
  });

  it('maxInquiries reached before expiry cancels without waiting for expiry', async () => {
    const h = await intoCancelling({ policy: { maxInquiries: 3 } });
    expect(sentTimes(h)).toEqual([2_000, 4_000, 7_000]);
    expect(h.context().cancel?.reason).toBe('max-inquiries');
  });

  it('awaitNotificationAfter stops polling, waits for the notification until expiry, then looks once more', async () => {
    const h = new LifecycleHarness(baseInput({ policy: { awaitNotificationAfter: 2 } }));
    h.autoInquiry = () => answers.processing();
    await h.runUntilCallOrFinal();
    await h.runUntilCallOrFinal();
    expect(h.state()).toBe('cancelling.requesting');
    expect(sentTimes(h)).toEqual([2_000, 4_000, 60_000]);
  });

  it('a notification while waiting for it settles the payment without another inquiry', async () => {
    const h = new LifecycleHarness(baseInput({ policy: { awaitNotificationAfter: 1 } }));
    await h.runUntilCallOrFinal();
    await h.answer(answers.processing());
    expect(h.state()).toBe('awaitingNotification.waiting');
    await h.advance(20_000);
    await h.notify(notifications.paid());
    expect(h.outcome()).toMatchObject({ status: 'succeeded', decidedBy: { source: 'notification' } });
    expect(h.inquiries()).toHaveLength(1);
  });

  it('the last look after waiting can still find the payment paid', async () => {
    const h = new LifecycleHarness(baseInput({ policy: { awaitNotificationAfter: 1 } }));
    await h.runUntilCallOrFinal();
    await h.answer(answers.processing());
    await h.runUntilCallOrFinal();
    expect(h.state()).toBe('awaitingNotification.lastLook');
    expect(h.pending()?.sentAt).toBe(T0 + 60_000);
    await h.answer(answers.paid());
    expect(h.outcome()?.status).toBe('succeeded');
  });
});

describe('notifications', () => {
  it('S during an inquiry settles as succeeded and aborts the inquiry in flight', async () => {
    const h = new LifecycleHarness(baseInput());
    await h.runUntilCallOrFinal();
    const inflight = h.pending();
    await h.notify(notifications.paid({ customerId: 'C-1' }));
    expect(inflight?.aborted).toBe(true);
    expect(h.outcome()).toMatchObject({
      status: 'succeeded',
      paymentId: 'PAY-1',
      decidedBy: { source: 'notification', code: 'SUCCESS', status: 'S' },
      details: { customerId: 'C-1' },
    });
  });

  it('F ORDER_IS_CLOSED settles as closed, any other F as failed', async () => {
    const closed = new LifecycleHarness(baseInput());
    await closed.notify(notifications.closed());
    expect(closed.outcome()?.status).toBe('closed');
    const failed = new LifecycleHarness(baseInput());
    await failed.notify(notifications.failed('USER_BALANCE_NOT_ENOUGH'));
    expect(failed.outcome()).toMatchObject({
      status: 'failed',
      decidedBy: { code: 'USER_BALANCE_NOT_ENOUGH' },
    });
  });

  it('an amount that differs from the known amount asks for a person', async () => {
    const h = new LifecycleHarness(baseInput());
    await h.notify(notifications.paid({ paymentAmount: { currency: 'JPY', value: '1000' } }));
    expect(h.outcome()).toMatchObject({
      status: 'attention',
      attentionReason: 'amount-mismatch',
      decidedBy: { code: 'AMOUNT_MISMATCH' },
    });
  });

  it('a different currency, or another paymentRequestId, asks for a person too', async () => {
    const currency = new LifecycleHarness(baseInput());
    await currency.notify(notifications.paid({ paymentAmount: { currency: 'USD', value: '100' } }));
    expect(currency.outcome()?.attentionReason).toBe('amount-mismatch');
    const other = new LifecycleHarness(baseInput());
    await other.notify(notifications.paid({ paymentRequestId: 'REQ-OTHER' }));
    expect(other.outcome()?.attentionReason).toBe('amount-mismatch');
  });

  it('the same amount written with leading zeros is the same amount', async () => {
    const h = new LifecycleHarness(baseInput());
    await h.notify(notifications.paid({ paymentAmount: { currency: 'JPY', value: '0100' } }));
    expect(h.outcome()?.status).toBe('succeeded');
  });

  it('in cancelling a notification is recorded as late, flagged when it says S, and the cancel wins', async () => {
    const h = await intoCancelling();
    await h.notify(notifications.paid());
    expect(h.state()).toBe('cancelling.requesting');
    await h.notify(notifications.failed());
    await h.answer(answers.cancelOk());
    expect(h.outcome()).toMatchObject({
      status: 'cancelled',
      decidedBy: { source: 'cancel', code: 'SUCCESS' },
    });
    expect(h.outcome()?.lateNotifications).toEqual([
      expect.objectContaining({ resultStatus: 'S', flagged: true, state: 'cancelling' }),
      expect.objectContaining({ resultStatus: 'F', flagged: false }),
    ]);
  });
});

describe('merchant close', () => {
  it('from pending: cancels now, with reason closed-by-merchant', async () => {
    const h = new LifecycleHarness(baseInput());
    await h.advance(500);
    await h.close();
    expect(h.state()).toBe('cancelling.requesting');
    expect(h.context().cancel).toMatchObject({ reason: 'closed-by-merchant', startedAt: T0 + 500 });
    expect(h.inquiries()).toHaveLength(0);
  });

  it('from inquiring: aborts the inquiry and cancels', async () => {
    const h = new LifecycleHarness(baseInput());
    await h.runUntilCallOrFinal();
    const inflight = h.pending();
    await h.close();
    expect(inflight?.aborted).toBe(true);
    expect(h.state()).toBe('cancelling.requesting');
    await h.answer(answers.cancelOk());
    expect(h.outcome()).toMatchObject({
      status: 'cancelled',
      cancelReason: 'closed-by-merchant',
      cancelAttempts: 1,
    });
  });

  it('while cancelling: changes nothing', async () => {
    const h = await intoCancelling();
    await h.close();
    expect(h.cancels()).toHaveLength(1);
    expect(h.context().cancel?.reason).toBe('expired');
  });
});

describe('cancelling', () => {
  it('cancels by paymentRequestId, whatever reference the inquiries used', async () => {
    const h = new LifecycleHarness(baseInput());
    h.autoInquiry = () => ({ ...answers.processing(), paymentId: 'PAY-5' });
    await h.runUntilCallOrFinal();
    expect(h.pending()?.kind).toBe('cancel');
    expect(h.pending()?.input.ref).toEqual({ paymentRequestId: 'REQ-1' });
  });

  it('U and no result are retried per the schedule for a whole day, then attention when the window closes', async () => {
    const h = await intoCancelling();
    h.autoCancel = (call) => (call.input.attempt % 2 ? answers.cancelU() : answers.cancelNoResult());
    await h.answer(answers.cancelU());
    await h.runUntilCallOrFinal();
    const windowEnd = defaultCancelWindowEnd(T0);
    expect(h.outcome()).toMatchObject({
      status: 'attention',
      attentionReason: 'cancel-window-closed',
      decidedAt: windowEnd,
      cancelReason: 'expired',
    });
    const times = h.cancels().map((c) => c.sentAt - (T0 + 60_000));
    expect(times.slice(0, 8)).toEqual([0, 1_000, 3_000, 8_000, 18_000, 48_000, 108_000, 408_000]);
    expect(h.cancels().every((c) => c.sentAt < windowEnd)).toBe(true);
    // 11:01 → 00:15 UTC+8 at 5-minute steps after the first minutes: about 158 attempts.
    expect(h.cancels().length).toBeGreaterThan(150);
    expect(h.outcome()?.cancelAttempts).toBe(h.cancels().length);
  });

  it('U then S: cancelled after the retry', async () => {
    const h = await intoCancelling();
    await h.answer(answers.cancelU());
    expect(h.state()).toBe('cancelling.retryWait');
    await h.runUntilCallOrFinal();
    expect(h.pending()?.sentAt).toBe(T0 + 61_000);
    await h.answer(answers.cancelOk());
    expect(h.outcome()).toMatchObject({ status: 'cancelled', cancelAttempts: 2 });
  });

  it('REQUEST_TRAFFIC_EXCEED_LIMIT on a cancel backs off harder', async () => {
    const h = await intoCancelling();
    await h.answer(answers.cancelU('REQUEST_TRAFFIC_EXCEED_LIMIT'));
    expect((h.context().cancel?.nextAttemptAt ?? 0) - h.now()).toBe(3_000);
  });

  it('F answers are retried maxCancelFailures times, then attention', async () => {
    const h = await intoCancelling({ policy: { maxCancelFailures: 3 } });
    h.autoCancel = () => answers.cancelF('PROCESS_FAIL');
    await h.answer(answers.cancelF('PROCESS_FAIL'));
    await h.runUntilCallOrFinal();
    expect(h.cancels()).toHaveLength(3);
    expect(h.outcome()).toMatchObject({
      status: 'attention',
      attentionReason: 'cancel-refused',
      decidedBy: { source: 'cancel', code: 'PROCESS_FAIL' },
    });
  });

  it('an F then an S is cancelled', async () => {
    const h = await intoCancelling();
    await h.answer(answers.cancelF('ACCESS_DENIED'));
    await h.runUntilCallOrFinal();
    await h.answer(answers.cancelOk());
    expect(h.outcome()?.status).toBe('cancelled');
  });

  it('CANCEL_WINDOW_EXCEED asks for a refund instead', async () => {
    const h = await intoCancelling();
    await h.answer(answers.cancelF('CANCEL_WINDOW_EXCEED'));
    expect(h.outcome()).toMatchObject({ status: 'attention', attentionReason: 'refund-required' });
    expect(h.cancels()).toHaveLength(1);
  });
});

describe('restore and RESUME', () => {
  it('persisted mid-wait, restored later: the next inquiry fires at its original absolute time', async () => {
    const input = baseInput();
    const h = new LifecycleHarness(input);
    await h.runUntilCallOrFinal(); // inquiry 1 at 2 s
    await h.answer(answers.processing());
    await h.runUntilCallOrFinal(); // inquiry 2 at 4 s
    await h.answer(answers.processing());
    expect(h.context().nextInquiryAt).toBe(T0 + 7_000);
    await h.advance(1_000); // 5 s: persisted mid-wait
    const json = h.persist();
    h.stop();

    const restored = await LifecycleHarness.restore(input, json, T0 + 6_000);
    expect(restored.state()).toBe('awaitingResult.pending');
    await restored.runUntilCallOrFinal();
    expect(restored.inquiries()[0]?.sentAt).toBe(T0 + 7_000);
    expect(restored.inquiries()[0]?.input.attempt).toBe(3);
  });

  it('a deadline that passed while the process was down fires at once', async () => {
    const input = baseInput();
    const h = new LifecycleHarness(input);
    const json = h.persist();
    h.stop();
    const restored = await LifecycleHarness.restore(input, json, T0 + 30_000);
    await restored.advance(0);
    expect(restored.state()).toBe('awaitingResult.inquiring');
    expect(restored.pending()?.sentAt).toBe(T0 + 30_000);
  });

  it('restored after expiry, the lifecycle takes its last look at once and then cancels', async () => {
    const input = baseInput();
    const h = new LifecycleHarness(input);
    const json = h.persist();
    h.stop();
    const restored = await LifecycleHarness.restore(input, json, T0 + 600_000);
    restored.autoInquiry = () => answers.processing();
    await restored.runUntilCallOrFinal();
    expect(restored.state()).toBe('cancelling.requesting');
    expect(restored.pending()?.sentAt).toBe(T0 + 600_000);
    expect(restored.inquiries()).toHaveLength(1);
  });

  it('an inquiry in flight when the process died is sent again on restore, with the same attempt number', async () => {
    const input = baseInput();
    const h = new LifecycleHarness(input);
    await h.runUntilCallOrFinal();
    const json = h.persist();
    h.stop();
    const restored = await LifecycleHarness.restore(input, json, T0 + 2_500);
    expect(restored.state()).toBe('awaitingResult.inquiring');
    expect(restored.calls).toHaveLength(1);
    expect(restored.pending()?.input.attempt).toBe(1);
    await restored.answer(answers.paid());
    expect(restored.outcome()).toMatchObject({ status: 'succeeded', inquiries: 1 });
  });

  it('cancel retry waits are re-armed from their absolute time too', async () => {
    const input = baseInput();
    const h = await intoCancelling();
    await h.answer(answers.cancelU()); // next attempt at 61 s
    const json = h.persist();
    h.stop();
    const restored = await LifecycleHarness.restore(input, json, T0 + 60_500);
    expect(restored.state()).toBe('cancelling.retryWait');
    await restored.runUntilCallOrFinal();
    expect(restored.pending()?.sentAt).toBe(T0 + 61_000);
    expect(restored.pending()?.input.attempt).toBe(2);
  });

  it('the context survives JSON unchanged', async () => {
    const h = await intoCancelling();
    await h.notify(notifications.paid());
    const context = h.context();
    expect(JSON.parse(JSON.stringify(context))).toEqual(context);
  });
});

describe('input', () => {
  it('defaults: expiry one minute after creation, cancel window 00:15 UTC+8 the next day', () => {
    const resolved = resolveLifecycleInput({ paymentRequestId: 'R', createdAt: T0 });
    expect(resolved.expiresAt).toBe(T0 + 60_000);
    expect(new Date(resolved.cancelWindowEndsAt).toISOString()).toBe('2026-01-15T16:15:00.000Z');
    expect(resolved.policy.inquiryScheduleMs).toEqual([2_000, 2_000, 3_000, 3_000, 5_000, 5_000, 10_000]);
  });

  it.each([
    ['00:01 UTC+8', '2026-01-14T16:01:00Z', '2026-01-15T16:15:00.000Z'],
    ['23:59 UTC+8', '2026-01-15T15:59:00Z', '2026-01-15T16:15:00.000Z'],
    ['00:10 UTC+8 the next day', '2026-01-15T16:10:00Z', '2026-01-16T16:15:00.000Z'],
  ])(
    'a payment created at %s may be cancelled until 00:15 UTC+8 of the following day',
    (_name, created, end) => {
      expect(new Date(defaultCancelWindowEnd(Date.parse(created))).toISOString()).toBe(end);
    },
  );

  it.each([
    ['an ID of 65 characters', { paymentRequestId: 'x'.repeat(65) }, 'paymentRequestId'],
    ['an empty ID', { paymentRequestId: '' }, 'paymentRequestId'],
    ['an expiry before creation', { expiresAt: T0 - 1 }, 'expiresAt'],
    ['a decimal amount', { amount: { currency: 'JPY', value: '1.5' } }, 'amount.value'],
    ['an empty schedule', { policy: { inquiryScheduleMs: [] } }, 'policy.inquiryScheduleMs'],
    ['a zero maxInquiries', { policy: { maxInquiries: 0 } }, 'policy.maxInquiries'],
    ['an unknown policy knob', { policy: { maxInquires: 3 } }, 'policy'],
  ])('%s is refused with INVALID_INPUT naming the field', (_name, change, field) => {
    expect(() => resolveLifecycleInput({ ...baseInput(), ...(change as object) })).toThrowError(
      expect.objectContaining({ code: 'INVALID_INPUT', message: expect.stringContaining(field) }),
    );
  });
});

describe('restores that come back late', () => {
  it('a restore after the cancel window closed settles attention without sending another cancel', async () => {
    const input = baseInput({
      expiresAt: T0 + 60_000,
      cancelWindowEndsAt: T0 + 30 * 60_000,
      policy: { inquiryScheduleMs: [1_000], maxInquiries: 1, cancelRetryScheduleMs: [1_000, 3_600_000] },
    });
    const h = new LifecycleHarness(input);
    await h.runUntilCallOrFinal();
    await h.answer(answers.processing());
    await h.answer(answers.cancelU());
    const json = h.persist();
    h.stop();
    const restored = await LifecycleHarness.restore(input, json, T0 + 31 * 60_000);
    await restored.runUntilCallOrFinal();
    expect(restored.state()).toBe('attention');
    expect(restored.outcome()?.attentionReason).toBe('cancel-window-closed');
    expect(restored.cancels()).toHaveLength(0);
  });

  it('an inquiry re-sent by a restore after expiry is the last look: a non-final answer cancels', async () => {
    const input = baseInput();
    const h = new LifecycleHarness(input);
    await h.runUntilCallOrFinal(); // inquiry at 2 s, in flight
    const json = h.persist();
    h.stop();
    const restored = await LifecycleHarness.restore(input, json, T0 + 120_000);
    expect(restored.pending()?.sentAt).toBe(T0 + 120_000);
    await restored.answer(answers.processing());
    expect(restored.state()).toBe('cancelling.requesting');
    expect(restored.inquiries()).toHaveLength(1);
  });

  it('CANCEL_WINDOW_EXCEED is not counted as a refused cancel', async () => {
    const h = await intoCancelling();
    await h.answer(answers.cancelF('CANCEL_WINDOW_EXCEED'));
    expect(h.context().cancel?.failures).toBe(0);
  });
});

describe('a payment tracked after its creation', () => {
  it('keeps its absolute deadlines: the first inquiry is at createdAt + the first interval, or at once if that passed', async () => {
    const late = new LifecycleHarness(baseInput({ startedAt: T0 + 1_500 }), undefined, T0 + 1_500);
    expect(late.context().now).toBe(T0 + 1_500);
    await late.runUntilCallOrFinal();
    expect(late.pending()?.sentAt).toBe(T0 + 2_000);
    const later = new LifecycleHarness(baseInput({ startedAt: T0 + 50_000 }), undefined, T0 + 50_000);
    await later.runUntilCallOrFinal();
    expect(later.pending()?.sentAt).toBe(T0 + 50_000);
  });

  it('measures the expiry from creation, not from tracking', async () => {
    const h = new LifecycleHarness(baseInput({ startedAt: T0 + 55_000 }), undefined, T0 + 55_000);
    h.autoInquiry = () => answers.processing();
    await h.runUntilCallOrFinal();
    expect(h.inquiries().map((c) => c.sentAt - T0)).toEqual([55_000, 57_000, 60_000]);
    expect(h.state()).toBe('cancelling.requesting');
  });
});
