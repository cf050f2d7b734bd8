//! Gantry: forge webhooks in, pipeline runs in Docker, image tags handed to GitOps.
//!
//! The binary (`src/main.rs`) and the integration tests share this library. Each module owns
//! one noun of the design: see `DESIGN.md`-level names below.

pub mod config;
pub mod domain;
pub mod forge;
pub mod git;
pub mod gitops;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod runner;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhook;
