import { inspect } from 'node:util';
import { Agent, type Dispatcher, request } from 'undici';
import { z } from 'zod';
import { CancelPaymentResponse } from '../protocol/cancel-payment.js';
import { Id, PaymentRef } from '../protocol/common.js';
import { InquiryPaymentResponse } from '../protocol/inquiry-payment.js';
import { PayRequest, type PayRequestInput, PayResponse } from '../protocol/pay.js';
import { RefundRequest, type RefundRequestInput, RefundResponse } from '../protocol/refund.js';
import { parseOrThrow } from '../validate.js';
import type {
  CancelOutcome,
  InquiryOutcome,
  NoResult,
  NoResultReason,
  PayOutcome,
  RefundOutcome,
} from './answers.js';
import { type KeyOptions, KeyOptionsShape, type KeyRing, keyRingOf, refineKeyOptions } from './key-ring.js';
import {
  buildSignatureHeader,
  buildSignContent,
  parseSignatureHeader,
  signContentAsync,
} from './signature.js';

export const API_PATHS = {
  pay: '/aps/api/v1/payments/pay',
  inquiryPayment: '/aps/api/v1/payments/inquiryPayment',
  cancelPayment: '/aps/api/v1/payments/cancelPayment',
  refund: '/aps/api/v1/payments/refund',
} as const;

export type ApiName = keyof typeof API_PATHS;

const ClientOptions = z
  .object({
    baseUrl: z.url({
      protocol: /^https?$/,
      error: 'must be an http(s) URL such as https://open-sea-global.alipayplus.com',
    }),
    clientId: Id,
    ...KeyOptionsShape,
    timeouts: z
      .object({
        payMs: z.number().int().positive().default(8_000),
        inquiryMs: z.number().int().positive().default(5_000),
        cancelMs: z.number().int().positive().default(8_000),
        refundMs: z.number().int().positive().default(8_000),
      })
      .prefault({}),
    /** Connections to the Alipay+ origin when the client owns its dispatcher. */
    connections: z.number().int().positive().default(128),
    dispatcher: z.custom<Dispatcher>().optional(),
    now: z.custom<() => number>((value) => typeof value === 'function').optional(),
  })
  .superRefine(refineKeyOptions);

/**
 * Options of {@link createAlipayPlusClient}. Keys come as a shared `keys` ring (see
 * {@link createKeyRing}), or as `privateKey` (+ `keyVersion`) with `alipayPublicKey` or
 * `alipayPublicKeys`; keys may be PEM, bare Base64 DER, Buffers or KeyObjects.
 */
export type AlipayPlusClientOptions = Omit<z.input<typeof ClientOptions>, keyof typeof KeyOptionsShape> &
  KeyOptions;

export interface CallOptions {
  /** Aborts the call; the outcome is then `no-result` with reason `aborted`. */
  readonly signal?: AbortSignal;
}

/**
 * The Alipay+ calls the lifecycle needs. Methods never throw for transport or format problems; a
 * request that fails its own schema throws `INVALID_INPUT` before anything is signed or sent.
 */
export interface AlipayPlusClient {
  readonly clientId: string;
  readonly baseUrl: string;
  /**
   * The keys this client signs and verifies with: the ring it was given, or the one it made from
   * its key options. Rotate keys through it; each change applies from the next call.
   */
  readonly keys: KeyRing;
  /** Sends `pay` with exactly this body (validated for its mode first). */
  pay(request: PayRequestInput, options?: CallOptions): Promise<PayOutcome>;
  inquiryPayment(ref: PaymentRef, options?: CallOptions): Promise<InquiryOutcome>;
  cancelPayment(ref: PaymentRef, options?: CallOptions): Promise<CancelOutcome>;
  /** Sends `refund`; the same `refundRequestId` again never refunds twice. */
  refund(request: RefundRequestInput, options?: CallOptions): Promise<RefundOutcome>;
  /** Closes the client's own connection pool (an injected dispatcher is left to its owner). */
  close(): Promise<void>;
}

const TIMED_OUT = Symbol('timeout');

