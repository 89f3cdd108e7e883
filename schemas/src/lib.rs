//! The shared vocabulary of my2pg. This crate does no I/O: every stage (`cdc-reader`,
//! `transform`, `sink`, `verifier`) depends on it and never on another stage, so the types here
//! are the contracts between stages.
//!
//! - [`value`]: one MySQL value exactly as the source holds it ([`Value`]), before any policy.
//! - [`table`]: table identity and source column definitions ([`TableSchema`], [`ColumnType`]).
//! - [`charset`]: MySQL character sets and their exact decoding to UTF-8.
//! - [`change`]: the unit of work, one source transaction ([`SourceTx`]) and its row changes.
//! - [`position`]: typed, ordered source positions (GTID sets, MariaDB GTID positions, files).
//! - [`mapping`]: the MySQL → PostgreSQL type mapping and its options ([`TableMapping`]).
//! - [`pgvalue`]: a value as the target holds it ([`PgValue`]) and row conversion.
//! - [`pgbinary`]: PostgreSQL's binary wire format (COPY BINARY, binary parameters, decoding).
//! - [`pgtext`]: PostgreSQL input text and SQL literals of values.
//! - [`canonical`]: canonical value bytes and row digests for verification.
//! - [`error_chain`]: an error and its causes on one line.

pub mod canonical;
pub mod change;
pub mod charset;
pub mod check;
pub mod envelope;
mod error_chain;
pub mod mapping;
pub mod pgbinary;
pub mod pgtext;
pub mod pgvalue;
pub mod position;
pub mod table;
pub mod value;

pub use change::{Change, ChangeOp, DdlChange, RowChange, SourceTx, TxFragment};
pub use charset::Charset;
pub use error_chain::error_chain;
pub use mapping::{ColumnMapping, MappingOptions, PgType, TableMapping, map_table};
pub use pgvalue::{ConvertError, PgValue};
pub use position::{BinlogCoord, GtidSet, MariaGtidPos, SourcePosition};
pub use table::{Column, ColumnType, TableId, TableSchema};
pub use value::{Row, Value};
