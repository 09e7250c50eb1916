export * from './alipayplus-client.js';
export * from './answers.js';
export {
  createKeyRing,
  type KeyOptions,
  type KeyRing,
  type KeyRingOptions,
  type KeyRingStatus,
  type SigningKey,
  type SigningKeyInput,
} from './key-ring.js';
export * from './keys.js';
export { keyFingerprint, type PublicKeyEntryInput, type PublicKeyStatus } from './public-key-set.js';
export * from './signature.js';
