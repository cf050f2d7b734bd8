-- The pull requests seen closed or merged, so that a repo's overview lists the open ones: a
-- pull request is open while its newest run is newer than its last close (reopening it
-- runs it again).
CREATE TABLE pull_request_closes (
    forge     TEXT    NOT NULL,
    repo      TEXT    NOT NULL,
    number    INTEGER NOT NULL,
    closed_at INTEGER NOT NULL,
    merged    INTEGER NOT NULL,
    PRIMARY KEY (forge, repo, number)
);
