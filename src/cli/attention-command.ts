import { Command } from 'commander';
import { table } from '../demo/stats.js';
import {
  type AttentionView,
  listAttention,
  requireAttention,
  resolveAttention,
} from '../engine/attention.js';
import { ATTENTION_ACTIONS, type LifecycleStore } from '../stores/store.js';
import { CliSettingError, parseStoreSpec, reportError, type StoreSpec, storeFromSpec } from './common.js';
import { type CliIo, EXIT } from './io.js';

interface StoreFlags {
  store: StoreSpec;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** An age as a person reads it on a queue: its two largest units, e.g. `3h 12m`, `2d`, `45s`. */
export function formatAge(ms: number): string {
  let rest = Math.max(0, Math.floor(ms / 1_000));
  const parts = (
    [
      ['d', 86_400],
      ['h', 3_600],
      ['m', 60],
      ['s', 1],
    ] as const
  ).map(([unit, size]) => {
    const count = Math.floor(rest / size);
    rest -= count * size;
    return { count, unit };
  });
  const first = parts.findIndex((p) => p.count > 0);
  if (first < 0) return '0s';
  return parts
    .slice(first, first + 2)
    .filter((p) => p.count > 0)
    .map((p) => `${p.count}${p.unit}`)
    .join(' ');
}

const amountOf = (view: AttentionView) => (view.amount ? `${view.amount.value} ${view.amount.currency}` : '');

/**
 * Opens the SQLite store the flags name, runs `work` on it and closes it. These commands work on the
 * store alone (no engine, no network), so they can run beside the engine that owns the payments.
 */
async function withStore(
  flags: StoreFlags,
  work: (store: LifecycleStore) => Promise<number>,
): Promise<number> {
  if (flags.store.kind !== 'sqlite') {
    throw new CliSettingError(
      '--store',
      'a memory store lives only inside the process that made it: give --store sqlite:PATH',
    );
  }
  const store = storeFromSpec(flags.store, { mustExist: true });
  await store.open();
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

function storeOption(command: Command): Command {
  return command.requiredOption(
    '--store <spec>',
    'sqlite:PATH, the store the engine (or the demo) writes',
    parseStoreSpec,
  );
}

/** `attention list|show|resolve`: the queue of payments a person must act on, and what they did. */
export function attentionCommand(io: CliIo, setExit: (code: number) => void): Command {
  const run = (work: () => Promise<number>) =>
    work().then(setExit, (error: unknown) => setExit(reportError(io, error)));

  const list = storeOption(
    new Command('list')
      .description('list the open attention items, oldest decision first')
      .option('--all', 'include the items somebody resolved already')
      .option('--json', 'print JSON instead of a table'),
  ).action((flags: StoreFlags & { all?: boolean; json?: boolean }) =>
    run(() =>
      withStore(flags, async (store) => {
        const views = await listAttention(store, Date.now(), { all: flags.all === true });
        if (flags.json) {
          io.out(`${JSON.stringify(views)}\n`);
          return EXIT.ok;
        }
        const open = views.filter((v) => !v.resolution).length;
        io.out(
          `${open} open attention item(s)` +
            (flags.all ? `, ${views.length - open} resolved` : '') +
            (views.length > 0 ? ', oldest decision first' : '') +
            '\n',
        );
        if (views.length > 0) {
          const header = ['paymentRequestId', 'reason', 'amount', 'age', 'decided at'];
          io.out(
            `${table(
              flags.all ? [...header, 'resolved'] : header,
              views.map((v) => {
                const cells = [
                  v.paymentRequestId,
                  v.reason,
                  amountOf(v),
                  formatAge(v.ageMs),
                  iso(v.decidedAt),
                ];
                return flags.all
                  ? [...cells, v.resolution ? `${v.resolution.action} by ${v.resolution.by}` : '']
                  : cells;
              }),
            )}\n`,
          );
        }
        return EXIT.ok;
      }),
    ),
  );

  const show = storeOption(
    new Command('show')
      .description('show one attention item with its audit history')
      .argument('<id>', 'the paymentRequestId')
      .option('--json', 'print JSON instead of text'),
  ).action((id: string, flags: StoreFlags & { json?: boolean }) =>
    run(() =>
      withStore(flags, async (store) => {
        const view = await requireAttention(store, id, Date.now());
        if (flags.json) {
          io.out(`${JSON.stringify(view)}\n`);
          return EXIT.ok;
        }
        io.out(`${id}: needs a person: ${view.reason}\n`);
        io.out(
          `  amount ${amountOf(view) || 'unknown'}, decided at ${iso(view.decidedAt)}, ${formatAge(view.ageMs)} ago\n`,
        );
        const r = view.resolution;
        io.out(
          r
            ? `  resolved: ${r.action} by ${r.by} at ${iso(r.at)}: ${r.note}\n`
            : `  open: record what you did with \`attention resolve ${id} --action A --note N --by NAME\`\n`,
        );
        io.out('\nAudit history\n');
        io.out(
          `${table(
            ['at', 'from', 'to', 'event', 'code'],
            view.audit.map((a) => [iso(a.at), a.from || '(new)', a.to, a.event, a.code ?? '']),
          )}\n`,
        );
        return EXIT.ok;
      }),
    ),
  );

  const resolve = storeOption(
    new Command('resolve')
      .description('record what a person did about an open attention item (the outcome stays as it is)')
      .argument('<id>', 'the paymentRequestId')
      .requiredOption('--action <action>', `what was done: ${ATTENTION_ACTIONS.join(', ')}`)
      .requiredOption('--note <text>', 'what was done and where to find it (at most 500 characters)')
      .requiredOption('--by <name>', 'who did it (at most 100 characters)'),
  ).action((id: string, flags: StoreFlags & { action: string; note: string; by: string }) =>
    run(() =>
      withStore(flags, async (store) => {
        const { resolution, reason } = await resolveAttention(
          store,
          id,
          // The action is checked with the note and the name, by the engine's own rules.
          { action: flags.action as (typeof ATTENTION_ACTIONS)[number], note: flags.note, by: flags.by },
          Date.now(),
        );
        io.out(
          `${id}: recorded ${resolution.action} by ${resolution.by} at ${iso(resolution.at)}: ${resolution.note}\n` +
            `  The outcome stays attention (${reason}); the item has left the open queue.\n`,
        );
        return EXIT.ok;
      }),
    ),
  );

  return new Command('attention')
    .description('work the queue of payments whose outcome needs a person')
    .addCommand(list)
    .addCommand(show)
    .addCommand(resolve)
    .addHelpText(
      'after',
      '\nExit codes: 0 done; 2 bad usage, no store at that path, an unknown ID, or a payment that is not an\n' +
        'open attention item (nothing is written then).\n',
    );
}
