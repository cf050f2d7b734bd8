//! Getting a queued run ready: fetching its commit and deciding, pipeline file by pipeline
//! file, what will run. The runner does this when it claims a run; the announcer does it
//! earlier, for runs that wait for a free slot, so their pipelines show as pending on the
//! forge while they wait.

use anyhow::Context;

use super::checkout::{Checkout, forge_token};
use crate::config::{RepoSettings, Settings};
use crate::domain::{ChangedPaths, Forge, GitRef, RepoName, Secret, StageState};
use crate::forge::Forges;
use crate::pipeline::{self, Plan, RunContext, skip_ci_requested};
use crate::store::{ClaimedRun, ScheduleEntry, Store};
use crate::webhook::{EventKind, Manual, Scheduled};

/// A run whose commit is fetched and whose pipeline files are read and fitted to the event.
pub struct Prepared {
    pub repo: RepoSettings,
    pub checkout: Checkout,
    pub from_fork: bool,
    /// One per pipeline file, in file order.
    pub verdicts: Vec<Verdict>,
}

/// A pipeline's description when its `on:`/`when:` leaves the event out.
pub const NOT_TRIGGERED: &str = "not triggered by this event";

/// What one pipeline file means for this run.
pub enum Verdict {
    /// It runs, as planned.
    Runs(Plan),
    /// It does not run, and this is its end: `skipped` when its `on:` or `when:` leaves the
    /// event out, `error` when the file is invalid (`file:line:col: message`) or cannot be
    /// fitted to the event. Only an error is reported to the forge.
    Ends {
        name: String,
        file: String,
        state: StageState,
        description: String,
    },
}

impl Verdict {
    /// The pipeline's name and file.
    pub fn pipeline(&self) -> (&str, &str) {
        match self {
            Verdict::Runs(plan) => (&plan.pipeline, &plan.file),
            Verdict::Ends { name, file, .. } => (name, file),
        }
    }
}

/// Reads the schedules of `repo` from the newest commit Gantry has seen pushed to its
/// default branch, and makes them the repo's: what a start does for every configured repo,
/// so that schedules hold even for a repo whose last push came before they were recorded.
/// Nothing happens for a repo whose default branch no push was seen on.
pub async fn read_schedules(
    settings: &Settings,
    forges: Option<&Forges>,
    store: &Store,
    repo: &RepoSettings,
) -> anyhow::Result<()> {
    let known = store.known_refs(repo.forge, &repo.name).await?;
    let pushed_event = |run_id: i64| async move {
        store
            .run(run_id)
            .await
            .ok()
            .flatten()
            .and_then(|run| run.event)
    };
    // The default branch as the repo's pushes reported it, else as configured.
    let mut reported = None;
    if let Some(newest) = known.iter().max_by_key(|known| known.run_id) {
        reported = pushed_event(newest.run_id)
            .await
            .and_then(|event| event.repo?.default_branch);
    }
    let default_branch = repo.default_branch_or(reported.as_deref());
    let git_ref = GitRef::Branch(default_branch.to_owned());
    let Some(head) = known.iter().find(|known| known.git_ref == git_ref.full()) else {
        return Ok(());
    };
    let url = match &repo.clone_url {
        Some(url) => url.clone(),
        None => pushed_event(head.run_id)
            .await
            .and_then(|event| event.repo?.clone_url)
            .context("no clone URL for the repo")?,
    };
    let token = git_token(settings, forges, repo.forge, &repo.name).await;
    let token = token.as_ref().map(|token| (repo.forge, token));
    let checkout = Checkout::fetch(&url, &head.commit_sha, Some(&git_ref.full()), token)
        .await
        .with_context(|| format!("checking out {}", head.commit_sha))?;
    let dir = checkout.dir.path().join(&repo.pipelines);
    let loaded = if dir.is_dir() {
        pipeline::load_dir(&dir, &repo.pipelines).context("reading pipeline files")?
    } else {
        Vec::new()
    };
    record_schedules(store, repo, default_branch, &loaded).await
}

/// The token git fetches `repo` with: the forge clients' (a GitHub App's installation
/// token), else the forge's configured token.
async fn git_token(
    settings: &Settings,
    forges: Option<&Forges>,
    forge: Forge,
    repo: &RepoName,
) -> Option<Secret> {
    match forges {
        Some(forges) => forges.git_token(forge, repo).await,
        None => forge_token(settings, forge).cloned(),
    }
}

/// Makes the schedules of the `loaded` pipeline files the repo's.
async fn record_schedules(
    store: &Store,
    repo: &RepoSettings,
    default_branch: &str,
    loaded: &[pipeline::Loaded],
) -> anyhow::Result<()> {
    let entries: Vec<ScheduleEntry> = loaded
        .iter()
        .filter_map(|entry| entry.result.as_ref().ok())
        .flat_map(|pipeline| {
            pipeline
                .triggers
                .schedules
                .iter()
                .map(|schedule| ScheduleEntry {
                    pipeline: pipeline.name.clone(),
                    cron: schedule.cron.clone(),
                    branch: schedule
                        .branch
                        .clone()
                        .unwrap_or_else(|| default_branch.to_owned()),
                })
        })
        .collect();
    store
        .replace_schedules(repo.forge, &repo.name, &entries)
        .await
        .context("recording the repo's schedules")
}

/// A run that needs no work, and why.
pub struct Skip(pub String);

