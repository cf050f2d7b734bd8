//! Webhook intake: verify a delivery on its raw bytes, then turn the forge's payload into one
//! [`Event`]. Each forge's scheme lives in its own file; this module holds what they share.

mod event;
mod gitea;
mod github;
mod github_like;
mod gitlab;
mod payload;
pub mod signature;

use std::time::SystemTime;

use sha2::{Digest, Sha256};

pub use event::{
    Event, EventKind, Manual, PullRequest, PullRequestAction, Push, Repo, RunRequest, Scheduled,
    Sender,
};

use crate::config::Settings;
use crate::domain::Forge;

/// Why a delivery was refused. Each variant maps to one HTTP status in `http::hooks`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("missing `{0}` header")]
    MissingEventHeader(&'static str),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadPayload(String),
}

/// Read access to request headers, so this module does not depend on the HTTP framework.
pub trait Headers {
    /// The header's value, if present and valid UTF-8. Names are case-insensitive.
    fn get(&self, name: &str) -> Option<&str>;
}

/// Headers as `(name, value)` pairs, looked up case-insensitively like HTTP's: what tests
/// and tools that build a delivery by hand pass.
impl<N: AsRef<str>, V: AsRef<str>> Headers for [(N, V)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_ref())
    }
}

impl<N: AsRef<str>, V: AsRef<str>> Headers for Vec<(N, V)> {
    fn get(&self, name: &str) -> Option<&str> {
        Headers::get(self.as_slice(), name)
    }
}

/// A delivery that passed verification and parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The forge's id for this delivery, stable across the forge's own redeliveries, which is
    /// what deduplication keys on.
    pub id: DeliveryId,
    /// The event name as the forge sent it (`push`, `Merge Request Hook`).
    pub event_name: String,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryId(String);

impl DeliveryId {
    /// Longest delivery id kept: forges send UUIDs; anything longer is cut to keep the
    /// dedup index small, with a hash so distinct long ids stay distinct.
    const MAX_LEN: usize = 200;

    fn new(id: String) -> Self {
        if id.len() <= Self::MAX_LEN {
            Self(id)
        } else {
            Self(format!(
                "sha256:{}",
                hex::encode(Sha256::digest(id.as_bytes()))
            ))
        }
    }

    /// For a forge that sent no delivery id: the body's hash, so a repeated identical body is
    /// still recognised as the same delivery.
    fn from_body(body: &[u8]) -> Self {
        Self(format!("sha256:{}", hex::encode(Sha256::digest(body))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Verifies and parses one delivery. `now` is the clock for GitLab's signature timestamps.
pub fn receive(
    forge: Forge,
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    settings: &Settings,
    now: SystemTime,
) -> Result<Delivery, WebhookError> {
    let delivery = match forge {
        Forge::Github => github::receive(headers, body, &settings.github)?,
        Forge::Gitlab => gitlab::receive(headers, body, &settings.gitlab, now)?,
        Forge::Gitea => gitea::receive(headers, body, &settings.gitea)?,
    };
    Ok(delivery)
}

/// The first of `names` that the request carries, with its value.
fn first_header<'h>(
    headers: &'h (impl Headers + ?Sized),
    names: &[&'static str],
) -> Option<(&'static str, &'h str)> {
    names
        .iter()
        .find_map(|name| headers.get(name).map(|value| (*name, value)))
}

/// The event name the first of `names` carries; a delivery without one is refused.
fn event_header<'h>(
    headers: &'h (impl Headers + ?Sized),
    names: &[&'static str],
) -> Result<&'h str, WebhookError> {
    first_header(headers, names)
        .map(|(_, value)| value)
        .ok_or(WebhookError::MissingEventHeader(names[0]))
}

impl Delivery {
    /// A parsed delivery, its id the forge's (`raw_id`) or, when it sent none, the body's hash.
    fn new(raw_id: Option<String>, body: &[u8], event_name: &str, event: Event) -> Self {
        Self {
            id: delivery_id(raw_id, body),
            event_name: event_name.to_owned(),
            event,
        }
    }
}

fn delivery_id(raw: Option<String>, body: &[u8]) -> DeliveryId {
    match raw {
        Some(id) if !id.trim().is_empty() => DeliveryId::new(id),
        _ => DeliveryId::from_body(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_delivery_ids_are_hashed_to_a_bounded_length() {
        let id = DeliveryId::new("x".repeat(5000));
        assert!(id.as_str().len() < 80);
        assert_ne!(id, DeliveryId::new("y".repeat(5000)));
        assert_eq!(DeliveryId::new("abc".into()).as_str(), "abc");
    }

    #[test]
    fn missing_delivery_id_falls_back_to_the_body_hash() {
        assert_eq!(
            delivery_id(None, b"same"),
            delivery_id(Some(" ".into()), b"same")
        );
        assert_ne!(delivery_id(None, b"same"), delivery_id(None, b"other"));
    }
}
