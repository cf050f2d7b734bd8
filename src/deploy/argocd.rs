//! Argo CD notifications' webhook service, with the template the README gives: the
//! application's name, its sync revision, sync and health status and operation phase,
//! sent with `Authorization: Bearer <token>`.

use serde::Deserialize;

use super::{Report, ReportError, commit_of, short_message};
use crate::domain::{DeployOutcome, DeploySource, Secret};

#[derive(Deserialize)]
struct Notification {
    app: String,
    #[serde(default)]
    revision: String,
    #[serde(default)]
    health_status: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    message: String,
}

/// Checks the bearer token (the one `Authorization: Bearer …` gave), then reads the
/// notification.
pub fn read(tokens: &[Secret], bearer: Option<&str>, body: &[u8]) -> Result<Report, ReportError> {
    if tokens.is_empty() {
        return Err(ReportError::Unauthorized(
            "no deploy.argocd_tokens are configured".into(),
        ));
    }
    let token = bearer.ok_or_else(|| {
        ReportError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
    })?;
    if !crate::domain::matches_any(tokens, token.as_bytes()) {
        return Err(ReportError::Unauthorized(
            "the bearer token does not match".into(),
        ));
    }
    let notification: Notification =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
            .map_err(|err| ReportError::BadBody(format!("not Gantry's Argo CD template: {err}")))?;
    let outcome = match (
        notification.phase.as_str(),
        notification.health_status.as_str(),
    ) {
        ("Failed" | "Error", _) | (_, "Degraded") => DeployOutcome::Failed,
        ("Succeeded", "Healthy") => DeployOutcome::Applied,
        _ => DeployOutcome::Progressing,
    };
    let message = match outcome {
        DeployOutcome::Failed if notification.health_status == "Degraded" => {
            short_message(&format!("health degraded: {}", notification.message))
        }
        _ => short_message(&notification.message),
    };
    Ok(Report {
        source: DeploySource::Argocd,
        object: notification.app,
        revision: commit_of(&notification.revision),
        outcome,
        message,
    })
}
