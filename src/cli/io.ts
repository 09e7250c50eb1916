/** Where the CLI writes; injected so that commands can be tested in-process. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  /** The check the command made came out negative (e.g. a signature that does not verify). */
  negative: 1,
  /** Bad usage, configuration or input: nothing was done. */
  usage: 2,
} as const;
