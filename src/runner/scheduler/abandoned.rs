//! Pipelines that a run left pending or running when it ended some other way (canceled or
//! superseded while queued, declined while blocked, given up after crashes, an internal
//! error): each ends with its run's reason, and the forge hears the same where it last
//! heard pending or running, so no status stays pending for good.

use crate::domain::{RunState, StageState, StatusState};
use crate::forge::{clamp_description, status_context};
use crate::store::{Resolution, Store};

/// What an abandoned pipeline says when its run gave no reason.
const NO_REASON: &str = "the run ended before this pipeline did";

/// Ends every abandoned pipeline; returns how many this call ended (another replica may
/// end some first).
pub async fn resolve_abandoned_pipelines(store: &Store) -> anyhow::Result<u64> {
    let mut resolved = 0;
    for abandoned in store.abandoned_pipelines().await? {
        let (state, status) = match abandoned.run_state {
            RunState::Canceled => (StageState::Canceled, StatusState::Canceled),
            // It never ran; the forge shows it as refused, not as a failure of its code.
            RunState::Declined => (StageState::Canceled, StatusState::Error),
            _ => (StageState::Error, StatusState::Error),
        };
        let description =
            clamp_description(abandoned.run_description.as_deref().unwrap_or(NO_REASON));
        let resolution = Resolution {
            state,
            status,
            context: &status_context(&abandoned.pipeline),
            description: &description,
        };
        if store
            .resolve_pipeline(abandoned.run_id, &abandoned.pipeline, &resolution)
            .await?
        {
            resolved += 1;
        }
    }
    Ok(resolved)
}
