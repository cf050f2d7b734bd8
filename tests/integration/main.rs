//! Gantry's integration tests: one crate, one `support/` shared by every area. Each area is a
//! module named for the part of Gantry it tries through real parts (a real server on port
//! 0, git repos, SQLite and PostgreSQL, the Docker engine, a registry, sshd, Chromium).

mod access;
mod architecture;
mod gitops;
mod intake;
mod openapi;
mod pipeline;
mod runner;
mod server;
mod support;
mod validate;
