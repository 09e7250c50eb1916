import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listAttention } from '../engine/attention.js';
import { Id } from '../protocol/common.js';
import type { AuditEntry, LifecycleRecord, LifecycleStore } from '../stores/store.js';
import { lifecycleStatechart } from './statechart.js';
import { type CountSampler, lagDistribution, seriesOf, splitCounts, startCountSampler } from './summary.js';

/** The port `dashboard` listens on when none is given. */
export const DEFAULT_DASHBOARD_PORT = 8790;

export interface DashboardOptions {
  /** An open store. The dashboard only reads it; the caller opens and closes it. */
  store: LifecycleStore;
  /** Default {@link DEFAULT_DASHBOARD_PORT}; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1: the page shows payments, so it is not offered to the network. */
  host?: string;
  /** How often the counts over time are sampled. Default 2 s. */
  sampleIntervalMs?: number;
  /** How far back the counts over time reach. Default one hour. */
  windowMs?: number;
  /** Newest lifecycles read for the decision-lag distribution. Default 5000. */
  lagRecords?: number;
  /** The dashboard's clock (ages, sample times). Default Date.now. */
  now?: () => number;
  /** Called with store reads that failed (the page then shows the error it gets). */
  onError?: (error: unknown) => void;
}

export interface DashboardServer {
  /** `http://127.0.0.1:PORT/` */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const require = createRequire(import.meta.url);
const packageDir = (name: string) => dirname(require.resolve(`${name}/package.json`));
const pageDir = fileURLToPath(new URL('./page/', import.meta.url));

/** Every file the page loads, all from this package or its dependencies: the page works offline. */
const ASSETS: Record<string, { file: () => string; type: string }> = {
  '/': { file: () => join(pageDir, 'index.html'), type: 'text/html; charset=utf-8' },
  '/dashboard.js': { file: () => join(pageDir, 'dashboard.js'), type: 'text/javascript; charset=utf-8' },
  '/dashboard.css': { file: () => join(pageDir, 'dashboard.css'), type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: () => join(pageDir, 'favicon.svg'), type: 'image/svg+xml' },
  '/vendor/elk.bundled.js': {
    file: () => join(packageDir('elkjs'), 'lib', 'elk.bundled.js'),
    type: 'text/javascript; charset=utf-8',
  },
  '/vendor/uPlot.iife.min.js': {
    file: () => join(packageDir('uplot'), 'dist', 'uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  '/vendor/uPlot.min.css': {
    file: () => join(packageDir('uplot'), 'dist', 'uPlot.min.css'),
    type: 'text/css; charset=utf-8',
  },
};

/**
 * Only this server's own files: no inline script or style, no other origin. ELK runs its layout in
 * the page's own thread (the bundled build's fallback when no worker URL is given), so it needs
 * neither a worker nor eval.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const auditOf = (entries: readonly AuditEntry[]) =>
  entries.map((a) => {
    const entry: { at: number; from: string; to: string; event: string; code?: string } = {
      at: a.at,
      from: a.from,
      to: a.to,
      event: a.event,
    };
    if (a.code !== undefined) entry.code = a.code;
    return entry;
  });

/**
 * What the page shows of one lifecycle. Fields are picked one by one: the stored input (with the
 * pay request) and notification bodies carry customer and wallet data the page has no need for.
 */
function paymentView(record: LifecycleRecord) {
  const outcome = record.outcome;
  const amount = outcome?.details.paymentAmount ?? record.input.amount;
  return {
    paymentRequestId: record.paymentRequestId,
    state: record.state,
    final: record.final,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    ...(amount ? { amount: { currency: amount.currency, value: amount.value } } : {}),
    ...(outcome
      ? {
          outcome: {
            status: outcome.status,
            decidedBy: { source: outcome.decidedBy.source, code: outcome.decidedBy.code },
            decidedAt: outcome.decidedAt,
            inquiries: outcome.inquiries,
            cancelAttempts: outcome.cancelAttempts,
            ...(outcome.attentionReason ? { attentionReason: outcome.attentionReason } : {}),
            ...(outcome.cancelReason ? { cancelReason: outcome.cancelReason } : {}),
            ...(outcome.details.paymentTime ? { paymentTime: outcome.details.paymentTime } : {}),
            lateNotifications: outcome.lateNotifications.length,
          },
        }
      : {}),
    settledFired: record.settledFired,
  };
}

/** Serves the dashboard page and its JSON API on `host:port`; resolves once it listens. */
export async function startDashboardServer(options: DashboardOptions): Promise<DashboardServer> {
  const { store } = options;
  const now = options.now ?? Date.now;
  const lagRecords = options.lagRecords ?? 5_000;
  const statechart = JSON.stringify(lifecycleStatechart());
  const assets = new Map<string, Promise<Buffer>>();
  const host = options.host ?? '127.0.0.1';
  const allowedHosts = new Set(['127.0.0.1', 'localhost', '[::1]', host]);
  const sampler: CountSampler = startCountSampler(store, {
    intervalMs: options.sampleIntervalMs ?? 2_000,
    windowMs: options.windowMs ?? 3_600_000,
    now,
    ...(options.onError ? { onError: options.onError } : {}),
  });

  const routes: { pattern: RegExp; answer: (match: RegExpExecArray) => Promise<unknown> }[] = [
    { pattern: /^\/api\/machine$/, answer: async () => JSON.parse(statechart) },
    {
      pattern: /^\/api\/summary$/,
      answer: async () => {
        const counts = await store.stateCounts();
        const { inFlight, outcomes } = splitCounts(counts);
        return {
          at: now(),
          counts,
          total: Object.values(counts).reduce((sum, n) => sum + n, 0),
          inFlight,
          outcomes,
          series: seriesOf(sampler.samples()),
          lag: lagDistribution(await store.list(lagRecords)),
        };
      },
    },
    {
      pattern: /^\/api\/attention$/,
      answer: async () => {
        const items = await listAttention(store, now());
        return {
          items: items.map((view) => ({
            paymentRequestId: view.paymentRequestId,
            reason: view.reason,
            ...(view.amount ? { amount: view.amount } : {}),
            decidedAt: view.decidedAt,
            ageMs: view.ageMs,
            audit: auditOf(view.audit),
          })),
        };
      },
    },
    {
      pattern: /^\/api\/payment\/([^/]*)$/,
      answer: async (match) => {
        let id: string;
        try {
          id = decodeURIComponent(match[1] ?? '');
        } catch {
          throw new HttpError(400, 'the paymentRequestId is not valid URL encoding');
        }
        const parsed = Id.safeParse(id);
        if (!parsed.success) {
          throw new HttpError(
            400,
            `not a paymentRequestId: ${parsed.error.issues.map((issue) => issue.message).join('; ')}`,
          );
        }
        const record = await store.load(id);
        const notifications = await store.notifications(id);
        if (!record) {
          throw new HttpError(
            404,
            notifications.length > 0
              ? `${id} is not tracked in this store; ${notifications.length} notification(s) for it wait in the inbox`
              : `${id} is not in this store`,
          );
        }
        return {
          ...paymentView(record),
          audit: auditOf(await store.audit(id)),
          notifications: notifications.map((n) => ({
            id: n.id,
            receivedAt: n.receivedAt,
            applied: n.applied,
            resultStatus: n.body.paymentResult.resultStatus,
            resultCode: n.body.paymentResult.resultCode,
          })),
        };
      },
    },
  ];

  function send(res: ServerResponse, status: number, type: string, body: Buffer | string, head: boolean) {
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(head ? undefined : body);
  }
  const sendJson = (res: ServerResponse, status: number, value: unknown, head: boolean) =>
    send(res, status, 'application/json; charset=utf-8', JSON.stringify(value), head);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      return sendJson(res, 405, { error: 'the dashboard is read-only: GET only' }, head);
    }
    // A page from elsewhere could point a name of its own at 127.0.0.1 and read the API through
    // it (DNS rebinding); answering only requests addressed to the loopback names stops that.
    if (!allowedHosts.has((req.headers.host ?? '').replace(/:\d+$/, ''))) {
      return sendJson(res, 421, { error: 'open the dashboard as http://127.0.0.1:PORT/' }, head);
    }
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const asset = ASSETS[path === '/index.html' ? '/' : path];
    if (asset) {
      let content = assets.get(path);
      if (!content) {
        content = readFile(asset.file());
        assets.set(path, content);
        content.catch(() => assets.delete(path));
      }
      return send(res, 200, asset.type, await content, head);
    }
    for (const route of routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      try {
        return sendJson(res, 200, await route.answer(match), head);
      } catch (error) {
        if (error instanceof HttpError) return sendJson(res, error.status, { error: error.message }, head);
        options.onError?.(error);
        return sendJson(res, 500, { error: 'the store could not be read; see the dashboard output' }, head);
      }
    }
    return sendJson(res, 404, { error: `no such page: ${path}` }, head);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      options.onError?.(error);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' }, false);
      else res.destroy();
    });
  });
  // The first sample now, so that the page's first charts have a point before the timer's first tick.
  await sampler.sample().catch((error) => options.onError?.(error));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? DEFAULT_DASHBOARD_PORT, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    sampler.stop();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    port,
    async close() {
      sampler.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
