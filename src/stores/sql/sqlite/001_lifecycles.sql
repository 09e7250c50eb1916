-- One row per payment lifecycle: the persisted XState snapshot and what the engine needs around it.
CREATE TABLE lifecycles (
  payment_request_id TEXT PRIMARY KEY,
  version            INTEGER NOT NULL,
  state              TEXT    NOT NULL,
  final              INTEGER NOT NULL,
  settled_fired      INTEGER NOT NULL DEFAULT 0,
  input              TEXT    NOT NULL,
  snapshot           TEXT    NOT NULL,
  outcome            TEXT,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL
);

-- What start() resumes: unfinished lifecycles, and finished ones whose settlement has not fired.
CREATE INDEX lifecycles_resumable ON lifecycles (final, settled_fired);

-- Every transition, for auditors.
CREATE TABLE audit_log (
  id                 INTEGER PRIMARY KEY AUTOINCREMENT,
  payment_request_id TEXT    NOT NULL,
  at                 INTEGER NOT NULL,
  from_state         TEXT    NOT NULL,
  to_state           TEXT    NOT NULL,
  event              TEXT    NOT NULL,
  code               TEXT
);
CREATE INDEX audit_log_by_payment ON audit_log (payment_request_id, id);

-- Verified notifications, stored before they are acknowledged. The id is a digest of the raw body,
-- so Alipay+'s retries of one notification are stored once.
CREATE TABLE notifications (
  id                 TEXT    PRIMARY KEY,
  payment_request_id TEXT    NOT NULL,
  received_at        INTEGER NOT NULL,
  body               TEXT    NOT NULL,
  applied            INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notifications_by_payment ON notifications (payment_request_id, applied);
