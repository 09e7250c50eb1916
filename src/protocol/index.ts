export * from './cancel-payment.js';
export * from './common.js';
export * from './inquiry-payment.js';
export * from './notify-payment.js';
export * from './pay.js';
export * from './refund.js';
export * from './result-codes.js';
