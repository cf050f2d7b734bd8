-- Every accepted delivery that asked for a run, keyed by the forge's delivery id so that a
-- redelivery is recognised.
CREATE TABLE deliveries (
    id          BIGSERIAL PRIMARY KEY,
    forge       TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,
    event_name  TEXT    NOT NULL,
    repo        TEXT    NOT NULL,
    received_at BIGINT NOT NULL, -- Unix milliseconds
    UNIQUE (forge, delivery_id)
);

-- One run per delivery: the pipelines of one repo at one commit. `event` is the whole
-- forge-neutral event as JSON, so the runner needs nothing else.
CREATE TABLE runs (
    id             BIGSERIAL PRIMARY KEY,
    delivery       BIGINT NOT NULL REFERENCES deliveries (id),
    forge          TEXT    NOT NULL,
    repo           TEXT    NOT NULL,
    trigger_kind   TEXT    NOT NULL,
    git_ref        TEXT    NOT NULL,
    commit_sha     TEXT    NOT NULL,
    commit_message TEXT,
    pr_number      BIGINT,
    state          TEXT    NOT NULL,
    event          TEXT    NOT NULL,
    created_at     BIGINT NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT
);

CREATE INDEX runs_by_state ON runs (state, id);
CREATE INDEX runs_by_repo ON runs (repo, id);
