//! Operating a running proxy: the admin listener (health, readiness, metrics, listing
//! and killing sessions, listing and downloading recordings), the metrics the request
//! path records, and the admin API's client the `sessions` and `kill` subcommands use.
//! See docs/operations.md.
//!
//! Below the front: the front records into [`metrics`] and implements
//! [`admin::Watched`] for the admin listener; nothing here names the front.

pub mod admin;
pub mod client;
pub mod metrics;
pub mod recordings;
