export * from './alipayplus-client.js';
export * from './answers.js';
export * from './keys.js';
export * from './signature.js';
