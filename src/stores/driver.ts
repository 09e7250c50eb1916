import { createRequire } from 'node:module';
import { AlipayPlusLifecycleError } from '../errors.js';

// Both drivers are CommonJS, so a require made here loads one synchronously the first time a store of
// its kind is created. Importing the package therefore loads neither the native better-sqlite3 nor
// pg, which is an optional peer dependency that only PostgreSQL users install.
const require = createRequire(import.meta.url);

const INSTALL_HINT: Record<DriverName, string> = {
  pg: 'postgresStore() needs the npm package pg, an optional peer dependency: run `npm install pg`',
  'better-sqlite3':
    'sqliteStore() needs the npm package better-sqlite3, a dependency of this package: reinstall it (`npm install`), or use memoryStore() or postgresStore()',
};

export type DriverName = 'pg' | 'better-sqlite3';

const loaded = new Map<DriverName, unknown>();

/**
 * The driver module, loaded on first use. A driver that is not installed, or whose native part does
 * not load (better-sqlite3 built for another Node), is a `DRIVER_MISSING` error that says what to do.
 */
export function loadDriver<T>(name: DriverName): T {
  if (loaded.has(name)) return loaded.get(name) as T;
  let driver: unknown;
  try {
    driver = require(name);
  } catch (cause) {
    const missing = (cause as { code?: string }).code === 'MODULE_NOT_FOUND';
    const why = missing
      ? INSTALL_HINT[name]
      : `the npm package ${name} is installed but did not load (${(cause as Error).message.split('\n')[0]}): rebuild it for this Node (\`npm rebuild ${name}\`)`;
    throw new AlipayPlusLifecycleError('DRIVER_MISSING', why, { cause });
  }
  loaded.set(name, driver);
  return driver as T;
}
