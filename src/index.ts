export * from '../machines/index.js';
export * from './client/index.js';
export { lifecycleJson, lifecycleMermaid } from './diagram.js';
export * from './engine/index.js';
export * from './errors.js';
export * from './protocol/index.js';
export * from './stores/index.js';
