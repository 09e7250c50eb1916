import { z } from 'zod';
import { Amount, Currency, DateTime, Id, optional, Result } from './common.js';
import { paymentDetailFields } from './inquiry-payment.js';

/**
 * The `pay` call (spec §8). Every scalar on the wire is a string (`"true"`, not `true`); optional
 * fields are omitted or `null`; objects are loose so that fields this library does not know travel
 * unchanged. What each mode requires on top of the common fields is checked here, so that a request
 * that lacks one is refused with the field's path before anything is stored or sent.
 */

/** How the user meets the payment. */
export const PAY_MODES = ['user-presented', 'order-code', 'entry-code', 'cashier'] as const;
export type PayMode = (typeof PAY_MODES)[number];

const WireBoolean = z.enum(['true', 'false'], { error: 'must be the string "true" or "false"' });
const Text = (max: number) =>
  z.string().min(1, 'must not be empty').max(max, `must be at most ${max} characters`);

export const Address = z.looseObject({
  region: optional(Text(2)),
  state: optional(Text(8)),
  city: optional(Text(32)),
  address1: optional(Text(256)),
  address2: optional(Text(256)),
  zipCode: optional(Text(32)),
});

export const Store = z.looseObject({
  referenceStoreId: Id,
  storeName: Text(256),
  storeMCC: optional(Text(32)),
  storeDisplayName: optional(Text(64)),
  storeTerminalId: optional(Text(64)),
  storeOperatorId: optional(Text(64)),
  storePhoneNo: optional(Text(16)),
  storeAddress: optional(Address),
});

export const Merchant = z.looseObject({
  referenceMerchantId: Id,
  merchantMCC: optional(Text(32)),
  merchantName: optional(Text(256)),
  merchantDisplayName: optional(Text(64)),
  merchantAddress: optional(Address),
  merchantRegisterDate: optional(DateTime),
  store: optional(Store),
});

export const TERMINAL_TYPES = ['WEB', 'WAP', 'APP', 'MINI_APP'] as const;

export const Env = z.looseObject({
  terminalType: optional(z.enum(TERMINAL_TYPES)),
  osType: optional(z.enum(['IOS', 'ANDROID'])),
  userAgent: optional(Text(1024)),
  deviceTokenId: optional(Text(64)),
  clientIp: optional(Text(64)),
  storeTerminalId: optional(Text(64)),
  storeTerminalRequestTime: optional(DateTime),
  cookieId: optional(Text(64)),
});

export const Order = z.looseObject({
  referenceOrderId: Id,
  orderDescription: Text(256),
  orderAmount: Amount,
  merchant: Merchant,
  goods: optional(z.array(z.looseObject({}))),
  shipping: optional(z.looseObject({})),
  buyer: optional(z.looseObject({ referenceBuyerId: optional(Id) })),
  env: optional(Env),
});

/** The payment method type sent when the caller names none (spec §8, an [open] point). */
export const DEFAULT_PAYMENT_METHOD_TYPE = 'CONNECT_WALLET';

export const PaymentMethod = z.looseObject({
  paymentMethodType: Text(64),
  /** For a user-presented pay: the payment code the merchant scanned. */
  paymentMethodId: optional(Text(128)),
  customerId: optional(Id),
  paymentMethodMetaData: optional(z.unknown()),
});

export const IN_STORE_SCENARIOS = ['PaymentCode', 'OrderCode', 'EntryCode'] as const;

export const PaymentFactor = z.looseObject({
  isInStorePayment: optional(WireBoolean),
  isCashierPayment: optional(WireBoolean),
  presentmentMode: optional(Text(32)),
  inStorePaymentScenario: optional(z.enum(IN_STORE_SCENARIOS)),
});

const payRequestFields = {
  paymentRequestId: Id,
  paymentAmount: Amount,
  order: Order,
  paymentMethod: PaymentMethod,
  paymentFactor: PaymentFactor,
  paymentExpiryTime: optional(DateTime),
  paymentNotifyUrl: optional(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })),
  paymentRedirectUrl: optional(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })),
  settlementStrategy: optional(z.looseObject({ settlementCurrency: Currency })),
  userRegion: optional(Text(2)),
  allowedPspRegions: optional(z.array(Text(2))),
};

