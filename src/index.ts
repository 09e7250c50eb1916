export * from '../machines/index.js';
export * from './client/index.js';
export { lifecycleJson, lifecycleMermaid } from './diagram.js';
export { type AttentionView, ResolveAttentionInput } from './engine/attention.js';
export type { AttentionResolvedEvent } from './engine/engine-events.js';
export * from './engine/index.js';
export {
  ENGINE_METRICS,
  type EngineMetricDescription,
  IN_FLIGHT_STATES,
  METER_NAME,
  type NotificationVerdict,
} from './engine/metrics.js';
export * from './errors.js';
export * from './protocol/index.js';
export * from './stores/index.js';
