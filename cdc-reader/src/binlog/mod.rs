//! The binlog: streaming from a server, reading files, and decoding events into source
//! transactions.
//!
//! Layers, from bytes to transactions:
//! - [`event`]: CRC32 verification, MariaDB's own events and its compression format;
//! - [`tablemap`]: TABLE_MAP parsing and the schema each row is decoded with;
//! - [`rows`] and [`json`]: row images into exact values;
//! - [`decoder`]: one event in, one typed item out (per-stream state: file, table maps);
//! - [`tx`]: typed items into [`schemas::SourceTx`] with positions, fragments, XA;
//! - [`stream`]: the network stream with resume, heartbeats and schema tracking;
//! - [`clock`]: when each binlog file was last written (for the binlog runway);
//! - [`file`]: offline reading of binlog files for `my2pg inspect-binlog`.

pub mod clock;
pub mod decoder;
pub mod event;
pub mod file;
pub mod fuzzing;
pub mod json;
pub mod rows;
pub mod stream;
pub mod tablemap;
pub mod tx;
