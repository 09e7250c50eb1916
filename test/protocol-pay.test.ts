import { describe, expect, it } from 'vitest';
import {
  OrderCodeForm,
  PAY_MODES,
  type PayMode,
  PayRequest,
  type PayRequestInput,
  PayResponse,
  payModeOf,
  RefundRequest,
  RefundResponse,
} from '../src/protocol/index.js';

// Spec §2 (wire conventions), §8 (pay) and §9 (refund).

const ok = { resultCode: 'SUCCESS', resultStatus: 'S', resultMessage: 'success' };
const amount = { currency: 'JPY', value: '100' };
const store = { referenceStoreId: 'store-1', storeName: 'Ginza' };
const merchant = { referenceMerchantId: 'merchant-1' };
const order = {
  referenceOrderId: 'order-1',
  orderDescription: 'Coffee',
  orderAmount: amount,
  merchant,
};
const common = {
  paymentRequestId: 'pay-req-1',
  paymentAmount: amount,
  paymentMethod: { paymentMethodType: 'CONNECT_WALLET' },
};

/** The smallest valid request of each mode: the common fields plus exactly what the mode requires. */
const MINIMAL: Record<PayMode, PayRequestInput> = {
  'user-presented': {
    ...common,
    order: { ...order, merchant: { ...merchant, store } },
    paymentMethod: { paymentMethodType: 'CONNECT_WALLET', paymentMethodId: '281012020412345678' },
    paymentFactor: { inStorePaymentScenario: 'PaymentCode' },
  },
  'order-code': {
    ...common,
    order: { ...order, env: { userAgent: 'Mozilla/5.0' } },
    paymentFactor: { inStorePaymentScenario: 'OrderCode' },
  },
  'entry-code': {
    ...common,
    order: { ...order, merchant: { ...merchant, store }, env: { userAgent: 'Mozilla/5.0' } },
    paymentFactor: { inStorePaymentScenario: 'EntryCode' },
  },
  cashier: {
    ...common,
    order: { ...order, env: { terminalType: 'WEB' } },
    paymentFactor: { isCashierPayment: 'true' },
  },
};

type Json = Record<string, unknown>;

/** A deep copy of `request` with `change` applied at `path` (`undefined` deletes the field). */
function edit(request: object, path: string, change: unknown): Json {
  // Through JSON, so that objects shared between fixtures (`amount`) become separate copies.
  const copy = JSON.parse(JSON.stringify(request)) as Json;
  const keys = path.split('.');
  const last = keys.pop() as string;
  let node = copy;
  for (const key of keys) {
    node[key] ??= {};
    node = node[key] as Json;
  }
  if (change === undefined) delete node[last];
  else node[last] = change;
  return copy;
}

function issuePaths(value: unknown): string[] {
  const parsed = PayRequest.safeParse(value);
  return parsed.success ? [] : parsed.error.issues.map((issue) => issue.path.join('.'));
}

describe('PayRequest: a minimal request of each mode', () => {
  it.each(PAY_MODES)('%s parses, unchanged', (mode) => {
    const parsed = PayRequest.safeParse(MINIMAL[mode]);
    expect(parsed.error?.issues).toBeUndefined();
    expect(parsed.data).toEqual(MINIMAL[mode]);
  });

  it.each(PAY_MODES)('payModeOf names %s', (mode) => {
    expect(payModeOf(MINIMAL[mode])).toBe(mode);
  });

  it('the four modes are exactly the ones the spec names', () => {
    expect([...PAY_MODES].sort()).toEqual(['cashier', 'entry-code', 'order-code', 'user-presented']);
  });
});

