/**
 * 100,000 payments in flight in one process, on SQLite, each polling once a minute, against the
 * simulator in a process of its own. Prints, with the machine:
 * - heap per in-flight payment once every payment is tracked (after a full GC);
 * - timer lateness (p50/p99) and the event loop's delay (p50/p99/max), counted once tracking has
 *   finished, over one polling interval;
 * - the restart: the holding process is SIGKILLed, and a new one times `engine.start()` on the same
 *   SQLite file (every lifecycle restored, re-armed and its RESUME written).
 * Ends with `targets: heap-kib H, timer-p99-ms T, restart-ms S`. Asserts nothing about time.
 * Run with `npm run bench` (compiled), or alone: npx tsc -p tsconfig.bench.json && node
 * scripts/copy-assets.mjs .bench-build && node .bench-build/bench/scale-100k.js. BENCH_100K_PAYMENTS
 * and BENCH_100K_INTERVAL_MS change the sizes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import {
  createAlipayPlusClient,
  createPaymentEngine,
  type EngineClock,
  sqliteStore,
  systemClock,
} from '../src/index.js';
import { latenessClock, machineLine, percentile, scriptArgs, trackInBatches } from './machine.js';

const PAYMENTS = Number(process.env.BENCH_100K_PAYMENTS ?? 100_000);
const INTERVAL_MS = Number(process.env.BENCH_100K_INTERVAL_MS ?? 60_000);
const CLIENT_ID = 'BENCH_CLIENT';

const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};

interface Child {
  child: ChildProcess;
  next(): Promise<string>;
}

function run(args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout as NonNullable<typeof child.stdout> }).on('line', (line) => {
    const resolve = waiting.shift();
    if (resolve) resolve(line);
    else lines.push(line);
  });
  child.once('close', () => {
    for (const resolve of waiting.splice(0)) resolve('{"exited":true}');
  });
  return {
    child,
    next: () => {
      const line = lines.shift();
      return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

/** A child's engine: the SQLite file, the simulator, this process's keys. */
function engineFor(dbPath: string, clock: EngineClock) {
  const client = createAlipayPlusClient({
    baseUrl: process.env.SIM_URL as string,
    clientId: CLIENT_ID,
    privateKey: process.env.ACQP_PRIVATE_KEY as string,
    alipayPublicKey: process.env.SIM_PUBLIC_KEY as string,
    connections: 64,
  });
  const engine = createPaymentEngine({
    client,
    store: sqliteStore(dbPath),
    clock,
    policy: { inquiryScheduleMs: [INTERVAL_MS], maxInquiries: 100_000 },
  });
  return { client, engine };
}

/** The holder: tracks every payment, reports heap and lateness, then waits to be killed. */
async function hold(dbPath: string): Promise<void> {
  const lateness: number[] = [];
  // Counted: timers due once tracking has finished, until one interval later.
  let from = Number.POSITIVE_INFINITY;
  let until = Number.POSITIVE_INFINITY;
  const clock = latenessClock(systemClock, (late, due) => {
    if (due >= from && due < until) lateness.push(late);
  });
  const { engine } = engineFor(dbPath, clock);
  await engine.start();
  const before = heap();
  const now = Date.now();
  const trackStart = performance.now();
  // Payments arrive spread over one polling interval, as they do in a service.
  await trackInBatches(engine, PAYMENTS, (i) => ({
    paymentRequestId: `P100K-${i}`,
    createdAt: now - Math.floor((i / PAYMENTS) * INTERVAL_MS),
    paymentExpiryTime: now + 24 * 3_600_000,
  }));
  const trackMs = performance.now() - trackStart;
  const perPayment = (heap() - before) / PAYMENTS;
  // The histogram's samples include its 1 ms sampling interval.
  const delay = monitorEventLoopDelay({ resolution: 1 });
  from = performance.now();
  until = from + INTERVAL_MS;
  delay.enable();
  // BENCH_TRACE_LATE=1: on stderr, each GC pause and each stall of the loop over 50 ms, with when.
  const trace = process.env.BENCH_TRACE_LATE === '1';
  const gcs = new PerformanceObserver((list) => {
    for (const gc of list.getEntries())
      if (gc.duration > 50)
        process.stderr.write(
          `gc ${gc.duration.toFixed(0)} ms at ${gc.startTime.toFixed(0)} (${JSON.stringify((gc as { detail?: unknown }).detail)})\n`,
        );
  });
  let tick = performance.now();
  const stalls = setInterval(() => {
    const now = performance.now();
    if (now - tick > 70)
      process.stderr.write(`stall ${(now - tick - 20).toFixed(0)} ms before ${now.toFixed(0)}\n`);
    tick = now;
  }, 20);
  if (trace) gcs.observe({ entryTypes: ['gc'] });
  else clearInterval(stalls);
  // BENCH_PROFILE=dir: a CPU profile of this window too (hold.cpuprofile).
  const profiler = process.env.BENCH_PROFILE ? new Session() : undefined;
  profiler?.connect();
  await profiler?.post('Profiler.enable');
  await profiler?.post('Profiler.start');
  await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS + 1_000));
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(join(process.env.BENCH_PROFILE as string, 'hold.cpuprofile'), JSON.stringify(profile));
    profiler.disconnect();
  }
  gcs.disconnect();
  clearInterval(stalls);
  delay.disable();
  const ms = (ns: number) => ns / 1e6;
  process.stdout.write(
    `${JSON.stringify({
      trackMs,
      heapKib: perPayment / 1024,
      timers: lateness.length,
      lateP50: percentile(lateness, 50),
      lateP99: percentile(lateness, 99),
      loopP50: ms(delay.percentile(50)),
      loopP99: ms(delay.percentile(99)),
      loopMax: ms(delay.max),
    })}\n`,
  );
  await new Promise(() => undefined); // killed here
}

