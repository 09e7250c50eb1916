import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  buildSignatureHeader,
  buildSignContent,
  parseSignatureHeader,
  signContent,
  verifyContent,
} from '../../src/index.js';
import { NOTIFY_ACK_SUCCESS } from '../../src/protocol/notify-payment.js';

export interface ReceivedNotification {
  body: Record<string, unknown>;
  headers: IncomingMessage['headers'];
  signatureValid: boolean;
}

export type AckMode = 'ack' | 'http-500' | 'ack-F' | 'ack-unsigned' | 'hang';

/**
 * An ACQP-side notification endpoint for tests: verifies each notification's signature with the
 * simulator's public key and answers as scripted (a signed S ack by default).
 */
export class NotifyReceiver {
  readonly received: ReceivedNotification[] = [];
  /** What to answer to the n-th notification (0-based); `ack` when the script runs out. */
  script: AckMode[] = [];
  private server: Server | undefined;
  readonly path = '/alipayplus/notify';

  constructor(
    private readonly alipayPublicKey: () => string,
    private readonly acqpPrivateKey: string,
    private readonly clientId: string,
  ) {}

  async start(): Promise<string> {
    const server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const raw = Buffer.concat(chunks);
      let signatureValid = false;
      try {
        signatureValid = verifyContent(
          buildSignContent({
            method: 'POST',
            path: req.url ?? '',
            clientId: String(req.headers['client-id']),
            time: String(req.headers['request-time']),
            body: raw,
          }),
          parseSignatureHeader(String(req.headers.signature)).signature,
          this.alipayPublicKey(),
        );
      } catch {
        signatureValid = false;
      }
      const mode = this.script[this.received.length] ?? 'ack';
      this.received.push({ body: JSON.parse(raw.toString('utf8')), headers: req.headers, signatureValid });
      if (mode === 'hang') return; // never answer; the simulator times out
      if (mode === 'http-500') {
        res.writeHead(500);
        res.end();
        return;
      }
      const body = JSON.stringify(
        mode === 'ack-F' ? { result: { resultCode: 'PROCESS_FAIL', resultStatus: 'F' } } : NOTIFY_ACK_SUCCESS,
      );
      const headers: Record<string, string> = { 'content-type': 'application/json; charset=UTF-8' };
      if (mode !== 'ack-unsigned') {
        const time = new Date().toISOString();
        const content = buildSignContent({
          method: 'POST',
          path: req.url ?? '',
          clientId: this.clientId,
          time,
          body,
        });
        headers['response-time'] = time;
        headers.signature = buildSignatureHeader({ signature: signContent(content, this.acqpPrivateKey) });
      }
      res.writeHead(200, headers);
      res.end(body);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return `http://127.0.0.1:${port}${this.path}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

/** Polls `check` until it is true or `ms` pass (real time). */
export async function eventually(check: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
