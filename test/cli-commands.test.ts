import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { INQUIRY_DECISION_TABLE } from '../machines/decision-table.js';
import { lifecycleJson, lifecycleMermaid } from '../src/diagram.js';
import { cli } from './helpers/cli.js';
import {
  CLI_CLIENT_ID,
  type CliEndpoint,
  ENV_NAMES,
  fastPolicyConfig,
  startCliEndpoint,
} from './helpers/cli-endpoint.js';

let endpoint: CliEndpoint;
beforeAll(async () => {
  endpoint = await startCliEndpoint();
});
afterAll(async () => {
  await endpoint.stop();
});
beforeEach(() => {
  // Whatever the machine running the tests has set must not leak into the settings under test.
  for (const name of ENV_NAMES) vi.stubEnv(name, undefined);
  return () => vi.unstubAllEnvs();
});

describe('every command', () => {
  it.each(['demo', 'inquire', 'track', 'pay', 'refund', 'status', 'diagram', 'simulator', 'signature'])(
    '%s --help prints its usage and exits 0',
    async (name) => {
      const { code, out } = await cli(name, '--help');
      expect(code).toBe(0);
      expect(out).toContain(`Usage: alipayplus-lifecycle ${name}`);
    },
  );

  it('an unknown command or option is a usage error (exit 2)', async () => {
    expect((await cli('frobnicate')).code).toBe(2);
    expect((await cli('demo', '--payments', 'many')).code).toBe(2);
    expect((await cli('status', '--store', 'postgres://x')).code).toBe(2);
  });
});

describe('diagram', () => {
  it('prints the Mermaid statechart by default, generated from the machine', async () => {
    const { code, out } = await cli('diagram');
    expect(code).toBe(0);
    expect(out).toBe(lifecycleMermaid());
    expect(out).toContain('stateDiagram-v2');
  });

  it('prints machine.toJSON() with --format json', async () => {
    const { code, out } = await cli('diagram', '--format', 'json');
    expect(code).toBe(0);
    expect(out).toBe(lifecycleJson());
    expect(JSON.parse(out)).toMatchObject({ id: 'paymentLifecycle' });
  });

  it('refuses another format (exit 2)', async () => {
    const { code, err } = await cli('diagram', '--format', 'svg');
    expect(code).toBe(2);
    expect(err).toContain('mermaid, json');
  });
});

