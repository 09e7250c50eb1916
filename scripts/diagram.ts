/** `npm run diagram`: writes the generated docs. A test fails when the committed ones are stale. */
import { readFileSync, writeFileSync } from 'node:fs';
import { embedDiagram, lifecycleJson, lifecycleMermaid } from '../src/diagram.js';
import { resultTableMarkdown } from '../src/result-table-doc.js';

const at = (path: string) => new URL(`../${path}`, import.meta.url);
const outputs: Record<string, string> = {
  'docs/lifecycle.mmd': lifecycleMermaid(),
  'docs/lifecycle.json': lifecycleJson(),
  'docs/result-table.md': resultTableMarkdown(),
};
for (const path of ['docs/architecture.md', 'README.md']) {
  outputs[path] = embedDiagram(readFileSync(at(path), 'utf8'));
}
for (const [path, text] of Object.entries(outputs)) {
  writeFileSync(at(path), text);
  console.log(`wrote ${path}`);
}
