-- What the runner needs to own a run: who claimed it, when it last said it is alive, how
-- often it was claimed (a run interrupted by a crash is queued again once), and a cancel
-- request that any replica can set and the owning runner sees.
ALTER TABLE runs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN runner TEXT;
ALTER TABLE runs ADD COLUMN heartbeat_at BIGINT;
ALTER TABLE runs ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN description TEXT;

-- One row per pipeline file of a run: its result, or why it did not run.
CREATE TABLE run_pipelines (
    run_id      BIGINT NOT NULL REFERENCES runs (id),
    pipeline    TEXT    NOT NULL,
    file        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    description TEXT,
    PRIMARY KEY (run_id, pipeline)
);

CREATE TABLE stages (
    run_id      BIGINT NOT NULL REFERENCES runs (id),
    pipeline    TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    position    BIGINT NOT NULL,
    state       TEXT    NOT NULL,
    exit_code   BIGINT,
    message     TEXT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    started_at  BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (run_id, pipeline, stage)
);

-- Stage output in chunks of many lines: one row per line would cost too much for loud
-- stages. `first_line` numbers lines per stage from 1, for replay from a given line.
CREATE TABLE log_chunks (
    id         BIGSERIAL PRIMARY KEY,
    run_id     BIGINT NOT NULL REFERENCES runs (id),
    pipeline   TEXT    NOT NULL,
    stage      TEXT    NOT NULL,
    first_line BIGINT NOT NULL,
    line_count BIGINT NOT NULL,
    text       TEXT    NOT NULL
);

CREATE INDEX log_chunks_by_run ON log_chunks (run_id, id);

-- A random id for this installation (every replica of it shares the store), carried in
-- the labels of what its runners create: two installations on one Docker engine never
-- take each other's containers for their own leftovers.
CREATE TABLE installation (
    id TEXT NOT NULL PRIMARY KEY
);
