import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AlipayPlusClient, createAlipayPlusClient } from '../src/index.js';
import {
  createSimulator,
  FAULT_KINDS,
  type Simulator,
  type SimulatorOptions,
} from '../src/simulator/index.js';
import { generateTestKeyPair } from './helpers/keys.js';
import { eventually, NotifyReceiver } from './helpers/notify-receiver.js';

const CLIENT_ID = 'SIM_TEST_CLIENT';
const acqp = generateTestKeyPair();
const alipay = generateTestKeyPair();
const T0 = Date.UTC(2026, 0, 15, 3, 0, 0); // 11:00 UTC+8
let t = T0;
const open: { sim: Simulator; client: AlipayPlusClient }[] = [];

async function setup(
  options: Partial<SimulatorOptions> = {},
  timeouts = { inquiryMs: 1_500, cancelMs: 1_500 },
) {
  t = T0;
  const sim = createSimulator({
    clientId: CLIENT_ID,
    acqpPublicKey: acqp.publicPem,
    privateKey: alipay.privatePem,
    now: () => t,
    ...options,
  });
  const url = await sim.start();
  const client = createAlipayPlusClient({
    baseUrl: url,
    clientId: CLIENT_ID,
    privateKey: acqp.privatePem,
    alipayPublicKey: sim.publicKeyPem,
    timeouts,
  });
  open.push({ sim, client });
  return { sim, client, url };
}

afterEach(async () => {
  for (const { sim, client } of open.splice(0)) {
    await client.close();
    await sim.stop();
  }
});

const ref = (paymentRequestId: string) => ({ paymentRequestId });

