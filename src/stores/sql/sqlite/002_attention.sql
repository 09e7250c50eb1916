-- What a person did about a lifecycle that ended in `attention`: one row per payment, written once.
-- It sits beside the lifecycle row, which keeps the outcome exactly as the lifecycle decided it.
CREATE TABLE attention_resolutions (
  payment_request_id TEXT    PRIMARY KEY,
  action             TEXT    NOT NULL,
  note               TEXT    NOT NULL,
  resolved_by        TEXT    NOT NULL,
  resolved_at        INTEGER NOT NULL
);

-- The attention queue reads final lifecycles by outcome status; most lifecycles never need a person,
-- so the index holds only those that did.
CREATE INDEX lifecycles_attention ON lifecycles (json_extract(outcome, '$.decidedAt'))
  WHERE final = 1 AND json_extract(outcome, '$.status') = 'attention';
