import { Command } from 'commander';
import { table } from '../demo/stats.js';
import { DEFAULT_SQLITE_PATH } from '../stores/sqlite-store.js';
import type { LifecycleRecord } from '../stores/store.js';
import { CliSettingError, parseStoreSpec, reportError, type StoreSpec, storeFromSpec } from './common.js';
import { type CliIo, EXIT } from './io.js';
import { number } from './simulator-command.js';

interface StatusFlags {
  store: StoreSpec;
  limit: number;
  json?: boolean;
}

const iso = (ms: number) => new Date(ms).toISOString();

function row(record: LifecycleRecord): (string | number)[] {
  return [
    record.paymentRequestId,
    record.state,
    record.outcome?.attentionReason ?? record.outcome?.cancelReason ?? '',
    iso(record.createdAt),
    iso(record.updatedAt),
  ];
}

/** `status [ID]`: what a store holds — the lifecycles, or one lifecycle's audit history. */
export function statusCommand(io: CliIo, setExit: (code: number) => void): Command {
  return new Command('status')
    .description('show the lifecycles in a store and their states, or one lifecycle with its audit history')
    .argument('[id]', 'a paymentRequestId: show its record, audit history and notifications')
    .option('--store <spec>', 'sqlite:PATH (memory stores live only inside their process)', parseStoreSpec, {
      kind: 'sqlite',
      path: DEFAULT_SQLITE_PATH,
    })
    .option('--limit <n>', 'newest lifecycles to list', number('--limit', 1, 1_000_000), 50)
    .option('--json', 'print JSON instead of tables')
    .addHelpText(
      'after',
      '\nExit codes: 0 shown; 1 the ID is not in the store; 2 bad usage or no store at that path.\n',
    )
    .action(async (id: string | undefined, flags: StatusFlags) => {
      try {
        if (flags.store.kind !== 'sqlite') {
          throw new CliSettingError(
            '--store',
            'a memory store lives only inside the process that made it: give --store sqlite:PATH',
          );
        }
        const store = storeFromSpec(flags.store, { mustExist: true });
        await store.open();
        try {
          setExit(id === undefined ? await list(io, store, flags) : await show(io, store, id, flags));
        } finally {
          await store.close();
        }
      } catch (error) {
        setExit(reportError(io, error));
      }
    });
}

async function list(io: CliIo, store: ReturnType<typeof storeFromSpec>, flags: StatusFlags): Promise<number> {
  const records = await store.list(flags.limit);
  if (flags.json) {
    const brief = records.map((r) => ({
      paymentRequestId: r.paymentRequestId,
      state: r.state,
      final: r.final,
      outcome: r.outcome,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
    }));
    io.out(`${JSON.stringify(brief)}\n`);
    return EXIT.ok;
  }
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  io.out(
    `${records.length} lifecycles shown (newest first, at most ${flags.limit}): ` +
      `${[...counts].map(([state, n]) => `${state} ${n}`).join(', ') || 'none'}\n`,
  );
  if (records.length > 0) {
    io.out(`${table(['paymentRequestId', 'state', 'reason', 'created', 'updated'], records.map(row))}\n`);
  }
  return EXIT.ok;
}

async function show(
  io: CliIo,
  store: ReturnType<typeof storeFromSpec>,
  id: string,
  flags: StatusFlags,
): Promise<number> {
  const record = await store.load(id);
  const notifications = await store.notifications(id);
  if (!record) {
    io.err(
      notifications.length > 0
        ? `${id} is not tracked in this store, but ${notifications.length} notification(s) for it wait in the inbox until it is.\n`
        : `${id} is not in this store.\n`,
    );
    return EXIT.negative;
  }
  const audit = await store.audit(id);
  if (flags.json) {
    io.out(`${JSON.stringify({ record: { ...record, snapshot: undefined }, audit, notifications })}\n`);
    return EXIT.ok;
  }
  const input = record.input;
  io.out(`${id}: ${record.state}${record.final ? ' (final)' : ''}, version ${record.version}\n`);
  io.out(
    `  created ${iso(record.createdAt)}, updated ${iso(record.updatedAt)}` +
      (input.expiresAt !== undefined ? `, expires ${iso(input.expiresAt)}` : '') +
      '\n',
  );
  if (record.outcome) {
    const o = record.outcome;
    io.out(
      `  outcome ${o.status}, decided by ${o.decidedBy.source} (${o.decidedBy.code}) at ${iso(o.decidedAt)}; ` +
        `inquiries ${o.inquiries}, cancel attempts ${o.cancelAttempts}` +
        (o.attentionReason ? `; needs a person: ${o.attentionReason}` : '') +
        `; settlement ${record.settledFired ? 'fired' : 'not yet fired'}\n`,
    );
  }
  io.out('\nAudit history\n');
  io.out(
    `${table(
      ['at', 'from', 'to', 'event', 'code'],
      audit.map((a) => [iso(a.at), a.from || '(new)', a.to, a.event, a.code ?? '']),
    )}\n`,
  );
  io.out(`\nNotifications: ${notifications.length}\n`);
  if (notifications.length > 0) {
    io.out(
      `${table(
        ['received', 'result', 'applied', 'id'],
        notifications.map((n) => [
          iso(n.receivedAt),
          `${n.body.paymentResult.resultStatus} ${n.body.paymentResult.resultCode}`,
          n.applied ? 'yes' : 'no',
          n.id,
        ]),
      )}\n`,
    );
  }
  return EXIT.ok;
}