describe('order paths, through the real client', () => {
  it('paid: in process until the wallet decides, then S/S with the payment details', async () => {
    const { sim, client } = await setup();
    sim.createOrder({
      paymentRequestId: 'P1',
      amount: { currency: 'JPY', value: '500' },
      scenario: { decideAfterMs: 2_000 },
    });
    expect(await client.inquiryPayment(ref('P1'))).toMatchObject({
      kind: 'answer',
      result: { resultStatus: 'S' },
      paymentResult: { resultCode: 'PAYMENT_IN_PROCESS', resultStatus: 'U' },
    });
    t += 2_000;
    expect(await client.inquiryPayment(ref('P1'))).toMatchObject({
      kind: 'answer',
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' },
      paymentAmount: { currency: 'JPY', value: '500' },
      paymentTime: new Date(T0 + 2_000).toISOString(),
    });
    expect(sim.order('P1')).toMatchObject({
      status: 'paid',
      charged: true,
      refunded: false,
      decidedAt: T0 + 2_000,
    });
  });

  it('failed: S/F with the wallet code', async () => {
    const { sim, client } = await setup();
    sim.createOrder({
      paymentRequestId: 'F1',
      scenario: { decideAfterMs: 0, decision: 'failed', failCode: 'RISK_REJECT' },
    });
    expect(await client.inquiryPayment(ref('F1'))).toMatchObject({
      paymentResult: { resultCode: 'RISK_REJECT', resultStatus: 'F' },
    });
    expect(sim.order('F1')).toMatchObject({ status: 'failed', charged: false, failCode: 'RISK_REJECT' });
  });

  it('closed at expiry when the wallet never decides', async () => {
    const { sim, client } = await setup();
    sim.createOrder({ paymentRequestId: 'C1', scenario: { decideAfterMs: null } });
    t += 59_999;
    expect(await client.inquiryPayment(ref('C1'))).toMatchObject({ paymentResult: { resultStatus: 'U' } });
    t += 1;
    expect(await client.inquiryPayment(ref('C1'))).toMatchObject({
      paymentResult: { resultCode: 'ORDER_IS_CLOSED', resultStatus: 'F' },
    });
    expect(sim.order('C1')?.status).toBe('closed');
  });

  it('a decision scripted after expiry never happens: the order closes unpaid', async () => {
    const { sim, client } = await setup();
    sim.createOrder({ paymentRequestId: 'C2', scenario: { decideAfterMs: 70_000 } });
    t += 80_000;
    expect(await client.inquiryPayment(ref('C2'))).toMatchObject({
      paymentResult: { resultCode: 'ORDER_IS_CLOSED' },
    });
    expect(sim.order('C2')).toMatchObject({ status: 'closed', charged: false });
  });

  it('late appearance: ORDER_NOT_EXIST until Alipay+ knows the order', async () => {
    const { sim, client } = await setup();
    sim.createOrder({ paymentRequestId: 'L1', scenario: { appearAfterMs: 5_000, decideAfterMs: 6_000 } });
    expect(await client.inquiryPayment(ref('L1'))).toMatchObject({
      result: { resultCode: 'ORDER_NOT_EXIST', resultStatus: 'F' },
    });
    t += 5_000;
    expect(await client.inquiryPayment(ref('L1'))).toMatchObject({ paymentResult: { resultStatus: 'U' } });
    t += 1_000;
    expect(await client.inquiryPayment(ref('L1'))).toMatchObject({ paymentResult: { resultStatus: 'S' } });
  });

  it('cancel before payment: the wallet never charges, inquiries say closed', async () => {
    const { sim, client } = await setup();
    sim.createOrder({ paymentRequestId: 'X1', scenario: { decideAfterMs: 5_000 } });
    t += 1_000;
    expect(await client.cancelPayment(ref('X1'))).toMatchObject({
      kind: 'answer',
      result: { resultCode: 'SUCCESS', resultStatus: 'S' },
    });
    t += 10_000;
    expect(await client.inquiryPayment(ref('X1'))).toMatchObject({
      paymentResult: { resultCode: 'ORDER_IS_CLOSED' },
    });
    expect(sim.order('X1')).toMatchObject({
      status: 'cancelled',
      charged: false,
      refunded: false,
      cancelledAt: T0 + 1_000,
    });
  });

  it('cancel after payment: succeeds and refunds the user', async () => {
    const { sim, client } = await setup();
    sim.createOrder({ paymentRequestId: 'X2', scenario: { decideAfterMs: 1_000 } });
    t += 2_000;
    expect(await client.cancelPayment(ref('X2'))).toMatchObject({ result: { resultStatus: 'S' } });
    expect(sim.order('X2')).toMatchObject({ status: 'cancelled', charged: true, refunded: true });
  });

  it('a repeated cancel answers the same success and changes nothing', async () => {
    const { sim, client } = await setup();
    sim.createOrder({ paymentRequestId: 'X3' });
    await client.cancelPayment(ref('X3'));
    t += 5_000;
    expect(await client.cancelPayment(ref('X3'))).toMatchObject({
      result: { resultCode: 'SUCCESS', resultStatus: 'S' },
    });
    expect(sim.order('X3')).toMatchObject({ cancelRequests: 2, cancelledAt: T0 });
  });

  it('a cancel after the window (00:15 UTC+8 next day) is CANCEL_WINDOW_EXCEED', async () => {
    const { sim, client } = await setup();
    sim.createOrder({ paymentRequestId: 'X4', scenario: { decideAfterMs: 1_000 } });
    t = Date.parse('2026-01-16T00:15:00+08:00');
    expect(await client.cancelPayment(ref('X4'))).toMatchObject({ result: { resultStatus: 'S' } });
    sim.createOrder({ paymentRequestId: 'X5', scenario: { decideAfterMs: 1_000 } });
    t = Date.parse('2026-01-17T00:15:00.001+08:00');
    expect(await client.cancelPayment(ref('X5'))).toMatchObject({
      result: { resultCode: 'CANCEL_WINDOW_EXCEED', resultStatus: 'F' },
    });
    expect(sim.order('X5')).toMatchObject({ status: 'paid', cancelled: false });
  });

  it('a cancel scripted to answer U twice succeeds on the third try', async () => {
    const { sim, client } = await setup();
    sim.createOrder({ paymentRequestId: 'X6', scenario: { decideAfterMs: null, cancelUnknownTimes: 2 } });
    const codes = [];
    for (let i = 0; i < 3; i++) {
      const outcome = await client.cancelPayment(ref('X6'));
      codes.push(outcome.kind === 'answer' ? outcome.result.resultStatus : 'none');
    }
    expect(codes).toEqual(['U', 'U', 'S']);
  });

  it('an unknown order: ORDER_NOT_EXIST to inquiries and cancels; by paymentId works once known', async () => {
    const { sim, client } = await setup();
    expect(await client.inquiryPayment(ref('NOPE'))).toMatchObject({
      result: { resultCode: 'ORDER_NOT_EXIST' },
    });
    expect(await client.cancelPayment(ref('NOPE'))).toMatchObject({
      result: { resultCode: 'ORDER_NOT_EXIST', resultStatus: 'F' },
    });
    const order = sim.createOrder({ paymentRequestId: 'K1', scenario: { decideAfterMs: 0 } });
    expect(await client.inquiryPayment({ paymentId: order.paymentId })).toMatchObject({
      paymentRequestId: 'K1',
      paymentResult: { resultStatus: 'S' },
    });
  });

  it('pay creates the order (idempotently) and answers "in process"', async () => {
    const { sim, client } = await setup();
    const body = {
      paymentRequestId: 'PAY-1',
      paymentAmount: { currency: 'JPY', value: '300' },
      order: {
        referenceOrderId: 'order-1',
        orderDescription: 'Coffee',
        orderAmount: { currency: 'JPY', value: '300' },
        merchant: { referenceMerchantId: 'M1', store: { referenceStoreId: 'S1', storeName: 'Ginza' } },
      },
      paymentMethod: { paymentMethodType: 'CONNECT_WALLET', paymentMethodId: '281012020412345678' },
      paymentFactor: { inStorePaymentScenario: 'PaymentCode' as const },
      paymentExpiryTime: new Date(T0 + 30_000).toISOString(),
    };
    const first = await client.pay(body);
    const second = await client.pay(body);
    expect(first).toMatchObject({ kind: 'answer', result: { resultStatus: 'U' } });
    expect(second.kind === 'answer' && first.kind === 'answer' && second.paymentId === first.paymentId).toBe(
      true,
    );
    expect(sim.orders()).toHaveLength(1);
    expect(sim.order('PAY-1')).toMatchObject({ expiresAt: T0 + 30_000, amount: { value: '300' } });
  });
});

