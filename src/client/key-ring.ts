import type { KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { parseOrThrow } from '../validate.js';
import { type KeyInput, KeyInputSchema, loadPrivateKey, loadPublicKey } from './keys.js';
import {
  KeyVersionSchema,
  keyErrorAt,
  keyFingerprint,
  type PublicKeyEntryInput,
  PublicKeyEntrySchema,
  PublicKeySet,
  type PublicKeyStatus,
} from './public-key-set.js';
import type { SignatureHeader } from './signature.js';

/** Your private key, read, with the `keyVersion` Alipay+ knows it by. Replaced whole, never edited. */
export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly keyVersion: number;
}

const KeyRingOptions = z
  .object({
    /** Your RSA private key: requests and notification acknowledgements are signed with it. */
    privateKey: KeyInputSchema,
    /** The version of your key registered with Alipay+, sent in every `Signature` header. */
    keyVersion: KeyVersionSchema.default(1),
    /** Alipay+'s public keys, each perhaps with the keyVersion its signatures name. */
    alipayPublicKeys: z.array(PublicKeyEntrySchema).min(1, 'at least one Alipay+ public key is needed'),
    /** Stamps `lastVerifiedAt` in {@link KeyRing.status}. Default `Date.now`. */
    now: z.custom<() => number>((value) => typeof value === 'function').optional(),
  })
  .strict();

/** Options of {@link createKeyRing}. Keys may be PEM, bare Base64 DER, Buffers or KeyObjects. */
export type KeyRingOptions = z.input<typeof KeyRingOptions>;

const SigningKeyInput = z.object({ privateKey: KeyInputSchema, keyVersion: KeyVersionSchema }).strict();

/** What {@link KeyRing.setSigningKey} takes: the new private key and its version at Alipay+. */
export type SigningKeyInput = z.input<typeof SigningKeyInput>;

/** What a ring holds, without key material: for logs, health checks and the rotation runbook. */
export interface KeyRingStatus {
  readonly signingKey: { readonly keyVersion: number; readonly fingerprint: string };
  /** Newest first. */
  readonly alipayPublicKeys: readonly PublicKeyStatus[];
}

/**
 * The keys of one ACQP: its own signing key and Alipay+'s public keys. Give one ring to the client
 * and to the notification handler, and a running process rotates keys by calling the ring: each
 * change applies from the next request, notification or acknowledgement, and a request in flight
 * finishes with the key it started with. Keys are read when they are given, never per request.
 */
export interface KeyRing {
  /** The key to sign with now, and its version; read once per signature. */
  readonly signingKey: SigningKey;
  /**
   * Checks an Alipay+ signature: with the key of the version the header names, when the ring has
   * one; otherwise with each key, newest first. Fails closed: false, never a throw.
   */
  verifyAlipay(content: Buffer, header: SignatureHeader): boolean;
  /** As {@link KeyRing.verifyAlipay}, each check on the libuv threadpool. */
  verifyAlipayAsync(content: Buffer, header: SignatureHeader): Promise<boolean>;
  /**
   * Trusts one more Alipay+ public key (step 1 of a rotation: before Alipay+ signs with it). The
   * same key and version again changes nothing.
   * @throws KeyError `KEY_FORMAT` / `KEY_TYPE`; ValidationError `INVALID_INPUT` when another key
   *   has that keyVersion. Nothing changes on a throw.
   */
  addAlipayPublicKey(entry: PublicKeyEntryInput): void;
  /**
   * Stops trusting an Alipay+ public key, by keyVersion or by the key itself (last step of a
   * rotation: once {@link KeyRing.status} shows it no longer verifies anything). An answer signed
   * with it afterwards is "no result", a notification signed with it is refused.
   * @throws ValidationError `INVALID_INPUT` when no key matches or it is the last one.
   */
  retireAlipayPublicKey(which: number | KeyInput): void;
  /**
   * Signs with another private key from now on (after Alipay+ has its public key under this
   * version).
   * @throws KeyError `KEY_FORMAT` / `KEY_TYPE`; ValidationError `INVALID_INPUT`. Nothing changes on
   *   a throw.
   */
  setSigningKey(input: SigningKeyInput): void;
  /** What the ring holds and how often each Alipay+ key verified, without key material. */
  status(): KeyRingStatus;
}

