//! Running pipelines: the Docker engine (`engine`), one pipeline's stages as a DAG and each
//! stage by its kind (`execute`), the server's queue worker (`scheduler`, with `checkout`,
//! `prepare` and `record`), and `gantry run` (`local`).

pub mod checkout;
mod engine;
pub mod execute;
pub mod local;
pub mod logs;
mod prepare;
mod record;
pub mod scheduler;

pub use engine::{DockerError, Engine, EngineError, RUN_LABEL, WORKSPACE_DIR};
pub use execute::{BumpSetup, Executor, Observer, PipelineJob, PipelineOutcome, StageOutcome};
pub use scheduler::{Scheduler, resolve_abandoned_pipelines};