describe('configuration (inquire and track)', () => {
  it('names the missing setting and every way to give it (exit 2)', async () => {
    const { code, err } = await cli('inquire', '--request-id', 'X');
    expect(code).toBe(2);
    expect(err).toContain('baseUrl is missing');
    expect(err).toContain('--base-url URL');
    expect(err).toContain('ALIPAYPLUS_BASE_URL');
    expect(err).toContain('--config file');
  });

  it('takes every setting from the environment', async () => {
    endpoint.sim.createOrder({ paymentRequestId: 'ENV-1', scenario: { decideAfterMs: 0 } });
    vi.stubEnv('ALIPAYPLUS_BASE_URL', endpoint.sim.url);
    vi.stubEnv('ALIPAYPLUS_CLIENT_ID', CLI_CLIENT_ID);
    vi.stubEnv('ALIPAYPLUS_PRIVATE_KEY_FILE', endpoint.privateKeyFile);
    vi.stubEnv('ALIPAYPLUS_PUBLIC_KEY_FILE', endpoint.alipayPublicKeyFile);
    const { code, out } = await cli('inquire', '--request-id', 'ENV-1');
    expect(code).toBe(0);
    expect(out).toContain('Decision-table row: paid');
  });

  it('reads a config file (key paths relative to it), and flags win over the environment and the file', async () => {
    endpoint.sim.createOrder({ paymentRequestId: 'CFG-1', scenario: { decideAfterMs: 0 } });
    const config = join(endpoint.dir, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        baseUrl: endpoint.sim.url,
        clientId: 'NOT_THE_CLIENT',
        privateKeyFile: 'acqp-private.pem',
        alipayPublicKeyFile: 'alipayplus-public.pem',
      }),
    );
    vi.stubEnv('ALIPAYPLUS_CLIENT_ID', 'ALSO_NOT_THE_CLIENT');
    const wrong = await cli('inquire', '--config', config, '--request-id', 'CFG-1');
    // The environment's Client-Id beat the file's; the simulator refuses it.
    expect(wrong.out).toContain('INVALID_CLIENT');
    const right = await cli(
      'inquire',
      '--config',
      config,
      '--client-id',
      CLI_CLIENT_ID,
      '--request-id',
      'CFG-1',
    );
    expect(right.code).toBe(0);
    expect(right.out).toContain('Decision-table row: paid');
  });

  it('refuses an unknown key in the config file, naming it (exit 2)', async () => {
    const config = join(endpoint.dir, 'typo.json');
    writeFileSync(config, JSON.stringify({ baseURL: 'https://example.invalid' }));
    const { code, err } = await cli('inquire', '--config', config, '--request-id', 'X');
    expect(code).toBe(2);
    expect(err).toContain('unknown setting "baseURL"');
  });

  it('names a bad URL, an unreadable key file, a key of the wrong kind and a bad policy (exit 2)', async () => {
    const flags = (overrides: Record<string, string>) => {
      const base: Record<string, string> = {
        '--base-url': endpoint.sim.url,
        '--client-id': CLI_CLIENT_ID,
        '--private-key': endpoint.privateKeyFile,
        '--alipay-public-key': endpoint.alipayPublicKeyFile,
        ...overrides,
      };
      return Object.entries(base).flat();
    };
    const badUrl = await cli('inquire', '--request-id', 'X', ...flags({ '--base-url': 'ftp://nowhere' }));
    expect(badUrl.code).toBe(2);
    expect(badUrl.err).toContain('baseUrl is invalid');

    const missing = await cli(
      'inquire',
      '--request-id',
      'X',
      ...flags({ '--private-key': '/nonexistent.pem' }),
    );
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('privateKeyFile /nonexistent.pem cannot be read');

    const swapped = await cli(
      'inquire',
      '--request-id',
      'X',
      ...flags({ '--private-key': endpoint.alipayPublicKeyFile }),
    );
    expect(swapped.code).toBe(2);
    expect(swapped.err).toContain('privateKeyFile');
    expect(swapped.err).toContain('is not your RSA private key');

    const policy = join(endpoint.dir, 'bad-policy.json');
    writeFileSync(policy, JSON.stringify({ policy: { maxInquiries: 0 } }));
    const badPolicy = await cli('track', '--request-id', 'X', '--config', policy, ...flags({}));
    expect(badPolicy.code).toBe(2);
    expect(badPolicy.err).toContain('policy.maxInquiries is invalid');
  });
});

describe('inquire', () => {
  it('prints the answer and its decision-table row; exit 0 for a row the lifecycle acts on', async () => {
    const order = endpoint.sim.createOrder({ paymentRequestId: 'INQ-PAID', scenario: { decideAfterMs: 0 } });
    const byRequest = await cli('inquire', '--request-id', 'INQ-PAID', ...endpoint.flags);
    expect(byRequest.code).toBe(0);
    expect(byRequest.out).toContain('paymentResult: S SUCCESS');
    expect(byRequest.out).toContain('Decision-table row: paid');
    expect(byRequest.out).toContain('isPaid leads to: succeeded');

    const byPaymentId = await cli('inquire', '--payment-id', order.paymentId, ...endpoint.flags);
    expect(byPaymentId.code).toBe(0);
    expect(byPaymentId.out).toContain('Decision-table row: paid');

    const unknown = await cli('inquire', '--request-id', 'INQ-NOBODY', ...endpoint.flags);
    expect(unknown.code).toBe(0);
    expect(unknown.out).toContain('Decision-table row: order-not-exist');
  });

  it('--json prints the row, its target and the whole outcome', async () => {
    endpoint.sim.createOrder({ paymentRequestId: 'INQ-JSON', scenario: { decideAfterMs: null } });
    const { code, out } = await cli('inquire', '--request-id', 'INQ-JSON', '--json', ...endpoint.flags);
    expect(code).toBe(0);
    const parsed = JSON.parse(out);
    expect(parsed.row).toBe('processing');
    expect(parsed.target).toBe(INQUIRY_DECISION_TABLE.find((r) => r.id === 'processing')?.target);
    expect(parsed.outcome.paymentResult.resultStatus).toBe('U');
  });

  it('exit 1 when no trustworthy answer arrives (an answer that does not verify is no result)', async () => {
    endpoint.sim.createOrder({ paymentRequestId: 'INQ-BADSIG', scenario: { decideAfterMs: 0 } });
    const { code, out } = await cli(
      'inquire',
      '--request-id',
      'INQ-BADSIG',
      ...endpoint.flags,
      '--alipay-public-key',
      endpoint.wrongAlipayKeyFile,
    );
    expect(code).toBe(1);
    expect(out).toContain('No result received: bad-signature');
    expect(out).toContain('Decision-table row: no-result');
  });

  it('exit 1 for a row that needs a person (Alipay+ refused our signature)', async () => {
    const { code, out } = await cli(
      'inquire',
      '--request-id',
      'INQ-ANY',
      ...endpoint.flags,
      '--private-key',
      endpoint.strangerKeyFile,
    );
    expect(code).toBe(1);
    expect(out).toContain('result:        F INVALID_SIGNATURE');
    expect(out).toContain('Decision-table row: integration-fault');
  });

  it('wants exactly one reference (exit 2)', async () => {
    const both = await cli('inquire', '--request-id', 'A', '--payment-id', 'B', ...endpoint.flags);
    expect(both.code).toBe(2);
    expect(both.err).toContain('exactly one of --request-id ID or --payment-id ID');
    expect((await cli('inquire', ...endpoint.flags)).code).toBe(2);
  });
});

