//! GitHub commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}`.

use serde_json::json;

use super::{CommitStatus, PullRequest, StatusState};
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
    api(
        http.post(format!(
            "{base}/repos/{}/statuses/{}",
            status.repo, status.sha
        )),
        token,
    )
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

fn api(request: reqwest::RequestBuilder, token: &Secret) -> reqwest::RequestBuilder {
    request
        .bearer_auth(token.expose())
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
}

/// `GET /repos/{repo}/pulls?head=OWNER:BRANCH&state=open`: GitHub filters by head itself.
pub(super) fn find_pull_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    pr: &PullRequest,
) -> reqwest::RequestBuilder {
    let owner = pr.repo.split('/').next().unwrap_or_default();
    api(http.get(format!("{base}/repos/{}/pulls", pr.repo)), token).query(&[
        ("state", "open"),
        ("head", &format!("{owner}:{}", pr.head)),
        ("base", &pr.base),
    ])
}

/// The number and address of the first open pull request listed.
pub(super) fn existing_pull_request(listed: &serde_json::Value) -> Option<(String, String)> {
    let first = listed.as_array()?.first()?;
    Some((
        first.get("number")?.as_u64()?.to_string(),
        first.get("html_url")?.as_str()?.to_owned(),
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
    .json(&json!({ "title": pr.title, "body": pr.body }))
}

pub(super) fn create_pull_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    pr: &PullRequest,
) -> reqwest::RequestBuilder {
    api(http.post(format!("{base}/repos/{}/pulls", pr.repo)), token).json(&json!({
        "title": pr.title,
        "head": pr.head,
        "base": pr.base,
        "body": pr.body,
    }))
}
