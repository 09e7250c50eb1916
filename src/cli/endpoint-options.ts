import type { Command } from 'commander';

/** The options every command that talks to Alipay+ takes; see docs/configuration.md. */
export function endpointOptions(command: Command): Command {
  return command
    .option(
      '--config <file>',
      'JSON config file (baseUrl, clientId, privateKeyFile, alipayPublicKeyFile, ...)',
    )
    .option('--base-url <url>', 'the Alipay+ endpoint (env ALIPAYPLUS_BASE_URL)')
    .option('--client-id <id>', 'your Client-Id (env ALIPAYPLUS_CLIENT_ID)')
    .option(
      '--private-key <file>',
      'your RSA private key, to sign requests (env ALIPAYPLUS_PRIVATE_KEY_FILE)',
    )
    .option(
      '--alipay-public-key <file>',
      "Alipay+'s RSA public key, to verify answers (env ALIPAYPLUS_PUBLIC_KEY_FILE)",
    )
    .addHelpText(
      'after',
      '\nSettings come from flags first, then the environment, then the --config file; see docs/configuration.md.\n',
    );
}
