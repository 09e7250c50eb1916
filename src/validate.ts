import type { z } from 'zod';
import { ValidationError } from './errors.js';

/** Formats zod issues as `path: message`, the form every ValidationError carries. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    return `${path}: ${issue.message}`;
  });
}

/** Parses `value` with `schema`, throwing a typed {@link ValidationError} naming `what` on failure. */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
  code: 'INVALID_OPTIONS' | 'INVALID_INPUT' = 'INVALID_INPUT',
): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ValidationError(code, what, formatIssues(parsed.error));
  return parsed.data;
}
