//! The `build` stage: the image built (and pushed) on the engine, and handed to the stages
//! after it as `GANTRY_IMAGE`, `GANTRY_IMAGE_TAG` and `GANTRY_IMAGE_DIGEST`.

use super::stage::{StageContext, StageEnd};
use crate::domain::describe;
use crate::pipeline::vars::{IMAGE, IMAGE_DIGEST, IMAGE_TAG};
use crate::pipeline::{BuildAction, PlannedStage};
use crate::runner::engine::BuildRequest;

/// How a build stage's message begins once its image is in the registry: the run's
/// timeline marks the push by it.
pub const PUSHED: &str = "pushed ";

impl StageContext {
    pub(super) async fn build(&self, stage: &PlannedStage, action: &BuildAction) -> StageEnd {
        let build = &action.build;
        let env = |name: &str| stage.env_value(name).to_owned();
        // The OCI annotations that tie an image to its source, as `docker buildx` sets them.
        let mut labels = vec![
            (
                "org.opencontainers.image.source".to_owned(),
                env("GANTRY_REPO"),
            ),
            (
                "org.opencontainers.image.revision".to_owned(),
                env("GANTRY_COMMIT_SHA"),
            ),
            (
                "org.opencontainers.image.created".to_owned(),
                self.commit_time().await,
            ),
        ];
        labels.extend(build.labels.iter().cloned());
        let request = BuildRequest {
            checkout: &self.checkout,
            context: &build.context,
            dockerfile: &build.dockerfile,
            image: &build.image,
            tags: &build.tags,
            args: &build.args,
            target: build.target.as_deref(),
            labels,
            push: action.push,
            registries: &self.registries,
        };
        let result = self
            .engine
            .build_and_push(request, |line| self.log(&stage.name, line))
            .await;
        match result {
            Ok(built) => {
                let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
                outputs.push((IMAGE.into(), built.image.clone()));
                outputs.push((IMAGE_TAG.into(), built.tag.clone()));
                outputs.push((
                    IMAGE_DIGEST.into(),
                    built.digest.clone().unwrap_or_default(),
                ));
                StageEnd::success(Some(match &built.digest {
                    Some(digest) => format!("{PUSHED}{}:{} ({digest})", built.image, built.tag),
                    None => format!("built {}:{} (not pushed)", built.image, built.tag),
                }))
            }
            Err(err) => StageEnd::failure(describe(&err)),
        }
    }

    /// When the checked-out commit was made: the image's `created`, so that building the
    /// same commit twice gives the same image (and a cached build pushes nothing new).
    /// Outside a git checkout, now.
    async fn commit_time(&self) -> String {
        crate::git::Git::new(&self.checkout)
            .run(&["log", "-1", "--format=%cI", "HEAD"])
            .await
            .map(|time| time.trim().to_owned())
            .ok()
            .filter(|time| !time.is_empty())
            .unwrap_or_else(|| {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
    }
}
