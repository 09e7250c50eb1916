import { readdirSync, readFileSync } from 'node:fs';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Reads `NNN_name.sql` files from a folder next to this module, in order. The build copies
 * `src/stores/sql` to `dist/src/stores/sql`, so the same code finds them from source and from dist.
 */
export function readMigrations(dialect: 'sqlite' | 'postgres'): Migration[] {
  const dir = new URL(`./sql/${dialect}/`, import.meta.url);
  return readdirSync(dir)
    .filter((file) => /^\d{3}_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 3)),
      name: file.slice(4, -4),
      sql: readFileSync(new URL(file, dir), 'utf8'),
    }));
}
