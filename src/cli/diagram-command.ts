import { Command, Option } from 'commander';
import { lifecycleJson, lifecycleMermaid } from '../diagram.js';
import { type CliIo, EXIT } from './io.js';

/** `diagram`: the lifecycle statechart, generated from the machine itself. */
export function diagramCommand(io: CliIo, setExit: (code: number) => void): Command {
  return new Command('diagram')
    .description('print the lifecycle statechart, generated from the machine definition')
    .addOption(
      new Option(
        '--format <format>',
        'mermaid (a stateDiagram-v2) or json (machine.toJSON(), for Stately tools)',
      )
        .choices(['mermaid', 'json'])
        .default('mermaid'),
    )
    .action((flags: { format: 'mermaid' | 'json' }) => {
      const text = flags.format === 'json' ? lifecycleJson() : lifecycleMermaid();
      io.out(text.endsWith('\n') ? text : `${text}\n`);
      setExit(EXIT.ok);
    });
}
