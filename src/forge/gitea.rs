//! Gitea and Forgejo commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}`, the same
//! body and states as GitHub's; only the auth header differs.

use super::github::status_body;
use super::{CommitStatus, PullRequest};
use crate::config::Secret;

pub(super) fn status_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    status: &CommitStatus,
) -> reqwest::RequestBuilder {
    api(
        http.post(format!(
            "{base}/repos/{}/statuses/{}",
            status.repo, status.sha
        )),
        token,
    )
    .json(&status_body(status))
}

fn api(request: reqwest::RequestBuilder, token: &Secret) -> reqwest::RequestBuilder {
    request.header("Authorization", format!("token {}", token.expose()))
}

/// Open pull requests; Gitea's list has no head filter, so [`existing_pull_request`] looks.
pub(super) fn find_pull_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    pr: &PullRequest,
) -> reqwest::RequestBuilder {
    api(http.get(format!("{base}/repos/{}/pulls", pr.repo)), token)
        .query(&[("state", "open"), ("limit", "50")])
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

pub(super) fn update_pull_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    pr: &PullRequest,
    number: &str,
) -> reqwest::RequestBuilder {
    api(
        http.patch(format!("{base}/repos/{}/pulls/{number}", pr.repo)),
        token,
    )
    .json(&super::github::pull_request_update(pr))
}

pub(super) fn create_pull_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    pr: &PullRequest,
) -> reqwest::RequestBuilder {
    api(http.post(format!("{base}/repos/{}/pulls", pr.repo)), token)
        .json(&super::github::pull_request_create(pr))
}
