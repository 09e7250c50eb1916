import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type AlipayPlusClient,
  type AlipayPlusClientOptions,
  buildSignContent,
  createAlipayPlusClient,
  type PayRequestInput,
  parseSignatureHeader,
  type RefundRequestInput,
  verifyContent,
} from '../src/index.js';
import { generateTestKeyPair } from './helpers/keys.js';
import { type Reply, ScriptedServer } from './helpers/scripted-server.js';

// Spec §8 (pay), §9 (refund), and the fail-closed rules of §2 and §3.

const CLIENT_ID = 'TEST_CLIENT_0001';
const PAY_PATH = '/aps/api/v1/payments/pay';
const REFUND_PATH = '/aps/api/v1/payments/refund';
const acqp = generateTestKeyPair();
const server = new ScriptedServer(acqp.publicPem, CLIENT_ID);
let baseUrl = '';
let client: AlipayPlusClient;

const ok = { resultCode: 'SUCCESS', resultStatus: 'S', resultMessage: 'success' };
const answer = (body: unknown): Reply => ({ status: 200, body });

const payRequest: PayRequestInput = {
  paymentRequestId: 'pay-req-1',
  paymentAmount: { currency: 'JPY', value: '100' },
  order: {
    referenceOrderId: 'order-1',
    // Non-ASCII on purpose: the signed and sent bytes are UTF-8.
    orderDescription: '抹茶ラテ',
    orderAmount: { currency: 'JPY', value: '100' },
    merchant: {
      referenceMerchantId: 'merchant-1',
      merchantName: null,
      store: { referenceStoreId: 'store-1', storeName: 'Ginza' },
    },
    env: { storeTerminalId: 'T-1', storeTerminalRequestTime: '2020-01-01T12:01:01+08:30' },
  },
  paymentMethod: { paymentMethodType: 'CONNECT_WALLET', paymentMethodId: '281012020412345678' },
  paymentFactor: { isInStorePayment: 'true', inStorePaymentScenario: 'PaymentCode' },
  paymentExpiryTime: '2020-01-01T12:02:01+08:30',
  extensionField: { kept: 'as sent' },
};

const refundRequest: RefundRequestInput = {
  refundRequestId: 'refund-1',
  paymentRequestId: 'pay-req-1',
  refundAmount: { currency: 'JPY', value: '100' },
  refundReason: 'cancel window closed',
};

const paid = {
  result: ok,
  paymentRequestId: 'pay-req-1',
  paymentId: 'pay-1',
  paymentTime: '2020-01-01T12:01:05+08:30',
  paymentAmount: { currency: 'JPY', value: '100' },
  customerId: 'cust-1',
  walletBrandName: 'Wallet',
  pspId: 'psp-1',
  acquirerId: 'acq-1',
};
const refunded = {
  result: ok,
  refundRequestId: 'refund-1',
  refundId: 'rf-1',
  refundTime: '2020-01-02T12:01:01+08:30',
  refundAmount: { currency: 'JPY', value: '100' },
};

const options = (change: Partial<AlipayPlusClientOptions> = {}): AlipayPlusClientOptions => ({
  baseUrl,
  clientId: CLIENT_ID,
  privateKey: acqp.privatePem,
  alipayPublicKey: server.alipay.publicPem,
  ...change,
});

beforeAll(async () => {
  baseUrl = await server.start();
  // Generous timeouts: the timeout tests use clients of their own.
  client = createAlipayPlusClient(options({ timeouts: { payMs: 5_000, refundMs: 5_000 } }));
});
afterAll(async () => {
  await client.close();
  await server.stop();
});
beforeEach(() => {
  server.received.length = 0;
  server.reply = () => ({ status: 500 });
});

/** The two calls, so that every fail-closed rule is checked on both. */
const CALLS = {
  pay: { path: PAY_PATH, send: (c: AlipayPlusClient, o?: { signal?: AbortSignal }) => c.pay(payRequest, o) },
  refund: {
    path: REFUND_PATH,
    send: (c: AlipayPlusClient, o?: { signal?: AbortSignal }) => c.refund(refundRequest, o),
  },
} as const;
type CallName = keyof typeof CALLS;
const CALL_NAMES = Object.keys(CALLS) as CallName[];
const goodAnswer: Record<CallName, unknown> = { pay: paid, refund: refunded };

