//! GitLab deliveries, from project, group and system hooks.
//!
//! GitLab authenticates a hook in one of two ways: the plain `X-Gitlab-Token` (the hook's
//! secret token, echoed back) or the HMAC signing scheme (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64>` over `{id}.{timestamp}.{body}`, keyed with the base64
//! payload of a `whsec_` token). Every credential a request carries must verify, and at
//! least one must be present.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use super::payload::{self, Head, PushedCommit, from_json};
use super::{
    Delivery, Event, EventKind, Headers, PullRequest, PullRequestAction, Push, Repo, Sender,
    WebhookError, event_header, first_header, signature,
};
use crate::config::GitlabSettings;
use crate::domain::{Forge, GitRef, RepoName, Secret, Visibility};

const EVENT_HEADER: &str = "X-Gitlab-Event";
const TOKEN_HEADER: &str = "X-Gitlab-Token";
const SIGNATURE_ID_HEADER: &str = "webhook-id";
const SIGNATURE_TIMESTAMP_HEADER: &str = "webhook-timestamp";
const SIGNATURE_HEADER: &str = "webhook-signature";
const SIGNING_TOKEN_PREFIX: &str = "whsec_";
/// `Idempotency-Key` is GitLab's stable id across retries; older GitLab only sends the
/// per-event UUID.
const DELIVERY_HEADERS: &[&str] = &["Idempotency-Key", "X-Gitlab-Event-UUID"];

/// How far a signed delivery's timestamp may be from our clock. A captured delivery replayed
/// later than this is refused; the window also absorbs GitLab's retry delay and clock skew.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(5 * 60);

pub(super) fn receive(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    settings: &GitlabSettings,
    now: SystemTime,
) -> Result<Delivery, WebhookError> {
    let event_name = event_header(headers, &[EVENT_HEADER])?;
    authenticate(headers, body, settings, now)?;
    let event = parse(event_name, body)?;
    let raw_id = first_header(headers, DELIVERY_HEADERS).map(|(_, id)| id.to_owned());
    Ok(Delivery::new(raw_id, body, event_name, event))
}

fn authenticate(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    settings: &GitlabSettings,
    now: SystemTime,
) -> Result<(), WebhookError> {
    let token = headers.get(TOKEN_HEADER);
    let signed = headers.get(SIGNATURE_HEADER).is_some();
    if token.is_none() && !signed {
        return Err(WebhookError::Unauthorized(format!(
            "missing `{TOKEN_HEADER}` or `{SIGNATURE_HEADER}` header (set a secret token or \
             signing token on the webhook)"
        )));
    }
    if let Some(token) = token
        && !crate::domain::matches_any(&settings.webhook_tokens, token.as_bytes())
    {
        return Err(WebhookError::Unauthorized(format!(
            "`{TOKEN_HEADER}` matches no configured token"
        )));
    }
    if signed {
        verify_signature(headers, body, &settings.signing_tokens, now)?;
    }
    Ok(())
}

fn verify_signature(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    signing_tokens: &[Secret],
    now: SystemTime,
) -> Result<(), WebhookError> {
    let unauthorized = |message: String| Err(WebhookError::Unauthorized(message));
    let (Some(id), Some(timestamp), Some(signatures)) = (
        headers.get(SIGNATURE_ID_HEADER),
        headers.get(SIGNATURE_TIMESTAMP_HEADER),
        headers.get(SIGNATURE_HEADER),
    ) else {
        return unauthorized(format!(
            "a signed delivery needs `{SIGNATURE_ID_HEADER}`, `{SIGNATURE_TIMESTAMP_HEADER}` and \
             `{SIGNATURE_HEADER}`"
        ));
    };
    let Ok(sent_at) = timestamp.trim().parse::<u64>() else {
        return unauthorized(format!("`{SIGNATURE_TIMESTAMP_HEADER}` is not a Unix time"));
    };
    let sent_at = SystemTime::UNIX_EPOCH + Duration::from_secs(sent_at);
    let skew = now
        .duration_since(sent_at)
        .unwrap_or_else(|err| err.duration());
    if skew > SIGNATURE_TOLERANCE {
        return unauthorized(format!(
            "`{SIGNATURE_TIMESTAMP_HEADER}` is {}s away from now (tolerance {}s)",
            skew.as_secs(),
            SIGNATURE_TOLERANCE.as_secs()
        ));
    }
    let keys: Vec<Vec<u8>> = signing_tokens
        .iter()
        .filter_map(|token| {
            let encoded = token.expose();
            let encoded = encoded
                .strip_prefix(SIGNING_TOKEN_PREFIX)
                .unwrap_or(encoded);
            BASE64.decode(encoded).ok()
        })
        .collect();
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
    // The header may list several space-separated signatures (one per active key).
    let mut matched = false;
    for candidate in signatures.split_whitespace() {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(expected) = BASE64.decode(encoded) else {
            continue;
        };
        matched |= signature::hmac_matches_any(keys.iter().map(Vec::as_slice), &parts, &expected);
    }
    if matched {
        Ok(())
    } else {
        unauthorized(format!(
            "`{SIGNATURE_HEADER}` does not match the body under any configured signing token"
        ))
    }
}

