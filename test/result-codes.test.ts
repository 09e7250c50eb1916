import { describe, expect, it } from 'vitest';
import { lookupResultCode, RESULT_CODES } from '../src/index.js';

// Every code named in spec §4.2, §4.3 and §5, with the handling the spec gives it.
const SPEC_CALL_CODES = {
  SUCCESS: 'proceed',
  ORDER_NOT_EXIST: 'retry',
  UNKNOWN_EXCEPTION: 'retry',
  REQUEST_TRAFFIC_EXCEED_LIMIT: 'retry-slower',
  PROCESS_FAIL: 'needs-person',
  PARAM_ILLEGAL: 'needs-person',
  METHOD_NOT_SUPPORTED: 'needs-person',
  MEDIA_TYPE_NOT_ACCEPTABLE: 'needs-person',
  INVALID_API: 'needs-person',
  INVALID_CLIENT: 'needs-person',
  INVALID_SIGNATURE: 'needs-person',
  SIGNATURE_INVALID: 'needs-person',
  KEY_NOT_FOUND: 'needs-person',
  ACCESS_DENIED: 'needs-person',
  NO_INTERFACE_DEF: 'needs-person',
} as const;

const SPEC_PAYMENT_FAILURES = [
  'USER_BALANCE_NOT_ENOUGH',
  'RISK_REJECT',
  'USER_NOT_EXIST',
  'USER_STATUS_ABNORMAL',
  'UNAVAILABLE_PAYMENT_METHOD',
  'USER_PAYMENT_VERIFICATION_FAILED',
  'USER_KYC_NOT_QUALIFIED',
  'MERCHANT_NOT_REGISTERED',
  'MERCHANT_KYB_NOT_QUALIFIED',
  'PAYMENT_AMOUNT_EXCEED_LIMIT',
  'USER_AMOUNT_EXCEED_LIMIT',
  'PAYMENT_COUNT_EXCEED_LIMIT',
  'INVALID_TOKEN',
  'EXPIRED_ACCESS_TOKEN',
  'CURRENCY_NOT_SUPPORT',
  'BUSINESS_NOT_SUPPORT',
  'INVALID_CONTRACT',
  'EXPIRED_CODE',
  'INVALID_CODE',
];

describe('result-code catalog', () => {
  it.each(Object.entries(SPEC_CALL_CODES))('inquiry call-level %s → %s', (code, action) => {
    const entry = RESULT_CODES.find((e) => e.code === code && e.scopes.includes('inquiryPayment'));
    expect(entry, `${code} missing from the catalog`).toBeDefined();
    const found = lookupResultCode('inquiryPayment', code, entry?.status ?? 'S');
    expect(found.known).toBe(true);
    expect(found.action).toBe(action);
    expect(found.meaning.length).toBeGreaterThan(10);
  });

  it.each(SPEC_PAYMENT_FAILURES)('payment-level failure %s is final with status F', (code) => {
    const found = lookupResultCode('paymentResult', code, 'F');
    expect(found).toMatchObject({ known: true, status: 'F', action: 'final' });
  });

  it('payment-level SUCCESS, PAYMENT_IN_PROCESS and ORDER_IS_CLOSED', () => {
    expect(lookupResultCode('paymentResult', 'SUCCESS', 'S')).toMatchObject({ known: true, action: 'final' });
    expect(lookupResultCode('paymentResult', 'PAYMENT_IN_PROCESS', 'U')).toMatchObject({
      known: true,
      action: 'retry',
    });
    expect(lookupResultCode('paymentResult', 'ORDER_IS_CLOSED', 'F')).toMatchObject({
      known: true,
      action: 'final',
    });
  });

  it('cancel codes: success is final, U retries, window exceeded means refund, config faults need a person', () => {
    expect(lookupResultCode('cancelPayment', 'SUCCESS', 'S').action).toBe('final');
    expect(lookupResultCode('cancelPayment', 'UNKNOWN_EXCEPTION', 'U').action).toBe('retry');
    expect(lookupResultCode('cancelPayment', 'REQUEST_TRAFFIC_EXCEED_LIMIT', 'U').action).toBe(
      'retry-slower',
    );
    expect(lookupResultCode('cancelPayment', 'CANCEL_WINDOW_EXCEED', 'F').action).toBe('refund-instead');
    for (const code of [
      'PROCESS_FAIL',
      'ACCESS_DENIED',
      'KEY_NOT_FOUND',
      'PARAM_ILLEGAL',
      'INVALID_SIGNATURE',
    ]) {
      expect(lookupResultCode('cancelPayment', code, 'F').action).toBe('needs-person');
    }
  });

  it.each([
    ['inquiryPayment', 'S', 'proceed'],
    ['inquiryPayment', 'F', 'final'],
    ['inquiryPayment', 'U', 'retry'],
    ['cancelPayment', 'S', 'final'],
    ['cancelPayment', 'F', 'needs-person'],
    ['cancelPayment', 'U', 'retry'],
    ['paymentResult', 'F', 'final'],
    ['paymentResult', 'U', 'retry'],
  ] as const)('an unknown %s code with status %s falls back to %s', (scope, status, action) => {
    const found = lookupResultCode(scope, 'SOMETHING_NEW', status);
    expect(found).toMatchObject({ known: false, action, code: 'SOMETHING_NEW', status });
  });

  it('a known code with an unexpected status is judged by the status received', () => {
    // ORDER_NOT_EXIST is an F; arriving as U it is an ordinary U.
    expect(lookupResultCode('inquiryPayment', 'ORDER_NOT_EXIST', 'U')).toMatchObject({
      known: false,
      action: 'retry',
    });
    // A SUCCESS code with F status must never count as a success.
    expect(lookupResultCode('paymentResult', 'SUCCESS', 'F')).toMatchObject({
      known: false,
      action: 'final',
      status: 'F',
    });
  });

  it('a code is not reachable from a scope it does not belong to', () => {
    expect(lookupResultCode('inquiryPayment', 'CANCEL_WINDOW_EXCEED', 'F').known).toBe(false);
    expect(lookupResultCode('cancelPayment', 'ORDER_NOT_EXIST', 'F').known).toBe(false);
  });
});

