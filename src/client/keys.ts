import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';
import { z } from 'zod';
import { KeyError } from '../errors.js';

/** A key as users hold it: PEM text, bare Base64 DER, raw DER bytes, or an existing KeyObject. */
export type KeyInput = string | Buffer | KeyObject;

/** The options-schema field for a key; the key itself is read (and checked) by loadPrivateKey/loadPublicKey. */
export const KeyInputSchema = z.custom<KeyInput>(
  (value) => typeof value === 'string' || Buffer.isBuffer(value) || value instanceof KeyObject,
  'must be PEM text, Base64 DER, a Buffer or a KeyObject',
);

const PRIVATE_EXPECTED =
  'expected an RSA private key as PEM ("BEGIN PRIVATE KEY" or "BEGIN RSA PRIVATE KEY") or as bare Base64 DER in PKCS#8 or PKCS#1';
const PUBLIC_EXPECTED =
  'expected an RSA public key as PEM ("BEGIN PUBLIC KEY" or "BEGIN RSA PUBLIC KEY") or as bare Base64 DER in X.509 SubjectPublicKeyInfo or PKCS#1';

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function isKeyObject(input: KeyInput): input is KeyObject {
  return typeof input === 'object' && !Buffer.isBuffer(input) && 'asymmetricKeyType' in input;
}

/** Tries each decoder in turn; the first that yields a key wins. Errors are dropped: they may quote the key. */
function firstKey(attempts: (() => KeyObject)[]): KeyObject | undefined {
  for (const attempt of attempts) {
    try {
      return attempt();
    } catch {
      // try the next encoding
    }
  }
  return undefined;
}

function derFrom(input: string | Buffer): Buffer | undefined {
  if (Buffer.isBuffer(input)) return input;
  const compact = input.replace(/\s+/g, '');
  if (compact.length === 0 || !BASE64.test(compact)) return undefined;
  return Buffer.from(compact, 'base64');
}

function assertRsa(key: KeyObject, expected: string): KeyObject {
  if (key.asymmetricKeyType !== 'rsa') {
    throw new KeyError('KEY_TYPE', `the key is ${key.asymmetricKeyType ?? 'not asymmetric'}: ${expected}`);
  }
  return key;
}

/**
 * Reads an RSA private key from PEM or bare Base64 DER (PKCS#8 or PKCS#1).
 * @throws KeyError `KEY_FORMAT` or `KEY_TYPE`; the message never contains key material.
 */
export function loadPrivateKey(input: KeyInput): KeyObject {
  if (isKeyObject(input)) {
    if (input.type !== 'private') {
      throw new KeyError(
        'KEY_TYPE',
        `got a ${input.type} key where a private key is needed: ${PRIVATE_EXPECTED}`,
      );
    }
    return assertRsa(input, PRIVATE_EXPECTED);
  }
  const text = Buffer.isBuffer(input) ? input.toString('latin1') : input;
  if (text.includes('-----BEGIN')) {
    if (/-----BEGIN (RSA )?PUBLIC KEY-----/.test(text)) {
      throw new KeyError('KEY_TYPE', `got a public key where a private key is needed: ${PRIVATE_EXPECTED}`);
    }
    const key = firstKey([() => createPrivateKey({ key: text, format: 'pem' })]);
    if (!key) throw new KeyError('KEY_FORMAT', `the PEM text could not be read: ${PRIVATE_EXPECTED}`);
    return assertRsa(key, PRIVATE_EXPECTED);
  }
  const der = derFrom(input);
  if (!der) throw new KeyError('KEY_FORMAT', `the key is neither PEM nor Base64: ${PRIVATE_EXPECTED}`);
  const key = firstKey([
    () => createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }),
    () => createPrivateKey({ key: der, format: 'der', type: 'pkcs1' }),
  ]);
  if (!key) {
    const isPublic = firstKey([() => createPublicKey({ key: der, format: 'der', type: 'spki' })]);
    if (isPublic) {
      throw new KeyError('KEY_TYPE', `got a public key where a private key is needed: ${PRIVATE_EXPECTED}`);
    }
    throw new KeyError('KEY_FORMAT', `the DER bytes are not a PKCS#8 or PKCS#1 key: ${PRIVATE_EXPECTED}`);
  }
  return assertRsa(key, PRIVATE_EXPECTED);
}

/**
 * Reads an RSA public key from PEM or bare Base64 DER (SPKI or PKCS#1).
 * A private key is refused rather than silently reduced to its public half: it means a mix-up.
 * @throws KeyError `KEY_FORMAT` or `KEY_TYPE`.
 */
export function loadPublicKey(input: KeyInput): KeyObject {
  if (isKeyObject(input)) {
    if (input.type !== 'public') {
      throw new KeyError(
        'KEY_TYPE',
        `got a ${input.type} key where a public key is needed: ${PUBLIC_EXPECTED}`,
      );
    }
    return assertRsa(input, PUBLIC_EXPECTED);
  }
  const text = Buffer.isBuffer(input) ? input.toString('latin1') : input;
  if (text.includes('-----BEGIN')) {
    if (/-----BEGIN (RSA |ENCRYPTED )?PRIVATE KEY-----/.test(text)) {
      throw new KeyError('KEY_TYPE', `got a private key where a public key is needed: ${PUBLIC_EXPECTED}`);
    }
    const key = firstKey([() => createPublicKey({ key: text, format: 'pem' })]);
    if (!key) throw new KeyError('KEY_FORMAT', `the PEM text could not be read: ${PUBLIC_EXPECTED}`);
    return assertRsa(key, PUBLIC_EXPECTED);
  }
  const der = derFrom(input);
  if (!der) throw new KeyError('KEY_FORMAT', `the key is neither PEM nor Base64: ${PUBLIC_EXPECTED}`);
  // Checked first: given a private key, createPublicKey would quietly derive its public half.
  const isPrivate = firstKey([
    () => createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }),
    () => createPrivateKey({ key: der, format: 'der', type: 'pkcs1' }),
  ]);
  if (isPrivate) {
    throw new KeyError('KEY_TYPE', `got a private key where a public key is needed: ${PUBLIC_EXPECTED}`);
  }
  const key = firstKey([
    () => createPublicKey({ key: der, format: 'der', type: 'spki' }),
    () => createPublicKey({ key: der, format: 'der', type: 'pkcs1' }),
  ]);
  if (!key) {
    throw new KeyError(
      'KEY_FORMAT',
      `the DER bytes are not an SPKI or PKCS#1 public key: ${PUBLIC_EXPECTED}`,
    );
  }
  return assertRsa(key, PUBLIC_EXPECTED);
}
