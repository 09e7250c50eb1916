/**
 * Scale-out over PostgreSQL with real processes: engine workers (test/fixtures/pg-worker.ts) share one
 * schema of the test server, against the simulator in this process on one shared scaled clock. Their
 * notification endpoints sit behind a small round-robin balancer in this process, as a service's
 * instances sit behind a load balancer: a notification lands on any live worker.
 *
 * - failover: three workers share 2,000 payments; one is SIGKILLed mid-run; its unfinished lifecycles
 *   are adopted by the other two within the lease plus one renewal period (the figure is printed);
 *   every payment ends with one outcome that agrees with the simulator, settled exactly once.
 * - fencing: a worker is paused (SIGSTOP) past its lease while cancels of its lifecycles come due; the
 *   others adopt them; after SIGCONT it writes nothing and sends no cancel (PostgreSQL itself records
 *   who wrote what: a trigger logs every write with the connection's application_name).
 * - routing: notifications that land on a worker that does not own the payment are applied by the
 *   owner, in another process.
 *
 * The workers print their renewals (how long each took, pool wait included, and the worst event-loop
 * delay): the summaries show the slowest. SCALE_SEED=<n> draws another order mix; SCALE_KEEP=1 keeps
 * the temp dirs and schemas; SCALE_DEBUG=<dir> writes each worker's stdout and stderr there, and the
 * dead worker's leases at the kill.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type LifecycleOutcome, scaledClock } from '../src/index.js';
import { postgresStore } from '../src/postgres.js';
import { createSimulator, type OrderTruth, type Simulator } from '../src/simulator/index.js';
import { streamFor } from '../src/simulator/random.js';
import type { PgPayment, PgWorkerConfig } from './fixtures/pg-worker.js';
import { reconcile } from './helpers/e2e.js';
import { generateTestKeyPair } from './helpers/keys.js';
import { dropSchema, PG_URL, schemaName } from './helpers/postgres.js';

const SEED = Number(process.env.SCALE_SEED ?? 20_260_601);
const KEEP = process.env.SCALE_KEEP === '1';
const CLIENT_ID = 'SCALE_CLIENT';
const NOTIFY_PATH = '/alipayplus/notify';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const workerPath = fileURLToPath(new URL('./fixtures/pg-worker.ts', import.meta.url));

const acqp = generateTestKeyPair();
const alipay = generateTestKeyPair();

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Epoch ms with a fractional part: comparable with the workers' call logs. */
const preciseNow = () => performance.timeOrigin + performance.now();

// ---- worker processes ----------------------------------------------------------------------------

interface Worker {
  id: string;
  child: ChildProcess;
  pid: number;
  lines: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** Resolves with the first stdout line (from index `from`) that starts with `prefix`. */
  waitFor(prefix: string, timeoutMs?: number, from?: number): Promise<string>;
  /** Asks for the lifecycles in memory (SIGUSR2 → `active <n>`). */
  active(): Promise<number>;
}

const workers: Worker[] = [];

function startWorker(config: PgWorkerConfig): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', workerPath], {
    cwd: repoRoot,
    env: { ...process.env, PG_WORKER_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  const listeners = new Set<() => void>();
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => {
      running = false;
      for (const listener of listeners) listener();
      resolve({ code, signal });
    });
  });
  if (child.stdout)
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      for (const listener of listeners) listener();
    });
  if (child.stderr) createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line));
  child.once('error', (error) => stderr.push(`spawn-error ${error.message}`));
  const worker: Worker = {
    id: config.workerId,
    child,
    pid: child.pid ?? -1,
    lines,
    stderr,
    exited,
    alive: () => running,
    waitFor(prefix, timeoutMs = 20_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = lines.slice(from).find((l) => l.startsWith(prefix));
          if (line !== undefined) {
            done();
            resolve(line);
          } else if (!running) {
            done();
            reject(
              new Error(`${config.workerId} exited before "${prefix}": ${stderr.slice(-20).join('\n')}`),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `${config.workerId}: no "${prefix}" within ${timeoutMs} ms: ${stderr.slice(-20).join('\n')}`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async active() {
      const from = lines.length;
      child.kill('SIGUSR2');
      const line = await worker.waitFor('active ', 5_000, from);
      return Number(line.split(' ')[1]);
    },
  };
  workers.push(worker);
  return worker;
}

/** Waits until the kernel shows the process stopped (SIGSTOP is delivered asynchronously). */
async function stopped(pid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'T' || state === 't') return;
    await sleep(2);
  }
  throw new Error(`process ${pid} did not stop`);
}

async function terminate(worker: Worker): Promise<void> {
  worker.child.kill('SIGTERM');
  const exit = await Promise.race([worker.exited, sleep(15_000).then(() => 'timeout' as const)]);
  if (exit === 'timeout') throw new Error(`${worker.id} did not stop within 15 s after SIGTERM`);
  if (exit.code !== 0 || !worker.lines.includes('stopped'))
    throw new Error(
      `${worker.id} did not drain: exit ${JSON.stringify(exit)}, ${worker.stderr.slice(-10).join('\n')}`,
    );
}

/** stderr lines no healthy worker prints. */
function fatalLines(worker: Worker): string[] {
  return worker.stderr
    .filter((line) => /^(engine-error|unhandled-rejection|track-failed|spawn-error)/.test(line))
    .map((line) => `${worker.id}: ${line}`);
}

/** IDs a worker said it stopped a local actor for (its lease was lost, or a write was refused). */
function noticedLoss(worker: Worker): Set<string> {
  return new Set(
    worker.stderr
      .filter((line) => line.startsWith('lease-lost ') || line.startsWith('write-refused '))
      .map((line) => line.split(' ')[1] as string),
  );
}

/** The worker's renewals (debugRenewals): how long the slowest took, and the worst event-loop delay. */
function renewals(worker: Worker): string {
  const lines = worker.stderr.filter((line) => line.startsWith('renew '));
  const ms = lines.map((line) => Number(line.split(' ')[1]));
  const lag = lines.map((line) => Number(line.split(' ')[7]));
  return `${worker.id} ${lines.length} renewals, slowest ${Math.max(0, ...ms)} ms, worst loop delay ${Math.max(0, ...lag)} ms`;
}