describe('request authentication', () => {
  it('a request signed with another key gets F INVALID_SIGNATURE, and the call is logged as such', async () => {
    const { sim, url } = await setup();
    const stranger = generateTestKeyPair();
    const client = createAlipayPlusClient({
      baseUrl: url,
      clientId: CLIENT_ID,
      privateKey: stranger.privatePem,
      alipayPublicKey: sim.publicKeyPem,
    });
    expect(await client.inquiryPayment(ref('A1'))).toMatchObject({
      result: { resultCode: 'INVALID_SIGNATURE', resultStatus: 'F' },
    });
    expect(sim.calls()[0]).toMatchObject({ signatureValid: false, resultCode: 'INVALID_SIGNATURE' });
    await client.close();
  });

  it('an unknown Client-Id gets F INVALID_CLIENT', async () => {
    const { sim, url } = await setup();
    const client = createAlipayPlusClient({
      baseUrl: url,
      clientId: 'SOMEONE_ELSE',
      privateKey: acqp.privatePem,
      alipayPublicKey: sim.publicKeyPem,
    });
    expect(await client.inquiryPayment(ref('A2'))).toMatchObject({
      result: { resultCode: 'INVALID_CLIENT' },
    });
    await client.close();
  });
});

describe('faults: each lands as the client outcome it imitates', () => {
  const expected: Record<(typeof FAULT_KINDS)[number], object> = {
    latency: { kind: 'answer', paymentResult: { resultStatus: 'S' } },
    timeout: { kind: 'no-result', reason: 'timeout' },
    reset: { kind: 'no-result', reason: 'network' },
    'http-500': { kind: 'no-result', reason: 'http-status', httpStatus: 500 },
    'http-502': { kind: 'no-result', reason: 'http-status', httpStatus: 502 },
    'http-503': { kind: 'no-result', reason: 'http-status', httpStatus: 503 },
    'bad-json': { kind: 'no-result', reason: 'bad-json' },
    'missing-signature': { kind: 'no-result', reason: 'bad-signature' },
    'wrong-signature': { kind: 'no-result', reason: 'bad-signature' },
    'unknown-exception': { kind: 'answer', result: { resultCode: 'UNKNOWN_EXCEPTION', resultStatus: 'U' } },
    'traffic-limit': {
      kind: 'answer',
      result: { resultCode: 'REQUEST_TRAFFIC_EXCEED_LIMIT', resultStatus: 'U' },
    },
    'drop-request': { kind: 'no-result', reason: 'network' },
  };

  it.each(FAULT_KINDS)('%s', async (kind) => {
    const { sim, client } = await setup({ holdMs: 5_000 });
    sim.createOrder({
      paymentRequestId: `F-${kind}`,
      scenario: { decideAfterMs: 0, faults: { sequence: [kind], latencyMs: [60, 60] } },
    });
    const started = performance.now();
    expect(await client.inquiryPayment(ref(`F-${kind}`))).toMatchObject(expected[kind]);
    if (kind === 'latency') expect(performance.now() - started).toBeGreaterThanOrEqual(55);
    expect(sim.calls()[0]?.fault).toBe(kind);
    // The script covers the first call only: the next one is clean.
    expect(await client.inquiryPayment(ref(`F-${kind}`))).toMatchObject({
      kind: 'answer',
      paymentResult: { resultStatus: 'S' },
    });
  });

  it('a cancel lost to a 503 was not processed; one lost to a reset was', async () => {
    const { sim, client } = await setup();
    sim.createOrder({
      paymentRequestId: 'Q1',
      scenario: { decideAfterMs: null, faults: { sequence: ['http-503'] } },
    });
    sim.createOrder({
      paymentRequestId: 'Q2',
      scenario: { decideAfterMs: null, faults: { sequence: ['reset'] } },
    });
    expect(await client.cancelPayment(ref('Q1'))).toMatchObject({ kind: 'no-result', reason: 'http-status' });
    expect(await client.cancelPayment(ref('Q2'))).toMatchObject({ kind: 'no-result', reason: 'network' });
    expect(sim.order('Q1')?.cancelled).toBe(false);
    expect(sim.order('Q2')?.cancelled).toBe(true);
  });

  it('seeded fault rates reproduce exactly from the seed, and differ with another seed', async () => {
    const run = async (seed: number) => {
      const { sim, client } = await setup({
        seed,
        faults: { rates: { 'http-500': 0.3, 'unknown-exception': 0.3 } },
      });
      sim.createOrder({ paymentRequestId: 'R1', scenario: { decideAfterMs: null } });
      for (let i = 0; i < 30; i++) await client.inquiryPayment(ref('R1'));
      return sim.calls().map((c) => c.fault ?? '-');
    };
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a.filter((f) => f !== '-').length).toBeGreaterThan(5);
  });
});

