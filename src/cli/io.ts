/** Where the CLI writes; injected so that commands can be tested in-process. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /**
   * Whether `out` is a terminal: live displays redraw in place only there, and print plain lines
   * otherwise (a log file or a pipe must not fill with escape codes). Absent means no.
   */
  readonly isTTY?: boolean;
  /** Reads the whole of standard input (`--request -`). Absent: this IO has no standard input. */
  readStdin?(): Promise<string>;
}

export const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  isTTY: process.stdout.isTTY === true,
  async readStdin() {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  /**
   * The check the command made came out negative (e.g. a signature that does not verify, a
   * reconciliation that found lost or divergent payments, an outcome that needs a person), or the
   * command failed while running.
   */
  negative: 1,
  /** Bad usage, configuration or input: nothing was done. */
  usage: 2,
  /** Interrupted by SIGINT (128 + 2, as shells report it): stored state resumes on the next start. */
  interrupted: 130,
} as const;
