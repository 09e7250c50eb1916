/** `npm run diagram`: writes the generated docs. A test fails when the committed ones are stale. */
import { writeFileSync } from 'node:fs';
import { lifecycleJson, lifecycleMermaid } from '../src/diagram.js';
import { resultTableMarkdown } from '../src/result-table-doc.js';

const outputs: Record<string, string> = {
  'docs/lifecycle.mmd': lifecycleMermaid(),
  'docs/lifecycle.json': lifecycleJson(),
  'docs/result-table.md': resultTableMarkdown(),
};
for (const [path, text] of Object.entries(outputs)) {
  writeFileSync(new URL(`../${path}`, import.meta.url), text);
  console.log(`wrote ${path}`);
}
