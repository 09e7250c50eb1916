-- The adaptive inquiry schedule's learned decision-delay sketches, shared by every worker: one row per
-- wallet key ('' is every wallet together). `sketch` is the DecisionSketch as JSON text (read and
-- checked by the store, so that a value it cannot read counts as empty instead of failing the write);
-- `samples` repeats its observation count for people reading the table. `updated_at` is epoch ms.
-- `revision` counts the row's merges: a worker reads and parses again only the sketches that changed.
CREATE TABLE __SCHEMA__.decision_sketches (
  wallet_key text   PRIMARY KEY,
  sketch     text   NOT NULL,
  samples    bigint NOT NULL,
  updated_at bigint NOT NULL,
  revision   bigint NOT NULL DEFAULT 0
);
