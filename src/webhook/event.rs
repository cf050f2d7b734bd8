//! The forge-neutral event that every webhook is turned into. Nothing past the intake sees a
//! forge's JSON: the runner, the store and the pages read only these types.

use serde::{Deserialize, Serialize};

use crate::domain::{ChangedPaths, CommitSha, Forge, GitRef, RepoName, Trigger, Visibility};

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
    /// Where to fetch it from, when the payload says (`[[repos]] clone_url` can say instead).
    pub clone_url: Option<String>,
    pub web_url: Option<String>,
    /// Who may see the repo on its forge, when the payload says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// The branch the forge shows first, when the payload says: caches fall back to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
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
    /// A run someone started from the page or the API (never a forge's delivery).
    Manual(Manual),
    /// A run a pipeline's schedule started.
    Scheduled(Scheduled),
    /// A delivery Gantry has no work for (a label change, a review request, an unknown event).
    /// `reason` says why, for the answer and the delivery log.
    NotActedOn {
        event: String,
        reason: String,
    },
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
    pub sender: Option<Sender>,
}

/// Who sent an event, as the forge identifies them: the one identity approval trusts. A
/// commit's author name or e-mail is whatever its writer typed, and is never used for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The forge's user id, which a rename does not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub login: String,
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
    pub sender: Option<Sender>,
}

/// A run started by hand: on which ref and commit, with which variables, by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manual {
    pub git_ref: GitRef,
    pub commit_sha: CommitSha,
    /// Environment variables of every stage, in the order given.
    pub variables: Vec<(String, String)>,
    /// Who started it: a forge login, or `api-token`.
    pub by: String,
}

/// A run of one pipeline for one slot of its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scheduled {
    pub git_ref: GitRef,
    pub commit_sha: CommitSha,
    pub pipeline: String,
    pub cron: String,
    /// The slot, in milliseconds since the epoch.
    pub slot: i64,
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

impl Event {
    /// Who sent the event, when the forge says.
    pub fn sender(&self) -> Option<&Sender> {
        match &self.kind {
            EventKind::Push(push) => push.sender.as_ref(),
            EventKind::PullRequest(pr) => pr.sender.as_ref(),
            _ => None,
        }
    }

    /// Whether the event is a pull request whose head lives in another repository.
    pub fn from_fork(&self) -> bool {
        matches!(&self.kind, EventKind::PullRequest(pr) if pr.from_fork)
    }

    /// The files the event changed, if its payload says (GitHub, GitLab and new Gitea list
    /// the files of the pushed commits when the list is whole; pull request events never
    /// do).
    pub fn changed_paths(&self) -> ChangedPaths {
        match &self.kind {
            EventKind::Push(Push {
                changed_paths: Some(paths),
                ..
            }) => ChangedPaths::Known(paths.clone()),
            _ => ChangedPaths::Unknown,
        }
    }

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
            EventKind::Manual(manual) => Ok(RunRequest {
                trigger: Trigger::Manual,
                git_ref: manual.git_ref.clone(),
                commit_sha: manual.commit_sha.clone(),
                commit_message: None,
                pr_number: None,
            }),
            EventKind::Scheduled(scheduled) => Ok(RunRequest {
                trigger: Trigger::Schedule,
                git_ref: scheduled.git_ref.clone(),
                commit_sha: scheduled.commit_sha.clone(),
                commit_message: None,
                pr_number: None,
            }),
            EventKind::Ping => Err("ping".into()),
            EventKind::RefDeleted { git_ref } => Err(format!("{} deleted", git_ref.full())),
            EventKind::NotActedOn { reason, .. } => Err(reason.clone()),
        }
    }
}
