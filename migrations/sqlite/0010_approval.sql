-- Runs that wait for approval (state 'blocked') before anything of them runs: why they
-- had to wait (NULL: they did not), and who approved or declined them, and when. Kept
-- after the decision, so the run page and API can say who let a stranger's code run.
ALTER TABLE runs ADD COLUMN approval_reason TEXT;
ALTER TABLE runs ADD COLUMN approval_decision TEXT;
ALTER TABLE runs ADD COLUMN approval_by TEXT;
ALTER TABLE runs ADD COLUMN approval_at INTEGER;
