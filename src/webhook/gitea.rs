//! Gitea and Forgejo deliveries: one format, headers named after either.
//!
//! Signed with HMAC-SHA256 of the body as bare hex in `X-Gitea-Signature` (Forgejo:
//! `X-Forgejo-Signature`).

use super::github_like::{Dialect, PushPayload, UserJson};
use super::payload;
use super::{
    Delivery, EventKind, Headers, Push, Repo, WebhookError, event_header, first_header, signature,
};
use crate::config::GiteaSettings;
use crate::domain::{Forge, GitRef};

const EVENT_HEADERS: &[&str] = &["X-Gitea-Event", "X-Forgejo-Event"];
const SIGNATURE_HEADERS: &[&str] = &["X-Gitea-Signature", "X-Forgejo-Signature"];
const DELIVERY_HEADERS: &[&str] = &["X-Gitea-Delivery", "X-Forgejo-Delivery"];

pub(super) fn receive(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    settings: &GiteaSettings,
) -> Result<Delivery, WebhookError> {
    let event_name = event_header(headers, EVENT_HEADERS)?;
    authenticate(headers, body, settings)?;
    let event = DIALECT.parse(event_name, body)?;
    let raw_id = first_header(headers, DELIVERY_HEADERS).map(|(_, id)| id.to_owned());
    Ok(Delivery::new(raw_id, body, event_name, event))
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

/// Gitea's names in its GitHub-shaped payloads.
const DIALECT: Dialect = Dialect {
    forge: Forge::Gitea,
    synchronize: "synchronized",
    // Newer Gitea names a pull request's new commits `pull_request_sync` in the header.
    pull_request_events: &["pull_request", "pull_request_sync"],
    parse_push,
};

fn parse_push(push: PushPayload) -> Result<(Repo, EventKind), WebhookError> {
    let git_ref = payload::git_ref("ref", &push.git_ref)?;
    let repo = push.repository.into_repo();
    let after = payload::commit_sha("after", &push.after)?;
    if after.is_zero() {
        return Ok((repo, EventKind::RefDeleted { git_ref }));
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
        sender: push
            .pusher
            .and_then(UserJson::into_sender)
            .or_else(|| push.sender.and_then(UserJson::into_sender)),
    });
    Ok((repo, kind))
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
