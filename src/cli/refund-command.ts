import { Command } from 'commander';
import type { LifecycleOutcome } from '../../machines/outcome.js';
import { REFUND_DUE_REASON, refundRequestIdFor } from '../../machines/refund-request-id.js';
import { createAlipayPlusClient } from '../client/alipayplus-client.js';
import type { RefundOutcome } from '../client/answers.js';
import type { Amount } from '../protocol/common.js';
import type { RefundRequestInput } from '../protocol/refund.js';
import { DEFAULT_SQLITE_PATH } from '../stores/sqlite-store.js';
import type { LifecycleRecord } from '../stores/store.js';
import {
  CliSettingError,
  describeStore,
  interruptSignal,
  parseStoreSpec,
  reportError,
  type StoreSpec,
  storeFromSpec,
} from './common.js';
import { clientOptionsOf, type EndpointFlags, resolveEndpointSettings } from './config.js';
import { endpointOptions } from './endpoint-options.js';
import { type CliIo, EXIT } from './io.js';
import { number } from './simulator-command.js';

interface RefundFlags extends EndpointFlags {
  force?: boolean;
  reason?: string;
  retries: number;
  retryDelay: number;
  json?: boolean;
}

/** The engine's own reason (autoRefund), so that a refund sent here is the identical request. */
const FORCED_REASON = 'refund requested by the merchant';
/** The backoff doubles from `--retry-delay` up to this. */
const MAX_RETRY_DELAY_MS = 30_000;

/** Whether an answer the lifecycle received showed the payment paid (the money may be owed back). */
function shownPaid(outcome: LifecycleOutcome): boolean {
  return (
    outcome.status === 'succeeded' ||
    outcome.attentionReason === 'refund-due' ||
    outcome.attentionReason === 'refund-refused' ||
    outcome.details.paymentTime !== undefined
  );
}

/**
 * Refuses, with what to do instead, any payment this command must not refund: not in the store, not
 * final, already refunded, never shown paid, or (without --force) final for another reason than
 * `refund-due`.
 */
function checkRefundable(id: string, record: LifecycleRecord | undefined, spec: StoreSpec, force: boolean) {
  const store = describeStore(spec);
  if (!record) {
    throw new CliSettingError(
      'id',
      `${id} is not in the store ${store}: give --store with the store its lifecycle was kept in (alipayplus-lifecycle status --store ... lists them); nothing was sent`,
    );
  }
  const outcome = record.outcome;
  if (!record.final || !outcome) {
    throw new CliSettingError(
      'id',
      `${id} is not final yet (${record.state}): its lifecycle decides first whether money is owed back. Follow it with alipayplus-lifecycle track --request-id ${id} --store ${store}; nothing was sent`,
    );
  }
  const what = `${outcome.status}${outcome.attentionReason ? ` (${outcome.attentionReason})` : ''}`;
  if (outcome.status === 'refunded') {
    const r = outcome.refund;
    throw new CliSettingError(
      'id',
      `${id} was already refunded by its lifecycle${r ? ` (refundRequestId ${r.refundRequestId}${r.refundId ? `, refundId ${r.refundId}` : ''})` : ''}: nothing to do; nothing was sent`,
    );
  }
  if (outcome.attentionReason === 'refund-due') return outcome;
  if (!shownPaid(outcome)) {
    throw new CliSettingError(
      'id',
      outcome.status === 'attention'
        ? `${id} is ${what}: no answer showed it paid, so its result is unknown. Inquire it first (alipayplus-lifecycle inquire --request-id ${id}) and refund only what an answer shows paid; nothing was sent`
        : `${id} is ${what}: no answer showed it paid${outcome.status === 'cancelled' ? ' (a cancel gives the money back itself)' : ''}, so there is nothing to refund; nothing was sent`,
    );
  }
  if (!force) {
    throw new CliSettingError(
      'id',
      `${id} is ${what}, not refund-due: its lifecycle owes nothing back. To refund it all the same (a customer return, say), add --force; nothing was sent`,
    );
  }
  return outcome;
}