describe('requests', () => {
  it.each<[CallName, unknown]>([
    ['pay', payRequest],
    ['refund', refundRequest],
  ])(
    '%s sends exactly JSON.stringify(request), to its path, signed with the ACQP key',
    async (name, request) => {
      server.reply = () => answer(goodAnswer[name]);
      const outcome = await CALLS[name].send(client);
      expect(outcome.kind).toBe('answer');
      expect(server.received).toHaveLength(1);
      const [received] = server.received;
      expect(received?.path).toBe(CALLS[name].path);
      expect(received?.body).toBe(JSON.stringify(request));
      expect(received?.headers['content-length']).toBe(String(Buffer.byteLength(JSON.stringify(request))));
      expect(received?.signatureValid).toBe(true);
      expect(received?.headers['client-id']).toBe(CLIENT_ID);
      expect(received?.headers['content-type']).toBe('application/json; charset=UTF-8');
      expect(received?.headers.signature).toMatch(/^algorithm=RSA256,keyVersion=1,signature=[A-Za-z0-9%]+$/);
    },
  );

  it('the request signature covers method, path, client ID, request time and body', async () => {
    server.reply = () => answer(paid);
    await client.pay(payRequest);
    const [received] = server.received;
    const time = String(received?.headers['request-time']);
    expect(Number.isNaN(Date.parse(time))).toBe(false);
    const { signature } = parseSignatureHeader(String(received?.headers.signature));
    const content = (path: string, body: string) =>
      buildSignContent({ method: 'POST', path, clientId: CLIENT_ID, time, body });
    expect(verifyContent(content(PAY_PATH, JSON.stringify(payRequest)), signature, acqp.publicPem)).toBe(
      true,
    );
    // The same signature over another path or another body does not verify: it is bound to both.
    expect(verifyContent(content(REFUND_PATH, JSON.stringify(payRequest)), signature, acqp.publicPem)).toBe(
      false,
    );
    expect(
      verifyContent(
        content(PAY_PATH, JSON.stringify({ ...payRequest, paymentRequestId: 'x' })),
        signature,
        acqp.publicPem,
      ),
    ).toBe(false);
    // And not with any other key.
    expect(
      verifyContent(
        content(PAY_PATH, JSON.stringify(payRequest)),
        signature,
        generateTestKeyPair().publicPem,
      ),
    ).toBe(false);
  });

  it('refund by paymentId sends that reference only', async () => {
    server.reply = () => answer(refunded);
    const byPaymentId = {
      refundRequestId: 'refund-2',
      paymentId: 'pay-1',
      refundAmount: { currency: 'JPY', value: '1' },
    };
    await client.refund(byPaymentId);
    expect(server.received[0]?.body).toBe(JSON.stringify(byPaymentId));
  });

  it('a base URL with a path prefix signs the full pay path', async () => {
    const prefixed = createAlipayPlusClient(options({ baseUrl: `${baseUrl}/gateway/` }));
    server.reply = () => answer(paid);
    const outcome = await prefixed.pay(payRequest);
    expect(server.received[0]?.path).toBe(`/gateway${PAY_PATH}`);
    expect(server.received[0]?.signatureValid).toBe(true);
    expect(outcome.kind).toBe('answer');
    await prefixed.close();
  });
});

