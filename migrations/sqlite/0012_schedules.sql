-- The schedules of each repo's pipelines, as the default branch's files said at its last
-- push, each with when it was first seen (no slot before that is owed).
CREATE TABLE schedules (
    forge    TEXT    NOT NULL,
    repo     TEXT    NOT NULL,
    pipeline TEXT    NOT NULL,
    cron     TEXT    NOT NULL,
    branch   TEXT    NOT NULL,
    since    INTEGER NOT NULL,
    PRIMARY KEY (forge, repo, pipeline, cron, branch)
);

-- Each slot that started a run: the key makes one run per repo, pipeline and slot however
-- many replicas look at the clock.
CREATE TABLE schedule_slots (
    forge    TEXT    NOT NULL,
    repo     TEXT    NOT NULL,
    pipeline TEXT    NOT NULL,
    slot     INTEGER NOT NULL,
    run_id   INTEGER,
    PRIMARY KEY (forge, repo, pipeline, slot)
);