class Ring implements KeyRing {
  #signing: SigningKey;
  #signingFingerprint: string;
  readonly #alipay: PublicKeySet;

  constructor(signing: SigningKey, alipay: PublicKeySet) {
    this.#signing = signing;
    this.#signingFingerprint = keyFingerprint(signing.privateKey);
    this.#alipay = alipay;
  }

  get signingKey(): SigningKey {
    return this.#signing;
  }

  verifyAlipay(content: Buffer, header: SignatureHeader): boolean {
    return this.#alipay.verify(content, header);
  }

  verifyAlipayAsync(content: Buffer, header: SignatureHeader): Promise<boolean> {
    return this.#alipay.verifyAsync(content, header);
  }

  addAlipayPublicKey(entry: PublicKeyEntryInput): void {
    this.#alipay.add(entry);
  }

  retireAlipayPublicKey(which: number | KeyInput): void {
    this.#alipay.retire(which);
  }

  setSigningKey(input: SigningKeyInput): void {
    const parsed = parseOrThrow(SigningKeyInput, input, 'setSigningKey input');
    const privateKey = keyErrorAt('setSigningKey privateKey', () => loadPrivateKey(parsed.privateKey));
    const fingerprint = keyFingerprint(privateKey);
    this.#signing = Object.freeze({ privateKey, keyVersion: parsed.keyVersion });
    this.#signingFingerprint = fingerprint;
  }

