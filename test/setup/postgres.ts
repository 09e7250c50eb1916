/**
 * vitest global setup: chooses the PostgreSQL server of the whole run once (choose-postgres.ts has the
 * table), prints which one, and hands its URL to the test files as `inject('pgUrl')`, read through
 * test/helpers/postgres.ts. An embedded server started here is stopped, and its data removed, when the
 * run ends. docs/testing.md says how to choose.
 */
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { chooseTestPg, type Probe, parseTestPgSetting } from './choose-postgres.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's PostgreSQL server: trust auth, database `test`. */
    pgUrl: string;
  }
}

/** Nothing listening usually answers at once (connection refused); this bounds a port that drops packets. */
const CONNECT_TIMEOUT_MS = 2_000;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await chooseTestPg(parseTestPgSetting(process.env.ALIPAYPLUS_TEST_PG), {
    probe,
    startEmbedded: startEmbeddedPostgres,
  });
  project.provide('pgUrl', server.url);
  console.log(server.summary);
  return async () => {
    await server.stop?.();
  };
}

async function probe(url: string): Promise<Probe> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  try {
    await client.connect();
    const { rows } = await client.query<{ version: string }>(
      "SELECT current_setting('server_version') AS version",
    );
    return { ok: true, version: `PostgreSQL ${rows[0]?.version.split(' ')[0]}` };
  } catch (error) {
    return { ok: false, reason: describe(error) };
  } finally {
    await client.end().catch(() => {});
  }
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0)
    return error.errors.map(describe).join('; ');
  if (error instanceof Error) return error.message || (error as { code?: string }).code || error.name;
  return String(error);
}