describe('signed answers', () => {
  it('pay S SUCCESS: an answer with every field', async () => {
    server.reply = () => answer({ ...paid, extraField: 'kept' });
    const outcome = await client.pay(payRequest);
    expect(outcome).toMatchObject({ kind: 'answer', ...paid, extraField: 'kept' });
    if (outcome.kind !== 'answer') return;
    expect(JSON.parse(outcome.raw)).toEqual({ ...paid, extraField: 'kept' });
    expect(outcome.responseTime).toMatch(/^\d{4}-\d{2}-\d{2}T/);
  });

  it('pay F: an answer carrying the failure code', async () => {
    server.reply = () =>
      answer({
        result: { resultCode: 'USER_BALANCE_NOT_ENOUGH', resultStatus: 'F', resultMessage: 'balance' },
      });
    expect(await client.pay(payRequest)).toMatchObject({
      kind: 'answer',
      result: { resultCode: 'USER_BALANCE_NOT_ENOUGH', resultStatus: 'F', resultMessage: 'balance' },
    });
  });

  it('pay U PAYMENT_IN_PROCESS: an answer, not a no-result', async () => {
    server.reply = () => answer({ result: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' } });
    expect(await client.pay(payRequest)).toMatchObject({
      kind: 'answer',
      result: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' },
    });
  });

  it('pay for an order code: the answer carries orderCodeForm', async () => {
    const orderCodeForm = {
      expireTime: '2020-01-01T12:06:01+08:30',
      codeDetails: [
        { codeValueType: 'QRCODE', codeValue: 'https://qr.example/abc', displayType: 'BIGIMAGE' },
      ],
    };
    server.reply = () => answer({ result: ok, orderCodeForm });
    const outcome = await client.pay({
      ...payRequest,
      order: { ...payRequest.order, env: { userAgent: 'Mozilla/5.0' } },
      paymentFactor: { inStorePaymentScenario: 'OrderCode' },
    });
    expect(outcome).toMatchObject({ kind: 'answer', orderCodeForm });
  });

  it('pay for an entry code: the answer carries paymentUrl', async () => {
    server.reply = () => answer({ result: ok, paymentUrl: 'https://pay.example/entry/1' });
    const entryCode: PayRequestInput = {
      ...payRequest,
      order: { ...payRequest.order, env: { userAgent: 'Mozilla/5.0' } },
      paymentFactor: { inStorePaymentScenario: 'EntryCode' },
    };
    expect(await client.pay(entryCode)).toMatchObject({
      kind: 'answer',
      paymentUrl: 'https://pay.example/entry/1',
    });
  });

  it('refund S SUCCESS: an answer with the refund fields', async () => {
    server.reply = () => answer(refunded);
    const outcome = await client.refund(refundRequest);
    expect(outcome).toMatchObject({ kind: 'answer', ...refunded });
    if (outcome.kind === 'answer') expect(JSON.parse(outcome.raw)).toEqual(refunded);
  });

  it.each([
    ['F', 'REFUND_AMOUNT_EXCEED'],
    ['U', 'UNKNOWN_EXCEPTION'],
  ])('refund %s %s: an answer carrying the code', async (resultStatus, resultCode) => {
    server.reply = () => answer({ result: { resultCode, resultStatus } });
    expect(await client.refund(refundRequest)).toMatchObject({
      kind: 'answer',
      result: { resultCode, resultStatus },
    });
  });
});

describe('no result received (fail closed)', () => {
  const cases: [string, (name: CallName) => Reply, string, number | undefined][] = [
    ['a missing signature', (name) => ({ body: goodAnswer[name], sign: 'missing' }), 'bad-signature', 200],
    [
      'a signature by another key',
      (name) => ({ body: goodAnswer[name], sign: 'wrong' }),
      'bad-signature',
      200,
    ],
    [
      'a body changed after signing',
      (name) => ({ body: goodAnswer[name], sign: 'tampered' }),
      'bad-signature',
      200,
    ],
    [
      'HTTP 500 with a signed answer',
      (name) => ({ status: 500, body: goodAnswer[name] }),
      'http-status',
      500,
    ],
    ['a non-JSON body', () => ({ body: '<html>oops</html>' }), 'bad-json', 200],
    ['an empty body', () => ({ body: '' }), 'bad-json', 200],
    [
      'a schema failure (status X)',
      () => ({ body: { result: { resultCode: 'SUCCESS', resultStatus: 'X' } } }),
      'schema',
      200,
    ],
    ['a schema failure (no result)', () => ({ body: { paymentId: 'p' } }), 'schema', 200],
    ['a connection reset', () => ({ reset: true }), 'network', undefined],
  ];
  const table = CALL_NAMES.flatMap((name) =>
    cases.map(([what, reply, reason, status]) => [name, what, reply(name), reason, status] as const),
  );

  it.each(table)('%s: %s', async (name, _what, reply, reason, httpStatus) => {
    server.reply = () => reply;
    const outcome = await CALLS[name].send(client);
    expect(outcome).toMatchObject({ kind: 'no-result', reason });
    expect(outcome).not.toHaveProperty('result');
    if (outcome.kind !== 'no-result') return;
    expect(outcome.httpStatus).toBe(httpStatus);
    expect(outcome.detail.length).toBeGreaterThan(0);
    expect(server.received).toHaveLength(1);
    expect(server.received[0]?.path).toBe(CALLS[name].path);
  });

  it('a schema failure names the call and the field', async () => {
    server.reply = () => answer({ result: ok, refundId: 'r'.repeat(65) });
    const outcome = await client.refund(refundRequest);
    expect(outcome).toMatchObject({ kind: 'no-result', reason: 'schema' });
    if (outcome.kind === 'no-result') expect(outcome.detail).toMatch(/refund.*refundId/);
  });

  it.each<[CallName, 'payMs' | 'refundMs', 'inquiryMs' | 'cancelMs']>([
    ['pay', 'payMs', 'inquiryMs'],
    ['refund', 'refundMs', 'cancelMs'],
  ])('%s times out after timeouts.%s, not before and not after', async (name, own, other) => {
    const slowServerMs = 1_500;
    server.reply = () => ({ delayMs: slowServerMs, body: goodAnswer[name] });
    // Its own timeout is short, the timeout of the other calls long: only the own one may apply.
    const fast = createAlipayPlusClient(options({ timeouts: { [own]: 150, [other]: 10_000 } }));
    const started = performance.now();
    const outcome = await CALLS[name].send(fast);
    const elapsed = performance.now() - started;
    await fast.close();
    expect(outcome).toMatchObject({ kind: 'no-result', reason: 'timeout' });
    if (outcome.kind === 'no-result') expect(outcome.detail).toContain('150 ms');
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(slowServerMs);
  });

  it.each<[CallName, 'payMs' | 'refundMs', 'inquiryMs' | 'cancelMs']>([
    ['pay', 'payMs', 'inquiryMs'],
    ['refund', 'refundMs', 'cancelMs'],
  ])('%s waits as long as timeouts.%s allows, whatever the other timeouts', async (name, own, other) => {
    server.reply = () => ({ delayMs: 300, body: goodAnswer[name] });
    const patient = createAlipayPlusClient(options({ timeouts: { [own]: 5_000, [other]: 50 } }));
    const outcome = await CALLS[name].send(patient);
    await patient.close();
    expect(outcome.kind).toBe('answer');
  });

  it.each(CALL_NAMES)('%s aborted through the signal while waiting', async (name) => {
    server.reply = () => ({ delayMs: 1_000, body: goodAnswer[name] });
    const controller = new AbortController();
    const started = performance.now();
    const pending = CALLS[name].send(client, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    expect(await pending).toMatchObject({ kind: 'no-result', reason: 'aborted' });
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it.each(CALL_NAMES)('%s aborted before sending sends nothing', async (name) => {
    const controller = new AbortController();
    controller.abort();
    expect(await CALLS[name].send(client, { signal: controller.signal })).toMatchObject({
      kind: 'no-result',
      reason: 'aborted',
    });
    expect(server.received).toHaveLength(0);
  });
});

describe('invalid requests are refused before anything is sent', () => {
  const without = (request: object, path: string): unknown => {
    const copy = JSON.parse(JSON.stringify(request));
    const keys = path.split('.');
    const last = keys.pop() as string;
    let node = copy;
    for (const key of keys) node = node[key];
    delete node[last];
    return copy;
  };

  it.each<[string, unknown, string]>([
    [
      'an order-code pay without order.env.userAgent',
      { ...payRequest, paymentFactor: { inStorePaymentScenario: 'OrderCode' } },
      'order.env.userAgent',
    ],
    [
      'a user-presented pay without its store',
      without(payRequest, 'order.merchant.store'),
      'order.merchant.store',
    ],
    [
      'a user-presented pay without the scanned code',
      without(payRequest, 'paymentMethod.paymentMethodId'),
      'paymentMethod.paymentMethodId',
    ],
    ['a pay without a mode', { ...payRequest, paymentFactor: {} }, 'paymentFactor'],
    [
      'a pay with a 65-character paymentRequestId',
      { ...payRequest, paymentRequestId: 'r'.repeat(65) },
      'paymentRequestId',
    ],
    [
      'a pay with a boolean isInStorePayment',
      { ...payRequest, paymentFactor: { isInStorePayment: true, inStorePaymentScenario: 'PaymentCode' } },
      'paymentFactor.isInStorePayment',
    ],
    [
      'a pay with a numeric amount',
      { ...payRequest, paymentAmount: { currency: 'JPY', value: 100 } },
      'paymentAmount.value',
    ],
  ])('%s: INVALID_INPUT naming %s', async (_name, request, path) => {
    server.reply = () => answer(paid);
    const error = await client.pay(request as PayRequestInput).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toMatchObject({ name: 'ValidationError', code: 'INVALID_INPUT' });
    expect((error as { issues: string[] }).issues.map((issue) => issue.split(':')[0])).toContain(path);
    expect((error as Error).message).toContain(`${path}:`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.received).toHaveLength(0);
  });

  it.each<[string, unknown, string]>([
    ['a refund without a payment reference', without(refundRequest, 'paymentRequestId'), 'paymentRequestId'],
    [
      'a refund with a 65-character refundRequestId',
      { ...refundRequest, refundRequestId: 'x'.repeat(65) },
      'refundRequestId',
    ],
    ['a refund without refundRequestId', without(refundRequest, 'refundRequestId'), 'refundRequestId'],
    ['a refund without an amount', without(refundRequest, 'refundAmount'), 'refundAmount'],
    ['a refund with an empty reason', { ...refundRequest, refundReason: '' }, 'refundReason'],
  ])('%s: INVALID_INPUT naming %s', async (_name, request, path) => {
    server.reply = () => answer(refunded);
    const error = await client.refund(request as RefundRequestInput).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toMatchObject({ name: 'ValidationError', code: 'INVALID_INPUT' });
    expect((error as { issues: string[] }).issues.map((issue) => issue.split(':')[0])).toContain(path);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.received).toHaveLength(0);
  });

  it('a request that is not an object at all is refused too', async () => {
    await expect(client.pay(null as never)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(client.refund('refund-1' as never)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(server.received).toHaveLength(0);
  });
});

describe('default timeouts (spec §1, §8, §9: 8 s)', () => {
  /** Lets real I/O and promise callbacks run without moving the (fake) clock. */
  async function settle(until: () => boolean, realMs = 5_000): Promise<void> {
    const deadline = performance.now() + realMs;
    while (!until() && performance.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
  }

  it.each(CALL_NAMES)('%s gives up after exactly 8000 ms when no timeout is configured', async (name) => {
    // Only setTimeout is faked: sockets, setImmediate and performance.now stay real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const defaults = createAlipayPlusClient(options());
    try {
      // The server would answer after a minute of fake time, which never passes here.
      server.reply = () => ({ delayMs: 60_000, body: goodAnswer[name] });
      let outcome: Awaited<ReturnType<(typeof CALLS)[CallName]['send']>> | undefined;
      void CALLS[name].send(defaults).then((value) => {
        outcome = value;
      });
      await settle(() => server.received.length === 1);
      expect(server.received).toHaveLength(1);

      vi.advanceTimersByTime(7_999);
      await settle(() => outcome !== undefined, 200);
      expect(outcome, 'gave up before 8000 ms').toBeUndefined();

      vi.advanceTimersByTime(1);
      await settle(() => outcome !== undefined);
      expect(outcome, 'still waiting at 8000 ms').toMatchObject({ kind: 'no-result', reason: 'timeout' });
      expect(outcome?.kind === 'no-result' && outcome.detail).toContain('8000 ms');
    } finally {
      vi.useRealTimers();
      await defaults.close();
    }
  });
});
