//! A bump's deployments, opened when its commit is pushed: one per environment whose path
//! holds the bumped file, each pending, with a pending status on the app commit.

use crate::config::DeploySettings;
use crate::domain::{CommitStatus, StatusState};
use crate::forge::clamp_description;
use crate::store::{BumpReport, Store, deploy_context};

/// Opens the deployments of bump `bump_id` of run `run_id`. `status` is the run's status
/// template (its commit, ref and link), when the run reports statuses. A bump that failed,
/// changed nothing or opened a pull request deploys nothing yet.
pub async fn open_deployments(
    store: &Store,
    settings: &DeploySettings,
    run_id: i64,
    bump_id: i64,
    report: &BumpReport,
    status: Option<&CommitStatus>,
) -> anyhow::Result<()> {
    let bumped = &report.bumped;
    if report.error.is_some() || bumped.commit.is_none() {
        return Ok(());
    }
    let environments: Vec<(String, Option<CommitStatus>)> = settings
        .environments_of(&bumped.repo, &bumped.file)
        .map(|environment| {
            let pending = status.map(|template| CommitStatus {
                context: deploy_context(&environment.name),
                state: StatusState::Pending,
                description: clamp_description(&format!(
                    "waiting for {} to reconcile",
                    environment.name
                )),
                ..template.clone()
            });
            (environment.name.clone(), pending)
        })
        .collect();
    store.open_deployments(bump_id, run_id, &environments).await
}
