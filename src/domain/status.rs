//! A commit status, in Gantry's terms: what one pipeline tells the forge about one commit.

use super::{CommitSha, Forge, RepoName, StatusState};

/// One status to set on a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub forge: Forge,
    pub repo: RepoName,
    pub sha: CommitSha,
    /// The branch (GitLab wants it with each status).
    pub git_ref: String,
    /// What the forge lists the status as (`gantry/<pipeline>`).
    pub context: String,
    pub state: StatusState,
    pub description: String,
    pub target_url: String,
}
