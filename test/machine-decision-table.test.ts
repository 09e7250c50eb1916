import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import {
  CANCEL_TABLE,
  classifyInquiry,
  classifyPay,
  INQUIRY_DECISION_TABLE,
  type LifecycleInput,
  PAY_DECISION_TABLE,
  type PayRowId,
  paymentLifecycleMachine,
  REFUND_TABLE,
  refundRequestIdFor,
  WINDOW_CLOSED_TABLE,
} from '../machines/index.js';
import type { PayOutcome } from '../src/index.js';
import { PAY_MODES, type PayMode } from '../src/protocol/pay.js';
import { answers, baseInput, LifecycleHarness, stateString, T0 } from './helpers/lifecycle-harness.js';

/** A lifecycle that has sent its first inquiry and waits for the answer. */
async function atFirstInquiry(extra = {}) {
  const h = new LifecycleHarness(baseInput(extra));
  await h.runUntilCallOrFinal();
  expect(h.state()).toBe('awaitingResult.inquiring');
  return h;
}

describe('decision table rows', () => {
  it('row paid: S/S → succeeded', async () => {
    const h = await atFirstInquiry();
    await h.answer(answers.paid({ customerId: 'C-9', walletBrandName: 'Wallet' }));
    expect(h.state()).toBe('succeeded');
    expect(h.outcome()).toMatchObject({
      status: 'succeeded',
      paymentRequestId: 'REQ-1',
      paymentId: 'PAY-1',
      decidedBy: { source: 'inquiry', level: 'payment', code: 'SUCCESS', status: 'S' },
      details: {
        paymentAmount: { currency: 'JPY', value: '100' },
        customerId: 'C-9',
        walletBrandName: 'Wallet',
      },
      inquiries: 1,
      cancelAttempts: 0,
      decidedAt: T0 + 2_000,
    });
    expect(h.cancels()).toHaveLength(0);
  });

  it('row order-closed: S/F ORDER_IS_CLOSED → closed', async () => {
    const h = await atFirstInquiry();
    await h.answer(answers.closed());
    expect(h.outcome()).toMatchObject({
      status: 'closed',
      decidedBy: { source: 'inquiry', level: 'payment', code: 'ORDER_IS_CLOSED' },
    });
  });

  it('row payment-failed: S/F other → failed with the payment code', async () => {
    const h = await atFirstInquiry();
    await h.answer(answers.paymentFailed('RISK_REJECT'));
    expect(h.outcome()).toMatchObject({
      status: 'failed',
      decidedBy: { source: 'inquiry', level: 'payment', code: 'RISK_REJECT', status: 'F' },
    });
  });

  it('row processing: S/U → again, then cancel', async () => {
    const h = await atFirstInquiry();
    await h.answer(answers.processing());
    expect(h.state()).toBe('awaitingResult.pending');
    expect(h.context().nextInquiryAt).toBe(T0 + 4_000);
    h.autoInquiry = () => answers.processing();
    await h.runUntilCallOrFinal();
    expect(h.state()).toBe('cancelling.requesting');
    expect(h.context().cancel?.reason).toBe('expired');
    expect(h.inquiries().at(-1)?.sentAt).toBe(T0 + 60_000);
  });

  it('row order-not-exist: F ORDER_NOT_EXIST → again, then cancel', async () => {
    const h = await atFirstInquiry();
    await h.answer(answers.orderNotExist());
    expect(h.state()).toBe('awaitingResult.pending');
    h.autoInquiry = () => answers.orderNotExist();
    await h.runUntilCallOrFinal();
    expect(h.state()).toBe('cancelling.requesting');
    expect(h.cancels()).toHaveLength(1);
  });

  it('row integration-fault: F needs-person code → attention, never failed', async () => {
    for (const code of ['INVALID_SIGNATURE', 'KEY_NOT_FOUND', 'ACCESS_DENIED', 'PROCESS_FAIL']) {
      const h = await atFirstInquiry();
      await h.answer(answers.callFailed(code));
      expect(h.outcome()).toMatchObject({
        status: 'attention',
        attentionReason: 'integration-fault',
        decidedBy: { source: 'inquiry', level: 'call', code, status: 'F' },
      });
    }
  });

  it('row call-failed: F other → failed, marked call-level', async () => {
    const h = await atFirstInquiry();
    await h.answer(answers.callFailed('SOME_NEW_FAILURE'));
    expect(h.outcome()).toMatchObject({
      status: 'failed',
      decidedBy: { source: 'inquiry', level: 'call', code: 'SOME_NEW_FAILURE', status: 'F' },
    });
  });

  it('row unknown-exception: U → again, then cancel', async () => {
    const h = await atFirstInquiry();
    await h.answer(answers.unknown());
    expect(h.state()).toBe('awaitingResult.pending');
    expect(h.context().nextInquiryAt).toBe(T0 + 4_000);
    h.autoInquiry = () => answers.unknown();
    await h.runUntilCallOrFinal();
    expect(h.state()).toBe('cancelling.requesting');
  });

  it('row no-result: no result → again, then cancel', async () => {
    const h = await atFirstInquiry();
    await h.answer(answers.noResult('bad-signature'));
    expect(h.state()).toBe('awaitingResult.pending');
    expect(h.context().lastAnswer?.code).toBe('NO_RESULT:bad-signature');
    h.autoInquiry = () => answers.noResult();
    await h.runUntilCallOrFinal();
    expect(h.state()).toBe('cancelling.requesting');
  });

  it('every row names a test in this file, a guard in the machine, and classifies its own example', () => {
    const source = readFileSync(new URL(import.meta.url), 'utf8');
    const guards = Object.keys(paymentLifecycleMachine.implementations.guards);
    for (const row of INQUIRY_DECISION_TABLE) {
      expect(source, `test "${row.test}" missing`).toContain(`it('${row.test}'`);
      expect(guards).toContain(row.guard);
    }
    const examples = {
      paid: answers.paid(),
      'order-closed': answers.closed(),
      'payment-failed': answers.paymentFailed(),
      processing: answers.processing(),
      'order-not-exist': answers.orderNotExist(),
      'integration-fault': answers.callFailed('INVALID_CLIENT'),
      'call-failed': answers.callFailed(),
      'unknown-exception': answers.unknown(),
      'no-result': answers.noResult(),
    };
    for (const [row, outcome] of Object.entries(examples)) expect(classifyInquiry(outcome)).toBe(row);
    expect(Object.keys(examples).sort()).toEqual(INQUIRY_DECISION_TABLE.map((r) => r.id).sort());
  });

  it('a paymentResult S wins only with result S: an F call with a paymentResult is not a success', async () => {
    const h = await atFirstInquiry();
    await h.answer({
      ...answers.callFailed('SOME_NEW_FAILURE'),
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' },
    });
    expect(h.outcome()?.status).toBe('failed');
  });
});

