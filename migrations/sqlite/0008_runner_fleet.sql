-- Every runner process, so that a fleet can be seen (`/runners`) and a silent runner told
-- from a busy one. `id` is the process's own (what `runs.runner` holds); `name` is the
-- configured name, which a restarted runner takes over. `labels` is a JSON array.
CREATE TABLE runners (
    id           TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    labels       TEXT    NOT NULL,
    capacity     INTEGER NOT NULL,
    version      TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

-- The labels a run's pipelines ask for (`runs_on`), learnt by the first runner that read
-- them. A runner claims only runs none of whose labels it lacks; a run with no rows here is
-- open to all, until read.
CREATE TABLE run_labels (
    run_id BIGINT NOT NULL REFERENCES runs (id),
    label  TEXT   NOT NULL,
    PRIMARY KEY (run_id, label)
);

-- Runs a lost runner held are found by their heartbeat.
CREATE INDEX runs_running_by_heartbeat ON runs (heartbeat_at) WHERE state = 'running';

-- Superseding looks, before every claim, for a newer run of the same repo and ref: an index
-- probe per queued run, not a scan of the repo's newer runs (a deep queue made that
-- quadratic).
CREATE INDEX runs_by_ref ON runs (repo, git_ref, id);
