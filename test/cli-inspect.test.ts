import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { createActor, createMachine } from 'xstate';
import { inspectionRecord } from '../src/cli/inspection.js';
import { runCli } from '../src/cli/program.js';
import { type CliEndpoint, fastPolicyConfig, startCliEndpoint } from './helpers/cli-endpoint.js';
import { eventually } from './helpers/notify-receiver.js';

interface Message {
  type: string;
  name?: string;
  sessionId?: string;
  rootId?: string;
  event?: { type: string };
  snapshot?: { status?: string; value?: unknown; context?: { paymentRequestId?: string } };
}

let endpoint: CliEndpoint;
beforeAll(async () => {
  endpoint = await startCliEndpoint();
});
afterAll(async () => {
  await endpoint.stop();
});

/** Runs the CLI in-process; `onOut` sees each chunk as it is printed. */
async function run(argv: string[], onOut: (text: string) => void = () => undefined) {
  let out = '';
  let err = '';
  const code = await runCli(argv, {
    out: (text) => {
      out += text;
      onOut(text);
    },
    err: (text) => {
      err += text;
    },
  });
  return { code, out, err };
}

/** What a lifecycle that ends in `succeeded` must show a receiver: its actor, events and snapshots. */
function expectLifecycle(messages: Message[]) {
  const types = new Set(messages.map((m) => m.type));
  expect(types).toContain('@xstate.actor');
  expect(types).toContain('@xstate.event');
  expect(types).toContain('@xstate.snapshot');
  // The lifecycle is the root of its actor system, named after its payment (not a session number).
  const root = messages.find((m) => m.type === '@xstate.actor' && m.sessionId === m.rootId);
  expect(root).toBeDefined();
  expect(root?.name).toMatch(/^(?!x:)\S+/);
  const ofRoot = messages.filter((m) => m.sessionId === root?.sessionId);
  expect(ofRoot.some((m) => m.type === '@xstate.event' && m.event?.type === 'xstate.init')).toBe(true);
  expect(
    ofRoot.some((m) => m.type === '@xstate.event' && m.event?.type.startsWith('xstate.done.actor.')),
  ).toBe(true);
  const last = ofRoot.filter((m) => m.type === '@xstate.snapshot').at(-1);
  expect(last?.snapshot).toMatchObject({ status: 'done', value: 'succeeded' });
  // The invoked inquiry is an actor of its own, under the lifecycle.
  expect(messages.some((m) => m.type === '@xstate.actor' && m.rootId === root?.sessionId && m !== root)).toBe(
    true,
  );
}

