//! GitLab: commit statuses (`POST /projects/:id/statuses/:sha`) and merge requests, the
//! project named by its URL-encoded full path. Authenticated with `PRIVATE-TOKEN`.

use serde_json::json;

use super::{ApiCall, PullRequest};
use crate::domain::{CommitStatus, GitRef, StatusState};

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

/// Whether GitLab takes `next` for a status whose last state it took was `last` (for the
/// same commit, ref and name). GitLab updates a status only while it is pending or running,
/// and refuses to be told its state again or to step back from running to pending
/// (`400 Cannot transition status via :enqueue from :pending`); after a final state, any
/// state starts a new job.
pub(super) fn accepts(last: Option<StatusState>, next: StatusState) -> bool {
    use StatusState::{Pending, Running};
    !matches!(
        (last, next),
        (Some(Pending), Pending) | (Some(Running), Running | Pending)
    )
}

/// The ref a status of a run names: a merge request's own ref, as GitLab's merge request
/// pipelines name it, so that its statuses and those of a push of the same commit to the
/// branch are two statuses, side by side, not one refusing the other's transitions.
pub(super) fn status_ref(git_ref: &GitRef, merge_request: Option<u64>) -> String {
    match merge_request {
        Some(iid) => format!("refs/merge-requests/{iid}/head"),
        None => git_ref.name().to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use StatusState::*;

    #[test]
    fn repeated_and_backward_states_are_not_sent() {
        assert!(accepts(None, Pending));
        assert!(accepts(Some(Pending), Running));
        assert!(accepts(Some(Running), Success));
        assert!(
            accepts(Some(Success), Pending),
            "a final state starts a new job"
        );
        assert!(accepts(Some(Failure), Running));
        assert!(!accepts(Some(Pending), Pending));
        assert!(!accepts(Some(Running), Running));
        assert!(!accepts(Some(Running), Pending));
    }

    #[test]
    fn merge_requests_report_on_their_own_ref() {
        let branch = GitRef::Branch("feature".into());
        assert_eq!(status_ref(&branch, None), "feature");
        assert_eq!(status_ref(&branch, Some(7)), "refs/merge-requests/7/head");
    }
}
