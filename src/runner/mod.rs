//! Running pipelines: the Docker engine connection, and (as it grows) scheduling and stage
//! execution.

mod engine;

pub use engine::{Engine, EngineError};
