import { existsSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import { AlipayPlusLifecycleError } from '../errors.js';
import { memoryStore } from '../stores/memory-store.js';
import { DEFAULT_SQLITE_PATH, sqliteStore } from '../stores/sqlite-store.js';
import type { LifecycleStore } from '../stores/store.js';
import { type CliIo, EXIT } from './io.js';

/**
 * A setting the CLI could not use: missing, malformed, or pointing at something unreadable. The
 * message names the setting and where it can be given, so the fix is obvious from the message alone.
 */
export class CliSettingError extends AlipayPlusLifecycleError {
  /** The setting at fault, e.g. `baseUrl` or `--store`. */
  readonly setting: string;

  constructor(setting: string, message: string, options?: { cause?: unknown }) {
    super('INVALID_OPTIONS', message, options);
    this.name = 'CliSettingError';
    this.setting = setting;
  }
}

/** Where lifecycles are read or kept, as given by `--store`. */
export type StoreSpec = { kind: 'sqlite'; path: string } | { kind: 'memory' };

/** Parses `sqlite:PATH` or `memory` (commander argument parser: a bad value is a usage error). */
export function parseStoreSpec(value: string): StoreSpec {
  if (value === 'memory') return { kind: 'memory' };
  if (value.startsWith('sqlite:') && value.length > 'sqlite:'.length) {
    return { kind: 'sqlite', path: value.slice('sqlite:'.length) };
  }
  throw new InvalidArgumentError(
    `give sqlite:PATH (e.g. sqlite:${DEFAULT_SQLITE_PATH}) or memory, not "${value}"`,
  );
}

/** `sqlite:PATH` or `memory`, as a user would type it again. */
export function describeStore(spec: StoreSpec): string {
  return spec.kind === 'memory' ? 'memory (gone when the process exits)' : `sqlite:${spec.path}`;
}

/**
 * Creates the store a spec names. With `mustExist`, a SQLite file that is not there is an error
 * rather than a new empty store: reading commands must not invent an empty history.
 */
export function storeFromSpec(spec: StoreSpec, options: { mustExist?: boolean } = {}): LifecycleStore {
  if (spec.kind === 'memory') return memoryStore();
  if (options.mustExist && !existsSync(spec.path)) {
    throw new CliSettingError(
      '--store',
      `no store at ${spec.path}: give --store sqlite:PATH with the file the engine (or the demo) wrote`,
    );
  }
  return sqliteStore(spec.path);
}

/** Prints an error and returns its exit code: 2 for bad usage or settings (nothing was done), else 1. */
export function reportError(io: CliIo, error: unknown): number {
  const message = error instanceof Error ? error.message : String(error);
  io.err(`error: ${message}\n`);
  return error instanceof AlipayPlusLifecycleError || isFileError(error) ? EXIT.usage : EXIT.negative;
}

/** A missing or unreadable file named on the command line is a usage error, not a failure at run time. */
export function isFileError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR';
}

/**
 * An AbortSignal that fires on SIGINT or SIGTERM, so that long commands stop cleanly (everything
 * stored, servers closed) instead of dying mid-write. `dispose` removes the handlers again.
 */
export function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const abort = () => controller.abort();
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', abort);
      process.off('SIGTERM', abort);
    },
  };
}

/**
 * A file-name-safe UTC timestamp with milliseconds, e.g. `20261126T150128123Z`, for files a run
 * creates: two runs started in the same second still get files of their own.
 */
export function fileTimestamp(date = new Date()): string {
  return date.toISOString().replace(/[-:.]/g, '');
}
