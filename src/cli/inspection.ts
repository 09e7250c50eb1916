import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { createWebSocketInspector } from '@statelyai/inspect';
import type { Command } from 'commander';
import { WebSocket, WebSocketServer } from 'ws';
import type { InspectionEvent } from 'xstate';
import { CliSettingError, fileTimestamp } from './common.js';
import type { CliIo } from './io.js';
import { number } from './simulator-command.js';

/** Where the Stately inspector UI lives: the bridge page embeds it, so the browser needs internet access. */
export const STATELY_INSPECTOR_URL = 'https://stately.ai/inspect';

export interface InspectionOptions {
  /**
   * A WebSocket receiver to stream to (`ws://...`). Absent: a bridge is started on loopback, with a
   * page that relays the stream to the Stately inspector.
   */
  url?: string;
  /** The bridge's port (0: any free port). Only without `url`. */
  port?: number;
  /** Where the JSON lines go. */
  jsonlPath: string;
}

/** A running inspection: hand `inspect` to the engine; `stop()` flushes everything. */
export interface Inspection {
  inspect(event: InspectionEvent): void;
  /** The WebSocket URL the inspector streams to. */
  readonly wsUrl: string;
  /** The page to open in a browser, when the built-in bridge runs. */
  readonly viewerUrl: string | undefined;
  readonly jsonlPath: string;
  /** Inspection events seen so far. */
  readonly count: number;
  /** Sends what is queued, closes the stream and the file; the bridge keeps serving until `close()`. */
  stop(): Promise<void>;
  /** Closes the bridge (if any). */
  close(): Promise<void>;
}

// ---- JSON-safe events ----------------------------------------------------------------------------

interface ActorLike {
  id?: string;
  sessionId?: string;
  _parent?: ActorLike;
}

/**
 * A JSON value for anything XState puts in an inspection event: actor refs become their IDs (they
 * hold the whole system), errors their name and message, functions and cycles are dropped.
 */
function jsonSafe(value: unknown, seen = new WeakSet<object>()): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'function' || typeof value === 'symbol') return undefined;
    return value;
  }
  if (seen.has(value)) return '[circular]';
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (isActorRef(value)) return { actorId: value.id, sessionId: value.sessionId };
  seen.add(value);
  let result: unknown;
  if (Array.isArray(value)) result = value.map((item) => jsonSafe(item, seen) ?? null);
  else {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const safe = jsonSafe(item, seen);
      if (safe !== undefined) out[key] = safe;
    }
    result = out;
  }
  seen.delete(value);
  return result;
}

function isActorRef(value: object): value is ActorLike {
  const candidate = value as { sessionId?: unknown; send?: unknown; getSnapshot?: unknown };
  return (
    typeof candidate.sessionId === 'string' &&
    typeof candidate.send === 'function' &&
    typeof candidate.getSnapshot === 'function'
  );
}

