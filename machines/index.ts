export * from './decision-table.js';
export * from './outcome.js';
export * from './payment-lifecycle.js';
export * from './policy.js';
export * from './refund-request-id.js';
