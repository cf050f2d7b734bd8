//! GitLab: commit statuses (`POST /projects/:id/statuses/:sha`) and merge requests, the
//! project named by its URL-encoded full path. Authenticated with `PRIVATE-TOKEN`.

use serde_json::json;

use super::{ApiCall, PullRequest};
use crate::domain::{CommitStatus, StatusState};

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

fn project(repo: &str) -> String {
    url::form_urlencoded::byte_serialize(repo.as_bytes()).collect()
}

pub(super) fn status_call(status: &CommitStatus) -> ApiCall {
    ApiCall::post(
        format!(
            "/projects/{}/statuses/{}",
            project(status.repo.as_str()),
            status.sha
        ),
        json!({
            "state": state(status.state),
            "ref": status.git_ref,
            "name": status.context,
            "target_url": status.target_url,
            "description": status.description,
        }),
    )
}

/// `GET /projects/:id/merge_requests?state=opened&source_branch=…&target_branch=…`.
pub(super) fn find_pull_request(pr: &PullRequest) -> ApiCall {
    ApiCall::get(
        format!("/projects/{}/merge_requests", project(&pr.repo)),
        &[
            ("state", "opened"),
            ("source_branch", &pr.head),
            ("target_branch", &pr.base),
        ],
    )
}

/// The `iid` and address of the first open merge request listed.
pub(super) fn existing_pull_request(listed: &serde_json::Value) -> Option<(String, String)> {
    let first = listed.as_array()?.first()?;
    Some((
        first.get("iid")?.as_u64()?.to_string(),
        first.get("web_url")?.as_str()?.to_owned(),
    ))
}

pub(super) fn update_pull_request(pr: &PullRequest, iid: &str) -> ApiCall {
    ApiCall::put(
        format!("/projects/{}/merge_requests/{iid}", project(&pr.repo)),
        json!({ "title": pr.title, "description": pr.body }),
    )
}

pub(super) fn create_pull_request(pr: &PullRequest) -> ApiCall {
    ApiCall::post(
        format!("/projects/{}/merge_requests", project(&pr.repo)),
        json!({
            "source_branch": pr.head,
            "target_branch": pr.base,
            "title": pr.title,
            "description": pr.body,
            "remove_source_branch": true,
        }),
    )
}
