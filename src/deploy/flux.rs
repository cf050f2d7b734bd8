//! Flux's notification-controller, `generic-hmac` Provider: the event as JSON, signed with
//! `X-Signature: sha256=<hex>` (HMAC-SHA256 of the body under the Provider Secret's
//! `token`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Report, ReportError, commit_of, short_message};
use crate::domain::{DeployOutcome, DeploySource, Secret};
use crate::webhook::signature::verify_hex;

/// Reasons of a successful reconciliation: kustomize-controller's, and helm-controller's.
const SUCCEEDED: &[&str] = &[
    "ReconciliationSucceeded",
    "InstallSucceeded",
    "UpgradeSucceeded",
    "TestSucceeded",
];

/// The metadata keys that carry the applied revision: what the controller posts, and the
/// prefixed form the event has inside the cluster (and in Flux's documentation).
const REVISION_KEYS: &[&str] = &[
    "revision",
    "kustomize.toolkit.fluxcd.io/revision",
    "helm.toolkit.fluxcd.io/revision",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    involved_object: InvolvedObject,
    severity: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct InvolvedObject {
    #[serde(default)]
    namespace: String,
    name: String,
}

/// Checks the signature, then reads the event.
pub fn read(
    secrets: &[Secret],
    signature: Option<&str>,
    body: &[u8],
) -> Result<Report, ReportError> {
    if secrets.is_empty() {
        return Err(ReportError::Unauthorized(
            "no deploy.flux_secrets are configured".into(),
        ));
    }
    let signature = signature.ok_or_else(|| {
        ReportError::Unauthorized("missing X-Signature header (use a generic-hmac Provider)".into())
    })?;
    let hex = match signature.trim().split_once('=') {
        Some((algorithm, hex)) if algorithm.eq_ignore_ascii_case("sha256") => hex,
        Some((algorithm, _)) => {
            return Err(ReportError::Unauthorized(format!(
                "unsupported X-Signature algorithm `{algorithm}`; expected sha256"
            )));
        }
        None => {
            return Err(ReportError::Unauthorized(
                "X-Signature must be `sha256=<hex>`".into(),
            ));
        }
    };
    if !verify_hex(secrets, body, hex) {
        return Err(ReportError::Unauthorized(
            "X-Signature does not match".into(),
        ));
    }
    let event: Event =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
            .map_err(|err| ReportError::BadBody(format!("not a Flux event: {err}")))?;
    let outcome = if event.severity.eq_ignore_ascii_case("error") {
        DeployOutcome::Failed
    } else if SUCCEEDED.contains(&event.reason.as_str()) {
        DeployOutcome::Applied
    } else {
        DeployOutcome::Progressing
    };
    let revision = REVISION_KEYS
        .iter()
        .find_map(|key| event.metadata.get(*key)?.as_str())
        .and_then(commit_of);
    let message = match outcome {
        DeployOutcome::Failed => short_message(&format!("{}: {}", event.reason, event.message)),
        _ => short_message(&event.message),
    };
    Ok(Report {
        source: DeploySource::Flux,
        object: format!(
            "{}/{}",
            event.involved_object.namespace, event.involved_object.name
        ),
        revision,
        outcome,
        message,
    })
}
