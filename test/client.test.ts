import { inspect } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AlipayPlusClient, createAlipayPlusClient, type InquiryOutcome } from '../src/index.js';
import { generateTestKeyPair } from './helpers/keys.js';
import { type Reply, ScriptedServer } from './helpers/scripted-server.js';

const CLIENT_ID = 'TEST_CLIENT_0001';
const acqp = generateTestKeyPair();
const server = new ScriptedServer(acqp.publicPem, CLIENT_ID);
let baseUrl = '';
let client: AlipayPlusClient;

const ok = { resultCode: 'SUCCESS', resultStatus: 'S', resultMessage: 'success' };
const answer = (body: unknown): Reply => ({ status: 200, body });

beforeAll(async () => {
  baseUrl = await server.start();
  client = createAlipayPlusClient({
    baseUrl,
    clientId: CLIENT_ID,
    privateKey: acqp.privatePem,
    alipayPublicKey: server.alipay.publicPem,
    timeouts: { inquiryMs: 300, cancelMs: 300 },
  });
});
afterAll(async () => {
  await client.close();
  await server.stop();
});
beforeEach(() => {
  server.received.length = 0;
});

async function inquire(reply: Reply): Promise<InquiryOutcome> {
  server.reply = () => reply;
  return client.inquiryPayment({ paymentRequestId: 'req-1' });
}

