export { memoryStore } from './memory-store.js';
export { type PostgresStoreOptions, postgresStore } from './postgres-store.js';
export { DEFAULT_SQLITE_PATH, type SqliteStoreOptions, sqliteStore } from './sqlite-store.js';
export type {
  AttentionAction,
  AttentionItem,
  AttentionResolution,
  AuditEntry,
  LifecycleRecord,
  LifecycleStore,
  LifecycleWrite,
  ResolveAttentionResult,
  StoredLifecycleInput,
  StoredNotification,
  WriteConflict,
} from './store.js';
export { ATTENTION_ACTIONS, isSharedStore, type SharedLifecycleStore } from './store.js';
