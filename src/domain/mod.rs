//! The values and states that the rest of Gantry shares: forges, repos, commits and refs,
//! secrets, who may see what, and the states of runs, stages and commit statuses.
//!
//! This is the bottom layer: it imports nothing else of the crate, so every other module may
//! depend on it and none needs to depend on another merely to name one of these. Each value
//! keeps one string form, used alike in the API's JSON, the store's columns, the CLI and
//! the pages.

#[macro_use]
mod text;
mod access;
mod change;
mod error;
mod forge;
mod label;
mod repo;
mod secret;
mod state;
mod status;

pub use access::{AnonymousAccess, ApprovalPolicy, Permission, Visibility};
pub use change::{BumpedFile, ChangedPaths, ValueChange};
pub use error::describe;
pub use forge::Forge;
pub use label::{MAX_LABELS, check_runner_label};
pub use repo::{CommitSha, GitRef, RepoName, Trigger};
pub use secret::{Secret, matches_any};
pub use state::{
    CacheOutcome, Decision, DeliveryState, DeployOutcome, DeploySource, DeployState, RunState,
    RunnerState, StageState, StatusState,
};
pub use status::CommitStatus;
pub use text::UnknownName;
