/**
 * `npm run bench`: runs every benchmark in turn. Each prints its figures and the machine; none
 * asserts a time. The engine bench needs --expose-gc for exact heap figures, so it runs in a child.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runOverheadBench } from './engine-overhead.js';
import { runSigningBench } from './signing.js';

await runSigningBench();
await runOverheadBench();
spawnSync(
  process.execPath,
  ['--expose-gc', '--import', 'tsx', fileURLToPath(new URL('./engine.ts', import.meta.url))],
  {
    stdio: 'inherit',
  },
);
await (await import('./scale-out.js')).runScaleOutBench();
