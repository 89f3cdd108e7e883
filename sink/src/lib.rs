//! Everything that writes: PostgreSQL connections and DDL, the state kept in the `my2pg` schema
//! on the target, apply with exactly-once effect and the checkpoint.

pub mod apply;
pub mod binary;
pub mod checkpoint;
pub mod connect;
pub mod ddl;
pub mod error;
pub mod kafka;
pub mod preflight;
pub mod snapshot;
pub mod state;

pub use connect::{SslMode, TargetOptions};
pub use error::{Result, SinkError};
