// The simulator under load: a capacity in answers per simulated second, and outage windows. Past the
// capacity (or in an outage) a call is not processed and gets the configured fault; `slow` overflow
// processes it and holds the answer back.
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type AlipayPlusClient, createAlipayPlusClient } from '../src/index.js';
import { createSimulator, type Simulator, type SimulatorOptions } from '../src/simulator/index.js';
import { generateTestKeyPair } from './helpers/keys.js';

const CLIENT_ID = 'SIM_LOAD_CLIENT';
const acqp = generateTestKeyPair();
const alipay = generateTestKeyPair();
const T0 = Date.UTC(2026, 0, 15, 3, 0, 0);
let t = T0;
const open: { sim: Simulator; client: AlipayPlusClient }[] = [];

async function setup(options: Partial<SimulatorOptions> = {}) {
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
    timeouts: { inquiryMs: 5_000, cancelMs: 5_000 },
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
const codeOf = (outcome: Awaited<ReturnType<AlipayPlusClient['inquiryPayment']>>) =>
  outcome.kind === 'answer' ? outcome.result.resultCode : `no-result:${outcome.reason}`;

describe('simulator load', () => {
  it('past its capacity a call answers REQUEST_TRAFFIC_EXCEED_LIMIT and is not processed; the next second has room', async () => {
    const { sim, client } = await setup({ load: { capacityPerSecond: 3 } });
    for (const id of ['L1', 'L2', 'L3', 'L4'])
      sim.createOrder({ paymentRequestId: id, scenario: { decideAfterMs: null } });
    const codes: string[] = [];
    for (const id of ['L1', 'L2', 'L3']) codes.push(codeOf(await client.inquiryPayment(ref(id))));
    expect(codes).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
    // The fourth in the same simulated second: refused, and a cancel refused so changes nothing.
    const cancel = await client.cancelPayment(ref('L4'));
    expect(cancel).toMatchObject({
      kind: 'answer',
      result: { resultCode: 'REQUEST_TRAFFIC_EXCEED_LIMIT', resultStatus: 'U' },
    });
    expect(sim.order('L4')).toMatchObject({ cancelled: false });
    expect(sim.calls().at(-1)).toMatchObject({ overload: 'capacity', fault: 'traffic-limit' });
    t += 1_000;
    expect(await client.cancelPayment(ref('L4'))).toMatchObject({
      kind: 'answer',
      result: { resultCode: 'SUCCESS' },
    });
    expect(sim.order('L4')).toMatchObject({ cancelled: true });
  });

  it('overflow as 503: the client sees no result (http-status)', async () => {
    const { sim, client } = await setup({ load: { capacityPerSecond: 1, overflow: 'http-503' } });
    sim.createOrder({ paymentRequestId: 'H1', scenario: { decideAfterMs: null } });
    expect(codeOf(await client.inquiryPayment(ref('H1')))).toBe('SUCCESS');
    expect(codeOf(await client.inquiryPayment(ref('H1')))).toBe('no-result:http-status');
    expect(sim.calls().at(-1)).toMatchObject({ overload: 'capacity', httpStatus: 503 });
  });

  it('slow overflow: the call is processed, and its answer held back', async () => {
    const { sim, client } = await setup({ load: { capacityPerSecond: 1, overflow: 'slow', slowMs: 300 } });
    sim.createOrder({ paymentRequestId: 'S1', scenario: { decideAfterMs: null } });
    await client.inquiryPayment(ref('S1'));
    const started = performance.now();
    expect(await client.cancelPayment(ref('S1'))).toMatchObject({
      kind: 'answer',
      result: { resultCode: 'SUCCESS' },
    });
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(sim.order('S1')).toMatchObject({ cancelled: true });
    expect(sim.calls().at(-1)).toMatchObject({ overload: 'slow' });
  });

  it('an outage window fails every call with its fault, and ends', async () => {
    const { sim, client } = await setup({
      load: { outages: [{ from: T0 + 10_000, until: T0 + 20_000, fault: 'reset' }] },
    });
    sim.createOrder({ paymentRequestId: 'O1', scenario: { decideAfterMs: null } });
    expect(codeOf(await client.inquiryPayment(ref('O1')))).toBe('SUCCESS');
    t = T0 + 10_000;
    expect(codeOf(await client.inquiryPayment(ref('O1')))).toBe('no-result:network');
    expect(await client.cancelPayment(ref('O1'))).toMatchObject({ kind: 'no-result' });
    expect(sim.order('O1')).toMatchObject({ cancelled: false });
    expect(
      sim
        .calls()
        .slice(-2)
        .map((c) => c.overload),
    ).toEqual(['outage', 'outage']);
    t = T0 + 20_000;
    expect(codeOf(await client.inquiryPayment(ref('O1')))).toBe('SUCCESS');
  });

  it('is set, read and lifted through /__sim/load; a bad spec is refused with 400', async () => {
    const { sim, client, url } = await setup();
    sim.createOrder({ paymentRequestId: 'A1', scenario: { decideAfterMs: null } });
    const put = (body: unknown) =>
      request(`${url}/__sim/load`, {
        method: 'PUT',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
      });
    expect((await put({ outages: [{ from: T0, until: T0 + 1_000 }] })).statusCode).toBe(200);
    const read = await request(`${url}/__sim/load`);
    expect(await read.body.json()).toMatchObject({
      outages: [{ from: T0, until: T0 + 1_000, fault: 'http-503' }],
    });
    expect(codeOf(await client.inquiryPayment(ref('A1')))).toBe('no-result:http-status');
    const bad = await put({ capacityPerSecond: -1 });
    expect(bad.statusCode).toBe(400);
    await bad.body.dump();
    const lifted = await request(`${url}/__sim/load`, { method: 'PUT' });
    expect(lifted.statusCode).toBe(200);
    await lifted.body.dump();
    expect(codeOf(await client.inquiryPayment(ref('A1')))).toBe('SUCCESS');
  });
});
