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
