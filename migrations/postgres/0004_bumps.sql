-- What each bump stage did to its config repo: the values it changed, and the commit or
-- pull request that carries them (or why it failed).
CREATE TABLE bumps (
    id           BIGSERIAL PRIMARY KEY,
    run_id       BIGINT  NOT NULL REFERENCES runs (id),
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
    created_at   BIGINT  NOT NULL
);

CREATE INDEX bumps_by_run ON bumps (run_id, id);