/** The refund request: always the same for a payment (key, reference, amount), so a repeat refunds once. */
function refundRequestOf(
  id: string,
  record: LifecycleRecord,
  outcome: LifecycleOutcome,
  reason: string,
): RefundRequestInput {
  const amount: Amount | undefined = outcome.details.paymentAmount ?? record.input.amount;
  if (!amount) {
    throw new CliSettingError(
      'id',
      `no amount is known for ${id} (no answer carried paymentAmount and it was tracked without one); nothing was sent`,
    );
  }
  const paymentId = outcome.paymentId ?? outcome.details.paymentId ?? record.input.paymentId;
  return {
    refundRequestId: refundRequestIdFor(id),
    ...(paymentId ? { paymentId } : { paymentRequestId: id }),
    refundAmount: { currency: amount.currency, value: amount.value },
    refundReason: reason,
  };
}

function describeAnswer(outcome: RefundOutcome): string {
  if (outcome.kind === 'no-result') {
    const status = outcome.httpStatus === undefined ? '' : `HTTP ${outcome.httpStatus}`;
    const detail = outcome.detail && outcome.detail !== status ? `: ${outcome.detail}` : '';
    return `no result (${outcome.reason}${status ? `, ${status}` : ''})${detail}`;
  }
  const r = outcome.result;
  return `${r.resultStatus} ${r.resultCode}${r.resultMessage ? ` (${r.resultMessage})` : ''}`;
}

const waitText = (ms: number) => (ms < 1_000 ? `${ms} ms` : `${(ms / 1_000).toFixed(1)} s`);

/** Waits `ms` real ms, or less when interrupted; resolves true when interrupted. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(true);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(false);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(true);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** `refund ID`: the one-call remedy for a payment in attention, refund-due. */
export function refundCommand(io: CliIo, setExit: (code: number) => void): Command {
  return endpointOptions(
    new Command('refund')
      .description(
        'refund a payment whose lifecycle ended in attention (refund-due): the paid amount, once, with the refundRequestId derived from the payment',
      )
      .argument('<id>', 'the paymentRequestId')
      .option(
        '--store <spec>',
        `sqlite:PATH where its lifecycle is kept (default sqlite:${DEFAULT_SQLITE_PATH})`,
        parseStoreSpec,
      )
      .option(
        '--force',
        'also refund a final payment that is not refund-due but that an answer showed paid (e.g. succeeded)',
      )
      .option(
        '--reason <text>',
        `refundReason (default "${REFUND_DUE_REASON}"; with --force "${FORCED_REASON}")`,
      )
      .option(
        '--retries <n>',
        'times to send the identical request again after U or no result',
        number('--retries', 0, 100),
        5,
      )
      .option(
        '--retry-delay <ms>',
        `wait before the first resend, doubling each time up to ${MAX_RETRY_DELAY_MS / 1000} s`,
        number('--retry-delay', 0, MAX_RETRY_DELAY_MS),
        1_000,
      )
      .option('--json', 'print the request, every attempt and the result as one JSON object'),
  )
    .addHelpText(
      'after',
      'The refundRequestId is derived from the paymentRequestId (<id>-RF; a hash for long IDs), so running this\n' +
        'again, or after a refund the engine sent itself, never refunds twice. The stored lifecycle is not changed.\n' +
        'Exit codes: 0 refunded (S); 1 refused (F: a person must look) or still unknown after the retries (safe\n' +
        'to run again); 2 bad usage or settings, or a payment this command must not refund (nothing sent);\n' +
        '130 interrupted (safe to run again).\n',
    )
    .action(async (id: string, flags: RefundFlags) => {
      const interrupt = interruptSignal();
      try {
        const settings = resolveEndpointSettings(flags);
        const spec: StoreSpec = settings.store ?? { kind: 'sqlite', path: DEFAULT_SQLITE_PATH };
        if (spec.kind !== 'sqlite') {
          throw new CliSettingError(
            '--store',
            'a memory store lives only inside the process that made it: give --store sqlite:PATH',
          );
        }
        const store = storeFromSpec(spec, { mustExist: true });
        let record: LifecycleRecord | undefined;
        await store.open();
        try {
          record = await store.load(id);
        } finally {
          await store.close();
        }
        const outcome = checkRefundable(id, record, spec, flags.force === true);
        const reason =
          flags.reason ?? (outcome.attentionReason === 'refund-due' ? REFUND_DUE_REASON : FORCED_REASON);
        const request = refundRequestOf(id, record as LifecycleRecord, outcome, reason);
        const client = createAlipayPlusClient(clientOptionsOf(settings));
        try {
          setExit(await sendRefund(io, flags, id, outcome, request, client, interrupt.signal));
        } finally {
          await client.close();
        }
      } catch (error) {
        setExit(reportError(io, error));
      } finally {
        interrupt.dispose();
      }
    });
}

