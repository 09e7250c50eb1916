import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { refundRequestIdFor } from '../machines/refund-request-id.js';
import { createPaymentEngine } from '../src/engine/payment-engine.js';
import { sqliteStore } from '../src/stores/sqlite-store.js';
import { cli, cliWithStdin } from './helpers/cli.js';
import { type CliEndpoint, ENV_NAMES, fastPolicyConfig, startCliEndpoint } from './helpers/cli-endpoint.js';
import { payRequest } from './helpers/pay-requests.js';

const DAY = 24 * 3_600_000;
/** The simulator's clock runs `offset` ms off real time: orders can be made in the past. */
let offset = 0;
let endpoint: CliEndpoint;

beforeAll(async () => {
  endpoint = await startCliEndpoint({
    now: () => Date.now() + offset,
    scenarios: {
      'PAY-S': { decideAfterMs: 0 },
      'PAY-F': { decideAfterMs: 0, decision: 'failed', failCode: 'USER_BALANCE_NOT_ENOUGH' },
      'PAY-U': { decideAfterMs: 300 },
      'PAY-OC': { decideAfterMs: 200 },
      'PAY-EC': { decideAfterMs: 200 },
      'REF-S': { decideAfterMs: 0 },
      'REF-F': { decideAfterMs: 0, decision: 'failed' },
    },
  });
});
afterAll(async () => {
  await endpoint.stop();
});
beforeEach(() => {
  for (const name of ENV_NAMES) vi.stubEnv(name, undefined);
  return () => vi.unstubAllEnvs();
});

/** Writes a pay request file and returns its path. */
function requestFile(name: string, request: unknown): string {
  const path = join(endpoint.dir, `${name}.json`);
  writeFileSync(path, typeof request === 'string' ? request : JSON.stringify(request));
  return path;
}

const paysOf = (id: string) =>
  endpoint.sim.calls().filter((c) => c.api === 'pay' && c.paymentRequestId === id);
const refundsOf = (id: string) =>
  endpoint.sim.calls().filter((c) => c.api === 'refund' && c.paymentRequestId === id);

