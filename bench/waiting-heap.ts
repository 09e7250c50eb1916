/**
 * Heap per payment while payments wait for a call slot: 10,000 payments, first with their inquiries
 * far in the future (`pending`), then all due at once with a single call slot that never frees (the
 * client never answers), as in an overloaded engine or an Alipay+ outage. The rows are stored in
 * SQLite `:memory:`, outside the JavaScript heap, so that the figure is the engine's own.
 *
 * node --expose-gc .bench-build/bench/waiting-heap.js (after `npx tsc -p tsconfig.bench.json`)
 */
import { createPaymentEngine, sqliteStore, systemClock } from '../src/index.js';
import { machineLine, trackInBatches } from './machine.js';

const PAYMENTS = Number(process.env.BENCH_PAYMENTS ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};

async function heapPerPayment(label: string, firstInquiryMs: number): Promise<string> {
  const engine = createPaymentEngine({
    client: {
      inquiryPayment: () => new Promise(() => undefined),
      cancelPayment: () => new Promise(() => undefined),
    },
    store: sqliteStore(':memory:'),
    clock: systemClock,
    maxConcurrentCalls: 1,
    policy: { inquiryScheduleMs: [firstInquiryMs], maxInquiries: 1_000 },
  });
  await engine.start();
  const before = heap();
  const now = Date.now();
  await trackInBatches(engine, PAYMENTS, (i) => ({
    paymentRequestId: `${label}-${i}`,
    createdAt: now,
    paymentExpiryTime: now + 3_600_000,
  }));
  // Past every first inquiry's due time when it is short.
  await new Promise((resolve) => setTimeout(resolve, Math.min(firstInquiryMs, 100) + 1_500));
  const perPayment = (heap() - before) / PAYMENTS / 1024;
  const states = new Map<string, number>();
  for (let i = 0; i < PAYMENTS; i++) {
    const state = engine.get(`${label}-${i}`)?.state ?? 'unknown';
    states.set(state, (states.get(state) ?? 0) + 1);
  }
  // Not stopped: a stop would wait for the call that never answers. The process ends after this.
  return `${label.padEnd(8)} ${perPayment.toFixed(2)} KiB per payment (${[...states].map(([s, n]) => `${n} ${s}`).join(', ')})`;
}

export async function runWaitingHeapBench(): Promise<void> {
  console.log('## heap while waiting for a call slot (bench/waiting-heap.ts)');
  console.log(machineLine());
  if (!gc) console.log('note: run with --expose-gc for exact heap figures');
  console.log(await heapPerPayment('pending', 600_000));
  console.log(await heapPerPayment('due', 100));
}

if (import.meta.url === `file://${process.argv[1]}`) await runWaitingHeapBench();