describe('--inspect', () => {
  it('streams the actor, event and snapshot messages of a lifecycle to a WebSocket receiver, and writes them as JSON lines', async () => {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => server.once('listening', resolve));
    const messages: Message[] = [];
    server.on('connection', (socket) => {
      socket.on('message', (data) => messages.push(JSON.parse(data.toString())));
    });
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
    endpoint.sim.createOrder({ paymentRequestId: 'INSPECT-WS', scenario: { decideAfterMs: 0 } });
    const file = join(endpoint.dir, 'inspect-ws.jsonl');
    try {
      const { code, out, err } = await run([
        'track',
        '--request-id',
        'INSPECT-WS',
        '--store',
        'memory',
        '--inspect-url',
        url,
        '--inspect-file',
        file,
        '--config',
        fastPolicyConfig(endpoint.dir),
        ...endpoint.flags,
      ]);
      expect(err).toBe('');
      expect(code).toBe(0);
      expect(out).toContain(`Inspector: streaming to ${url}`);
      expect(out).toContain(`written as JSON lines to ${file}`);
      await eventually(() =>
        messages.some((m) => m.type === '@xstate.snapshot' && m.snapshot?.status === 'done'),
      );
      expectLifecycle(messages);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }

    // The file holds the same events, JSON-safe: refs are IDs, snapshots value/context/status.
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines.every((line) => line.paymentRequestId === 'INSPECT-WS')).toBe(true);
    const fileTypes = new Set(lines.map((line) => line.type));
    for (const type of ['@xstate.actor', '@xstate.event', '@xstate.snapshot'])
      expect(fileTypes).toContain(type);
    const final = lines
      .filter((line) => line.type === '@xstate.snapshot' && line.sessionId === line.rootId)
      .at(-1);
    expect(final.snapshot).toMatchObject({ status: 'done', value: 'succeeded' });
    expect(final.snapshot.context.paymentRequestId).toBe('INSPECT-WS');
  });

  it('without a URL, serves a loopback bridge: its page embeds the Stately inspector and a browser gets the stream', async () => {
    endpoint.sim.createOrder({ paymentRequestId: 'INSPECT-BRIDGE', scenario: { decideAfterMs: 0 } });
    const received: Message[] = [];
    let page = '';
    let viewer: Promise<void> | undefined;
    let browser: WebSocket | undefined;
    const { code, out } = await run(
      [
        'track',
        '--request-id',
        'INSPECT-BRIDGE',
        '--store',
        'memory',
        '--inspect',
        '--inspect-file',
        join(endpoint.dir, 'inspect-bridge.jsonl'),
        '--config',
        fastPolicyConfig(endpoint.dir, { policy: { inquiryScheduleMs: [300] } }),
        ...endpoint.flags,
      ],
      (text) => {
        const match = /open (http:\/\/127\.0\.0\.1:\d+\/) in a browser/.exec(text);
        if (!match?.[1]) return;
        const pageUrl = match[1];
        // Play the browser: load the page, then open its WebSocket, as its script does.
        viewer = (async () => {
          page = await (await request(pageUrl)).body.text();
          const wsUrl = /new WebSocket\("([^"]+)"\)/.exec(page)?.[1] ?? '';
          browser = new WebSocket(wsUrl);
          browser.on('message', (data) => received.push(JSON.parse(data.toString())));
          await new Promise((resolve) => browser?.once('open', resolve));
        })();
      },
    );
    await viewer;
    expect(code).toBe(0);
    expect(out).toContain('served by stately.ai');
    expect(out).toContain('needs internet access');
    expect(page).toContain('<iframe id="inspector" src="https://stately.ai/inspect"');
    expect(page).toContain('@statelyai.connected');
    expectLifecycle(received);
    browser?.terminate();
  });

  it('refuses a receiver that does not answer, before anything starts (exit 2)', async () => {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => server.once('listening', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const { code, err } = await run([
      'track',
      '--request-id',
      'INSPECT-NONE',
      '--store',
      'memory',
      '--inspect-url',
      `ws://127.0.0.1:${port}`,
      ...endpoint.flags,
    ]);
    expect(code).toBe(2);
    expect(err).toContain(`no WebSocket receiver answers at ws://127.0.0.1:${port}`);
    expect(endpoint.sim.calls().some((c) => c.paymentRequestId === 'INSPECT-NONE')).toBe(false);
  });
});

describe('inspection records', () => {
  it('are JSON-safe: actor refs become IDs, errors their message, snapshots value/context/status', () => {
    const child = createActor(createMachine({ id: 'child' }));
    const machine = createMachine({ id: 'parent', context: { child, problem: new Error('boom') } });
    const events: Parameters<typeof inspectionRecord>[0][] = [];
    const actor = createActor(machine, { inspect: (event) => events.push(event) });
    actor.start();
    actor.stop();
    const snapshot = events.find((e) => e.type === '@xstate.snapshot');
    expect(snapshot).toBeDefined();
    const record = JSON.parse(JSON.stringify(inspectionRecord(snapshot as (typeof events)[number], 1)));
    expect(record).toMatchObject({
      type: '@xstate.snapshot',
      at: 1,
      sessionId: actor.sessionId,
      snapshot: {
        status: 'active',
        context: { child: { sessionId: child.sessionId }, problem: { name: 'Error', message: 'boom' } },
      },
    });
    expect(Object.keys(record.snapshot).sort()).toEqual(['context', 'status', 'value']);
    const actorRecord = inspectionRecord(
      events.find((e) => e.type === '@xstate.actor') as (typeof events)[number],
    );
    expect(actorRecord).toMatchObject({
      type: '@xstate.actor',
      machineId: 'parent',
      sessionId: actor.sessionId,
    });
  });
});
