//! The `bump` stage: the image the pipeline's build pushed, written into the config repo by
//! the bumper (the rules are `gitops::stage`'s), and recorded on the run.

use super::stage::{StageContext, StageEnd};
use crate::domain::{BumpedFile, describe};
use crate::gitops::bump::BumpSource;
use crate::gitops::stage::{NoBump, bump_request};
use crate::pipeline::{BumpSpec, PlannedStage};
use crate::store::BumpReport;

impl StageContext {
    pub(super) async fn bump(&self, stage: &PlannedStage, action: &BumpSpec) -> StageEnd {
        let Some(setup) = &self.bumps else {
            return StageEnd::skipped("bumps run in the service, or with `gantry bump`");
        };
        let env = |name: &str| stage.env_value(name).to_owned();
        let source = BumpSource {
            repo: env("GANTRY_REPO"),
            commit: env("GANTRY_COMMIT_SHA"),
            run_url: Some(format!(
                "{}/runs/{}",
                setup.public_url.trim_end_matches('/'),
                env("GANTRY_RUN_ID")
            )),
            digest: None,
        };
        let outputs = self
            .outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let request = match bump_request(action, &outputs, &setup.policy(), self.forge, source) {
            Ok(request) => request,
            Err(NoBump::Skipped(why)) => return StageEnd::skipped(why),
            Err(NoBump::Refused(why)) => return StageEnd::failure(why),
        };
        let mut report = BumpReport {
            pipeline: self.pipeline.clone(),
            stage: stage.name.clone(),
            bumped: BumpedFile {
                repo: request.repo.url.clone(),
                branch: request.repo.branch.clone(),
                file: request.file.clone(),
                image: request.new.image.clone(),
                changes: Vec::new(),
                commit: None,
                pull_request: None,
            },
            error: None,
            at: None,
        };
        let target = &report.bumped;
        self.log(
            &stage.name,
            &format!(
                "gantry: bumping {} in {} ({}): {}",
                target.image, target.repo, target.branch, target.file
            ),
        );
        let end = match setup.bumper.bump(request).await {
            Ok(outcome) => {
                for line in outcome.bumped.change_lines() {
                    self.log(&stage.name, &format!("gantry: {line}"));
                }
                let summary = outcome.bumped.summary();
                self.log(&stage.name, &format!("gantry: {summary}"));
                report.bumped = outcome.bumped;
                StageEnd::success(Some(summary))
            }
            Err(err) => {
                let message = describe(&err);
                report.error = Some(message.clone());
                StageEnd::failure(message)
            }
        };
        self.observer
            .bump_finished(&self.pipeline, &stage.name, &report);
        end
    }
}