/** A lifecycle started by pay, with the pay in flight. */
async function atPay(mode: PayMode, extra: Partial<LifecycleInput> = {}) {
  const h = new LifecycleHarness(baseInput({ pay: { mode }, ...extra }));
  await h.flush();
  expect(h.state()).toBe('paying.sending');
  expect(h.pending()?.kind).toBe('pay');
  return h;
}

const orderCodeForm = {
  paymentMethodType: 'CONNECT_WALLET',
  expireTime: '2026-01-15T11:05:00+08:00',
  codeDetails: [{ codeValueType: 'QRCODE', codeValue: 'https://qr.example/abc', displayType: 'MIDDLEIMAGE' }],
};

describe('pay decision table rows', () => {
  it('pay row paid: S (user-presented) → succeeded', async () => {
    const h = await atPay('user-presented');
    await h.advance(800);
    await h.answer(answers.payS({ customerId: 'C-3' }));
    expect(h.state()).toBe('succeeded');
    expect(h.outcome()).toMatchObject({
      status: 'succeeded',
      paymentId: 'PAY-1',
      decidedBy: { source: 'pay', level: 'payment', code: 'SUCCESS', status: 'S' },
      details: { paymentAmount: { currency: 'JPY', value: '100' }, customerId: 'C-3' },
      inquiries: 0,
      cancelAttempts: 0,
      decidedAt: T0 + 800,
    });
    expect(h.calls.map((c) => c.kind)).toEqual(['pay']);
    // A cashier pay that answers S is paid too.
    const cashier = await atPay('cashier');
    await cashier.answer(answers.payS());
    expect(cashier.outcome()?.status).toBe('succeeded');
  });

  it('pay row waiting-for-user: S with an order code → the inquiry lifecycle', async () => {
    const h = await atPay('order-code');
    await h.advance(300);
    await h.answer(answers.payS({ orderCodeForm }));
    expect(h.state()).toBe('awaitingResult.pending');
    expect(h.isFinal()).toBe(false);
    expect(h.context().details.orderCodeForm).toEqual(orderCodeForm);
    expect(h.context().pay).toMatchObject({ row: 'waiting-for-user', lastCode: 'SUCCESS', attempts: 1 });
    expect(h.context().nextInquiryAt).toBe(T0 + 300 + 2_000);
    await h.runUntilCallOrFinal();
    expect(h.pending()?.kind).toBe('inquiry');
    // An entry-code pay that answers U with its page waits for the user as well.
    const entry = await atPay('entry-code');
    await entry.answer({ ...answers.payU(), paymentUrl: 'https://pay.example/entry/1' } as PayOutcome);
    expect(entry.state()).toBe('awaitingResult.pending');
    expect(entry.context().details.paymentUrl).toBe('https://pay.example/entry/1');
  });

  it('pay row payment-failed: F business failure → failed', async () => {
    for (const [mode, code] of [
      ['user-presented', 'USER_BALANCE_NOT_ENOUGH'],
      ['order-code', 'EXPIRED_CODE'],
      ['cashier', 'SOME_NEW_BUSINESS_FAILURE'],
    ] as const) {
      const h = await atPay(mode);
      await h.answer(answers.payF(code));
      expect(h.outcome(), `${mode} ${code}`).toMatchObject({
        status: 'failed',
        decidedBy: { source: 'pay', level: 'payment', code, status: 'F' },
        inquiries: 0,
      });
      expect(h.calls).toHaveLength(1);
    }
  });

  it('pay row pay-refused: F integration fault or REPEAT_REQ_INCONSISTENT → attention', async () => {
    for (const code of ['REPEAT_REQ_INCONSISTENT', 'INVALID_SIGNATURE', 'PARAM_ILLEGAL', 'KEY_NOT_FOUND']) {
      const h = await atPay('user-presented');
      await h.answer(answers.payF(code));
      expect(h.outcome(), code).toMatchObject({
        status: 'attention',
        attentionReason: 'pay-refused',
        decidedBy: { source: 'pay', level: 'call', code, status: 'F' },
      });
      expect(h.calls).toHaveLength(1);
    }
  });

  it('pay row in-process: U → the inquiry lifecycle', async () => {
    for (const code of ['PAYMENT_IN_PROCESS', 'UNKNOWN_EXCEPTION']) {
      const h = await atPay('user-presented');
      await h.advance(8_000);
      await h.answer(answers.payU(code));
      expect(h.state(), code).toBe('awaitingResult.pending');
      expect(h.context().pay).toMatchObject({ row: 'in-process', lastCode: code });
      await h.runUntilCallOrFinal();
      // One schedule step after the answer, by the paymentId the pay answer gave.
      expect(h.pending()).toMatchObject({ kind: 'inquiry', sentAt: T0 + 10_000 });
      expect(h.pending()?.input).toMatchObject({ ref: { paymentId: 'PAY-1' }, attempt: 1 });
    }
  });

  it('pay row never-sent: given up before any pay left → failed, no inquiry, no cancel', async () => {
    const h = await atPay('user-presented');
    await h.advance(59_000);
    await h.answer(answers.payNoResult('never-sent'));
    expect(h.state()).toBe('failed');
    expect(h.outcome()).toMatchObject({
      status: 'failed',
      decidedBy: { source: 'pay', level: 'call', code: 'NO_RESULT:never-sent' },
    });
    expect(h.calls).toHaveLength(1); // the pay the engine gave up on: nothing after it
    // A pay merely not sent past expiry (one may have left before a restart) is no answer: it inquires.
    const other = await atPay('user-presented');
    await other.advance(8_000);
    await other.answer(answers.payNoResult('not-sent'));
    expect(other.state()).toBe('awaitingResult.pending');
  });

  it('pay row no-result: no result → the inquiry lifecycle', async () => {
    const h = await atPay('cashier');
    await h.advance(8_000);
    await h.answer(answers.payNoResult('timeout'));
    expect(h.state()).toBe('awaitingResult.pending');
    expect(h.context().pay).toMatchObject({ row: 'no-result', lastCode: 'NO_RESULT:timeout' });
    await h.runUntilCallOrFinal();
    expect(h.pending()).toMatchObject({ kind: 'inquiry', sentAt: T0 + 10_000 });
    expect(h.pending()?.input.ref).toEqual({ paymentRequestId: 'REQ-1' });

    // A pay actor that throws (it should not) is "no result received" too, never a failure.
    const clock = new SimulatedClock();
    clock.set(T0);
    const machine = paymentLifecycleMachine.provide({
      actors: {
        pay: fromPromise(async () => {
          throw new Error('boom');
        }) as never,
        inquiryPayment: fromPromise(() => new Promise<never>(() => undefined)) as never,
      },
    });
    const actor = createActor(machine, { clock, input: baseInput({ pay: { mode: 'user-presented' } }) });
    actor.start();
    await h.flush();
    expect(stateString(actor.getSnapshot().value)).toBe('awaitingResult.pending');
    expect(actor.getSnapshot().context.pay?.lastCode).toBe('NO_RESULT:network');
    actor.stop();
  });

  it('every pay row names a test in this file, a guard in the machine, in table order, and classifies its own example', () => {
    const source = readFileSync(new URL(import.meta.url), 'utf8');
    const guards = Object.keys(paymentLifecycleMachine.implementations.guards);
    for (const row of PAY_DECISION_TABLE) {
      expect(source, `test "${row.test}" missing`).toContain(`it('${row.test}'`);
      expect(guards).toContain(row.guard);
    }
    // The machine's pay transitions are the table's rows, in order: one guard per row.
    const invoke = paymentLifecycleMachine.config.states?.paying?.states?.sending?.invoke as
      | { onDone: { guard: string; target: string }[] }
      | undefined;
    const onDone = invoke?.onDone ?? [];
    expect(onDone.map((t) => t.guard)).toEqual(PAY_DECISION_TABLE.map((row) => row.guard));
    expect(onDone.map((t) => t.target)).toEqual(
      PAY_DECISION_TABLE.map((row) => `#paymentLifecycle.${row.target}`),
    );

    const examples: Record<PayRowId, [PayOutcome, PayMode]> = {
      paid: [answers.payS(), 'user-presented'],
      'waiting-for-user': [answers.payS({ orderCodeForm }), 'order-code'],
      'payment-failed': [answers.payF('EXPIRED_CODE'), 'order-code'],
      'pay-refused': [answers.payF('REPEAT_REQ_INCONSISTENT'), 'cashier'],
      'in-process': [answers.payU(), 'user-presented'],
      'no-result': [answers.payNoResult('not-sent'), 'entry-code'],
      'never-sent': [answers.payNoResult('never-sent'), 'cashier'],
    };
    for (const [row, [outcome, mode]] of Object.entries(examples))
      expect(classifyPay(outcome, mode)).toBe(row);
    expect(Object.keys(examples).sort()).toEqual(PAY_DECISION_TABLE.map((r) => r.id).sort());

    // Every mode, every kind of answer: exactly the row the spec gives it.
    const codeMode = (mode: PayMode) => mode === 'order-code' || mode === 'entry-code';
    for (const mode of PAY_MODES) {
      expect(classifyPay(answers.payS(), mode), mode).toBe(codeMode(mode) ? 'waiting-for-user' : 'paid');
      expect(classifyPay(answers.payU(), mode), mode).toBe(
        codeMode(mode) ? 'waiting-for-user' : 'in-process',
      );
      expect(classifyPay(answers.payF('RISK_REJECT'), mode), mode).toBe('payment-failed');
      expect(classifyPay(answers.payF('INVALID_CLIENT'), mode), mode).toBe('pay-refused');
      expect(classifyPay(answers.payNoResult(), mode), mode).toBe('no-result');
    }
  });
});