describe('PayRequest: what each mode requires', () => {
  it.each<[PayMode, string]>([
    ['user-presented', 'order.merchant.store'],
    ['user-presented', 'paymentMethod.paymentMethodId'],
    ['order-code', 'order.env.userAgent'],
    ['entry-code', 'order.merchant.store'],
    ['entry-code', 'order.env.userAgent'],
    ['cashier', 'order.env.terminalType'],
  ])('%s without %s is refused, naming that path', (mode, path) => {
    expect(issuePaths(edit(MINIMAL[mode], path, undefined))).toEqual([path]);
    // Optional on the wire means omitted or null: null does not satisfy a mode's requirement either.
    expect(issuePaths(edit(MINIMAL[mode], path, null))).toEqual([path]);
  });

  it('order-code and entry-code without any env name order.env.userAgent', () => {
    expect(issuePaths(edit(MINIMAL['order-code'], 'order.env', undefined))).toEqual(['order.env.userAgent']);
    expect(issuePaths(edit(MINIMAL['entry-code'], 'order.env', undefined))).toEqual(['order.env.userAgent']);
  });

  it('entry-code without store and user agent names both', () => {
    const request = edit(
      edit(MINIMAL['entry-code'], 'order.merchant.store', undefined),
      'order.env',
      undefined,
    );
    expect(issuePaths(request).sort()).toEqual(['order.env.userAgent', 'order.merchant.store']);
  });

  it('cashier without any env names order.env.terminalType', () => {
    expect(issuePaths(edit(MINIMAL.cashier, 'order.env', undefined))).toEqual(['order.env.terminalType']);
  });

  it.each(['APP', 'WAP'])('cashier from an %s terminal also needs order.env.osType', (terminalType) => {
    const request = edit(MINIMAL.cashier, 'order.env', { terminalType });
    expect(issuePaths(request)).toEqual(['order.env.osType']);
    expect(issuePaths(edit(request, 'order.env.osType', null))).toEqual(['order.env.osType']);
    expect(issuePaths(edit(request, 'order.env.osType', 'IOS'))).toEqual([]);
    expect(issuePaths(edit(request, 'order.env.osType', 'ANDROID'))).toEqual([]);
  });

  it.each(['WEB', 'MINI_APP'])('cashier from a %s terminal needs no osType', (terminalType) => {
    expect(issuePaths(edit(MINIMAL.cashier, 'order.env', { terminalType }))).toEqual([]);
  });

  it('a requirement of one mode is not imposed on another', () => {
    // A cashier pay needs neither a store nor a payment code nor a user agent.
    const cashier = PayRequest.parse(MINIMAL.cashier);
    expect(cashier.order.merchant.store).toBeUndefined();
    expect(cashier.paymentMethod.paymentMethodId).toBeUndefined();
    expect(cashier.order.env?.userAgent).toBeUndefined();
    // An order-code pay needs no store and no terminal type.
    expect(issuePaths(MINIMAL['order-code'])).toEqual([]);
  });
});

describe('PayRequest: no mode', () => {
  it.each<[string, unknown]>([
    ['an empty paymentFactor', {}],
    ['isCashierPayment "false" and no scenario', { isCashierPayment: 'false' }],
    ['only isInStorePayment', { isInStorePayment: 'true' }],
  ])('%s is refused, naming paymentFactor', (_name, paymentFactor) => {
    const request = edit(MINIMAL.cashier, 'paymentFactor', paymentFactor);
    expect(issuePaths(request)).toEqual(['paymentFactor']);
    expect(payModeOf(request as PayRequestInput)).toBeUndefined();
  });

  it('a missing paymentFactor is refused, naming paymentFactor', () => {
    expect(issuePaths(edit(MINIMAL.cashier, 'paymentFactor', undefined))).toEqual(['paymentFactor']);
  });

  it('two modes at once (cashier and an in-store scenario) are refused, naming paymentFactor', () => {
    const request = edit(MINIMAL['user-presented'], 'paymentFactor.isCashierPayment', 'true');
    expect(issuePaths(request)).toEqual(['paymentFactor']);
    expect(PayRequest.safeParse(request).error?.issues[0]?.message).toMatch(/names two modes/);
  });

  it('an unknown scenario is refused, naming the scenario', () => {
    const request = edit(MINIMAL['order-code'], 'paymentFactor.inStorePaymentScenario', 'QrCode');
    expect(issuePaths(request)).toEqual(['paymentFactor.inStorePaymentScenario']);
  });
});

