/**
 * Every error this library throws on purpose is an {@link AlipayPlusLifecycleError} with a stable
 * `code` that callers can switch on, and a message that says what to do about it.
 */
export type ErrorCode =
  /** A key could not be read as any accepted encoding. */
  | 'KEY_FORMAT'
  /** A key was read but is of the wrong kind (not RSA, or private where public was expected). */
  | 'KEY_TYPE'
  /** A `Signature` header could not be parsed. */
  | 'SIGNATURE_HEADER'
  /** An options object failed validation. */
  | 'INVALID_OPTIONS'
  /** An argument (an ID, an amount, a time) failed validation. */
  | 'INVALID_INPUT'
  /**
   * A paymentRequestId already carries a pay with other content, or a payment that was tracked (so
   * its pay is not known here): one paymentRequestId is one pay. Nothing was stored or sent.
   */
  | 'PAYMENT_REQUEST_REUSED'
  /**
   * The store cannot be used now: it is not open (call `open()`; `engine.start()` does), or it cannot
   * write any more (the SQLite store's writer thread died: close and open it again).
   */
  | 'STORE_UNAVAILABLE'
  /**
   * The payment named is not an open attention item: its outcome is not `attention` (or it is not
   * final yet), or somebody recorded a resolution for it already. Nothing was written.
   */
  | 'ATTENTION_NOT_OPEN'
  /**
   * The database driver a store needs is not installed or does not load: `pg` for
   * `postgresStore()` (an optional peer dependency), `better-sqlite3` for `sqliteStore()`.
   */
  | 'DRIVER_MISSING'
  /** The engine is not running: call `engine.start()` first (or again, after `stop()`). */
  | 'NOT_STARTED'
  /**
   * Another worker changed or owns this lifecycle now (a shared store): this engine stopped its copy.
   * Nothing is lost; ask the store, or the owning worker, for its state.
   */
  | 'OWNERSHIP_LOST'
  /** The lifecycle was stopped here (lost to another worker, or the engine stopped) before this finished. */
  | 'LIFECYCLE_STOPPED';

export class AlipayPlusLifecycleError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'AlipayPlusLifecycleError';
    this.code = code;
  }
}

/** A key that cannot be used for signing or verification. Never carries the key material. */
export class KeyError extends AlipayPlusLifecycleError {
  constructor(code: 'KEY_FORMAT' | 'KEY_TYPE', message: string) {
    super(code, message);
    this.name = 'KeyError';
  }
}

/** Bad options or arguments; `issues` lists each failing field as `path: reason`. */
export class ValidationError extends AlipayPlusLifecycleError {
  readonly issues: readonly string[];

  constructor(code: 'INVALID_OPTIONS' | 'INVALID_INPUT', what: string, issues: readonly string[]) {
    super(code, `${what} is invalid: ${issues.join('; ')}`);
    this.name = 'ValidationError';
    this.issues = issues;
  }
}