fn parse(event_name: &str, body: &[u8]) -> Result<Event, WebhookError> {
    let kind = match event_name {
        "Push Hook" | "Tag Push Hook" => "push",
        "Merge Request Hook" => "merge_request",
        // System hooks name the event in the body: `object_kind`, or `event_name` for pushes.
        "System Hook" => {
            let header: SystemHookHeader = from_json(body)?;
            match header.object_kind.or(header.event_name).as_deref() {
                Some("push" | "tag_push") => "push",
                Some("merge_request") => "merge_request",
                _ => "other",
            }
        }
        _ => "other",
    };
    match kind {
        "push" => parse_push(from_json(body)?),
        "merge_request" => parse_merge_request(body),
        _ => {
            Head::read(body)?;
            Ok(event(
                project_of(body),
                payload::ignored(event_name, payload::not_acted_on(event_name)),
            ))
        }
    }
}

fn event(repo: Option<Repo>, kind: EventKind) -> Event {
    Event {
        forge: Forge::Gitlab,
        repo,
        kind,
    }
}

fn parse_push(push: PushPayload) -> Result<Event, WebhookError> {
    let git_ref = payload::git_ref("ref", &push.git_ref)?;
    let repo = Some(push.project.into_repo());
    let after = payload::commit_sha("after", &push.after)?;
    if after.is_zero() {
        return Ok(event(repo, EventKind::RefDeleted { git_ref }));
    }
    let before = payload::before_sha("before", &push.before)?;
    // GitLab lists at most 20 commits; `total_commits_count` tells whether the list is whole.
    let complete = before.is_some()
        && matches!(git_ref, GitRef::Branch(_))
        && push.total_commits_count == Some(push.commits.len());
    let kind = EventKind::Push(Push {
        created: before.is_none(),
        forced: false,
        changed_paths: payload::changed_paths(&push.commits, complete),
        head_commit_message: payload::message_of(&push.commits, &after),
        git_ref,
        before,
        after,
        sender: push
            .user_username
            .filter(|login| !login.is_empty())
            .map(|login| Sender {
                id: push.user_id.as_ref().and_then(serde_json::Value::as_u64),
                login,
            }),
    });
    Ok(event(repo, kind))
}

/// A merge request delivery, read whole only for an action that asks for a run (or to
/// describe a close or merge, when the payload allows).
fn parse_merge_request(body: &[u8]) -> Result<Event, WebhookError> {
    let header: MergeRequestHeader = from_json(body)?;
    let attributes = header.object_attributes.unwrap_or_default();
    let action = attributes.action.as_ref().and_then(|a| a.as_str());
    let ignored = |reason: String| {
        Ok(event(
            project_of(body),
            payload::ignored("merge_request", reason),
        ))
    };
    let action = match action {
        Some("open") => PullRequestAction::Opened,
        Some("reopen") => PullRequestAction::Reopened,
        // An update carries `oldrev` only when it brought new commits.
        Some("update") if attributes.oldrev.is_some() => PullRequestAction::Synchronized,
        Some("close") => PullRequestAction::Closed,
        Some("merge") => PullRequestAction::Merged,
        Some("update") => return ignored("merge request update without new commits".into()),
        Some(other) => return ignored(format!("merge request action `{other}` is not acted on")),
        None => return ignored("merge request event without an action".into()),
    };
    let payload: MergeRequestPayload = match from_json(body) {
        Ok(payload) => payload,
        // A close or merge needs no run, so a payload too incomplete to describe it is still
        // answered as a delivery Gantry does not act on.
        Err(WebhookError::BadPayload(problem))
            if matches!(
                action,
                PullRequestAction::Closed | PullRequestAction::Merged
            ) =>
        {
            return ignored(format!("merge request closed or merged ({problem})"));
        }
        Err(err) => return Err(err),
    };
    let mr = payload.object_attributes;
    let kind = EventKind::PullRequest(PullRequest {
        action,
        number: mr.iid,
        title: mr.title,
        head_sha: payload::commit_sha("object_attributes.last_commit.id", &mr.last_commit.id)?,
        head_commit_message: mr.last_commit.message,
        head_ref: mr.source_branch,
        base_ref: mr.target_branch,
        base_sha: None,
        // A source project since deleted is named by no id, and counts as a fork.
        from_fork: mr.source_project_id != Some(mr.target_project_id),
        head_clone_url: mr.source.and_then(|source| source.git_http_url),
        sender: payload.user.map(|user| Sender {
            id: user.id.as_ref().and_then(serde_json::Value::as_u64),
            login: user.username,
        }),
    });
    Ok(event(Some(payload.project.into_repo()), kind))
}

