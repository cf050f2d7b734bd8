//! The forge-neutral event that every webhook is turned into. Nothing past the intake sees a
//! forge's JSON: the runner, the store and the pages read only these types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The forges Gantry takes webhooks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    Github,
    Gitlab,
    /// Gitea and its fork Forgejo, which share one webhook format.
    Gitea,
}

impl Forge {
    pub const ALL: [Forge; 3] = [Forge::Github, Forge::Gitlab, Forge::Gitea];

    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Forge {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Forge::ALL
            .into_iter()
            .find(|forge| forge.as_str() == name)
            .ok_or_else(|| format!("unknown forge `{name}`"))
    }
}

/// A full commit id as the forge sent it (40 hex digits for SHA-1 repos, 64 for SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommitSha(String);

impl CommitSha {
    /// Accepts only a full hex object id, so a value from a payload can never smuggle anything
    /// else into a `git` command line.
    pub fn parse(value: &str) -> Option<Self> {
        let full_length = value.len() == 40 || value.len() == 64;
        (full_length && value.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(value.to_ascii_lowercase()))
    }

    /// The all-zero id forges send for the missing side of a ref creation or deletion.
    pub fn is_zero(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A repository's full name on its forge: `owner/repo` or `group/subgroup/repo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RepoName(String);

impl RepoName {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One verified webhook delivery, in Gantry's own terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub forge: Forge,
    /// The repository the event happened in; `None` only for pings of organisation hooks.
    pub repo: Option<Repo>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repo {
    pub full_name: RepoName,
    pub clone_url: String,
    pub web_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The forge checking that the hook works.
    Ping,
    /// New commits on a branch, or a new tag.
    Push(Push),
    /// A branch or tag was deleted.
    RefDeleted {
        git_ref: GitRef,
    },
    PullRequest(PullRequest),
    /// A delivery Gantry has no work for (a label change, a review request, an unknown event).
    /// `reason` says why, for the answer and the delivery log.
    NotActedOn {
        event: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum GitRef {
    Branch(String),
    Tag(String),
}

impl GitRef {
    /// Reads a full ref such as `refs/heads/main` or `refs/tags/v1`. Other refs (notes,
    /// merge-request refs) are not something pipelines run on.
    pub fn parse(full: &str) -> Option<Self> {
        if let Some(branch) = full.strip_prefix("refs/heads/") {
            Some(GitRef::Branch(branch.to_owned()))
        } else {
            full.strip_prefix("refs/tags/")
                .map(|tag| GitRef::Tag(tag.to_owned()))
        }
    }

    pub fn name(&self) -> &str {
        match self {
            GitRef::Branch(name) | GitRef::Tag(name) => name,
        }
    }

    pub fn full(&self) -> String {
        match self {
            GitRef::Branch(name) => format!("refs/heads/{name}"),
            GitRef::Tag(name) => format!("refs/tags/{name}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Push {
    pub git_ref: GitRef,
    /// The previous tip; `None` when the push created the ref.
    pub before: Option<CommitSha>,
    pub after: CommitSha,
    pub created: bool,
    /// The push rewrote history (only GitHub says so).
    pub forced: bool,
    pub head_commit_message: Option<String>,
    /// Files added, modified or removed by the pushed commits, when the payload lists all of
    /// them; `None` when it does not (the runner then asks `git diff`).
    pub changed_paths: Option<Vec<String>>,
    pub sender: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestAction {
    Opened,
    /// New commits on the head branch.
    Synchronized,
    Reopened,
    Closed,
    Merged,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullRequest {
    pub action: PullRequestAction,
    pub number: u64,
    pub title: String,
    pub head_ref: String,
    pub head_sha: CommitSha,
    pub base_ref: String,
    /// Not every forge sends the base commit (GitLab does not).
    pub base_sha: Option<CommitSha>,
    /// The head branch lives in another repository, whose author must not see secrets.
    pub from_fork: bool,
    /// Where the head commit can be fetched from (the fork's URL for a fork).
    pub head_clone_url: Option<String>,
    pub head_commit_message: Option<String>,
    pub sender: Option<String>,
}

/// What Gantry does with an event: queue a run for a commit, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub trigger: Trigger,
    pub git_ref: GitRef,
    pub commit_sha: CommitSha,
    pub commit_message: Option<String>,
    pub pr_number: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Push,
    Tag,
    PullRequest,
}

impl Trigger {
    pub const ALL: [Trigger; 3] = [Trigger::Push, Trigger::Tag, Trigger::PullRequest];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Push => "push",
            Trigger::Tag => "tag",
            Trigger::PullRequest => "pull_request",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|trigger| trigger.as_str() == name)
    }
}

impl Event {
    /// The run this event asks for, or `None` (with the reason) when it asks for none.
    pub fn run_request(&self) -> Result<RunRequest, String> {
        match &self.kind {
            EventKind::Push(push) => Ok(RunRequest {
                trigger: match push.git_ref {
                    GitRef::Branch(_) => Trigger::Push,
                    GitRef::Tag(_) => Trigger::Tag,
                },
                git_ref: push.git_ref.clone(),
                commit_sha: push.after.clone(),
                commit_message: push.head_commit_message.clone(),
                pr_number: None,
            }),
            EventKind::PullRequest(pr) => match pr.action {
                PullRequestAction::Opened
                | PullRequestAction::Synchronized
                | PullRequestAction::Reopened => Ok(RunRequest {
                    trigger: Trigger::PullRequest,
                    git_ref: GitRef::Branch(pr.head_ref.clone()),
                    commit_sha: pr.head_sha.clone(),
                    commit_message: pr.head_commit_message.clone(),
                    pr_number: Some(pr.number),
                }),
                PullRequestAction::Closed => Err("pull request closed".into()),
                // The merge itself arrives as a push to the base branch, which runs.
                PullRequestAction::Merged => Err("pull request merged".into()),
            },
            EventKind::Ping => Err("ping".into()),
            EventKind::RefDeleted { git_ref } => Err(format!("{} deleted", git_ref.full())),
            EventKind::NotActedOn { reason, .. } => Err(reason.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_sha_takes_only_full_hex_ids() {
        assert!(CommitSha::parse("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c").is_some());
        assert!(CommitSha::parse("0d1a26e").is_none());
        assert!(CommitSha::parse("$(rm -rf /)0d1a26e67d8f5eaf1f6ba5c57fc3c7d9").is_none());
        assert!(
            CommitSha::parse("0000000000000000000000000000000000000000")
                .unwrap()
                .is_zero()
        );
    }

    #[test]
    fn refs_are_read_by_prefix() {
        assert_eq!(
            GitRef::parse("refs/heads/feature/x"),
            Some(GitRef::Branch("feature/x".into()))
        );
        assert_eq!(
            GitRef::parse("refs/tags/v1"),
            Some(GitRef::Tag("v1".into()))
        );
        assert_eq!(GitRef::parse("refs/notes/commits"), None);
    }
}
