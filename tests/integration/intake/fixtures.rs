//! Every real payload in `tests/fixtures/webhooks/` through the real route, correctly signed:
//! the right answer, and the right `Event` (snapshots in `snapshots/`, and the stored run's
//! event equal to it).

use gantry::webhook;

use crate::intake::helpers::{self, TestApp, fixture};

/// Each fixture with the event header its forge sends with it, and the answer Gantry owes.
/// 202: a run is queued. 200: a ping or an event Gantry does not act on.
const FIXTURES: &[(&str, &str, u16)] = &[
    ("github/create/goscm__branch_create.json", "create", 200),
    ("github/create/goscm__tag_create.json", "create", 200),
    ("github/delete/goscm__branch_delete.json", "delete", 200),
    ("github/delete/goscm__tag_delete.json", "delete", 200),
    ("github/ping/goplayground__ping.json", "ping", 200),
    ("github/ping/octokit__payload.json", "ping", 200),
    (
        "github/ping/octokit__ping-with-app_id.payload.json",
        "ping",
        200,
    ),
    (
        "github/ping/octokit__ping-with-organization.payload.json",
        "ping",
        200,
    ),
    (
        "github/pull_request/goplayground__pull-request.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/goscm__pr_closed.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/goscm__pr_edited.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/goscm__pr_labeled.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/goscm__pr_opened.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/goscm__pr_ready_for_review.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/goscm__pr_reopened.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/goscm__pr_sync.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/goscm__pr_unlabeled.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__assigned.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__assigned.with-organization.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__closed.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__closed.with-organization.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__converted_to_draft.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__converted_to_draft.with-installation.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__converted_to_draft.with-organization.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__labeled.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__labeled.with-organization.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__locked.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__locked.with-organization.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__opened.payload.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/octokit__opened.with-null-body.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/octokit__opened.with-organization.payload.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/octokit__ready_for_review.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__ready_for_review.with-installation.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__ready_for_review.with-organization.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__reopened.payload.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/octokit__reopened.with-organization.payload.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/octokit__review_request_removed.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__review_requested.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__synchronize.payload.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/octokit__unassigned.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__unassigned.with-organization.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__unlabeled.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__unlabeled.with-organization.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__unlocked.payload.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/octokit__unlocked.with-organization.payload.json",
        "pull_request",
        200,
    ),
    ("github/push/goplayground__push.json", "push", 202),
    ("github/push/goscm__push.json", "push", 202),
    ("github/push/goscm__push_branch_create.json", "push", 202),
    ("github/push/goscm__push_branch_delete.json", "push", 200),
    ("github/push/goscm__push_tag.json", "push", 202),
    ("github/push/goscm__push_tag_delete.json", "push", 200),
    ("github/push/octokit__1.json", "push", 200),
    ("github/push/octokit__tag-delete.payload.json", "push", 200),
    ("github/push/octokit__with-installation.json", "push", 200),
    ("github/push/octokit__with-new-branch.json", "push", 202),
    (
        "github/push/octokit__with-no-username-committer.json",
        "push",
        202,
    ),
    ("github/push/octokit__with-organization.json", "push", 200),
    (
        "gitlab/merge_request/gogitlab__group_merge_request.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/gogitlab__merge_request.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/merge_request/gogitlab__service_merge_request.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/merge_request/gogitlab__systemhook_merge_request.json",
        "System Hook",
        200,
    ),
    (
        "gitlab/merge_request/goplayground__merge-request-event.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/merge_request/goscm__merge_request_subgroup.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/merge_request/goscm__pull_request_close.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/goscm__pull_request_create.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/merge_request/goscm__pull_request_merge.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/goscm__pull_request_reopen.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/merge_request/goscm__pull_request_review_ready.json",
        "Merge Request Hook",
        200,
    ),
    ("gitlab/push/gogitlab__push.json", "Push Hook", 202),
    (
        "gitlab/push/gogitlab__systemhook_push.json",
        "System Hook",
        202,
    ),
    (
        "gitlab/push/goplayground__push-event.json",
        "Push Hook",
        202,
    ),
    ("gitlab/push/goscm__branch_create.json", "Push Hook", 202),
    ("gitlab/push/goscm__branch_delete.json", "Push Hook", 200),
    (
        "gitlab/push/goscm__branch_delete_subgroup.json",
        "Push Hook",
        200,
    ),
    ("gitlab/push/goscm__push.json", "Push Hook", 202),
    ("gitlab/push/goscm__push_merge.json", "Push Hook", 202),
    ("gitlab/push/goscm__push_subgroup.json", "Push Hook", 202),
    (
        "gitlab/tag_push/gogitlab__systemhook_tag_push.json",
        "System Hook",
        202,
    ),
    (
        "gitlab/tag_push/gogitlab__tag_push.json",
        "Tag Push Hook",
        202,
    ),
    (
        "gitlab/tag_push/goplayground__tag-event.json",
        "Tag Push Hook",
        202,
    ),
    (
        "gitlab/tag_push/goscm__tag_create.json",
        "Tag Push Hook",
        202,
    ),
    (
        "gitlab/tag_push/goscm__tag_delete.json",
        "Tag Push Hook",
        200,
    ),
    (
        "gitlab/tag_push/goscm__tag_delete_subgroup.json",
        "Tag Push Hook",
        200,
    ),
    ("gitea/create/goscm__branch_create.json", "create", 200),
    ("gitea/create/goscm__tag_create.json", "create", 200),
    ("gitea/delete/goscm__branch_delete.json", "delete", 200),
    ("gitea/delete/goscm__tag_delete.json", "delete", 200),
    (
        "gitea/pull_request/goplayground__pull-request-event.json",
        "pull_request",
        202,
    ),
    (
        "gitea/pull_request/goscm__pull_request_closed.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/goscm__pull_request_edited.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/goscm__pull_request_merged.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/goscm__pull_request_opened.json",
        "pull_request",
        202,
    ),
    (
        "gitea/pull_request/goscm__pull_request_reopened.json",
        "pull_request",
        202,
    ),
    (
        "gitea/pull_request/goscm__pull_request_synchronized.json",
        "pull_request",
        202,
    ),
    ("gitea/push/goplayground__push-event.json", "push", 202),
    ("gitea/push/goscm__push.json", "push", 202),
    // The second batch (see SOURCES.md): shapes the first did not have.
    (
        "gitea/create/goplayground__create-event.json",
        "create",
        200,
    ),
    (
        "gitea/create/woodpecker-gostr__HookPushTag.json",
        "create",
        200,
    ),
    ("gitea/create/woodpecker__HookTag.json", "create", 200),
    (
        "gitea/delete/goplayground__delete-event.json",
        "delete",
        200,
    ),
    (
        "gitea/issue_comment/jxgoscm__pull_request_comment_created.json",
        "issue_comment",
        200,
    ),
    (
        "gitea/pull_request/goplayground__pull-request-assign-event.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/woodpecker-forgejo__HookPullRequestAssigneeCleared.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/woodpecker-forgejo__HookPullRequestLabelsUpdated.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/woodpecker-forgejo__HookPullRequestMilestoneChanged.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/woodpecker-forgejo__HookPullRequestReopened.json",
        "pull_request",
        202,
    ),
    (
        "gitea/pull_request/woodpecker-gostr__HookPullRequest.json",
        "pull_request",
        202,
    ),
    (
        "gitea/pull_request/woodpecker__HookPullRequest.json",
        "pull_request",
        202,
    ),
    (
        "gitea/pull_request/woodpecker__HookPullRequestAddLabel.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/woodpecker__HookPullRequestAddMile.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/woodpecker__HookPullRequestAddReviewRequest.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/woodpecker__HookPullRequestChangeTitle.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/woodpecker__HookPullRequestMerged.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/woodpecker__HookPullRequestRemoveLabel.json",
        "pull_request",
        200,
    ),
    (
        "gitea/pull_request/woodpecker__HookPullRequestUpdated.json",
        "pull_request",
        202,
    ),
    (
        "gitea/pull_request_approved/woodpecker__HookPullRequestReviewAck.json",
        "pull_request_approved",
        200,
    ),
    (
        "gitea/pull_request_rejected/woodpecker__HookPullRequestReviewDeny.json",
        "pull_request_rejected",
        200,
    ),
    ("gitea/push/woodpecker-gostr__HookPush.json", "push", 202),
    ("gitea/push/woodpecker__HookPushBranch.json", "push", 202),
    ("gitea/push/woodpecker__HookPushMulti.json", "push", 202),
    (
        "github/check_suite/octokit__completed.payload.json",
        "check_suite",
        200,
    ),
    (
        "github/check_suite/octokit__requested.payload.json",
        "check_suite",
        200,
    ),
    (
        "github/check_suite/octokit__rerequested.payload.json",
        "check_suite",
        200,
    ),
    (
        "github/create/octokit__with-installation.payload.json",
        "create",
        200,
    ),
    ("github/delete/octokit__payload.json", "delete", 200),
    (
        "github/issue_comment/atlantis__githubIssueCommentEvent.json",
        "issue_comment",
        200,
    ),
    (
        "github/issue_comment/vela__issue_comment_pr.json",
        "issue_comment",
        200,
    ),
    ("github/ping/jxgoscm__ping.json", "ping", 200),
    (
        "github/pull_request/atlantis__githubPullRequestClosedEvent.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/atlantis__githubPullRequestOpenedEvent.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/cuedo__pull-request-delete-null-head-repo-anomaly.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/screwdriver__github.pull_request.opened-fork.json",
        "pull_request",
        202,
    ),
    ("github/pull_request/tekton__pr.json", "pull_request", 200),
    (
        "github/pull_request/vela__pull_request_edited_while_labeled.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/vela__pull_request_fork.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/vela__pull_request_fork_same-repo.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/woodpecker__HookPullRequest.json",
        "pull_request",
        202,
    ),
    (
        "github/pull_request/woodpecker__HookPullRequestAssigneeAdded.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/woodpecker__HookPullRequestAssigneeRemoved.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/woodpecker__HookPullRequestEdited.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/woodpecker__HookPullRequestLabelAdded.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/woodpecker__HookPullRequestLabelRemoved.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/woodpecker__HookPullRequestMerged.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/woodpecker__HookPullRequestMilestoneAdded.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/woodpecker__HookPullRequestMilestoneRemoved.json",
        "pull_request",
        200,
    ),
    (
        "github/pull_request/woodpecker__HookPullRequestReviewRequested.json",
        "pull_request",
        200,
    ),
    ("github/push/argocd__github-commit-event.json", "push", 202),
    (
        "github/push/cuedo__push-event-without-sender.json",
        "push",
        200,
    ),
    ("github/push/vela__push_delete_branch.json", "push", 200),
    ("github/push/vela__push_multicommit.json", "push", 202),
    ("github/push/vela__push_no_sender.json", "push", 202),
    ("github/push/woodpecker__HookPushForced.json", "push", 202),
    ("github/push/woodpecker__HookTag.json", "push", 202),
    (
        "github/workflow_run/octokit__completed.with-pull-requests.payload.json",
        "workflow_run",
        200,
    ),
    (
        "github/workflow_run/octokit__requested.payload.json",
        "workflow_run",
        200,
    ),
    (
        "gitlab/merge_request/argocd__gitlab-merge-request-approval-event.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/atlantis__gitlab-merge-request-event-update-new-commit.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/merge_request/screwdriver-gl__gitlab.merge_request.closed.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/screwdriver-gl__gitlab.merge_request.opened.forked.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/merge_request/screwdriver-gl__gitlab.merge_request.reopened.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/merge_request/woodpecker__HookPullRequestApproved.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/woodpecker__HookPullRequestAssigned.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/woodpecker__HookPullRequestLabelsUpdated.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/woodpecker__HookPullRequestMerged.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/woodpecker__HookPullRequestOpened.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/merge_request/woodpecker__HookPullRequestReviewRequested.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/woodpecker__HookPullRequestUnapproved.json",
        "Merge Request Hook",
        200,
    ),
    (
        "gitlab/merge_request/woodpecker__HookPullRequestUpdated.json",
        "Merge Request Hook",
        202,
    ),
    (
        "gitlab/note/atlantis__gitlabMergeCommentEvent_notAllowlisted.json",
        "Note Hook",
        200,
    ),
    (
        "gitlab/note/gogitlab__note_merge_request.json",
        "Note Hook",
        200,
    ),
    (
        "gitlab/pipeline/gogitlab__pipeline.json",
        "Pipeline Hook",
        200,
    ),
    ("gitlab/push/jxgoscm__push2.json", "Push Hook", 202),
    (
        "gitlab/push/screwdriver-gl__gitlab.push.json",
        "Push Hook",
        202,
    ),
    (
        "gitlab/push/tekton__gitlab-push-event.json",
        "Push Hook",
        202,
    ),
    (
        "gitlab/system/gogitlab__repository_update.json",
        "System Hook",
        200,
    ),
    (
        "gitlab/tag_push/woodpecker__HookTag.json",
        "Tag Push Hook",
        202,
    ),
];