describe('pay', () => {
  const store = () => `sqlite:${join(endpoint.dir, 'pay.db')}`;

  it('S at once: prints the answer and the outcome, exit 0; the same request again sends nothing', async () => {
    const file = requestFile('pay-s', payRequest('PAY-S'));
    const paid = await cli('pay', '--request', file, '--store', store(), ...endpoint.flags);
    expect(paid.err).toBe('');
    expect(paid.code).toBe(0);
    expect(paid.out).toContain('paying.sending → succeeded  (call.done, SUCCESS)');
    expect(paid.out).toContain('Pay PAY-S (user-presented): paid (SUCCESS): The payment succeeded.');
    expect(paid.out).toContain('Outcome: succeeded, decided by pay');
    expect(paysOf('PAY-S')).toHaveLength(1);
    expect(endpoint.sim.order('PAY-S')).toMatchObject({ charged: true, payMode: 'user-presented' });

    const again = await cli('pay', '--request', file, '--store', store(), ...endpoint.flags);
    expect(again.code).toBe(0);
    expect(again.out).toContain('PAY-S was already started in this store (succeeded)');
    expect(paysOf('PAY-S')).toHaveLength(1);

    const status = await cli('status', 'PAY-S', '--store', store());
    expect(status.out).toContain('PAY-S: succeeded (final)');
    expect(status.out).toMatch(/\(new\)\s+paying\.sending\s+PAY/);
  });

  it('F at once (a business failure): failed, exit 0 (a final outcome)', async () => {
    const { code, out } = await cli(
      'pay',
      '--request',
      requestFile('pay-f', payRequest('PAY-F')),
      '--store',
      store(),
      ...endpoint.flags,
    );
    expect(code).toBe(0);
    expect(out).toContain('Pay PAY-F (user-presented): payment-failed (USER_BALANCE_NOT_ENOUGH)');
    expect(out).toContain('Outcome: failed, decided by pay');
    expect(endpoint.sim.order('PAY-F')?.charged).toBe(false);
  });

  it('U: in process before the wait, then the inquiry lifecycle to succeeded (request on standard input)', async () => {
    const { code, out } = await cliWithStdin(
      JSON.stringify(payRequest('PAY-U')),
      'pay',
      '--request',
      '-',
      '--store',
      'memory',
      '--config',
      fastPolicyConfig(endpoint.dir),
      ...endpoint.flags,
    );
    expect(code).toBe(0);
    const answer = out.indexOf('Pay PAY-U (user-presented): in-process (PAYMENT_IN_PROCESS)');
    expect(answer).toBeGreaterThan(-1);
    expect(out.indexOf('Waiting for the outcome: awaitingResult.pending')).toBeGreaterThan(answer);
    expect(out.indexOf('Outcome: succeeded, decided by inquiry')).toBeGreaterThan(answer);
  });

  it('order code: the code to scan before the wait; --json prints the pay answer and the outcome as JSON lines', async () => {
    const { code, out } = await cli(
      'pay',
      '--request',
      requestFile('pay-oc', payRequest('PAY-OC', 'order-code')),
      '--store',
      'memory',
      '--json',
      '--config',
      fastPolicyConfig(endpoint.dir),
      ...endpoint.flags,
    );
    expect(code).toBe(0);
    const lines = out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const pay = lines.find((line) => line.pay)?.pay;
    expect(pay).toMatchObject({ mode: 'order-code', row: 'waiting-for-user', code: 'SUCCESS' });
    expect(pay.orderCodeForm.codeDetails[0].codeValue).toMatch(/^https:\/\/qr\./);
    expect(lines.at(-1).outcome).toMatchObject({ status: 'succeeded', paymentRequestId: 'PAY-OC' });
  });

  it('entry code: the page the user opens, before the wait', async () => {
    const { code, out } = await cli(
      'pay',
      '--request',
      requestFile('pay-ec', payRequest('PAY-EC', 'entry-code')),
      '--store',
      'memory',
      '--config',
      fastPolicyConfig(endpoint.dir),
      ...endpoint.flags,
    );
    expect(code).toBe(0);
    expect(out).toContain('Pay PAY-EC (entry-code): waiting-for-user (SUCCESS)');
    expect(out).toMatch(/entry code, the page the user opens: https:\/\/pay\.\S+\/entry\//);
    expect(out).toContain('Outcome: succeeded');
  });

  it('a request that fails its schema: exit 2 naming the field; nothing stored or sent', async () => {
    const bad = payRequest('PAY-BAD', 'order-code');
    (bad.order as Record<string, unknown>).env = {};
    const db = join(endpoint.dir, 'bad.db');
    const { code, err } = await cli(
      'pay',
      '--request',
      requestFile('pay-bad', bad),
      '--store',
      `sqlite:${db}`,
      ...endpoint.flags,
    );
    expect(code).toBe(2);
    expect(err).toContain('order.env.userAgent: is required for an order-code (OrderCode) pay');
    expect(err).toContain('nothing was stored or sent');
    expect(existsSync(db)).toBe(false);
    expect(paysOf('PAY-BAD')).toHaveLength(0);

    const noMode = await cli(
      'pay',
      '--request',
      requestFile('pay-nomode', payRequest('PAY-BAD', 'user-presented', { paymentFactor: {} })),
      '--store',
      `sqlite:${db}`,
      ...endpoint.flags,
    );
    expect(noMode.code).toBe(2);
    expect(noMode.err).toContain('paymentFactor: names no mode');
    expect(existsSync(db)).toBe(false);
  });

  it('bad JSON, a missing file, or a paymentRequestId reused with other content: exit 2', async () => {
    const notJson = await cli(
      'pay',
      '--request',
      requestFile('pay-junk', '{"paymentRequestId":'),
      ...endpoint.flags,
    );
    expect(notJson.code).toBe(2);
    expect(notJson.err).toMatch(/the pay request in \S+pay-junk\.json is not JSON/);

    const missing = await cli('pay', '--request', join(endpoint.dir, 'nothing.json'), ...endpoint.flags);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('cannot read the pay request');

    const other = payRequest('PAY-S', 'user-presented', { paymentAmount: { currency: 'JPY', value: '999' } });
    const reused = await cli(
      'pay',
      '--request',
      requestFile('pay-reused', other),
      '--store',
      store(),
      ...endpoint.flags,
    );
    expect(reused.code).toBe(2);
    expect(reused.err).toContain('PAYMENT_REQUEST_REUSED');
    expect(paysOf('PAY-S')).toHaveLength(1);
  });
});

describe('refund', () => {
  const db = () => join(endpoint.dir, 'refund.db');
  const store = () => `sqlite:${db()}`;

  /**
   * A payment that was charged two days ago and whose every answer since was lost, until the cancel
   * window had closed: tracked now, it ends in attention (refund-due). The scenario's faults hit the
   * first `lost` calls of each API (inquiry, cancel, refund).
   */
  async function refundDue(id: string, lost: number): Promise<void> {
    offset = -2 * DAY;
    const order = endpoint.sim.createOrder({
      paymentRequestId: id,
      amount: { currency: 'JPY', value: '1200' },
      scenario: {
        decideAfterMs: 0,
        notify: { mode: 'none' },
        faults: { sequence: Array.from({ length: lost }, () => 'http-503' as const) },
      },
    });
    offset = 0;
    const config = join(endpoint.dir, 'window-policy.json');
    writeFileSync(
      config,
      JSON.stringify({ policy: { inquiryScheduleMs: [100], cancelRetryScheduleMs: [50] } }),
    );
    const tracked = await cli(
      'track',
      '--request-id',
      id,
      '--created-at',
      String(order.createdAt),
      '--expires-at',
      String(order.expiresAt),
      '--store',
      store(),
      '--config',
      config,
      ...endpoint.flags,
    );
    expect(tracked.code).toBe(1);
    expect(tracked.out).toContain('needs a person: refund-due');
    expect(tracked.out).toContain(`remedy: alipayplus-lifecycle refund ${id} --store ${store()}`);
    expect(endpoint.sim.order(id)).toMatchObject({ charged: true, refunded: false });
  }

  it('refunds a refund-due payment (resending the identical request after no result), exit 0; again: the same refund, once', async () => {
    await refundDue('RFD-1', 1);
    const first = await cli('refund', 'RFD-1', '--store', store(), '--retry-delay', '10', ...endpoint.flags);
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    expect(first.out).toContain('refundRequestId RFD-1-RF');
    expect(first.out).toMatch(/attempt 1: no result \(http-status, HTTP 503\).*the identical request again/);
    expect(first.out).toContain('attempt 2: S SUCCESS');
    expect(first.out).toMatch(/Refunded: 1200 JPY, refundId \d+/);
    const truth = endpoint.sim.order('RFD-1');
    expect(truth).toMatchObject({ status: 'refunded', charged: true, refunded: true, cancelled: false });
    expect(truth?.refunds).toHaveLength(1);
    const refundId = truth?.refunds?.[0]?.refundId as string;

    const again = await cli('refund', 'RFD-1', '--store', store(), '--json', ...endpoint.flags);
    expect(again.code).toBe(0);
    const json = JSON.parse(again.out).refund;
    expect(json).toMatchObject({ result: 'refunded', attempts: 1 });
    expect(json.request).toMatchObject({
      refundRequestId: refundRequestIdFor('RFD-1'),
      refundAmount: { value: '1200' },
    });
    expect(json.answers[0].answer.refundId).toBe(refundId);
    expect(endpoint.sim.order('RFD-1')?.refunds).toHaveLength(1);
    const calls = refundsOf('RFD-1');
    expect(calls).toHaveLength(3);
    expect(new Set(calls.map((c) => c.refundRequestId))).toEqual(new Set(['RFD-1-RF']));
  });

  it('still unknown after the retries: exit 1, safe to run again; the next run refunds', async () => {
    await refundDue('RFD-2', 3);
    const unknown = await cli(
      'refund',
      'RFD-2',
      '--store',
      store(),
      '--retries',
      '1',
      '--retry-delay',
      '10',
      ...endpoint.flags,
    );
    expect(unknown.code).toBe(1);
    expect(unknown.out).toContain("The refund's result is still unknown after 2 attempts");
    expect(unknown.out).toContain(
      'It is safe to run this command again: it sends the same refundRequestId RFD-2-RF',
    );
    expect(endpoint.sim.order('RFD-2')?.refunded).toBe(false);

    const next = await cli('refund', 'RFD-2', '--store', store(), '--retry-delay', '10', ...endpoint.flags);
    expect(next.code).toBe(0);
    expect(endpoint.sim.order('RFD-2')).toMatchObject({ status: 'refunded', refunds: [expect.anything()] });
  });

  it('refuses (exit 2, nothing sent) a payment that is unknown, not final, or final but not refund-due; --force refunds a paid one', async () => {
    const payStore = `sqlite:${join(endpoint.dir, 'refuse.db')}`;
    for (const id of ['REF-S', 'REF-F']) {
      const paid = await cli(
        'pay',
        '--request',
        requestFile(id, payRequest(id)),
        '--store',
        payStore,
        ...endpoint.flags,
      );
      expect(paid.code).toBe(0);
    }
    const before = endpoint.sim.calls().filter((c) => c.api === 'refund').length;

    const unknown = await cli('refund', 'NOBODY', '--store', payStore, ...endpoint.flags);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('NOBODY is not in the store');

    const succeeded = await cli('refund', 'REF-S', '--store', payStore, ...endpoint.flags);
    expect(succeeded.code).toBe(2);
    expect(succeeded.err).toContain('REF-S is succeeded, not refund-due');
    expect(succeeded.err).toContain('add --force');

    const failed = await cli('refund', 'REF-F', '--store', payStore, '--force', ...endpoint.flags);
    expect(failed.code).toBe(2);
    expect(failed.err).toContain('no answer showed it paid, so there is nothing to refund');

    // A lifecycle still running: stored by an engine stopped before its first inquiry.
    const openDb = join(endpoint.dir, 'open.db');
    const noResult = async () => ({ kind: 'no-result' as const, reason: 'network' as const, detail: 'test' });
    const openStore = sqliteStore(openDb);
    const engine = createPaymentEngine({
      client: { inquiryPayment: noResult, cancelPayment: noResult },
      store: openStore,
    });
    await engine.start();
    await engine.track({ paymentRequestId: 'RFD-OPEN', amount: { currency: 'JPY', value: '100' } });
    await engine.stop();
    await openStore.close();
    const open = await cli('refund', 'RFD-OPEN', '--store', `sqlite:${openDb}`, ...endpoint.flags);
    expect(open.code).toBe(2);
    expect(open.err).toContain('RFD-OPEN is not final yet (awaitingResult.pending)');

    const memory = await cli('refund', 'REF-S', '--store', 'memory', ...endpoint.flags);
    expect(memory.code).toBe(2);
    expect(endpoint.sim.calls().filter((c) => c.api === 'refund').length).toBe(before);

    const forced = await cli('refund', 'REF-S', '--store', payStore, '--force', ...endpoint.flags);
    expect(forced.code).toBe(0);
    expect(forced.out).toMatch(/by paymentId \d+, refundRequestId REF-S-RF/);
    expect(endpoint.sim.order('REF-S')).toMatchObject({ status: 'refunded', refunded: true });
  });
});
