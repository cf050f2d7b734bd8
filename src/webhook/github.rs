//! GitHub and GitHub Enterprise deliveries.
//!
//! Signed with HMAC-SHA256 in `X-Hub-Signature-256: sha256=<hex>`. The SHA-1
//! `X-Hub-Signature` that GitHub still sends alongside is not accepted on its own: SHA-1 HMAC
//! is kept by GitHub only for old receivers.

use super::github_like::{Dialect, PushPayload, UserJson};
use super::payload;
use super::{
    Delivery, EventKind, Headers, Push, Repo, WebhookError, event_header, first_header, signature,
};
use crate::config::GithubSettings;
use crate::domain::{Forge, GitRef};

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
    let event_name = event_header(headers, &[EVENT_HEADER])?;
    authenticate(headers, body, settings)?;
    let json = json_body(headers, body)?;
    let event = DIALECT.parse(event_name, &json)?;
    // The hook id keeps two hooks (repo and organisation) delivering the same event apart.
    let raw_id = headers
        .get(DELIVERY_HEADER)
        .map(|delivery| match headers.get(HOOK_ID_HEADER) {
            Some(hook) => format!("{hook}:{delivery}"),
            None => delivery.to_owned(),
        });
    Ok(Delivery::new(raw_id, body, event_name, event))
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

/// GitHub's names in its GitHub-shaped payloads.
const DIALECT: Dialect = Dialect {
    forge: Forge::Github,
    synchronize: "synchronize",
    pull_request_events: &["pull_request"],
    parse_push,
};

fn parse_push(push: PushPayload) -> Result<(Repo, EventKind), WebhookError> {
    let git_ref = payload::git_ref("ref", &push.git_ref)?;
    let repo = push.repository.into_repo();
    if push.deleted {
        return Ok((repo, EventKind::RefDeleted { git_ref }));
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
        sender: push.sender.and_then(UserJson::into_sender),
    });
    Ok((repo, kind))
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
