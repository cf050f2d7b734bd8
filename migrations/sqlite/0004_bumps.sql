-- What each bump stage did to its config repo: the values it changed, and the commit or
-- pull request that carries them (or why it failed).
CREATE TABLE bumps (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    pipeline     TEXT    NOT NULL,
    stage        TEXT    NOT NULL,
    repo         TEXT    NOT NULL,
    branch       TEXT    NOT NULL,
    file         TEXT    NOT NULL,
    image        TEXT    NOT NULL,
    -- JSON array of {line, place, old, new}
    changes      TEXT    NOT NULL,
    commit_sha   TEXT,
    pull_request TEXT,
    error        TEXT,
    created_at   INTEGER NOT NULL
);

CREATE INDEX bumps_by_run ON bumps (run_id, id);
