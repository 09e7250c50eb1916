import pg from 'pg';

/** The test server: 127.0.0.1:5432, trust auth, database `test` (started by .ci/run if needed). */
export const PG_URL = process.env.ALIPAYPLUS_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

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
