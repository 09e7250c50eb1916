/**
 * `npm run bench`: runs every benchmark in turn. Each prints its figures and the machine; none
 * asserts a time. The engine bench needs --expose-gc for exact heap figures, so it runs in a child.
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { runOverheadBench } from './engine-overhead.js';
import { scriptArgs } from './machine.js';
import { runPollingBench } from './polling.js';
import { runSigningBench } from './signing.js';

await runSigningBench();
await runPollingBench();
await runOverheadBench();
// One libuv thread signs per spare core: on 2 cores, four signing threads starve the event loop
// (measured side by side: 952 inquiries/s with 4 threads, 1,532/s with 1). See docs/operations.md.
spawnSync(process.execPath, ['--expose-gc', ...scriptArgs('./engine.ts', import.meta.url)], {
  stdio: 'inherit',
  env: {
    ...process.env,
    UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(Math.max(1, cpus().length - 1)),
  },
});
spawnSync(process.execPath, ['--expose-gc', ...scriptArgs('./waiting-heap.ts', import.meta.url)], {
  stdio: 'inherit',
});
await (await import('./overload.js')).runOverloadBench();
await (await import('./scale-out.js')).runScaleOutBench();
await (await import('./scale-100k.js')).runScale100kBench();