/// The project a payload names, if it names one readably: for deliveries Gantry ignores,
/// which must not fail on a field it would not use.
fn project_of(body: &[u8]) -> Option<Repo> {
    #[derive(Deserialize)]
    struct Named {
        project: Option<ProjectJson>,
    }
    serde_json::from_slice::<Named>(body)
        .ok()?
        .project
        .map(ProjectJson::into_repo)
}

/// Just enough of a merge request event to decide whether it needs a run.
#[derive(Deserialize)]
struct MergeRequestHeader {
    object_attributes: Option<ActionJson>,
}

#[derive(Deserialize, Default)]
struct ActionJson {
    action: Option<serde_json::Value>,
    oldrev: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct SystemHookHeader {
    object_kind: Option<String>,
    event_name: Option<String>,
}

/// A project: only its path is needed, the clone URL can come from `[[repos]] clone_url`.
#[derive(Deserialize)]
struct ProjectJson {
    path_with_namespace: String,
    git_http_url: Option<String>,
    web_url: Option<String>,
    /// 0 private, 10 internal, 20 public; read leniently, since nothing else depends on it.
    #[serde(default)]
    visibility_level: Option<serde_json::Value>,
    #[serde(default)]
    default_branch: Option<serde_json::Value>,
}

impl ProjectJson {
    fn into_repo(self) -> Repo {
        Repo {
            full_name: RepoName::new(self.path_with_namespace),
            clone_url: self.git_http_url,
            web_url: self.web_url,
            visibility: self
                .visibility_level
                .as_ref()
                .and_then(serde_json::Value::as_i64)
                .map(Visibility::from_gitlab_level),
            default_branch: payload::text(self.default_branch.as_ref()),
        }
    }
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    commits: Vec<PushedCommit>,
    total_commits_count: Option<usize>,
    /// The pusher's login; `user_name` is a display name anyone may choose, so it is not read.
    user_username: Option<String>,
    #[serde(default)]
    user_id: Option<serde_json::Value>,
    project: ProjectJson,
}

#[derive(Deserialize)]
struct MergeRequestPayload {
    object_attributes: MergeRequestJson,
    project: ProjectJson,
    user: Option<UserJson>,
}

#[derive(Deserialize)]
struct UserJson {
    username: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct MergeRequestJson {
    iid: u64,
    title: String,
    source_branch: String,
    target_branch: String,
    #[serde(default)]
    source_project_id: Option<u64>,
    target_project_id: u64,
    last_commit: LastCommitJson,
    source: Option<SourceProjectJson>,
}

#[derive(Deserialize)]
struct LastCommitJson {
    id: String,
    message: Option<String>,
}

#[derive(Deserialize)]
struct SourceProjectJson {
    git_http_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GitlabSettings {
        GitlabSettings {
            webhook_tokens: vec![Secret::new("topsecret")],
            signing_tokens: vec![Secret::new(format!(
                "{SIGNING_TOKEN_PREFIX}{}",
                BASE64.encode(b"signing key bytes")
            ))],
            ..GitlabSettings::default()
        }
    }

    fn signed_headers(body: &[u8], timestamp: u64, key: &[u8]) -> Vec<(&'static str, String)> {
        let message = [b"msg_1.", timestamp.to_string().as_bytes(), b".", body].concat();
        let signature = hex::decode(signature::hmac_hex(key, &message)).unwrap();
        vec![
            (SIGNATURE_ID_HEADER, "msg_1".to_owned()),
            (SIGNATURE_TIMESTAMP_HEADER, timestamp.to_string()),
            (SIGNATURE_HEADER, format!("v1,{}", BASE64.encode(signature))),
        ]
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// The plain token vector from drone/go-scm (SOURCES.md).
    #[test]
    fn plain_token_is_compared_exactly() {
        let good = [(TOKEN_HEADER, "topsecret")];
        let bad = [(TOKEN_HEADER, "topsecreT")];
        assert!(authenticate(&good[..], b"{}", &settings(), at(0)).is_ok());
        assert!(authenticate(&bad[..], b"{}", &settings(), at(0)).is_err());
    }

    #[test]
    fn signed_delivery_verifies_within_tolerance_only() {
        let body = br#"{"object_kind":"push"}"#;
        let headers = signed_headers(body, 1_000_000, b"signing key bytes");
        assert!(authenticate(&headers, body, &settings(), at(1_000_100)).is_ok());
        let stale = authenticate(&headers, body, &settings(), at(1_000_000 + 301)).unwrap_err();
        assert!(stale.to_string().contains("301s away from now"), "{stale}");
        assert!(authenticate(&headers, b"{}", &settings(), at(1_000_000)).is_err());
        let wrong_key = signed_headers(body, 1_000_000, b"another key");
        assert!(authenticate(&wrong_key, body, &settings(), at(1_000_000)).is_err());
    }

    #[test]
    fn a_wrong_token_fails_even_beside_a_good_signature() {
        let body = b"{}";
        let mut headers = signed_headers(body, 50, b"signing key bytes");
        headers.push((TOKEN_HEADER, "nope".to_owned()));
        assert!(authenticate(&headers, body, &settings(), at(50)).is_err());
    }
}
