import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { LifecyclePolicy, type LifecyclePolicyInput } from '../../machines/policy.js';
import type { AlipayPlusClientOptions } from '../client/alipayplus-client.js';
import { loadPrivateKey, loadPublicKey } from '../client/keys.js';
import { AlipayPlusLifecycleError } from '../errors.js';
import { Id } from '../protocol/common.js';
import { CliSettingError, parseStoreSpec, type StoreSpec } from './common.js';

/** The settings of commands that talk to an Alipay+ endpoint (`inquire`, `track`, `pay`, `refund`). */
export interface EndpointSettings {
  baseUrl: string;
  clientId: string;
  privateKeyFile: string;
  alipayPublicKeyFile: string;
  keyVersion?: number;
  timeouts?: { inquiryMs?: number; cancelMs?: number; payMs?: number; refundMs?: number };
  /** Lifecycle policy overrides for `track` and `pay` (config file only: a policy is a document, not a flag). */
  policy?: LifecyclePolicyInput;
  store?: StoreSpec;
}

/** The flags that carry the same settings; each wins over the environment and the config file. */
export interface EndpointFlags {
  config?: string;
  baseUrl?: string;
  clientId?: string;
  privateKey?: string;
  alipayPublicKey?: string;
  store?: StoreSpec;
}

/** How each setting can be given, for messages that say how to fix it. */
const SOURCES: Record<string, { flag?: string; env?: string }> = {
  baseUrl: { flag: '--base-url URL', env: 'ALIPAYPLUS_BASE_URL' },
  clientId: { flag: '--client-id ID', env: 'ALIPAYPLUS_CLIENT_ID' },
  privateKeyFile: { flag: '--private-key FILE', env: 'ALIPAYPLUS_PRIVATE_KEY_FILE' },
  alipayPublicKeyFile: { flag: '--alipay-public-key FILE', env: 'ALIPAYPLUS_PUBLIC_KEY_FILE' },
  store: { flag: '--store sqlite:PATH|memory' },
};

function howToGive(setting: string): string {
  const source = SOURCES[setting] ?? {};
  const ways = [
    source.flag ? `give ${source.flag}` : undefined,
    source.env ? `set ${source.env}` : undefined,
    `put "${setting}" in the --config file`,
  ].filter(Boolean);
  return ways.join(', or ');
}

