import { createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { KeyInput } from '../client/keys.js';
import {
  KeyVersionSchema,
  type PublicKeyEntryInput,
  type PublicKeySet,
  type PublicKeyStatus,
} from '../client/public-key-set.js';
import type { SignatureHeader } from '../client/signature.js';
import { ValidationError } from '../errors.js';
import { parseOrThrow } from '../validate.js';

/** One of the simulator's own (Alipay+) key pairs, as the admin API shows it: never the private half. */
export interface SimulatorKeyView {
  readonly keyVersion: number;
  /** The public key, PEM (SPKI): what the ACQP adds to its ring. */
  readonly publicKeyPem: string;
  /** Whether answers and notifications are signed with it now. */
  readonly active: boolean;
}

/** What the simulator signs with and whom it trusts: `GET /__sim/keys`. */
export interface SimulatorKeysView {
  readonly keys: readonly SimulatorKeyView[];
  /** The ACQP public keys requests and notification acks are verified with, newest first. */
  readonly acqpKeys: readonly PublicKeyStatus[];
}

export const CreateKeyInput = z
  .object({
    /** Default: one above the highest version the simulator has. */
    keyVersion: KeyVersionSchema.optional(),
    /** Sign with it at once. Default false: Alipay+ announces a key before it signs with it. */
    activate: z.boolean().default(false),
  })
  .strict();
export type CreateKeyInput = z.input<typeof CreateKeyInput>;

interface OwnKey {
  readonly keyVersion: number;
  readonly privateKey: KeyObject;
  readonly publicKeyPem: string;
}

const pemOf = (privateKey: KeyObject) =>
  createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();

/**
 * The simulator's key plumbing, apart from its wallets: its own versioned signing keys (one active)
 * and the ACQP public keys it trusts. Both change at run time, as Alipay+'s and an ACQP's do.
 */
export class SimulatorKeys {
  readonly #own = new Map<number, OwnKey>();
  #active: OwnKey;
  readonly #acqp: PublicKeySet;

  constructor(initial: { privateKey: KeyObject; keyVersion: number }, acqpKeys: PublicKeySet) {
    this.#active = { ...initial, publicKeyPem: pemOf(initial.privateKey) };
    this.#own.set(initial.keyVersion, this.#active);
    this.#acqp = acqpKeys;
  }

  /** The key answers and notifications are signed with now, and its version. */
  get active(): { readonly privateKey: KeyObject; readonly keyVersion: number } {
    return this.#active;
  }

  get activePublicKeyPem(): string {
    return this.#active.publicKeyPem;
  }

  /** Checks an ACQP signature (a request or a notification ack). */
  verifyAcqp(content: Buffer, header: SignatureHeader): boolean {
    return this.#acqp.verify(content, header);
  }

  /**
   * A new key pair (generated off the event loop), kept until {@link use}d unless `activate`.
   * @throws ValidationError `INVALID_INPUT` for bad input or a version the simulator has.
   */
  async create(input: CreateKeyInput = {}): Promise<SimulatorKeyView> {
    const parsed = parseOrThrow(CreateKeyInput, input ?? {}, 'simulator key');
    const keyVersion = parsed.keyVersion ?? Math.max(...this.#own.keys()) + 1;
    if (this.#own.has(keyVersion)) {
      throw new ValidationError('INVALID_INPUT', 'simulator key', [
        `keyVersion: the simulator has a key ${keyVersion} already`,
      ]);
    }
    const privateKey = await new Promise<KeyObject>((resolve, reject) =>
      generateKeyPair('rsa', { modulusLength: 2048 }, (error, _publicKey, key) =>
        error ? reject(error) : resolve(key),
      ),
    );
    // Checked again: another create for the same version may have finished while this one waited.
    if (this.#own.has(keyVersion)) {
      throw new ValidationError('INVALID_INPUT', 'simulator key', [
        `keyVersion: the simulator has a key ${keyVersion} already`,
      ]);
    }
    const key: OwnKey = { keyVersion, privateKey, publicKeyPem: pemOf(privateKey) };
    this.#own.set(keyVersion, key);
    if (parsed.activate) this.#active = key;
    return this.#view(key);
  }

  /**
   * Signs with the key of this version from now on (an old one too: that is how a test makes
   * Alipay+ sign with a key the ACQP has retired).
   * @throws ValidationError `INVALID_INPUT` for a version the simulator does not have.
   */
  use(keyVersion: number): SimulatorKeyView {
    const key = this.#own.get(keyVersion);
    if (!key) {
      throw new ValidationError('INVALID_INPUT', 'simulator key', [
        `keyVersion: no key ${keyVersion}; the simulator has ${[...this.#own.keys()].join(', ')}`,
      ]);
    }
    this.#active = key;
    return this.#view(key);
  }

  /** Trusts another ACQP public key (the ACQP registered its new key). */
  addAcqp(entry: PublicKeyEntryInput): void {
    this.#acqp.add(entry);
  }

  /** Stops trusting an ACQP public key, by keyVersion or by the key. */
  retireAcqp(which: number | KeyInput): void {
    this.#acqp.retire(which);
  }

  view(): SimulatorKeysView {
    return {
      keys: [...this.#own.values()].map((key) => this.#view(key)),
      acqpKeys: this.#acqp.status(),
    };
  }

  #view(key: OwnKey): SimulatorKeyView {
    return {
      keyVersion: key.keyVersion,
      publicKeyPem: key.publicKeyPem,
      active: key === this.#active,
    };
  }
}
