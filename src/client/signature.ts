import { type KeyObject, sign, verify } from 'node:crypto';
import { AlipayPlusLifecycleError } from '../errors.js';
import { type KeyInput, loadPrivateKey, loadPublicKey } from './keys.js';

/** The only algorithm Alipay+ uses: SHA256withRSA, PKCS#1 v1.5. */
export const SIGNATURE_ALGORITHM = 'RSA256';

/** The parts of a signed message, request or response alike. */
export interface SignedParts {
  /** HTTP method of the request, `POST` for every Alipay+ call. */
  readonly method: string;
  /** Path of the request, e.g. `/aps/api/v1/payments/inquiryPayment`. */
  readonly path: string;
  /** The ACQP's Client-Id (for responses too: the client ID of the request). */
  readonly clientId: string;
  /** `Request-Time` of a request, `response-time` of a response. */
  readonly time: string;
  /** The exact bytes sent, never a re-serialisation. */
  readonly body: string | Buffer;
}

/**
 * The bytes that are signed: `<METHOD> <path>\n<clientId>.<time>.<body>`. Built as bytes so that a
 * body is signed exactly as it travels, whatever its encoding.
 */
export function buildSignContent(parts: SignedParts): Buffer {
  const head = Buffer.from(`${parts.method} ${parts.path}\n${parts.clientId}.${parts.time}.`, 'utf8');
  const body = typeof parts.body === 'string' ? Buffer.from(parts.body, 'utf8') : parts.body;
  return Buffer.concat([head, body]);
}

function asPrivate(key: KeyInput): KeyObject {
  return loadPrivateKey(key);
}

function asBytes(content: string | Buffer): Buffer {
  return typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
}

/** Standard Base64, then percent-encoded (`+`, `/`, `=`), as it travels in the header. */
function encodeSignature(raw: Buffer): string {
  return encodeURIComponent(raw.toString('base64'));
}

/**
 * Signs content with SHA256withRSA and returns the URL-encoded Base64 signature.
 * Synchronous: prefer {@link signContentAsync} on a busy event loop.
 */
export function signContent(content: string | Buffer, privateKey: KeyInput): string {
  return encodeSignature(sign('sha256', asBytes(content), asPrivate(privateKey)));
}

/** As {@link signContent}, but the RSA work runs on the libuv threadpool, off the event loop. */
export function signContentAsync(content: string | Buffer, privateKey: KeyInput): Promise<string> {
  const key = asPrivate(privateKey);
  return new Promise((resolve, reject) => {
    sign('sha256', asBytes(content), key, (error, raw) => {
      if (error) reject(error);
      else resolve(encodeSignature(raw));
    });
  });
}

/** The raw signature bytes, or undefined when the header value cannot be decoded. */
function decodeSignature(signature: string): Buffer | undefined {
  try {
    const raw = Buffer.from(decodeURIComponent(signature.trim()), 'base64');
    return raw.length === 0 ? undefined : raw;
  } catch {
    return undefined;
  }
}

/**
 * Checks a signature (URL-encoded or plain Base64) over content. Fails closed: anything that cannot
 * be decoded or checked is `false`, never an exception.
 */
export function verifyContent(content: string | Buffer, signature: string, publicKey: KeyInput): boolean {
  const raw = decodeSignature(signature);
  if (!raw) return false;
  try {
    return verify('sha256', asBytes(content), loadPublicKey(publicKey), raw);
  } catch (error) {
    if (error instanceof AlipayPlusLifecycleError) throw error;
    return false;
  }
}

/**
 * {@link verifyContent} on the libuv threadpool, like {@link signContentAsync}: the event loop keeps
 * its time for the calls. Fails closed the same way.
 */
export function verifyContentAsync(
  content: string | Buffer,
  signature: string,
  publicKey: KeyInput,
): Promise<boolean> {
  const raw = decodeSignature(signature);
  if (!raw) return Promise.resolve(false);
  const key = loadPublicKey(publicKey); // a bad key is the caller's error: it throws, as in verifyContent
  return new Promise((resolve) => {
    try {
      verify('sha256', asBytes(content), key, raw, (error, valid) => resolve(!error && valid));
    } catch {
      resolve(false);
    }
  });
}

export interface SignatureHeader {
  readonly algorithm: string;
  /** The key version the signer names; `1` when the header has no keyVersion field. */
  readonly keyVersion: number;
  /**
   * Whether the header named a keyVersion at all. A key ring selects a key by version only when
   * one was named; otherwise it tries each key it holds.
   */
  readonly keyVersionGiven: boolean;
  /** The signature as it appeared in the header: URL-encoded Base64. */
  readonly signature: string;
}

/** Builds `algorithm=RSA256,keyVersion=N,signature=...`. */
export function buildSignatureHeader(input: { signature: string; keyVersion?: number }): string {
  return `algorithm=${SIGNATURE_ALGORITHM},keyVersion=${input.keyVersion ?? 1},signature=${input.signature}`;
}

/**
 * Parses a `Signature` header. Lenient about spaces after the commas and the case of the keys;
 * strict about what matters: RSA256, an integer key version, a non-empty signature.
 * @throws AlipayPlusLifecycleError `SIGNATURE_HEADER`
 */
export function parseSignatureHeader(header: string): SignatureHeader {
  const fields = new Map<string, string>();
  for (const part of header.split(',')) {
    const at = part.indexOf('=');
    if (at <= 0) continue;
    fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  const signature = fields.get('signature');
  if (!signature) {
    throw new AlipayPlusLifecycleError(
      'SIGNATURE_HEADER',
      'no signature= field: expected "algorithm=RSA256,keyVersion=1,signature=<URL-encoded Base64>"',
    );
  }
  const algorithm = fields.get('algorithm') ?? SIGNATURE_ALGORITHM;
  if (algorithm !== SIGNATURE_ALGORITHM) {
    throw new AlipayPlusLifecycleError(
      'SIGNATURE_HEADER',
      `algorithm ${algorithm} is not supported: Alipay+ signs with algorithm=RSA256`,
    );
  }
  const given = fields.get('keyversion');
  const versionText = given ?? '1';
  const keyVersion = Number(versionText);
  if (!/^\d+$/.test(versionText) || !Number.isSafeInteger(keyVersion)) {
    throw new AlipayPlusLifecycleError(
      'SIGNATURE_HEADER',
      `keyVersion ${versionText} is not a whole number: expected e.g. keyVersion=1`,
    );
  }
  return { algorithm, keyVersion, keyVersionGiven: given !== undefined, signature };
}