describe('PayRequest: wire conventions', () => {
  it('accepts a paymentRequestId of 64 characters and refuses 65', () => {
    expect(issuePaths(edit(MINIMAL.cashier, 'paymentRequestId', 'r'.repeat(64)))).toEqual([]);
    expect(issuePaths(edit(MINIMAL.cashier, 'paymentRequestId', 'r'.repeat(65)))).toEqual([
      'paymentRequestId',
    ]);
  });

  it.each<[string, unknown]>([
    ['a decimal', '1.00'],
    ['letters', '10a'],
    ['a negative value', '-100'],
    ['an empty string', ''],
    ['a JSON number', 100],
  ])('refuses %s as the amount value', (_name, value) => {
    const request = edit(MINIMAL.cashier, 'paymentAmount.value', value);
    expect(issuePaths(request)).toEqual(['paymentAmount.value']);
  });

  it('refuses a non-digit order amount too', () => {
    const request = edit(MINIMAL.cashier, 'order.orderAmount.value', '1,000');
    expect(issuePaths(request)).toEqual(['order.orderAmount.value']);
  });

  it('refuses a boolean true instead of the string "true"', () => {
    const cashier = edit(MINIMAL.cashier, 'paymentFactor.isCashierPayment', true);
    expect(issuePaths(cashier)).toEqual(['paymentFactor.isCashierPayment']);
    const inStore = edit(MINIMAL['order-code'], 'paymentFactor.isInStorePayment', true);
    expect(issuePaths(inStore)).toEqual(['paymentFactor.isInStorePayment']);
    // The strings are what the wire carries.
    expect(issuePaths(edit(MINIMAL['order-code'], 'paymentFactor.isInStorePayment', 'true'))).toEqual([]);
  });

  it.each([
    'paymentNotifyUrl',
    'paymentRedirectUrl',
    'paymentExpiryTime',
    'userRegion',
    'paymentMethod.customerId',
    'paymentFactor.presentmentMode',
    'order.env.clientIp',
    'order.env.deviceTokenId',
    'order.merchant.merchantName',
  ])('refuses "" for the optional %s (omit it or send null)', (path) => {
    expect(issuePaths(edit(MINIMAL.cashier, path, ''))).toContain(path);
    expect(issuePaths(edit(MINIMAL.cashier, path, null))).toEqual([]);
  });

  it('refuses "" for a required field', () => {
    expect(issuePaths(edit(MINIMAL.cashier, 'paymentRequestId', ''))).toEqual(['paymentRequestId']);
    expect(issuePaths(edit(MINIMAL.cashier, 'paymentMethod.paymentMethodType', ''))).toEqual([
      'paymentMethod.paymentMethodType',
    ]);
  });

  it('refuses an expiry time without an offset', () => {
    const request = edit(MINIMAL.cashier, 'paymentExpiryTime', '2020-01-01T12:01:01');
    expect(issuePaths(request)).toContain('paymentExpiryTime');
    expect(issuePaths(edit(MINIMAL.cashier, 'paymentExpiryTime', '2020-01-01T12:01:01+08:30'))).toEqual([]);
  });

  it('keeps unknown extra fields, at every level', () => {
    const request = {
      ...MINIMAL['user-presented'],
      newTopLevel: { nested: 'value' },
      order: {
        ...(MINIMAL['user-presented'].order as Json),
        extraOrderField: 'o',
        merchant: { ...merchant, store: { ...store, extraStoreField: 's' } },
      },
      paymentFactor: { inStorePaymentScenario: 'PaymentCode', extraFactor: 'f' },
    };
    const parsed = PayRequest.parse(request) as Json;
    expect(parsed).toEqual(request);
    expect(parsed.newTopLevel).toEqual({ nested: 'value' });
    expect((parsed.order as Json).extraOrderField).toBe('o');
    expect(((parsed.order as { merchant: { store: Json } }).merchant.store as Json).extraStoreField).toBe(
      's',
    );
    expect((parsed.paymentFactor as Json).extraFactor).toBe('f');
  });
});

