import type { PayRequestInput } from '../../src/index.js';

/** A minimal valid pay request of each mode, for engine and end-to-end tests. */
export function payRequest(
  paymentRequestId: string,
  mode: 'user-presented' | 'order-code' | 'entry-code' | 'cashier' = 'user-presented',
  extra: Record<string, unknown> = {},
): PayRequestInput {
  const amount = { currency: 'JPY', value: '100' };
  const store = { referenceStoreId: 'STORE-1', storeName: 'Test store' };
  const base = {
    paymentRequestId,
    paymentAmount: amount,
    order: {
      referenceOrderId: `ORDER-${paymentRequestId}`.slice(0, 64),
      orderDescription: 'a test order',
      orderAmount: amount,
      merchant: { referenceMerchantId: 'M-1', merchantName: 'Test merchant', merchantMCC: '5411' },
    },
    paymentMethod: { paymentMethodType: 'CONNECT_WALLET' },
    paymentFactor: {},
  };
  switch (mode) {
    case 'user-presented':
      base.order.merchant = { ...base.order.merchant, store } as typeof base.order.merchant;
      base.paymentMethod = {
        ...base.paymentMethod,
        paymentMethodId: '281012020100000000',
      } as typeof base.paymentMethod;
      base.paymentFactor = { isInStorePayment: 'true', inStorePaymentScenario: 'PaymentCode' };
      break;
    case 'order-code':
      (base.order as Record<string, unknown>).env = { userAgent: 'Mozilla/5.0 (test)' };
      base.paymentFactor = { isInStorePayment: 'true', inStorePaymentScenario: 'OrderCode' };
      break;
    case 'entry-code':
      base.order.merchant = { ...base.order.merchant, store } as typeof base.order.merchant;
      (base.order as Record<string, unknown>).env = { userAgent: 'Mozilla/5.0 (test)' };
      base.paymentFactor = { isInStorePayment: 'true', inStorePaymentScenario: 'EntryCode' };
      break;
    case 'cashier':
      (base.order as Record<string, unknown>).env = { terminalType: 'WEB' };
      base.paymentFactor = { isCashierPayment: 'true' };
      break;
  }
  return { ...base, ...extra } as PayRequestInput;
}
