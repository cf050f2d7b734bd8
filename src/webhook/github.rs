//! GitHub and GitHub Enterprise deliveries.
//!
//! Signed with HMAC-SHA256 in `X-Hub-Signature-256: sha256=<hex>`. The SHA-1
//! `X-Hub-Signature` that GitHub still sends alongside is not accepted on its own: SHA-1 HMAC
//! is kept by GitHub only for old receivers.

use serde::Deserialize;

use super::payload::{self, PushedCommit, from_json};
use super::{
    Delivery, Event, EventKind, Headers, PullRequest, PullRequestAction, Push, Repo, WebhookError,
    delivery_id, first_header, signature,
};
use crate::config::GithubSettings;
use crate::domain::{Forge, GitRef, RepoName};

const EVENT_HEADER: &str = "X-GitHub-Event";
const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
const SHA1_SIGNATURE_HEADER: &str = "X-Hub-Signature";
const DELIVERY_HEADER: &str = "X-GitHub-Delivery";
const HOOK_ID_HEADER: &str = "X-GitHub-Hook-ID";

/// GitHub lists at most this many commits in a push payload; a list this long may be cut, so
/// its file lists cannot be trusted to cover the whole push.
const MAX_LISTED_COMMITS: usize = 20;

pub(super) fn receive(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    settings: &GithubSettings,
) -> Result<Delivery, WebhookError> {
    let event_name = headers
        .get(EVENT_HEADER)
        .ok_or(WebhookError::MissingEventHeader(EVENT_HEADER))?;
    authenticate(headers, body, settings)?;
    let json = json_body(headers, body)?;
    let event = parse(event_name, &json)?;
    // The hook id keeps two hooks (repo and organisation) delivering the same event apart.
    let raw_id = headers
        .get(DELIVERY_HEADER)
        .map(|delivery| match headers.get(HOOK_ID_HEADER) {
            Some(hook) => format!("{hook}:{delivery}"),
            None => delivery.to_owned(),
        });
    Ok(Delivery {
        id: delivery_id(raw_id, body),
        event_name: event_name.to_owned(),
        event,
    })
}

fn authenticate(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    settings: &GithubSettings,
) -> Result<(), WebhookError> {
    let Some((_, value)) = first_header(headers, &[SIGNATURE_HEADER]) else {
        return Err(WebhookError::Unauthorized(
            if headers.get(SHA1_SIGNATURE_HEADER).is_some() {
                format!(
                    "only a SHA-1 `{SHA1_SIGNATURE_HEADER}` was sent; Gantry requires \
                     `{SIGNATURE_HEADER}` (set a secret on the webhook)"
                )
            } else {
                format!("missing `{SIGNATURE_HEADER}` header (set a secret on the webhook)")
            },
        ));
    };
    let Some(hex) = value.strip_prefix("sha256=") else {
        return Err(WebhookError::Unauthorized(format!(
            "`{SIGNATURE_HEADER}` is not of the form `sha256=<hex>`"
        )));
    };
    if signature::verify_hex(&settings.webhook_secrets, body, hex) {
        Ok(())
    } else {
        Err(WebhookError::Unauthorized(format!(
            "`{SIGNATURE_HEADER}` does not match the body under any configured secret"
        )))
    }
}

/// GitHub sends JSON either as the body or, for hooks set to `x-www-form-urlencoded`, in the
/// `payload` form field. The signature covers the raw body either way.
fn json_body<'b>(
    headers: &(impl Headers + ?Sized),
    body: &'b [u8],
) -> Result<std::borrow::Cow<'b, [u8]>, WebhookError> {
    let content_type = headers.get("Content-Type").unwrap_or("application/json");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok(body.into());
    }
    url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned().into_bytes().into())
        .ok_or_else(|| WebhookError::BadPayload("form body has no `payload` field".into()))
}

