-- Commit statuses waiting for, or done with, delivery to the forge: an outbox, so reporting
-- never blocks a run, survives restarts, and retries with backoff. Per (repo, commit,
-- context) only the newest update is ever sent; older waiting ones are superseded.
CREATE TABLE status_updates (
    id              BIGSERIAL PRIMARY KEY,
    run_id          BIGINT NOT NULL REFERENCES runs (id),
    forge           TEXT    NOT NULL,
    repo            TEXT    NOT NULL,
    commit_sha      TEXT    NOT NULL,
    git_ref         TEXT    NOT NULL,
    context         TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    target_url      TEXT    NOT NULL,
    -- waiting | sending | delivered | superseded | failed
    delivery        TEXT    NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);

CREATE INDEX status_updates_due ON status_updates (delivery, next_attempt_at);
CREATE INDEX status_updates_by_key ON status_updates (repo, commit_sha, context, id);
CREATE INDEX status_updates_by_run ON status_updates (run_id, id);
