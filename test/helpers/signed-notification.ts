import { buildSignatureHeader, buildSignContent, signContent } from '../../src/client/signature.js';
import type { NotificationRequest } from '../../src/index.js';

/**
 * A notifyPayment request as Alipay+ sends it: the body signed with `privatePem` (a test key), for a
 * notification handler's `handle()`.
 */
export function signedNotification(options: {
  privatePem: string;
  clientId: string;
  body: object;
  keyVersion?: number;
  path?: string;
  time?: string;
}): NotificationRequest {
  const path = options.path ?? '/alipayplus/notify';
  const body = JSON.stringify(options.body);
  const time = options.time ?? new Date().toISOString();
  const signature = signContent(
    buildSignContent({ method: 'POST', path, clientId: options.clientId, time, body }),
    options.privatePem,
  );
  return {
    method: 'POST',
    path,
    headers: {
      'client-id': options.clientId,
      'request-time': time,
      signature: buildSignatureHeader({ signature, keyVersion: options.keyVersion ?? 1 }),
    },
    rawBody: body,
  };
}
