import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import {
  type KeyOptions,
  KeyOptionsShape,
  type KeyRing,
  keyRingOf,
  refineKeyOptions,
} from '../client/key-ring.js';
import {
  buildSignatureHeader,
  buildSignContent,
  parseSignatureHeader,
  signContent,
} from '../client/signature.js';
import type { Logger } from '../engine/logger.js';
import { Id } from '../protocol/common.js';
import { NOTIFY_ACK_SUCCESS, NotifyPaymentRequest } from '../protocol/notify-payment.js';
import type { StoredNotification } from '../stores/store.js';
import { parseOrThrow } from '../validate.js';

/**
 * What the endpoint needs from whoever keeps the lifecycles (the engine passes its own): this file
 * imports nothing of the engine's, so neither depends on the other's insides.
 */
export interface NotificationPort {
  /** The time acks are stamped with, and a notification's `receivedAt`. */
  now(): number;
  /** Stores a verified notification durably; resolves once it is safe to acknowledge. */
  record(notification: StoredNotification): Promise<void>;
  /** Feeds a stored notification to its lifecycle; resolves once what it did there is durable. */
  deliver(notification: StoredNotification): Promise<void>;
  /** Counts each refusal (applied, duplicate and late are counted on delivery). */
  refused?(verdict: RefusalVerdict): void;
}

/** Why a notification was refused before it was stored. */
export type RefusalVerdict = 'refused-signature' | 'refused-client' | 'refused-schema';

/**
 * Options of the notification endpoint. Keys come as the `keys` ring shared with the client (so
 * that one rotation changes both), or as `privateKey` (+ `keyVersion`) with `alipayPublicKey` or
 * `alipayPublicKeys`: notifications are verified with Alipay+'s keys, the acknowledgement is signed
 * with yours and names your keyVersion.
 */
export type NotificationHandlerOptions = {
  /** The path Alipay+ POSTs to (the path of your `paymentNotifyUrl`). Default `/alipayplus/notify`. */
  path?: string;
  /** Your Client-Id: notifications must carry it, and the ack is signed with it. */
  clientId: string;
  /** Bodies above this are refused with 413. Default 64 KiB. */
  maxBodyBytes?: number;
} & KeyOptions;

/** A notification request as any framework can give it: the body must be the raw bytes. */
export interface NotificationRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  rawBody: Buffer | string;
}

export interface NotificationResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The framework-neutral core, and a `node:http` listener in one. */
export interface NotificationHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  handle(request: NotificationRequest): Promise<NotificationResponse>;
  /** The keys it verifies and signs with: the ring it was given, or the one it made. */
  readonly keys: KeyRing;
}

const Options = z
  .object({
    path: z.string().startsWith('/').default('/alipayplus/notify'),
    ...KeyOptionsShape,
    clientId: Id,
    maxBodyBytes: z
      .number()
      .int()
      .positive()
      .default(64 * 1024),
  })
  .strict()
  .superRefine(refineKeyOptions);

function header(headers: NotificationRequest['headers'], name: string): string | undefined {
  const direct = headers[name] ?? headers[name.toLowerCase()];
  const value =
    direct ?? Object.entries(headers).find(([key]) => key.toLowerCase() === name.toLowerCase())?.[1];
  return Array.isArray(value) ? value[0] : value;
}

/** How long a notification may take to apply before the ack goes out anyway (it is durable by then). */
const APPLY_BUDGET_MS = 3_000;

/**
 * Builds the notification endpoint: verify the signature (401 and nothing changes if it fails),
 * parse the body (400 with the reason), store the notification durably, feed it to the lifecycle,
 * and answer with a signed SUCCESS acknowledgement — the ack acknowledges receipt, not agreement.
 */
