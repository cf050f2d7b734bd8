-- What each pipeline of a run did with each of its caches: restored (its own key: hit;
-- a restore_keys prefix: restored, from which key and scope) or missed, and whether it
-- saved after the pipeline succeeded; with sizes and times, for the run page and API.
CREATE TABLE run_caches (
    run_id          BIGINT NOT NULL REFERENCES runs (id),
    pipeline        TEXT    NOT NULL,
    cache_key       TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    source_key      TEXT,
    source_scope    TEXT,
    restored_bytes  BIGINT,
    restore_seconds DOUBLE PRECISION NOT NULL,
    saved           TEXT,
    saved_bytes     BIGINT,
    save_seconds    DOUBLE PRECISION,
    PRIMARY KEY (run_id, pipeline, cache_key)
);
