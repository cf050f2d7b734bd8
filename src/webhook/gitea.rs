//! Gitea and Forgejo deliveries: one format, headers named after either.
//!
//! Signed with HMAC-SHA256 of the body as bare hex in `X-Gitea-Signature` (Forgejo:
//! `X-Forgejo-Signature`).

use serde::Deserialize;

use super::payload::{self, PushedCommit, from_json};
use super::{
    Delivery, Event, EventKind, Headers, PullRequest, PullRequestAction, Push, Repo, WebhookError,
    delivery_id, first_header, signature,
};
use crate::config::GiteaSettings;
use crate::domain::{Forge, GitRef, RepoName};

const EVENT_HEADERS: &[&str] = &["X-Gitea-Event", "X-Forgejo-Event"];
const SIGNATURE_HEADERS: &[&str] = &["X-Gitea-Signature", "X-Forgejo-Signature"];
const DELIVERY_HEADERS: &[&str] = &["X-Gitea-Delivery", "X-Forgejo-Delivery"];

pub(super) fn receive(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    settings: &GiteaSettings,
) -> Result<Delivery, WebhookError> {
    let (_, event_name) = first_header(headers, EVENT_HEADERS)
        .ok_or(WebhookError::MissingEventHeader(EVENT_HEADERS[0]))?;
    authenticate(headers, body, settings)?;
    let event = parse(event_name, body)?;
    let raw_id = first_header(headers, DELIVERY_HEADERS).map(|(_, id)| id.to_owned());
    Ok(Delivery {
        id: delivery_id(raw_id, body),
        event_name: event_name.to_owned(),
        event,
    })
}

fn authenticate(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    settings: &GiteaSettings,
) -> Result<(), WebhookError> {
    let Some((name, value)) = first_header(headers, SIGNATURE_HEADERS) else {
        return Err(WebhookError::Unauthorized(format!(
            "missing `{}` header (set a secret on the webhook)",
            SIGNATURE_HEADERS[0]
        )));
    };
    if signature::verify_hex(&settings.webhook_secrets, body, value) {
        Ok(())
    } else {
        Err(WebhookError::Unauthorized(format!(
            "`{name}` does not match the body under any configured secret"
        )))
    }
}

fn parse(event_name: &str, body: &[u8]) -> Result<Event, WebhookError> {
    match event_name {
        "push" => parse_push(from_json(body)?),
        // Newer Gitea names a pull request's new commits `pull_request_sync` in the header.
        "pull_request" | "pull_request_sync" => parse_pull_request(from_json(body)?),
        "delete" => {
            let delete: RefPayload = from_json(body)?;
            let git_ref = match delete.ref_type.as_str() {
                "branch" => GitRef::Branch(delete.git_ref),
                "tag" => GitRef::Tag(delete.git_ref),
                other => {
                    return Err(WebhookError::BadPayload(format!(
                        "payload field `ref_type`: `{other}` is neither `branch` nor `tag`"
                    )));
                }
            };
            Ok(event(
                Some(delete.repository),
                EventKind::RefDeleted { git_ref },
            ))
        }
        other => {
            let reason = match other {
                "create" => "`create` is also delivered as a `push`, which runs".to_owned(),
                _ => format!("event `{other}` is not acted on"),
            };
            let any: AnyPayload = from_json(body)?;
            Ok(event(
                any.repository,
                EventKind::NotActedOn {
                    event: other.to_owned(),
                    reason,
                },
            ))
        }
    }
}

fn event(repository: Option<RepositoryJson>, kind: EventKind) -> Event {
    Event {
        forge: Forge::Gitea,
        repo: repository.map(RepositoryJson::into_repo),
        kind,
    }
}