describe('track and status', () => {
  it('runs a lifecycle to succeeded, printing each transition; status then shows it with its audit history', async () => {
    endpoint.sim.createOrder({ paymentRequestId: 'TRK-PAID', scenario: { decideAfterMs: 0 } });
    const store = `sqlite:${join(endpoint.dir, 'track.db')}`;
    const config = fastPolicyConfig(endpoint.dir);
    const tracked = await cli(
      'track',
      '--request-id',
      'TRK-PAID',
      '--store',
      store,
      '--config',
      config,
      ...endpoint.flags,
    );
    expect(tracked.err).toBe('');
    expect(tracked.code).toBe(0);
    expect(tracked.out).toContain(
      'awaitingResult.pending → awaitingResult.inquiring  (timer.untilNextInquiry)',
    );
    expect(tracked.out).toMatch(/awaitingResult\.inquiring → succeeded {2}\(.*, SUCCESS\)/);
    expect(tracked.out).toContain('Outcome: succeeded, decided by inquiry');

    const list = await cli('status', '--store', store);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/TRK-PAID\s+succeeded/);

    const one = await cli('status', 'TRK-PAID', '--store', store);
    expect(one.code).toBe(0);
    expect(one.out).toContain('TRK-PAID: succeeded (final)');
    expect(one.out).toContain('settlement fired');
    expect(one.out).toMatch(/\(new\)\s+awaitingResult\.pending\s+TRACK/);
    expect(one.out).toMatch(/awaitingResult\.inquiring\s+succeeded\s+\S+\s+SUCCESS/);

    const json = JSON.parse((await cli('status', 'TRK-PAID', '--store', store, '--json')).out);
    expect(json.record.outcome.status).toBe('succeeded');
    expect(json.audit.length).toBeGreaterThanOrEqual(3);

    // Tracking it again reads the stored outcome: nothing is sent twice.
    const calls = endpoint.sim.calls().length;
    const again = await cli('track', '--request-id', 'TRK-PAID', '--store', store, ...endpoint.flags);
    expect(again.code).toBe(0);
    expect(again.out).toContain('TRK-PAID is already final in this store.');
    expect(endpoint.sim.calls().length).toBe(calls);
  });

  it('an order that never finishes closes at expiry (--expires-at in epoch ms); --json prints JSON lines', async () => {
    const expiresAt = Date.now() + 1_200;
    endpoint.sim.createOrder({ paymentRequestId: 'TRK-CLOSE', expiresAt, scenario: { decideAfterMs: null } });
    const { code, out } = await cli(
      'track',
      '--request-id',
      'TRK-CLOSE',
      '--expires-at',
      String(expiresAt),
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
    expect(lines.at(-1).outcome).toMatchObject({ status: 'closed', paymentRequestId: 'TRK-CLOSE' });
    expect(lines.slice(0, -1).every((line) => line.transition.paymentRequestId === 'TRK-CLOSE')).toBe(true);
    expect(lines.filter((line) => line.transition?.to === 'awaitingResult.inquiring').length).toBeGreaterThan(
      2,
    );
  });

  it('exit 1 when the outcome needs a person', async () => {
    const { code, out } = await cli(
      'track',
      '--request-id',
      'TRK-ATTN',
      '--store',
      'memory',
      '--config',
      fastPolicyConfig(endpoint.dir),
      ...endpoint.flags,
      '--private-key',
      endpoint.strangerKeyFile,
    );
    expect(code).toBe(1);
    expect(out).toContain('Outcome: attention');
    expect(out).toContain('needs a person: integration-fault');
  });

  it('a payment that expired before it was tracked is tracked all the same: a last look, and its outcome', async () => {
    const now = Date.now();
    endpoint.sim.createOrder({
      paymentRequestId: 'TRK-LATE',
      expiresAt: now - 1_000,
      scenario: { decideAfterMs: null },
    });
    const { code, out } = await cli(
      'track',
      '--request-id',
      'TRK-LATE',
      '--created-at',
      String(now - 61_000),
      '--expires-at',
      String(now - 1_000),
      '--store',
      'memory',
      '--config',
      fastPolicyConfig(endpoint.dir),
      ...endpoint.flags,
    );
    expect(code).toBe(0);
    // The last look, at once: Alipay+ closed it at expiry, nothing was charged.
    expect(out).toMatch(/awaitingResult\.inquiring → closed {2}\(call\.done, ORDER_IS_CLOSED\)/);
    expect(out).toContain('Outcome: closed, decided by inquiry');
    expect(
      endpoint.sim.calls().filter((c) => c.paymentRequestId === 'TRK-LATE' && c.api === 'inquiryPayment'),
    ).toHaveLength(1);
  });

  it('an expiry that has passed without --created-at is refused with what to do (exit 2, nothing stored)', async () => {
    const { code, err } = await cli(
      'track',
      '--request-id',
      'TRK-LATE-2',
      '--expires-at',
      '2020-01-01T00:00:00+08:00',
      '--store',
      'memory',
      ...endpoint.flags,
    );
    expect(code).toBe(2);
    expect(err).toContain('payment TRK-LATE-2 expired at 2019-12-31T16:00:00.000Z');
    expect(err).toContain('give --created-at (when its pay was sent');
    expect(err).toContain('a last look at once');
    expect(err).toContain('nothing was stored');
  });

  it('--created-at sets the creation time the cancel window counts from', async () => {
    endpoint.sim.createOrder({ paymentRequestId: 'TRK-CREATED', scenario: { decideAfterMs: 0 } });
    const { code, out } = await cli(
      'track',
      '--request-id',
      'TRK-CREATED',
      '--created-at',
      '2026-01-15T10:00:00+08:00',
      '--expires-at',
      String(Date.now() + 60_000),
      '--store',
      'memory',
      '--config',
      fastPolicyConfig(endpoint.dir),
      ...endpoint.flags,
    );
    expect(code).toBe(0);
    // 00:15 UTC+8 on the day after creation.
    expect(out).toContain('cancel window ends 2026-01-15T16:15:00.000Z');
    expect(
      (await cli('track', '--request-id', 'X', '--created-at', 'yesterday', ...endpoint.flags)).code,
    ).toBe(2);
  });

  it('status: exit 1 for an ID the store does not hold, 2 for a store that is not there or not readable', async () => {
    endpoint.sim.createOrder({ paymentRequestId: 'STS-1', scenario: { decideAfterMs: 0 } });
    const store = `sqlite:${join(endpoint.dir, 'status.db')}`;
    const config = fastPolicyConfig(endpoint.dir);
    expect(
      (await cli('track', '--request-id', 'STS-1', '--store', store, '--config', config, ...endpoint.flags))
        .code,
    ).toBe(0);
    expect((await cli('status', 'STS-1', '--store', store)).code).toBe(0);
    const missingId = await cli('status', 'NOBODY', '--store', store);
    expect(missingId.code).toBe(1);
    expect(missingId.err).toContain('NOBODY is not in this store');

    const missingStore = await cli('status', '--store', `sqlite:${join(endpoint.dir, 'nothing-here.db')}`);
    expect(missingStore.code).toBe(2);
    expect(missingStore.err).toContain('no store at');

    const memory = await cli('status', '--store', 'memory');
    expect(memory.code).toBe(2);
    expect(memory.err).toContain('give --store sqlite:PATH');
  });
});