#[test]
fn the_table_covers_every_fixture_file() {
    let mut on_disk = Vec::new();
    for forge in ["github", "gitlab", "gitea"] {
        for event in std::fs::read_dir(helpers::fixture_dir().join(forge)).unwrap() {
            let event = event.unwrap();
            for file in std::fs::read_dir(event.path()).unwrap() {
                let file = file.unwrap();
                on_disk.push(format!(
                    "{forge}/{}/{}",
                    event.file_name().to_string_lossy(),
                    file.file_name().to_string_lossy()
                ));
            }
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|(path, ..)| path.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[tokio::test]
async fn every_fixture_gets_its_answer_and_its_event() {
    let app = TestApp::spawn().await;
    let settings = helpers::settings_for(tempfile::tempdir().unwrap().path(), "sqlite::memory:");
    let mut queued = 0;
    let mut blocked = Vec::new();
    for (path, event_name, expected) in FIXTURES {
        let forge_name = path.split('/').next().unwrap();
        let request = helpers::signed(forge_name, event_name, &fixture(path));

        let parsed = request
            .receive(&settings)
            .unwrap_or_else(|err| panic!("{path}: {err}"));
        let snapshot_name = path.replace('/', "__").trim_end_matches(".json").to_owned();
        insta::assert_json_snapshot!(snapshot_name, parsed.event);

        let response = app.post_hook(forge_name, &request).await;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, *expected, "{path}: {body}");
        if status == 202 {
            queued += 1;
            let run_id = body["run_id"].as_i64().expect("run_id in a 202");
            let (status, run) = app.get_json(&format!("/api/runs/{run_id}")).await;
            assert_eq!(status, 200);
            // Pull requests from forks wait for approval (the default `approval = "forks"`).
            let expected = if parsed.event.from_fork() {
                blocked.push(*path);
                "blocked"
            } else {
                "queued"
            };
            assert_eq!(run["state"], expected, "{path}");
            let stored: webhook::Event = serde_json::from_value(run["event"].clone()).unwrap();
            assert_eq!(stored, parsed.event, "{path}: stored event differs");
        } else {
            assert!(body.get("ignored").is_some(), "{path}: {body}");
        }
    }
    assert_eq!(app.run_count().await, queued);
    for forge in ["github", "gitlab", "gitea"] {
        assert!(
            blocked.iter().any(|path| path.starts_with(forge)),
            "some {forge} fixture is a fork's pull request: {blocked:?}"
        );
    }
}
