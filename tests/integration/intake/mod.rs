//! The webhook intake, the store behind it and the API that shows what it queued, tested
//! through a real server on a real port.

mod abuse;
mod api;
mod bad_input;
mod durability;
mod fixtures;
pub mod helpers;
mod store;