describe('inquiryPayment answers', () => {
  it('S/S: a paid order, with its details', async () => {
    const outcome = await inquire(
      answer({
        result: ok,
        paymentResult: ok,
        paymentId: 'pay-1',
        paymentAmount: { currency: 'JPY', value: '100' },
        extraField: 'kept',
      }),
    );
    expect(outcome.kind).toBe('answer');
    if (outcome.kind !== 'answer') return;
    expect(outcome.result.resultStatus).toBe('S');
    expect(outcome.paymentResult?.resultStatus).toBe('S');
    expect(outcome.paymentId).toBe('pay-1');
    expect(outcome.extraField).toBe('kept');
    expect(JSON.parse(outcome.raw).paymentId).toBe('pay-1');
    expect(outcome.responseTime).toMatch(/^\d{4}-/);
  });

  it('S/F ORDER_IS_CLOSED', async () => {
    const outcome = await inquire(
      answer({
        result: ok,
        paymentResult: { resultCode: 'ORDER_IS_CLOSED', resultStatus: 'F', resultMessage: 'closed' },
      }),
    );
    expect(outcome).toMatchObject({
      kind: 'answer',
      paymentResult: { resultCode: 'ORDER_IS_CLOSED', resultStatus: 'F' },
    });
  });

  it('S/U PAYMENT_IN_PROCESS', async () => {
    const outcome = await inquire(
      answer({ result: ok, paymentResult: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' } }),
    );
    expect(outcome).toMatchObject({ kind: 'answer', paymentResult: { resultStatus: 'U' } });
  });

  it('F ORDER_NOT_EXIST', async () => {
    const outcome = await inquire(answer({ result: { resultCode: 'ORDER_NOT_EXIST', resultStatus: 'F' } }));
    expect(outcome).toMatchObject({
      kind: 'answer',
      result: { resultCode: 'ORDER_NOT_EXIST', resultStatus: 'F' },
    });
  });

  it('U UNKNOWN_EXCEPTION', async () => {
    const outcome = await inquire(answer({ result: { resultCode: 'UNKNOWN_EXCEPTION', resultStatus: 'U' } }));
    expect(outcome).toMatchObject({ kind: 'answer', result: { resultStatus: 'U' } });
  });
});

describe('no result received', () => {
  it.each<[string, Reply, string, number | undefined]>([
    [
      'a slow server past the timeout',
      { delayMs: 800, body: { result: ok, paymentResult: ok } },
      'timeout',
      undefined,
    ],
    ['a connection reset', { reset: true }, 'network', undefined],
    ['HTTP 500', { status: 500, body: { result: ok, paymentResult: ok } }, 'http-status', 500],
    ['HTTP 502', { status: 502, body: 'bad gateway' }, 'http-status', 502],
    ['HTTP 503', { status: 503, body: '' }, 'http-status', 503],
    ['a non-JSON body', { body: '<html>oops</html>' }, 'bad-json', 200],
    ['an empty body', { body: '' }, 'bad-json', 200],
    ['a schema violation', { body: { result: { resultCode: 'SUCCESS', resultStatus: 'X' } } }, 'schema', 200],
    ['S without paymentResult', { body: { result: ok } }, 'schema', 200],
    [
      'a missing signature',
      { body: { result: ok, paymentResult: ok }, sign: 'missing' },
      'bad-signature',
      200,
    ],
    [
      'a signature by another key',
      { body: { result: ok, paymentResult: ok }, sign: 'wrong' },
      'bad-signature',
      200,
    ],
    [
      'a body changed after signing',
      { body: { result: ok, paymentResult: ok }, sign: 'tampered' },
      'bad-signature',
      200,
    ],
  ])('%s', async (_name, reply, reason, httpStatus) => {
    const outcome = await inquire(reply);
    expect(outcome).toMatchObject({ kind: 'no-result', reason });
    if (outcome.kind === 'no-result') {
      expect(outcome.httpStatus).toBe(httpStatus);
      expect(outcome.detail.length).toBeGreaterThan(0);
    }
  });

  it('a signed S/S answer with a wrong signature is never an answer (fail closed)', async () => {
    const outcome = await inquire({ body: { result: ok, paymentResult: ok }, sign: 'wrong' });
    expect(outcome.kind).toBe('no-result');
    expect(outcome).not.toHaveProperty('paymentResult');
  });

  it('an abort through the signal while waiting', async () => {
    server.reply = () => ({ delayMs: 250, body: { result: ok, paymentResult: ok } });
    const controller = new AbortController();
    const pending = client.inquiryPayment({ paymentRequestId: 'req-1' }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    expect(await pending).toMatchObject({ kind: 'no-result', reason: 'aborted' });
  });

  it('an abort before sending sends nothing', async () => {
    const controller = new AbortController();
    controller.abort();
    const outcome = await client.inquiryPayment({ paymentRequestId: 'req-1' }, { signal: controller.signal });
    expect(outcome).toMatchObject({ kind: 'no-result', reason: 'aborted' });
    expect(server.received).toHaveLength(0);
  });

  it('a refused connection', async () => {
    const down = createAlipayPlusClient({
      baseUrl: 'http://127.0.0.1:1',
      clientId: CLIENT_ID,
      privateKey: acqp.privatePem,
      alipayPublicKey: server.alipay.publicPem,
    });
    expect(await down.inquiryPayment({ paymentRequestId: 'r' })).toMatchObject({
      kind: 'no-result',
      reason: 'network',
    });
    await down.close();
  });
});

describe('requests', () => {
  it('are signed over the exact bytes sent, with the headers Alipay+ expects', async () => {
    server.reply = () => answer({ result: ok, paymentResult: ok });
    await client.inquiryPayment({ paymentRequestId: 'req-42' });
    const [request] = server.received;
    expect(request?.path).toBe('/aps/api/v1/payments/inquiryPayment');
    expect(request?.body).toBe('{"paymentRequestId":"req-42"}');
    expect(request?.signatureValid).toBe(true);
    expect(request?.headers['client-id']).toBe(CLIENT_ID);
    expect(request?.headers['content-type']).toBe('application/json; charset=UTF-8');
    expect(request?.headers.signature).toMatch(/^algorithm=RSA256,keyVersion=1,signature=[A-Za-z0-9%]+$/);
  });

  it('send exactly one reference: paymentId when that is what was given', async () => {
    server.reply = () => answer({ result: ok, paymentResult: ok });
    await client.inquiryPayment({ paymentId: 'pay-9' });
    expect(JSON.parse(server.received[0]?.body ?? '{}')).toEqual({ paymentId: 'pay-9' });
  });

  it('cancelPayment goes to its own path and its answer is parsed', async () => {
    server.reply = () => answer({ result: ok, acquirerId: 'acq', pspId: 'psp' });
    const outcome = await client.cancelPayment({ paymentRequestId: 'req-7' });
    expect(server.received[0]?.path).toBe('/aps/api/v1/payments/cancelPayment');
    expect(server.received[0]?.signatureValid).toBe(true);
    expect(outcome).toMatchObject({ kind: 'answer', result: { resultStatus: 'S' }, pspId: 'psp' });
  });

  it('cancelPayment turns failures into no-result too', async () => {
    server.reply = () => ({ status: 503 });
    expect(await client.cancelPayment({ paymentRequestId: 'req-7' })).toMatchObject({
      kind: 'no-result',
      reason: 'http-status',
    });
  });

  it('a base URL with a path prefix is signed with the full path', async () => {
    const prefixed = createAlipayPlusClient({
      baseUrl: `${baseUrl}/gateway/`,
      clientId: CLIENT_ID,
      privateKey: acqp.privatePem,
      alipayPublicKey: server.alipay.publicPem,
    });
    server.reply = () => answer({ result: ok, paymentResult: ok });
    const outcome = await prefixed.inquiryPayment({ paymentRequestId: 'r' });
    expect(server.received[0]?.path).toBe('/gateway/aps/api/v1/payments/inquiryPayment');
    expect(server.received[0]?.signatureValid).toBe(true);
    expect(outcome.kind).toBe('answer');
    await prefixed.close();
  });
});

describe('creation', () => {
  const base = () => ({
    baseUrl: 'http://127.0.0.1:9',
    clientId: CLIENT_ID,
    privateKey: acqp.privatePem,
    alipayPublicKey: server.alipay.publicPem,
  });

  it('a malformed private key fails at creation with KEY_FORMAT', () => {
    expect(() => createAlipayPlusClient({ ...base(), privateKey: 'not-a-key!' })).toThrowError(
      expect.objectContaining({ code: 'KEY_FORMAT' }),
    );
  });

  it('swapped keys fail at creation with KEY_TYPE', () => {
    expect(() => createAlipayPlusClient({ ...base(), privateKey: server.alipay.publicPem })).toThrowError(
      expect.objectContaining({ code: 'KEY_TYPE' }),
    );
    expect(() => createAlipayPlusClient({ ...base(), alipayPublicKey: acqp.privatePem })).toThrowError(
      expect.objectContaining({ code: 'KEY_TYPE' }),
    );
  });

  it.each([
    ['a client ID of 65 characters', { clientId: 'c'.repeat(65) }, 'clientId'],
    ['a base URL that is not a URL', { baseUrl: 'open-sea.alipayplus.com' }, 'baseUrl'],
    ['a negative timeout', { timeouts: { inquiryMs: -1 } }, 'timeouts.inquiryMs'],
    // A plain object is no key: it used to pass the schema and fail later with a bare TypeError.
    ['a public key that is a plain object', { alipayPublicKey: {} as never }, 'alipayPublicKey'],
    ['a private key that is a plain object', { privateKey: { pem: 'x' } as never }, 'privateKey'],
  ])('%s fails with INVALID_OPTIONS naming the field', (_name, change, field) => {
    expect(() => createAlipayPlusClient({ ...base(), ...change })).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTIONS', message: expect.stringContaining(field) }),
    );
  });

  it('never shows the private key in inspect, JSON or errors', () => {
    const created = createAlipayPlusClient(base());
    const keyBody = acqp.privatePem.split('\n')[1] ?? '';
    expect(keyBody.length).toBeGreaterThan(20);
    const shown = [
      inspect(created, { depth: 10, showHidden: true }),
      JSON.stringify(created),
      String(created),
    ];
    for (const text of shown) {
      expect(text).not.toContain(keyBody);
      expect(text).not.toContain('PRIVATE KEY');
    }
    expect(inspect(created)).toContain('[redacted]');
    try {
      createAlipayPlusClient({ ...base(), clientId: '' });
    } catch (error) {
      expect(inspect(error, { depth: 10 })).not.toContain(keyBody);
    }
  });
});

describe('bad references', () => {
  it.each([
    ['an ID of 65 characters', { paymentRequestId: 'r'.repeat(65) }],
    ['an empty ID', { paymentId: '' }],
    ['both references', { paymentRequestId: 'r', paymentId: 'p' }],
  ])('%s is refused with INVALID_INPUT and nothing is sent', async (_name, ref) => {
    await expect(client.inquiryPayment(ref as never)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(client.cancelPayment(ref as never)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(server.received).toHaveLength(0);
  });
});
