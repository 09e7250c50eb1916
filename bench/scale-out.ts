/**
 * Scale-out over PostgreSQL: engine worker processes (test/fixtures/pg-worker.ts) sharing one schema,
 * against the simulator in a process of its own (signature cache on). Prints, with the machine:
 * - persisted transitions per second (audit_log rows inserted per second, over a window) with 1 and
 *   with 2 worker processes driving the same payments (every payment polls every 200 ms; the
 *   simulator does not know them, so every inquiry answers ORDER_NOT_EXIST and the lifecycle goes on);
 * - the adoption time for 10,000 lifecycles: one worker tracks them, a second one idles, the first is
 *   SIGKILLed; the time until the second owns all of them (PostgreSQL) and holds all of them in memory;
 *   and the same for a drain (SIGTERM: the leases are given back) to a third worker.
 * Asserts nothing about time. Run: npx tsx bench/scale-out.ts (PostgreSQL at ALIPAYPLUS_TEST_PG, or
 * postgres://postgres@127.0.0.1:5432/test). BENCH_SCALE_PAYMENTS, BENCH_SCALE_ADOPT and
 * BENCH_SCALE_LEASE_MS change the sizes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { postgresStore } from '../src/postgres.js';
import type { PgPayment, PgWorkerConfig } from '../test/fixtures/pg-worker.js';
import { machineLine, median, scriptArgs } from './machine.js';

// A server URL: the tests' `embedded` choice starts a server for a test run only, not for a bench.
const PG_URL = process.env.ALIPAYPLUS_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
if (!/^postgres(ql)?:\/\//.test(PG_URL))
  throw new Error(`ALIPAYPLUS_TEST_PG must be a postgres:// URL for the bench (got ${PG_URL})`);
const PAYMENTS = Number(process.env.BENCH_SCALE_PAYMENTS ?? 4_000);
const ADOPT = Number(process.env.BENCH_SCALE_ADOPT ?? 10_000);
const LEASE_MS = Number(process.env.BENCH_SCALE_LEASE_MS ?? 5_000);
const WINDOW_S = 10;
/** The first inquiry of the throughput payments waits this long: tracking them all comes first. */
const FIRST_POLL_MS = 15_000;
const CLIENT_ID = 'BENCH_CLIENT';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const workerArgs = scriptArgs('../test/fixtures/pg-worker.ts', import.meta.url);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Proc {
  child: ChildProcess;
  lines: string[];
  stderr: string[];
  exited: Promise<unknown>;
  waitFor(prefix: string, from?: number): Promise<string>;
}

function start(args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  const listeners = new Set<() => void>();
  let running = true;
  const exited = new Promise((resolve) =>
    child.once('close', (code, signal) => {
      running = false;
      for (const listener of listeners) listener();
      resolve({ code, signal });
    }),
  );
  if (child.stdout)
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      for (const listener of listeners) listener();
    });
  if (child.stderr) createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line));
  return {
    child,
    lines,
    stderr,
    exited,
    waitFor(prefix, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = lines.slice(from).find((l) => l.startsWith(prefix));
          if (line !== undefined) {
            listeners.delete(check);
            resolve(line);
          } else if (!running) {
            listeners.delete(check);
            reject(new Error(`exited before "${prefix}": ${stderr.slice(-10).join('\n')}`));
          }
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (100/s)
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds used so far by every PostgreSQL server process (Linux; NaN elsewhere). */
function postgresCpuSeconds(): number {
  try {
    let total = 0;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') total += cpuSeconds(Number(pid));
      } catch {
        // gone meanwhile
      }
    }
    return total;
  } catch {
    return Number.NaN;
  }
}

