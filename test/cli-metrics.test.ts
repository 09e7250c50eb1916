import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliRunning } from './helpers/cli.js';
import { type CliEndpoint, fastPolicyConfig, startCliEndpoint } from './helpers/cli-endpoint.js';
import { eventually } from './helpers/notify-receiver.js';
import { payRequest } from './helpers/pay-requests.js';
import { fileTempDir } from './helpers/temp-dir.js';

const dir = fileTempDir('apl-cli-metrics-');

/** A port nobody listens on right now: bound to 0, read, released. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Holds a port on 127.0.0.1 for the duration of `use`. */
async function withTakenPort<T>(use: (port: number) => Promise<T>): Promise<T> {
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  try {
    return await use((blocker.address() as AddressInfo).port);
  } finally {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  }
}

/** The value of every sample of a Prometheus text whose name and labels match. */
function samples(text: string, name: string, labels: Record<string, string>): number[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`))
    .filter((line) => Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`)))
    .map((line) => Number(line.slice(line.lastIndexOf(' ') + 1)));
}

describe('demo --metrics-port', () => {
  it('serves alipayplus_lifecycle_* as Prometheus text, with the outcomes of the report, until Ctrl-C', async () => {
    const port = await freePort();
    const running = cliRunning(
      'demo',
      '--payments',
      '10',
      '--speed',
      '120',
      '--store',
      'memory',
      '--metrics-port',
      String(port),
    );
    let text = '';
    try {
      // The demo keeps the endpoint after its report, until Ctrl-C: the final counts can be read.
      await eventually(() => running.out().includes('press Ctrl-C to exit') || running.err() !== '', 60_000);
      expect(running.err()).toBe('');
      expect(running.out()).toContain(`metrics: http://127.0.0.1:${port}/metrics`);
      expect(running.out()).toContain('reconciliation: lost 0, divergent 0');
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(response.status).toBe(200);
      text = await response.text();
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      // What Ctrl-C does: the demo's interrupt handler ends the wait.
      process.emit('SIGINT');
    }
    expect(await running.code).toBe(0);

    // The report's succeeded count is what the counter says, over every decided_by.
    const reported = Number(/succeeded\s+(\d+)/.exec(running.out())?.[1]);
    expect(reported).toBeGreaterThan(0);
    const succeeded = samples(text, 'alipayplus_lifecycle_outcomes_total', { status: 'succeeded' });
    expect(succeeded.length).toBeGreaterThan(0);
    expect(succeeded.every((n) => n > 0)).toBe(true);
    expect(succeeded.reduce((a, b) => a + b, 0)).toBe(reported);
    // Every outcome is counted once: ten payments, ten outcomes.
    const all = samples(text, 'alipayplus_lifecycle_outcomes_total', {});
    expect(all.reduce((a, b) => a + b, 0)).toBe(10);
    expect(samples(text, 'alipayplus_lifecycle_calls_total', { api: 'pay' }).length).toBeGreaterThan(0);
    expect(text).toContain('# TYPE alipayplus_lifecycle_call_duration histogram');
    // One insert per payment, timed.
    expect(samples(text, 'alipayplus_lifecycle_store_write_duration_count', { op: 'insert' })).toEqual([10]);
    // The endpoint is gone with the command.
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  }, 90_000);

  it('a port already taken: a clear message, exit 2, and nothing started or written', async () => {
    const db = join(dir, 'taken.db');
    await withTakenPort(async (port) => {
      const taken = await cli(
        'demo',
        '--payments',
        '5',
        '--store',
        `sqlite:${db}`,
        '--metrics-port',
        String(port),
      );
      expect(taken.code).toBe(2);
      expect(taken.err).toContain(`port ${port} on 127.0.0.1 is already in use`);
      expect(taken.err).toContain('--metrics-port');
      expect(taken.out).toBe('');
    });
    expect(existsSync(db)).toBe(false);
    const bad = await cli('demo', '--payments', '5', '--store', `sqlite:${db}`, '--metrics-port', '70000');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--metrics-port must be a whole number');
    expect(existsSync(db)).toBe(false);
  });
});

describe('track and pay --metrics-port', () => {
  let endpoint: CliEndpoint;
  beforeAll(async () => {
    endpoint = await startCliEndpoint();
  });
  afterAll(async () => {
    await endpoint.stop();
  });

  it('track: the endpoint serves while the lifecycle runs and closes with it; --json keeps stdout JSON', async () => {
    endpoint.sim.createOrder({ paymentRequestId: 'MET-TRK', scenario: { decideAfterMs: 0 } });
    const config = fastPolicyConfig(endpoint.dir);
    const port = await freePort();
    const tracked = await cli(
      'track',
      '--request-id',
      'MET-TRK',
      '--store',
      'memory',
      '--json',
      '--config',
      config,
      '--metrics-port',
      String(port),
      ...endpoint.flags,
    );
    expect(tracked.code).toBe(0);
    expect(tracked.err).toBe(`metrics: http://127.0.0.1:${port}/metrics\n`);
    for (const line of tracked.out.trimEnd().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });

  it('track and pay: a port already taken is exit 2 with nothing stored or sent', async () => {
    const calls = endpoint.sim.calls().length;
    const db = join(dir, 'lifecycle.db');
    const request = join(endpoint.dir, 'pay.json');
    writeFileSync(request, JSON.stringify(payRequest('MET-PAY')));
    await withTakenPort(async (port) => {
      const tracked = await cli(
        'track',
        '--request-id',
        'MET-TAKEN',
        '--store',
        `sqlite:${db}`,
        '--metrics-port',
        String(port),
        ...endpoint.flags,
      );
      expect(tracked.code).toBe(2);
      expect(tracked.err).toContain(`port ${port} on 127.0.0.1 is already in use`);
      const paid = await cli(
        'pay',
        '--request',
        request,
        '--store',
        `sqlite:${db}`,
        '--metrics-port',
        String(port),
        ...endpoint.flags,
      );
      expect(paid.code).toBe(2);
      expect(paid.err).toContain(`port ${port} on 127.0.0.1 is already in use`);
    });
    expect(existsSync(db)).toBe(false);
    expect(endpoint.sim.calls().length).toBe(calls);
  });
});

describe('dashboard --metrics-port', () => {
  it("serves the store's lifecycles by state and its open attention items, read at each scrape", async () => {
    const db = join(dir, 'dashboard.db');
    const demo = await cli('demo', '--payments', '12', '--speed', '120', '--store', `sqlite:${db}`);
    expect(demo.code).toBe(0);
    const succeeded = Number(/succeeded\s+(\d+)/.exec(demo.out)?.[1]);
    expect(succeeded).toBeGreaterThan(0);
    const port = await freePort();
    const running = cliRunning(
      'dashboard',
      '--store',
      `sqlite:${db}`,
      '--port',
      '0',
      '--metrics-port',
      String(port),
    );
    let text = '';
    try {
      await eventually(() => running.out().includes('Press Ctrl-C') || running.err() !== '', 30_000);
      expect(running.err()).toBe('');
      text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    } finally {
      process.emit('SIGINT');
    }
    expect(await running.code).toBe(0);
    expect(samples(text, 'alipayplus_lifecycle_store_lifecycles', { state: 'succeeded' })).toEqual([
      succeeded,
    ]);
    const all = samples(text, 'alipayplus_lifecycle_store_lifecycles', {});
    expect(all.reduce((a, b) => a + b, 0)).toBe(12);
    expect(text).toMatch(/^alipayplus_lifecycle_attention_open\{[^}]*\} 0$/m);
  }, 90_000);
});
