import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/index.js';
import { generateTestKeyPair } from './keys.js';
import { ownedTempDir } from './temp-dir.js';

export const CLI_CLIENT_ID = 'CLI_TEST_CLIENT';

/** A simulator to point the CLI at, with the key files the CLI reads, all made at test time. */
export interface CliEndpoint {
  sim: Simulator;
  dir: string;
  privateKeyFile: string;
  alipayPublicKeyFile: string;
  /** A private key the simulator does not know: its requests are refused with INVALID_SIGNATURE. */
  strangerKeyFile: string;
  /** The public key of a pair the simulator does not sign with: its answers fail verification. */
  wrongAlipayKeyFile: string;
  /** `--base-url ... --client-id ... --private-key ... --alipay-public-key ...` */
  flags: string[];
  stop(): Promise<void>;
}

/** @param simulator options of the simulator beyond its Client-Id and key (a clock, scenarios, ...) */
export async function startCliEndpoint(
  simulator: Omit<SimulatorOptions, 'clientId' | 'acqpPublicKey'> = {},
): Promise<CliEndpoint> {
  const { dir, remove } = ownedTempDir('apl-cli-endpoint-');
  const acqp = generateTestKeyPair();
  const stranger = generateTestKeyPair();
  const sim = createSimulator({ ...simulator, clientId: CLI_CLIENT_ID, acqpPublicKey: acqp.publicPem });
  await sim.start();
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const privateKeyFile = file('acqp-private.pem', acqp.privatePem);
  const alipayPublicKeyFile = file('alipayplus-public.pem', sim.publicKeyPem);
  const strangerKeyFile = file('stranger-private.pem', stranger.privatePem);
  const wrongAlipayKeyFile = file('wrong-public.pem', stranger.publicPem);
  return {
    sim,
    dir,
    privateKeyFile,
    alipayPublicKeyFile,
    strangerKeyFile,
    wrongAlipayKeyFile,
    flags: [
      '--base-url',
      sim.url,
      '--client-id',
      CLI_CLIENT_ID,
      '--private-key',
      privateKeyFile,
      '--alipay-public-key',
      alipayPublicKeyFile,
    ],
    stop: async () => {
      await sim.stop();
      remove();
    },
  };
}

/** A config file whose policy polls every 100 ms, so that a lifecycle on the real clock ends quickly. */
export function fastPolicyConfig(dir: string, extra: Record<string, unknown> = {}): string {
  const path = join(dir, `fast-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify({ policy: { inquiryScheduleMs: [100] }, ...extra }));
  return path;
}

export const ENV_NAMES = [
  'ALIPAYPLUS_BASE_URL',
  'ALIPAYPLUS_CLIENT_ID',
  'ALIPAYPLUS_PRIVATE_KEY_FILE',
  'ALIPAYPLUS_PUBLIC_KEY_FILE',
] as const;
