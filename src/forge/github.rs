//! GitHub commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}`.

use serde_json::json;

use super::{CommitStatus, StatusState};
use crate::config::Secret;

/// GitHub (and Gitea, which copied its API) know no `running` or `canceled`: running shows
/// as pending, canceled as error (the description says which).
fn state(state: StatusState) -> &'static str {
    match state {
        StatusState::Pending | StatusState::Running => "pending",
        StatusState::Success => "success",
        StatusState::Failure => "failure",
        StatusState::Error | StatusState::Canceled => "error",
    }
}

pub(super) fn status_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    status: &CommitStatus,
) -> reqwest::RequestBuilder {
    http.post(format!(
        "{base}/repos/{}/statuses/{}",
        status.repo, status.sha
    ))
    .bearer_auth(token.expose())
    .header("Accept", "application/vnd.github+json")
    .header("X-GitHub-Api-Version", "2022-11-28")
    .json(&status_body(status))
}

/// The request body GitHub and Gitea both take.
pub(super) fn status_body(status: &CommitStatus) -> serde_json::Value {
    json!({
        "state": state(status.state),
        "target_url": status.target_url,
        "description": status.description,
        "context": status.context,
    })
}
