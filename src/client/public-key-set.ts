import { createHash, createPublicKey, KeyObject } from 'node:crypto';
import { z } from 'zod';
import { KeyError, ValidationError } from '../errors.js';
import { formatIssues } from '../validate.js';
import { type KeyInput, KeyInputSchema, loadPublicKey } from './keys.js';
import { type SignatureHeader, verifyContent, verifyContentAsync } from './signature.js';

/** A `keyVersion` as it travels in the `Signature` header: a whole number. */
export const KeyVersionSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * One public key as configured: the key alone, or the key with the `keyVersion` the signer names in
 * its `Signature` header. A key without a version is still used, by trying it.
 */
export type PublicKeyEntryInput = KeyInput | { readonly key: KeyInput; readonly keyVersion?: number };

const EntryObject = z.object({ key: KeyInputSchema, keyVersion: KeyVersionSchema.optional() }).strict();

/** A plain object is an entry `{ key, keyVersion? }`; a string, a Buffer or a KeyObject is a bare key. */
function isEntryObject(value: unknown): value is z.output<typeof EntryObject> {
  return (
    typeof value === 'object' && value !== null && !Buffer.isBuffer(value) && !(value instanceof KeyObject)
  );
}

/** The options-schema field for one {@link PublicKeyEntryInput}; the key itself is read by the set. */
export const PublicKeyEntrySchema = z.custom<PublicKeyEntryInput>().superRefine((value, ctx) => {
  const result = isEntryObject(value) ? EntryObject.safeParse(value) : KeyInputSchema.safeParse(value);
  if (result.success) return;
  for (const issue of result.error.issues) {
    ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  }
});

/** What a set tells about one of its keys: no key material, only what identifies and watches it. */
export interface PublicKeyStatus {
  /** The configured version, or null for a key configured without one. */
  readonly keyVersion: number | null;
  /** The first 16 hex digits of the SHA-256 of the key's SPKI DER: compare it with the key file's. */
  readonly fingerprint: string;
  /** Signatures this key verified since it was added. */
  readonly verified: number;
  /** When it last verified one (the set's clock, epoch ms), or null. */
  readonly lastVerifiedAt: number | null;
}

interface Entry {
  readonly key: KeyObject;
  readonly keyVersion: number | undefined;
  readonly der: Buffer;
  readonly fingerprint: string;
  verified: number;
  lastVerifiedAt: number | null;
}

const fingerprintOf = (spkiDer: Buffer) => createHash('sha256').update(spkiDer).digest('hex').slice(0, 16);

/**
 * The fingerprint operators compare: the first 16 hex digits of the SHA-256 of the public key's
 * SPKI DER (`openssl pkey -pubin -outform DER | sha256sum` gives the same digits). A private key
 * gives its public half's.
 */
export function keyFingerprint(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return fingerprintOf(publicKey.export({ type: 'spki', format: 'der' }));
}

/**
 * Re-throws a {@link KeyError} with `where` in front of its message, so that the bad entry of a list
 * is named. The message still carries no key material.
 */
export function keyErrorAt<T>(where: string, load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof KeyError) {
      const code = error.code as 'KEY_FORMAT' | 'KEY_TYPE';
      throw new KeyError(code, `${where}: ${error.message.slice(code.length + 2)}`);
    }
    throw error;
  }
}

function entryOf(
  input: PublicKeyEntryInput,
  where: string,
  code: 'INVALID_OPTIONS' | 'INVALID_INPUT',
): Entry {
  const parsed = PublicKeyEntrySchema.safeParse(input);
  if (!parsed.success) throw new ValidationError(code, where, formatIssues(parsed.error));
  // Checked just above: an entry object parses, anything else is a bare key.
  const { key: keyInput, keyVersion } = isEntryObject(input)
    ? EntryObject.parse(input)
    : { key: input as KeyInput, keyVersion: undefined };
  const key = keyErrorAt(where, () => loadPublicKey(keyInput));
  const der = key.export({ type: 'spki', format: 'der' });
  return { key, keyVersion, der, fingerprint: fingerprintOf(der), verified: 0, lastVerifiedAt: null };
}

const describeVersion = (version: number | undefined) =>
  version === undefined ? 'without keyVersion' : `keyVersion ${version}`;

/**
 * The public keys one signer may be using, each perhaps with its `keyVersion`. A signature whose
 * header names a version that a key here carries is checked with that key alone; any other is
 * checked with each key, newest first. All keys are read when added, so a check parses nothing.
 * Used for Alipay+'s keys by the client and the notification handler, and for the ACQP's keys by
 * the simulator.
 */
export class PublicKeySet {
  /** Newest first: after a rotation, the key most signatures use is tried first. */
  #entries: readonly Entry[] = [];
  #byVersion: ReadonlyMap<number, Entry> = new Map();
  readonly #label: string;
  readonly #now: () => number;

