import { type DecisionSketch, SketchBuilder } from '../../machines/decision-model.js';
import { seededRandom } from '../../src/simulator/random.js';

/** A sketch of `count` decisions, lognormal around `medianMs` (σ 0.5), drawn from `seed`. */
export function sketchOf(count: number, medianMs: number, seed = 7): DecisionSketch {
  const random = seededRandom(seed);
  const builder = new SketchBuilder();
  for (let i = 0; i < count; i++) {
    const u = Math.max(random(), 1e-12);
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
    const at = medianMs * Math.exp(0.5 * z);
    builder.add({ decided: true, after: at, by: at });
  }
  return builder.toSketch();
}
