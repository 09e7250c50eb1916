import { Command } from 'commander';
import { classifyInquiry, type DecisionRow, INQUIRY_DECISION_TABLE } from '../../machines/decision-table.js';
import { createAlipayPlusClient } from '../client/alipayplus-client.js';
import type { InquiryOutcome } from '../client/answers.js';
import type { PaymentRef } from '../protocol/common.js';
import { CliSettingError, reportError } from './common.js';
import { clientOptionsOf, type EndpointFlags, resolveEndpointSettings } from './config.js';
import { endpointOptions } from './endpoint-options.js';
import { type CliIo, EXIT } from './io.js';

interface InquireFlags extends EndpointFlags {
  requestId?: string;
  paymentId?: string;
  json?: boolean;
}

/** Rows after which no lifecycle decision can be made without a person or another try. */
const NEGATIVE_ROWS = new Set(['no-result', 'integration-fault']);

function describeOutcome(outcome: InquiryOutcome): string[] {
  if (outcome.kind === 'no-result') {
    const status = outcome.httpStatus === undefined ? '' : ` (HTTP ${outcome.httpStatus})`;
    return [`No result received: ${outcome.reason}${status}: ${outcome.detail}`];
  }
  const lines = [
    `result:        ${outcome.result.resultStatus} ${outcome.result.resultCode}${outcome.result.resultMessage ? ` (${outcome.result.resultMessage})` : ''}`,
  ];
  if (outcome.paymentResult) {
    const p = outcome.paymentResult;
    lines.push(
      `paymentResult: ${p.resultStatus} ${p.resultCode}${p.resultMessage ? ` (${p.resultMessage})` : ''}`,
    );
  }
  if (outcome.paymentRequestId) lines.push(`paymentRequestId: ${outcome.paymentRequestId}`);
  if (outcome.paymentId) lines.push(`paymentId:     ${outcome.paymentId}`);
  if (outcome.paymentAmount)
    lines.push(`paymentAmount: ${outcome.paymentAmount.value} ${outcome.paymentAmount.currency}`);
  if (outcome.paymentTime) lines.push(`paymentTime:   ${outcome.paymentTime}`);
  lines.push(`Answer (verified, as received): ${outcome.raw}`);
  return lines;
}

function describeRow(row: DecisionRow): string[] {
  return [
    `Decision-table row: ${row.id} (result ${row.result}; paymentResult ${row.paymentResult})`,
    `  ${row.meaning}`,
    `  The lifecycle's guard ${row.guard} leads to: ${row.target}`,
  ];
}

/** `inquire`: one inquiryPayment, the answer, and the decision-table row it falls in. */
export function inquireCommand(io: CliIo, setExit: (code: number) => void): Command {
  return endpointOptions(
    new Command('inquire')
      .description(
        'send one inquiryPayment to the configured endpoint and show the answer and its decision-table row',
      )
      .option('--request-id <id>', 'the paymentRequestId to ask about')
      .option('--payment-id <id>', "Alipay+'s paymentId to ask about")
      .option('--json', 'print {"row", "outcome"} as one JSON object'),
  )
    .addHelpText(
      'after',
      'Exit codes: 0 an answer the lifecycle can act on; 1 no result received (timeout, network, bad\n' +
        'signature, ...) or a row that needs a person (integration-fault); 2 bad usage or settings.\n',
    )
    .action(async (flags: InquireFlags) => {
      try {
        if ((flags.requestId === undefined) === (flags.paymentId === undefined)) {
          throw new CliSettingError(
            '--request-id',
            'give exactly one of --request-id ID or --payment-id ID (Alipay+ is asked by one reference only)',
          );
        }
        const ref: PaymentRef =
          flags.requestId !== undefined
            ? { paymentRequestId: flags.requestId }
            : { paymentId: flags.paymentId as string };
        const client = createAlipayPlusClient(clientOptionsOf(resolveEndpointSettings(flags)));
        let outcome: InquiryOutcome;
        try {
          outcome = await client.inquiryPayment(ref);
        } finally {
          await client.close();
        }
        const rowId = classifyInquiry(outcome);
        const row = INQUIRY_DECISION_TABLE.find((r) => r.id === rowId) as DecisionRow;
        if (flags.json) {
          io.out(`${JSON.stringify({ row: rowId, target: row.target, outcome })}\n`);
        } else {
          io.out(`${[...describeOutcome(outcome), ...describeRow(row)].join('\n')}\n`);
        }
        setExit(NEGATIVE_ROWS.has(rowId) ? EXIT.negative : EXIT.ok);
      } catch (error) {
        setExit(reportError(io, error));
      }
    });
}
