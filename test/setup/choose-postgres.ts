/**
 * Which PostgreSQL server a test run uses: the decision of the global setup (test/setup/postgres.ts),
 * with its I/O (asking a URL whether it answers, starting the embedded server) passed in, so that each
 * row of the table is tested on its own (test/choose-postgres.test.ts).
 *
 * | ALIPAYPLUS_TEST_PG | server                                                                   |
 * | ------------------ | ------------------------------------------------------------------------ |
 * | a postgres:// URL  | that URL; if it does not answer, the run fails at once (TEST_PG_UNREACHABLE) |
 * | `embedded`         | an embedded server started for the run                                   |
 * | unset or empty     | DEFAULT_TEST_PG_URL if it answers, else an embedded server               |
 */

export const DEFAULT_TEST_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

export type TestPgSetting = { kind: 'auto' } | { kind: 'embedded' } | { kind: 'url'; url: string };

export type TestPgErrorCode =
  /** ALIPAYPLUS_TEST_PG is neither a postgres:// URL nor `embedded`. */
  | 'TEST_PG_SETTING'
  /** ALIPAYPLUS_TEST_PG names a server that does not answer. */
  | 'TEST_PG_UNREACHABLE'
  /** The embedded server did not start. */
  | 'TEST_PG_EMBEDDED_START'
  /** Run as root, the embedded server's user cannot read its binaries or its data directory. */
  | 'TEST_PG_EMBEDDED_ACCESS';

export class TestPgError extends Error {
  override readonly name = 'TestPgError';
  constructor(
    readonly code: TestPgErrorCode,
    /** The message without the code. */
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

/** What asking a server `SELECT current_setting('server_version')` gave. */
export type Probe = { ok: true; version: string } | { ok: false; reason: string };

export interface EmbeddedServer {
  url: string;
  /** e.g. `PostgreSQL 18.4` */
  version: string;
  /** From spawning its process to database `test` created. */
  startedInMs: number;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

export interface TestPgServer {
  url: string;
  /** One line for the run's output: which server, and why that one. */
  summary: string;
  /** Stops what the run started; absent for a server that was there before. */
  stop?: () => Promise<void>;
}

export interface TestPgIo {
  probe(url: string): Promise<Probe>;
  startEmbedded(): Promise<EmbeddedServer>;
}

/** Reads ALIPAYPLUS_TEST_PG. */
export function parseTestPgSetting(value: string | undefined): TestPgSetting {
  const setting = value?.trim() ?? '';
  if (setting === '') return { kind: 'auto' };
  if (setting === 'embedded') return { kind: 'embedded' };
  if (/^postgres(ql)?:\/\//.test(setting)) return { kind: 'url', url: setting };
  throw new TestPgError(
    'TEST_PG_SETTING',
    `ALIPAYPLUS_TEST_PG=${redactPassword(setting)}: expected a postgres:// URL, or "embedded" to start a ` +
      `server for the run, or nothing to use ${DEFAULT_TEST_PG_URL} when it answers and an embedded server otherwise`,
  );
}

/** Chooses the run's server, starting the embedded one when the setting or the default URL calls for it. */
export async function chooseTestPg(setting: TestPgSetting, io: TestPgIo): Promise<TestPgServer> {
  switch (setting.kind) {
    case 'url': {
      const probe = await io.probe(setting.url);
      if (!probe.ok)
        throw new TestPgError(
          'TEST_PG_UNREACHABLE',
          `ALIPAYPLUS_TEST_PG=${redactPassword(setting.url)} does not answer (${probe.reason}). Start that ` +
            'server or correct the URL; or unset ALIPAYPLUS_TEST_PG to use the server at ' +
            `${DEFAULT_TEST_PG_URL} if it answers and an embedded one otherwise (ALIPAYPLUS_TEST_PG=embedded ` +
            'always starts one).',
        );
      return {
        url: setting.url,
        summary: `PostgreSQL for the tests: ${redactPassword(setting.url)} (${probe.version}, from ALIPAYPLUS_TEST_PG)`,
      };
    }
    case 'embedded':
      return embedded(await io.startEmbedded(), 'ALIPAYPLUS_TEST_PG=embedded');
    case 'auto': {
      const probe = await io.probe(DEFAULT_TEST_PG_URL);
      if (probe.ok)
        return {
          url: DEFAULT_TEST_PG_URL,
          summary:
            `PostgreSQL for the tests: ${DEFAULT_TEST_PG_URL} (${probe.version}, already running; ` +
            'ALIPAYPLUS_TEST_PG=embedded starts a server for the run instead)',
        };
      return embedded(await io.startEmbedded(), `${DEFAULT_TEST_PG_URL} does not answer: ${probe.reason}`);
    }
  }
}

function embedded(server: EmbeddedServer, why: string): TestPgServer {
  const seconds = (server.startedInMs / 1000).toFixed(1);
  return {
    url: server.url,
    summary: `PostgreSQL for the tests: embedded ${server.version} at ${server.url}, started in ${seconds} s (${why})`,
    stop: () => server.stop(),
  };
}

/** The URL with its password, if any, replaced by `***`: the summary line ends up in CI logs. */
export function redactPassword(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*):[^@/]*@/, '$1:***@');
}
