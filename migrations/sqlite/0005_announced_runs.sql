-- When a waiting run's pipelines were announced to the forge as pending (NULL: not yet).
-- Runs wait for a free runner slot; the announcement lets a pull request show its checks
-- as pending meanwhile, instead of nothing.
ALTER TABLE runs ADD COLUMN announced_at INTEGER;

-- Pipelines left pending or running by a run that ended some other way (canceled while
-- queued, superseded, given up after a crash) are found through this index and resolved,
-- so no status on the forge stays pending.
CREATE INDEX run_pipelines_unfinished ON run_pipelines (run_id)
    WHERE state IN ('pending', 'running');
