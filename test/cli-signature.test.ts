import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cli } from './helpers/cli.js';
import { fixturePath } from './helpers/keys.js';
import { fileTempDir } from './helpers/temp-dir.js';

const dir = fileTempDir('apl-cli-');
const bodyFile = join(dir, 'body.json');
writeFileSync(bodyFile, '{"paymentRequestId":"pay_1089760038715669_102775745070000"}');
const privateKeyFile = fixturePath('test-only-acqp-private.pem');
const publicKeyFile = fixturePath('test-only-acqp-public.pem');
const common = [
  '--client-id',
  'CLIENT123',
  '--time',
  '2020-01-01T12:01:01+08:30',
  '--path',
  '/aps/api/v1/payments/inquiryPayment',
  '--body-file',
  bodyFile,
];
// The known-answer signature of the fixture key over this content (see signature.test.ts).
const KNOWN_PREFIX =
  'w2b1sxRIuXCerE0ZZJwIcypiXZtxL9DQEjSffrM9tnv%2BGOkvDqX6HzsMclQxK4IHfntbtyHod1cXi9xHwPUyNPJW';

describe('alipayplus-lifecycle signature', () => {
  it('sign prints the exact content and the Signature header', async () => {
    const { code, out } = await cli('signature', 'sign', '--key', privateKeyFile, ...common);
    expect(code).toBe(0);
    expect(out).toContain(
      '-----BEGIN CONTENT-----\nPOST /aps/api/v1/payments/inquiryPayment\nCLIENT123.2020-01-01T12:01:01+08:30.{"paymentRequestId":"pay_1089760038715669_102775745070000"}\n-----END CONTENT-----',
    );
    expect(out).toContain(`Signature: algorithm=RSA256,keyVersion=1,signature=${KNOWN_PREFIX}`);
  });

  it('verify accepts the whole header or the bare value, and exits 0', async () => {
    const signed = await cli('signature', 'sign', '--key', privateKeyFile, ...common);
    const header = /Signature: (.*)/.exec(signed.out)?.[1] ?? '';
    const bare = header.split('signature=')[1] ?? '';
    for (const signature of [header, bare]) {
      const { code, out } = await cli(
        'signature',
        'verify',
        '--key',
        publicKeyFile,
        ...common,
        '--signature',
        signature,
      );
      expect(code).toBe(0);
      expect(out).toContain('Verdict: VALID');
    }
  });

  it('verify of a signature over other content exits 1 and lists the usual causes', async () => {
    const signed = await cli('signature', 'sign', '--key', privateKeyFile, ...common);
    const header = /Signature: (.*)/.exec(signed.out)?.[1] ?? '';
    const changed = common.map((arg) =>
      arg === '2020-01-01T12:01:01+08:30' ? '2020-01-01T12:01:02+08:30' : arg,
    );
    const { code, out } = await cli(
      'signature',
      'verify',
      '--key',
      publicKeyFile,
      ...changed,
      '--signature',
      header,
    );
    expect(code).toBe(1);
    expect(out).toContain('Verdict: INVALID');
    expect(out).toContain('re-serialised');
  });

  it('a private key given to verify is a usage error (exit 2) naming the expected format', async () => {
    const { code, err } = await cli(
      'signature',
      'verify',
      '--key',
      privateKeyFile,
      ...common,
      '--signature',
      'abc',
    );
    expect(code).toBe(2);
    expect(err).toContain('KEY_TYPE');
    expect(err).toContain('expected an RSA public key');
  });

  it('a missing key file and a missing flag are usage errors (exit 2)', async () => {
    expect((await cli('signature', 'sign', '--key', join(dir, 'nope.pem'), ...common)).code).toBe(2);
    const missing = await cli('signature', 'sign', '--key', privateKeyFile, '--path', '/x', '--body', '{}');
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('--client-id');
  });

  it('the installed entry point exits with the verdict as its status', () => {
    const main = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
    const run = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        main,
        'signature',
        'verify',
        '--key',
        publicKeyFile,
        ...common,
        '--signature',
        'AAAA',
      ],
      { encoding: 'utf8' },
    );
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('Verdict: INVALID');
  });
});
