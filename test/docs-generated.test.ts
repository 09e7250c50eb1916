import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PAY_DECISION_TABLE } from '../machines/index.js';
import { embedDiagram, lifecycleJson, lifecycleMermaid } from '../src/diagram.js';
import { resultTableMarkdown } from '../src/result-table-doc.js';

const committed = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

describe('generated docs are up to date (run `npm run diagram` after changing the machine)', () => {
  it.each([
    ['docs/lifecycle.mmd', lifecycleMermaid],
    ['docs/lifecycle.json', lifecycleJson],
    ['docs/result-table.md', resultTableMarkdown],
    ['docs/architecture.md', () => embedDiagram(committed('docs/architecture.md'))],
    ['README.md', () => embedDiagram(committed('README.md'))],
  ])('%s', (path, generate) => {
    expect(committed(path)).toBe(generate());
  });

  it('architecture.md embeds the diagram', () => {
    expect(committed('docs/architecture.md')).toContain(lifecycleMermaid());
  });

  it('the diagram shows every state and every guard of the decision table', () => {
    const mermaid = lifecycleMermaid();
    for (const state of [
      'pending',
      'inquiring',
      'deciding',
      'waiting',
      'lastLook',
      'requesting',
      'retryWait',
      'starting',
      'checking',
      'sending',
    ]) {
      expect(mermaid).toContain(`${state} -->`);
    }
    for (const parent of ['paying', 'awaitingResult', 'cancelling', 'windowClosed', 'refunding']) {
      expect(mermaid).toContain(`state ${parent} {`);
    }
    for (const final of ['succeeded', 'failed', 'closed', 'cancelled', 'refunded', 'attention']) {
      expect(mermaid).toContain(`${final} --> [*]`);
    }
    for (const guard of [
      'isPaid',
      'isOrderClosed',
      'isPaymentFailed',
      'isStillProcessing',
      'isOrderNotYetKnown',
      ...PAY_DECISION_TABLE.map((row) => row.guard),
      'isPaidWithAutoRefund',
      'isWindowCheckBudgetSpent',
      'isRefunded',
      'isRefundRefused',
      'isCancelOfUnknownExpiredOrder',
    ]) {
      expect(mermaid).toContain(`[${guard}]`);
    }
  });
});