export function createNotificationHandler(
  port: NotificationPort,
  options: NotificationHandlerOptions,
  logger: Logger,
): NotificationHandler {
  const config = parseOrThrow(Options, options, 'notification handler options', 'INVALID_OPTIONS');
  const keys = keyRingOf(config, () => port.now());
  const countRefused = (verdict: RefusalVerdict) => port.refused?.(verdict);

  function respond(status: number, body: object, path: string): NotificationResponse {
    const text = JSON.stringify(body);
    const time = new Date(port.now()).toISOString();
    const { privateKey, keyVersion } = keys.signingKey;
    const signature = signContent(
      buildSignContent({ method: 'POST', path, clientId: config.clientId, time, body: text }),
      privateKey,
    );
    return {
      status,
      headers: {
        'content-type': 'application/json; charset=UTF-8',
        'client-id': config.clientId,
        'response-time': time,
        signature: buildSignatureHeader({ signature, keyVersion }),
      },
      body: text,
    };
  }

  const failure = (status: number, code: string, message: string, path: string) =>
    respond(status, { result: { resultCode: code, resultStatus: 'F', resultMessage: message } }, path);

  async function handle(request: NotificationRequest): Promise<NotificationResponse> {
    const path = request.path.split('?')[0] ?? request.path;
    if (path !== config.path)
      return failure(404, 'INVALID_API', `no notification endpoint at ${path}`, request.path);
    if (request.method.toUpperCase() !== 'POST') {
      return failure(405, 'METHOD_NOT_SUPPORTED', 'notifications are POSTed', request.path);
    }
    const raw = typeof request.rawBody === 'string' ? Buffer.from(request.rawBody, 'utf8') : request.rawBody;
    if (raw.length > config.maxBodyBytes) {
      return failure(413, 'PARAM_ILLEGAL', `body over ${config.maxBodyBytes} bytes`, request.path);
    }

    // 1. The signature, over the exact bytes received. Fail closed: nothing below runs without it.
    const clientId = header(request.headers, 'client-id');
    const time = header(request.headers, 'request-time');
    const signatureHeader = header(request.headers, 'signature');
    if (!clientId || !time || !signatureHeader) {
      logger.warn({ path }, 'notification without client-id, request-time or signature refused');
      countRefused('refused-signature');
      return failure(
        401,
        'INVALID_SIGNATURE',
        'client-id, request-time and signature headers are required',
        request.path,
      );
    }
    if (clientId !== config.clientId) {
      logger.warn({ path }, 'notification for another client-id refused');
      countRefused('refused-client');
      return failure(401, 'INVALID_CLIENT', 'the client-id is not this ACQP', request.path);
    }
    let verified = false;
    try {
      const content = buildSignContent({ method: 'POST', path: request.path, clientId, time, body: raw });
      verified = keys.verifyAlipay(content, parseSignatureHeader(signatureHeader));
    } catch {
      verified = false;
    }
    if (!verified) {
      logger.warn({ path }, 'notification with a bad signature refused');
      countRefused('refused-signature');
      return failure(
        401,
        'INVALID_SIGNATURE',
        'the signature does not verify with any Alipay+ public key configured',
        request.path,
      );
    }

    // 2. The body.
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      countRefused('refused-schema');
      return failure(400, 'PARAM_ILLEGAL', 'the body is not JSON', request.path);
    }
    const parsed = NotifyPaymentRequest.safeParse(json);
    if (!parsed.success) {
      const reason = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      countRefused('refused-schema');
      return failure(400, 'PARAM_ILLEGAL', `the body does not match notifyPayment: ${reason}`, request.path);
    }

    // 3. Durable before acknowledged; then fed to the lifecycle.
    const notification = {
      id: createHash('sha256').update(raw).digest('hex'),
      paymentRequestId: parsed.data.paymentRequestId,
      receivedAt: port.now(),
      body: parsed.data,
      applied: false,
    };
    try {
      await port.record(notification);
    } catch (error) {
      logger.error(
        { err: error, paymentRequestId: notification.paymentRequestId },
        'notification could not be stored',
      );
      return failure(500, 'UNKNOWN_EXCEPTION', 'not stored; send it again', request.path);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      port.deliver(notification).catch((error: unknown) => {
        logger.error(
          { err: error, paymentRequestId: notification.paymentRequestId },
          'notification not applied yet',
        );
      }),
      new Promise((resolve) => {
        timer = setTimeout(resolve, APPLY_BUDGET_MS);
      }),
    ]);
    clearTimeout(timer);
    logger.info({ paymentRequestId: notification.paymentRequestId }, 'notification acknowledged');
    return respond(200, NOTIFY_ACK_SUCCESS, request.path);
  }

  const listener = ((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > config.maxBodyBytes) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      const rawBody = tooLarge ? Buffer.alloc(config.maxBodyBytes + 1) : Buffer.concat(chunks);
      handle({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, rawBody })
        .then((response) => {
          res.writeHead(response.status, response.headers);
          res.end(response.body);
        })
        .catch((error: unknown) => {
          logger.error({ err: error }, 'notification handler failed');
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
    });
  }) as NotificationHandler;
  listener.handle = handle;
  Object.defineProperty(listener, 'keys', { value: keys, enumerable: true });
  return listener;
}
