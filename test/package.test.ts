// What `npm pack` ships, checked as a user meets it: the tarball is installed into an empty project,
// and a script written as the README's "Embedding it" runs there, with the CLI from node_modules/.bin.
// The same tarball is linted (publint, attw) and its .d.ts surface compared with the API reports in
// etc/ (api-extractor). One pack serves every test here: it builds dist/ through `prepack`.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownedTempDir } from './helpers/temp-dir.js';

const root = resolve(import.meta.dirname, '..');
const bin = (name: string) => join(root, 'node_modules', '.bin', name);

/**
 * The environment for a child npm or tool: without the variables by which the `npm test` that runs us
 * names its own project (its package, its script, its folder), which would make the child npm act on
 * ours. Its settings (the cache that `npm ci` filled, the CA file) stay.
 */
function childEnv(): NodeJS.ProcessEnv {
  const ours = /^npm_(package_|lifecycle_|command$|config_local_prefix$|config_call$)/i;
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !ours.test(key)));
}

function run(command: string, args: string[], cwd: string, timeoutMs = 120_000) {
  const result = spawnSync(command, args, { cwd, env: childEnv(), encoding: 'utf8', timeout: timeoutMs });
  return {
    status: result.status,
    output: `${result.stdout ?? ''}${result.stderr ?? ''}`,
    stdout: result.stdout ?? '',
  };
}

let tarball: string;
let project: string;
const temps: { remove(): void }[] = [];
const tempDir = (prefix: string) => {
  const owned = ownedTempDir(prefix);
  temps.push(owned);
  return owned.dir;
};
afterAll(() => {
  for (const temp of temps) temp.remove();
});

/** package.json and package-lock.json of a project whose one dependency is the tarball (copied in). */
function writeProjectFor(packed: string, dir: string): void {
  const file = basename(packed);
  copyFileSync(packed, join(dir, file));
  const manifest = JSON.parse(
    execFileSync('tar', ['-xzOf', packed, 'package/package.json'], { encoding: 'utf8' }),
  );
  const ourLock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  const dependencies = { [manifest.name]: `file:${file}` };
  const packages: Record<string, unknown> = {
    '': { name: 'packed-user', dependencies },
    [`node_modules/${manifest.name}`]: {
      version: manifest.version,
      resolved: `file:${file}`,
      integrity: `sha512-${createHash('sha512').update(readFileSync(packed)).digest('base64')}`,
      license: manifest.license,
      dependencies: manifest.dependencies,
      peerDependencies: manifest.peerDependencies,
      peerDependenciesMeta: manifest.peerDependenciesMeta,
      bin: manifest.bin,
      engines: manifest.engines,
    },
  };
  // Every package our production install has (not the dev-only ones): a superset of the tarball's
  // dependency tree, each at its pinned version and integrity.
  for (const [path, entry] of Object.entries(ourLock.packages))
    if (path !== '' && !entry.dev) packages[path] = entry;
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'packed-user', private: true, type: 'module', dependencies }),
  );
  writeFileSync(
    join(dir, 'package-lock.json'),
    JSON.stringify({ name: 'packed-user', lockfileVersion: 3, requires: true, packages }),
  );
}

beforeAll(() => {
  const packDir = tempDir('pack-');
  const packed = run('npm', ['pack', '--json', '--pack-destination', packDir], root, 240_000);
  expect(packed.status, packed.output).toBe(0);
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string }[];
  tarball = join(packDir, info?.filename ?? '');

  // An empty ESM project that depends on the tarball alone. Its lockfile pins every dependency at the
  // version this repository's lockfile pins (the same resolution a user gets within our ranges), so
  // that `npm ci --offline` installs from the cache `npm ci` filled here: the tests need no network.
  // A runtime import of a package that is not a dependency (as pg once was) fails in this project.
  // --ignore-scripts: better-sqlite3's install would try a prebuilt download and then compile SQLite
  // for two minutes; the addon compiled by this clone's `npm ci` is the same version's, so it is copied
  // in (or rebuilt when the versions differ).
  project = tempDir('packed-project-');
  writeProjectFor(tarball, project);
  const installed = run(
    'npm',
    ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'],
    project,
    240_000,
  );
  expect(installed.status, installed.output).toBe(0);
  const ours = join(root, 'node_modules', 'better-sqlite3');
  const theirs = join(project, 'node_modules', 'better-sqlite3');
  const version = (dir: string) =>
    JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version as string;
  if (version(ours) === version(theirs)) {
    mkdirSync(join(theirs, 'build', 'Release'), { recursive: true });
    copyFileSync(
      join(ours, 'build', 'Release', 'better_sqlite3.node'),
      join(theirs, 'build', 'Release', 'better_sqlite3.node'),
    );
  } else {
    const rebuilt = spawnSync('npm', ['rebuild', 'better-sqlite3'], {
      cwd: project,
      env: { ...childEnv(), npm_config_build_from_source: 'true' },
      encoding: 'utf8',
      timeout: 600_000,
    });
    expect(rebuilt.status, `${rebuilt.stdout}${rebuilt.stderr}`).toBe(0);
  }
}, 900_000);

