//! Approval of untrusted runs. A pull request from a fork runs a stranger's code on the
//! runner's engine; `[[repos]] approval` decides which runs wait (state `blocked`) until
//! someone with write permission approves or declines them. Nothing of a blocked run runs:
//! at most its pipeline files are read, so its checks show as pending on the forge.
//!
//! Who sent a run is the webhook's sender as the forge names it; a commit's author is
//! whatever its writer typed and is never trusted.

use crate::config::RepoSettings;
use crate::domain::ApprovalPolicy;
use crate::webhook::{Event, EventKind};

/// What a blocked run's pipelines say on the forge.
pub const WAITING_FOR_APPROVAL: &str = "waiting for approval";

/// Why the run `event` asks for must wait for approval in `repo`, or `None` when it may run
/// at once.
pub fn reason(repo: &RepoSettings, event: &Event) -> Option<String> {
    let sender = event.sender();
    if let Some(sender) = sender
        && repo
            .trusted_users
            .iter()
            .any(|trusted| trusted.eq_ignore_ascii_case(&sender.login))
    {
        return None;
    }
    let what = match (&event.kind, repo.approval) {
        (_, ApprovalPolicy::None) => return None,
        (EventKind::PullRequest(pr), ApprovalPolicy::Forks) if pr.from_fork => {
            "a pull request from a fork"
        }
        (EventKind::PullRequest(pr), ApprovalPolicy::PullRequests | ApprovalPolicy::All) => {
            if pr.from_fork {
                "a pull request from a fork"
            } else {
                "a pull request"
            }
        }
        (_, ApprovalPolicy::All) => "a run of this repo",
        _ => return None,
    };
    let by = match sender {
        Some(sender) => match sender.id {
            Some(id) => format!("{} (user id {id})", sender.login),
            None => sender.login.clone(),
        },
        None => "an unnamed sender".to_owned(),
    };
    Some(format!("{what}, sent by {by}, who is not in trusted_users"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CommitSha, Forge};
    use crate::webhook::{PullRequest, PullRequestAction, Push, Sender};

    fn repo(approval: ApprovalPolicy, trusted: &[&str]) -> RepoSettings {
        let mut repo: RepoSettings = serde_json::from_value(serde_json::json!({
            "name": "acme/web", "forge": "github", "approval": approval.as_str()
        }))
        .unwrap();
        repo.trusted_users = trusted.iter().map(|s| s.to_string()).collect();
        repo
    }

    fn sender(login: &str) -> Option<Sender> {
        Some(Sender {
            id: Some(7),
            login: login.into(),
        })
    }

    fn pull_request(from_fork: bool, login: &str) -> Event {
        Event {
            forge: Forge::Github,
            repo: None,
            kind: EventKind::PullRequest(PullRequest {
                action: PullRequestAction::Opened,
                number: 1,
                title: "t".into(),
                head_ref: "x".into(),
                head_sha: CommitSha::parse(&"a".repeat(40)).unwrap(),
                base_ref: "main".into(),
                base_sha: None,
                from_fork,
                head_clone_url: None,
                head_commit_message: None,
                sender: sender(login),
            }),
        }
    }

    fn push(login: &str) -> Event {
        Event {
            forge: Forge::Github,
            repo: None,
            kind: EventKind::Push(Push {
                git_ref: crate::domain::GitRef::Branch("main".into()),
                before: None,
                after: CommitSha::parse(&"b".repeat(40)).unwrap(),
                created: true,
                forced: false,
                head_commit_message: None,
                changed_paths: None,
                sender: sender(login),
            }),
        }
    }

    #[test]
    fn each_policy_blocks_what_it_names() {
        let fork = pull_request(true, "mallory");
        let own = pull_request(false, "mallory");
        let pushed = push("mallory");
        let blocked = |policy, event: &Event| reason(&repo(policy, &[]), event).is_some();
        assert_eq!(
            [&fork, &own, &pushed].map(|e| blocked(ApprovalPolicy::None, e)),
            [false, false, false]
        );
        assert_eq!(
            [&fork, &own, &pushed].map(|e| blocked(ApprovalPolicy::Forks, e)),
            [true, false, false]
        );
        assert_eq!(
            [&fork, &own, &pushed].map(|e| blocked(ApprovalPolicy::PullRequests, e)),
            [true, true, false]
        );
        assert_eq!(
            [&fork, &own, &pushed].map(|e| blocked(ApprovalPolicy::All, e)),
            [true, true, true]
        );
        let why = reason(&repo(ApprovalPolicy::Forks, &[]), &fork).unwrap();
        assert_eq!(
            why,
            "a pull request from a fork, sent by mallory (user id 7), who is not in trusted_users"
        );
    }

    #[test]
    fn trusted_senders_never_wait_and_a_missing_sender_always_does() {
        let trusted = repo(ApprovalPolicy::All, &["Alice"]);
        assert_eq!(reason(&trusted, &pull_request(true, "alice")), None);
        assert_eq!(reason(&trusted, &push("ALICE")), None);
        assert!(reason(&trusted, &pull_request(true, "alicia")).is_some());
        let mut anonymous = pull_request(true, "x");
        if let EventKind::PullRequest(pr) = &mut anonymous.kind {
            pr.sender = None;
        }
        assert!(
            reason(&trusted, &anonymous)
                .unwrap()
                .contains("an unnamed sender")
        );
    }
}