/** A tracked lifecycle whose cancel was answered CANCEL_WINDOW_EXCEED: the window check is in flight. */
async function atWindowCheck(extra: Partial<LifecycleInput> = {}) {
  const h = new LifecycleHarness(baseInput(extra));
  h.autoInquiry = () => answers.processing();
  await h.runUntilCallOrFinal();
  h.autoInquiry = undefined;
  expect(h.state()).toBe('cancelling.requesting');
  await h.advance(500);
  await h.answer(answers.cancelF('CANCEL_WINDOW_EXCEED'));
  expect(h.state()).toBe('windowClosed.checking');
  expect(h.pending()).toMatchObject({ kind: 'inquiry', sentAt: T0 + 60_500 });
  return h;
}

describe('after the cancel window (WINDOW_CLOSED_TABLE)', () => {
  it('window row paid: S/S without autoRefund → attention refund-due, and no refund is sent', async () => {
    const h = await atWindowCheck();
    await h.answer(answers.paid());
    expect(h.outcome()).toMatchObject({
      status: 'attention',
      attentionReason: 'refund-due',
      decidedBy: { source: 'inquiry', level: 'payment', code: 'SUCCESS', status: 'S' },
      cancelReason: 'expired',
      inquiries: 11,
      cancelAttempts: 1,
      decidedAt: T0 + 60_500,
    });
    expect(h.outcome()?.refund).toBeUndefined();
    expect(h.refunds()).toHaveLength(0);
  });

  it('window row paid: S/S with autoRefund → refunding the paid amount, by a refundRequestId derived from the payment', async () => {
    const h = await atWindowCheck({ policy: { autoRefund: true } });
    await h.advance(200);
    await h.answer(answers.paid({ paymentAmount: { currency: 'JPY', value: '90' } }));
    expect(h.state()).toBe('refunding.requesting');
    expect(h.pending()).toMatchObject({ kind: 'refund', sentAt: T0 + 60_700 });
    expect(h.pending()?.input).toEqual({
      paymentRequestId: 'REQ-1',
      ref: { paymentId: 'PAY-1' },
      refundRequestId: refundRequestIdFor('REQ-1'),
      // What the wallet says was paid, not what the lifecycle was told.
      refundAmount: { currency: 'JPY', value: '90' },
      attempt: 1,
    });
  });

  it('window row paid: with autoRefund but no amount known anywhere → attention refund-due', async () => {
    const h = await atWindowCheck({ amount: undefined, policy: { autoRefund: true } });
    await h.answer(answers.paid({ paymentAmount: undefined }));
    expect(h.outcome()).toMatchObject({ status: 'attention', attentionReason: 'refund-due' });
    expect(h.refunds()).toHaveLength(0);
  });

  it('window row closed / payment-failed / integration-fault / call-failed settle as the inquiry table says', async () => {
    const cases = [
      [answers.closed(), { status: 'closed', decidedBy: { level: 'payment', code: 'ORDER_IS_CLOSED' } }],
      [
        answers.paymentFailed('RISK_REJECT'),
        { status: 'failed', decidedBy: { level: 'payment', code: 'RISK_REJECT' } },
      ],
      [
        answers.callFailed('INVALID_SIGNATURE'),
        { status: 'attention', attentionReason: 'integration-fault', decidedBy: { level: 'call' } },
      ],
      [
        answers.callFailed('SOME_NEW_FAILURE'),
        { status: 'failed', decidedBy: { level: 'call', code: 'SOME_NEW_FAILURE' } },
      ],
    ] as const;
    for (const [answer, expected] of cases) {
      const h = await atWindowCheck({ policy: { autoRefund: true } });
      await h.answer(answer);
      expect(h.outcome()).toMatchObject({
        ...expected,
        decidedBy: { source: 'inquiry', ...expected.decidedBy },
      });
      expect(h.refunds()).toHaveLength(0);
    }
  });

  it('window row not final: again on the cancel retry schedule, then attention unresolved-after-window', async () => {
    const h = await atWindowCheck({
      policy: { maxWindowChecks: 4, cancelRetryScheduleMs: [1_000, 5_000], retryJitter: 'none' },
    });
    h.autoInquiry = (call) =>
      [answers.orderNotExist(), answers.unknown('REQUEST_TRAFFIC_EXCEED_LIMIT'), answers.noResult()][
        (call.input.attempt - 12) % 3
      ];
    await h.answer(answers.processing());
    expect(h.state()).toBe('windowClosed.retryWait');
    await h.runUntilCallOrFinal();
    const checks = h
      .inquiries()
      .slice(10)
      .map((c) => c.sentAt - (T0 + 60_500));
    // 1 s after the first answer, 5 s after the second, 3 × 5 s after the traffic-limited third.
    expect(checks).toEqual([0, 1_000, 6_000, 21_000]);
    expect(h.outcome()).toMatchObject({
      status: 'attention',
      attentionReason: 'unresolved-after-window',
      decidedBy: { source: 'inquiry', level: 'call', code: 'NO_RESULT:timeout' },
      inquiries: 14,
      decidedAt: T0 + 60_500 + 21_000,
    });
  });
});