function snapshotOf(snapshot: unknown): Record<string, unknown> {
  const s = (snapshot ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = { status: s.status };
  for (const key of ['value', 'context', 'output', 'error'] as const) {
    if (s[key] !== undefined) out[key] = jsonSafe(s[key]);
  }
  return out;
}

/** One inspection event as a JSON-safe object: what the JSON-lines file holds, one per line. */
export function inspectionRecord(event: InspectionEvent, at: number = Date.now()): Record<string, unknown> {
  const actor = event.actorRef as ActorLike;
  const base: Record<string, unknown> = {
    type: event.type,
    at,
    rootId: event.rootId,
    actorId: actor.id,
    sessionId: actor.sessionId,
  };
  switch (event.type) {
    case '@xstate.actor': {
      // No snapshot here: the actor is still initialising, and reading it now throws.
      const logic = (event.actorRef as { logic?: { config?: { id?: unknown } } }).logic;
      const machineId = typeof logic?.config?.id === 'string' ? logic.config.id : undefined;
      return { ...base, parentId: actor._parent?.sessionId, machineId };
    }
    case '@xstate.event':
      return {
        ...base,
        sourceId: (event.sourceRef as ActorLike | undefined)?.sessionId,
        event: jsonSafe(event.event),
      };
    case '@xstate.snapshot':
    case '@xstate.transition':
      return { ...base, event: jsonSafe(event.event), snapshot: snapshotOf(event.snapshot) };
    case '@xstate.microstep':
      return {
        ...base,
        event: jsonSafe(event.event),
        snapshot: snapshotOf(event.snapshot),
        transitions: event._transitions.map((t) => ({
          eventType: t.eventType,
          source: t.source.id,
          target: t.target?.map((node) => node.id),
        })),
      };
    case '@xstate.action':
      return { ...base, action: { type: event.action.type, params: jsonSafe(event.action.params) } };
    default:
      return base;
  }
}

// ---- the loopback bridge -------------------------------------------------------------------------

/**
 * The page the browser opens: it embeds the Stately inspector and relays what the bridge sends,
 * once the inspector has said it is ready (it posts `@statelyai.connected` to its parent window).
 */
function bridgePage(wsUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>alipayplus-lifecycle: Stately inspector</title>
<style>html,body{margin:0;height:100%}iframe{border:0;width:100%;height:100%}</style></head>
<body>
<iframe id="inspector" src="${STATELY_INSPECTOR_URL}" title="Stately inspector"></iframe>
<script>
  const frame = document.getElementById('inspector');
  const waiting = [];
  let ready = false;
  window.addEventListener('message', (message) => {
    if (message.data && message.data.type === '@statelyai.connected') {
      ready = true;
      for (const event of waiting.splice(0)) frame.contentWindow.postMessage(event, '*');
    }
  });
  const socket = new WebSocket(${JSON.stringify(wsUrl)});
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (ready) frame.contentWindow.postMessage(event, '*');
    else waiting.push(event);
  };
</script>
</body>
</html>
`;
}

/** At most this many messages are kept for a browser that connects late (the oldest go first). */
const REPLAY_LIMIT = 50_000;

interface Bridge {
  wsUrl: string;
  viewerUrl: string;
  close(): Promise<void>;
}

/**
 * A WebSocket relay on 127.0.0.1 (never all interfaces: inspection events carry payment data). The
 * engine's inspector connects and sends; every browser that opens the page receives what was sent
 * so far, then the live stream.
 */
async function startBridge(port: number): Promise<Bridge> {
  let wsUrl = '';
  const http: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '/') !== '/') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(bridgePage(wsUrl));
  });
  const wss = new WebSocketServer({ server: http });
  const replay: string[] = [];
  // Sockets that sent something: the engine's inspector. Browsers only listen.
  const sources = new Set<WebSocket>();
  wss.on('connection', (socket) => {
    for (const message of replay) socket.send(message);
    socket.on('message', (data) => {
      sources.add(socket);
      const message = data.toString();
      replay.push(message);
      if (replay.length > REPLAY_LIMIT) replay.shift();
      for (const client of wss.clients) {
        if (client !== socket && client.readyState === WebSocket.OPEN) client.send(message);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new CliSettingError(
          '--inspect-port',
          `cannot listen on 127.0.0.1:${port} for the inspector (${error.code ?? error.message}): give another --inspect-port, or 0 for any free port`,
        ),
      ),
    );
    http.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (http.address() as AddressInfo).port;
  wsUrl = `ws://127.0.0.1:${bound}`;
  return {
    wsUrl,
    viewerUrl: `http://127.0.0.1:${bound}/`,
    async close() {
      // Let the inspector's last messages arrive and be relayed: wait (briefly) for it to hang up.
      const open = [...sources].filter((socket) => socket.readyState !== WebSocket.CLOSED);
      await Promise.all(
        open.map(
          (socket) =>
            new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, 1_000);
              socket.once('close', () => {
                clearTimeout(timer);
                resolve();
              });
            }),
        ),
      );
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/**
 * Checks that a WebSocket receiver answers before the inspector is pointed at it: the inspector
 * retries an unreachable URL every 5 s forever, which would keep the process alive after the run.
 */
async function probe(url: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let socket: WebSocket;
    try {
      socket = new WebSocket(url, { handshakeTimeout: 3_000 });
    } catch (error) {
      reject(
        new CliSettingError('--inspect-url', `${url} is not a WebSocket URL: ${(error as Error).message}`),
      );
      return;
    }
    socket.once('open', () => {
      socket.close();
      resolve();
    });
    socket.once('error', (error) =>
      reject(
        new CliSettingError(
          '--inspect-url',
          `no WebSocket receiver answers at ${url} (${error.message}): start it first, or drop --inspect-url to use the built-in bridge`,
        ),
      ),
    );
  });
}

/**
 * Starts inspection: the Stately WebSocket inspector (`@statelyai/inspect`) streaming to `url` or to
 * a loopback bridge, and a JSON-lines file of the same events for offline use.
 */