describe('payModeOf', () => {
  it.each<[unknown, PayMode | undefined]>([
    [{ inStorePaymentScenario: 'PaymentCode' }, 'user-presented'],
    [{ inStorePaymentScenario: 'OrderCode' }, 'order-code'],
    [{ inStorePaymentScenario: 'EntryCode' }, 'entry-code'],
    [{ isCashierPayment: 'true' }, 'cashier'],
    [{ isCashierPayment: 'false', inStorePaymentScenario: 'OrderCode' }, 'order-code'],
    [{ isCashierPayment: 'false' }, undefined],
    [{ isCashierPayment: true }, undefined],
    [{ inStorePaymentScenario: null }, undefined],
    [{}, undefined],
    [null, undefined],
  ])('paymentFactor %j → %s', (paymentFactor, mode) => {
    expect(payModeOf({ paymentFactor } as Parameters<typeof payModeOf>[0])).toBe(mode);
  });

  it('isCashierPayment "true" decides the mode, as documented', () => {
    expect(
      payModeOf({ paymentFactor: { isCashierPayment: 'true', inStorePaymentScenario: 'PaymentCode' } }),
    ).toBe('cashier');
  });

  it('a request without paymentFactor has no mode', () => {
    expect(payModeOf({})).toBeUndefined();
  });
});

describe('PayResponse', () => {
  it('a user-presented S answer with every detail field', () => {
    const body = {
      result: ok,
      paymentRequestId: 'pay-req-1',
      paymentId: 'pay-1',
      paymentTime: '2020-01-01T12:01:01+08:30',
      paymentAmount: amount,
      customerId: 'cust-1',
      walletBrandName: 'Wallet',
      pspId: 'psp-1',
      acquirerId: 'acq-1',
      settlementAmount: { currency: 'USD', value: '74' },
      settlementQuote: { quoteId: 'q-1', quoteCurrencyPair: 'JPY/USD', quotePrice: '0.74' },
      somethingNew: 'kept',
    };
    const parsed = PayResponse.parse(body);
    expect(parsed).toEqual(body);
    expect(parsed.paymentTime).toBe('2020-01-01T12:01:01+08:30');
    expect(parsed.settlementQuote?.quotePrice).toBe('0.74');
  });

  it('an order-code answer carries orderCodeForm', () => {
    const orderCodeForm = {
      paymentMethodType: 'CONNECT_WALLET',
      expireTime: '2020-01-01T12:06:01+08:30',
      codeDetails: [
        { codeValueType: 'QRCODE', codeValue: 'https://qr.example/abc', displayType: 'MIDDLEIMAGE' },
        { codeValueType: 'BARCODE', codeValue: '281012020412345678' },
      ],
    };
    const parsed = PayResponse.parse({
      result: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' },
      orderCodeForm,
    });
    expect(parsed.orderCodeForm).toEqual(orderCodeForm);
    expect(OrderCodeForm.parse(orderCodeForm).codeDetails[1]?.codeValue).toBe('281012020412345678');
  });

  it('an entry-code answer carries paymentUrl', () => {
    const parsed = PayResponse.parse({ result: ok, paymentUrl: 'https://pay.example/entry/1' });
    expect(parsed.paymentUrl).toBe('https://pay.example/entry/1');
  });

  it('an F or U answer needs nothing but result', () => {
    expect(
      PayResponse.safeParse({ result: { resultCode: 'USER_BALANCE_NOT_ENOUGH', resultStatus: 'F' } }).success,
    ).toBe(true);
    expect(
      PayResponse.safeParse({ result: { resultCode: 'UNKNOWN_EXCEPTION', resultStatus: 'U' } }).success,
    ).toBe(true);
  });

  it.each<[string, Json, string]>([
    ['no result', {}, 'result'],
    [
      'a resultStatus outside S, F, U',
      { result: { resultCode: 'SUCCESS', resultStatus: 'P' } },
      'result.resultStatus',
    ],
    ['a paymentId of 65 characters', { result: ok, paymentId: 'p'.repeat(65) }, 'paymentId'],
    [
      'a numeric amount',
      { result: ok, paymentAmount: { currency: 'JPY', value: 100 } },
      'paymentAmount.value',
    ],
    ['a time without an offset', { result: ok, paymentTime: '2020-01-01T12:01:01' }, 'paymentTime'],
    [
      'a code without its value',
      { result: ok, orderCodeForm: { codeDetails: [{ codeValueType: 'QRCODE' }] } },
      'orderCodeForm.codeDetails.0.codeValue',
    ],
    ['an empty paymentUrl', { result: ok, paymentUrl: '' }, 'paymentUrl'],
  ])('rejects %s', (_name, body, path) => {
    const parsed = PayResponse.safeParse(body);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((issue) => issue.path.join('.'))).toContain(path);
  });
});