async function sendRefund(
  io: CliIo,
  flags: RefundFlags,
  id: string,
  outcome: LifecycleOutcome,
  request: RefundRequestInput,
  client: ReturnType<typeof createAlipayPlusClient>,
  signal: AbortSignal,
): Promise<number> {
  const text = (line: string) => {
    if (!flags.json) io.out(`${line}\n`);
  };
  const by = request.paymentId ? `paymentId ${request.paymentId}` : `paymentRequestId ${id}`;
  text(
    `Refund ${id} (${outcome.status}${outcome.attentionReason ? `, ${outcome.attentionReason}` : ''}): ` +
      `${request.refundAmount.value} ${request.refundAmount.currency} by ${by}, refundRequestId ${request.refundRequestId}`,
  );
  const again = `It is safe to run this command again: it sends the same refundRequestId ${request.refundRequestId}, which Alipay+ refunds at most once.`;
  const attempts: { at: string; answer: RefundOutcome }[] = [];
  let answer: RefundOutcome | undefined;
  let interrupted = false;
  let delay = flags.retryDelay;
  for (let attempt = 1; attempt <= flags.retries + 1; attempt++) {
    answer = await client.refund(request, { signal });
    attempts.push({ at: new Date().toISOString(), answer });
    const decided = answer.kind === 'answer' && answer.result.resultStatus !== 'U';
    const last = attempt === flags.retries + 1;
    text(
      `  attempt ${attempt}: ${describeAnswer(answer)}` +
        (decided || last ? '' : `; the identical request again in ${waitText(delay)}`),
    );
    if (decided || last) break;
    if (await pause(delay, signal)) {
      interrupted = true;
      break;
    }
    delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
  }
  const final = answer as RefundOutcome;
  const status = final.kind === 'answer' ? final.result.resultStatus : undefined;
  const result =
    status === 'S'
      ? 'refunded'
      : status === 'F'
        ? 'refused'
        : interrupted || signal.aborted
          ? 'interrupted'
          : 'unknown';
  if (flags.json) {
    io.out(
      `${JSON.stringify({ refund: { paymentRequestId: id, result, request, attempts: attempts.length, answers: attempts } })}\n`,
    );
  }
  switch (result) {
    case 'refunded': {
      const s = final as Extract<RefundOutcome, { kind: 'answer' }>;
      const amount = s.refundAmount ?? request.refundAmount;
      text(
        `Refunded: ${amount.value} ${amount.currency}${s.refundId ? `, refundId ${s.refundId}` : ''}${s.refundTime ? ` at ${s.refundTime}` : ''}.`,
      );
      text(
        `The stored lifecycle stays ${outcome.status}${outcome.attentionReason ? ` (${outcome.attentionReason})` : ''}; Alipay+ keeps the refund, and running this again answers the same refund.`,
      );
      return EXIT.ok;
    }
    case 'refused':
      text(
        `Refund refused (${describeAnswer(final)}): a person must look; see docs/result-table.md. Running this again gets the same answer.`,
      );
      return EXIT.negative;
    case 'interrupted':
      io.err(`interrupted before the refund's result was known. ${again}\n`);
      return EXIT.interrupted;
    default:
      text(`The refund's result is still unknown after ${attempts.length} attempts. ${again}`);
      return EXIT.negative;
  }
}
