/** `npm run bench`: runs every benchmark in turn. Each prints its figures; none asserts a time. */
import { runSigningBench } from './signing.js';

await runSigningBench();
