import { Command, CommanderError } from 'commander';
import { attentionCommand } from './attention-command.js';
import { dashboardCommand } from './dashboard-command.js';
import { demoCommand } from './demo-command.js';
import { diagramCommand } from './diagram-command.js';
import { inquireCommand } from './inquire-command.js';
import { type CliIo, EXIT, processIo } from './io.js';
import { payCommand } from './pay-command.js';
import { refundCommand } from './refund-command.js';
import { signatureCommand } from './signature-command.js';
import { simulatorCommand } from './simulator-command.js';
import { statusCommand } from './status-command.js';
import { trackCommand } from './track-command.js';

/** Builds the `alipayplus-lifecycle` program. Every command writes through `io` and reports its exit code. */
export function createProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command('alipayplus-lifecycle')
    .description('Drive Alipay+ payments whose result is unknown to exactly one final outcome.')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride()
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nExit codes: 0 ok; 1 a negative result (see each command); 2 bad usage or settings, nothing done.\n' +
        'Settings for inquire, track, pay and refund: flags, ALIPAYPLUS_* variables or --config FILE (docs/configuration.md).\n',
    );

  program.addCommand(demoCommand(io, setExit));
  program.addCommand(inquireCommand(io, setExit));
  program.addCommand(trackCommand(io, setExit));
  program.addCommand(payCommand(io, setExit));
  program.addCommand(refundCommand(io, setExit));
  program.addCommand(statusCommand(io, setExit));
  program.addCommand(attentionCommand(io, setExit));
  program.addCommand(dashboardCommand(io, setExit));
  program.addCommand(diagramCommand(io, setExit));
  program.addCommand(simulatorCommand(io, setExit));
  program.addCommand(signatureCommand(io, setExit));

  // Commander's own usage errors and --help exits become exit codes rather than process.exit calls.
  for (const command of [program, ...program.commands, ...program.commands.flatMap((c) => c.commands)]) {
    command.exitOverride();
    command.configureOutput({ writeOut: io.out, writeErr: io.err });
  }
  return program;
}

/** Runs the CLI on `argv` (without node and script) and resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = createProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    throw error;
  }
  return exitCode;
}
