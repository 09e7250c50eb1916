import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  buildSignatureHeader,
  buildSignContent,
  createAlipayPlusClient,
  createKeyRing,
  type KeyRing,
  keyFingerprint,
  parseSignatureHeader,
  signContent,
  verifyContent,
} from '../src/client/index.js';
import { createPaymentEngine, type PaymentEngine } from '../src/engine/payment-engine.js';
import { memoryStore } from '../src/stores/memory-store.js';
import { generateTestKeyPair } from './helpers/keys.js';

const acqp = generateTestKeyPair();
const acqp2 = generateTestKeyPair();
const alipay1 = generateTestKeyPair();
const alipay2 = generateTestKeyPair();
const stranger = generateTestKeyPair();

const content = buildSignContent({
  method: 'POST',
  path: '/aps/api/v1/payments/inquiryPayment',
  clientId: 'C1',
  time: '2026-01-15T11:00:00+08:00',
  body: '{"paymentRequestId":"P1"}',
});

/** A parsed Signature header over `content`, signed with `key`, naming `keyVersion` (or none). */
function signedBy(key: { privatePem: string }, keyVersion: number | undefined) {
  const signature = signContent(content, key.privatePem);
  const header =
    keyVersion === undefined
      ? `algorithm=RSA256,signature=${signature}`
      : buildSignatureHeader({ signature, keyVersion });
  return parseSignatureHeader(header);
}

function ringOf(alipayPublicKeys: Parameters<typeof createKeyRing>[0]['alipayPublicKeys']): KeyRing {
  return createKeyRing({ privateKey: acqp.privatePem, alipayPublicKeys });
}

const versionsOf = (ring: KeyRing) => ring.status().alipayPublicKeys.map((k) => k.keyVersion);

describe('verification: selection by keyVersion', () => {
  const ring = () =>
    ringOf([
      { key: alipay1.publicPem, keyVersion: 1 },
      { key: alipay2.publicPem, keyVersion: 2 },
    ]);

  it('a header naming a version the ring has is checked with that key, and counted on it', () => {
    const keys = ring();
    expect(keys.verifyAlipay(content, signedBy(alipay2, 2))).toBe(true);
    expect(keys.verifyAlipay(content, signedBy(alipay1, 1))).toBe(true);
    expect(keys.verifyAlipay(content, signedBy(alipay2, 2))).toBe(true);
    const verified = Object.fromEntries(
      keys.status().alipayPublicKeys.map((k) => [String(k.keyVersion), k.verified]),
    );
    expect(verified).toEqual({ '1': 1, '2': 2 });
  });

  it('with that key alone: a signature by key 1 labelled version 2 is refused, though key 1 is held', () => {
    const keys = ring();
    expect(keys.verifyAlipay(content, signedBy(alipay1, 2))).toBe(false);
    expect(keys.verifyAlipay(content, signedBy(alipay2, 1))).toBe(false);
  });

  it('the async check selects the same way', async () => {
    const keys = ring();
    expect(await keys.verifyAlipayAsync(content, signedBy(alipay2, 2))).toBe(true);
    expect(await keys.verifyAlipayAsync(content, signedBy(alipay1, 2))).toBe(false);
  });
});

describe('verification: fallback to any key', () => {
  it('a version no key carries, or no version at all, is checked with every key', async () => {
    const keys = ringOf([
      { key: alipay1.publicPem, keyVersion: 1 },
      { key: alipay2.publicPem, keyVersion: 2 },
    ]);
    expect(keys.verifyAlipay(content, signedBy(alipay1, 7))).toBe(true);
    expect(keys.verifyAlipay(content, signedBy(alipay2, undefined))).toBe(true);
    expect(await keys.verifyAlipayAsync(content, signedBy(alipay1, undefined))).toBe(true);
    expect(keys.verifyAlipay(content, signedBy(stranger, 7))).toBe(false);
    expect(keys.verifyAlipay(content, signedBy(stranger, undefined))).toBe(false);
  });

  it('a key configured without a version verifies whatever version the header names', () => {
    const keys = ringOf([alipay1.publicPem, { key: alipay2.publicPem, keyVersion: 2 }]);
    expect(keys.verifyAlipay(content, signedBy(alipay1, 1))).toBe(true);
    expect(keys.verifyAlipay(content, signedBy(alipay1, 5))).toBe(true);
    expect(versionsOf(keys)).toEqual([2, null]);
  });

  it('the one-key option of before keeps verifying any keyVersion with its key', async () => {
    const client = createAlipayPlusClient({
      baseUrl: 'http://127.0.0.1:9',
      clientId: 'C1',
      privateKey: acqp.privatePem,
      alipayPublicKey: alipay1.publicPem,
    });
    expect(client.keys.verifyAlipay(content, signedBy(alipay1, 4))).toBe(true);
    expect(client.keys.verifyAlipay(content, signedBy(alipay2, 4))).toBe(false);
    expect(client.keys.signingKey.keyVersion).toBe(1);
    await client.close();
  });
});