type PayRequestShape = z.infer<z.ZodObject<typeof payRequestFields>>;

/** The mode a pay request is in, from its `paymentFactor`; undefined when it names none. */
export function payModeOf(request: {
  paymentFactor?: { isCashierPayment?: string | null; inStorePaymentScenario?: string | null } | null;
}): PayMode | undefined {
  const factor = request.paymentFactor;
  if (factor?.isCashierPayment === 'true') return 'cashier';
  switch (factor?.inStorePaymentScenario) {
    case 'PaymentCode':
      return 'user-presented';
    case 'OrderCode':
      return 'order-code';
    case 'EntryCode':
      return 'entry-code';
    default:
      return undefined;
  }
}

/** The fields each mode requires beyond the common ones, as `[path, test, why]`. */
const MODE_REQUIREMENTS: Record<PayMode, readonly [string[], (r: PayRequestShape) => boolean, string][]> = {
  'user-presented': [
    [
      ['order', 'merchant', 'store'],
      (r) => r.order.merchant.store != null,
      'a user-presented (PaymentCode) pay',
    ],
    [
      ['paymentMethod', 'paymentMethodId'],
      (r) => r.paymentMethod.paymentMethodId != null,
      'a user-presented (PaymentCode) pay: it is the payment code the merchant scanned',
    ],
  ],
  'order-code': [
    [['order', 'env', 'userAgent'], (r) => r.order.env?.userAgent != null, 'an order-code (OrderCode) pay'],
  ],
  'entry-code': [
    [['order', 'merchant', 'store'], (r) => r.order.merchant.store != null, 'an entry-code (EntryCode) pay'],
    [['order', 'env', 'userAgent'], (r) => r.order.env?.userAgent != null, 'an entry-code (EntryCode) pay'],
  ],
  cashier: [
    [['order', 'env', 'terminalType'], (r) => r.order.env?.terminalType != null, 'a cashier pay'],
    [
      ['order', 'env', 'osType'],
      (r) => !['APP', 'WAP'].includes(r.order.env?.terminalType ?? '') || r.order.env?.osType != null,
      'a cashier pay from an APP or WAP terminal',
    ],
  ],
};

/**
 * Request body of `pay`, with the fields its mode requires. The mode comes from `paymentFactor`:
 * `isCashierPayment: "true"` is cashier; otherwise `inStorePaymentScenario` names it.
 */
export const PayRequest = z.looseObject(payRequestFields).superRefine((request, ctx) => {
  const factor = request.paymentFactor;
  if (factor.isCashierPayment === 'true' && factor.inStorePaymentScenario != null) {
    ctx.addIssue({
      code: 'custom',
      path: ['paymentFactor'],
      message:
        'names two modes: isCashierPayment "true" and an inStorePaymentScenario; keep the one this pay is',
    });
    return;
  }
  const mode = payModeOf(request);
  if (!mode) {
    ctx.addIssue({
      code: 'custom',
      path: ['paymentFactor'],
      message:
        'names no mode: set inStorePaymentScenario ("PaymentCode", "OrderCode" or "EntryCode") or isCashierPayment "true"',
    });
    return;
  }
  for (const [path, present, why] of MODE_REQUIREMENTS[mode]) {
    if (!present(request)) ctx.addIssue({ code: 'custom', path, message: `is required for ${why}` });
  }
});
export type PayRequest = z.infer<typeof PayRequest>;
export type PayRequestInput = z.input<typeof PayRequest>;

/** The code an order-code pay creates for the user to scan. */
export const OrderCodeForm = z.looseObject({
  paymentMethodType: optional(Text(64)),
  expireTime: optional(DateTime),
  codeDetails: z.array(
    z.looseObject({
      codeValueType: Text(32),
      codeValue: Text(2048),
      displayType: optional(Text(32)),
    }),
  ),
});
export type OrderCodeForm = z.infer<typeof OrderCodeForm>;

/** Response body of `pay`. */
export const PayResponse = z.looseObject({
  result: Result,
  paymentRequestId: optional(Id),
  ...paymentDetailFields,
  orderCodeForm: optional(OrderCodeForm),
  /** An entry-code pay: the page the user opens. */
  paymentUrl: optional(Text(2048)),
});
export type PayResponse = z.infer<typeof PayResponse>;
