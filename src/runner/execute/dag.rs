//! A pipeline's stages as a DAG: each stage starts once every stage it needs has settled
//! (skipped when one of them did not succeed), independent stages run side by side, and the
//! containers of the next wave are started ahead while their needs run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;

use super::stage::StageContext;
use super::{Executor, Observer, PipelineJob, PipelineOutcome, StageOutcome, overall};
use crate::domain::StageState;
use crate::pipeline::StageAction;
use crate::runner::engine::{DockerError, GatedContainer};
use crate::runner::logs::LogBudget;

impl Executor {
    pub(super) async fn run_stages(
        &self,
        job: &PipelineJob,
        volume: &str,
        labels: &[(String, String)],
        network: Option<&str>,
        mounts: &[(String, String)],
        observer: Arc<dyn Observer>,
    ) -> PipelineOutcome {
        let stages = &job.plan.stages;
        let mut states: Vec<Option<StageOutcome>> = vec![None; stages.len()];
        let mut started = vec![false; stages.len()];
        let mut running: JoinSet<(usize, StageOutcome)> = JoinSet::new();
        // Stages running now per matrix with `max_parallel`.
        let mut in_group: HashMap<usize, usize> = HashMap::new();
        let mut warm: HashMap<usize, Warming> = HashMap::new();
        // What build stages hand to the stages after them (GANTRY_IMAGE…).
        let outputs: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let context = |job: &PipelineJob| StageContext {
            engine: self.engine.clone(),
            settings: self.settings.clone(),
            registries: self.registries.clone(),
            bumps: self.bumps.clone(),
            forge: job.forge,
            outputs: outputs.clone(),
            pipeline: job.plan.pipeline.clone(),
            run_label: job.run_label.clone(),
            volume: volume.to_owned(),
            network: network.map(str::to_owned),
            mounts: mounts.to_vec(),
            labels: labels.to_vec(),
            checkout: job.checkout.clone(),
            log_budget: LogBudget::new(self.settings.max_log_size),
            cancel: job.cancel.clone(),
            trusted: job.trusted,
            observer: observer.clone(),
        };
        loop {
            // Start every stage whose needs are settled.
            for index in 0..stages.len() {
                if started[index] {
                    continue;
                }
                let needs = &stages[index].needs;
                if needs.iter().any(|&need| states[need].is_none()) {
                    continue;
                }
                started[index] = true;
                let stage = &stages[index];
                let blocked = needs
                    .iter()
                    .find(|&&need| !states[need].as_ref().is_some_and(|o| o.state.is_done_ok()));
                let early = if job.cancel.is_cancelled() {
                    Some((StageState::Canceled, "the run was canceled".to_owned()))
                } else if let Some(&need) = blocked {
                    Some((
                        StageState::Skipped,
                        format!("`{}` did not succeed", stages[need].name),
                    ))
                } else {
                    stage
                        .skipped
                        .clone()
                        .map(|reason| (StageState::Skipped, reason))
                };
                if let Some((state, message)) = early {
                    let outcome = StageOutcome {
                        state,
                        exit_code: None,
                        message: Some(message),
                        duration: Duration::ZERO,
                        attempts: 0,
                        log_dropped: 0,
                    };
                    observer.stage_finished(&job.plan.pipeline, &stage.name, &outcome);
                    states[index] = Some(outcome);
                    if let Some(unused) = warm.remove(&index) {
                        self.discard(unused);
                    }
                    continue;
                }
                if let Some(group) = stage.parallel {
                    let running_now = in_group.entry(group.id).or_default();
                    if *running_now >= group.max {
                        // Its turn comes when one of its matrix ends.
                        started[index] = false;
                        continue;
                    }
                    *running_now += 1;
                }
                observer.stage_started(&job.plan.pipeline, &stage.name);
                let context = context(job);
                let stage = stage.clone();
                let warmed = warm.remove(&index);
                running.spawn(async move {
                    let outcome = context.run(&stage, warmed).await;
                    context
                        .observer
                        .stage_finished(&context.pipeline, &stage.name, &outcome);
                    (index, outcome)
                });
            }
            // Start the containers of stages that will run next, while their needs run.
            // Not while a build runs: the stages after it get its image in their env.
            let build_pending = stages.iter().zip(&states).any(|(stage, state)| {
                matches!(stage.action, StageAction::Build(_)) && state.is_none()
            });
            if !job.cancel.is_cancelled() && !build_pending {
                for index in 0..stages.len() {
                    let stage = &stages[index];
                    let StageAction::Run { image, script } = &stage.action else {
                        continue;
                    };
                    let next_up = !started[index]
                        && !warm.contains_key(&index)
                        && stage.skipped.is_none()
                        && stage.needs.iter().all(|&need| {
                            (started[need] || warm.contains_key(&need))
                                && states[need].as_ref().is_none_or(|o| o.state.is_done_ok())
                        });
                    if next_up && warm.len() < MAX_WARM {
                        let context = context(job);
                        let (stage, image, script) = (stage.clone(), image.clone(), script.clone());
                        warm.insert(
                            index,
                            tokio::spawn(
                                async move { context.warm(&stage, &image, &script).await },
                            ),
                        );
                    }
                }
            }
            // A stage settled without running may unblock others at once.
            if states
                .iter()
                .zip(&started)
                .any(|(s, &st)| s.is_none() && !st)
                && running.is_empty()
            {
                continue;
            }
            match running.join_next().await {
                Some(Ok((index, outcome))) => {
                    if let Some(group) = stages[index].parallel
                        && let Some(running_now) = in_group.get_mut(&group.id)
                    {
                        *running_now -= 1;
                    }
                    states[index] = Some(outcome);
                }
                Some(Err(err)) => {
                    tracing::error!(error = %err, "a stage task failed");
                }
                None => break,
            }
        }
        for (_, unused) in warm.drain() {
            self.discard(unused);
        }
        let stages: Vec<(String, StageOutcome)> = stages
            .iter()
            .zip(states)
            .map(|(stage, outcome)| {
                (
                    stage.name.clone(),
                    outcome.unwrap_or(StageOutcome {
                        state: StageState::Error,
                        exit_code: None,
                        message: Some("the stage's task ended without a result".into()),
                        duration: Duration::ZERO,
                        attempts: 0,
                        log_dropped: 0,
                    }),
                )
            })
            .collect();
        PipelineOutcome {
            state: overall(stages.iter().map(|(_, o)| o.state)),
            stages,
            duration: Duration::ZERO,
        }
    }
}

/// Containers started ahead of their stage at once, at most: enough for a wide DAG's next
/// wave, few enough not to crowd the engine.
const MAX_WARM: usize = 4;

/// A stage container being started ahead of its turn.
pub(super) type Warming = tokio::task::JoinHandle<Result<GatedContainer, DockerError>>;

impl Executor {
    /// Removes a container started for a stage that will not run.
    fn discard(&self, warming: Warming) {
        let engine = self.engine.clone();
        let removal = tokio::spawn(async move {
            if let Ok(Ok(container)) = warming.await {
                engine.discard(container);
            }
        });
        // Tracked like every removal, so the volume outlives the container.
        self.engine.track(removal);
    }
}
