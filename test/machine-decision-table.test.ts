import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyInquiry, INQUIRY_DECISION_TABLE, paymentLifecycleMachine } from '../machines/index.js';
import { answers, baseInput, LifecycleHarness, T0 } from './helpers/lifecycle-harness.js';

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