fn parse_push(push: PushPayload) -> Result<Event, WebhookError> {
    let git_ref = payload::git_ref("ref", &push.git_ref)?;
    let after = payload::commit_sha("after", &push.after)?;
    if after.is_zero() {
        return Ok(event(
            Some(push.repository),
            EventKind::RefDeleted { git_ref },
        ));
    }
    let before = payload::before_sha("before", &push.before)?;
    // Gitea cuts the commit list at a configurable length; only `total_commits`, which newer
    // versions send, tells that the list is whole.
    let complete = before.is_some()
        && matches!(git_ref, GitRef::Branch(_))
        && push.total_commits == Some(push.commits.len());
    let head_commit_message = push
        .head_commit
        .and_then(|commit| commit.message)
        .or_else(|| payload::message_of(&push.commits, &after));
    let kind = EventKind::Push(Push {
        created: before.is_none(),
        forced: false,
        changed_paths: payload::changed_paths(&push.commits, complete),
        head_commit_message,
        git_ref,
        before,
        after,
        sender: push.pusher.or(push.sender).map(|user| user.login),
    });
    Ok(event(Some(push.repository), kind))
}

fn parse_pull_request(payload: PullRequestPayload) -> Result<Event, WebhookError> {
    let pr = payload.pull_request;
    let action = match payload.action.as_str() {
        "opened" => PullRequestAction::Opened,
        "synchronized" => PullRequestAction::Synchronized,
        "reopened" => PullRequestAction::Reopened,
        "closed" if pr.merged.unwrap_or(false) => PullRequestAction::Merged,
        "closed" => PullRequestAction::Closed,
        other => {
            return Ok(event(
                Some(payload.repository),
                EventKind::NotActedOn {
                    event: "pull_request".into(),
                    reason: format!("pull_request action `{other}` is not acted on"),
                },
            ));
        }
    };
    let kind = EventKind::PullRequest(PullRequest {
        action,
        number: payload.number,
        title: pr.title,
        head_sha: payload::commit_sha("pull_request.head.sha", &pr.head.sha)?,
        head_ref: pr.head.git_ref,
        base_sha: Some(payload::commit_sha("pull_request.base.sha", &pr.base.sha)?),
        base_ref: pr.base.git_ref,
        from_fork: pr.head.repo_id != pr.base.repo_id,
        head_clone_url: pr.head.repo.map(|repo| repo.clone_url),
        head_commit_message: None,
        sender: payload.sender.map(|user| user.login),
    });
    Ok(event(Some(payload.repository), kind))
}

#[derive(Deserialize)]
struct RepositoryJson {
    full_name: String,
    clone_url: String,
    html_url: Option<String>,
}

impl RepositoryJson {
    fn into_repo(self) -> Repo {
        Repo {
            full_name: RepoName::new(self.full_name),
            clone_url: self.clone_url,
            web_url: self.html_url,
        }
    }
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct AnyPayload {
    repository: Option<RepositoryJson>,
}

#[derive(Deserialize)]
struct RefPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    ref_type: String,
    repository: RepositoryJson,
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    commits: Vec<PushedCommit>,
    total_commits: Option<usize>,
    head_commit: Option<PushedCommit>,
    repository: RepositoryJson,
    pusher: Option<User>,
    sender: Option<User>,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    action: String,
    number: u64,
    pull_request: PullRequestJson,
    repository: RepositoryJson,
    sender: Option<User>,
}

#[derive(Deserialize)]
struct PullRequestJson {
    title: String,
    merged: Option<bool>,
    head: BranchJson,
    base: BranchJson,
}

#[derive(Deserialize)]
struct BranchJson {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    repo_id: u64,
    repo: Option<ForkRepoJson>,
}

#[derive(Deserialize)]
struct ForkRepoJson {
    clone_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;

    /// The vector from drone/go-scm (SOURCES.md).
    #[test]
    fn go_scm_signature_vector() {
        let body = include_bytes!(
            "../../tests/fixtures/webhooks/gitea/pull_request/goscm__pull_request_edited.json"
        );
        let settings = GiteaSettings {
            webhook_secrets: vec![Secret::new("71295b197fa25f4356d2fb9965df3f2379d903d7")],
            ..GiteaSettings::default()
        };
        let hex = "a31111f057bafe895837f4a93c0f1f528919c199a20438b1fc8e23485780a33a";
        let gitea = [("X-Gitea-Signature", hex)];
        let forgejo = [("X-Forgejo-Signature", hex)];
        assert!(authenticate(&gitea[..], body, &settings).is_ok());
        assert!(authenticate(&forgejo[..], body, &settings).is_ok());
        let tampered = [&body[..], b" "].concat();
        assert!(authenticate(&gitea[..], &tampered, &settings).is_err());
    }
}
