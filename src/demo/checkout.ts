import type { PayMode, PayRequestInput } from '../protocol/pay.js';

/**
 * The expiry the demo asks for in the modes whose maximum is long (cashier 10 min, codes 5 min): two
 * simulated minutes, so that a code nobody scans ends the run seconds, not minutes, after it starts.
 */
export const DEMO_LONG_EXPIRY_MS = 2 * 60_000;

/**
 * The mode of the demo's n-th payment: mostly user-presented (the merchant scans the user's code),
 * one in twenty each order code, entry code and cashier. By index, so a seed replays the same run.
 */
export function demoPayMode(index: number): PayMode {
  switch (index % 20) {
    case 6:
      return 'order-code';
    case 12:
      return 'entry-code';
    case 18:
      return 'cashier';
    default:
      return 'user-presented';
  }
}

/** A complete pay request of the given mode (by default the index's), as a merchant's checkout would send it. */
export function demoPayRequest(
  paymentRequestId: string,
  index: number,
  amount: { currency: string; value: string },
  now: number,
  mode: PayMode = demoPayMode(index),
): PayRequestInput {
  const store = { referenceStoreId: 'DEMO-STORE-1', storeName: 'Demo store', storeMCC: '5411' };
  const merchant = {
    referenceMerchantId: 'DEMO-MERCHANT',
    merchantName: 'Demo merchant',
    merchantMCC: '5411',
  };
  const order = {
    referenceOrderId: `ORDER-${paymentRequestId}`,
    orderDescription: `demo order ${index + 1}`,
    orderAmount: amount,
    merchant,
  };
  const base = {
    paymentRequestId,
    paymentAmount: amount,
    paymentMethod: { paymentMethodType: 'CONNECT_WALLET' },
  };
  const later = new Date(now + DEMO_LONG_EXPIRY_MS).toISOString();
  switch (mode) {
    case 'user-presented':
      return {
        ...base,
        order: { ...order, merchant: { ...merchant, store } },
        // The payment code the merchant scanned (18 digits, as wallets show them).
        paymentMethod: { ...base.paymentMethod, paymentMethodId: `2810${String(index).padStart(14, '0')}` },
        paymentFactor: { isInStorePayment: 'true', inStorePaymentScenario: 'PaymentCode' },
      };
    case 'order-code':
      return {
        ...base,
        order: { ...order, env: { userAgent: 'DemoPOS/1.0' } },
        paymentFactor: { isInStorePayment: 'true', inStorePaymentScenario: 'OrderCode' },
        paymentExpiryTime: later,
      };
    case 'entry-code':
      return {
        ...base,
        order: { ...order, merchant: { ...merchant, store }, env: { userAgent: 'DemoPOS/1.0' } },
        paymentFactor: { isInStorePayment: 'true', inStorePaymentScenario: 'EntryCode' },
        paymentExpiryTime: later,
      };
    case 'cashier':
      return {
        ...base,
        order: { ...order, env: { terminalType: 'WEB' } },
        paymentFactor: { isCashierPayment: 'true' },
        paymentExpiryTime: later,
      };
  }
}
