import { describe, expect, it } from 'vitest';
import {
  defaultCancelWindowEnd,
  type LifecycleInput,
  refundRequestIdFor,
  resolveLifecycleInput,
  wakeAt,
} from '../machines/index.js';
import { Id, MAX_ID_LENGTH } from '../src/protocol/common.js';
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

describe('wakeAt: what an engine may sleep until', () => {
  it('is the deadline of the one armed timer in each plain waiting state, and undefined in every other', async () => {
    const h = new LifecycleHarness(baseInput({ policy: { awaitNotificationAfter: 2 } }));
    const armed = () => (h as unknown as { nextTimerAt(): number | undefined }).nextTimerAt();
    const seen: string[] = [];
    const check = () => {
      seen.push(h.state());
      const at = wakeAt(h.state(), h.context());
      if (h.state() === 'awaitingResult.pending' || h.state() === 'awaitingNotification.waiting')
        expect(at).toBe(armed());
      else expect(at).toBeUndefined();
    };
    check();
    for (let i = 0; i < 2; i++) {
      await h.runUntilCallOrFinal();
      check();
      await h.answer(answers.processing());
      check();
    }
    await h.runUntilCallOrFinal();
    check();
    expect(seen).toEqual([
      'awaitingResult.pending',
      'awaitingResult.inquiring',
      'awaitingResult.pending',
      'awaitingResult.inquiring',
      'awaitingNotification.waiting',
      'awaitingNotification.lastLook',
    ]);
  });
});

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

  it('U and no result are retried per the schedule for a whole day, then one more inquiry when the window closes', async () => {
    const h = await intoCancelling();
    h.autoCancel = (call) => (call.input.attempt % 2 ? answers.cancelU() : answers.cancelNoResult());
    await h.answer(answers.cancelU());
    await h.runUntilCallOrFinal();
    const windowEnd = defaultCancelWindowEnd(T0);
    // The cancel never came back confirmed: once the window has closed, an inquiry decides.
    expect(h.state()).toBe('windowClosed.checking');
    expect(h.pending()).toMatchObject({ kind: 'inquiry', sentAt: windowEnd });
    const times = h.cancels().map((c) => c.sentAt - (T0 + 60_000));
    expect(times.slice(0, 8)).toEqual([0, 1_000, 3_000, 8_000, 18_000, 48_000, 108_000, 408_000]);
    expect(h.cancels().every((c) => c.sentAt < windowEnd)).toBe(true);
    // 11:01 → 00:15 UTC+8 at 5-minute steps after the first minutes: about 158 attempts.
    expect(h.cancels().length).toBeGreaterThan(150);
    await h.answer(answers.paid());
    expect(h.outcome()).toMatchObject({
      status: 'attention',
      attentionReason: 'refund-due',
      decidedAt: windowEnd,
      cancelReason: 'expired',
    });
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

  it('CANCEL_WINDOW_EXCEED looks once more at once; found paid, a refund is due', async () => {
    const h = await intoCancelling();
    await h.answer(answers.cancelF('CANCEL_WINDOW_EXCEED'));
    expect(h.state()).toBe('windowClosed.checking');
    expect(h.pending()).toMatchObject({ kind: 'inquiry', sentAt: T0 + 60_000 });
    await h.answer(answers.paid());
    expect(h.outcome()).toMatchObject({ status: 'attention', attentionReason: 'refund-due' });
    expect(h.cancels()).toHaveLength(1);
    expect(h.refunds()).toHaveLength(0);
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
    // The RESUME itself sends the last look: every deadline has passed.
    expect(restored.state()).toBe('awaitingResult.inquiring');
    expect(restored.pending()?.sentAt).toBe(T0 + 600_000);
    await restored.answer(answers.processing());
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
  it('a restore after the cancel window closed sends no other cancel: it inquires once more, at once', async () => {
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
    expect(restored.state()).toBe('windowClosed.checking');
    expect(restored.pending()).toMatchObject({ kind: 'inquiry', sentAt: T0 + 31 * 60_000 });
    expect(restored.cancels()).toHaveLength(0);
    await restored.answer(answers.closed());
    expect(restored.outcome()).toMatchObject({ status: 'closed', cancelAttempts: 1, inquiries: 2 });
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

const payInput = (extra: Partial<LifecycleInput> = {}) =>
  baseInput({ pay: { mode: 'user-presented' }, ...extra });

/** A lifecycle started by pay, with its pay in flight. */
async function paying(extra: Partial<LifecycleInput> = {}) {
  const h = new LifecycleHarness(payInput(extra));
  await h.flush();
  expect(h.state()).toBe('paying.sending');
  return h;
}

describe('paying', () => {
  it('sends one pay at once, carrying the expiry as notAfter', async () => {
    const h = await paying();
    expect(h.calls).toHaveLength(1);
    expect(h.pending()).toMatchObject({
      kind: 'pay',
      sentAt: T0,
      input: { paymentRequestId: 'REQ-1', attempt: 1, notAfter: T0 + 60_000 },
    });
    // One ms before expiry is still before it.
    const late = new LifecycleHarness(payInput({ startedAt: T0 + 59_999 }), undefined, T0 + 59_999);
    await late.flush();
    expect(late.pending()).toMatchObject({
      kind: 'pay',
      sentAt: T0 + 59_999,
      input: { notAfter: T0 + 60_000 },
    });
  });

  it('sends no pay when the lifecycle starts at or after expiry: one last look at once, then cancel', async () => {
    for (const startedAt of [T0 + 60_000, T0 + 90_000]) {
      const h = new LifecycleHarness(payInput({ startedAt }), undefined, startedAt);
      await h.runUntilCallOrFinal();
      expect(h.pays(), `started at T0+${startedAt - T0}`).toHaveLength(0);
      expect(h.context().pay).toMatchObject({ attempts: 0, lastCode: 'NOT_SENT:expired' });
      expect(h.pending()).toMatchObject({ kind: 'inquiry', sentAt: startedAt });
      await h.answer(answers.processing());
      expect(h.state()).toBe('cancelling.requesting');
      expect(h.context().cancel?.reason).toBe('expired');
      expect(h.inquiries()).toHaveLength(1);
    }
  });

  it('a pay in flight is re-run by a restore with the same attempt and the same notAfter', async () => {
    const input = payInput();
    const h = await paying();
    const json = h.persist();
    h.stop();
    const restored = await LifecycleHarness.restore(input, json, T0 + 5_000);
    expect(restored.state()).toBe('paying.sending');
    expect(restored.pays()).toHaveLength(1);
    expect(restored.pending()).toMatchObject({
      kind: 'pay',
      sentAt: T0 + 5_000,
      input: { paymentRequestId: 'REQ-1', attempt: 1, notAfter: T0 + 60_000 },
    });
    expect(restored.context().pay?.attempts).toBe(1);
    await restored.answer(answers.payS());
    expect(restored.outcome()).toMatchObject({ status: 'succeeded', decidedBy: { source: 'pay' } });
  });

  it('restored past expiry, the re-run pay still carries notAfter; its not-sent answer leads to one last look', async () => {
    const input = payInput();
    const h = await paying();
    const json = h.persist();
    h.stop();
    const restored = await LifecycleHarness.restore(input, json, T0 + 70_000);
    expect(restored.pending()?.input.notAfter).toBe(T0 + 60_000);
    expect(restored.pending()?.input.notAfter).toBeLessThan(restored.now());
    await restored.answer(answers.payNoResult('not-sent'));
    expect(restored.context().pay?.lastCode).toBe('NO_RESULT:not-sent');
    await restored.runUntilCallOrFinal();
    expect(restored.pending()).toMatchObject({ kind: 'inquiry', sentAt: T0 + 70_000 });
    await restored.answer(answers.unknown());
    expect(restored.state()).toBe('cancelling.requesting');
    expect(restored.pays()).toHaveLength(1);
  });

  it('a notification during the pay settles the payment and aborts the pay in flight', async () => {
    const h = await paying();
    const inflight = h.pending();
    await h.advance(3_000);
    await h.notify(notifications.paid({ customerId: 'C-2' }));
    expect(inflight?.aborted).toBe(true);
    expect(h.outcome()).toMatchObject({
      status: 'succeeded',
      decidedBy: { source: 'notification', code: 'SUCCESS' },
      details: { customerId: 'C-2' },
      decidedAt: T0 + 3_000,
      inquiries: 0,
    });
    const failed = await paying();
    await failed.notify(notifications.failed('RISK_REJECT'));
    expect(failed.outcome()).toMatchObject({ status: 'failed', decidedBy: { code: 'RISK_REJECT' } });
    const mismatch = await paying();
    await mismatch.notify(notifications.paid({ paymentAmount: { currency: 'JPY', value: '1' } }));
    expect(mismatch.outcome()).toMatchObject({ status: 'attention', attentionReason: 'amount-mismatch' });
  });

  it('a merchant close during the pay cancels now and aborts the pay', async () => {
    const h = await paying();
    const inflight = h.pending();
    await h.advance(1_000);
    await h.close();
    expect(inflight?.aborted).toBe(true);
    expect(h.state()).toBe('cancelling.requesting');
    expect(h.context().cancel).toMatchObject({ reason: 'closed-by-merchant', startedAt: T0 + 1_000 });
    await h.answer(answers.cancelOk());
    expect(h.outcome()).toMatchObject({ status: 'cancelled', cancelReason: 'closed-by-merchant' });
    expect(h.pays()).toHaveLength(1);
  });

  it('the order code and the entry page reach context.details, and the outcome keeps them', async () => {
    const orderCodeForm = {
      expireTime: '2026-01-15T11:05:00+08:00',
      codeDetails: [{ codeValueType: 'BARCODE', codeValue: '2810000000001' }],
    };
    const h = await paying({ pay: { mode: 'order-code' }, expiresAt: T0 + 300_000 });
    await h.answer(answers.payS({ orderCodeForm, paymentId: undefined }));
    expect(h.context().details.orderCodeForm).toEqual(orderCodeForm);
    await h.runUntilCallOrFinal();
    await h.answer(answers.paid());
    expect(h.outcome()?.details).toMatchObject({ orderCodeForm, paymentId: 'PAY-1' });
    expect(h.outcome()?.decidedBy.source).toBe('inquiry');

    const entry = await paying({ pay: { mode: 'entry-code' } });
    await entry.answer(answers.payS({ paymentUrl: 'https://pay.example/e/7' }));
    expect(entry.context().details.paymentUrl).toBe('https://pay.example/e/7');
  });

  it('the first inquiry after a non-final pay answer is one schedule step later, clamped to expiry', async () => {
    const h = await paying({ policy: { inquiryScheduleMs: [5_000, 1_000] } });
    await h.advance(57_000);
    await h.answer(answers.payU());
    expect(h.context().nextInquiryAt).toBe(T0 + 60_000);
    await h.runUntilCallOrFinal();
    expect(h.pending()?.sentAt).toBe(T0 + 60_000);
    await h.answer(answers.processing());
    // That inquiry was at expiry: the last look.
    expect(h.state()).toBe('cancelling.requesting');
  });

  it('a pay sent before expiry and answered after it: S is a success, U gets one last look at once', async () => {
    const s = await paying();
    await s.advance(65_000);
    await s.answer(answers.payS());
    expect(s.outcome()?.status).toBe('succeeded');

    const u = await paying();
    await u.advance(65_000);
    await u.answer(answers.payU());
    await u.runUntilCallOrFinal();
    expect(u.pending()).toMatchObject({ kind: 'inquiry', sentAt: T0 + 65_000 });
    await u.answer(answers.processing());
    expect(u.state()).toBe('cancelling.requesting');
  });

  it('the pay is never sent twice: after a no-result the inquiries find out', async () => {
    const h = await paying();
    await h.answer(answers.payNoResult('timeout'));
    h.autoInquiry = () => answers.orderNotExist();
    h.autoCancel = () => answers.cancelF('ORDER_NOT_EXIST');
    await h.runUntilCallOrFinal();
    expect(h.outcome()).toMatchObject({
      status: 'closed',
      decidedBy: { source: 'cancel', code: 'ORDER_NOT_EXIST' },
    });
    expect(h.pays()).toHaveLength(1);
  });
});

/** A tracked lifecycle past a CANCEL_WINDOW_EXCEED answer: the window check is in flight. */
async function windowCheck(extra: Partial<LifecycleInput> = {}) {
  const h = await intoCancelling(extra);
  await h.answer(answers.cancelF('CANCEL_WINDOW_EXCEED'));
  expect(h.state()).toBe('windowClosed.checking');
  return h;
}

describe('after the cancel window', () => {
  it('a notification is recorded as late (flagged when S) and changes nothing: the check goes on', async () => {
    const h = await windowCheck();
    const inflight = h.pending();
    await h.notify(notifications.paid());
    expect(h.state()).toBe('windowClosed.checking');
    expect(inflight?.aborted).toBe(false);
    await h.answer(answers.processing());
    await h.notify(notifications.failed());
    expect(h.state()).toBe('windowClosed.retryWait');
    await h.runUntilCallOrFinal();
    await h.answer(answers.paid());
    expect(h.outcome()).toMatchObject({ status: 'attention', attentionReason: 'refund-due' });
    expect(h.outcome()?.lateNotifications).toEqual([
      expect.objectContaining({ state: 'windowClosed', resultStatus: 'S', flagged: true }),
      expect.objectContaining({ state: 'windowClosed', resultStatus: 'F', flagged: false }),
    ]);
  });

  it('by default, 10 checks without a final answer, then attention unresolved-after-window', async () => {
    const h = await windowCheck();
    h.autoInquiry = () => answers.unknown();
    await h.answer(answers.noResult());
    await h.runUntilCallOrFinal();
    expect(h.outcome()).toMatchObject({ status: 'attention', attentionReason: 'unresolved-after-window' });
    expect(h.inquiries().filter((c) => c.sentAt >= T0 + 60_000)).toHaveLength(1 + 10);
    expect(h.outcome()?.inquiries).toBe(10 + 10);
  });

  it('before the payment has expired the checks go on past maxWindowChecks: the wallet may still decide', async () => {
    const h = new LifecycleHarness(
      baseInput({
        expiresAt: T0 + 300_000,
        policy: { maxWindowChecks: 2, cancelRetryScheduleMs: [60_000] },
      }),
    );
    await h.advance(1_000);
    await h.close();
    h.autoInquiry = () => answers.processing();
    await h.answer(answers.cancelF('CANCEL_WINDOW_EXCEED'));
    await h.runUntilCallOrFinal();
    expect(h.inquiries().map((c) => c.sentAt - T0)).toEqual([
      1_000, 61_000, 121_000, 181_000, 241_000, 301_000,
    ]);
    expect(h.outcome()).toMatchObject({
      status: 'attention',
      attentionReason: 'unresolved-after-window',
      decidedAt: T0 + 301_000,
    });
  });

  it('a check in flight is re-sent by a restore with its number; a wait is re-armed from its absolute time', async () => {
    const input = baseInput();
    const h = await windowCheck();
    const restored = await LifecycleHarness.restore(input, h.persist(), T0 + 60_300);
    h.stop();
    expect(restored.state()).toBe('windowClosed.checking');
    expect(restored.pending()).toMatchObject({
      kind: 'inquiry',
      sentAt: T0 + 60_300,
      input: { attempt: 11 },
    });
    await restored.answer(answers.processing()); // next check 1 s later
    expect(restored.context().windowChecks).toEqual({ checks: 1, nextCheckAt: T0 + 61_300 });
    const again = await LifecycleHarness.restore(input, restored.persist(), T0 + 61_000);
    restored.stop();
    expect(again.state()).toBe('windowClosed.retryWait');
    await again.runUntilCallOrFinal();
    expect(again.pending()).toMatchObject({ kind: 'inquiry', sentAt: T0 + 61_300, input: { attempt: 12 } });
  });
});

describe('refunding', () => {
  const refundPolicy = { autoRefund: true, cancelRetryScheduleMs: [1_000, 60_000] };

  it('every retry, across restores too, sends the same refundRequestId and amount', async () => {
    const input = baseInput({ policy: refundPolicy });
    const h = await windowCheck({ policy: refundPolicy });
    await h.answer(answers.paid());
    await h.answer(answers.refundU());
    await h.runUntilCallOrFinal();
    await h.answer(answers.refundNoResult());
    // Crash in the retry wait, then again with the refund in flight.
    const a = await LifecycleHarness.restore(input, h.persist(), h.now() + 10_000);
    h.stop();
    expect(a.state()).toBe('refunding.retryWait');
    await a.runUntilCallOrFinal();
    const b = await LifecycleHarness.restore(input, a.persist(), a.now() + 5_000);
    a.stop();
    expect(b.state()).toBe('refunding.requesting');
    await b.answer(answers.refundU());
    await b.runUntilCallOrFinal();
    await b.answer(answers.refundS());
    expect(b.outcome()).toMatchObject({
      status: 'refunded',
      refund: { refundRequestId: 'REQ-1-RF', refundId: 'RF-ID-1' },
    });
    const sent = [...h.refunds(), ...a.refunds(), ...b.refunds()];
    expect(sent.map((c) => c.input.attempt)).toEqual([1, 2, 3, 3, 4]);
    expect(new Set(sent.map((c) => c.input.refundRequestId))).toEqual(new Set([refundRequestIdFor('REQ-1')]));
    expect(new Set(sent.map((c) => JSON.stringify(c.input.refundAmount)))).toEqual(
      new Set([JSON.stringify({ currency: 'JPY', value: '100' })]),
    );
  });

  it('a notification while refunding is recorded as late and changes nothing', async () => {
    const h = await windowCheck({ policy: refundPolicy });
    await h.answer(answers.paid());
    const inflight = h.pending();
    await h.notify(notifications.paid());
    expect(h.state()).toBe('refunding.requesting');
    expect(inflight?.aborted).toBe(false);
    await h.answer(answers.refundS());
    expect(h.outcome()?.status).toBe('refunded');
    expect(h.outcome()?.lateNotifications).toEqual([
      expect.objectContaining({ state: 'refunding', resultStatus: 'S', flagged: true }),
    ]);
  });

  it('refundRequestIdFor: readable when it fits, hashed otherwise, always at most 64 characters and stable', () => {
    expect(refundRequestIdFor('REQ-1')).toBe('REQ-1-RF');
    const fits = 'a'.repeat(MAX_ID_LENGTH - 3);
    expect(refundRequestIdFor(fits)).toBe(`${fits}-RF`);
    for (const id of ['b'.repeat(MAX_ID_LENGTH - 2), 'c'.repeat(MAX_ID_LENGTH), `${'d'.repeat(63)}e`]) {
      const refundId = refundRequestIdFor(id);
      expect(refundId.length, id).toBeLessThanOrEqual(MAX_ID_LENGTH);
      expect(Id.safeParse(refundId).success).toBe(true);
      expect(refundRequestIdFor(id)).toBe(refundId);
      expect(refundId).not.toContain(id);
    }
    // Two IDs that differ only in their last character get different refund IDs.
    expect(refundRequestIdFor(`${'x'.repeat(63)}1`)).not.toBe(refundRequestIdFor(`${'x'.repeat(63)}2`));
  });

  it('a 64-character paymentRequestId refunds with a 64-character-or-less refundRequestId, the same on every retry', async () => {
    const id = 'P'.repeat(MAX_ID_LENGTH);
    const h = new LifecycleHarness(baseInput({ paymentRequestId: id, policy: refundPolicy }));
    h.autoInquiry = (call) => (call.sentAt <= T0 + 60_000 ? answers.processing() : answers.paid());
    h.autoCancel = () => answers.cancelF('CANCEL_WINDOW_EXCEED');
    h.autoRefund = (call) => (call.input.attempt < 3 ? answers.refundU() : undefined);
    await h.runUntilCallOrFinal();
    expect(h.state()).toBe('refunding.requesting');
    const ids = h.refunds().map((c) => c.input.refundRequestId);
    expect(ids).toHaveLength(3);
    expect(new Set(ids)).toEqual(new Set([refundRequestIdFor(id)]));
    expect(ids[0]?.length).toBeLessThanOrEqual(MAX_ID_LENGTH);
  });
});