fn parse(event_name: &str, body: &[u8]) -> Result<Event, WebhookError> {
    match event_name {
        "ping" => {
            let ping: PingPayload = from_json(body)?;
            Ok(event(ping.repository, EventKind::Ping))
        }
        "push" => parse_push(from_json(body)?),
        "pull_request" => parse_pull_request(from_json(body)?),
        "delete" => {
            let delete: RefPayload = from_json(body)?;
            let git_ref = ref_of_kind(&delete.ref_type, &delete.git_ref)?;
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
        forge: Forge::Github,
        repo: repository.map(RepositoryJson::into_repo),
        kind,
    }
}

fn parse_push(push: PushPayload) -> Result<Event, WebhookError> {
    let git_ref = payload::git_ref("ref", &push.git_ref)?;
    if push.deleted {
        return Ok(event(
            Some(push.repository),
            EventKind::RefDeleted { git_ref },
        ));
    }
    let after = payload::commit_sha("after", &push.after)?;
    let before = payload::before_sha("before", &push.before)?;
    let complete = !push.created
        && !push.forced
        && matches!(git_ref, GitRef::Branch(_))
        && push.commits.len() < MAX_LISTED_COMMITS;
    let head_commit_message = push
        .head_commit
        .and_then(|commit| commit.message)
        .or_else(|| payload::message_of(&push.commits, &after));
    let kind = EventKind::Push(Push {
        created: push.created || before.is_none(),
        forced: push.forced,
        changed_paths: payload::changed_paths(&push.commits, complete),
        git_ref,
        before,
        after,
        head_commit_message,
        sender: push.sender.map(|sender| sender.login),
    });
    Ok(event(Some(push.repository), kind))
}

fn parse_pull_request(payload: PullRequestPayload) -> Result<Event, WebhookError> {
    let pr = payload.pull_request;
    let action = match payload.action.as_str() {
        "opened" => PullRequestAction::Opened,
        "synchronize" => PullRequestAction::Synchronized,
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
    // A head repo of `null` is a fork that has since been deleted.
    let from_fork = match (&pr.head.repo, &pr.base.repo) {
        (Some(head), Some(base)) => head.full_name != base.full_name,
        _ => true,
    };
    let kind = EventKind::PullRequest(PullRequest {
        action,
        number: payload.number,
        title: pr.title,
        head_sha: payload::commit_sha("pull_request.head.sha", &pr.head.sha)?,
        head_ref: pr.head.git_ref,
        base_sha: Some(payload::commit_sha("pull_request.base.sha", &pr.base.sha)?),
        base_ref: pr.base.git_ref,
        from_fork,
        head_clone_url: pr.head.repo.map(|repo| repo.clone_url),
        head_commit_message: None,
        sender: payload.sender.map(|sender| sender.login),
    });
    Ok(event(Some(payload.repository), kind))
}

fn ref_of_kind(ref_type: &str, name: &str) -> Result<GitRef, WebhookError> {
    match ref_type {
        "branch" => Ok(GitRef::Branch(name.to_owned())),
        "tag" => Ok(GitRef::Tag(name.to_owned())),
        other => Err(WebhookError::BadPayload(format!(
            "payload field `ref_type`: `{other}` is neither `branch` nor `tag`"
        ))),
    }
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
struct PingPayload {
    repository: Option<RepositoryJson>,
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
    created: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    forced: bool,
    #[serde(default)]
    commits: Vec<PushedCommit>,
    head_commit: Option<PushedCommit>,
    repository: RepositoryJson,
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
    repo: Option<ForkRepoJson>,
}

#[derive(Deserialize)]
struct ForkRepoJson {
    full_name: String,
    clone_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;

    fn settings(secret: &str) -> GithubSettings {
        GithubSettings {
            webhook_secrets: vec![Secret::new(secret)],
            ..GithubSettings::default()
        }
    }

    const PUSH: &[u8] =
        include_bytes!("../../tests/fixtures/webhooks/github/push/goscm__push.json");

    /// The vectors from drone/go-scm, listed in the fixtures' SOURCES.md.
    #[test]
    fn go_scm_signature_vectors() {
        let signed = |value: &str| {
            vec![
                (EVENT_HEADER, "push".to_owned()),
                (SIGNATURE_HEADER, value.to_owned()),
            ]
        };
        let good = "sha256=e3bfe744d4e2e29ed990bde8acfb8255ca51ef65f99657767989fb6349f32957";
        let bad = "sha256=3bfbbc3bfc44498db2254f577b2e4bed201ece6163518ba91cb2c21f0f59d512";
        assert!(authenticate(&signed(good), PUSH, &settings("topsecret")).is_ok());
        assert!(authenticate(&signed(bad), PUSH, &settings("topsecret")).is_err());
    }

    #[test]
    fn sha1_only_is_refused_even_when_correct() {
        let headers = [(
            SHA1_SIGNATURE_HEADER,
            "sha1=cf93f9ba3c8d3a789e61f91e1e5c6a360d036e98",
        )];
        let err = authenticate(&headers[..], PUSH, &settings("topsecret")).unwrap_err();
        assert!(err.to_string().contains("only a SHA-1"), "{err}");
    }

    #[test]
    fn form_encoded_body_carries_json_in_payload() {
        let headers = [("Content-Type", "application/x-www-form-urlencoded")];
        let body = b"payload=%7B%22a%22%3A1%7D";
        assert_eq!(&*json_body(&headers[..], body).unwrap(), br#"{"a":1}"#);
        let err = json_body(&headers[..], b"other=1").unwrap_err();
        assert_eq!(err.to_string(), "form body has no `payload` field");
    }
}
