-- The adaptive inquiry schedule's learned decision-delay sketches: one row per wallet key ('' is every
-- wallet together). `sketch` is the DecisionSketch as JSON, bounded whatever the traffic; `samples`
-- repeats its observation count for people reading the table. `updated_at` is epoch ms of the write.
-- `revision` counts the row's merges: a worker reads and parses again only the sketches that changed.
CREATE TABLE decision_sketches (
  wallet_key TEXT    PRIMARY KEY,
  sketch     TEXT    NOT NULL,
  samples    INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  revision   INTEGER NOT NULL DEFAULT 0
);
