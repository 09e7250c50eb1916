/**
 * The engine under load, against the simulator in another process. Prints, with the machine:
 * - the raw bound: a loop of one RSA-2048 sign + one verify in this process (the physical limit of a
 *   signing client), and signed inquiries per second through the engine, as a ratio of it;
 * - heap per in-flight payment at 10,000 concurrent payments;
 * - timer lateness (p50/p99) at 10,000 concurrent payments.
 * Asserts nothing about time. Run with `npm run bench` (compiled), or for a quick look:
 * node --expose-gc --import tsx bench/engine.ts (tsx's per-function names inflate heap and CPU).
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import {
  createAlipayPlusClient,
  createPaymentEngine,
  type EngineClock,
  type LifecycleStore,
  memoryStore,
  sqliteStore,
  systemClock,
} from '../src/index.js';
import { latenessClock, machineLine, median, percentile, scriptArgs, trackInBatches } from './machine.js';

const PAYMENTS = Number(process.env.BENCH_PAYMENTS ?? 10_000);
const CLIENT_ID = 'BENCH_CLIENT';
const TRACE_LATE = process.env.BENCH_TRACE_LATE === '1';

const acqp = generateKeyPairSync('rsa', { modulusLength: 2048 });
const acqpPublicPem = acqp.publicKey.export({ type: 'spki', format: 'pem' }).toString();

async function startSimulator() {
  const child = spawn(process.execPath, scriptArgs('./simulator-process.ts', import.meta.url), {
    env: { ...process.env, SIM_CLIENT_ID: CLIENT_ID, SIM_ACQP_PUBLIC_KEY: acqpPublicPem },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout }).once('line', resolve),
  );
  return { child, ...(JSON.parse(line) as { url: string; publicKey: string }) };
}

function rawBound(seconds: number): number {
  const content = Buffer.from(
    `POST /aps/api/v1/payments/inquiryPayment\n${CLIENT_ID}.2026-01-01T00:00:00Z.{"paymentRequestId":"b"}`,
  );
  const signature = sign('sha256', content, acqp.privateKey);
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < seconds * 1000) {
    sign('sha256', content, acqp.privateKey);
    verify('sha256', content, acqp.publicKey, signature);
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

/** Records how late each wait ends (see latenessClock); BENCH_TRACE_LATE=1 prints the ones over 50 ms. */
function lateClock(base: EngineClock, lateness: number[]): EngineClock {
  return latenessClock(base, (late, due) => {
    lateness.push(late);
    if (TRACE_LATE && late > 50) console.log(`late ${late.toFixed(0)} ms, due at ${due.toFixed(0)}`);
  });
}

const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};

/** The signed client both the engine phases and the client-alone phase use. */
function benchClient(sim: { url: string; publicKey: string }) {
  return createAlipayPlusClient({
    baseUrl: sim.url,
    clientId: CLIENT_ID,
    privateKey: acqp.privateKey,
    alipayPublicKey: sim.publicKey,
    connections: 64,
  });
}

/** Self time of a CPU profile by part: GC, idle, each npm package, node internals, this project. */
function profileShares(profile: {
  nodes: { id: number; callFrame: { functionName: string; url: string } }[];
  samples?: number[];
  timeDeltas?: number[];
}): string {
  const partOf = new Map<number, string>();
  for (const { id, callFrame } of profile.nodes) {
    const { url, functionName } = callFrame;
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
    partOf.set(
      id,
      pkg ??
        (url.startsWith('node:')
          ? 'node internals'
          : url
            ? 'this project'
            : functionName === '(garbage collector)' || functionName === '(idle)'
              ? functionName
              : 'native'),
    );
  }
  const time = new Map<string, number>();
  let total = 0;
  (profile.samples ?? []).forEach((id, i) => {
    const dt = profile.timeDeltas?.[i] ?? 0;
    const part = partOf.get(id) ?? 'native';
    time.set(part, (time.get(part) ?? 0) + dt);
    total += dt;
  });
  return [...time]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([part, t]) => `${part} ${((100 * t) / total).toFixed(0)}%`)
    .join(', ');
}

