import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildSignatureHeader,
  buildSignContent,
  loadPrivateKey,
  loadPublicKey,
  parseSignatureHeader,
  signContent,
  signContentAsync,
  verifyContent,
  verifyContentAsync,
} from '../src/client/index.js';
import { AlipayPlusLifecycleError, KeyError } from '../src/errors.js';
import { fixtureKeys, fixturePath, generateTestKeyPair } from './helpers/keys.js';
import { fileTempDir } from './helpers/temp-dir.js';

const parts = {
  method: 'POST',
  path: '/aps/api/v1/payments/inquiryPayment',
  clientId: 'CLIENT123',
  time: '2020-01-01T12:01:01+08:30',
  body: '{"paymentRequestId":"pay_1089760038715669_102775745070000"}',
};
const content = buildSignContent(parts);

// Signed with `openssl dgst -sha256 -sign test/fixtures/test-only-acqp-private.pem` over `content`.
const KNOWN_BASE64 =
  'w2b1sxRIuXCerE0ZZJwIcypiXZtxL9DQEjSffrM9tnv+GOkvDqX6HzsMclQxK4IHfntbtyHod1cXi9xHwPUyNPJWwFMXnj5LLIEsPPab+SZKs6K+c8LnC/m1ebJK1YU8oTMSy29bIuBpJw7f/PFDb2qdxMuMZ1vw6Ugm6VbuM3kuf4bqwF2nJctCstq17G3yX3SNjqMCpUXtwjib87cz3oxc5buRSpHG8q/rwbRIpRQgivMQbxsjTb4o52zoq6s7ljw/b5pEM7TnUj6DZ4Wmx8R3wDBoqTTRO/8z9p8WCIacjcOOfwXGXxypSH+HfTsTwCKCu74wOgiQH2jurZcdfQ==';

describe('content to sign', () => {
  it('is exactly "<METHOD> <path>\\n<clientId>.<time>.<body>"', () => {
    expect(content.toString('utf8')).toBe(
      'POST /aps/api/v1/payments/inquiryPayment\nCLIENT123.2020-01-01T12:01:01+08:30.{"paymentRequestId":"pay_1089760038715669_102775745070000"}',
    );
  });

  it('keeps the body bytes as they are, multi-byte characters included', () => {
    const body = Buffer.from('{"walletBrandName":"ウォレット"}', 'utf8');
    const built = buildSignContent({ ...parts, body });
    expect(built.subarray(built.length - body.length)).toEqual(body);
  });
});

describe('signContent / verifyContent', () => {
  it('known answer: the fixed test key gives the fixed signature, URL-encoded', () => {
    expect(signContent(content, fixtureKeys.privatePem)).toBe(encodeURIComponent(KNOWN_BASE64));
  });

  it('known answer: the fixed signature verifies, URL-encoded or not', () => {
    expect(verifyContent(content, encodeURIComponent(KNOWN_BASE64), fixtureKeys.publicPem)).toBe(true);
    expect(verifyContent(content, KNOWN_BASE64, fixtureKeys.publicPem)).toBe(true);
  });

  it('URL-encodes +, / and =', () => {
    const signature = signContent(content, fixtureKeys.privatePem);
    expect(signature).not.toMatch(/[+/=]/);
    expect(signature).toContain('%2B');
  });

  it('the async signer gives the same deterministic signature', async () => {
    expect(await signContentAsync(content, fixtureKeys.privatePem)).toBe(
      signContent(content, fixtureKeys.privatePem),
    );
  });

  it('round-trips with a freshly generated key', () => {
    const pair = generateTestKeyPair();
    const signature = signContent(content, pair.privateKey);
    expect(verifyContent(content, signature, pair.publicKey)).toBe(true);
  });

  it('fails on a changed body, time, path or client ID', () => {
    const signature = signContent(content, fixtureKeys.privatePem);
    for (const change of [
      { body: '{"paymentRequestId":"other"}' },
      { time: 'x' },
      { path: '/x' },
      { clientId: 'C2' },
    ]) {
      expect(verifyContent(buildSignContent({ ...parts, ...change }), signature, fixtureKeys.publicPem)).toBe(
        false,
      );
    }
  });

  it('the async verifier (threadpool) agrees with the sync one: known answer, tampering, another key, garbage', async () => {
    const signature = encodeURIComponent(KNOWN_BASE64);
    expect(await verifyContentAsync(content, signature, fixtureKeys.publicPem)).toBe(true);
    expect(await verifyContentAsync(content, KNOWN_BASE64, fixtureKeys.publicPem)).toBe(true);
    const tampered = buildSignContent({ ...parts, body: '{"paymentRequestId":"other"}' });
    expect(await verifyContentAsync(tampered, signature, fixtureKeys.publicPem)).toBe(false);
    expect(await verifyContentAsync(content, signature, generateTestKeyPair().publicKey)).toBe(false);
    for (const garbage of ['', '%E0%A4%A', 'bm90IGEgc2lnbmF0dXJl'])
      expect(await verifyContentAsync(content, garbage, fixtureKeys.publicPem)).toBe(false);
    expect(() => verifyContentAsync(content, signature, 'not a key')).toThrowError(
      expect.objectContaining({ code: 'KEY_FORMAT' }),
    );
  });

  it('fails on another key, and fails closed on garbage', () => {
    const other = generateTestKeyPair();
    const signature = signContent(content, fixtureKeys.privatePem);
    expect(verifyContent(content, signature, other.publicKey)).toBe(false);
    expect(verifyContent(content, '', fixtureKeys.publicPem)).toBe(false);
    expect(verifyContent(content, '%E0%A4%A', fixtureKeys.publicPem)).toBe(false);
    expect(verifyContent(content, 'bm90IGEgc2lnbmF0dXJl', fixtureKeys.publicPem)).toBe(false);
  });
});

