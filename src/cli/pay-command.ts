import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { PAY_DECISION_TABLE } from '../../machines/decision-table.js';
import type { PaymentView } from '../engine/payment-engine.js';
import { DEFAULT_PAYMENT_METHOD_TYPE, PayRequest, type PayRequestInput } from '../protocol/pay.js';
import { DEFAULT_SQLITE_PATH } from '../stores/sqlite-store.js';
import { formatIssues } from '../validate.js';
import { CliSettingError, parseStoreSpec, reportError } from './common.js';
import { endpointOptions } from './endpoint-options.js';
import { inspectOptions } from './inspection.js';
import type { CliIo } from './io.js';
import { iso, type LifecycleFlags, runLifecycle } from './lifecycle-run.js';
import { METRICS_PORT_HELP, metricsPort } from './metrics-server.js';

interface PayFlags extends LifecycleFlags {
  request: string;
}

const NOTHING_DONE = 'nothing was stored or sent';

/** Reads `--request FILE` (or `-`, standard input) as JSON. */
async function readRequest(io: CliIo, file: string): Promise<unknown> {
  const where = file === '-' ? 'on standard input' : `in ${file}`;
  let text: string;
  if (file === '-') {
    if (!io.readStdin) {
      throw new CliSettingError('--request', `standard input cannot be read here: give --request FILE`);
    }
    text = await io.readStdin();
  } else {
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new CliSettingError(
        '--request',
        `cannot read the pay request ${file} (${(error as Error).message}); ${NOTHING_DONE}`,
      );
    }
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CliSettingError(
      '--request',
      `the pay request ${where} is not JSON (${(error as Error).message}); ${NOTHING_DONE}`,
    );
  }
}

/**
 * Checks the request as the engine will (its mode's required fields, an expiry still ahead) before
 * any store, client or file is opened, so that a bad request leaves no trace at all. The engine
 * checks it again; this only makes sure that nothing is opened for a request it would refuse.
 */
function checkRequest(json: unknown, file: string): PayRequestInput {
  const where = file === '-' ? 'on standard input' : `in ${file}`;
  const refuse = (why: string) =>
    new CliSettingError('--request', `the pay request ${where} is invalid: ${why}; ${NOTHING_DONE}`);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw refuse('(root): must be a JSON object with the Alipay+ pay fields');
  }
  const given = json as { paymentMethod?: unknown; paymentExpiryTime?: unknown };
  // As the engine completes it: the payment method type has a default (spec §8).
  const method = typeof given.paymentMethod === 'object' && given.paymentMethod ? given.paymentMethod : {};
  const completed = {
    ...given,
    paymentMethod: { paymentMethodType: DEFAULT_PAYMENT_METHOD_TYPE, ...method },
  };
  const parsed = PayRequest.safeParse(completed);
  if (!parsed.success) throw refuse(formatIssues(parsed.error).join('; '));
  const expiry = parsed.data.paymentExpiryTime;
  if (expiry && Date.parse(expiry) <= Date.now()) {
    throw refuse(
      `paymentExpiryTime ${expiry} has passed: a pay must be sent before it expires; give a later expiry, or none for the mode's maximum`,
    );
  }
  return json as PayRequestInput;
}

/** The pay's answer as the lifecycle classified it, for people and for `--json`. */
export function payAnswer(view: PaymentView): { lines: string[]; json: Record<string, unknown> } {
  const { context } = view;
  const pay = context.pay;
  const row = pay?.row;
  const meaning = PAY_DECISION_TABLE.find((r) => r.id === row)?.meaning;
  const head = `Pay ${view.paymentRequestId} (${pay?.mode ?? 'unknown mode'})`;
  const lines = [
    row
      ? `${head}: ${row} (${pay?.lastCode ?? '?'}): ${meaning}`
      : `${head}: no answer classified (${pay?.lastCode ?? 'none'}); the lifecycle is in ${view.state}`,
  ];
  const { orderCodeForm, paymentUrl } = context.details;
  for (const code of orderCodeForm?.codeDetails ?? []) {
    lines.push(`  order code (${code.codeValueType}), for the user to scan: ${code.codeValue}`);
  }
  if (orderCodeForm?.expireTime) lines.push(`  the code expires ${orderCodeForm.expireTime}`);
  if (paymentUrl) lines.push(`  entry code, the page the user opens: ${paymentUrl}`);
  if (!view.final) {
    lines.push(
      `Waiting for the outcome: ${view.state}; expires ${iso(context.expiresAt)}, cancel window ends ${iso(context.cancelWindowEndsAt)}`,
    );
  }
  const json: Record<string, unknown> = {
    paymentRequestId: view.paymentRequestId,
    mode: pay?.mode,
    row,
    code: pay?.lastCode,
    state: view.state,
  };
  if (orderCodeForm) json.orderCodeForm = orderCodeForm;
  if (paymentUrl) json.paymentUrl = paymentUrl;
  return { lines, json: { pay: json } };
}

/** `pay`: sends one pay through the engine (stored before it is sent) and follows it to its outcome. */
export function payCommand(io: CliIo, setExit: (code: number) => void): Command {
  return inspectOptions(
    endpointOptions(
      new Command('pay')
        .description(
          'send one pay (stored durably first) to the configured endpoint and follow it to its final outcome',
        )
        .requiredOption(
          '--request <file>',
          'the pay request as JSON (Alipay+ field names; "-" reads standard input)',
        )
        .option(
          '--store <spec>',
          `sqlite:PATH or memory (default sqlite:${DEFAULT_SQLITE_PATH})`,
          parseStoreSpec,
        )
        .option('--json', 'print each transition, the pay answer and the outcome as JSON lines')
        .option('--metrics-port <n>', METRICS_PORT_HELP, metricsPort),
    ),
  )
    .addHelpText(
      'after',
      'The request is checked for its mode (PaymentCode, OrderCode, EntryCode or cashier) before anything is\n' +
        'stored or sent; paymentMethodType defaults to CONNECT_WALLET, and paymentExpiryTime is always sent,\n' +
        'capped at the mode maximum. The same request again (same paymentRequestId and content) resumes the\n' +
        'stored lifecycle and sends nothing twice; other content under that ID is refused.\n' +
        'Notifications are not received here: after an unknown answer the lifecycle polls and cancels at expiry.\n' +
        'Exit codes: 0 a final outcome (succeeded, failed, closed, cancelled, refunded); 1 attention (a person\n' +
        'must act) or a failure while running; 2 bad usage, settings or request (nothing stored or sent);\n' +
        '130 interrupted (the lifecycle stays stored).\n',
    )
    .action(async (flags: PayFlags) => {
      let request: PayRequestInput;
      try {
        request = checkRequest(await readRequest(io, flags.request), flags.request);
      } catch (error) {
        setExit(reportError(io, error));
        return;
      }
      const id = request.paymentRequestId;
      let resumed: string | undefined;
      await runLifecycle(io, setExit, flags, {
        id,
        async start(engine) {
          const stored = await engine.store.load(id);
          if (stored) resumed = stored.state;
          return engine.pay(request);
        },
        started(view) {
          const answer = payAnswer(view);
          if (resumed !== undefined) {
            answer.lines.unshift(
              `${id} was already started in this store (${resumed}): the same request resumes it; nothing is sent twice.`,
            );
            answer.json.resumed = resumed;
          }
          return answer;
        },
      });
    });
}
