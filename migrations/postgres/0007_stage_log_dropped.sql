-- Bytes of a stage's output dropped beyond `runner.max_log_size`: a log cut by the cap
-- says so on the run.
ALTER TABLE stages ADD COLUMN log_dropped BIGINT NOT NULL DEFAULT 0;
