import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { AlipayPlusLifecycleError } from '../errors.js';
import { createSimulator } from '../simulator/simulator.js';
import { type CliIo, EXIT } from './io.js';

interface SimulatorFlags {
  port: number;
  host: string;
  clientId?: string;
  acqpPublicKey?: string;
  key?: string;
  mix?: 'realistic';
  faultRate?: number;
  seed: number;
  timeFactor: number;
}

export function number(name: string, min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`${name} must be a number from ${min} to ${max}`);
    }
    return parsed;
  };
}

/** Loads the simulator's key from FILE, or creates one there (so the ACQP side can pin it). */
function simulatorKey(file: string | undefined): string | undefined {
  if (!file) return undefined;
  if (existsSync(file)) return readFileSync(file, 'utf8');
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  writeFileSync(file, pem, { mode: 0o600 });
  return pem;
}

/**
 * `simulator`: runs the Alipay+ stand-in until SIGINT or SIGTERM. `waitForStop` is injected so that
 * tests can run the command in-process.
 */
export function simulatorCommand(
  io: CliIo,
  setExit: (code: number) => void,
  waitForStop: () => Promise<void> = untilSignal,
): Command {
  return new Command('simulator')
    .description('run the Alipay+ simulator (real HTTP, real signatures, scripted wallet, injected faults)')
    .option('--port <port>', 'port to listen on (0: any free port)', number('--port', 0, 65_535), 8090)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--client-id <id>', 'the ACQP Client-Id requests must carry (env ALIPAYPLUS_CLIENT_ID)')
    .option(
      '--acqp-public-key <file>',
      "the ACQP's public key, to verify requests (env ALIPAYPLUS_ACQP_PUBLIC_KEY_FILE)",
    )
    .option('--key <file>', "the simulator's private key; created there if the file does not exist")
    .option('--mix <name>', 'draw unscripted orders from this mix: realistic')
    .option('--fault-rate <rate>', 'probability of a fault per call, 0 to 1', number('--fault-rate', 0, 1))
    .option('--seed <n>', 'seed for mixes and faults', number('--seed', 0, 2 ** 31), 1)
    .option(
      '--time-factor <x>',
      'simulated ms per real ms (60: a minute per second)',
      number('--time-factor', 0.001, 1e6),
      1,
    )
    .action(async (flags: SimulatorFlags) => {
      try {
        const clientId = flags.clientId ?? process.env.ALIPAYPLUS_CLIENT_ID;
        const keyFile = flags.acqpPublicKey ?? process.env.ALIPAYPLUS_ACQP_PUBLIC_KEY_FILE;
        if (!clientId)
          throw new AlipayPlusLifecycleError(
            'INVALID_OPTIONS',
            'give --client-id ID (or set ALIPAYPLUS_CLIENT_ID)',
          );
        if (!keyFile) {
          throw new AlipayPlusLifecycleError(
            'INVALID_OPTIONS',
            "give --acqp-public-key FILE (or set ALIPAYPLUS_ACQP_PUBLIC_KEY_FILE): the ACQP's public key, to verify requests",
          );
        }
        if (flags.mix !== undefined && flags.mix !== 'realistic') {
          throw new AlipayPlusLifecycleError(
            'INVALID_OPTIONS',
            `unknown mix ${flags.mix}: the mixes are realistic`,
          );
        }
        const privateKey = simulatorKey(flags.key);
        const simulator = createSimulator({
          port: flags.port,
          host: flags.host,
          clientId,
          acqpPublicKey: readFileSync(keyFile, 'utf8'),
          ...(privateKey ? { privateKey } : {}),
          ...(flags.mix ? { mix: flags.mix } : {}),
          ...(flags.faultRate !== undefined ? { faultRate: flags.faultRate } : {}),
          seed: flags.seed,
          timeFactor: flags.timeFactor,
        });
        const url = await simulator.start();
        io.out(`Alipay+ simulator listening on ${url}\n`);
        io.out(`Admin API: ${url}/__sim/orders, ${url}/__sim/calls, ${url}/__sim/notifications\n`);
        io.out(`Simulator public key (configure it as the Alipay+ public key):\n${simulator.publicKeyPem}`);
        await waitForStop();
        await simulator.stop();
        io.out('simulator stopped\n');
        setExit(EXIT.ok);
      } catch (error) {
        io.err(`error: ${error instanceof Error ? error.message : String(error)}\n`);
        setExit(EXIT.usage);
      }
    });
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}
