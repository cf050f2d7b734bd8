//! Deploy feedback: closing the GitOps loop. A bump is not a deployment; Flux or Argo CD
//! still has to apply it. They report what they applied (`flux.rs`, `argocd.rs`: verified
//! and read into one [`Report`]), the hooks store each report, and a runner settles it
//! (`settle.rs`): every open bump of that environment whose commit the applied revision
//! contains is deployed (or failed), and its app commit hears so as `gantry/deploy/<env>`.
//! `open.rs` opens a bump's deployments, pending, when the bump is pushed.

pub mod argocd;
pub mod flux;
mod open;
mod settle;

pub use open::open_deployments;
pub use settle::Settler;

use crate::domain::{DeployOutcome, DeploySource};

/// What a controller reported, whichever it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub source: DeploySource,
    /// `namespace/name` (Flux) or the application (Argo CD): what the config names.
    pub object: String,
    /// The config repo's commit, when the report names one.
    pub revision: Option<String>,
    pub outcome: DeployOutcome,
    pub message: Option<String>,
}

/// Why a report was refused. Never a 500: a controller's bad request is its own.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadBody(String),
}

/// A commit id out of the forms controllers write revisions in: `main@sha1:<hex>` (Flux
/// 2), `main/<hex>` (Flux 1 and 0.x), `sha1:<hex>`, or bare hex (Argo CD). `None` for
/// what is not a git commit (a Helm chart's version).
pub fn commit_of(revision: &str) -> Option<String> {
    let revision = revision.trim();
    let hex = revision
        .rsplit_once("sha1:")
        .map(|(_, hex)| hex)
        .or_else(|| revision.rsplit_once('/').map(|(_, hex)| hex))
        .unwrap_or(revision);
    let is_commit = matches!(hex.len(), 40 | 64) && hex.bytes().all(|b| b.is_ascii_hexdigit());
    is_commit.then(|| hex.to_ascii_lowercase())
}

/// Cuts a controller's message to what a status description and a page hold.
fn short_message(message: &str) -> Option<String> {
    let message = message.trim();
    (!message.is_empty()).then(|| message.chars().take(1024).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_in_every_controller_form_give_their_commit() {
        let sha = "d11dc3159634606cafccb94cb9c2a22d3fbe90e7";
        for written in [
            format!("main@sha1:{sha}"),
            format!("main/{sha}"),
            format!("sha1:{sha}"),
            sha.to_owned(),
            format!("release/v1@sha1:{}", sha.to_uppercase()),
        ] {
            assert_eq!(commit_of(&written).as_deref(), Some(sha), "{written}");
        }
        for not_a_commit in ["6.5.0", "main@sha256:abc", "", "main/abc"] {
            assert_eq!(commit_of(not_a_commit), None, "{not_a_commit}");
        }
    }
}