describe('notifications', () => {
  let receiver: NotifyReceiver;
  let notifyUrl = '';
  let simKey = '';
  beforeAll(async () => {
    receiver = new NotifyReceiver(() => simKey, acqp.privatePem, CLIENT_ID);
    notifyUrl = await receiver.start();
  });
  afterAll(async () => {
    await receiver.stop();
  });
  afterEach(() => {
    receiver.received.length = 0;
    receiver.script = [];
  });

  async function notifying(options: Partial<SimulatorOptions> = {}) {
    const env = await setup({
      notifyRetryScheduleMs: [0, 1_000, 1_000],
      notifyAckTimeoutMs: 300,
      ...options,
    });
    simKey = env.sim.publicKeyPem;
    return env;
  }

  it('arrive signed when the wallet decides, and stop once acked', async () => {
    const { sim } = await notifying();
    sim.createOrder({ paymentRequestId: 'N1', notifyUrl, scenario: { decideAfterMs: 2_000 } });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(receiver.received).toHaveLength(0);
    t += 2_000;
    await eventually(() => sim.notifications().length === 1);
    expect(receiver.received[0]).toMatchObject({
      signatureValid: true,
      body: { paymentRequestId: 'N1', paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' } },
    });
    expect(receiver.received[0]?.headers['client-id']).toBe(CLIENT_ID);
    expect(sim.notifications()[0]).toMatchObject({ result: 'acked', attempt: 1 });
    t += 10_000;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(receiver.received).toHaveLength(1);
  });

  it('are retried on the schedule after a 500, an F ack, an unsigned ack or no ack, until acked', async () => {
    const { sim } = await notifying({ notifyRetryScheduleMs: [0, 1_000, 1_000, 1_000, 1_000] });
    receiver.script = ['http-500', 'ack-F', 'ack-unsigned', 'hang', 'ack'];
    sim.createOrder({ paymentRequestId: 'N2', notifyUrl, scenario: { decideAfterMs: 0 } });
    for (let i = 0; i < 5; i++) {
      await eventually(() => sim.notifications().length === i + 1);
      t += 1_000;
    }
    expect(sim.notifications().map((d) => d.result)).toEqual([
      'http-status',
      'bad-ack',
      'bad-ack-signature',
      'timeout',
      'acked',
    ]);
    expect(sim.notifications().map((d) => d.attempt)).toEqual([1, 2, 3, 4, 5]);
  });

  it('give up when the schedule runs out', async () => {
    const { sim } = await notifying({ notifyRetryScheduleMs: [0, 1_000] });
    receiver.script = ['http-500', 'http-500', 'http-500'];
    sim.createOrder({ paymentRequestId: 'N3', notifyUrl, scenario: { decideAfterMs: 0 } });
    await eventually(() => sim.notifications().length === 1);
    t += 1_000;
    await eventually(() => sim.notifications().length === 2);
    t += 60_000;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(sim.notifications()).toHaveLength(2);
    expect(sim.pendingNotifications()).toBe(0);
  });

  it('are duplicated on demand', async () => {
    const { sim } = await notifying();
    sim.createOrder({
      paymentRequestId: 'N4',
      notifyUrl,
      scenario: { decideAfterMs: 0, notify: { duplicates: 2 } },
    });
    await eventually(() => receiver.received.length === 3);
    expect(receiver.received.every((r) => r.body.paymentRequestId === 'N4' && r.signatureValid)).toBe(true);
  });

  it('a failed payment notifies F with its code; none and late behave as scripted', async () => {
    const { sim } = await notifying();
    sim.createOrder({
      paymentRequestId: 'N5',
      notifyUrl,
      scenario: { decideAfterMs: 0, decision: 'failed', failCode: 'RISK_REJECT' },
    });
    sim.createOrder({
      paymentRequestId: 'N6',
      notifyUrl,
      scenario: { decideAfterMs: 0, notify: { mode: 'none' } },
    });
    sim.createOrder({
      paymentRequestId: 'N7',
      notifyUrl,
      scenario: { decideAfterMs: 0, notify: { mode: 'late', lateMs: 30_000 } },
    });
    await eventually(() => receiver.received.length === 1);
    expect(receiver.received[0]?.body).toMatchObject({
      paymentRequestId: 'N5',
      paymentResult: { resultCode: 'RISK_REJECT', resultStatus: 'F' },
    });
    t += 29_999;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(receiver.received).toHaveLength(1);
    t += 1;
    await eventually(() => receiver.received.length === 2);
    expect(receiver.received[1]?.body.paymentRequestId).toBe('N7');
  });

  it('can come before the inquiries show the decision (out of order)', async () => {
    const { sim, client } = await notifying();
    sim.createOrder({
      paymentRequestId: 'N8',
      notifyUrl,
      scenario: { decideAfterMs: 0, notify: { inquiryLagMs: 5_000 } },
    });
    await eventually(() => receiver.received.length === 1);
    expect(await client.inquiryPayment(ref('N8'))).toMatchObject({ paymentResult: { resultStatus: 'U' } });
    t += 5_000;
    expect(await client.inquiryPayment(ref('N8'))).toMatchObject({ paymentResult: { resultStatus: 'S' } });
  });

  it('a cancelled order sends no notification for a decision it prevented', async () => {
    const { sim, client } = await notifying();
    sim.createOrder({ paymentRequestId: 'N9', notifyUrl, scenario: { decideAfterMs: 5_000 } });
    await client.cancelPayment(ref('N9'));
    t += 10_000;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(receiver.received).toHaveLength(0);
  });
});

describe('ground truth and the call log', () => {
  it('reconcile exactly after a scripted run', async () => {
    const { sim, client } = await setup();
    sim.createOrder({ paymentRequestId: 'G1', scenario: { decideAfterMs: 1_000 } });
    sim.createOrder({ paymentRequestId: 'G2', scenario: { decideAfterMs: null } });
    sim.createOrder({
      paymentRequestId: 'G3',
      scenario: { decideAfterMs: 0, faults: { sequence: ['http-502'] } },
    });
    await client.inquiryPayment(ref('G1'));
    await client.inquiryPayment(ref('G3'));
    t += 1_000;
    await client.inquiryPayment(ref('G1'));
    await client.inquiryPayment(ref('G3'));
    t += 60_000;
    await client.inquiryPayment(ref('G2'));
    await client.cancelPayment(ref('G2'));
    expect(
      sim
        .calls()
        .map(
          ({ seq, api, paymentRequestId, fault, httpStatus, resultCode, paymentStatus, signatureValid }) => ({
            seq,
            api,
            paymentRequestId,
            fault,
            httpStatus,
            resultCode,
            paymentStatus,
            signatureValid,
          }),
        ),
    ).toEqual([
      {
        seq: 1,
        api: 'inquiryPayment',
        paymentRequestId: 'G1',
        fault: undefined,
        httpStatus: 200,
        resultCode: 'SUCCESS',
        paymentStatus: 'U',
        signatureValid: true,
      },
      {
        seq: 2,
        api: 'inquiryPayment',
        paymentRequestId: 'G3',
        fault: 'http-502',
        httpStatus: 502,
        resultCode: 'SUCCESS',
        paymentStatus: 'S',
        signatureValid: true,
      },
      {
        seq: 3,
        api: 'inquiryPayment',
        paymentRequestId: 'G1',
        fault: undefined,
        httpStatus: 200,
        resultCode: 'SUCCESS',
        paymentStatus: 'S',
        signatureValid: true,
      },
      {
        seq: 4,
        api: 'inquiryPayment',
        paymentRequestId: 'G3',
        fault: undefined,
        httpStatus: 200,
        resultCode: 'SUCCESS',
        paymentStatus: 'S',
        signatureValid: true,
      },
      {
        seq: 5,
        api: 'inquiryPayment',
        paymentRequestId: 'G2',
        fault: undefined,
        httpStatus: 200,
        resultCode: 'SUCCESS',
        paymentStatus: 'F',
        signatureValid: true,
      },
      {
        seq: 6,
        api: 'cancelPayment',
        paymentRequestId: 'G2',
        fault: undefined,
        httpStatus: 200,
        resultCode: 'SUCCESS',
        paymentStatus: undefined,
        signatureValid: true,
      },
    ]);
    expect(sim.orders().map((o) => [o.paymentRequestId, o.status, o.charged, o.cancelRequests])).toEqual([
      ['G1', 'paid', true, 0],
      ['G2', 'cancelled', false, 1],
      ['G3', 'paid', true, 0],
    ]);
  });
});

describe('admin API over HTTP', () => {
  it('creates, reads, scripts faults, lists calls and resets', async () => {
    const { sim, url, client } = await setup();
    const { request } = await import('undici');
    const call = async (method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown) => {
      const response = await request(`${url}/__sim/${path}`, {
        method,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return {
        status: response.statusCode,
        body: (await response.body.json()) as Record<string, unknown> & unknown[],
      };
    };
    const created = await call('POST', 'orders', { paymentRequestId: 'H1', scenario: { decideAfterMs: 0 } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ paymentRequestId: 'H1', status: 'paid' });
    expect((await call('GET', 'orders/H1')).body).toMatchObject({ paymentRequestId: 'H1' });
    expect((await call('GET', 'orders/NOPE')).status).toBe(404);
    expect((await call('GET', 'time')).body).toEqual({ now: T0 });
    expect((await call('PUT', 'faults', { sequence: ['http-503'] })).status).toBe(200);
    sim.createOrder({ paymentRequestId: 'H2' });
    expect(await client.inquiryPayment(ref('H2'))).toMatchObject({ reason: 'http-status' });
    expect((await call('GET', 'calls')).body).toHaveLength(1);
    const bad = await call('POST', 'orders', { paymentRequestId: 'x'.repeat(65) });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'INVALID_INPUT' });
    expect((await call('POST', 'reset')).status).toBe(200);
    expect((await call('GET', 'orders')).body).toEqual([]);
    expect(sim.calls()).toEqual([]);
  });
});

/** The fields the key routes answer with (each route some of them). */
type KeyAdminReply = Record<string, unknown> & {
  publicKeyPem: string;
  acqpKeys: { keyVersion: number | null }[];
};

describe('key rotation through the admin API', () => {
  const acqp2 = generateTestKeyPair();

  async function admin(url: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown) {
    const { request } = await import('undici');
    const response = await request(`${url}/__sim/${path}`, {
      method,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: response.statusCode, body: (await response.body.json()) as KeyAdminReply };
  }

  it('a new key is announced first, signs only once made active, and the old one can sign again', async () => {
    const { sim, client, url } = await setup();
    sim.createOrder({ paymentRequestId: 'K1', scenario: { decideAfterMs: 0 } });
    expect((await admin(url, 'GET', 'keys')).body).toMatchObject({
      keys: [{ keyVersion: 1, active: true, publicKeyPem: sim.publicKeyPem }],
      acqpKeys: [{ keyVersion: null }],
    });

    const created = await admin(url, 'POST', 'keys', {});
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ keyVersion: 2, active: false });
    expect(created.body.publicKeyPem).toContain('BEGIN PUBLIC KEY');
    expect(created.body.publicKeyPem).not.toBe(sim.publicKeyPem);
    // Announced, not used: the client that knows only key 1 still verifies every answer.
    expect(await client.inquiryPayment(ref('K1'))).toMatchObject({ kind: 'answer' });

    const switched = await admin(url, 'PUT', 'keys/active', { keyVersion: 2 });
    expect(switched.body).toMatchObject({ keyVersion: 2, active: true });
    expect(sim.keyVersion).toBe(2);
    expect(sim.publicKeyPem).toBe(created.body.publicKeyPem);
    expect(await client.inquiryPayment(ref('K1'))).toMatchObject({
      kind: 'no-result',
      reason: 'bad-signature',
    });
    client.keys.addAlipayPublicKey({ key: created.body.publicKeyPem, keyVersion: 2 });
    expect(await client.inquiryPayment(ref('K1'))).toMatchObject({ kind: 'answer' });

    sim.useKey(1);
    client.keys.retireAlipayPublicKey(created.body.publicKeyPem);
    expect(await client.inquiryPayment(ref('K1'))).toMatchObject({ kind: 'answer' });
  });

  it('trusts a new ACQP key beside the old one, and refuses the old one once it is retired', async () => {
    const { sim, client, url } = await setup({
      acqpPublicKey: undefined,
      acqpPublicKeys: [{ key: acqp.publicPem, keyVersion: 1 }],
    });
    sim.createOrder({ paymentRequestId: 'K2' });
    const added = await admin(url, 'POST', 'acqp-keys', { key: acqp2.publicPem, keyVersion: 2 });
    expect(added.status).toBe(201);
    expect(added.body.acqpKeys.map((k) => k.keyVersion)).toEqual([2, 1]);

    await client.inquiryPayment(ref('K2'));
    client.keys.setSigningKey({ privateKey: acqp2.privatePem, keyVersion: 2 });
    await client.inquiryPayment(ref('K2'));
    expect(sim.calls().map((c) => [c.keyVersion, c.signatureValid])).toEqual([
      [1, true],
      [2, true],
    ]);

    expect((await admin(url, 'DELETE', 'acqp-keys/1')).status).toBe(200);
    client.keys.setSigningKey({ privateKey: acqp.privatePem, keyVersion: 1 });
    const refused = await client.inquiryPayment(ref('K2'));
    expect(refused).toMatchObject({ kind: 'answer', result: { resultCode: 'INVALID_SIGNATURE' } });
    expect(sim.calls().at(-1)).toMatchObject({ keyVersion: 1, signatureValid: false });
  });

  it('refuses bad key requests with 400 and changes nothing', async () => {
    const { sim, url } = await setup();
    expect((await admin(url, 'PUT', 'keys/active', { keyVersion: 9 })).body).toMatchObject({
      error: 'INVALID_INPUT',
    });
    expect((await admin(url, 'POST', 'keys', { keyVersion: 1 })).status).toBe(400);
    expect((await admin(url, 'POST', 'acqp-keys', { key: 'not a key' })).body).toMatchObject({
      error: 'KEY_FORMAT',
    });
    expect((await admin(url, 'DELETE', 'acqp-keys/1')).status).toBe(400); // no version 1 configured
    expect((await admin(url, 'DELETE', 'acqp-keys/x')).status).toBe(400);
    expect(sim.keys()).toMatchObject({
      keys: [{ keyVersion: 1, active: true }],
      acqpKeys: [{ keyVersion: null }],
    });
  });

  it('signs notifications with the active key and names its version', async () => {
    const { sim } = await setup({ notifyRetryScheduleMs: [0], notifyAckTimeoutMs: 300 });
    const key2 = await sim.createKey({ activate: true });
    const { createServer } = await import('node:http');
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(String(req.headers.signature));
      res.writeHead(500);
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as import('node:net').AddressInfo).port;
    try {
      sim.createOrder({
        paymentRequestId: 'K3',
        notifyUrl: `http://127.0.0.1:${port}/notify`,
        scenario: { decideAfterMs: 0 },
      });
      await eventually(() => sim.notifications().length > 0);
      expect(sim.notifications()[0]).toMatchObject({ keyVersion: 2 });
      expect(seen[0]).toContain('keyVersion=2');
      expect(key2.keyVersion).toBe(2);
    } finally {
      server.close();
    }
  });
});