  status(): KeyRingStatus {
    return {
      signingKey: { keyVersion: this.#signing.keyVersion, fingerprint: this.#signingFingerprint },
      alipayPublicKeys: this.#alipay.status(),
    };
  }

  // Whatever a caller logs of the ring, it shows versions and fingerprints, never a key.
  toJSON(): KeyRingStatus {
    return this.status();
  }

  [inspect.custom](): string {
    return `KeyRing ${JSON.stringify(this.status())}`;
  }
}

/**
 * Creates a key ring: reads every key now, so that a bad one fails here, with its entry named.
 *
 * @example
 * const keys = createKeyRing({
 *   privateKey: acqpPrivatePem, keyVersion: 1,
 *   alipayPublicKeys: [{ key: alipayPublicPem, keyVersion: 1 }],
 * });
 * const client = createAlipayPlusClient({ baseUrl, clientId, keys });
 * const notify = engine.notificationHandler({ clientId, keys });
 * // later, in the same process:
 * keys.addAlipayPublicKey({ key: newAlipayPublicPem, keyVersion: 2 });
 * keys.setSigningKey({ privateKey: newAcqpPrivatePem, keyVersion: 2 });
 * keys.retireAlipayPublicKey(1);
 *
 * @throws ValidationError `INVALID_OPTIONS`; KeyError `KEY_FORMAT` / `KEY_TYPE` naming the entry
 *   (`privateKey`, `alipayPublicKeys[2]`).
 */
export function createKeyRing(options: KeyRingOptions): KeyRing {
  const config = parseOrThrow(KeyRingOptions, options, 'key ring options', 'INVALID_OPTIONS');
  const privateKey = keyErrorAt('privateKey', () => loadPrivateKey(config.privateKey));
  const alipay = new PublicKeySet('alipayPublicKeys', config.alipayPublicKeys, config.now ?? Date.now);
  return new Ring(Object.freeze({ privateKey, keyVersion: config.keyVersion }), alipay);
}

/** The options-schema field for a ring made by {@link createKeyRing}. */
export const KeyRingSchema = z.custom<KeyRing>(
  (value) => value instanceof Ring,
  'must be a key ring made by createKeyRing()',
);

/**
 * How the client and the notification handler take their keys: one shared `keys` ring (rotatable),
 * or, as before rings existed, the keys themselves (the component then makes its own ring, which it
 * exposes as `keys`). Giving both is refused at creation with `INVALID_OPTIONS`.
 */
export type KeyOptions =
  | {
      /** A ring shared with the other components of this process; rotate keys through it. */
      keys: KeyRing;
    }
  | ({
      /** Your RSA private key (PEM or Base64 DER, PKCS#8 or PKCS#1). */
      privateKey: KeyInput;
      /** The version of your key at Alipay+, sent in the `Signature` header. Default 1. */
      keyVersion?: number;
    } & (
      | {
          /** Alipay+'s public key (one key: any keyVersion a signature names is checked with it). */
          alipayPublicKey: KeyInput;
        }
      | {
          /** Alipay+'s public keys, each perhaps with its keyVersion (see {@link KeyRing.verifyAlipay}). */
          alipayPublicKeys: readonly PublicKeyEntryInput[];
        }
    ));

/** The key fields of an options schema; check them together with {@link refineKeyOptions}. */
export const KeyOptionsShape = {
  keys: KeyRingSchema.optional(),
  privateKey: KeyInputSchema.optional(),
  keyVersion: KeyVersionSchema.optional(),
  alipayPublicKey: KeyInputSchema.optional(),
  alipayPublicKeys: z.array(PublicKeyEntrySchema).optional(),
};

type KeyFields = { [K in keyof typeof KeyOptionsShape]?: z.output<(typeof KeyOptionsShape)[K]> };

/** Exactly one way of giving keys: `keys`, or `privateKey` with one of the two Alipay+ forms. */
export function refineKeyOptions(value: KeyFields, ctx: z.RefinementCtx): void {
  const own = (['privateKey', 'keyVersion', 'alipayPublicKey', 'alipayPublicKeys'] as const).filter(
    (field) => value[field] !== undefined,
  );
  if (value.keys !== undefined) {
    for (const field of own) {
      ctx.addIssue({
        code: 'custom',
        path: [field],
        message: 'give either keys (a shared ring) or the keys themselves, not both',
      });
    }
    return;
  }
  if (value.privateKey === undefined) {
    ctx.addIssue({ code: 'custom', path: ['privateKey'], message: 'is required (or give keys: a key ring)' });
  }
  if (value.alipayPublicKey === undefined && value.alipayPublicKeys === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['alipayPublicKey'],
      message: 'is required: give alipayPublicKey, alipayPublicKeys, or keys (a key ring)',
    });
  }
  if (value.alipayPublicKey !== undefined && value.alipayPublicKeys !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['alipayPublicKeys'],
      message: 'give alipayPublicKey or alipayPublicKeys, not both',
    });
  }
}

/** The one-key form, read here so that an error names `alipayPublicKey`, the option given. */
function singleKey(key: KeyInput | undefined): KeyObject[] {
  return key === undefined ? [] : [keyErrorAt('alipayPublicKey', () => loadPublicKey(key))];
}

/** The ring a component uses: the shared one, or one made from its own key options. */
export function keyRingOf(fields: KeyFields, now?: () => number): KeyRing {
  if (fields.keys) return fields.keys;
  if (fields.privateKey === undefined) {
    // refineKeyOptions has refused this already; kept so that a caller that skipped it fails typed.
    throw new ValidationError('INVALID_OPTIONS', 'key options', ['privateKey: is required']);
  }
  return createKeyRing({
    privateKey: fields.privateKey,
    ...(fields.keyVersion === undefined ? {} : { keyVersion: fields.keyVersion }),
    alipayPublicKeys: fields.alipayPublicKeys ?? singleKey(fields.alipayPublicKey),
    ...(now ? { now } : {}),
  });
}
