export * from './client/index.js';
export * from './errors.js';
export * from './protocol/index.js';
