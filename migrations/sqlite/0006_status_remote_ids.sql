-- What a delivered update created on the forge, when later updates must refer to it: a
-- GitHub check run's id, so the next state of that pipeline updates the same check run
-- instead of adding another.
ALTER TABLE status_updates ADD COLUMN remote_id TEXT;
