//! Gitea and Forgejo commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}`, the same
//! body and states as GitHub's; only the auth header differs.

use super::CommitStatus;
use super::github::status_body;
use crate::config::Secret;

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
    .header("Authorization", format!("token {}", token.expose()))
    .json(&status_body(status))
}