/** The restart: times engine.start() on what the killed holder left. */
async function restart(dbPath: string): Promise<void> {
  // What the kill left: a large WAL is read into the WAL index before the first query.
  const size = (path: string) => (existsSync(path) ? statSync(path).size / 2 ** 20 : 0);
  const walMb = size(`${dbPath}-wal`);
  const dbMb = size(dbPath);
  const { engine, client } = engineFor(dbPath, systemClock);
  const start = performance.now();
  await engine.start();
  const startMs = performance.now() - start;
  process.stdout.write(
    `${JSON.stringify({ startMs, active: engine.activeCount, sleeping: engine.sleepingCount, walMb, dbMb })}\n`,
  );
  await engine.stop();
  await client.close();
  process.exit(0);
}

export async function runScale100kBench(): Promise<void> {
  console.log('## 100,000 in flight (bench/scale-100k.ts)');
  console.log(machineLine());
  const acqp = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const acqpPrivatePem = acqp.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const acqpPublicPem = acqp.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const sim = run(scriptArgs('./simulator-process.ts', import.meta.url), {
    SIM_CLIENT_ID: CLIENT_ID,
    SIM_ACQP_PUBLIC_KEY: acqpPublicPem,
  });
  const { url, publicKey } = JSON.parse(await sim.next()) as { url: string; publicKey: string };
  const dir = mkdtempSync(join(tmpdir(), 'apl-100k-'));
  const self = scriptArgs('./scale-100k.ts', import.meta.url);
  const env = {
    SIM_URL: url,
    SIM_PUBLIC_KEY: publicKey,
    ACQP_PRIVATE_KEY: acqpPrivatePem,
    BENCH_100K_DB: join(dir, 'lifecycles.db'),
  };
  try {
    const holder = run(['--expose-gc', ...self], { ...env, BENCH_100K_ROLE: 'hold' });
    const held = JSON.parse(await holder.next()) as Record<string, number>;
    holder.child.kill('SIGKILL');
    await new Promise((resolve) => holder.child.once('close', resolve));
    // BENCH_PROFILE=dir writes a CPU profile of the restart.
    const profile = process.env.BENCH_PROFILE
      ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE]
      : [];
    const restarted = run([...profile, ...self], { ...env, BENCH_100K_ROLE: 'restart' });
    const again = JSON.parse(await restarted.next()) as {
      startMs: number;
      active: number;
      sleeping: number;
      walMb: number;
      dbMb: number;
    };
    await new Promise((resolve) => restarted.child.once('close', resolve));
    const f = (n: number | undefined, digits = 1) => (n ?? Number.NaN).toFixed(digits);
    console.log(
      `payments in flight: ${PAYMENTS}, polling every ${INTERVAL_MS / 1000} s, SQLite (WAL, writer thread), simulator in its own process`,
    );
    console.log(
      `tracking took ${f((held.trackMs ?? 0) / 1000)} s; heap per in-flight payment ${f(held.heapKib, 2)} KiB`,
    );
    console.log(
      `after tracking, over ${INTERVAL_MS / 1000} s: timer lateness p50 ${f(held.lateP50)} ms, p99 ${f(held.lateP99)} ms over ${held.timers} timers; event-loop delay p50 ${f(held.loopP50)} ms, p99 ${f(held.loopP99)} ms, max ${f(held.loopMax)} ms`,
    );
    console.log(
      `restart after SIGKILL: engine.start() took ${f(again.startMs / 1000, 2)} s for ${again.active} lifecycles (${again.sleeping} put to sleep without an actor; database ${f(again.dbMb)} MB, WAL left by the kill ${f(again.walMb)} MB)`,
    );
    console.log(
      `targets: heap-kib ${f(held.heapKib, 2)}, timer-p99-ms ${f(held.lateP99)}, restart-ms ${again.startMs.toFixed(0)}`,
    );
  } finally {
    sim.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

const role = process.env.BENCH_100K_ROLE;
const db = process.env.BENCH_100K_DB as string;
if (role === 'hold') await hold(db);
else if (role === 'restart') await restart(db);
else if (import.meta.url === `file://${process.argv[1]}`) await runScale100kBench();