describe('mixes and time', () => {
  it('the realistic mix is drawn per paymentRequestId, reproducibly, mostly paying quickly', async () => {
    const draw = async (seed: number) => {
      const { sim } = await setup({ mix: 'realistic', seed });
      for (let i = 0; i < 400; i++) sim.createOrder({ paymentRequestId: `M${i}` });
      return sim.orders().map((o) => o.label);
    };
    const a = await draw(3);
    expect(await draw(3)).toEqual(a);
    const quick = a.filter((label) => label === 'pays-quickly').length;
    expect(quick).toBeGreaterThan(170);
    expect(quick).toBeLessThan(270);
    expect(new Set(a).size).toBeGreaterThan(6);
  });

  it('a compressed clock makes a 1-minute expiry pass in about a second', async () => {
    const sim = createSimulator({ clientId: CLIENT_ID, acqpPublicKey: acqp.publicPem, timeFactor: 120 });
    await sim.start();
    sim.createOrder({ paymentRequestId: 'T1', scenario: { decideAfterMs: null } });
    expect(sim.order('T1')?.status).toBe('processing');
    await eventually(() => sim.order('T1')?.status === 'closed', 3_000);
    await sim.stop();
  });

  it('refuses bad options with INVALID_OPTIONS', () => {
    expect(() => createSimulator({ clientId: '', acqpPublicKey: acqp.publicPem })).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTIONS' }),
    );
    expect(() => createSimulator({ clientId: 'C', acqpPublicKey: 'nonsense' })).toThrowError(
      expect.objectContaining({ code: 'KEY_FORMAT' }),
    );
  });
});

describe('signature cache (load tests)', () => {
  it('reuses one valid signature for identical answers within a second', async () => {
    const { sim, client } = await setup({ signatureCache: true });
    const a = await client.inquiryPayment(ref('UNKNOWN-1'));
    const b = await client.inquiryPayment(ref('UNKNOWN-2'));
    expect(a).toMatchObject({ kind: 'answer', result: { resultCode: 'ORDER_NOT_EXIST' } });
    expect(b).toMatchObject({ kind: 'answer', result: { resultCode: 'ORDER_NOT_EXIST' } });
    expect(a.kind === 'answer' && b.kind === 'answer' && a.responseTime === b.responseTime).toBe(true);
    expect(sim.calls()).toHaveLength(2);
  });
});