describe('the packed tarball, installed into an empty project', () => {
  it('ships what the entry points need, and no test, bench or source file', () => {
    const listed = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    for (const file of [
      'package/dist/src/index.js',
      'package/dist/src/index.d.ts',
      'package/dist/src/postgres.js',
      'package/dist/src/simulator/index.js',
      'package/dist/src/cli/main.js',
      'package/dist/src/stores/sqlite-writer.js',
      'package/dist/src/stores/sql/sqlite/001_lifecycles.sql',
      'package/dist/src/dashboard/page/index.html',
    ])
      expect(listed, file).toContain(file);
    expect(listed.filter((f) => /^package\/(test|bench|src|machines)\//.test(f))).toEqual([]);
    expect(listed.filter((f) => /\.(db|pem|log)$/.test(f))).toEqual([]);
  });

  it('runs the README embedding: engine.pay against the simulator on SQLite, and the notification handler', () => {
    copyFileSync(join(root, 'test', 'fixtures', 'packed-consumer.mjs'), join(project, 'consumer.mjs'));
    const ran = run('node', ['consumer.mjs', join(project, 'data', 'lifecycles.db')], project);
    expect(ran.status, ran.output).toBe(0);
    const seen = JSON.parse(ran.stdout.trim().split('\n').at(-1) ?? '{}');
    expect(seen).toEqual({
      // No driver is loaded by the import; better-sqlite3 once a SQLite store exists; pg never.
      driversAtImport: { betterSqlite3: false, pg: false },
      driversAfterStore: { betterSqlite3: true, pg: false },
      payRow: 'in-process',
      status: 'succeeded',
      decidedBy: expect.stringMatching(/^(notification|inquiry)$/),
      notificationAcked: true,
      settled: ['packed_0001'],
      simulatorTruth: 'paid',
      postgresError: {
        code: 'DRIVER_MISSING',
        message: expect.stringContaining('npm install pg'),
      },
      badInput: 'INVALID_INPUT',
    });
  });

  it('runs the CLI from node_modules/.bin: --help, and the demo of 20 payments', () => {
    const cli = join(project, 'node_modules', '.bin', 'alipayplus-lifecycle');
    const help = run(cli, ['--help'], project);
    expect(help.status, help.output).toBe(0);
    for (const command of ['demo', 'track', 'pay', 'refund', 'status', 'attention', 'dashboard', 'simulator'])
      expect(help.stdout).toContain(command);

    const demo = run(cli, ['demo', '--payments', '20', '--store', 'memory'], project, 180_000);
    expect(demo.status, demo.output).toBe(0);
    expect(demo.stdout).toMatch(/reconciliation: lost 0, divergent 0/);
  });
});

describe('the package as tools see it', () => {
  it('publint finds nothing in the tarball', () => {
    const linted = run(bin('publint'), ['run', tarball, '--strict'], root);
    expect(linted.status, linted.output).toBe(0);
    expect(linted.output).toContain('All good!');
  });

  it('attw finds no type resolution problem for ESM users (the package is ESM-only, by design)', () => {
    const checked = run(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'json'], root);
    expect(checked.status, checked.output).toBe(0);
    // The esm-only profile passes on CommonJS require() (which must use import()) and on node10
    // resolution (which knows no `exports`); every other finding counts.
    const { analysis } = JSON.parse(checked.stdout) as {
      analysis: {
        entrypoints: Record<string, unknown>;
        problems: { kind: string; entrypoint: string; resolutionKind?: string }[];
      };
    };
    const counted = analysis.problems.filter(
      (p) => !['node10', 'node16-cjs'].includes(p.resolutionKind ?? ''),
    );
    expect(counted).toEqual([]);
    // Each entry point is analysed (a wrong `exports` map would drop one silently).
    expect(new Set(analysis.problems.map((p) => p.entrypoint))).toEqual(
      new Set(['.', './postgres', './simulator']),
    );
  });

  // A change to what the package exports must be seen and meant: the reports in etc/ are reviewed like
  // code. `npm run api:update` rewrites them after an intended change.
  it.each(['api-extractor.jsonc', 'api-extractor.simulator.jsonc', 'api-extractor.postgres.jsonc'])(
    'the built .d.ts surface matches its API report (%s)',
    (config) => {
      const checked = run(bin('api-extractor'), ['run', '-c', join('etc', config)], root);
      expect(
        checked.status,
        `${checked.output}\nThe public API changed: if that is meant, run \`npm run api:update\` and commit etc/*.api.md.`,
      ).toBe(0);
    },
  );
});
