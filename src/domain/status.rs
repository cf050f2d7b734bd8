//! A commit status, in Gantry's terms: what one pipeline tells the forge about one commit.

use super::{CommitSha, Forge, RepoName, StatusState};

/// One status to set on a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub forge: Forge,
    pub repo: RepoName,
    pub sha: CommitSha,
    /// The ref the status belongs to where the forge keys statuses by ref (GitLab: a
    /// branch, a tag, or a merge request's `refs/merge-requests/<iid>/head`); empty where it
    /// keeps one status per commit and context (GitHub, Gitea). With the commit and the
    /// context it names "the same status": a newer run's takes its place.
    pub git_ref: String,
    /// What the forge lists the status as (`gantry/<pipeline>`).
    pub context: String,
    pub state: StatusState,
    pub description: String,
    pub target_url: String,
}
