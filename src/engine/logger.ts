/**
 * A pino-compatible logger: `logger.info({ paymentRequestId }, 'message')`. Pass a pino instance,
 * or anything with these four methods. The default logs nothing.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = () => undefined;
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

const SECRET_KEYS = /^(signature|privatekey|private_key|key|authorization|alipaypublickey)$/i;

/**
 * Copies a value for logging with secrets replaced by `[redacted]`: signature headers and any key
 * material, at any depth. Keys and signatures never reach a log line.
 */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') {
    return typeof value === 'string' && value.includes('PRIVATE KEY') ? '[redacted]' : value;
  }
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = SECRET_KEYS.test(key) ? '[redacted]' : redact(item, depth + 1);
  }
  return out;
}
