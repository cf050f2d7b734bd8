//! The GitOps hand-off: file edits (golden diffs on real-looking config files), and bumps
//! through real git repos.

mod bumps;
mod cli;
mod edits;
mod http_git;
mod pull_requests;
pub mod repos;
mod ssh_git;
