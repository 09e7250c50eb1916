import { Agent, request } from 'undici';
import {
  buildSignatureHeader,
  buildSignContent,
  parseSignatureHeader,
  signContentAsync,
} from '../client/signature.js';
import type { NotifyPaymentRequest } from '../protocol/notify-payment.js';
import { MinHeap } from '../util/min-heap.js';
import type { SimulatorKeys } from './simulator-keys.js';

/** Antom's published notification retry intervals: 0 s, 2 min, 10 min, 10 min, 1 h, 2 h, 6 h, 15 h. */
export const DEFAULT_NOTIFY_RETRY_MS = [
  0, 120_000, 600_000, 600_000, 3_600_000, 7_200_000, 21_600_000, 54_000_000,
];

export type DeliveryResult =
  | 'acked'
  | 'bad-ack'
  | 'bad-ack-signature'
  | 'http-status'
  | 'timeout'
  | 'network';

/** One notification sent (or tried), for the log and the tests. */
export interface DeliveryRecord {
  paymentRequestId: string;
  /** 1 for the first try of this copy, 2 for its first retry, ... */
  attempt: number;
  /** 0 for the original, 1.. for duplicates sent on purpose. */
  copy: number;
  at: number;
  result: DeliveryResult;
  /** The version of the simulator's key that signed this try. */
  keyVersion?: number;
  httpStatus?: number;
  resultStatus: 'S' | 'F';
}

interface Pending {
  at: number;
  url: string;
  body: NotifyPaymentRequest;
  attempt: number;
  copy: number;
  /** Checked when due: a notification whose cause was undone (a cancel came first) is dropped. */
  stillValid: () => boolean;
}

export interface NotifierOptions {
  clientId: string;
  /** Signs with the simulator's active key; verifies acks with the ACQP keys it trusts now. */
  keys: SimulatorKeys;
  now: () => number;
  /** Simulated ms between tries. The clock's time factor compresses them with everything else. */
  retryScheduleMs: readonly number[];
  /** Real ms to wait for the ack before counting a timeout. Alipay+ waits 5 s. */
  ackTimeoutMs: number;
  /** Real ms between looks at the queue. */
  tickMs: number;
}

/** Sends signed notifications when they fall due, and retries them until acked or out of tries. */
export class Notifier {
  readonly log: DeliveryRecord[] = [];
  private readonly queue = new MinHeap<Pending>();
  private readonly agent = new Agent({ connections: 32, keepAliveTimeout: 5_000 });
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;

  constructor(private readonly options: NotifierOptions) {}

  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.options.tickMs);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.agent.close().catch(() => undefined);
  }

  clear(): void {
    this.queue.clear();
  }

  /** Schedules a notification (and `duplicates` extra copies) for `at`. */
  schedule(
    at: number,
    url: string,
    body: NotifyPaymentRequest,
    duplicates: number,
    stillValid: () => boolean,
  ): void {
    for (let copy = 0; copy <= duplicates; copy++)
      this.queue.push({ at, url, body, attempt: 1, copy, stillValid });
  }

  get pending(): number {
    return this.queue.size + this.inFlight;
  }

  /** Delivers everything due now. Exposed for tests with a hand-driven clock. */
  tick(): void {
    const now = this.options.now();
    for (let next = this.queue.peek(); next && next.at <= now; next = this.queue.peek()) {
      this.queue.pop();
      if (!next.stillValid()) continue;
      this.inFlight++;
      void this.deliver(next).finally(() => {
        this.inFlight--;
      });
    }
  }

  private async deliver(item: Pending): Promise<void> {
    const { clientId, keys, now } = this.options;
    const url = new URL(item.url);
    const path = `${url.pathname}${url.search}`;
    const body = JSON.stringify(item.body);
    const requestTime = new Date(now()).toISOString();
    const record: DeliveryRecord = {
      paymentRequestId: item.body.paymentRequestId,
      attempt: item.attempt,
      copy: item.copy,
      at: now(),
      result: 'network',
      resultStatus: item.body.paymentResult.resultStatus === 'S' ? 'S' : 'F',
    };
    try {
      const { privateKey, keyVersion } = keys.active;
      record.keyVersion = keyVersion;
      const signature = await signContentAsync(
        buildSignContent({ method: 'POST', path, clientId, time: requestTime, body }),
        privateKey,
      );
      const response = await request(url, {
        method: 'POST',
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.options.ackTimeoutMs),
        headers: {
          'content-type': 'application/json; charset=UTF-8',
          'client-id': clientId,
          'request-time': requestTime,
          signature: buildSignatureHeader({ signature, keyVersion }),
        },
        body,
      });
      const raw = Buffer.from(await response.body.arrayBuffer());
      record.httpStatus = response.statusCode;
      record.result = this.judgeAck(response.statusCode, response.headers, path, raw);
    } catch (error) {
      const name = (error as { name?: string }).name;
      record.result = name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network';
    }
    this.log.push(record);
    // Only the original is retried; duplicates are extra copies, sent once each.
    if (record.result !== 'acked' && item.copy === 0) {
      const wait = this.options.retryScheduleMs[item.attempt];
      if (wait !== undefined) this.queue.push({ ...item, attempt: item.attempt + 1, at: now() + wait });
    }
  }

  /** An ack counts only if it is HTTP 200, signed by the ACQP, and says S. */
  private judgeAck(
    status: number,
    headers: Record<string, string | string[] | undefined>,
    path: string,
    raw: Buffer,
  ): DeliveryResult {
    if (status !== 200) return 'http-status';
    const time = headers['response-time'];
    const signature = headers.signature;
    if (typeof time !== 'string' || typeof signature !== 'string') return 'bad-ack-signature';
    try {
      const content = buildSignContent({
        method: 'POST',
        path,
        clientId: this.options.clientId,
        time,
        body: raw,
      });
      if (!this.options.keys.verifyAcqp(content, parseSignatureHeader(signature))) {
        return 'bad-ack-signature';
      }
      const ack = JSON.parse(raw.toString('utf8')) as { result?: { resultStatus?: string } };
      return ack.result?.resultStatus === 'S' ? 'acked' : 'bad-ack';
    } catch {
      return 'bad-ack';
    }
  }
}
