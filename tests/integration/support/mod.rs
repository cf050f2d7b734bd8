//! What the tests share: git repos, a registry, and (as they grow) the fake forge and
//! signed deliveries.

pub mod chromium;
pub mod config;
pub mod deliveries;
pub mod fake_forge;
pub mod fake_identity;
pub mod git;
pub mod process;
pub mod registry;