/** A lifecycle with autoRefund whose window check found the payment paid: the refund is in flight. */
async function atRefund(extra: Partial<LifecycleInput> = {}) {
  const h = await atWindowCheck({ policy: { autoRefund: true }, ...extra });
  await h.answer(answers.paid());
  expect(h.state()).toBe('refunding.requesting');
  return h;
}

describe('refund answers (REFUND_TABLE)', () => {
  it('refund row S → refunded, the outcome holding the refund', async () => {
    const h = await atRefund();
    await h.advance(700);
    await h.answer(answers.refundS());
    expect(h.state()).toBe('refunded');
    expect(h.outcome()).toMatchObject({
      status: 'refunded',
      decidedBy: { source: 'refund', code: 'SUCCESS', status: 'S' },
      cancelReason: 'expired',
      decidedAt: T0 + 61_200,
      refund: {
        refundRequestId: 'REQ-1-RF',
        refundAmount: { currency: 'JPY', value: '100' },
        refundId: 'RF-ID-1',
        refundTime: '2026-01-16T11:00:00+08:00',
      },
    });
  });

  it('refund row F → attention refund-refused, with the refund that was asked for', async () => {
    const h = await atRefund();
    await h.answer(answers.refundF('REFUND_AMOUNT_EXCEED'));
    expect(h.outcome()).toMatchObject({
      status: 'attention',
      attentionReason: 'refund-refused',
      decidedBy: { source: 'refund', code: 'REFUND_AMOUNT_EXCEED', status: 'F' },
      refund: { refundRequestId: 'REQ-1-RF', refundAmount: { currency: 'JPY', value: '100' } },
    });
    expect(h.outcome()?.refund?.refundId).toBeUndefined();
    expect(h.refunds()).toHaveLength(1);
  });

  it('refund row U or no result → the identical request again, on the retry schedule, until S', async () => {
    const h = await atRefund({
      policy: { autoRefund: true, cancelRetryScheduleMs: [1_000, 4_000], retryJitter: 'none' },
    });
    const start = h.now();
    await h.answer(answers.refundU());
    expect(h.state()).toBe('refunding.retryWait');
    await h.runUntilCallOrFinal();
    await h.answer(answers.refundNoResult());
    await h.runUntilCallOrFinal();
    await h.answer(answers.refundU('REQUEST_TRAFFIC_EXCEED_LIMIT'));
    await h.runUntilCallOrFinal();
    await h.answer(answers.refundS());
    expect(h.outcome()?.status).toBe('refunded');
    const refunds = h.refunds();
    expect(refunds.map((c) => c.sentAt - start)).toEqual([0, 1_000, 5_000, 17_000]);
    expect(refunds.map((c) => c.input.attempt)).toEqual([1, 2, 3, 4]);
    const withoutAttempt = (call: (typeof refunds)[number]) => ({ ...call.input, attempt: 0 });
    for (const call of refunds)
      expect(withoutAttempt(call)).toEqual({
        paymentRequestId: 'REQ-1',
        ref: { paymentId: 'PAY-1' },
        refundRequestId: 'REQ-1-RF',
        refundAmount: { currency: 'JPY', value: '100' },
        attempt: 0,
      });
  });
});

