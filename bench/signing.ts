/**
 * The cost of a signed call's cryptography, the physical limit of a signing client.
 * Prints ops/s for RSA-2048 sign (main thread and threadpool) and verify, median of 5 rounds,
 * measured side by side in one run.
 */
import { generateKeyPairSync } from 'node:crypto';
import { buildSignContent, signContent, signContentAsync, verifyContent } from '../src/client/signature.js';
import { machineLine, median } from './machine.js';

const ROUNDS = 5;
const ROUND_MS = 1_000;
const CONCURRENCY = 64;

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const content = buildSignContent({
  method: 'POST',
  path: '/aps/api/v1/payments/inquiryPayment',
  clientId: 'BENCH_CLIENT',
  time: new Date().toISOString(),
  body: '{"paymentRequestId":"bench-000000000001"}',
});
const signature = signContent(content, privateKey);

function syncRate(op: () => void): number {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ROUND_MS) {
    op();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

async function asyncSignRate(): Promise<number> {
  const start = performance.now();
  let n = 0;
  const lane = async () => {
    while (performance.now() - start < ROUND_MS) {
      await signContentAsync(content, privateKey);
      n++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return n / ((performance.now() - start) / 1000);
}

export async function runSigningBench(): Promise<void> {
  console.log('## signing (RSA-2048, SHA256withRSA)');
  console.log(machineLine());
  const rows: Record<string, number[]> = {
    'sign, main thread': [],
    'sign, threadpool': [],
    verify: [],
    'sign+verify': [],
  };
  for (let round = 0; round < ROUNDS; round++) {
    rows['sign, main thread']?.push(syncRate(() => signContent(content, privateKey)));
    rows['sign, threadpool']?.push(await asyncSignRate());
    rows.verify?.push(syncRate(() => verifyContent(content, signature, publicKey)));
    rows['sign+verify']?.push(
      syncRate(() => {
        signContent(content, privateKey);
        verifyContent(content, signature, publicKey);
      }),
    );
  }
  for (const [name, rates] of Object.entries(rows)) {
    const m = median(rates);
    console.log(
      `${name.padEnd(20)} ${m.toFixed(0).padStart(8)} ops/s  (${(1e6 / m).toFixed(1)} µs/op, median of ${ROUNDS})`,
    );
  }
  const pool = median(rows['sign, threadpool'] ?? []);
  const main = median(rows['sign, main thread'] ?? []);
  console.log(
    `threadpool / main-thread signing: ${(pool / main).toFixed(2)}×  (UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4})`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await runSigningBench();
