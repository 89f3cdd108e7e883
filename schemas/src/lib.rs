//! The shared vocabulary of my2pg. This crate does no I/O: every stage (`cdc-reader`,
//! `transform`, `sink`, `verifier`) depends on it and never on another stage, so the types here
//! are the contracts between stages.
//!
//! - [`value`]: one MySQL value exactly as the source holds it ([`Value`]), before any policy.
//! - [`table`]: table identity and source column definitions ([`TableSchema`], [`ColumnType`]).
//! - [`charset`]: MySQL character sets and their exact decoding to UTF-8.
//! - [`change`]: the unit of work, one source transaction ([`SourceTx`]) and its row changes.
//! - [`position`]: typed, ordered source positions (GTID sets, MariaDB GTID positions, files).

pub mod change;
pub mod charset;
pub mod check;
pub mod position;
pub mod table;
pub mod value;

pub use change::{Change, ChangeOp, DdlChange, RowChange, SourceTx, TxFragment};
pub use charset::Charset;
pub use position::{BinlogCoord, GtidSet, MariaGtidPos, SourcePosition};
pub use table::{Column, ColumnType, TableId, TableSchema};
pub use value::{Row, Value};
