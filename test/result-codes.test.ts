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
