//! The GitOps hand-off: file edits (golden diffs on real-looking config files), and bumps
//! through real git repos.

mod bumps;
mod edits;
mod http_git;
mod repos;