// Spec §8: pay answers. U or no result means "unknown"; F is the payment's failure unless it is a fault
// on our side or an inconsistent repeat, which need a person.
describe('pay result codes', () => {
  it('SUCCESS is final, PAYMENT_IN_PROCESS and UNKNOWN_EXCEPTION retry', () => {
    expect(lookupResultCode('pay', 'SUCCESS', 'S')).toMatchObject({
      known: true,
      status: 'S',
      action: 'final',
    });
    expect(lookupResultCode('pay', 'PAYMENT_IN_PROCESS', 'U')).toMatchObject({
      known: true,
      action: 'retry',
    });
    expect(lookupResultCode('pay', 'UNKNOWN_EXCEPTION', 'U')).toMatchObject({ known: true, action: 'retry' });
    expect(lookupResultCode('pay', 'REQUEST_TRAFFIC_EXCEED_LIMIT', 'U')).toMatchObject({
      known: true,
      action: 'retry-slower',
    });
  });

  it('REPEAT_REQ_INCONSISTENT needs a person', () => {
    expect(lookupResultCode('pay', 'REPEAT_REQ_INCONSISTENT', 'F')).toMatchObject({
      known: true,
      status: 'F',
      action: 'needs-person',
    });
  });

  it.each(SPEC_PAYMENT_FAILURES)('payment failure %s answered to a pay is final', (code) => {
    expect(lookupResultCode('pay', code, 'F')).toMatchObject({ known: true, status: 'F', action: 'final' });
  });

  it.each(Object.entries(SPEC_CALL_CODES).filter(([, action]) => action === 'needs-person'))(
    'integration fault %s answered to a pay needs a person',
    (code) => {
      expect(lookupResultCode('pay', code, 'F')).toMatchObject({ known: true, action: 'needs-person' });
    },
  );

  it.each([
    ['F', 'final'],
    ['U', 'retry'],
    ['S', 'final'],
  ] as const)('an unknown pay code with status %s falls back to %s', (status, action) => {
    expect(lookupResultCode('pay', 'SOMETHING_NEW', status)).toMatchObject({
      known: false,
      code: 'SOMETHING_NEW',
      status,
      action,
    });
  });

  it('a pay SUCCESS arriving with F or U is never a success', () => {
    expect(lookupResultCode('pay', 'SUCCESS', 'F')).toMatchObject({
      known: false,
      action: 'final',
      status: 'F',
    });
    expect(lookupResultCode('pay', 'SUCCESS', 'U')).toMatchObject({
      known: false,
      action: 'retry',
      status: 'U',
    });
  });

  it('codes of other calls are not reachable from pay', () => {
    // ORDER_NOT_EXIST keeps an inquiry going; to a pay it is an ordinary (unknown) F.
    expect(lookupResultCode('pay', 'ORDER_NOT_EXIST', 'F')).toMatchObject({ known: false, action: 'final' });
    expect(lookupResultCode('pay', 'CANCEL_WINDOW_EXCEED', 'F').known).toBe(false);
    expect(lookupResultCode('pay', 'REFUND_AMOUNT_EXCEED', 'F').known).toBe(false);
  });
});

// Spec §9: refund answers. S refunded; F a person; U or no result: the identical request again.
describe('refund result codes', () => {
  it('SUCCESS is final, UNKNOWN_EXCEPTION retries', () => {
    expect(lookupResultCode('refund', 'SUCCESS', 'S')).toMatchObject({
      known: true,
      status: 'S',
      action: 'final',
    });
    expect(lookupResultCode('refund', 'UNKNOWN_EXCEPTION', 'U')).toMatchObject({
      known: true,
      action: 'retry',
    });
  });

  it.each(['REFUND_AMOUNT_EXCEED', 'PROCESS_FAIL', 'PARAM_ILLEGAL', 'ACCESS_DENIED'])(
    '%s needs a person',
    (code) => {
      expect(lookupResultCode('refund', code, 'F')).toMatchObject({ known: true, action: 'needs-person' });
    },
  );

  it.each([
    ['F', 'needs-person'],
    ['U', 'retry'],
    ['S', 'final'],
  ] as const)('an unknown refund code with status %s falls back to %s', (status, action) => {
    expect(lookupResultCode('refund', 'SOMETHING_NEW', status)).toMatchObject({
      known: false,
      status,
      action,
    });
  });

  it('a payment failure code is not a refund code: its F still needs a person', () => {
    expect(lookupResultCode('refund', 'USER_BALANCE_NOT_ENOUGH', 'F')).toMatchObject({
      known: false,
      action: 'needs-person',
    });
    expect(lookupResultCode('refund', 'REPEAT_REQ_INCONSISTENT', 'F').known).toBe(false);
  });

  it('the refund and pay codes do not leak into inquiry or cancel', () => {
    expect(lookupResultCode('inquiryPayment', 'REPEAT_REQ_INCONSISTENT', 'F').known).toBe(false);
    expect(lookupResultCode('cancelPayment', 'REFUND_AMOUNT_EXCEED', 'F').known).toBe(false);
    // SUCCESS still means "read paymentResult" to an inquiry, not "final" as it does to a pay.
    expect(lookupResultCode('inquiryPayment', 'SUCCESS', 'S').action).toBe('proceed');
  });
});
