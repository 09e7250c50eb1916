-- One row per payment lifecycle. `owner`, `epoch` and `lease_expires_at` are the scale-out fields:
-- a worker writes only rows it owns at the epoch it adopted them with (fencing).
CREATE TABLE __SCHEMA__.lifecycles (
  payment_request_id text        PRIMARY KEY,
  version            bigint      NOT NULL,
  state              text        NOT NULL,
  final              boolean     NOT NULL,
  settled_fired      boolean     NOT NULL DEFAULT false,
  input              jsonb       NOT NULL,
  snapshot           jsonb       NOT NULL,
  outcome            jsonb,
  created_at         bigint      NOT NULL,
  updated_at         bigint      NOT NULL,
  owner              text,
  epoch              bigint      NOT NULL DEFAULT 0,
  lease_expires_at   timestamptz
);

-- Adoption looks for unfinished (or unsettled) lifecycles whose lease ran out.
CREATE INDEX lifecycles_adoptable ON __SCHEMA__.lifecycles (lease_expires_at)
  WHERE final = false OR settled_fired = false;
CREATE INDEX lifecycles_by_owner ON __SCHEMA__.lifecycles (owner)
  WHERE final = false OR settled_fired = false;

CREATE TABLE __SCHEMA__.audit_log (
  id                 bigserial PRIMARY KEY,
  payment_request_id text   NOT NULL,
  at                 bigint NOT NULL,
  from_state         text   NOT NULL,
  to_state           text   NOT NULL,
  event              text   NOT NULL,
  code               text
);
CREATE INDEX audit_log_by_payment ON __SCHEMA__.audit_log (payment_request_id, id);

-- The notification inbox: stored before the ack, applied by whichever worker owns the lifecycle.
CREATE TABLE __SCHEMA__.notifications (
  id                 text    PRIMARY KEY,
  payment_request_id text    NOT NULL,
  received_at        bigint  NOT NULL,
  body               jsonb   NOT NULL,
  applied            boolean NOT NULL DEFAULT false
);
CREATE INDEX notifications_unapplied ON __SCHEMA__.notifications (payment_request_id) WHERE applied = false;

-- Live workers, for spreading adopted lifecycles across them.
CREATE TABLE __SCHEMA__.workers (
  worker_id    text        PRIMARY KEY,
  heartbeat_at timestamptz NOT NULL
);