describe('a bad key entry', () => {
  it.each([
    ['text that is not a key', 'not a key', 'KEY_FORMAT'],
    ['a private key', acqp.privatePem, 'KEY_TYPE'],
  ])('%s in the list fails creation with its code and names the entry', (_name, bad, code) => {
    const attempt = () =>
      ringOf([{ key: alipay1.publicPem, keyVersion: 1 }, alipay2.publicPem, { key: bad, keyVersion: 3 }]);
    expect(attempt).toThrowError(expect.objectContaining({ code, name: 'KeyError' }));
    expect(attempt).toThrowError(/alipayPublicKeys\[2\]/);
    // The message names the entry, never its content.
    expect(attempt).toThrowError(
      expect.objectContaining({ message: expect.not.stringContaining('PRIVATE') }),
    );
  });

  it('fails the client and the handler the same way: nothing is created', () => {
    const options = {
      baseUrl: 'http://127.0.0.1:9',
      clientId: 'C1',
      privateKey: acqp.privatePem,
      alipayPublicKeys: [alipay1.publicPem, 'garbage!'],
    };
    expect(() => createAlipayPlusClient(options)).toThrowError(
      expect.objectContaining({
        code: 'KEY_FORMAT',
        message: expect.stringContaining('alipayPublicKeys[1]'),
      }),
    );
    expect(() => createAlipayPlusClient({ ...options, alipayPublicKeys: [], privateKey: 'x' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTIONS' }),
    );
  });

  it('a bad own key is named too', () => {
    expect(() =>
      createKeyRing({ privateKey: alipay1.publicPem, alipayPublicKeys: [alipay1.publicPem] }),
    ).toThrowError(
      expect.objectContaining({ code: 'KEY_TYPE', message: expect.stringContaining('privateKey') }),
    );
  });

  it('an entry with a keyVersion that is not a whole number, or a version given twice, is INVALID_OPTIONS', () => {
    expect(() => ringOf([{ key: alipay1.publicPem, keyVersion: 1.5 }])).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTIONS', message: expect.stringContaining('keyVersion') }),
    );
    expect(() =>
      ringOf([
        { key: alipay1.publicPem, keyVersion: 2 },
        { key: alipay2.publicPem, keyVersion: 2 },
      ]),
    ).toThrowError(
      expect.objectContaining({
        code: 'INVALID_OPTIONS',
        message: expect.stringMatching(/\[0\].*\[1\].*keyVersion 2/),
      }),
    );
  });

  it('adding a bad key throws and changes nothing', () => {
    const keys = ringOf([{ key: alipay1.publicPem, keyVersion: 1 }]);
    expect(() => keys.addAlipayPublicKey({ key: 'nope', keyVersion: 2 })).toThrowError(
      expect.objectContaining({ code: 'KEY_FORMAT' }),
    );
    expect(() => keys.addAlipayPublicKey({ key: acqp.privatePem, keyVersion: 2 })).toThrowError(
      expect.objectContaining({ code: 'KEY_TYPE' }),
    );
    expect(versionsOf(keys)).toEqual([1]);
  });

  it('the client refuses keys given twice over, or not at all, with INVALID_OPTIONS naming the field', () => {
    const base = { baseUrl: 'http://127.0.0.1:9', clientId: 'C1' };
    const keys = ringOf([alipay1.publicPem]);
    const mixed = { ...base, keys, privateKey: acqp.privatePem } as unknown as Parameters<
      typeof createAlipayPlusClient
    >[0];
    expect(() => createAlipayPlusClient(mixed)).toThrowError(/INVALID_OPTIONS.*privateKey.*not both/);
    const both = {
      ...base,
      privateKey: acqp.privatePem,
      alipayPublicKey: alipay1.publicPem,
      alipayPublicKeys: [alipay2.publicPem],
    };
    expect(() => createAlipayPlusClient(both)).toThrowError(/INVALID_OPTIONS.*alipayPublicKeys/);
    const none = { ...base, privateKey: acqp.privatePem } as unknown as Parameters<
      typeof createAlipayPlusClient
    >[0];
    expect(() => createAlipayPlusClient(none)).toThrowError(/INVALID_OPTIONS.*alipayPublicKey/);
  });
});

describe('rotation steps', () => {
  it('add: a new key verifies from the next check; the same key and version again changes nothing', () => {
    const keys = ringOf([{ key: alipay1.publicPem, keyVersion: 1 }]);
    expect(keys.verifyAlipay(content, signedBy(alipay2, 2))).toBe(false);
    keys.addAlipayPublicKey({ key: alipay2.publicPem, keyVersion: 2 });
    expect(keys.verifyAlipay(content, signedBy(alipay2, 2))).toBe(true);
    keys.addAlipayPublicKey({ key: alipay2.publicPem, keyVersion: 2 });
    expect(versionsOf(keys)).toEqual([2, 1]);
    expect(() => keys.addAlipayPublicKey({ key: stranger.publicPem, keyVersion: 2 })).toThrowError(
      expect.objectContaining({ code: 'INVALID_INPUT', message: expect.stringContaining('keyVersion 2') }),
    );
  });

  it('retire: signatures by the retired key fail, whatever version they name; the others still verify', () => {
    const keys = ringOf([
      { key: alipay1.publicPem, keyVersion: 1 },
      { key: alipay2.publicPem, keyVersion: 2 },
    ]);
    keys.retireAlipayPublicKey(1);
    expect(keys.verifyAlipay(content, signedBy(alipay1, 1))).toBe(false);
    expect(keys.verifyAlipay(content, signedBy(alipay1, undefined))).toBe(false);
    expect(keys.verifyAlipay(content, signedBy(alipay2, 2))).toBe(true);
    expect(versionsOf(keys)).toEqual([2]);
  });

  it('retire by the key itself, for a key configured without a version', () => {
    const keys = ringOf([alipay1.publicPem, { key: alipay2.publicPem, keyVersion: 2 }]);
    keys.retireAlipayPublicKey(alipay1.publicPem);
    expect(keys.verifyAlipay(content, signedBy(alipay1, 1))).toBe(false);
    expect(versionsOf(keys)).toEqual([2]);
  });

  it('retire refuses an unknown key and the last key, and changes nothing', () => {
    const keys = ringOf([{ key: alipay1.publicPem, keyVersion: 1 }]);
    expect(() => keys.retireAlipayPublicKey(3)).toThrowError(
      expect.objectContaining({ code: 'INVALID_INPUT', message: expect.stringContaining('keyVersion 3') }),
    );
    expect(() => keys.retireAlipayPublicKey(stranger.publicPem)).toThrowError(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    expect(() => keys.retireAlipayPublicKey(1)).toThrowError(/last key.*add the new key first/);
    expect(keys.verifyAlipay(content, signedBy(alipay1, 1))).toBe(true);
  });

  it('setSigningKey: the new key and its version are read together; a bad one changes nothing', () => {
    const keys = ringOf([alipay1.publicPem]);
    const before = keys.signingKey;
    expect(before.keyVersion).toBe(1);
    expect(() => keys.setSigningKey({ privateKey: acqp2.publicPem, keyVersion: 2 })).toThrowError(
      expect.objectContaining({ code: 'KEY_TYPE', message: expect.stringContaining('setSigningKey') }),
    );
    expect(() => keys.setSigningKey({ privateKey: acqp2.privatePem, keyVersion: -1 })).toThrowError(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    expect(keys.signingKey).toBe(before);
    keys.setSigningKey({ privateKey: acqp2.privatePem, keyVersion: 2 });
    expect(keys.signingKey.keyVersion).toBe(2);
    const signature = signContent(content, keys.signingKey.privateKey);
    expect(verifyContent(content, signature, acqp2.publicPem)).toBe(true);
    expect(keys.status().signingKey).toEqual({ keyVersion: 2, fingerprint: keyFingerprint(acqp2.publicKey) });
  });

  it('status, JSON and inspect show versions and fingerprints, never key material', () => {
    const keys = ringOf([{ key: alipay1.publicPem, keyVersion: 1 }]);
    const shown = [inspect(keys, { depth: 10, showHidden: true }), JSON.stringify(keys)];
    const privateBody = acqp.privatePem.split('\n')[1] ?? 'unreachable';
    const publicBody = alipay1.publicPem.split('\n')[1] ?? 'unreachable';
    for (const text of shown) {
      expect(text).toContain(keyFingerprint(alipay1.publicKey));
      expect(text).not.toContain(privateBody);
      expect(text).not.toContain(publicBody);
    }
  });
});

describe('the notification handler', () => {
  let engine: PaymentEngine | undefined;
  afterEach(async () => {
    await engine?.stop();
    engine = undefined;
  });

  async function started(): Promise<PaymentEngine> {
    const unused = async () => {
      throw new Error('no call expected');
    };
    engine = createPaymentEngine({
      client: { inquiryPayment: unused, cancelPayment: unused },
      store: memoryStore(),
    });
    await engine.start();
    return engine;
  }

  function notification(key: { privatePem: string }, keyVersion: number, id: string) {
    const body = JSON.stringify({
      paymentRequestId: id,
      paymentResult: { resultCode: 'SUCCESS', resultStatus: 'S' },
      paymentAmount: { currency: 'JPY', value: '100' },
    });
    const time = '2026-01-15T11:00:00+08:00';
    const signature = signContent(
      buildSignContent({ method: 'POST', path: '/alipayplus/notify', clientId: 'C1', time, body }),
      key.privatePem,
    );
    return {
      method: 'POST',
      path: '/alipayplus/notify',
      headers: {
        'client-id': 'C1',
        'request-time': time,
        signature: buildSignatureHeader({ signature, keyVersion }),
      },
      rawBody: body,
    };
  }

  it('verifies with the ring it shares, and signs its ack with the ring signing key and version', async () => {
    const e = await started();
    const keys = ringOf([{ key: alipay1.publicPem, keyVersion: 1 }]);
    const handler = e.notificationHandler({ clientId: 'C1', keys });
    expect(handler.keys).toBe(keys);
    expect((await handler.handle(notification(alipay1, 1, 'N1'))).status).toBe(200);
    expect((await handler.handle(notification(alipay2, 2, 'N2'))).status).toBe(401);

    keys.addAlipayPublicKey({ key: alipay2.publicPem, keyVersion: 2 });
    keys.setSigningKey({ privateKey: acqp2.privatePem, keyVersion: 2 });
    const ack = await handler.handle(notification(alipay2, 2, 'N2'));
    expect(ack.status).toBe(200);
    const header = parseSignatureHeader(ack.headers.signature ?? '');
    expect(header.keyVersion).toBe(2);
    const ackContent = buildSignContent({
      method: 'POST',
      path: '/alipayplus/notify',
      clientId: 'C1',
      time: ack.headers['response-time'] ?? '',
      body: ack.body,
    });
    expect(verifyContent(ackContent, header.signature, acqp2.publicPem)).toBe(true);

    keys.retireAlipayPublicKey(1);
    const refused = await handler.handle(notification(alipay1, 1, 'N3'));
    expect(refused.status).toBe(401);
    expect(await e.store.notifications('N3')).toEqual([]);
  });

  it('with its own keys: several Alipay+ keys, and the keyVersion option named in its acks', async () => {
    const e = await started();
    const handler = e.notificationHandler({
      clientId: 'C1',
      privateKey: acqp.privatePem,
      keyVersion: 4,
      alipayPublicKeys: [{ key: alipay1.publicPem, keyVersion: 1 }, alipay2.publicPem],
    });
    const ack = await handler.handle(notification(alipay2, 9, 'N4'));
    expect(ack.status).toBe(200);
    expect(parseSignatureHeader(ack.headers.signature ?? '').keyVersion).toBe(4);
    expect((await handler.handle(notification(alipay1, 1, 'N5'))).status).toBe(200);
    expect(() =>
      e.notificationHandler({
        clientId: 'C1',
        privateKey: acqp.privatePem,
        alipayPublicKeys: [alipay1.publicPem, 'bad'],
      }),
    ).toThrowError(expect.objectContaining({ code: 'KEY_FORMAT', message: expect.stringContaining('[1]') }));
  });
});
