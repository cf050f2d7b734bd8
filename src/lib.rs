//! Gantry: forge webhooks in, pipeline runs in Docker, image tags handed to GitOps.
//!
//! The binary (`src/main.rs`) and the integration tests share this library. Each module owns
//! one noun of the design, and they form layers, each using only those below it:
//! `domain` at the bottom (the shared values and states, importing nothing of the crate);
//! `config`, `metrics`, `memory`, `telemetry` and `git`; `webhook`; `pipeline`; `store`;
//! `forge`; `gitops`; `deploy`; `runner`; `http`; and `startup`, which wires them together.
//! `docs/architecture.md` follows one webhook through them.

pub mod approval;
pub mod auth;
pub mod config;
pub mod deploy;
pub mod domain;
pub mod forge;
pub mod git;
pub mod gitops;
pub mod housekeeping;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod runner;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhook;
