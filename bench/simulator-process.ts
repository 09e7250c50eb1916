/**
 * The simulator in a process of its own, for benchmarks: the engine's process must not pay for the
 * simulator's signatures. Config comes from env; prints one JSON line { url, publicKey } when ready.
 */
import { createSimulator } from '../src/simulator/index.js';

const simulator = createSimulator({
  clientId: process.env.SIM_CLIENT_ID ?? 'BENCH_CLIENT',
  acqpPublicKey: process.env.SIM_ACQP_PUBLIC_KEY ?? '',
  seed: 1,
  holdMs: 5_000,
  signatureCache: process.env.SIM_SIGNATURE_CACHE !== '0',
});
const url = await simulator.start();
process.stdout.write(`${JSON.stringify({ url, publicKey: simulator.publicKeyPem })}\n`);
process.on('SIGTERM', () => {
  void simulator.stop().then(() => process.exit(0));
});