// ---- the load balancer in front of the workers' notification endpoints ---------------------------

interface Balancer {
  url: string;
  add(port: number): void;
  remove(port: number): void;
  close(): Promise<void>;
}

/** Round robin over the live ports; a connection error tries the next one (the body is buffered). */
async function startBalancer(): Promise<Balancer> {
  const live: number[] = [];
  let turn = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const attempt = (tries: number) => {
        if (res.destroyed) return;
        const ports = [...live];
        const port = ports[turn++ % Math.max(1, ports.length)];
        if (port === undefined || tries > ports.length) {
          res.writeHead(502);
          res.end();
          return;
        }
        const upstream = httpRequest(
          { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on('error', () => {
          if (!res.headersSent) attempt(tries + 1);
          else res.destroy();
        });
        res.on('close', () => upstream.destroy());
        upstream.end(body);
      };
      attempt(0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${NOTIFY_PATH}`,
    add: (port) => {
      if (!live.includes(port)) live.push(port);
    },
    remove: (port) => {
      const index = live.indexOf(port);
      if (index >= 0) live.splice(index, 1);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---- PostgreSQL ------------------------------------------------------------------------------------

const db = new pg.Pool({ connectionString: PG_URL, max: 4 });
const schemas: string[] = [];

/** Creates the schema's tables (the store's migrations) before any worker starts. */
async function prepareSchema(schema: string): Promise<void> {
  schemas.push(schema);
  const store = postgresStore({ connectionString: PG_URL, schema, workerId: 'test-migrator' });
  await store.open();
  await store.close();
  // open() registered a heartbeat: it would count as a live worker when adoption is shared out.
  await db.query(`DELETE FROM "${schema}".workers WHERE worker_id = 'test-migrator'`);
}

/**
 * A write log kept by PostgreSQL: every insert and update of a lifecycle, every audit row and every
 * stored notification, with the writer's application_name (the worker ID: pg-worker sets it) and
 * clock_timestamp(). Only what a worker's statement really changed appears: a fenced-out UPDATE
 * matches no row and fires nothing.
 */
async function installWriteLog(schema: string): Promise<void> {
  const s = `"${schema}"`;
  await db.query(`
    CREATE TABLE ${s}.write_log (
      seq bigserial PRIMARY KEY, app text NOT NULL, tbl text NOT NULL, op text NOT NULL,
      payment_request_id text NOT NULL, old_owner text, new_owner text, old_epoch bigint, new_epoch bigint,
      old_version bigint, new_version bigint, new_final boolean, at double precision NOT NULL);
    CREATE FUNCTION ${s}.log_lifecycle_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      INSERT INTO ${s}.write_log (app, tbl, op, payment_request_id, old_owner, new_owner, old_epoch, new_epoch,
                                  old_version, new_version, new_final, at)
      VALUES (current_setting('application_name'), 'lifecycles', 'UPDATE', NEW.payment_request_id, OLD.owner,
              NEW.owner, OLD.epoch, NEW.epoch, OLD.version, NEW.version, NEW.final,
              extract(epoch FROM clock_timestamp()) * 1000);
      RETURN NEW; END $$;
    CREATE FUNCTION ${s}.log_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      INSERT INTO ${s}.write_log (app, tbl, op, payment_request_id, at)
      VALUES (current_setting('application_name'), TG_TABLE_NAME, 'INSERT', NEW.payment_request_id,
              extract(epoch FROM clock_timestamp()) * 1000);
      RETURN NEW; END $$;
    CREATE TRIGGER write_log_update AFTER UPDATE ON ${s}.lifecycles
      FOR EACH ROW EXECUTE FUNCTION ${s}.log_lifecycle_update();
    CREATE TRIGGER write_log_insert AFTER INSERT ON ${s}.lifecycles
      FOR EACH ROW EXECUTE FUNCTION ${s}.log_insert();
    CREATE TRIGGER write_log_audit AFTER INSERT ON ${s}.audit_log
      FOR EACH ROW EXECUTE FUNCTION ${s}.log_insert();
    CREATE TRIGGER write_log_notifications AFTER INSERT ON ${s}.notifications
      FOR EACH ROW EXECUTE FUNCTION ${s}.log_insert();`);
}

interface WriteLogRow {
  seq: string;
  app: string;
  tbl: string;
  op: string;
  payment_request_id: string;
  old_owner: string | null;
  new_owner: string | null;
  old_epoch: string | null;
  new_epoch: string | null;
  old_version: string | null;
  new_version: string | null;
  new_final: boolean | null;
  at: number;
}

interface LifecycleRow {
  payment_request_id: string;
  state: string;
  final: boolean;
  settled_fired: boolean;
  outcome: LifecycleOutcome | null;
  owner: string | null;
  epoch: string;
}

async function lifecycleRows(schema: string): Promise<LifecycleRow[]> {
  const { rows } = await db.query<LifecycleRow>(
    `SELECT payment_request_id, state, final, settled_fired, outcome, owner, epoch FROM "${schema}".lifecycles`,
  );
  return rows;
}

/**
 * Polls until every lifecycle of the schema is final and settled, and there are `count` of them. On a
 * timeout the error shows what the workers complained of (a track that failed leaves a row missing).
 */
async function allSettled(
  schema: string,
  count: number,
  timeoutMs: number,
  workers: readonly Worker[] = [],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = { total: 0, done: 0 };
  while (Date.now() < deadline) {
    const { rows } = await db.query<{ total: number; done: number }>(
      `SELECT count(*)::int AS total, (count(*) FILTER (WHERE final AND settled_fired))::int AS done
         FROM "${schema}".lifecycles`,
    );
    last = rows[0] ?? last;
    if (last.total === count && last.done === count) return;
    await sleep(100);
  }
  const pending = await db.query<{ payment_request_id: string; state: string; owner: string | null }>(
    `SELECT payment_request_id, state, owner FROM "${schema}".lifecycles WHERE NOT (final AND settled_fired) LIMIT 10`,
  );
  const complaints = workers.flatMap((worker) => [
    `${worker.id}: ${worker.lines.find((l) => l.startsWith('ready ')) ?? 'not ready'}`,
    ...fatalLines(worker).slice(0, 5),
  ]);
  throw new Error(
    `not all settled within ${timeoutMs} ms: ${last.done}/${count} (rows ${last.total}); e.g. ${JSON.stringify(pending.rows)}\n${complaints.join('\n')}`,
  );
}

// ---- shared checks ---------------------------------------------------------------------------------

/** Problems with the final outcomes in the table against the simulator, and with the settlements. */
function checkOutcomes(
  ids: readonly string[],
  rows: LifecycleRow[],
  truths: OrderTruth[],
  calls: ReturnType<Simulator['calls']>,
  settlementLines: string[],
): { problems: string[]; outcomes: LifecycleOutcome[]; settledBy: Map<string, string[]> } {
  const problems: string[] = [];
  const idSet = new Set(ids);
  const rowById = new Map(rows.map((row) => [row.payment_request_id, row]));
  const outcomes: LifecycleOutcome[] = [];
  for (const id of ids) {
    const row = rowById.get(id);
    if (!row) problems.push(`${id}: no lifecycle row`);
    else if (!row.final || !row.outcome) problems.push(`${id}: not final (${row.state})`);
    else {
      if (row.outcome.status !== row.state)
        problems.push(`${id}: state ${row.state}, outcome ${row.outcome.status}`);
      if (!row.settled_fired) problems.push(`${id}: settlement not marked fired`);
      outcomes.push(row.outcome);
    }
  }
  for (const row of rows)
    if (!idSet.has(row.payment_request_id)) problems.push(`${row.payment_request_id}: unknown row`);

  // A cancel after an inquiry answered paid, or any cancel of a payment that ended succeeded.
  const paidSeen = new Set<string>();
  const cancelAfterSuccess = new Set<string>();
  const cancels = new Map<string, number>();
  for (const call of calls) {
    const id = call.paymentRequestId ?? '?';
    if (call.api === 'inquiryPayment' && call.paymentStatus === 'S') paidSeen.add(id);
    if (call.api === 'cancelPayment') {
      cancels.set(id, (cancels.get(id) ?? 0) + 1);
      if (paidSeen.has(id)) cancelAfterSuccess.add(id);
    }
  }
  for (const outcome of outcomes)
    if (outcome.status === 'succeeded' && (cancels.get(outcome.paymentRequestId) ?? 0) > 0)
      cancelAfterSuccess.add(outcome.paymentRequestId);
  problems.push(...reconcile(outcomes, truths, [...cancelAfterSuccess]));
  const truthById = new Map(truths.map((t) => [t.paymentRequestId, t]));
  for (const outcome of outcomes) {
    const truth = truthById.get(outcome.paymentRequestId);
    if (truth?.cancelled && outcome.status !== 'cancelled' && outcome.status !== 'attention')
      problems.push(
        `${outcome.paymentRequestId}: cancelled at Alipay+ but the engine says ${outcome.status}`,
      );
  }

  // Settlements: exactly one line per payment, across all workers, with the outcome's status.
  const outcomeById = new Map(outcomes.map((o) => [o.paymentRequestId, o]));
  const settledBy = new Map<string, string[]>();
  for (const line of settlementLines) {
    const [worker = '', id = '', status = ''] = line.split(' ');
    settledBy.set(id, [...(settledBy.get(id) ?? []), worker]);
    if (!idSet.has(id)) problems.push(`settlement of an unknown payment: ${line}`);
    const outcome = outcomeById.get(id);
    if (outcome && outcome.status !== status)
      problems.push(`${id}: settled as ${status}, outcome ${outcome.status}`);
  }
  for (const [id, by] of settledBy)
    if (by.length > 1) problems.push(`${id}: settled ${by.length} times (by ${by.join(', ')})`);
  const unsettled = ids.filter((id) => !settledBy.has(id));
  if (unsettled.length > 0)
    problems.push(`${unsettled.length} payment(s) never settled: ${unsettled.slice(0, 10).join(', ')}`);
  return { problems, outcomes, settledBy };
}

const readLines = (path: string) =>
  existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];

function writeAtomically(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(value));
  renameSync(`${path}.tmp`, path);
}

function statusCounts(outcomes: LifecycleOutcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) counts[outcome.status] = (counts[outcome.status] ?? 0) + 1;
  return counts;
}

// ---- per-test world: simulator, balancer, temp dir ------------------------------------------------

interface World {
  sim: Simulator;
  balancer: Balancer;
  dir: string;
  clockSpec: { factor: number; start: number; realStart: number };
  now(): number;
  base(workerId: string, leaseMs: number, schema: string): PgWorkerConfig;
}

const cleanups: (() => Promise<void>)[] = [];

async function createWorld(factor: number, mix: boolean): Promise<World> {
  const realStart = Date.now();
  const clockSpec = { factor, start: realStart, realStart };
  const clock = scaledClock(factor, realStart, realStart);
  const sim = createSimulator({
    clientId: CLIENT_ID,
    acqpPublicKey: acqp.publicPem,
    privateKey: alipay.privatePem,
    now: clock.now,
    seed: SEED,
    ...(mix ? { mix: 'realistic' as const } : {}),
    notifyRetryScheduleMs: [0, 2_000, 5_000, 10_000, 30_000, 60_000],
    notifyAckTimeoutMs: 1_000,
  });
  const simulatorUrl = await sim.start();
  const balancer = await startBalancer();
  const dir = mkdtempSync(join(tmpdir(), 'alipayplus-scale-'));
  cleanups.push(async () => {
    await balancer.close();
    await sim.stop();
    if (KEEP) console.log(`scale-out test: kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });
  return {
    sim,
    balancer,
    dir,
    clockSpec,
    now: clock.now,
    base: (workerId, leaseMs, schema) => ({
      pgUrl: PG_URL,
      schema,
      workerId,
      leaseMs,
      simulatorUrl,
      alipayPublicKeyPem: sim.publicKeyPem,
      privateKeyPem: acqp.privatePem,
      clientId: CLIENT_ID,
      clock: clockSpec,
      notifyPort: 0,
      notifyPath: NOTIFY_PATH,
      settlementsPath: join(dir, 'settlements.txt'),
      callsPath: join(dir, 'cancels.txt'),
    }),
  };
}

/** Starts workers, waits until they listen and puts them behind the balancer. */
async function startListening(
  world: World,
  configs: PgWorkerConfig[],
): Promise<{ worker: Worker; port: number }[]> {
  const started = configs.map((config) => startWorker(config));
  return Promise.all(
    started.map(async (worker) => {
      const port = Number((await worker.waitFor('listening ')).split(' ')[1]);
      await worker.waitFor('started');
      world.balancer.add(port);
      return { worker, port };
    }),
  );
}

afterEach(async () => {
  if (process.env.SCALE_DEBUG)
    for (const worker of workers)
      writeFileSync(
        join(process.env.SCALE_DEBUG, `${worker.id}.stderr`),
        `${worker.stderr.join('\n')}\n---\n${worker.lines.join('\n')}\n`,
      );
  for (const worker of workers.splice(0)) if (worker.alive()) worker.child.kill('SIGKILL');
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

afterAll(async () => {
  if (!KEEP) for (const schema of schemas) await dropSchema(schema);
  else console.log(`scale-out test: kept schemas ${schemas.join(', ')}`);
  await db.end();
});

// ---- the tests -------------------------------------------------------------------------------------

describe('scale-out over PostgreSQL, in separate processes', () => {
  it('failover: a SIGKILLed worker’s payments are adopted within the lease plus one renewal, and every payment still ends once, agreeing with the truth', async () => {
    const PAYMENTS = 2_000;
    /** Every fifth payment expires in 60–100 simulated seconds and pays late or never: unfinished at the kill. */
    const LONG_EVERY = 5;
    const FACTOR = 10;
    const LEASE_MS = 5_000;
    const RENEW_MS = Math.floor(LEASE_MS / 3);
    /** Slack over lease + renewal for a busy 2-core machine (3 workers, the simulator, PostgreSQL). */
    const SLACK_MS = 1_500;
    /** Payments arrive at 125/s (16 s for 2,000); the kill comes 8 s in. */
    const PER_TICK = 5;
    const TICK_MS = 40;
    const KILL_AFTER_MS = 8_000;
    const began = Date.now();
    const schema = schemaName('apl_scale_failover');
    await prepareSchema(schema);
    const world = await createWorld(FACTOR, true);
    const ids = ['w1', 'w2', 'w3'];
    const victimId = 'w2';
    const configs = ids.map((id) => ({
      ...world.base(id, LEASE_MS, schema),
      followPath: join(world.dir, `${id}.jsonl`),
      policy: { inquiryScheduleMs: [5_000, 10_000, 20_000] },
      trackConcurrency: 16,
      debugRenewals: true,
    }));
    const running = await startListening(world, configs);
    const victim = running.find((r) => r.worker.id === victimId) as { worker: Worker; port: number };
    const survivors = running.filter((r) => r.worker.id !== victimId).map((r) => r.worker);

    // The payments arrive over time, as `track` calls reach a service: each is created at the
    // simulator (the realistic mix, expiring in one simulated minute, 6 s real; every fifth expiring
    // later and paying late or never) and handed to the next live worker.
    const random = streamFor(SEED, 'scale-failover');
    const paymentIds: string[] = [];
    const given = new Map<string, PgPayment[]>(ids.map((id) => [id, []]));
    let takingTracks = [...ids];
    const arrivals = (async () => {
      for (let i = 0; i < PAYMENTS; ) {
        for (const end = Math.min(PAYMENTS, i + PER_TICK); i < end; i++) {
          const paymentRequestId = `SCALE-F-${String(i).padStart(4, '0')}`;
          const long = i % LONG_EVERY === 0;
          const order = world.sim.createOrder({
            paymentRequestId,
            notifyUrl: world.balancer.url,
            ...(long
              ? {
                  expiresAt: world.now() + 60_000 + Math.round(random() * 40_000),
                  scenario:
                    random() < 0.5
                      ? { label: 'long-never-finishes', decideAfterMs: null }
                      : { label: 'long-pays-late', decideAfterMs: 20_000 + Math.round(random() * 60_000) },
                }
              : {}),
          });
          const payment = {
            paymentRequestId,
            amount: order.amount,
            createdAt: order.createdAt,
            expiresAt: order.expiresAt,
          };
          const to = takingTracks[i % takingTracks.length] as string;
          given.get(to)?.push(payment);
          appendFileSync(join(world.dir, `${to}.jsonl`), `${JSON.stringify(payment)}\n`);
          paymentIds.push(paymentRequestId);
        }
        await sleep(TICK_MS);
      }
    })();

    // Mid-run, the victim dies. It is frozen first, so that the kill lands where no settlement is
    // between onSettled and its mark: a SIGKILL in that window makes the adopter fire it again
    // (onSettled is at-least-once across a crash, as documented), which would blur what this test
    // checks: that adoption itself never settles twice.
    await sleep(KILL_AFTER_MS);
    takingTracks = ids.filter((id) => id !== victimId);
    world.balancer.remove(victim.port);
    const settlementsPath = configs[0]?.settlementsPath as string;
    let killAt = 0;
    let freezes = 0;
    for (; freezes < 200 && killAt === 0; freezes++) {
      victim.worker.child.kill('SIGSTOP');
      await stopped(victim.worker.pid);
      const fired = readLines(settlementsPath)
        .filter((line) => line.startsWith(`${victimId} `))
        .map((line) => line.split(' ')[1]);
      const { rows } = await db.query<{ unmarked: number }>(
        `SELECT count(*)::int AS unmarked FROM "${schema}".lifecycles
          WHERE payment_request_id = ANY($1::text[]) AND NOT settled_fired`,
        [fired],
      );
      if (rows[0]?.unmarked === 0) {
        killAt = Date.now();
        victim.worker.child.kill('SIGKILL');
      } else {
        victim.worker.child.kill('SIGCONT');
        await sleep(5 + Math.round(random() * 20));
      }
    }
    expect(killAt, 'the victim was never outside a settlement window').toBeGreaterThan(0);
    await victim.worker.exited;
    const { rows: orphans } = await db.query<{ payment_request_id: string }>(
      `SELECT payment_request_id FROM "${schema}".lifecycles
        WHERE owner = $1 AND (final = false OR settled_fired = false)`,
      [victimId],
    );
    const orphanIds = orphans.map((r) => r.payment_request_id);
    if (process.env.SCALE_DEBUG) {
      const { rows: leases } = await db.query(
        `SELECT payment_request_id, state, final, settled_fired, epoch,
                round(extract(epoch FROM lease_expires_at - now()) * 1000) AS ms_left
           FROM "${schema}".lifecycles WHERE owner = $1 AND (final = false OR settled_fired = false) ORDER BY 6`,
        [victimId],
      );
      writeFileSync(join(process.env.SCALE_DEBUG, 'orphans.json'), JSON.stringify(leases, null, 1));
    }
    // Tracks the victim never stored fail for their caller, who tries another worker.
    const handedToVictim = given.get(victimId) ?? [];
    const { rows: stored } = await db.query<{ payment_request_id: string }>(
      `SELECT payment_request_id FROM "${schema}".lifecycles WHERE payment_request_id = ANY($1::text[])`,
      [handedToVictim.map((p) => p.paymentRequestId)],
    );
    const storedIds = new Set(stored.map((r) => r.payment_request_id));
    const retried = handedToVictim.filter((p) => !storedIds.has(p.paymentRequestId));
    retried.forEach((payment, k) => {
      const to = takingTracks[k % takingTracks.length] as string;
      appendFileSync(join(world.dir, `${to}.jsonl`), `${JSON.stringify(payment)}\n`);
    });

    // Adoption: until no unfinished lifecycle is owned by the dead worker.
    let adoptedAt = 0;
    while (Date.now() < killAt + LEASE_MS + RENEW_MS + 15_000) {
      const { rows } = await db.query<{ left: number }>(
        `SELECT count(*)::int AS left FROM "${schema}".lifecycles
          WHERE owner = $1 AND (final = false OR settled_fired = false)`,
        [victimId],
      );
      if (rows[0]?.left === 0) {
        adoptedAt = Date.now();
        break;
      }
      await sleep(20);
    }
    const adoptionMs = adoptedAt - killAt;
    console.log(
      `adoption after SIGKILL: ${adoptedAt ? adoptionMs : 'never'} ms (lease ${LEASE_MS} ms, renewal ${RENEW_MS} ms; ` +
        `${orphanIds.length} unfinished lifecycles of the dead worker, killed ${((killAt - began) / 1_000).toFixed(1)} s into the test ` +
        `after ${freezes} freeze(s) to find a moment outside a settlement; ${retried.length} tracks it never stored went to the others)`,
    );

    await arrivals;
    await allSettled(schema, PAYMENTS, 45_000, workers);
    await Promise.all(survivors.map((w) => terminate(w)));

    const rows = await lifecycleRows(schema);
    const truths = world.sim.orders();
    const calls = world.sim.calls();
    const settlementLines = readLines(settlementsPath);
    const { problems, outcomes, settledBy } = checkOutcomes(paymentIds, rows, truths, calls, settlementLines);
    const rowById = new Map(rows.map((r) => [r.payment_request_id, r]));
    for (const id of orphanIds) {
      const row = rowById.get(id);
      if (!row?.owner || !survivors.some((w) => w.id === row.owner) || Number(row.epoch) < 2)
        problems.push(
          `${id}: an orphan not adopted by a survivor (owner ${row?.owner}, epoch ${row?.epoch})`,
        );
      if (settledBy.get(id)?.includes(victimId))
        problems.push(`${id}: unfinished at the kill, yet settled by the victim`);
    }
    for (const worker of running.map((r) => r.worker)) problems.push(...fatalLines(worker));
    // A survivor that said it lost a lifecycle which nonetheless ended in its hands did not lose it to
    // anyone (a renewal that raced the lifecycle's own settlement); one that ended elsewhere was taken
    // from a live worker.
    const survivorLosses = survivors.flatMap((w) =>
      [...noticedLoss(w)].filter((id) => rowById.get(id)?.owner !== w.id).map((id) => `${w.id}:${id}`),
    );
    const spurious = survivors.reduce(
      (n, w) => n + [...noticedLoss(w)].filter((id) => rowById.get(id)?.owner === w.id).length,
      0,
    );

    console.log(
      `failover: ${PAYMENTS} payments, outcomes ${JSON.stringify(statusCounts(outcomes))}, ` +
        `settlements ${settlementLines.length} (${ids.map((id) => `${id} ${settlementLines.filter((l) => l.startsWith(`${id} `)).length}`).join(', ')}), ` +
        `inquiries ${calls.filter((c) => c.api === 'inquiryPayment').length}, cancels ${calls.filter((c) => c.api === 'cancelPayment').length}, ` +
        `lifecycles taken from a survivor: ${survivorLosses.length}, "lease lost" said of a lifecycle kept: ${spurious}; ` +
        `${running.map((r) => renewals(r.worker)).join('; ')}; ${((Date.now() - began) / 1_000).toFixed(1)} s`,
    );
    expect(problems.slice(0, 30), problems.slice(0, 30).join('\n')).toEqual([]);
    expect(outcomes).toHaveLength(PAYMENTS);
    expect(orphanIds.length, 'too few payments were unfinished at the kill').toBeGreaterThanOrEqual(25);
    expect(adoptedAt, 'the dead worker’s lifecycles were never all adopted').toBeGreaterThan(0);
    expect(adoptionMs, 'adoption took longer than lease + renewal + slack').toBeLessThanOrEqual(
      LEASE_MS + RENEW_MS + SLACK_MS,
    );
    // Live workers keep their leases: nothing was taken from a survivor.
    expect(survivorLosses).toEqual([]);
  }, 90_000);

  it('fencing: a worker paused past its lease writes nothing and sends no cancel once its lifecycles were adopted', async () => {
    const FACTOR = 10;
    const LEASE_MS = 3_000;
    /** A's cancel retry and B's tracked expiry, in simulated ms (÷ FACTOR for real ms). */
    const RETRY_MS = 30_000;
    const B_EXPIRY_MS = 60_000;
    const began = Date.now();
    const schema = schemaName('apl_scale_fencing');
    await prepareSchema(schema);
    await installWriteLog(schema);
    const world = await createWorld(FACTOR, true);
    const configs = ['P', 'Q', 'R'].map((id) => ({
      ...world.base(id, LEASE_MS, schema),
      paymentsPath: join(world.dir, `${id}.json`),
      waitForPayments: true,
      trackConcurrency: 16,
      debugRenewals: true,
    }));
    const running = await startListening(world, configs);
    const [paused, ...others] = running as [
      { worker: Worker; port: number },
      ...{ worker: Worker; port: number }[],
    ];
    const P = paused.worker;

    // P's payments never finish at Alipay+ (its inquiries answer "in process"), and a cancel of each
    // comes due while P is paused:
    // - A: one inquiry, then the cancel; the first cancel answers U (unknown) and the retry is due
    //   3 s (real) later, when P is frozen;
    // - B: one inquiry, then waiting for the notification until the expiry P tracks (6 s real from
    //   now, when P is frozen; Alipay+'s own expiry is an hour), then the last look and the cancel.
    // Q and R drive 120 payments each from the realistic mix meanwhile.
    const createdAt = world.now();
    const createdReal = preciseNow();
    const hour = createdAt + 3_600_000;
    const classA: string[] = [];
    const classB: string[] = [];
    const pShare: PgPayment[] = [];
    for (let i = 0; i < 20; i++) {
      const a = `SCALE-P-A-${i}`;
      const orderA = world.sim.createOrder({
        paymentRequestId: a,
        expiresAt: hour,
        notifyUrl: world.balancer.url,
        scenario: { label: 'never-finishes-cancel-unknown-once', decideAfterMs: null, cancelUnknownTimes: 1 },
      });
      classA.push(a);
      pShare.push({
        paymentRequestId: a,
        amount: orderA.amount,
        createdAt: orderA.createdAt,
        expiresAt: hour,
        // Exactly RETRY_MS, no jitter: P must be frozen with every A's retry still ahead of it.
        policy: { maxInquiries: 1, cancelRetryScheduleMs: [RETRY_MS], retryJitter: 'none' },
      });
      const b = `SCALE-P-B-${i}`;
      const orderB = world.sim.createOrder({
        paymentRequestId: b,
        expiresAt: hour,
        notifyUrl: world.balancer.url,
        scenario: { label: 'never-finishes', decideAfterMs: null },
      });
      classB.push(b);
      pShare.push({
        paymentRequestId: b,
        amount: orderB.amount,
        createdAt: orderB.createdAt,
        expiresAt: orderB.createdAt + B_EXPIRY_MS,
        policy: { awaitNotificationAfter: 1 },
      });
    }
    const pIds = [...classA, ...classB];
    const allIds = [...pIds];
    writeAtomically(configs[0]?.paymentsPath as string, pShare);
    others.forEach(({ worker }, k) => {
      const share: PgPayment[] = [];
      for (let i = 0; i < 120; i++) {
        const paymentRequestId = `SCALE-${worker.id}-${i}`;
        const order = world.sim.createOrder({ paymentRequestId, notifyUrl: world.balancer.url });
        allIds.push(paymentRequestId);
        share.push({
          paymentRequestId,
          amount: order.amount,
          createdAt: order.createdAt,
          expiresAt: order.expiresAt,
        });
      }
      writeAtomically(configs[k + 1]?.paymentsPath as string, share);
    });
    await P.waitFor('ready ');

    // Freeze P once every A answered its first cancel (and P has had a moment to store retryWait).
    const cancelsPath = configs[0]?.callsPath as string;
    let lastAnswer = 0;
    const firstCancelsAnswered = () => {
      const answered = new Set(
        world.sim
          .calls()
          .filter((c) => c.api === 'cancelPayment' && c.resultStatus === 'U')
          .map((c) => c.paymentRequestId),
      );
      return classA.every((id) => answered.has(id));
    };
    const waitUntil = Date.now() + 10_000;
    while (!firstCancelsAnswered() && Date.now() < waitUntil) await sleep(10);
    expect(firstCancelsAnswered(), 'P never sent its first cancels').toBe(true);
    lastAnswer = preciseNow();
    await sleep(150);
    paused.worker.child.kill('SIGSTOP');
    const stopAt = preciseNow();
    world.balancer.remove(paused.port);
    await stopped(P.pid);
    const pCancelsBefore = readLines(cancelsPath).filter((l) => l.startsWith('P '));

    // The others adopt P's lifecycles once its lease runs out.
    let adoptedAt = 0;
    while (Date.now() < stopAt + LEASE_MS + 10_000) {
      const { rows } = await db.query<{ left: number }>(
        `SELECT count(*)::int AS left FROM "${schema}".lifecycles WHERE owner = 'P' AND payment_request_id = ANY($1::text[])`,
        [pIds],
      );
      if (rows[0]?.left === 0) {
        adoptedAt = preciseNow();
        break;
      }
      await sleep(20);
    }
    expect(adoptedAt, 'P’s lifecycles were not adopted while it was paused').toBeGreaterThan(0);
    // Past every due time of P's cancels (A: 3 s after its first cancel; B: 6 s after creation).
    const dueBy = Math.max(lastAnswer + RETRY_MS / FACTOR, createdReal + B_EXPIRY_MS / FACTOR);
    await sleep(Math.max(300, dueBy + 500 - preciseNow(), stopAt + LEASE_MS + 1_000 - preciseNow()));
    const contAt = preciseNow();
    P.child.kill('SIGCONT');
    world.balancer.add(paused.port);

    // P wakes up with its cancel timers overdue: it learns it lost every lifecycle and stops them.
    let active = -1;
    const activeDeadline = Date.now() + 10_000;
    while (Date.now() < activeDeadline) {
      active = await P.active();
      if (active === 0) break;
      await sleep(200);
    }
    await allSettled(schema, allIds.length, 30_000, workers);
    await Promise.all(running.map((r) => terminate(r.worker)));

    const problems: string[] = [];
    // Cancels: P's all went out before it was frozen (its first cancels of A, nothing of B).
    const cancelLines = readLines(cancelsPath);
    const pCancels = cancelLines.filter((l) => l.startsWith('P '));
    for (const line of pCancels.slice(pCancelsBefore.length)) {
      const [, id, at] = line.split(' ');
      problems.push(`P sent a cancel of ${id} ${(Number(at) - contAt).toFixed(0)} ms after SIGCONT`);
    }
    // The arrangement: before the freeze P sent the first cancel of every A and nothing else.
    expect(
      pCancelsBefore.map((l) => l.split(' ')[1]).sort(),
      'the cancels P sent before it was frozen',
    ).toEqual([...classA].sort());
    // The adopters sent the cancels P had due: A's retry, B's first.
    const simCancels = new Map<string, number>();
    for (const c of world.sim.calls())
      if (c.api === 'cancelPayment' && c.paymentRequestId)
        simCancels.set(c.paymentRequestId, (simCancels.get(c.paymentRequestId) ?? 0) + 1);
    const logged = new Map<string, number>();
    for (const line of cancelLines) {
      const id = line.split(' ')[1] as string;
      logged.set(id, (logged.get(id) ?? 0) + 1);
    }
    for (const id of pIds) {
      const byAdopters = cancelLines.filter((l) => l.split(' ')[1] === id && !l.startsWith('P ')).length;
      if (byAdopters < 1) problems.push(`${id}: the adopter never sent the cancel P had due`);
      if ((simCancels.get(id) ?? 0) !== (logged.get(id) ?? 0))
        problems.push(
          `${id}: ${simCancels.get(id) ?? 0} cancels arrived, ${logged.get(id) ?? 0} logged by the workers`,
        );
    }

    // Writes, as PostgreSQL saw them: after the adoption of each lifecycle, nothing from P. Except
    // one kind: P is back behind the balancer after SIGCONT, and a worker that receives a verified
    // notification stores it in the inbox whoever owns the payment (the owner applies it). That
    // receipt is not lifecycle state and no side effect, so fencing does not cover it.
    const { rows: fullLog } = await db.query<WriteLogRow>(`SELECT * FROM "${schema}".write_log ORDER BY seq`);
    const received = (r: WriteLogRow) => r.tbl === 'notifications' && r.op === 'INSERT';
    const log = fullLog.filter((r) => !received(r));
    const pReceivedAfterWake = fullLog.filter((r) => r.app === 'P' && received(r) && r.at >= contAt).length;
    for (const id of pIds) {
      const mine = log.filter((r) => r.payment_request_id === id);
      const adoption = mine.find(
        (r) => r.tbl === 'lifecycles' && r.op === 'UPDATE' && r.old_owner === 'P' && r.new_owner !== 'P',
      );
      if (!adoption) {
        problems.push(`${id}: no adoption in the write log`);
        continue;
      }
      if (!['Q', 'R'].includes(adoption.app) || adoption.new_owner !== adoption.app)
        problems.push(`${id}: adopted by ${adoption.app} for ${adoption.new_owner}`);
      if (Number(adoption.new_epoch) !== Number(adoption.old_epoch) + 1)
        problems.push(`${id}: adoption without a new epoch`);
      if (adoption.at < stopAt + LEASE_MS * 0.5)
        problems.push(`${id}: adopted ${adoption.at - stopAt} ms after the freeze`);
      for (const r of mine.filter((r) => Number(r.seq) > Number(adoption.seq))) {
        if (r.app === 'P') problems.push(`${id}: P wrote ${r.tbl} ${r.op} after the adoption (seq ${r.seq})`);
        else if (
          r.tbl === 'lifecycles' &&
          r.op === 'UPDATE' &&
          Number(r.new_version) > Number(r.old_version) &&
          r.app !== r.old_owner
        )
          problems.push(`${id}: version advanced by ${r.app}, not by the owner ${r.old_owner}`);
      }
      for (const line of cancelLines.filter((l) => l.startsWith('P ') && l.split(' ')[1] === id))
        if (Number(line.split(' ')[2]) >= adoption.at)
          problems.push(`${id}: P sent a cancel after the adoption`);
    }
    // Nor anything else once it woke up (statements it sent just before the freeze may have landed
    // after it: they are counted, not failed; the adoption check above covers them).
    const pAfterWake = log.filter((r) => r.app === 'P' && r.at >= contAt);
    for (const r of pAfterWake.slice(0, 10))
      problems.push(
        `P wrote ${r.tbl} ${r.op} of ${r.payment_request_id} ${(r.at - contAt).toFixed(0)} ms after SIGCONT`,
      );
    const pInFlight = log.filter((r) => r.app === 'P' && r.at >= stopAt && r.at < contAt).length;
    const pRowsBefore = log.filter((r) => r.app === 'P' && r.at < stopAt).length;

    // P noticed: every lifecycle it held was stopped for a lost lease or a refused write.
    const noticed = noticedLoss(P);
    for (const id of pIds) if (!noticed.has(id)) problems.push(`${id}: P never said it lost it`);
    if (active !== 0) problems.push(`P still holds ${active} lifecycles after SIGCONT`);

    const rows = await lifecycleRows(schema);
    const settlementLines = readLines(configs[0]?.settlementsPath as string);
    const checked = checkOutcomes(allIds, rows, world.sim.orders(), world.sim.calls(), settlementLines);
    problems.push(...checked.problems);
    for (const id of pIds)
      if (checked.settledBy.get(id)?.includes('P')) problems.push(`${id}: settled by P, which had lost it`);
    for (const { worker } of running) problems.push(...fatalLines(worker));
    // Q and R keep theirs (a "lease lost" of a lifecycle that ended in the same hands was not lost).
    const rowOwner = new Map(rows.map((r) => [r.payment_request_id, r.owner]));
    const otherLosses = others.flatMap(({ worker }) =>
      [...noticedLoss(worker)]
        .filter((id) => rowOwner.get(id) !== worker.id)
        .map((id) => `${worker.id}:${id}`),
    );
    if (otherLosses.length > 0)
      problems.push(`Q or R lost lifecycles: ${otherLosses.slice(0, 10).join(', ')}`);

    console.log(
      `fencing: P frozen ${((contAt - stopAt) / 1_000).toFixed(2)} s (lease ${LEASE_MS} ms), its ${pIds.length} lifecycles adopted ` +
        `${(adoptedAt - stopAt).toFixed(0)} ms after the freeze; P: ${pCancelsBefore.length} cancels and ${pRowsBefore} writes before, ` +
        `${pInFlight} landing while it was frozen, 0 expected after SIGCONT (found ${pCancels.length - pCancelsBefore.length} ` +
        `and ${pAfterWake.length}; it received ${pReceivedAfterWake} notifications); P noticed ${noticed.size} losses; ` +
        `outcomes ${JSON.stringify(statusCounts(checked.outcomes))}; ${running.map((r) => renewals(r.worker)).join('; ')}; ` +
        `${((Date.now() - began) / 1_000).toFixed(1)} s`,
    );
    expect(problems.slice(0, 30), problems.slice(0, 30).join('\n')).toEqual([]);
  }, 60_000);

  it('a notification that lands on a worker that does not own the payment is applied by the owner, in another process', async () => {
    const FACTOR = 10;
    const began = Date.now();
    const schema = schemaName('apl_scale_routing');
    await prepareSchema(schema);
    await installWriteLog(schema);
    const world = await createWorld(FACTOR, false);
    // A tracks and owns the payments and has no notification endpoint; B receives every notification.
    const ownerConfig: PgWorkerConfig = {
      ...world.base('A', 3_000, schema),
      paymentsPath: join(world.dir, 'A.json'),
      waitForPayments: true,
    };
    delete ownerConfig.notifyPort;
    const owner = startWorker(ownerConfig);
    const [{ worker: receiver }] = (await startListening(world, [world.base('B', 3_000, schema)])) as [
      { worker: Worker; port: number },
    ];
    await owner.waitFor('started');

    // Inquiries keep answering "in process" for ten simulated minutes after the decision: only the
    // notification can decide. Some pay, some fail.
    const ids: string[] = [];
    const share: PgPayment[] = [];
    for (let i = 0; i < 12; i++) {
      const paymentRequestId = `SCALE-N-${i}`;
      const order = world.sim.createOrder({
        paymentRequestId,
        notifyUrl: world.balancer.url,
        expiresAt: world.now() + 1_800_000,
        scenario: {
          decideAfterMs: 1_000 + i * 200,
          decision: i % 3 === 2 ? 'failed' : 'paid',
          notify: { inquiryLagMs: 600_000 },
        },
      });
      ids.push(paymentRequestId);
      share.push({
        paymentRequestId,
        amount: order.amount,
        createdAt: order.createdAt,
        expiresAt: order.expiresAt,
      });
    }
    writeAtomically(ownerConfig.paymentsPath as string, share);
    await owner.waitFor('ready ');
    await allSettled(schema, ids.length, 20_000, workers);
    const receiverActive = await receiver.active();
    await Promise.all([terminate(owner), terminate(receiver)]);

    const problems: string[] = [];
    const rows = await lifecycleRows(schema);
    const settlementLines = readLines(ownerConfig.settlementsPath as string);
    const checked = checkOutcomes(ids, rows, world.sim.orders(), world.sim.calls(), settlementLines);
    problems.push(...checked.problems);
    const { rows: log } = await db.query<WriteLogRow>(`SELECT * FROM "${schema}".write_log ORDER BY seq`);
    const { rows: inbox } = await db.query<{ payment_request_id: string; applied: boolean }>(
      `SELECT payment_request_id, applied FROM "${schema}".notifications`,
    );
    for (const row of rows) {
      const id = row.payment_request_id;
      if (row.owner !== 'A' || Number(row.epoch) !== 1)
        problems.push(`${id}: owner ${row.owner}, epoch ${row.epoch}`);
      if (row.outcome?.decidedBy.source !== 'notification')
        problems.push(`${id}: decided by ${row.outcome?.decidedBy.source}`);
      const stored = log.filter((r) => r.payment_request_id === id && r.tbl === 'notifications');
      if (stored.length === 0 || stored.some((r) => r.app !== 'B'))
        problems.push(`${id}: notification stored by ${stored.map((r) => r.app)}`);
      const finalWrite = log.find(
        (r) => r.payment_request_id === id && r.tbl === 'lifecycles' && r.new_final === true,
      );
      if (finalWrite?.app !== 'A')
        problems.push(`${id}: the final snapshot was written by ${finalWrite?.app}`);
      if (log.some((r) => r.payment_request_id === id && r.app === 'B' && r.tbl !== 'notifications'))
        problems.push(`${id}: B wrote the lifecycle`);
      const notes = inbox.filter((n) => n.payment_request_id === id);
      if (notes.length === 0 || notes.some((n) => !n.applied))
        problems.push(`${id}: inbox ${JSON.stringify(notes)}`);
    }
    for (const line of settlementLines)
      if (!line.startsWith('A ')) problems.push(`settled by another worker: ${line}`);
    const acked = world.sim.notifications().filter((d) => d.result === 'acked').length;
    problems.push(...fatalLines(owner), ...fatalLines(receiver));
    console.log(
      `routing: ${ids.length} payments owned by A, ${acked} notifications acked by B, outcomes ${JSON.stringify(statusCounts(checked.outcomes))}, ` +
        `${((Date.now() - began) / 1_000).toFixed(1)} s`,
    );
    expect(problems).toEqual([]);
    expect(receiverActive).toBe(0);
    expect(acked).toBeGreaterThanOrEqual(ids.length);
  }, 40_000);
});
