//! Reading forge JSON: errors that name the field, and the pieces all forges share.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{EventKind, WebhookError};
use crate::domain::{CommitSha, GitRef};

/// Deserialises a payload; a failure names the field that was missing or of the wrong type.
pub(super) fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebhookError> {
    // serde reads a struct from an array too, which would give baffling errors about `[0]`.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => WebhookError::BadPayload("payload: expected a JSON object".into()),
                Err(err) => WebhookError::BadPayload(format!("body is not valid JSON: {err}")),
            },
        );
    }
    // The plain parse is the fast path; only a failure pays for tracking the field path.
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(err) if err.is_syntax() || err.is_eof() => Err(WebhookError::BadPayload(format!(
            "body is not valid JSON: {err}"
        ))),
        Err(_) => Err(locate_error::<T>(body)),
    }
}

/// Parses again with path tracking, to name the field a failed parse tripped on.
fn locate_error<T: DeserializeOwned>(body: &[u8]) -> WebhookError {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if path == "." {
                WebhookError::BadPayload(format!("payload: {}", strip_position(&inner)))
            } else {
                WebhookError::BadPayload(format!(
                    "payload field `{path}`: {}",
                    strip_position(&inner)
                ))
            }
        }
        Ok(_) => WebhookError::BadPayload("payload does not have the expected shape".into()),
    }
}

/// serde_json ends messages with "at line 1 column 80", which means little in a one-line body
/// when the field is already named.
fn strip_position(err: &serde_json::Error) -> String {
    let message = err.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

/// A commit id from the payload; `field` names it in the error.
pub(super) fn commit_sha(field: &str, value: &str) -> Result<CommitSha, WebhookError> {
    CommitSha::parse(value).ok_or_else(|| {
        WebhookError::BadPayload(format!(
            "payload field `{field}`: `{value}` is not a commit id"
        ))
    })
}

/// The previous tip of a ref, where the all-zero id means "there was none".
pub(super) fn before_sha(field: &str, value: &str) -> Result<Option<CommitSha>, WebhookError> {
    let sha = commit_sha(field, value)?;
    Ok((!sha.is_zero()).then_some(sha))
}

pub(super) fn git_ref(field: &str, value: &str) -> Result<GitRef, WebhookError> {
    GitRef::parse(value).ok_or_else(|| {
        WebhookError::BadPayload(format!(
            "payload field `{field}`: `{value}` is not a branch or tag ref"
        ))
    })
}

/// A commit as GitHub, GitLab and Gitea list them in push payloads.
#[derive(Debug, Deserialize)]
pub(super) struct PushedCommit {
    pub id: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub added: Option<Vec<String>>,
    #[serde(default)]
    pub removed: Option<Vec<String>>,
    #[serde(default)]
    pub modified: Option<Vec<String>>,
}

/// The files the pushed commits touched, or `None` when the payload cannot tell all of them
/// (`complete` false: the forge cut the commit list; or a commit without file lists).
pub(super) fn changed_paths(commits: &[PushedCommit], complete: bool) -> Option<Vec<String>> {
    if !complete || commits.is_empty() {
        return None;
    }
    let mut paths = BTreeSet::new();
    for commit in commits {
        for list in [&commit.added, &commit.removed, &commit.modified] {
            paths.extend(list.as_ref()?.iter().cloned());
        }
    }
    Some(paths.into_iter().collect())
}

/// The message of the commit a push ended on.
pub(super) fn message_of(commits: &[PushedCommit], sha: &CommitSha) -> Option<String> {
    commits
        .iter()
        .find(|commit| commit.id.eq_ignore_ascii_case(sha.as_str()))
        .and_then(|commit| commit.message.clone())
}

/// The first step of reading any delivery: that the body is a JSON object, and its `action`
/// if it has one. Only an event Gantry acts on is then read whole, so a delivery it ignores
/// never fails on a field it would not use.
#[derive(Deserialize)]
pub(super) struct Head {
    #[serde(default)]
    pub action: Option<serde_json::Value>,
}

impl Head {
    pub fn read(body: &[u8]) -> Result<Self, WebhookError> {
        from_json(body)
    }

    /// The action, when it is a string.
    pub fn action(&self) -> Option<&str> {
        self.action.as_ref().and_then(serde_json::Value::as_str)
    }
}

/// A field read leniently as text: absent, `null`, empty or of another type says nothing.
pub(super) fn text(value: Option<&serde_json::Value>) -> Option<String> {
    value
        .and_then(serde_json::Value::as_str)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// What a delivery Gantry ignores becomes.
pub(super) fn ignored(event: &str, reason: String) -> EventKind {
    EventKind::NotActedOn {
        event: event.to_owned(),
        reason,
    }
}

/// Why an event Gantry has no work for is ignored.
pub(super) fn not_acted_on(event: &str) -> String {
    match event {
        "create" => "`create` is also delivered as a `push`, which runs".to_owned(),
        _ => format!("event `{event}` is not acted on"),
    }
}

/// A `branch` or `tag` named by a `ref_type`.
pub(super) fn ref_of_kind(ref_type: &str, name: &str) -> Result<GitRef, WebhookError> {
    match ref_type {
        "branch" => Ok(GitRef::Branch(name.to_owned())),
        "tag" => Ok(GitRef::Tag(name.to_owned())),
        other => Err(WebhookError::BadPayload(format!(
            "payload field `ref_type`: `{other}` is neither `branch` nor `tag`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        after: String,
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        sha: String,
    }

    #[test]
    fn errors_name_the_field() {
        let err = from_json::<Shape>(br#"{"after":"x","inner":{}}"#).unwrap_err();
        assert_eq!(
            err,
            WebhookError::BadPayload("payload field `inner`: missing field `sha`".into())
        );
        let err = from_json::<Shape>(br#"{"after":1,"inner":{"sha":"a"}}"#).unwrap_err();
        assert_eq!(
            err,
            WebhookError::BadPayload(
                "payload field `after`: invalid type: integer `1`, expected a string".into()
            )
        );
        let err = from_json::<Shape>(b"not json").unwrap_err();
        assert!(
            matches!(err, WebhookError::BadPayload(m) if m.starts_with("body is not valid JSON"))
        );
    }

    #[test]
    fn changed_paths_need_every_list() {
        let commit = |added: Option<Vec<&str>>| PushedCommit {
            id: "a".into(),
            message: None,
            added: added.map(|list| list.into_iter().map(String::from).collect()),
            removed: Some(vec![]),
            modified: Some(vec!["b".into()]),
        };
        assert_eq!(
            changed_paths(&[commit(Some(vec!["c", "b"]))], true),
            Some(vec!["b".into(), "c".into()])
        );
        assert_eq!(changed_paths(&[commit(None)], true), None);
        assert_eq!(changed_paths(&[commit(Some(vec![]))], false), None);
    }
}
