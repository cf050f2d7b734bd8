//! The `run` stage: its commands under `sh -e` in a container of its image, on the run's
//! workspace volume, with its variables and secrets, its output masked line by line.

use std::collections::HashMap;

use super::stage::{StageContext, StageEnd};
use crate::domain::{StageState, describe};
use crate::pipeline::PlannedStage;
use crate::runner::engine::{
    ContainerExit, ContainerSpec, DockerError, GatedContainer, OutputStream, name_part,
    with_default_tag,
};
use crate::runner::logs::{LineSplitter, Masker};

impl StageContext {
    /// Starts the stage's container ahead of its turn (see `Engine::start_gated`).
    pub(super) async fn warm(
        &self,
        stage: &PlannedStage,
        image: &str,
        script: &str,
    ) -> Result<GatedContainer, DockerError> {
        let (spec, _) = self.spec(stage, image, script, 1);
        self.engine.start_gated(&spec).await
    }

    /// Runs one attempt, in the container started ahead (`warmed`) if there is one.
    pub(super) async fn run_container(
        &self,
        stage: &PlannedStage,
        image: &str,
        script: &str,
        attempt: u32,
        warmed: Option<GatedContainer>,
    ) -> StageEnd {
        let (spec, masker) = self.spec(stage, image, script, attempt);
        let mut splitters: HashMap<OutputStream, LineSplitter> = HashMap::new();
        let emit = |line: &str| self.log(&stage.name, &masker.mask(line));
        let on_output = |stream: OutputStream, chunk: &[u8]| {
            splitters.entry(stream).or_default().push(chunk, emit);
        };
        let result = match warmed {
            Some(container) => {
                self.engine
                    .release(container, spec.timeout, &self.cancel, on_output)
                    .await
            }
            None => {
                self.engine
                    .run_container(&spec, &self.cancel, on_output)
                    .await
            }
        };
        for splitter in splitters.values_mut() {
            splitter.finish(emit);
        }
        match result {
            Ok(ContainerExit::Exited(0)) => StageEnd {
                state: StageState::Success,
                exit_code: Some(0),
                message: None,
            },
            Ok(ContainerExit::Exited(code)) => StageEnd {
                state: StageState::Failure,
                exit_code: Some(code),
                message: Some(format!("exit code {code}")),
            },
            Ok(ContainerExit::TimedOut) => StageEnd::failure(format!(
                "timed out after {}",
                humantime::format_duration(spec.timeout)
            )),
            Ok(ContainerExit::Canceled) => StageEnd {
                state: StageState::Canceled,
                exit_code: None,
                message: Some("canceled".into()),
            },
            Err(err) => StageEnd::error(describe(&err)),
        }
    }

    /// The container a stage attempt runs in, and the masker for its output.
    fn spec(
        &self,
        stage: &PlannedStage,
        image: &str,
        script: &str,
        attempt: u32,
    ) -> (ContainerSpec, Masker) {
        let masker = Masker::new(stage.secrets.iter().map(|(_, secret)| secret));
        let mut env: Vec<String> = stage.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(
            stage
                .secrets
                .iter()
                .map(|(k, v)| format!("{k}={}", v.expose())),
        );
        let outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        env.extend(outputs.iter().map(|(k, v)| format!("{k}={v}")));
        drop(outputs);
        let mut labels = self.labels.clone();
        labels.push(("gantry.stage".into(), stage.name.clone()));
        let spec = ContainerSpec {
            name: format!(
                "gantry-{}-{}-{}-{attempt}",
                self.run_label,
                self.pipeline,
                name_part(&stage.name)
            ),
            image: with_default_tag(image),
            script: script.to_owned(),
            env,
            labels,
            volume: self.volume.clone(),
            timeout: stage.timeout.unwrap_or(self.settings.stage_timeout),
            memory_bytes: self.settings.stage_memory_bytes(),
            nano_cpus: self.settings.stage_nano_cpus(),
            trusted: self.trusted,
            network: self.network.clone(),
            mounts: self.mounts.clone(),
        };
        (spec, masker)
    }
}
