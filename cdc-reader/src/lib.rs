//! Everything that talks to MySQL or MariaDB: connection and TLS options, preflight checks,
//! schema introspection and DDL tracking, binlog streaming and decoding, snapshot chunk reads
//! and heartbeat writes. Produces [`schemas::SourceTx`] values; never writes to PostgreSQL.

pub mod binlog;
pub mod connect;
pub mod ddl;
pub mod error;
pub mod preflight;
pub mod rows;
pub mod scan;
pub mod schema;
pub mod snapshot;
pub mod value;

pub use connect::{SourceOptions, SslMode};
pub use error::{ReaderError, Result};
