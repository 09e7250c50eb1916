import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildSignatureHeader,
  buildSignContent,
  createAlipayPlusClient,
  parseSignatureHeader,
} from '../src/index.js';
import { createSimulator, type Simulator } from '../src/simulator/index.js';
import { generateTestKeyPair } from './helpers/keys.js';
import { fileTempDir } from './helpers/temp-dir.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const CLIENT_ID = 'INTEROP_CLIENT';
const acqp = generateTestKeyPair();
const dir = fileTempDir('apl-interop-');

describe.skipIf(!hasOpenssl)('simulator interop with openssl', () => {
  let sim: Simulator;
  let url = '';
  beforeAll(async () => {
    sim = createSimulator({ clientId: CLIENT_ID, acqpPublicKey: acqp.publicPem });
    url = await sim.start();
    sim.createOrder({ paymentRequestId: 'OPENSSL-1', scenario: { decideAfterMs: 0 } });
  });
  afterAll(async () => {
    await sim.stop();
  });

  it('accepts a request signed by openssl, and its answer verifies with openssl dgst -verify', async () => {
    const path = '/aps/api/v1/payments/inquiryPayment';
    const body = '{"paymentRequestId":"OPENSSL-1"}';
    const time = new Date().toISOString();
    const keyFile = join(dir, 'acqp.pem');
    const contentFile = join(dir, 'request-content');
    writeFileSync(keyFile, acqp.privatePem);
    writeFileSync(contentFile, buildSignContent({ method: 'POST', path, clientId: CLIENT_ID, time, body }));
    const rawSignature = execFileSync('openssl', ['dgst', '-sha256', '-sign', keyFile, contentFile]);

    const response = await request(`${url}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json; charset=UTF-8',
        'client-id': CLIENT_ID,
        'request-time': time,
        signature: buildSignatureHeader({ signature: encodeURIComponent(rawSignature.toString('base64')) }),
      },
      body,
    });
    const raw = Buffer.from(await response.body.arrayBuffer());
    expect(JSON.parse(raw.toString('utf8'))).toMatchObject({
      result: { resultStatus: 'S' },
      paymentResult: { resultStatus: 'S' },
    });
    expect(sim.calls().at(-1)?.signatureValid).toBe(true);

    const responseTime = String(response.headers['response-time']);
    const signature = parseSignatureHeader(String(response.headers.signature)).signature;
    const pubFile = join(dir, 'alipay.pub.pem');
    const sigFile = join(dir, 'response.sig');
    const responseContent = join(dir, 'response-content');
    writeFileSync(pubFile, sim.publicKeyPem);
    writeFileSync(sigFile, Buffer.from(decodeURIComponent(signature), 'base64'));
    writeFileSync(
      responseContent,
      buildSignContent({ method: 'POST', path, clientId: CLIENT_ID, time: responseTime, body: raw }),
    );
    const verdict = execFileSync('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      pubFile,
      '-signature',
      sigFile,
      responseContent,
    ]);
    expect(verdict.toString()).toContain('Verified OK');
  });

  it('refuses the same openssl signature over another body', async () => {
    const path = '/aps/api/v1/payments/inquiryPayment';
    const time = new Date().toISOString();
    const keyFile = join(dir, 'acqp.pem');
    const contentFile = join(dir, 'request-content-2');
    writeFileSync(keyFile, acqp.privatePem);
    writeFileSync(
      contentFile,
      buildSignContent({ method: 'POST', path, clientId: CLIENT_ID, time, body: '{"paymentRequestId":"A"}' }),
    );
    const rawSignature = execFileSync('openssl', ['dgst', '-sha256', '-sign', keyFile, contentFile]);
    const response = await request(`${url}${path}`, {
      method: 'POST',
      headers: {
        'client-id': CLIENT_ID,
        'request-time': time,
        signature: buildSignatureHeader({ signature: encodeURIComponent(rawSignature.toString('base64')) }),
      },
      body: '{"paymentRequestId":"B"}',
    });
    expect(await response.body.json()).toMatchObject({
      result: { resultCode: 'INVALID_SIGNATURE', resultStatus: 'F' },
    });
  });
});

describe('alipayplus-lifecycle simulator (CLI)', () => {
  it('prints its URL and public key, serves signed answers, and stops on SIGTERM', async () => {
    const pubFile = join(dir, 'acqp.pub.pem');
    const simKeyFile = join(dir, 'sim-key.pem');
    writeFileSync(pubFile, acqp.publicPem);
    const main = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        main,
        'simulator',
        '--port',
        '0',
        '--client-id',
        CLIENT_ID,
        '--acqp-public-key',
        pubFile,
        '--key',
        simKeyFile,
        '--seed',
        '42',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 15_000;
    while (!out.includes('END PUBLIC KEY') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
    const publicKey = /(-----BEGIN PUBLIC KEY-----[\s\S]*-----END PUBLIC KEY-----)/.exec(out)?.[1];
    expect(url).toBeDefined();
    expect(publicKey).toBeDefined();
    const client = createAlipayPlusClient({
      baseUrl: url ?? '',
      clientId: CLIENT_ID,
      privateKey: acqp.privatePem,
      alipayPublicKey: publicKey ?? '',
    });
    expect(await client.inquiryPayment({ paymentRequestId: 'CLI-1' })).toMatchObject({
      kind: 'answer',
      result: { resultCode: 'ORDER_NOT_EXIST' },
    });
    await client.close();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('simulator stopped');
  });

  it('without the ACQP public key it exits 2 and says which setting is missing', async () => {
    const { cli } = await import('./helpers/cli.js');
    const run = await cli('simulator', '--client-id', CLIENT_ID);
    expect(run.code).toBe(2);
    expect(run.err).toContain('--acqp-public-key');
  });
});
