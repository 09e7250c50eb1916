/**
 * The engine's own cost per inquiry, with the network and the signatures taken away: a client stub
 * that answers F ORDER_NOT_EXIST at once. Prints CPU µs per inquiry for each store, so that the
 * engine's overhead can be compared with the ≈ 300 µs of RSA work a real signed inquiry costs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPaymentEngine,
  type InquiryOutcome,
  type LifecycleStore,
  memoryStore,
  sqliteStore,
  systemClock,
} from '../src/index.js';
import { machineLine, median, trackInBatches } from './machine.js';

const PAYMENTS = Number(process.env.BENCH_PAYMENTS ?? 2_000);
const answer: InquiryOutcome = {
  kind: 'answer',
  raw: '{}',
  responseTime: '2026-01-01T00:00:00Z',
  result: { resultCode: 'ORDER_NOT_EXIST', resultStatus: 'F', resultMessage: 'order does not exist' },
};

async function measure(
  store: LifecycleStore,
): Promise<{ cpuPerInquiry: number; mainPerInquiry: number; rate: number }> {
  let inquiries = 0;
  const engine = createPaymentEngine({
    client: {
      inquiryPayment: async () => {
        inquiries++;
        await new Promise((resolve) => setImmediate(resolve));
        return answer;
      },
      cancelPayment: async () => ({ kind: 'no-result', reason: 'network', detail: 'stub' }),
    },
    store,
    clock: systemClock,
    policy: { inquiryScheduleMs: [100], maxInquiries: 1_000_000 },
  });
  await engine.start();
  const now = Date.now();
  await trackInBatches(engine, PAYMENTS, (i) => ({
    paymentRequestId: `o-${i}`,
    createdAt: now - (i % 100),
    paymentExpiryTime: now + 3_600_000,
  }));
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const cpu0 = process.cpuUsage();
  const n0 = inquiries;
  const t0 = performance.now();
  const elu0 = performance.eventLoopUtilization();
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const cpu = process.cpuUsage(cpu0);
  const busy = performance.eventLoopUtilization(elu0);
  const done = inquiries - n0;
  const seconds = (performance.now() - t0) / 1000;
  await engine.stop();
  return {
    cpuPerInquiry: (cpu.user + cpu.system) / done,
    mainPerInquiry: (busy.active * 1000) / done,
    rate: done / seconds,
  };
}

export async function runOverheadBench(): Promise<void> {
  console.log('## engine overhead per inquiry, no network, no signing (bench/engine-overhead.ts)');
  console.log(machineLine());
  const dir = mkdtempSync(join(tmpdir(), 'apl-overhead-'));
  // CPU counts every thread of the process (the SQLite writer thread too); main is the event loop's
  // busy time, what limits a saturated engine.
  const stores: [string, (round: number) => LifecycleStore][] = [
    ['memory', () => memoryStore()],
    ['sqlite FULL', (round) => sqliteStore(join(dir, `f${round}.db`))],
    ['sqlite FULL, in-thread', (round) => sqliteStore(join(dir, `t${round}.db`), { writerThread: false })],
    ['sqlite NORMAL', (round) => sqliteStore(join(dir, `n${round}.db`), { synchronous: 'NORMAL' })],
  ];
  const rows = new Map<string, { cpu: number[]; main: number[] }>(
    stores.map(([name]) => [name, { cpu: [], main: [] }]),
  );
  for (let round = 0; round < 3; round++) {
    for (const [name, make] of stores) {
      const result = await measure(make(round));
      rows.get(name)?.cpu.push(result.cpuPerInquiry);
      rows.get(name)?.main.push(result.mainPerInquiry);
    }
  }
  rmSync(dir, { recursive: true, force: true });
  for (const [name, { cpu, main }] of rows) {
    console.log(
      `${name.padEnd(23)} ${median(cpu).toFixed(0).padStart(5)} µs CPU, ${median(main).toFixed(0).padStart(5)} µs main thread per inquiry (median of 3, ${PAYMENTS} payments, 2 persisted transitions each)`,
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runOverheadBench();