function noResult(reason: NoResultReason, detail: string, httpStatus?: number): NoResult {
  return httpStatus === undefined
    ? { kind: 'no-result', reason, detail }
    : { kind: 'no-result', reason, detail, httpStatus };
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

function refBody(ref: PaymentRef): string {
  // Exactly one reference travels, so Alipay+ never has to choose between two.
  return 'paymentId' in ref
    ? JSON.stringify({ paymentId: ref.paymentId })
    : JSON.stringify({ paymentRequestId: ref.paymentRequestId });
}

/**
 * Creates a client that signs every request, verifies every answer, and turns every transport,
 * format or signature problem into a `no-result` outcome. Keys are read here, so a bad key fails at
 * creation with a typed error, never on the first request. An answer verifies with the Alipay+ key
 * whose version its `Signature` header names, else with any Alipay+ key the ring holds.
 *
 * @throws ValidationError `INVALID_OPTIONS`, KeyError `KEY_FORMAT` / `KEY_TYPE`
 */
export function createAlipayPlusClient(options: AlipayPlusClientOptions): AlipayPlusClient {
  const config = parseOrThrow(ClientOptions, options, 'Alipay+ client options', 'INVALID_OPTIONS');
  const now = config.now ?? Date.now;
  const keys = keyRingOf(config, now);
  const base = new URL(config.baseUrl);
  const origin = base.origin;
  const prefix = base.pathname.replace(/\/+$/, '');
  const ownDispatcher = config.dispatcher
    ? undefined
    : new Agent({ connections: config.connections, keepAliveTimeout: 30_000 });
  const dispatcher: Dispatcher = config.dispatcher ?? (ownDispatcher as Agent);
  const { clientId, timeouts } = config;

  async function call<T extends z.ZodType>(
    api: ApiName,
    body: string,
    timeoutMs: number,
    schema: T,
    signal: AbortSignal | undefined,
  ): Promise<(z.output<T> & { kind: 'answer'; raw: string; responseTime: string }) | NoResult> {
    if (signal?.aborted) return noResult('aborted', 'aborted before the request was sent');
    const path = `${prefix}${API_PATHS[api]}`;
    const requestTime = new Date(now()).toISOString();

    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(TIMED_OUT), timeoutMs);
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const stopReason = (): NoResult | undefined => {
      if (!controller.signal.aborted) return undefined;
      return controller.signal.reason === TIMED_OUT
        ? noResult('timeout', `no complete answer within ${timeoutMs} ms`)
        : noResult('aborted', 'aborted by the caller');
    };

    try {
      // Read once: a rotation during the signing cannot pair this signature with another version.
      const { privateKey, keyVersion } = keys.signingKey;
      const signature = await signContentAsync(
        buildSignContent({ method: 'POST', path, clientId, time: requestTime, body }),
        privateKey,
      );
      const stopped = stopReason();
      if (stopped) return stopped;

      const response = await request(`${origin}${path}`, {
        method: 'POST',
        dispatcher,
        signal: controller.signal,
        headers: {
          'content-type': 'application/json; charset=UTF-8',
          'client-id': clientId,
          'request-time': requestTime,
          signature: buildSignatureHeader({ signature, keyVersion }),
        },
        body,
      });
      const rawBytes = Buffer.from(await response.body.arrayBuffer());
      if (response.statusCode !== 200) {
        return noResult('http-status', `HTTP ${response.statusCode}`, response.statusCode);
      }

      const responseTime = header(response.headers, 'response-time');
      const signatureHeader = header(response.headers, 'signature');
      if (!responseTime || !signatureHeader) {
        return noResult(
          'bad-signature',
          'the answer has no response-time or signature header; not trusted',
          200,
        );
      }
      let verified = false;
      try {
        const parsed = parseSignatureHeader(signatureHeader);
        const content = buildSignContent({
          method: 'POST',
          path,
          clientId,
          time: responseTime,
          body: rawBytes,
        });
        verified = await keys.verifyAlipayAsync(content, parsed);
      } catch (error) {
        return noResult('bad-signature', `the signature header is unusable: ${describe(error)}`, 200);
      }
      if (!verified) {
        return noResult(
          'bad-signature',
          'the answer signature does not verify with any Alipay+ public key configured',
          200,
        );
      }

      const raw = rawBytes.toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        return noResult('bad-json', `the body is not JSON (${rawBytes.length} bytes)`, 200);
      }
      const parsed = schema.safeParse(json);
      if (!parsed.success) {
        const issues = parsed.error.issues.map(
          (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
        );
        return noResult('schema', `the body does not match the ${api} schema: ${issues.join('; ')}`, 200);
      }
      return { ...(parsed.data as object), kind: 'answer', raw, responseTime } as z.output<T> & {
        kind: 'answer';
        raw: string;
        responseTime: string;
      };
    } catch (error) {
      return stopReason() ?? noResult(isTimeout(error) ? 'timeout' : 'network', describe(error));
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  const client: AlipayPlusClient = {
    clientId,
    baseUrl: config.baseUrl,
    keys,
    // A bad request is the caller's bug, not a network problem: it is refused before anything is sent.
    pay: async (request, o) => {
      parseOrThrow(PayRequest, request, 'pay request');
      return call('pay', JSON.stringify(request), timeouts.payMs, PayResponse, o?.signal);
    },
    inquiryPayment: async (ref, o) => {
      parseOrThrow(PaymentRef, ref, 'inquiryPayment reference');
      return call('inquiryPayment', refBody(ref), timeouts.inquiryMs, InquiryPaymentResponse, o?.signal);
    },
    cancelPayment: async (ref, o) => {
      parseOrThrow(PaymentRef, ref, 'cancelPayment reference');
      return call('cancelPayment', refBody(ref), timeouts.cancelMs, CancelPaymentResponse, o?.signal);
    },
    refund: async (request, o) => {
      parseOrThrow(RefundRequest, request, 'refund request');
      return call('refund', JSON.stringify(request), timeouts.refundMs, RefundResponse, o?.signal);
    },
    close: async () => {
      await ownDispatcher?.close();
    },
  };
  // Whatever a caller logs or prints of the client, keys stay out of it.
  const summary = () => ({
    baseUrl: config.baseUrl,
    clientId,
    keyVersion: keys.signingKey.keyVersion,
    privateKey: '[redacted]',
  });
  Object.defineProperty(client, inspect.custom, { value: () => `AlipayPlusClient ${inspect(summary())}` });
  Object.defineProperty(client, 'toJSON', { value: summary });
  return client;
}

function isTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return (
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'ETIMEDOUT'
  );
}
