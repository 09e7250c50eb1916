import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CancelPaymentResponse,
  InquiryPaymentRequest,
  InquiryPaymentResponse,
  NOTIFY_ACK_SUCCESS,
  NotifyPaymentAck,
  NotifyPaymentRequest,
} from '../src/protocol/index.js';
import { fixturePath } from './helpers/keys.js';

// The sample answer of the "inquire about payment result" page, copied unchanged (outside this
// repository, so not checked here: a run would skip the check on every clean clone).
const seedSample = readFileSync(fixturePath('seed-inquiry-response.json'), 'utf8');

const ok = { resultCode: 'SUCCESS', resultStatus: 'S', resultMessage: 'success' };

describe('inquiryPayment response schema', () => {
  it("parses the seed page's sample answer, every field included", () => {
    const parsed = InquiryPaymentResponse.parse(JSON.parse(seedSample));
    expect(parsed.paymentResult?.resultStatus).toBe('S');
    expect(parsed.paymentAmount).toEqual({ value: '100', currency: 'JPY' });
    expect(parsed.transactions?.[0]?.transactionType).toBe('REFUND');
    expect(parsed.transactions?.[0]?.transactionAmount.value).toBe('50');
    expect(parsed.settlementAmount).toEqual({ value: '74', currency: 'USD' });
    expect(parsed.settlementQuote?.quotePrice).toBe('1.35');
    expect(parsed.walletBrandName).toBe('walletName');
  });

  it('keeps unknown extra fields instead of rejecting them', () => {
    const parsed = InquiryPaymentResponse.parse({
      result: ok,
      paymentResult: { ...ok, extraFlag: 'x' },
      newTopLevelField: { nested: 'value' },
    });
    expect(parsed.newTopLevelField).toEqual({ nested: 'value' });
    expect((parsed.paymentResult as Record<string, unknown>).extraFlag).toBe('x');
  });

  it('accepts null for optional fields', () => {
    const parsed = InquiryPaymentResponse.parse({
      result: ok,
      paymentResult: ok,
      paymentId: null,
      customerId: null,
    });
    expect(parsed.paymentId).toBeNull();
  });

  it('requires paymentResult when the call succeeded', () => {
    const parsed = InquiryPaymentResponse.safeParse({ result: ok });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['paymentResult']);
  });

  it('needs no paymentResult on a failed call', () => {
    const parsed = InquiryPaymentResponse.safeParse({
      result: { resultCode: 'ORDER_NOT_EXIST', resultStatus: 'F', resultMessage: 'order not exist' },
    });
    expect(parsed.success).toBe(true);
  });

  it.each([
    ['an ID of 65 characters', { paymentId: 'x'.repeat(65) }, 'paymentId'],
    ['an empty ID', { paymentId: '' }, 'paymentId'],
    ['a numeric amount', { paymentAmount: { currency: 'JPY', value: 100 } }, 'paymentAmount.value'],
    ['a decimal amount', { paymentAmount: { currency: 'JPY', value: '1.00' } }, 'paymentAmount.value'],
    ['a lower-case currency', { paymentAmount: { currency: 'jpy', value: '1' } }, 'paymentAmount.currency'],
    ['a time without an offset', { paymentTime: '2020-01-01T12:01:01' }, 'paymentTime'],
    [
      'a resultCode of 65 characters',
      { paymentResult: { resultCode: 'C'.repeat(65), resultStatus: 'S' } },
      'paymentResult.resultCode',
    ],
  ])('rejects %s', (_name, fields, path) => {
    const parsed = InquiryPaymentResponse.safeParse({ result: ok, paymentResult: ok, ...fields });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((issue) => issue.path.join('.'))).toContain(path);
  });

  it('rejects a resultStatus outside S, F, U', () => {
    expect(InquiryPaymentResponse.safeParse({ result: { resultCode: 'X', resultStatus: 'P' } }).success).toBe(
      false,
    );
  });

  it('accepts an ID of exactly 64 characters', () => {
    expect(
      InquiryPaymentResponse.safeParse({ result: ok, paymentResult: ok, paymentId: 'x'.repeat(64) }).success,
    ).toBe(true);
  });

  it('accepts times with milliseconds and Z, as the samples show', () => {
    const parsed = InquiryPaymentResponse.safeParse({
      result: ok,
      paymentResult: ok,
      paymentTime: '2020-01-01T04:01:01.123Z',
    });
    expect(parsed.success).toBe(true);
  });
});

describe('request and notification schemas', () => {
  it('an inquiry needs one of the two references', () => {
    expect(InquiryPaymentRequest.safeParse({}).success).toBe(false);
    expect(InquiryPaymentRequest.safeParse({ paymentId: 'p1' }).success).toBe(true);
    expect(InquiryPaymentRequest.safeParse({ paymentRequestId: 'r1' }).success).toBe(true);
  });

  it('a cancel answer carries result and, on success, the parties', () => {
    const parsed = CancelPaymentResponse.parse({ result: ok, acquirerId: 'a', pspId: 'p' });
    expect(parsed.pspId).toBe('p');
  });

  it('a notification carries a final result and the paymentRequestId', () => {
    const body = {
      paymentResult: ok,
      paymentRequestId: 'r1',
      paymentId: 'p1',
      paymentAmount: { currency: 'JPY', value: '100' },
      settlementQuote: { quoteId: 'q', quoteCurrencyPair: 'USD/JPY', quotePrice: '1.35' },
    };
    expect(NotifyPaymentRequest.parse(body).paymentId).toBe('p1');
    expect(NotifyPaymentRequest.safeParse({ ...body, paymentRequestId: undefined }).success).toBe(false);
    expect(
      NotifyPaymentRequest.safeParse({
        ...body,
        paymentResult: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' },
      }).success,
    ).toBe(false);
  });

  it('the success acknowledgement is a valid ack', () => {
    expect(NotifyPaymentAck.parse(NOTIFY_ACK_SUCCESS).result.resultStatus).toBe('S');
  });
});
