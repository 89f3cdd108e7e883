//! The `my2pg` binary's library: command line, configuration, wiring of the stages, HTTP
//! endpoints, and the throwaway-server harness shared by tests, benchmarks and `my2pg demo`.
//! Wiring only: decoding lives in `cdc-reader`, SQL building in `sink`, comparison in `verifier`.

pub mod alerts;
pub mod cli;
pub mod commands;
pub mod config;
pub mod exit;
pub mod harness;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod sync;

/// Background verification inside `sync` (`src/sync/verify_loop.rs`). Declared here, not in
/// `sync/mod.rs`, only until the sync module declares it: replace this with
/// `pub mod verify_loop;` in `src/sync/mod.rs` when merging.
#[path = "sync/verify_loop.rs"]
pub mod sync_verify_loop;
