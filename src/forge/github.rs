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
    .json(&pull_request_update(pr))
}

/// The body of a pull request update; Gitea takes the same.
pub(super) fn pull_request_update(pr: &PullRequest) -> serde_json::Value {
    json!({ "title": pr.title, "body": pr.body })
}

/// The body of a new pull request; Gitea takes the same.
pub(super) fn pull_request_create(pr: &PullRequest) -> serde_json::Value {
    json!({ "title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body })
}

pub(super) fn create_pull_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    pr: &PullRequest,
) -> reqwest::RequestBuilder {
    api(http.post(format!("{base}/repos/{}/pulls", pr.repo)), token).json(&pull_request_create(pr))
}

/// `POST /repos/{repo}/check-runs`: a new check run for each update. GitHub shows the newest
/// one per name, so the last update is what people see, like a status.
pub(super) fn check_run_request(
    http: &reqwest::Client,
    base: &str,
    token: &Secret,
    status: &CommitStatus,
) -> reqwest::RequestBuilder {
    api(
        http.post(format!("{base}/repos/{}/check-runs", status.repo)),
        token,
    )
    .json(&check_run_body(status))
}

fn check_run_body(status: &CommitStatus) -> serde_json::Value {
    let (run_status, conclusion) = match status.state {
        StatusState::Pending => ("queued", None),
        StatusState::Running => ("in_progress", None),
        StatusState::Success => ("completed", Some("success")),
        StatusState::Failure | StatusState::Error => ("completed", Some("failure")),
        StatusState::Canceled => ("completed", Some("cancelled")),
    };
    let annotations: Vec<serde_json::Value> = match conclusion {
        Some("failure") => annotation(&status.description).into_iter().collect(),
        _ => Vec::new(),
    };
    let mut body = json!({
        "name": status.context,
        "head_sha": status.sha,
        "details_url": status.target_url,
        "status": run_status,
        "output": {
            "title": status.description,
            "summary": format!("{}\n\n[The run in Gantry]({})", status.description, status.target_url),
            "annotations": annotations,
        },
    });
    if let Some(conclusion) = conclusion {
        body["conclusion"] = json!(conclusion);
    }
    body
}

/// An annotation at the place a description names (`file:line:col: message`, as pipeline
/// file errors read), so the error shows on the file's line in the pull request.
fn annotation(description: &str) -> Option<serde_json::Value> {
    let mut parts = description.splitn(4, ':');
    let (path, line, column, message) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let line: u64 = line.parse().ok()?;
    let column: u64 = column.parse().ok()?;
    if path.is_empty() || path.contains(' ') || line == 0 {
        return None;
    }
    Some(json!({
        "path": path,
        "start_line": line,
        "end_line": line,
        "start_column": column,
        "end_column": column,
        "annotation_level": "failure",
        "message": message.trim(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_become_annotations_and_other_descriptions_do_not() {
        let found =
            annotation(".gantry/web.yml:8:5: unknown key `need`; did you mean `needs`?").unwrap();
        assert_eq!(found["path"], ".gantry/web.yml");
        assert_eq!(
            (found["start_line"].as_u64(), found["start_column"].as_u64()),
            (Some(8), Some(5))
        );
        assert_eq!(
            found["message"],
            "unknown key `need`; did you mean `needs`?"
        );
        assert!(annotation("test: exit code 2").is_none());
        assert!(annotation("build: registry.example.com:5000: unauthorized").is_none());
    }
}
