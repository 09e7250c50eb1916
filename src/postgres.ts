// `alipayplus-lifecycle/postgres`: the store for several workers over PostgreSQL (leases with fencing,
// adoption of a dead worker's lifecycles, notifications routed to the owner). It needs the npm package
// `pg`, an optional peer dependency: `npm install pg`. Without it, postgresStore() throws
// DRIVER_MISSING.
export { type PostgresStoreOptions, postgresStore } from './stores/postgres-store.js';
export type { SharedLifecycleStore } from './stores/store.js';
