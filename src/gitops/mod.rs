//! The config-repo side of Gantry: checking a GitOps repo's manifests (the `validate`
//! stage) and handing new images over to it (the `bump` stage, whose rules are in
//! `stage.rs`, and `gantry bump`).

pub mod bump;
mod config_clone;
pub mod edit;
pub mod stage;
pub mod validate;