describe('signature header', () => {
  it('builds algorithm=RSA256,keyVersion=N,signature=...', () => {
    expect(buildSignatureHeader({ signature: 'abc%2B', keyVersion: 2 })).toBe(
      'algorithm=RSA256,keyVersion=2,signature=abc%2B',
    );
    expect(buildSignatureHeader({ signature: 'abc' })).toBe('algorithm=RSA256,keyVersion=1,signature=abc');
  });

  it('parses its own output and the spaced form some samples use', () => {
    expect(parseSignatureHeader('algorithm=RSA256,keyVersion=1,signature=a%3D')).toEqual({
      algorithm: 'RSA256',
      keyVersion: 1,
      keyVersionGiven: true,
      signature: 'a%3D',
    });
    expect(parseSignatureHeader('algorithm=RSA256, keyVersion=3, signature=xyz')).toMatchObject({
      keyVersion: 3,
      signature: 'xyz',
    });
  });

  it('reads a header without keyVersion as version 1, and says that none was named', () => {
    expect(parseSignatureHeader('algorithm=RSA256,signature=xyz')).toMatchObject({
      keyVersion: 1,
      keyVersionGiven: false,
    });
  });

  it.each([
    ['no signature field', 'algorithm=RSA256,keyVersion=1'],
    ['an empty signature', 'algorithm=RSA256,keyVersion=1,signature='],
    ['another algorithm', 'algorithm=RSA512,keyVersion=1,signature=abc'],
    ['a non-numeric key version', 'algorithm=RSA256,keyVersion=one,signature=abc'],
    ['an empty header', ''],
  ])('rejects %s with SIGNATURE_HEADER', (_name, header) => {
    expect(() => parseSignatureHeader(header)).toThrowError(
      expect.objectContaining({ code: 'SIGNATURE_HEADER', name: 'AlipayPlusLifecycleError' }),
    );
  });
});

