//! The GitOps hand-off: file edits (golden diffs on real-looking config files), and bumps
//! through real git repos.

mod bumps;
mod cli;
mod edits;
mod fake_pulls;
// The gitops tests keep a work tree per config repo (`repos.rs`), so not every helper.
#[allow(dead_code)]
#[path = "../common/git.rs"]
mod git_cli;
mod http_git;
mod pull_requests;
mod repos;
mod ssh_git;