async function phase(
  name: string,
  sim: { url: string; publicKey: string },
  policy: { inquiryScheduleMs: number[] },
  seconds: number,
  store: LifecycleStore,
) {
  const client = benchClient(sim);
  const lateness: number[] = [];
  let inquiries = 0;
  const noResults = new Map<string, number>();
  const counting = {
    inquiryPayment: async (...args: Parameters<typeof client.inquiryPayment>) => {
      const outcome = await client.inquiryPayment(...args);
      if (outcome.kind === 'answer') inquiries++;
      else noResults.set(outcome.reason, (noResults.get(outcome.reason) ?? 0) + 1);
      return outcome;
    },
    cancelPayment: client.cancelPayment,
  };
  const engine = createPaymentEngine({
    client: counting,
    store,
    clock: lateClock(systemClock, lateness),
    policy: { ...policy, maxInquiries: 100_000 },
    // BENCH_SLEEP_AFTER_MS=Infinity keeps every actor: the same run without sleeping lifecycles.
    sleepAfterMs: Number(process.env.BENCH_SLEEP_AFTER_MS ?? 5_000),
  });
  await engine.start();
  const before = heap();
  const now = Date.now();
  const interval = policy.inquiryScheduleMs[0] ?? 1_000;
  const trackStart = performance.now();
  // Payments arrive spread over one polling interval, as they do in a service: no thundering herd.
  await trackInBatches(engine, PAYMENTS, (i) => ({
    paymentRequestId: `${name}-${i}`,
    createdAt: now - Math.floor((i / PAYMENTS) * interval),
    paymentExpiryTime: now + 3_600_000,
  }));
  const trackSeconds = (performance.now() - trackStart) / 1000;
  const afterTrack = heap();
  // One whole interval first, so that every payment is in its steady rhythm; then measure.
  await new Promise((resolve) => setTimeout(resolve, Math.max(2_000, interval)));
  lateness.length = 0;
  // The event loop's own delay beside the timers' (its samples include the 1 ms sampling interval).
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const startCount = inquiries;
  const start = performance.now();
  const windows: number[] = [];
  let last = inquiries;
  const elu0 = performance.eventLoopUtilization();
  // BENCH_PROFILE=dir writes a CPU profile of the measured window (open it in Chrome DevTools).
  const profiler = process.env.BENCH_PROFILE ? new Session() : undefined;
  profiler?.connect();
  await profiler?.post('Profiler.enable');
  await profiler?.post('Profiler.start');
  for (let s = 0; s < seconds; s++) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    windows.push(inquiries - last);
    last = inquiries;
  }
  const rate = (inquiries - startCount) / ((performance.now() - start) / 1000);
  const busy = performance.eventLoopUtilization(elu0).utilization;
  loopDelay.disable();
  // The window's timers only: the forced GC of heap() below and stop() would make hundreds of timers
  // late by their own pause, and those used to be counted here.
  const windowLateness = lateness.splice(0);
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(join(process.env.BENCH_PROFILE as string, `${name}.cpuprofile`), JSON.stringify(profile));
    profiler.disconnect();
    console.log(`${name}: main-thread self time by part (CPU profile): ${profileShares(profile)}`);
  }
  if (noResults.size > 0)
    console.log(`${name}: no-result answers ${JSON.stringify(Object.fromEntries(noResults))}`);
  const inFlightHeap = heap();
  await engine.stop();
  await client.close();
  return {
    rate,
    trackSeconds,
    busy,
    mainMicrosPerInquiry: (busy * 1e6) / rate,
    medianPerSecond: median(windows),
    heapPerPayment: (afterTrack - before) / PAYMENTS,
    heapPerPaymentRunning: (inFlightHeap - before) / PAYMENTS,
    lateP50: percentile(windowLateness, 50),
    lateP99: percentile(windowLateness, 99),
    timers: windowLateness.length,
    loopP50: loopDelay.percentile(50) / 1e6,
    loopP99: loopDelay.percentile(99) / 1e6,
    loopMax: loopDelay.max / 1e6,
  };
}

/**
 * The client alone, no engine: 256 calls in flight (the engine's `maxConcurrentCalls`) against the
 * same simulator. What the engine costs is the distance between this and the saturated phase.
 */
async function clientOnly(sim: { url: string; publicKey: string }, seconds: number) {
  const client = benchClient(sim);
  let answers = 0;
  let running = true;
  const loop = async (lane: number) => {
    for (let i = 0; running; i++) {
      const outcome = await client.inquiryPayment({ paymentRequestId: `bare-${lane}-${i % 40}` });
      if (outcome.kind === 'answer') answers++;
    }
  };
  const elu0 = performance.eventLoopUtilization();
  const start = performance.now();
  const lanes = Array.from({ length: 256 }, (_, lane) => loop(lane));
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const rate = answers / ((performance.now() - start) / 1000);
  const busy = performance.eventLoopUtilization(elu0).utilization;
  running = false;
  await Promise.all(lanes);
  await client.close();
  return { rate, busy, mainMicrosPerInquiry: (busy * 1e6) / rate };
}

