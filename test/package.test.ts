// What `npm pack` ships, checked as a user meets it: the tarball is installed into an empty project,
// and a script written as the README's "Embedding it" runs there, with the CLI from node_modules/.bin.
// The same tarball is linted (publint, attw) and its .d.ts surface compared with the API reports in
// etc/ (api-extractor). One pack serves every test here: it builds dist/ through `prepack`.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownedTempDir } from './helpers/temp-dir.js';

const root = resolve(import.meta.dirname, '..');
const bin = (name: string) => join(root, 'node_modules', '.bin', name);

/**
 * The environment for a child npm or tool: without the `npm_*` variables of the `npm test` that runs
 * us, which would otherwise configure the child npm as if it were ours (its package, its scripts).
 */
function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_')),
  );
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

beforeAll(() => {
  const packDir = tempDir('pack-');
  const packed = run('npm', ['pack', '--json', '--pack-destination', packDir], root, 240_000);
  expect(packed.status, packed.output).toBe(0);
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string }[];
  tarball = join(packDir, info?.filename ?? '');

  // An empty ESM project, as `npm init` and "type": "module" make it. --ignore-scripts: better-sqlite3's
  // install would try a prebuilt download and then compile SQLite for two minutes; the addon compiled by
  // this clone's `npm ci` is the same version's, so it is copied in (or rebuilt when the versions differ).
  project = tempDir('packed-project-');
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'packed-user', private: true, type: 'module' }),
  );
  const installed = run(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', tarball],
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
      decidedBy: 'notification',
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