export async function startInspection(options: InspectionOptions): Promise<Inspection> {
  let bridge: Bridge | undefined;
  let wsUrl: string;
  if (options.url) {
    await probe(options.url);
    wsUrl = options.url;
  } else {
    bridge = await startBridge(options.port ?? 0);
    wsUrl = bridge.wsUrl;
  }
  mkdirSync(dirname(options.jsonlPath), { recursive: true });
  const file: WriteStream = createWriteStream(options.jsonlPath);
  // Held until the socket opens (it opens within milliseconds on loopback); generous, so that the
  // first lifecycles are not dropped from the inspector's view.
  const inspector = createWebSocketInspector({ url: wsUrl, maxDeferredEvents: 10_000 });
  let count = 0;
  let stopped = false;
  // Root actors are named by XState's session IDs; the file names the payment too, so that one
  // payment's events can be picked out with grep.
  const paymentOf = new Map<string, string>();
  const learnPayment = (event: InspectionEvent) => {
    if (paymentOf.has(event.rootId)) return;
    const candidate =
      event.type === '@xstate.actor'
        ? (event.actorRef as { options?: { input?: { paymentRequestId?: unknown } } }).options?.input
            ?.paymentRequestId
        : event.type === '@xstate.snapshot'
          ? (event.snapshot as { context?: { paymentRequestId?: unknown } }).context?.paymentRequestId
          : event.type === '@xstate.event'
            ? (event.event as { input?: { paymentRequestId?: unknown } }).input?.paymentRequestId
            : undefined;
    if (typeof candidate === 'string') paymentOf.set(event.rootId, candidate);
  };
  return {
    wsUrl,
    viewerUrl: bridge?.viewerUrl,
    jsonlPath: options.jsonlPath,
    get count() {
      return count;
    },
    inspect(event) {
      if (stopped) return;
      count++;
      inspector.inspect.next?.(event);
      learnPayment(event);
      const record = inspectionRecord(event);
      const paymentRequestId = paymentOf.get(event.rootId);
      if (paymentRequestId) record.paymentRequestId = paymentRequestId;
      file.write(`${JSON.stringify(record)}\n`);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // The inspector converts and sends each event on a later macrotask: let those run first.
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Closing a socket that is still connecting counts as an error, and the inspector answers an
      // error by reconnecting 5 s later, for ever: wait (briefly) until it is open. Its status is
      // not public API, so a missing field just skips the wait.
      const adapter = inspector.adapter as unknown as { status?: string };
      for (
        let waited = 0;
        adapter.status !== undefined && adapter.status !== 'open' && waited < 2_000;
        waited += 20
      )
        await new Promise((resolve) => setTimeout(resolve, 20));
      inspector.stop();
      await new Promise<void>((resolve, reject) =>
        file.end((error?: Error | null) => (error ? reject(error) : resolve())),
      );
    },
    async close() {
      await bridge?.close();
    },
  };
}

// ---- the command-line side -----------------------------------------------------------------------

/** The inspection flags of `demo` and `track`. */
export interface InspectFlags {
  inspect?: boolean;
  inspectUrl?: string;
  inspectPort: number;
  inspectFile?: string;
}

/** Where files a run writes go by default, relative to the working directory (git-ignored). */
export const RUN_DIR = './.alipayplus';

/** Adds `--inspect`, `--inspect-url`, `--inspect-port` and `--inspect-file`. */
export function inspectOptions(command: Command): Command {
  return command
    .option('--inspect', 'stream the lifecycles to the Stately inspector, and write the events to a file')
    .option(
      '--inspect-url <ws-url>',
      'stream to this WebSocket receiver instead of the built-in bridge (implies --inspect)',
    )
    .option(
      '--inspect-port <port>',
      "the built-in bridge's port on 127.0.0.1 (0: any free port)",
      number('--inspect-port', 0, 65_535),
      0,
    )
    .option(
      '--inspect-file <path>',
      `the JSON-lines file of inspection events (default ${RUN_DIR}/inspect-<timestamp>.jsonl; implies --inspect)`,
    );
}

/** Starts inspection when the flags ask for it, and says plainly how to watch it. */
export async function inspectionFromFlags(
  flags: InspectFlags,
  io: CliIo,
  stamp = fileTimestamp(),
): Promise<Inspection | undefined> {
  if (!flags.inspect && !flags.inspectUrl && !flags.inspectFile) return undefined;
  const inspection = await startInspection({
    ...(flags.inspectUrl ? { url: flags.inspectUrl } : { port: flags.inspectPort }),
    jsonlPath: flags.inspectFile ?? join(RUN_DIR, `inspect-${stamp}.jsonl`),
  });
  if (inspection.viewerUrl) {
    io.out(`Inspector: open ${inspection.viewerUrl} in a browser to watch the lifecycles live.\n`);
    io.out(
      `  The inspector UI itself is served by stately.ai (${STATELY_INSPECTOR_URL}) and loads inside that page,\n` +
        '  so the browser needs internet access; the events travel only over loopback from this process.\n',
    );
  } else {
    io.out(`Inspector: streaming to ${inspection.wsUrl}\n`);
  }
  io.out(
    `  The same inspection events are written as JSON lines to ${inspection.jsonlPath} (for offline use).\n`,
  );
  return inspection;
}