/** The whole machine's busy and total jiffies so far (/proc/stat), for its utilisation over a window. */
function machineJiffies(): { busy: number; total: number } {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

/** What the workers said about lost leases, refused writes and failures, counted by kind. */
function incidents(procs: Proc[]): string {
  const counts = new Map<string, number>();
  for (const proc of procs)
    for (const line of proc.stderr) {
      const kind = line.startsWith('error ') ? line.slice(0, 60) : (line.split(' ')[0] ?? '');
      if (kind === 'renew' || kind === 'adopt') continue;
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
  return counts.size === 0 ? 'none' : [...counts].map(([k, n]) => `${k} ×${n}`).join(', ');
}

async function activeCount(worker: Proc): Promise<number> {
  const from = worker.lines.length;
  worker.child.kill('SIGUSR2');
  return Number((await worker.waitFor('active ', from)).split(' ')[1]);
}

async function stopWorker(worker: Proc): Promise<void> {
  worker.child.kill('SIGTERM');
  await Promise.race([worker.exited, sleep(20_000).then(() => worker.child.kill('SIGKILL'))]);
}

async function freshSchema(db: pg.Pool, name: string): Promise<string> {
  const schema = `${name}_${process.pid}`;
  await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  const store = postgresStore({ connectionString: PG_URL, schema, workerId: 'bench-migrator' });
  await store.open();
  await store.close();
  await db.query(`DELETE FROM "${schema}".workers`);
  return schema;
}

export async function runScaleOutBench(): Promise<void> {
  console.log('## scale-out over PostgreSQL (bench/scale-out.ts)');
  console.log(machineLine());
  const acqp = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const acqpPublicPem = acqp.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const acqpPrivatePem = acqp.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const simulator = start(scriptArgs('./simulator-process.ts', import.meta.url), {
    SIM_CLIENT_ID: CLIENT_ID,
    SIM_ACQP_PUBLIC_KEY: acqpPublicPem,
  });
  const sim = JSON.parse(await simulator.waitFor('{')) as { url: string; publicKey: string };
  const db = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'apl-bench-scale-'));
  const workers: Proc[] = [];
  const base = (schema: string, workerId: string): PgWorkerConfig => ({
    pgUrl: PG_URL,
    schema,
    workerId,
    leaseMs: LEASE_MS,
    simulatorUrl: sim.url,
    alipayPublicKeyPem: sim.publicKey,
    privateKeyPem: acqpPrivatePem,
    clientId: CLIENT_ID,
    connections: 64,
    trackConcurrency: 64,
  });
  const worker = (config: PgWorkerConfig) => {
    const proc = start(workerArgs, { PG_WORKER_CONFIG: JSON.stringify(config) });
    workers.push(proc);
    return proc;
  };
  const payments = (prefix: string, count: number, pollMs: number): PgPayment[] => {
    const now = Date.now();
    return Array.from({ length: count }, (_, i) => ({
      paymentRequestId: `${prefix}-${i}`,
      // Spread over one polling interval, as payments arrive in a service: no thundering herd.
      createdAt: now - Math.floor((i / count) * pollMs),
      expiresAt: now + 3_600_000,
    }));
  };

  try {
    // ---- persisted transitions per second, 1 and 2 workers ------------------------------------------
    const rates: {
      workers: number;
      transitions: number;
      writes: number;
      median: number;
      cpu: string;
      incidents: string;
    }[] = [];
    for (const count of [1, 2]) {
      const schema = await freshSchema(db, `bench_scale_tps${count}`);
      const all = payments(`TPS${count}`, PAYMENTS, 200);
      // The first inquiry waits until every payment is tracked (tracking alone would otherwise race
      // the polling of the first ones), then every payment polls every 200 ms.
      const pollFrom = Date.now() + FIRST_POLL_MS;
      const procs = Array.from({ length: count }, (_, w) => {
        const path = join(dir, `tps-${count}-${w}.json`);
        writeFileSync(path, JSON.stringify(all.filter((_, i) => i % count === w)));
        return worker({
          ...base(schema, `tps${count}-w${w}`),
          paymentsPath: path,
          policy: { inquiryScheduleMs: [FIRST_POLL_MS, 200], maxInquiries: 1_000_000 },
        });
      });
      await Promise.all(procs.map((p) => p.waitFor('ready ')));
      const tracked = Date.now();
      await sleep(Math.max(0, pollFrom + 3_000 - Date.now())); // every payment in its rhythm
      if (tracked > pollFrom) console.log(`note: tracking took longer than ${FIRST_POLL_MS} ms`);
      const sample = async () => {
        const { rows } = await db.query<{ audit: string; versions: string }>(
          `SELECT (SELECT count(*) FROM "${schema}".audit_log) AS audit,
                  (SELECT coalesce(sum(version), 0) FROM "${schema}".lifecycles) AS versions`,
        );
        return { audit: Number(rows[0]?.audit), versions: Number(rows[0]?.versions), at: performance.now() };
      };
      const cpuBefore = [...procs, simulator].map((p) => cpuSeconds(p.child.pid));
      const pgBefore = postgresCpuSeconds();
      const machineBefore = machineJiffies();
      const first = await sample();
      const perSecond: number[] = [];
      let last = first;
      for (let s = 0; s < WINDOW_S; s++) {
        await sleep(1_000);
        const next = await sample();
        perSecond.push(((next.audit - last.audit) * 1_000) / (next.at - last.at));
        last = next;
      }
      const seconds = (last.at - first.at) / 1_000;
      const cpu = [...procs, simulator].map(
        (p, i) => (cpuSeconds(p.child.pid) - (cpuBefore[i] ?? 0)) / seconds,
      );
      const pgCpu = (postgresCpuSeconds() - pgBefore) / seconds;
      const machineAfter = machineJiffies();
      const busy = (machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total);
      const share = (c: number) => `${(c * 100).toFixed(0)}%`;
      rates.push({
        cpu:
          `${cpu.slice(0, -1).map(share).join(' + ')} of a core for the worker(s), ${share(cpu.at(-1) ?? 0)} ` +
          `for the simulator, ${share(pgCpu)} for PostgreSQL; the machine ${share(busy)} busy`,
        workers: count,
        transitions: (last.audit - first.audit) / seconds,
        writes: (last.versions - first.versions) / seconds,
        median: median(perSecond),
        incidents: '',
      });
      await Promise.all(procs.map((p) => stopWorker(p)));
      rates[rates.length - 1] = { ...(rates.at(-1) as (typeof rates)[number]), incidents: incidents(procs) };
      await db.query(`DROP SCHEMA "${schema}" CASCADE`);
    }
    console.log(
      `payments: ${PAYMENTS}, each polling every 200 ms (ORDER_NOT_EXIST answers), split over the workers; lease ${LEASE_MS} ms; ` +
        `window ${WINDOW_S} s, 3 s after the polling began`,
    );
    for (const r of rates)
      console.log(
        `${r.workers} worker process${r.workers > 1 ? 'es' : ''}: ${r.transitions.toFixed(0)} persisted transitions/s ` +
          `(median second ${r.median.toFixed(0)}), ${r.writes.toFixed(0)} lifecycle snapshot writes/s; CPU ${r.cpu}; ` +
          `worker incidents: ${r.incidents}`,
      );
    const [one, two] = rates;
    if (one && two) console.log(`2 workers / 1 worker: ${(two.transitions / one.transitions).toFixed(2)}×`);

    // ---- adoption of 10,000 lifecycles ----------------------------------------------------------------
    const schema = await freshSchema(db, 'bench_scale_adopt');
    const path = join(dir, 'adopt.json');
    writeFileSync(path, JSON.stringify(payments('ADOPT', ADOPT, 1_000)));
    // They sit between inquiries (the next one is 10 minutes away): adoption alone is measured.
    const quiet = { inquiryScheduleMs: [600_000], maxInquiries: 1_000_000 };
    const owner = worker({ ...base(schema, 'adopt-owner'), paymentsPath: path, policy: quiet });
    const trackStart = performance.now();
    await owner.waitFor('ready ');
    const trackSeconds = (performance.now() - trackStart) / 1_000;
    const heir = worker({ ...base(schema, 'adopt-heir'), policy: quiet });
    await heir.waitFor('ready ');
    await sleep(LEASE_MS / 3 + 500); // the heir's heartbeat is live: it counts among the workers
    const owned = async (id: string) => {
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${schema}".lifecycles WHERE owner = $1`,
        [id],
      );
      return rows[0]?.n ?? 0;
    };
    const measure = async (from: string, to: Proc, toId: string, cause: () => void) => {
      const begin = performance.now();
      cause();
      let inTable = 0;
      let inMemory = 0;
      let firstAdopted = 0;
      while ((!inTable || !inMemory) && performance.now() - begin < 300_000) {
        if (!inTable) {
          const [left, taken] = [await owned(from), await owned(toId)];
          if (taken > 0 && !firstAdopted) firstAdopted = performance.now() - begin;
          if (left === 0 && taken === ADOPT) inTable = performance.now() - begin;
        }
        if (!inMemory && (await activeCount(to)) >= ADOPT) inMemory = performance.now() - begin;
        await sleep(50);
      }
      return { firstAdopted, inTable, inMemory };
    };
    const killed = await measure('adopt-owner', heir, 'adopt-heir', () => owner.child.kill('SIGKILL'));
    console.log(
      `adoption of ${ADOPT} lifecycles after SIGKILL (lease ${LEASE_MS} ms, renewal every ${Math.floor(LEASE_MS / 3)} ms, ` +
        `adoptBatch the store default (10,000), one survivor): first adopted after ${killed.firstAdopted.toFixed(0)} ms, all owned by the survivor ` +
        `after ${killed.inTable.toFixed(0)} ms, all resumed in its memory after ${killed.inMemory.toFixed(0)} ms ` +
        `(tracking them took ${trackSeconds.toFixed(1)} s, ${(ADOPT / trackSeconds).toFixed(0)} tracks/s in one worker)`,
    );
    const next = worker({ ...base(schema, 'adopt-next'), policy: quiet });
    await next.waitFor('ready ');
    await sleep(LEASE_MS / 3 + 500);
    const drainBegan = performance.now();
    // The worker prints `stopped` once engine.stop() has returned (its leases given back).
    const stoppedAt = heir.waitFor('stopped').then(() => performance.now());
    const drained = await measure('adopt-heir', next, 'adopt-next', () => heir.child.kill('SIGTERM'));
    const afterStop = drainBegan + drained.inMemory - (await stoppedAt);
    console.log(
      `adoption of ${ADOPT} lifecycles after a drain (SIGTERM: engine.stop() gives the leases back): first adopted after ` +
        `${drained.firstAdopted.toFixed(0)} ms, all owned after ${drained.inTable.toFixed(0)} ms, all resumed after ${drained.inMemory.toFixed(0)} ms ` +
        `(${afterStop.toFixed(0)} ms after its engine.stop() returned)`,
    );
    await stopWorker(next);
    console.log(`adoption incidents: ${incidents([owner, heir, next])}`);
    // The lease of the killed worker ends at most LEASE_MS after the kill (its last renewal came
    // before it): what it takes past that. The drain is counted from when its engine.stop() returned.
    console.log(
      `targets: adoption-after-lease-ms ${(killed.inMemory - LEASE_MS).toFixed(0)}, adoption-after-drain-ms ${afterStop.toFixed(0)}`,
    );
    await db.query(`DROP SCHEMA "${schema}" CASCADE`);
  } finally {
    for (const proc of workers) proc.child.kill('SIGKILL');
    simulator.child.kill('SIGTERM');
    await db.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runScaleOutBench();
