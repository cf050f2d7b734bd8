//! Gitea and Forgejo: commit statuses (`POST /repos/{owner}/{repo}/statuses/{sha}`) and pull
//! requests take GitHub's bodies and states; the auth header (`token …`) and finding an open
//! pull request differ.

use super::{ApiCall, PullRequest};

pub(super) use super::github::{create_pull_request, status_call, update_pull_request};

/// Open pull requests; Gitea's list has no head filter, so [`existing_pull_request`] looks.
pub(super) fn find_pull_request(pr: &PullRequest) -> ApiCall {
    ApiCall::get(
        format!("/repos/{}/pulls", pr.repo),
        &[("state", "open"), ("limit", "50")],
    )
}

pub(super) fn existing_pull_request(
    listed: &serde_json::Value,
    pr: &PullRequest,
) -> Option<(String, String)> {
    let found = listed.as_array()?.iter().find(|open| {
        open.pointer("/head/ref").and_then(|v| v.as_str()) == Some(pr.head.as_str())
            && open.pointer("/base/ref").and_then(|v| v.as_str()) == Some(pr.base.as_str())
    })?;
    Some((
        found.get("number")?.as_u64()?.to_string(),
        found.get("html_url")?.as_str()?.to_owned(),
    ))
}
