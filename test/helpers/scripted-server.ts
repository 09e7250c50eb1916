import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  buildSignatureHeader,
  buildSignContent,
  parseSignatureHeader,
  signContent,
  verifyContent,
} from '../../src/index.js';
import { generateTestKeyPair, type TestKeyPair } from './keys.js';

/** What the server does with one request. */
export interface Reply {
  status?: number;
  /** A JSON value is serialised; a string is sent as it is. */
  body?: unknown;
  /** good: signed with the server's key; missing: no headers; wrong: signed with another key; tampered: signed over another body. */
  sign?: 'good' | 'missing' | 'wrong' | 'tampered';
  delayMs?: number;
  /** Destroys the socket instead of answering. */
  reset?: boolean;
}

export interface ReceivedRequest {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** Whether the request's signature verified with the ACQP's public key. */
  signatureValid: boolean;
}

/**
 * A bare node:http server on loopback that answers as scripted, signing like Alipay+ does. It is
 * not the simulator: it exists to put the client under every answer and failure, one at a time.
 */
export class ScriptedServer {
  readonly alipay: TestKeyPair = generateTestKeyPair();
  readonly other: TestKeyPair = generateTestKeyPair();
  readonly received: ReceivedRequest[] = [];
  reply: (request: ReceivedRequest) => Reply = () => ({ status: 500 });
  private server: Server | undefined;
  private readonly sockets = new Set<import('node:net').Socket>();

  constructor(
    private readonly acqpPublicKey: string,
    private readonly clientId: string,
  ) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = req.url ?? '/';
    let signatureValid = false;
    try {
      const header = parseSignatureHeader(String(req.headers.signature ?? ''));
      signatureValid = verifyContent(
        buildSignContent({
          method: req.method ?? 'POST',
          path,
          clientId: String(req.headers['client-id']),
          time: String(req.headers['request-time']),
          body,
        }),
        header.signature,
        this.acqpPublicKey,
      );
    } catch {
      signatureValid = false;
    }
    const received = { path, headers: req.headers, body, signatureValid };
    this.received.push(received);
    const reply = this.reply(received);
    if (reply.delayMs) await new Promise((resolve) => setTimeout(resolve, reply.delayMs));
    if (reply.reset) {
      req.socket.destroy();
      return;
    }
    const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? {});
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=UTF-8' };
    const sign = reply.sign ?? 'good';
    if (sign !== 'missing') {
      const time = new Date().toISOString();
      const key = sign === 'wrong' ? this.other.privateKey : this.alipay.privateKey;
      const signedBody = sign === 'tampered' ? `${text} ` : text;
      const signature = signContent(
        buildSignContent({ method: 'POST', path, clientId: this.clientId, time, body: signedBody }),
        key,
      );
      headers['response-time'] = time;
      headers.signature = buildSignatureHeader({ signature });
    }
    if (res.destroyed) return;
    res.writeHead(reply.status ?? 200, headers);
    res.end(text);
  }
}
