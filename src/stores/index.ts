export { memoryStore } from './memory-store.js';
export { type PostgresStoreOptions, postgresStore } from './postgres-store.js';
export { DEFAULT_SQLITE_PATH, type SqliteStoreOptions, sqliteStore } from './sqlite-store.js';
export type {
  AuditEntry,
  LifecycleRecord,
  LifecycleStore,
  LifecycleWrite,
  StoredLifecycleInput,
  StoredNotification,
  WriteConflict,
} from './store.js';
export { isSharedStore, type SharedLifecycleStore } from './store.js';
