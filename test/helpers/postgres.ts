import pg from 'pg';
import { inject } from 'vitest';

/**
 * The run's PostgreSQL server (trust auth, database `test`), chosen once for all test files by the
 * global setup test/setup/postgres.ts: ALIPAYPLUS_TEST_PG, else the server at 127.0.0.1:5432, else
 * an embedded one (docs/testing.md). Child processes get it from the test that starts them.
 */
export const PG_URL: string = inject('pgUrl');

/** A fresh schema name per test file run; dropped by `dropSchema`. */
export function schemaName(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}
