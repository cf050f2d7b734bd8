-- What Flux and Argo CD reported, one row per change of what an object applied: a report
-- that repeats the object's last revision and outcome (Flux repeats success every interval)
-- is not stored again. Settled by a runner once its deployments are updated.
CREATE TABLE deploy_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT    NOT NULL, -- flux | argocd
    object      TEXT    NOT NULL, -- namespace/name, or the application
    environment TEXT    NOT NULL,
    revision    TEXT    NOT NULL,
    outcome     TEXT    NOT NULL, -- applied | failed | progressing
    message     TEXT,
    received_at INTEGER NOT NULL,
    claimed_at  INTEGER,
    settled_at  INTEGER
);

CREATE INDEX deploy_events_by_object ON deploy_events (source, object, id);
CREATE INDEX deploy_events_unsettled ON deploy_events (settled_at, id);

-- Each bump's way to each environment its file deploys to: pending from its push until a
-- revision that contains it is applied (success) or fails to apply (failure).
CREATE TABLE deployments (
    bump_id     INTEGER NOT NULL REFERENCES bumps (id),
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    environment TEXT    NOT NULL,
    state       TEXT    NOT NULL, -- pending | success | failure
    revision    TEXT,
    message     TEXT,
    pushed_at   INTEGER NOT NULL,
    settled_at  INTEGER,
    PRIMARY KEY (bump_id, environment)
);

CREATE INDEX deployments_by_run ON deployments (run_id);
CREATE INDEX deployments_open ON deployments (environment, state);