describe('keys', () => {
  const pem = fixtureKeys.privatePem;
  const key = createPrivateKey(pem);
  const pkcs8Der = key.export({ type: 'pkcs8', format: 'der' }).toString('base64');
  const pkcs1Der = key.export({ type: 'pkcs1', format: 'der' }).toString('base64');
  const pkcs1Pem = key.export({ type: 'pkcs1', format: 'pem' }).toString();
  const pub = createPublicKey(fixtureKeys.publicPem);
  const spkiDer = pub.export({ type: 'spki', format: 'der' }).toString('base64');
  const pubPkcs1Pem = pub.export({ type: 'pkcs1', format: 'pem' }).toString();
  const pubPkcs1Der = pub.export({ type: 'pkcs1', format: 'der' }).toString('base64');
  const known = encodeURIComponent(KNOWN_BASE64);

  it.each([
    ['PKCS#8 PEM', pem],
    ['PKCS#1 PEM', pkcs1Pem],
    ['PKCS#8 bare Base64 DER', pkcs8Der],
    ['PKCS#1 bare Base64 DER', pkcs1Der],
    ['PKCS#8 Base64 with line breaks', pkcs8Der.replace(/(.{64})/g, '$1\n')],
    ['a DER Buffer', Buffer.from(pkcs8Der, 'base64')],
  ])('reads a private key as %s', (_name, input) => {
    expect(signContent(content, loadPrivateKey(input))).toBe(known);
  });

  it.each([
    ['SPKI PEM', fixtureKeys.publicPem],
    ['PKCS#1 PEM', pubPkcs1Pem],
    ['SPKI bare Base64 DER', spkiDer],
    ['PKCS#1 bare Base64 DER', pubPkcs1Der],
  ])('reads a public key as %s', (_name, input) => {
    expect(verifyContent(content, known, loadPublicKey(input))).toBe(true);
  });

  it.each([
    ['text that is not a key', 'hello world', 'KEY_FORMAT'],
    ['Base64 that is not a key', Buffer.from('not a key at all').toString('base64'), 'KEY_FORMAT'],
    ['a truncated PEM', pem.slice(0, 200), 'KEY_FORMAT'],
    ['an empty string', '', 'KEY_FORMAT'],
    ['a public key', fixtureKeys.publicPem, 'KEY_TYPE'],
    ['a public key as Base64 DER', spkiDer, 'KEY_TYPE'],
  ])('refuses %s as a private key', (_name, input, code) => {
    let thrown: unknown;
    try {
      loadPrivateKey(input);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(KeyError);
    expect(thrown).toMatchObject({ code });
    expect((thrown as Error).message).toMatch(/expected an RSA private key/);
  });

  it.each([
    ['a private key PEM', pem, 'KEY_TYPE'],
    ['a PKCS#1 private key as Base64 DER', pkcs1Der, 'KEY_TYPE'],
    ['a PKCS#8 private key as Base64 DER', pkcs8Der, 'KEY_TYPE'],
    ['garbage', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----', 'KEY_FORMAT'],
  ])('refuses %s as a public key', (_name, input, code) => {
    expect(() => loadPublicKey(input)).toThrowError(expect.objectContaining({ code }));
  });

  it('refuses a non-RSA key with KEY_TYPE', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ecPem = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => loadPrivateKey(ecPem)).toThrowError(expect.objectContaining({ code: 'KEY_TYPE' }));
    expect(() => loadPublicKey(ec.publicKey)).toThrowError(expect.objectContaining({ code: 'KEY_TYPE' }));
  });

  it('never quotes key material in an error message', () => {
    const almost = pkcs8Der.slice(0, 300);
    try {
      loadPrivateKey(almost);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(AlipayPlusLifecycleError);
      expect(String((error as Error).message)).not.toContain(almost.slice(0, 40));
      expect(String((error as Error).stack)).not.toContain(almost.slice(0, 40));
    }
  });
});

describe('interoperates with openssl', () => {
  const dir = fileTempDir('apl-sig-');
  const contentFile = join(dir, 'content');
  writeFileSync(contentFile, content);

  it('a signature made by openssl verifies with our code', () => {
    const pair = generateTestKeyPair();
    const keyFile = join(dir, 'fresh.pem');
    writeFileSync(keyFile, pair.privatePem);
    const raw = execFileSync('openssl', ['dgst', '-sha256', '-sign', keyFile, contentFile]);
    expect(verifyContent(content, encodeURIComponent(raw.toString('base64')), pair.publicPem)).toBe(true);
  });

  it('a signature made by our code verifies with openssl', () => {
    const pair = generateTestKeyPair();
    const pubFile = join(dir, 'fresh.pub.pem');
    const sigFile = join(dir, 'fresh.sig');
    writeFileSync(pubFile, pair.publicPem);
    writeFileSync(sigFile, Buffer.from(decodeURIComponent(signContent(content, pair.privateKey)), 'base64'));
    const out = execFileSync('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      pubFile,
      '-signature',
      sigFile,
      contentFile,
    ]);
    expect(out.toString()).toMatch(/Verified OK/);
  });

  it('openssl rejects our signature over changed content', () => {
    const sigFile = join(dir, 'fixture.sig');
    const otherFile = join(dir, 'other');
    writeFileSync(sigFile, Buffer.from(KNOWN_BASE64, 'base64'));
    writeFileSync(otherFile, buildSignContent({ ...parts, time: '2020-01-01T12:01:02+08:30' }));
    const result = spawnSync('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      fixturePath('test-only-acqp-public.pem'),
      '-signature',
      sigFile,
      otherFile,
    ]);
    expect(result.status).not.toBe(0);
  });
});