describe('cancel answers (CANCEL_TABLE)', () => {
  it('cancel row CANCEL_WINDOW_EXCEED → windowClosed: one more inquiry, at once', async () => {
    const h = await atWindowCheck();
    expect(h.cancels()).toHaveLength(1);
    expect(h.context().cancel?.failures).toBe(0);
    expect(h.context().windowChecks).toEqual({ checks: 1, nextCheckAt: T0 + 60_500 });
    expect(h.pending()?.input.attempt).toBe(11);
  });

  it('cancel row ORDER_NOT_EXIST at or after expiry → closed; before expiry it is retried, not counted as a refusal', async () => {
    const h = new LifecycleHarness(baseInput());
    h.autoInquiry = () => answers.processing();
    await h.runUntilCallOrFinal();
    expect(h.now()).toBe(T0 + 60_000);
    await h.answer(answers.cancelF('ORDER_NOT_EXIST'));
    expect(h.outcome()).toMatchObject({
      status: 'closed',
      decidedBy: { source: 'cancel', level: 'call', code: 'ORDER_NOT_EXIST', status: 'F' },
      cancelReason: 'expired',
      cancelAttempts: 1,
    });

    // The merchant closes before expiry: Alipay+ may not know the order yet, so the cancel is retried.
    const early = new LifecycleHarness(baseInput({ policy: { maxCancelFailures: 3 } }));
    await early.advance(10_000);
    await early.close();
    // However often: ORDER_NOT_EXIST before expiry is no refusal (a pay may still be on its way),
    // so three of them (= maxCancelFailures) still leave the cancel going.
    for (let i = 0; i < 3; i++) {
      await early.answer(answers.cancelF('ORDER_NOT_EXIST'));
      expect(early.state()).toBe('cancelling.retryWait');
      expect(early.context().cancel?.failures).toBe(0);
      await early.runUntilCallOrFinal();
    }
    await early.answer(answers.cancelOk());
    expect(early.outcome()).toMatchObject({ status: 'cancelled', cancelAttempts: 4 });
  });

  it('cancel row U or no result until the window ends → windowClosed at the end of the window', async () => {
    const h = new LifecycleHarness(
      baseInput({
        cancelWindowEndsAt: T0 + 120_000,
        policy: { cancelRetryScheduleMs: [25_000], retryJitter: 'none' },
      }),
    );
    h.autoInquiry = (call) => (call.sentAt <= T0 + 60_000 ? answers.processing() : undefined);
    h.autoCancel = () => answers.cancelU();
    await h.runUntilCallOrFinal();
    expect(h.state()).toBe('windowClosed.checking');
    expect(h.cancels().map((c) => c.sentAt - T0)).toEqual([60_000, 85_000, 110_000]);
    expect(h.pending()).toMatchObject({ kind: 'inquiry', sentAt: T0 + 120_000 });
  });

  it('every cancel, window and refund row names guards that exist in the machine', () => {
    const guards = Object.keys(paymentLifecycleMachine.implementations.guards);
    for (const row of [...CANCEL_TABLE, ...WINDOW_CLOSED_TABLE, ...REFUND_TABLE]) {
      if (row.guard === '(default)') continue;
      for (const guard of row.guard.split(' / ')) expect(guards, row.answer).toContain(guard);
    }
  });
});
