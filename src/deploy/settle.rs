//! Settling a controller's report: which open bumps of its environment the applied
//! revision contains (the config repo's history says), and what each app commit hears.
//!
//! A revision two bumps later settles both: ancestry, not equality, decides. A failure
//! leaves deployments that already succeeded alone (what ran before still runs); a later
//! success turns a failed deployment into a deployed one.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{Environment, Settings};
use crate::domain::{DeployOutcome, DeployState};
use crate::forge::clamp_description;
use crate::git::{Git, GitAuth};
use crate::metrics::Metrics;
use crate::store::{ClaimedDeployEvent, OpenDeployment, SettledDeployment, Store, now_millis};

/// How often the store is asked for reports to settle.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A report taken by a runner that went quiet this long is taken again.
const CLAIM_LEASE_MILLIS: i64 = 120_000;

/// Settles the stored reports, one at a time, for as long as the process runs.
pub struct Settler {
    store: Store,
    settings: Arc<Settings>,
    metrics: Metrics,
}

impl Settler {
    pub fn new(store: Store, settings: Arc<Settings>, metrics: Metrics) -> Self {
        Self {
            store,
            settings,
            metrics,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            loop {
                match self.store.claim_deploy_event(CLAIM_LEASE_MILLIS).await {
                    Ok(Some(event)) => {
                        if let Err(err) = self.settle(&event).await {
                            // Left claimed: it is taken again once the lease runs out.
                            tracing::error!(
                                event = event.id,
                                environment = %event.environment,
                                error = %format!("{err:#}"),
                                "settling a deploy report failed"
                            );
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::error!(error = %format!("{err:#}"), "reading deploy reports failed");
                        break;
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    async fn settle(&self, event: &ClaimedDeployEvent) -> anyhow::Result<()> {
        let environment = self
            .settings
            .deploy
            .environments
            .iter()
            .find(|environment| environment.name == event.environment);
        let (open, decided) = match (environment, event.outcome) {
            (Some(environment), DeployOutcome::Applied | DeployOutcome::Failed) => {
                let open = self.store.open_deployments_of(&environment.name).await?;
                let contained =
                    contained_in(&self.settings, environment, &event.revision, &open).await?;
                let decided = decide(environment, event, &open, &contained);
                (open, decided)
            }
            // Under way, or an environment no longer configured: nothing to tell.
            _ => (Vec::new(), Vec::new()),
        };
        let changed = self.store.settle_deploy_event(event, &decided).await?;
        let now = now_millis();
        for deployment in open.iter().filter(|d| changed.contains(&d.bump_id)) {
            if event.outcome == DeployOutcome::Applied {
                let seconds = (now - deployment.pushed_at).max(0) as f64 / 1000.0;
                self.metrics.observe_deployment(&event.environment, seconds);
            }
        }
        tracing::info!(
            environment = %event.environment,
            revision = %event.revision,
            outcome = %event.outcome,
            settled = changed.len(),
            "deploy report settled"
        );
        Ok(())
    }
}

/// What the report means for each open deployment its revision contains.
fn decide(
    environment: &Environment,
    event: &ClaimedDeployEvent,
    open: &[OpenDeployment],
    contained: &HashSet<i64>,
) -> Vec<SettledDeployment> {
    let (state, description) = match event.outcome {
        DeployOutcome::Applied => (
            DeployState::Success,
            format!("deployed to {}", environment.name),
        ),
        _ => (
            DeployState::Failure,
            format!(
                "{} failed: {}",
                environment.name,
                event.message.as_deref().unwrap_or("no message")
            ),
        ),
    };
    open.iter()
        .filter(|deployment| contained.contains(&deployment.bump_id))
        .map(|deployment| SettledDeployment {
            bump_id: deployment.bump_id,
            run_id: deployment.run_id,
            state,
            description: clamp_description(&description),
        })
        .collect()
}

/// The open deployments whose bump commit `revision` contains, by the config repo's
/// history (fetched into a scratch repo: the branches the bumps went to, and the revision
/// itself when no branch has it).
async fn contained_in(
    settings: &Settings,
    environment: &Environment,
    revision: &str,
    open: &[OpenDeployment],
) -> anyhow::Result<HashSet<i64>> {
    if open.is_empty() {
        return Ok(HashSet::new());
    }
    let dir = tempfile::Builder::new()
        .prefix("gantry-deploy-")
        .tempdir()
        .context("making a scratch repo")?;
    let git = Git::new(dir.path()).with_auth(&GitAuth::for_config_repos(&settings.gitops));
    git.run(&["init", "-q", "--bare", "--template="]).await?;
    let branches: BTreeSet<&str> = open.iter().map(|d| d.branch.as_str()).collect();
    let refspecs: Vec<String> = branches
        .iter()
        .map(|branch| format!("+refs/heads/{branch}:refs/heads/{branch}"))
        .collect();
    let mut fetch = vec!["fetch", "-q", "--no-tags", "--", &environment.config_repo];
    fetch.extend(refspecs.iter().map(String::as_str));
    git.run(&fetch)
        .await
        .with_context(|| format!("fetching {}", environment.config_repo))?;
    let has = |commit: String| {
        let git = &git;
        async move {
            git.run(&["cat-file", "-e", &format!("{commit}^{{commit}}")])
                .await
                .is_ok()
        }
    };
    if !has(revision.to_owned()).await {
        // Not on the bumps' branches (yet): fetched by its id, where the server allows it.
        let _ = git
            .run(&[
                "fetch",
                "-q",
                "--no-tags",
                "--",
                &environment.config_repo,
                revision,
            ])
            .await;
        if !has(revision.to_owned()).await {
            tracing::warn!(
                environment = %environment.name,
                %revision,
                "the reported revision is not in the config repo"
            );
            return Ok(HashSet::new());
        }
    }
    let mut contained = HashSet::new();
    for deployment in open {
        // An ancestor's merge base with the revision is itself; a missing commit (dropped
        // by a force-push) is contained in nothing.
        let base = git
            .run(&["merge-base", &deployment.commit, revision])
            .await
            .map(|base| base.trim().to_owned());
        if base.is_ok_and(|base| base == deployment.commit) {
            contained.insert(deployment.bump_id);
        }
    }
    Ok(contained)
}
