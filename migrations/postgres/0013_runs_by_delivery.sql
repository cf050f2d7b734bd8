-- Removing a delivery checks that no run refers to it (the foreign key); without this index
-- each check reads every run, and pruning old runs took minutes instead of seconds.
CREATE INDEX runs_by_delivery ON runs (delivery);
