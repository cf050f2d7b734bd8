//! GitLab commit statuses: `POST /projects/:id/statuses/:sha`, the project named by its
//! URL-encoded full path.

use serde_json::json;

use super::{CommitStatus, PullRequest, StatusState};
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

fn project(pr: &PullRequest) -> String {
    url::form_urlencoded::byte_serialize(pr.repo.as_bytes()).collect()
}

/// `GET /projects/:id/merge_requests?state=opened&source_branch=…&target_branch=…`.
pub(super) fn find_pull_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    pr: &PullRequest,
) -> reqwest::RequestBuilder {
    http.get(format!("{base}/projects/{}/merge_requests", project(pr)))
        .header("PRIVATE-TOKEN", token.expose())
        .query(&[
            ("state", "opened"),
            ("source_branch", &pr.head),
            ("target_branch", &pr.base),
        ])
}

/// The `iid` and address of the first open merge request listed.
pub(super) fn existing_pull_request(listed: &serde_json::Value) -> Option<(String, String)> {
    let first = listed.as_array()?.first()?;
    Some((
        first.get("iid")?.as_u64()?.to_string(),
        first.get("web_url")?.as_str()?.to_owned(),
    ))
}

pub(super) fn update_pull_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    pr: &PullRequest,
    iid: &str,
) -> reqwest::RequestBuilder {
    http.put(format!(
        "{base}/projects/{}/merge_requests/{iid}",
        project(pr)
    ))
    .header("PRIVATE-TOKEN", token.expose())
    .json(&json!({ "title": pr.title, "description": pr.body }))
}

pub(super) fn create_pull_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    pr: &PullRequest,
) -> reqwest::RequestBuilder {
    http.post(format!("{base}/projects/{}/merge_requests", project(pr)))
        .header("PRIVATE-TOKEN", token.expose())
        .json(&json!({
            "source_branch": pr.head,
            "target_branch": pr.base,
            "title": pr.title,
            "description": pr.body,
            "remove_source_branch": true,
        }))
}
