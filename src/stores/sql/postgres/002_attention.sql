-- What a person did about a lifecycle that ended in `attention`: one row per payment, written once.
-- It sits beside the lifecycle row, which keeps the outcome exactly as the lifecycle decided it (and
-- which only its owner may write: a resolution needs no lease).
CREATE TABLE __SCHEMA__.attention_resolutions (
  payment_request_id text   PRIMARY KEY,
  action             text   NOT NULL,
  note               text   NOT NULL,
  resolved_by        text   NOT NULL,
  resolved_at        bigint NOT NULL
);

-- The attention queue reads final lifecycles by outcome status; most lifecycles never need a person,
-- so the index holds only those that did. `numeric`, as an injected clock may stamp fractions of a ms.
CREATE INDEX lifecycles_attention ON __SCHEMA__.lifecycles (((outcome->>'decidedAt')::numeric))
  WHERE final AND outcome->>'status' = 'attention';