describe('RefundRequest', () => {
  const refund = { refundRequestId: 'refund-1', paymentRequestId: 'pay-req-1', refundAmount: amount };

  it('parses with a paymentRequestId, and with a paymentId instead', () => {
    expect(RefundRequest.parse(refund)).toEqual(refund);
    const byPaymentId = { refundRequestId: 'refund-1', paymentId: 'pay-1', refundAmount: amount };
    expect(RefundRequest.parse(byPaymentId)).toEqual(byPaymentId);
  });

  it('keeps a reason and unknown extra fields', () => {
    const body = { ...refund, refundReason: 'cancel window closed', extension: { a: 'b' } };
    expect(RefundRequest.parse(body)).toEqual(body);
  });

  it.each<[string, Json]>([
    ['neither reference', {}],
    ['both references null', { paymentRequestId: null, paymentId: null }],
  ])('refuses %s, naming the payment reference', (_name, refs) => {
    const parsed = RefundRequest.safeParse({ refundRequestId: 'refund-1', refundAmount: amount, ...refs });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['paymentRequestId']);
    expect(parsed.error?.issues[0]?.message).toContain('paymentId');
  });

  it('accepts a refundRequestId of 64 characters and refuses 65', () => {
    expect(RefundRequest.safeParse({ ...refund, refundRequestId: 'x'.repeat(64) }).success).toBe(true);
    const parsed = RefundRequest.safeParse({ ...refund, refundRequestId: 'x'.repeat(65) });
    expect(parsed.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['refundRequestId']);
  });

  it.each<[string, Json, string]>([
    ['no refundRequestId', { refundRequestId: undefined }, 'refundRequestId'],
    ['an empty refundRequestId', { refundRequestId: '' }, 'refundRequestId'],
    ['no refundAmount', { refundAmount: undefined }, 'refundAmount'],
    ['a decimal refund amount', { refundAmount: { currency: 'JPY', value: '1.5' } }, 'refundAmount.value'],
    ['a paymentRequestId of 65 characters', { paymentRequestId: 'r'.repeat(65) }, 'paymentRequestId'],
    ['an empty reason', { refundReason: '' }, 'refundReason'],
  ])('refuses %s', (_name, change, path) => {
    const parsed = RefundRequest.safeParse({ ...refund, ...change });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((issue) => issue.path.join('.'))).toContain(path);
  });
});

describe('RefundResponse', () => {
  it('an S answer with its refund and settlement fields', () => {
    const body = {
      result: ok,
      refundRequestId: 'refund-1',
      refundId: 'rf-1',
      refundTime: '2020-01-02T12:01:01.123Z',
      refundAmount: { currency: 'JPY', value: '50' },
      settlementAmount: { currency: 'USD', value: '37' },
      settlementQuote: { quoteId: 'q-1', quoteCurrencyPair: 'JPY/USD', quotePrice: '0.74' },
      somethingNew: 'kept',
    };
    expect(RefundResponse.parse(body)).toEqual(body);
  });

  it('an F answer needs nothing but result', () => {
    const parsed = RefundResponse.parse({
      result: { resultCode: 'REFUND_AMOUNT_EXCEED', resultStatus: 'F' },
    });
    expect(parsed.result.resultCode).toBe('REFUND_AMOUNT_EXCEED');
  });

  it.each<[string, Json, string]>([
    ['no result', {}, 'result'],
    ['a refundTime without an offset', { result: ok, refundTime: '2020-01-02 12:01:01' }, 'refundTime'],
    [
      'a numeric refund amount',
      { result: ok, refundAmount: { currency: 'JPY', value: 50 } },
      'refundAmount.value',
    ],
    ['a refundId of 65 characters', { result: ok, refundId: 'r'.repeat(65) }, 'refundId'],
  ])('rejects %s', (_name, body, path) => {
    const parsed = RefundResponse.safeParse(body);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((issue) => issue.path.join('.'))).toContain(path);
  });
});
