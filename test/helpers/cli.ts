import { runCli } from '../../src/cli/program.js';

/** Runs the CLI in-process and captures what it prints. */
export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return cliWithStdin(undefined, ...argv);
}

/** As {@link cli}, with `stdin` as standard input (undefined: the IO has none). */
export async function cliWithStdin(
  stdin: string | undefined,
  ...argv: string[]
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, {
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
    ...(stdin === undefined ? {} : { readStdin: async () => stdin }),
  });
  return { code, out, err };
}

/**
 * Starts the CLI in-process without waiting for it, for a command that serves until Ctrl-C: what it
 * printed so far can be read at any time, and `code` resolves when it ends.
 */
export function cliRunning(...argv: string[]): { code: Promise<number>; out(): string; err(): string } {
  let out = '';
  let err = '';
  const code = runCli(argv, {
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
  });
  return { code, out: () => out, err: () => err };
}
