//! Running pipelines: the Docker engine connection, and (as it grows) scheduling and stage
//! execution.

mod engine;
pub mod execute;
pub mod local;
pub mod logs;

pub use engine::{DockerError, Engine, EngineError, RUN_LABEL, WORKSPACE_DIR};
pub use execute::{Executor, Observer, PipelineJob, PipelineOutcome, StageOutcome, StageState};
