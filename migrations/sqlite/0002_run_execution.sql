-- What the runner needs to own a run: who claimed it, when it last said it is alive, how
-- often it was claimed (a run interrupted by a crash is queued again once), and a cancel
-- request that any replica can set and the owning runner sees.
ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN runner TEXT;
ALTER TABLE runs ADD COLUMN heartbeat_at INTEGER;
ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN description TEXT;

-- One row per pipeline file of a run: its result, or why it did not run.
CREATE TABLE run_pipelines (
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    pipeline    TEXT    NOT NULL,
    file        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    description TEXT,
    PRIMARY KEY (run_id, pipeline)
);

CREATE TABLE stages (
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    pipeline    TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    exit_code   INTEGER,
    message     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, pipeline, stage)
);

-- Stage output in chunks of many lines: one row per line would cost too much for loud
-- stages. `first_line` numbers lines per stage from 1, for replay from a given line.
CREATE TABLE log_chunks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    pipeline   TEXT    NOT NULL,
    stage      TEXT    NOT NULL,
    first_line INTEGER NOT NULL,
    line_count INTEGER NOT NULL,
    text       TEXT    NOT NULL
);

CREATE INDEX log_chunks_by_run ON log_chunks (run_id, id);

-- A random id for this installation (every replica of it shares the store), carried in
-- the labels of what its runners create: two installations on one Docker engine never
-- take each other's containers for their own leftovers.
CREATE TABLE installation (
    id TEXT NOT NULL PRIMARY KEY
);
