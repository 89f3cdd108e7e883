//! The unit of work: one source transaction and its changes in order.
//!
//! A [`SourceTx`] carries its GTID (or file position), its commit time and its changes in the
//! order the source executed them. Each [`RowChange`] carries its table schema, its ordinal
//! inside the transaction and its before/after images, so a change and its position can never
//! drift apart.
//!
//! **Large transactions.** A transaction of millions of rows is not held whole in memory: the
//! reader emits it as consecutive [`TxFragment`]s of bounded size, numbered from 0, all carrying
//! the same `gtid`; only the fragment with `last == true` carries the position after the
//! transaction. A sink applies fragments inside one target transaction and commits (with the
//! checkpoint) only after the last fragment, so the transaction stays atomic on the target while
//! memory stays bounded by the fragment size times the channel capacity. A sink that sees a
//! fragment with `index == 0` while another transaction is open has lost fragments and must
//! stop (the reader never does this).

use serde::{Deserialize, Serialize};

use crate::position::{MariaGtid, MysqlGtid, SourcePosition};
use crate::table::{TableId, TableSchemaRef};
use crate::value::Row;

/// The kind of a row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// A row was inserted (after image only).
    Insert,
    /// A row was updated (before and after images).
    Update,
    /// A row was deleted (before image only).
    Delete,
    /// A row read by the snapshot (after image only; applied like an upsert).
    Read,
}

impl ChangeOp {
    /// Short label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
            ChangeOp::Read => "read",
        }
    }
}

/// One row change.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// The table's schema at the time of the change.
    pub table: TableSchemaRef,
    /// 0-based position of this change inside its source transaction (counted across fragments).
    pub ordinal: u64,
    /// What happened.
    pub op: ChangeOp,
    /// Row before the change (update, delete).
    pub before: Option<Row>,
    /// Row after the change (insert, update, read).
    pub after: Option<Row>,
}

impl RowChange {
    /// Rough memory footprint, used to bound fragments and batches.
    pub fn approx_bytes(&self) -> usize {
        self.before.as_ref().map_or(0, Row::approx_bytes)
            + self.after.as_ref().map_or(0, Row::approx_bytes)
            + 64
    }
}

/// A schema change, in stream order relative to the data.
#[derive(Debug, Clone, PartialEq)]
pub struct DdlChange {
    /// The default database the statement ran in.
    pub database: String,
    /// The statement as the source logged it.
    pub statement: String,
    /// The tables the statement changes, with their schema afterwards (`None` when dropped).
    pub tables: Vec<(TableId, Option<TableSchemaRef>)>,
}

/// A change inside a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A row change.
    Row(RowChange),
    /// A schema change.
    Ddl(DdlChange),
}

/// The GTID of one source transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxGtid {
    /// MySQL `uuid[:tag]:n`.
    Mysql(MysqlGtid),
    /// MariaDB `domain-server-seq`.
    Maria(MariaGtid),
}

impl std::fmt::Display for TxGtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxGtid::Mysql(g) => write!(f, "{g}"),
            TxGtid::Maria(g) => write!(f, "{g}"),
        }
    }
}

/// Which piece of a source transaction a [`SourceTx`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxFragment {
    /// 0 for the first piece.
    pub index: u32,
    /// Whether this is the final piece (the transaction commits after it).
    pub last: bool,
}

impl TxFragment {
    /// A transaction that fits in one piece.
    pub const WHOLE: TxFragment = TxFragment {
        index: 0,
        last: true,
    };
}

/// One source transaction, or one fragment of a large one (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTx {
    /// The transaction's GTID, when the source uses GTIDs.
    pub gtid: Option<TxGtid>,
    /// The position after this transaction: resuming from it skips this transaction and
    /// everything before. Meaningful on the last fragment; earlier fragments carry the position
    /// before the transaction.
    pub position: SourcePosition,
    /// Commit time on the source, milliseconds since the Unix epoch (the binlog event header
    /// has second resolution; MySQL 8 GTID events add microseconds).
    pub commit_time_ms: i64,
    /// The changes, in source order.
    pub changes: Vec<Change>,
    /// Which piece of the transaction this is.
    pub fragment: TxFragment,
}

impl SourceTx {
    /// Number of row changes.
    pub fn row_count(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| matches!(c, Change::Row(_)))
            .count()
    }

    /// Rough memory footprint.
    pub fn approx_bytes(&self) -> usize {
        self.changes
            .iter()
            .map(|c| match c {
                Change::Row(r) => r.approx_bytes(),
                Change::Ddl(d) => d.statement.len() + 128,
            })
            .sum::<usize>()
            + 128
    }
}