export async function runEngineBench(): Promise<void> {
  console.log('## engine (bench/engine.ts)');
  console.log(machineLine());
  if (!gc) console.log('note: run with --expose-gc for exact heap figures');
  const sim = await startSimulator();
  const dir = mkdtempSync(join(tmpdir(), 'apl-bench-'));
  try {
    const bound = rawBound(3);
    const sync = (process.env.BENCH_SYNC ?? 'FULL') as 'FULL' | 'NORMAL';
    const writer = process.env.BENCH_WRITER !== '0';
    const makeStore = (file: string) =>
      process.env.BENCH_STORE === 'memory'
        ? memoryStore()
        : sqliteStore(join(dir, file), { synchronous: sync, writerThread: writer });
    const steady = await phase('steady', sim, { inquiryScheduleMs: [10_000] }, 10, makeStore('steady.db'));
    const saturated = await phase('saturated', sim, { inquiryScheduleMs: [200] }, 10, makeStore('sat.db'));
    const bare = await clientOnly(sim, 10);
    const boundAfter = rawBound(3);
    const rawMedian = median([bound, boundAfter]);
    console.log(
      `payments in flight: ${PAYMENTS}, sleepAfterMs ${process.env.BENCH_SLEEP_AFTER_MS ?? 5_000}, store: ${process.env.BENCH_STORE === 'memory' ? 'memory' : `SQLite (WAL, synchronous=${sync}, writes on ${writer ? 'a writer thread' : 'the main thread'})`}, simulator in its own process, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`,
    );
    console.log(
      `raw bound (sign+verify loop, this process): ${rawMedian.toFixed(0)}/s (before ${bound.toFixed(0)}, after ${boundAfter.toFixed(0)})`,
    );
    console.log(
      `saturated: signed inquiries through the engine ${saturated.rate.toFixed(0)}/s (median second ${saturated.medianPerSecond}), ratio to raw bound ${(saturated.rate / rawMedian).toFixed(2)}; main thread busy ${(saturated.busy * 100).toFixed(0)}%, ${saturated.mainMicrosPerInquiry.toFixed(0)} µs per inquiry`,
    );
    console.log(
      `client alone (no engine, 256 in flight): ${bare.rate.toFixed(0)}/s, ratio to raw bound ${(bare.rate / rawMedian).toFixed(2)}; main thread busy ${(bare.busy * 100).toFixed(0)}%, ${bare.mainMicrosPerInquiry.toFixed(0)} µs per inquiry`,
    );
    console.log(
      `steady (1 inquiry / 10 s each): ${steady.rate.toFixed(0)} inquiries/s; timer lateness p50 ${steady.lateP50.toFixed(1)} ms, p99 ${steady.lateP99.toFixed(1)} ms over ${steady.timers} timers; event-loop delay p50 ${steady.loopP50.toFixed(1)} ms, p99 ${steady.loopP99.toFixed(1)} ms, max ${steady.loopMax.toFixed(1)} ms`,
    );
    console.log(
      `heap per in-flight payment: ${(steady.heapPerPayment / 1024).toFixed(2)} KiB just after tracking (polling under way, calls queued), ${(steady.heapPerPaymentRunning / 1024).toFixed(2)} KiB after 20 s of steady polling; tracking ${PAYMENTS} took ${steady.trackSeconds.toFixed(1)} s (steady), ${saturated.trackSeconds.toFixed(1)} s (saturated)`,
    );
    console.log(
      `saturated timer lateness: p50 ${saturated.lateP50.toFixed(1)} ms, p99 ${saturated.lateP99.toFixed(1)} ms; event-loop delay p50 ${saturated.loopP50.toFixed(1)} ms, p99 ${saturated.loopP99.toFixed(1)} ms, max ${saturated.loopMax.toFixed(1)} ms`,
    );
    // The peak: the largest of the four heap samples (each taken after a full GC), the saturated
    // phase's included, where the most calls are in flight and queued.
    const samples = [
      steady.heapPerPayment,
      steady.heapPerPaymentRunning,
      saturated.heapPerPayment,
      saturated.heapPerPaymentRunning,
    ];
    const kib = (bytes: number) => `${(bytes / 1024).toFixed(2)} KiB`;
    console.log(
      `heap per in-flight payment, saturated: ${kib(saturated.heapPerPayment)} just after tracking, ${kib(saturated.heapPerPaymentRunning)} at the end (256 calls in flight, the rest waiting for a slot); peak of the four samples ${kib(Math.max(...samples))}`,
    );
    // One line a script can read: the engine against the client alone in this same run, the
    // engine's own main-thread cost per inquiry, the steady timers' p99, and the peak heap.
    console.log(
      `targets: ratio-to-client ${(saturated.rate / bare.rate).toFixed(2)}, overhead-us ${(saturated.mainMicrosPerInquiry - bare.mainMicrosPerInquiry).toFixed(0)}, steady-timer-p99-ms ${steady.lateP99.toFixed(1)}, heap-kib ${(Math.max(...samples) / 1024).toFixed(2)}`,
    );
  } finally {
    sim.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runEngineBench();
