export * from './decision-model.js';
export * from './decision-table.js';
export * from './inquiry-schedule.js';
export * from './outcome.js';
export * from './payment-lifecycle.js';
export * from './policy.js';
export * from './refund-request-id.js';
