import { describe, expect, test } from 'vitest';
import {
  chooseTestPg,
  DEFAULT_TEST_PG_URL,
  type EmbeddedServer,
  type Probe,
  parseTestPgSetting,
  redactPassword,
  TestPgError,
} from './setup/choose-postgres.js';

/** Fakes of the setup's I/O: which URLs answer, and a record of what was asked and started. */
function world(answering: string[]) {
  const probed: string[] = [];
  let started = 0;
  let stopped = 0;
  const embedded: EmbeddedServer = {
    url: 'postgres://postgres@127.0.0.1:40001/test',
    version: 'PostgreSQL 18.4',
    startedInMs: 2_345,
    stop: async () => {
      stopped++;
    },
  };
  return {
    io: {
      probe: async (url: string): Promise<Probe> => {
        probed.push(url);
        return answering.includes(url)
          ? { ok: true, version: 'PostgreSQL 15.20' }
          : { ok: false, reason: 'connect ECONNREFUSED' };
      },
      startEmbedded: async () => {
        started++;
        return embedded;
      },
    },
    probed,
    started: () => started,
    stopped: () => stopped,
  };
}

const OTHER = 'postgres://ci:pw@db.internal:5433/test';

describe('the PostgreSQL server of a test run', () => {
  test('a URL in ALIPAYPLUS_TEST_PG that answers is used, and nothing is started', async () => {
    const w = world([OTHER]);
    const server = await chooseTestPg(parseTestPgSetting(OTHER), w.io);
    expect(server.url).toBe(OTHER);
    expect(server.stop).toBeUndefined();
    expect(w.started()).toBe(0);
    expect(server.summary).toContain('ALIPAYPLUS_TEST_PG');
    expect(server.summary).not.toContain(':pw@');
  });

  test('a URL in ALIPAYPLUS_TEST_PG that does not answer fails the run, says what to do, and starts nothing', async () => {
    const w = world([DEFAULT_TEST_PG_URL]);
    const error = await chooseTestPg(parseTestPgSetting(OTHER), w.io).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TestPgError);
    expect((error as TestPgError).code).toBe('TEST_PG_UNREACHABLE');
    expect((error as TestPgError).message).toMatch(/connect ECONNREFUSED.*Start that server.*embedded/);
    expect((error as TestPgError).message).not.toContain(':pw@');
    expect(w.probed).toEqual([OTHER]);
    expect(w.started()).toBe(0);
  });

  test('ALIPAYPLUS_TEST_PG=embedded starts a server even when the default URL answers', async () => {
    const w = world([DEFAULT_TEST_PG_URL]);
    const server = await chooseTestPg(parseTestPgSetting('embedded'), w.io);
    expect(server.url).toBe('postgres://postgres@127.0.0.1:40001/test');
    expect(w.probed).toEqual([]);
    expect(server.summary).toContain('embedded PostgreSQL 18.4');
    expect(server.summary).toContain('started in 2.3 s');
    await server.stop?.();
    expect(w.stopped()).toBe(1);
  });

  test('unset, the default URL is used when it answers', async () => {
    const w = world([DEFAULT_TEST_PG_URL]);
    const server = await chooseTestPg(parseTestPgSetting(undefined), w.io);
    expect(server.url).toBe(DEFAULT_TEST_PG_URL);
    expect(server.stop).toBeUndefined();
    expect(w.started()).toBe(0);
  });

  test('unset or empty, an embedded server is started when the default URL does not answer, and the line says why', async () => {
    for (const value of [undefined, '', '  ']) {
      const w = world([]);
      const server = await chooseTestPg(parseTestPgSetting(value), w.io);
      expect(w.probed).toEqual([DEFAULT_TEST_PG_URL]);
      expect(w.started()).toBe(1);
      expect(server.url).toBe('postgres://postgres@127.0.0.1:40001/test');
      expect(server.summary).toContain(`${DEFAULT_TEST_PG_URL} does not answer: connect ECONNREFUSED`);
    }
  });

  test('anything else in ALIPAYPLUS_TEST_PG is refused before anything is probed or started', () => {
    for (const value of ['mysql://root@localhost/test', 'embeded', '127.0.0.1:5432']) {
      expect(() => parseTestPgSetting(value)).toThrowError(
        /^TEST_PG_SETTING: .*expected a postgres:\/\/ URL/,
      );
    }
  });

  test('the password of a URL never reaches the printed line', () => {
    expect(redactPassword('postgres://ci:s3cr:et@db:5432/test')).toBe('postgres://ci:***@db:5432/test');
    expect(redactPassword('postgresql://ci@db/test')).toBe('postgresql://ci@db/test');
  });
});