/// Fetches the run's commit and fits each pipeline file to its event. `Err(Skip)` inside
/// `Ok` when the run has nothing to do (`[skip ci]`, no pipeline folder, nothing
/// triggered).
pub async fn prepare(
    settings: &Settings,
    forges: Option<&Forges>,
    store: &Store,
    run: &ClaimedRun,
) -> anyhow::Result<Result<Prepared, Skip>> {
    let event = &run.event;
    let repo = settings
        .repo(event.forge, &run.repo)
        .with_context(|| format!("repo `{}` is no longer configured", run.repo))?;
    let request = event
        .run_request()
        .map_err(|reason| anyhow::anyhow!("the event asks for no run: {reason}"))?;
    if skip_ci_requested(request.commit_message.as_deref()) {
        return Ok(Err(Skip("[skip ci] in the commit message".into())));
    }
    let (url, fallback_ref, before, from_fork) = match &event.kind {
        EventKind::Push(push) => (
            repo.clone_url
                .clone()
                .or_else(|| event.repo.as_ref().and_then(|r| r.clone_url.clone())),
            Some(push.git_ref.full()),
            push.before.clone(),
            false,
        ),
        EventKind::PullRequest(pr) => (
            // A fork's commits are fetched from the fork.
            if pr.from_fork {
                pr.head_clone_url.clone()
            } else {
                None
            }
            .or_else(|| repo.clone_url.clone())
            .or_else(|| event.repo.as_ref().and_then(|r| r.clone_url.clone())),
            Some(GitRef::Branch(pr.head_ref.clone()).full()),
            pr.base_sha.clone(),
            pr.from_fork,
        ),
        EventKind::Manual(Manual { git_ref, .. })
        | EventKind::Scheduled(Scheduled { git_ref, .. }) => (
            repo.clone_url
                .clone()
                .or_else(|| event.repo.as_ref().and_then(|r| r.clone_url.clone())),
            Some(git_ref.full()),
            None,
            false,
        ),
        _ => (None, None, None, false),
    };
    let url = url.context("the event names no clone URL and the repo config sets none")?;
    let token = git_token(settings, forges, event.forge, &run.repo).await;
    let token = token.as_ref().map(|token| (event.forge, token));
    let checkout = Checkout::fetch(&url, &request.commit_sha, fallback_ref.as_deref(), token)
        .await
        .with_context(|| format!("checking out {}", request.commit_sha))?;
    let changed = match event.changed_paths() {
        ChangedPaths::Unknown => {
            checkout
                .changed_since(&url, before.as_ref(), &request.commit_sha)
                .await
        }
        known => known,
    };

    let pipelines_dir = checkout.dir.path().join(&repo.pipelines);
    let default_branch = repo.default_branch_or(
        event
            .repo
            .as_ref()
            .and_then(|reported| reported.default_branch.as_deref()),
    );
    let pushed_to_default = matches!(
        &event.kind,
        EventKind::Push(push) if push.git_ref == GitRef::Branch(default_branch.to_owned())
    );
    if !pipelines_dir.is_dir() {
        if pushed_to_default {
            record_schedules(store, repo, default_branch, &[]).await?;
        }
        return Ok(Err(Skip(format!(
            "no `{}` folder at this commit",
            repo.pipelines
        ))));
    }
    let loaded =
        pipeline::load_dir(&pipelines_dir, &repo.pipelines).context("reading pipeline files")?;
    // The default branch's files say which schedules hold from now on.
    if pushed_to_default {
        record_schedules(store, repo, default_branch, &loaded).await?;
    }
    let context =
        RunContext::for_event(run.id, event, super::WORKSPACE_DIR, changed, &repo.secrets)
            .context("the event has no commit to run")?;

    let verdicts: Vec<Verdict> = loaded
        .into_iter()
        .map(|entry| match entry.result {
            Err(diagnostics) => {
                let name = entry.file.rsplit('/').next().unwrap_or(&entry.file);
                let name = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
                Verdict::Ends {
                    name: name.to_owned(),
                    state: StageState::Error,
                    description: diagnostics
                        .first()
                        .map_or_else(|| "invalid pipeline file".into(), ToString::to_string),
                    file: entry.file.clone(),
                }
            }
            Ok(pipeline) => match pipeline.plan(&context) {
                Ok(Some(plan)) => Verdict::Runs(plan),
                Ok(None) => Verdict::Ends {
                    name: pipeline.name,
                    file: pipeline.file,
                    state: StageState::Skipped,
                    description: NOT_TRIGGERED.into(),
                },
                Err(err) => Verdict::Ends {
                    description: err.to_string(),
                    name: pipeline.name,
                    file: pipeline.file,
                    state: StageState::Error,
                },
            },
        })
        .collect();
    if verdicts.iter().all(|verdict| {
        matches!(
            verdict,
            Verdict::Ends {
                state: StageState::Skipped,
                ..
            }
        )
    }) {
        return Ok(Err(Skip(match event.kind {
            EventKind::Manual(_) => format!(
                "no pipeline of this commit takes manual runs: add `manual: {{}}` under `on:` \
                 in a file of `{}`",
                repo.pipelines
            ),
            _ => "no pipeline is triggered by this event".into(),
        })));
    }
    Ok(Ok(Prepared {
        repo: repo.clone(),
        checkout,
        from_fork,
        verdicts,
    }))
}
