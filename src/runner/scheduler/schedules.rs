//! Firing pipelines' schedules. Every few seconds each runner looks at the clock: a
//! schedule whose latest slot after its last run (or after it was first seen) has come
//! starts one run of its pipeline on its branch's newest pushed commit. A slot missed while
//! Gantry was down is owed once; of several replicas, the store lets one claim each slot.

use crate::domain::GitRef;
use crate::pipeline::schedule;
use crate::store::Store;
use crate::webhook::{Event, EventKind, Scheduled};

/// Starts the runs schedules owe at `now` (ms since the epoch) for the repos `configured`
/// accepts; returns their ids.
pub async fn fire_due(
    store: &Store,
    now: i64,
    configured: impl Fn(&Event) -> bool,
) -> anyhow::Result<Vec<i64>> {
    let mut started = Vec::new();
    for record in store.schedules(None).await? {
        let Ok(cron) = schedule::parse(&record.entry.cron) else {
            continue;
        };
        let after = record.last_slot.unwrap_or(record.since).max(record.since);
        let Some(slot) = schedule::latest_slot(&cron, after, now) else {
            continue;
        };
        let git_ref = GitRef::Branch(record.entry.branch.clone());
        let Some(known) = store
            .known_refs(record.forge, &record.repo)
            .await?
            .into_iter()
            .find(|known| known.git_ref == git_ref.full())
        else {
            tracing::warn!(repo = %record.repo, branch = %record.entry.branch,
                "a schedule is due on a branch no push was seen on; skipped");
            continue;
        };
        // The repo as its forge described it in that push (its clone URL among others).
        let repo = store
            .run(known.run_id)
            .await?
            .and_then(|run| run.event)
            .and_then(|event| event.repo);
        let event = Event {
            forge: record.forge,
            repo,
            kind: EventKind::Scheduled(Scheduled {
                git_ref,
                commit_sha: known.commit_sha,
                pipeline: record.entry.pipeline.clone(),
                cron: record.entry.cron.clone(),
                slot,
            }),
        };
        if !configured(&event) {
            continue;
        }
        let request = event
            .run_request()
            .map_err(|reason| anyhow::anyhow!("a scheduled event asks for no run: {reason}"))?;
        if let Some(id) = store
            .start_scheduled_run(&record, slot, &event, &request)
            .await?
        {
            tracing::info!(run_id = id, repo = %record.repo, pipeline = %record.entry.pipeline,
                cron = %record.entry.cron, "scheduled run queued");
            started.push(id);
        }
    }
    Ok(started)
}