const Store = z.string().transform((value, ctx) => {
  try {
    return parseStoreSpec(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
    return z.NEVER;
  }
});

/** The config file: every field optional (flags and the environment may give the rest), none unknown. */
const ConfigFile = z
  .object({
    baseUrl: z.string().optional(),
    clientId: z.string().optional(),
    privateKeyFile: z.string().optional(),
    alipayPublicKeyFile: z.string().optional(),
    keyVersion: z.number().int().min(0).optional(),
    timeouts: z
      .object({
        inquiryMs: z.number().int().positive().optional(),
        cancelMs: z.number().int().positive().optional(),
        payMs: z.number().int().positive().optional(),
        refundMs: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    policy: z.record(z.string(), z.unknown()).optional(),
    store: Store.optional(),
  })
  .strict();

/** The merged settings, checked as a whole. */
const Settings = z.object({
  baseUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  clientId: Id,
  privateKeyFile: z.string().min(1),
  alipayPublicKeyFile: z.string().min(1),
  keyVersion: z.number().int().min(0).optional(),
  timeouts: z
    .object({
      inquiryMs: z.number().optional(),
      cancelMs: z.number().optional(),
      payMs: z.number().optional(),
      refundMs: z.number().optional(),
    })
    .optional(),
  policy: LifecyclePolicy.optional(),
  store: z.custom<StoreSpec>().optional(),
});

function readConfigFile(file: string): z.output<typeof ConfigFile> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliSettingError('--config', `cannot read the config file ${file}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CliSettingError('--config', `the config file ${file} is not JSON: ${(error as Error).message}`);
  }
  const parsed = ConfigFile.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => {
      const path = issue.path.join('.') || '(the whole file)';
      return issue.code === 'unrecognized_keys'
        ? `unknown setting ${issue.keys.map((k) => `"${k}"`).join(', ')} (the settings are ${Object.keys(ConfigFile.shape).join(', ')})`
        : `${path}: ${issue.message}`;
    });
    throw new CliSettingError('--config', `the config file ${file} is invalid: ${issues.join('; ')}`);
  }
  // Key files named in a config file are found next to it, wherever the command runs from.
  const base = dirname(resolve(file));
  const data = parsed.data;
  if (data.privateKeyFile) data.privateKeyFile = resolve(base, data.privateKeyFile);
  if (data.alipayPublicKeyFile) data.alipayPublicKeyFile = resolve(base, data.alipayPublicKeyFile);
  return data;
}

/**
 * Merges flags, the environment and the config file (in that order of precedence) and validates
 * the result with zod.
 * @throws CliSettingError naming the first missing or bad setting and how to give it.
 */
export function resolveEndpointSettings(
  flags: EndpointFlags,
  env: NodeJS.ProcessEnv = process.env,
): EndpointSettings {
  const file = flags.config ? readConfigFile(flags.config) : {};
  // An empty variable (`ALIPAYPLUS_BASE_URL=`) means unset, as shells and CI systems mostly intend.
  const fromEnv = (name: string) => (env[name] === '' ? undefined : env[name]);
  const merged = {
    baseUrl: flags.baseUrl ?? fromEnv('ALIPAYPLUS_BASE_URL') ?? file.baseUrl,
    clientId: flags.clientId ?? fromEnv('ALIPAYPLUS_CLIENT_ID') ?? file.clientId,
    privateKeyFile: flags.privateKey ?? fromEnv('ALIPAYPLUS_PRIVATE_KEY_FILE') ?? file.privateKeyFile,
    alipayPublicKeyFile:
      flags.alipayPublicKey ?? fromEnv('ALIPAYPLUS_PUBLIC_KEY_FILE') ?? file.alipayPublicKeyFile,
    keyVersion: file.keyVersion,
    timeouts: file.timeouts,
    policy: file.policy,
    store: flags.store ?? file.store,
  };
  const parsed = Settings.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.core.$ZodIssue;
    const setting = String(issue.path[0] ?? 'configuration');
    const value = (merged as Record<string, unknown>)[setting];
    if (value === undefined) {
      throw new CliSettingError(setting, `${setting} is missing: ${howToGive(setting)}`);
    }
    const where = issue.path.join('.');
    throw new CliSettingError(setting, `${where} is invalid: ${issue.message}`);
  }
  const settings: EndpointSettings = {
    baseUrl: parsed.data.baseUrl,
    clientId: parsed.data.clientId,
    privateKeyFile: parsed.data.privateKeyFile,
    alipayPublicKeyFile: parsed.data.alipayPublicKeyFile,
  };
  if (parsed.data.keyVersion !== undefined) settings.keyVersion = parsed.data.keyVersion;
  if (merged.timeouts) settings.timeouts = merged.timeouts;
  // The policy is validated here, but handed on as given: the engine applies its own defaults.
  if (merged.policy) settings.policy = merged.policy as LifecyclePolicyInput;
  if (merged.store) settings.store = merged.store;
  return settings;
}

function readKey(setting: 'privateKeyFile' | 'alipayPublicKeyFile', file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliSettingError(setting, `${setting} ${file} cannot be read (${(error as Error).message})`);
  }
  try {
    if (setting === 'privateKeyFile') loadPrivateKey(pem);
    else loadPublicKey(pem);
  } catch (error) {
    const what = setting === 'privateKeyFile' ? 'your RSA private key' : "Alipay+'s RSA public key";
    const reason = error instanceof AlipayPlusLifecycleError ? error.message : String(error);
    throw new CliSettingError(setting, `${setting} ${file} is not ${what}: ${reason}`);
  }
  return pem;
}

/** The client options the settings describe, with both keys read and checked. */
export function clientOptionsOf(settings: EndpointSettings): AlipayPlusClientOptions {
  const options: AlipayPlusClientOptions = {
    baseUrl: settings.baseUrl,
    clientId: settings.clientId,
    privateKey: readKey('privateKeyFile', settings.privateKeyFile),
    alipayPublicKey: readKey('alipayPublicKeyFile', settings.alipayPublicKeyFile),
  };
  if (settings.keyVersion !== undefined) options.keyVersion = settings.keyVersion;
  if (settings.timeouts) options.timeouts = settings.timeouts;
  return options;
}
