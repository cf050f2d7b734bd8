//! GitLab commit statuses: `POST /projects/:id/statuses/:sha`, the project named by its
//! URL-encoded full path.

use serde_json::json;

use super::{CommitStatus, StatusState};
use crate::config::Secret;

/// GitLab has every state Gantry has, under its own names.
fn state(state: StatusState) -> &'static str {
    match state {
        StatusState::Pending => "pending",
        StatusState::Running => "running",
        StatusState::Success => "success",
        StatusState::Failure | StatusState::Error => "failed",
        StatusState::Canceled => "canceled",
    }
}

pub(super) fn status_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    status: &CommitStatus,
) -> reqwest::RequestBuilder {
    let project: String = url::form_urlencoded::byte_serialize(status.repo.as_bytes()).collect();
    http.post(format!("{base}/projects/{project}/statuses/{}", status.sha))
        .header("PRIVATE-TOKEN", token.expose())
        .json(&json!({
            "state": state(status.state),
            "ref": status.git_ref,
            "name": status.context,
            "target_url": status.target_url,
            "description": status.description,
        }))
}