  /**
   * @param label names the set in errors, e.g. `alipayPublicKeys`; entry `i` is `label[i]`.
   * @throws KeyError `KEY_FORMAT` / `KEY_TYPE` naming the entry; ValidationError `INVALID_OPTIONS`
   *   for an empty list or a keyVersion given twice. Nothing is kept when one entry is bad.
   */
  constructor(label: string, inputs: readonly PublicKeyEntryInput[], now: () => number = Date.now) {
    this.#label = label;
    this.#now = now;
    if (inputs.length === 0) {
      throw new ValidationError('INVALID_OPTIONS', label, ['at least one public key is needed']);
    }
    const entries = inputs.map((input, index) => entryOf(input, `${label}[${index}]`, 'INVALID_OPTIONS'));
    const seen = new Map<number, number>();
    for (const [index, entry] of entries.entries()) {
      if (entry.keyVersion === undefined) continue;
      const first = seen.get(entry.keyVersion);
      if (first !== undefined) {
        throw new ValidationError('INVALID_OPTIONS', label, [
          `${label}[${first}] and ${label}[${index}] both claim keyVersion ${entry.keyVersion}: give each version once`,
        ]);
      }
      seen.set(entry.keyVersion, index);
    }
    this.#install(entries.reverse());
  }

  #install(entries: Entry[]): void {
    this.#entries = Object.freeze(entries);
    this.#byVersion = new Map(
      entries.flatMap((entry) => (entry.keyVersion === undefined ? [] : [[entry.keyVersion, entry]])),
    );
  }

  /** How many keys the set holds. */
  get size(): number {
    return this.#entries.length;
  }

  /** The keys to try for a header: the one its named version selects, else all of them. */
  #candidates(header: SignatureHeader): readonly Entry[] {
    const selected = header.keyVersionGiven ? this.#byVersion.get(header.keyVersion) : undefined;
    return selected ? [selected] : this.#entries;
  }

  #count(entry: Entry): true {
    entry.verified++;
    entry.lastVerifiedAt = this.#now();
    return true;
  }

  /** Checks a signature over content, on the event loop. Fails closed: false, never a throw. */
  verify(content: Buffer, header: SignatureHeader): boolean {
    for (const entry of this.#candidates(header)) {
      if (verifyContent(content, header.signature, entry.key)) return this.#count(entry);
    }
    return false;
  }

  /** As {@link verify}, each check on the libuv threadpool. */
  async verifyAsync(content: Buffer, header: SignatureHeader): Promise<boolean> {
    for (const entry of this.#candidates(header)) {
      if (await verifyContentAsync(content, header.signature, entry.key)) return this.#count(entry);
    }
    return false;
  }

  /**
   * Adds a key, which is used from the next check on. Adding the same key under the same version
   * again changes nothing, so a runbook step can be repeated.
   * @throws KeyError naming the entry; ValidationError `INVALID_INPUT` when another key has this
   *   keyVersion (retire it first). Nothing changes on a throw.
   */
  add(input: PublicKeyEntryInput): void {
    const entry = entryOf(input, `${this.#label} entry to add`, 'INVALID_INPUT');
    const same = this.#entries.find(
      (existing) => existing.keyVersion === entry.keyVersion && existing.der.equals(entry.der),
    );
    if (same) return;
    if (entry.keyVersion !== undefined && this.#byVersion.has(entry.keyVersion)) {
      throw new ValidationError('INVALID_INPUT', `${this.#label} entry to add`, [
        `another key already has keyVersion ${entry.keyVersion}: retire it first, or give the new key a new version`,
      ]);
    }
    this.#install([entry, ...this.#entries]);
  }

  /**
   * Removes a key, by its keyVersion or by the key itself (for one configured without a version).
   * Signatures only it verified fail from the next check on.
   * @throws ValidationError `INVALID_INPUT` when no key matches, or when it is the last one (a set
   *   without keys would refuse everything: add the new key first). Nothing changes on a throw.
   */
  retire(which: number | KeyInput): void {
    const what = `retiring from ${this.#label}`;
    let matches: (entry: Entry) => boolean;
    if (typeof which === 'number') {
      if (!KeyVersionSchema.safeParse(which).success) {
        throw new ValidationError('INVALID_INPUT', what, [`keyVersion ${which} is not a whole number`]);
      }
      matches = (entry) => entry.keyVersion === which;
    } else {
      const der = keyErrorAt(what, () => loadPublicKey(which)).export({ type: 'spki', format: 'der' });
      matches = (entry) => entry.der.equals(der);
    }
    const kept = this.#entries.filter((entry) => !matches(entry));
    if (kept.length === this.#entries.length) {
      const held = this.#entries.map((entry) => describeVersion(entry.keyVersion)).join(', ');
      const named = typeof which === 'number' ? `keyVersion ${which}` : 'that key';
      throw new ValidationError('INVALID_INPUT', what, [`no key with ${named}; the set holds: ${held}`]);
    }
    if (kept.length === 0) {
      throw new ValidationError('INVALID_INPUT', what, [
        'it is the last key, and a set without keys refuses every signature: add the new key first',
      ]);
    }
    this.#install(kept);
  }

  /** The keys held, newest first, without key material. */
  status(): PublicKeyStatus[] {
    return this.#entries.map((entry) => ({
      keyVersion: entry.keyVersion ?? null,
      fingerprint: entry.fingerprint,
      verified: entry.verified,
      lastVerifiedAt: entry.lastVerifiedAt,
    }));
  }
}
