import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { loadPrivateKey, loadPublicKey } from '../client/keys.js';
import {
  buildSignatureHeader,
  buildSignContent,
  parseSignatureHeader,
  signContent,
  verifyContent,
} from '../client/signature.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import { type CliIo, EXIT } from './io.js';

interface SignatureFlags {
  key: string;
  clientId: string;
  time?: string;
  path: string;
  method: string;
  bodyFile?: string;
  body?: string;
  signature?: string;
  keyVersion: string;
}

const HINTS = [
  'Common causes when a signature does not verify:',
  '  - the body was re-serialised (spaces, key order, escaping): sign and verify the exact bytes sent;',
  '  - the time differs from the Request-Time / response-time header, character for character;',
  '  - the path lacks its prefix, or carries a query string or host;',
  "  - the client ID is not the Client-Id of the request (responses use the request's Client-Id);",
  '  - the public key is not the pair of the signing key (sandbox and production keys differ);',
  '  - the signature was URL-decoded twice, or not at all.',
].join('\n');

function readBody(flags: SignatureFlags): Buffer {
  if (flags.bodyFile !== undefined) return readFileSync(flags.bodyFile);
  if (flags.body !== undefined) return Buffer.from(flags.body, 'utf8');
  throw new AlipayPlusLifecycleError(
    'INVALID_INPUT',
    'give the body with --body-file FILE (exact bytes) or --body TEXT',
  );
}

function showContent(io: CliIo, content: Buffer): void {
  io.out(`Content (${content.length} bytes, between the markers):\n`);
  io.out(`-----BEGIN CONTENT-----\n${content.toString('utf8')}\n-----END CONTENT-----\n`);
}

function contentOf(flags: SignatureFlags, time: string): Buffer {
  return buildSignContent({
    method: flags.method.toUpperCase(),
    path: flags.path,
    clientId: flags.clientId,
    time,
    body: readBody(flags),
  });
}

function commonOptions(command: Command): Command {
  return command
    .requiredOption('--client-id <id>', 'the Client-Id of the request')
    .requiredOption('--path <path>', 'the request path, e.g. /aps/api/v1/payments/inquiryPayment')
    .option('--method <method>', 'the HTTP method', 'POST')
    .option('--body-file <file>', 'file holding the exact body bytes')
    .option('--body <text>', 'the body as text (prefer --body-file for exact bytes)');
}

/** `signature sign|verify`: shows exactly what is signed, to end "signature verify fails" hunts. */
export function signatureCommand(io: CliIo, setExit: (code: number) => void): Command {
  const command = new Command('signature').description(
    'sign or verify Alipay+ content, printing the exact bytes signed',
  );

  const run = (action: (flags: SignatureFlags) => number) => (flags: SignatureFlags) => {
    try {
      setExit(action(flags));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      io.err(`error: ${message}\n`);
      setExit(error instanceof AlipayPlusLifecycleError || isFileError(error) ? EXIT.usage : 1);
    }
  };

  commonOptions(
    command
      .command('sign')
      .description('sign content with a private key and print the Signature header')
      .requiredOption('--key <file>', 'the private key (PEM or Base64 DER, PKCS#8 or PKCS#1)')
      .option('--time <time>', 'the Request-Time; default now, as ISO 8601')
      .option('--key-version <n>', 'keyVersion in the header', '1'),
  ).action(
    run((flags) => {
      const key = loadPrivateKey(readFileSync(flags.key, 'utf8'));
      const time = flags.time ?? new Date().toISOString();
      const content = contentOf(flags, time);
      showContent(io, content);
      const signature = signContent(content, key);
      io.out(`Request-Time: ${time}\n`);
      io.out(`Signature: ${buildSignatureHeader({ signature, keyVersion: Number(flags.keyVersion) })}\n`);
      return EXIT.ok;
    }),
  );

  commonOptions(
    command
      .command('verify')
      .description('verify a signature with a public key; exit 0 if valid, 1 if not')
      .requiredOption('--key <file>', 'the public key (PEM or Base64 DER, SPKI or PKCS#1)')
      .requiredOption('--time <time>', 'the Request-Time or response-time header, exactly')
      .requiredOption('--signature <value>', 'the whole Signature header, or only its signature= value'),
  ).action(
    run((flags) => {
      const key = loadPublicKey(readFileSync(flags.key, 'utf8'));
      const given = flags.signature ?? '';
      const signature = given.includes('signature=') ? parseSignatureHeader(given).signature : given;
      const content = contentOf(flags, flags.time ?? '');
      showContent(io, content);
      if (verifyContent(content, signature, key)) {
        io.out('Verdict: VALID\n');
        return EXIT.ok;
      }
      io.out(`Verdict: INVALID\n${HINTS}\n`);
      return EXIT.negative;
    }),
  );
  return command;
}

function isFileError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR';
}
