//! Decoded events → source transactions.
//!
//! **Boundaries.** A transaction starts at a GTID event (MySQL GTID, anonymous GTID, MariaDB
//! GTID) or, on a server without GTIDs, at `BEGIN`. It ends at XID (transactional engines),
//! at a `COMMIT` query (non-transactional engines), or — for a standalone group such as DDL —
//! after its single statement. The position stored with a finished transaction is the position
//! *after* it: the GTID state including its GTID, and the file offset of the next event.
//!
//! **Fragments.** When a transaction's buffered changes pass the byte or row limit, the
//! changes so far are emitted as a fragment and the buffer starts again. Every fragment but the
//! last carries the position *before* the transaction, so nothing downstream can store a
//! position inside an unfinished transaction (see `schemas::change`).
//!
//! **Rollbacks, savepoints, XA.** In ROW format rolled-back work is never logged for
//! transactional tables: `ROLLBACK TO SAVEPOINT` has already removed the rows from the group,
//! so savepoint statements are ignored. A group ending in `ROLLBACK` (possible when a
//! non-transactional table was touched) is discarded, with a warning. XA: the rows of an
//! `XA PREPARE` group are held until the matching `XA COMMIT` (emitted then, with the commit's
//! GTID) or `XA ROLLBACK` (dropped); the prepare group itself does not move the position. An
//! `XA COMMIT` for a transaction prepared before the stream's start position cannot be
//! reproduced and is a definite error. One-phase XA is an ordinary transaction.
//!
//! **Empty transactions** (nothing selected changed, or a rolled-back group) are emitted with
//! no changes, so that the checkpoint keeps moving while the application writes only to tables
//! that are not migrated.

use std::collections::HashMap;

use schemas::change::{Change, DdlChange, RowChange, TxFragment, TxGtid};
use schemas::position::{BinlogCoord, SourcePosition};
use schemas::{ChangeOp, SourceTx};
use tracing::warn;

use super::decoder::Decoded;
use super::event::DecodeError;

/// Default fragment size: bounds the memory one in-flight piece of a huge transaction takes
/// (times the channel capacity), while keeping per-fragment overhead negligible.
pub const DEFAULT_FRAGMENT_BYTES: usize = 4 << 20;
/// Default fragment row limit.
pub const DEFAULT_FRAGMENT_ROWS: usize = 20_000;

#[derive(Debug)]
struct OpenTx {
    gtid: Option<TxGtid>,
    standalone: bool,
    commit_time_ms: i64,
    changes: Vec<Change>,
    bytes: usize,
    ordinal: u64,
    next_fragment: u32,
    xa: Option<String>,
    xa_prepared_group: bool,
}

/// Builds [`SourceTx`] values from [`Decoded`] events.
#[derive(Debug)]
pub struct Assembler {
    position: SourcePosition,
    open: Option<OpenTx>,
    /// Byte limit of one fragment.
    pub fragment_bytes: usize,
    /// Row limit of one fragment.
    pub fragment_rows: usize,
    xa_pending: HashMap<String, Vec<Change>>,
    in_payload: bool,
    pending_payload_end: Option<BinlogCoord>,
}

/// The XID text of an `XA START|END|PREPARE|COMMIT|ROLLBACK <xid> [ONE PHASE]` statement.
fn xa_id(statement: &str, verb: &str) -> String {
    let rest = statement.trim()[3..].trim_start();
    let rest = rest[verb.len()..].trim();
    let upper = rest.to_ascii_uppercase();
    let rest = upper
        .strip_suffix("ONE PHASE")
        .map_or(rest, |_| &rest[..rest.len() - "ONE PHASE".len()]);
    // Keys compare case-insensitively: the server prints hex in upper case, clients may not.
    rest.trim().to_ascii_uppercase()
}

fn starts_with_kw(s: &str, kw: &str) -> bool {
    let t = s.trim_start();
    t.len() >= kw.len()
        && t[..kw.len()].eq_ignore_ascii_case(kw)
        && t[kw.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_')
}

impl Assembler {
    /// An assembler whose last finished position is `position`.
    pub fn new(position: SourcePosition) -> Self {
        Assembler {
            position,
            open: None,
            fragment_bytes: DEFAULT_FRAGMENT_BYTES,
            fragment_rows: DEFAULT_FRAGMENT_ROWS,
            xa_pending: HashMap::new(),
            in_payload: false,
            pending_payload_end: None,
        }
    }

    /// The position after the last finished transaction.
    pub fn position(&self) -> &SourcePosition {
        &self.position
    }

    /// Whether a transaction is open and some of its fragments were already emitted.
    pub fn mid_transaction_emitted(&self) -> bool {
        self.open.as_ref().is_some_and(|t| t.next_fragment > 0)
    }

    fn start(
        &mut self,
        gtid: Option<TxGtid>,
        standalone: bool,
        time_ms: i64,
    ) -> Result<(), DecodeError> {
        if let Some(open) = &self.open
            && (open.next_fragment > 0 || !open.changes.is_empty())
        {
            let name =
                |g: &Option<TxGtid>| g.as_ref().map_or("(no gtid)".into(), ToString::to_string);
            return Err(DecodeError(format!(
                "transaction {} started while {} was still open",
                name(&gtid),
                name(&open.gtid)
            )));
        }
        self.open = Some(OpenTx {
            gtid,
            standalone,
            commit_time_ms: time_ms,
            changes: Vec::new(),
            bytes: 0,
            ordinal: 0,
            next_fragment: 0,
            xa: None,
            xa_prepared_group: false,
        });
        Ok(())
    }

    fn ensure_open(&mut self, time_ms: i64) -> Result<&mut OpenTx, DecodeError> {
        if self.open.is_none() {
            // Without GTIDs, a statement outside BEGIN/COMMIT is its own transaction.
            self.start(None, true, time_ms)?;
        }
        self.open
            .as_mut()
            .ok_or_else(|| DecodeError::new("no open transaction"))
    }

    fn advance(&mut self, gtid: Option<&TxGtid>, coord: Option<BinlogCoord>) {
        let coord = coord.or_else(|| self.position.coord().cloned());
        self.position = match (&self.position, gtid) {
            (SourcePosition::MariaGtid { pos, .. }, Some(TxGtid::Maria(g))) => {
                let mut pos = pos.clone();
                pos.update(*g);
                SourcePosition::MariaGtid { pos, coord }
            }
            (SourcePosition::MariaGtid { pos, .. }, _) => SourcePosition::MariaGtid {
                pos: pos.clone(),
                coord,
            },
            (SourcePosition::MysqlGtid { executed, .. }, Some(TxGtid::Mysql(g))) => {
                let mut executed = executed.clone();
                executed.add(g);
                SourcePosition::MysqlGtid { executed, coord }
            }
            (SourcePosition::MysqlGtid { executed, .. }, _) => SourcePosition::MysqlGtid {
                executed: executed.clone(),
                coord,
            },
            (SourcePosition::File(c), _) => {
                SourcePosition::File(coord.unwrap_or_else(|| c.clone()))
            }
        };
    }

    /// Finishes the open transaction at `coord`, emitting its last fragment.
    fn commit(&mut self, coord: Option<BinlogCoord>, out: &mut Vec<SourceTx>) {
        let Some(tx) = self.open.take() else {
            // A COMMIT/XID without an open transaction only moves the file position.
            self.advance(None, coord);
            return;
        };
        self.advance(tx.gtid.as_ref(), coord);
        out.push(SourceTx {
            gtid: tx.gtid,
            position: self.position.clone(),
            commit_time_ms: tx.commit_time_ms,
            changes: tx.changes,
            fragment: TxFragment {
                index: tx.next_fragment,
                last: true,
            },
        });
    }

    fn flush_fragment_if_full(&mut self, out: &mut Vec<SourceTx>) {
        let (bytes_limit, rows_limit) = (self.fragment_bytes, self.fragment_rows);
        let position = self.position.clone();
        let Some(tx) = self.open.as_mut() else { return };
        if tx.xa.is_some() || (tx.bytes < bytes_limit && tx.changes.len() < rows_limit) {
            return;
        }
        out.push(SourceTx {
            gtid: tx.gtid.clone(),
            position,
            commit_time_ms: tx.commit_time_ms,
            changes: std::mem::take(&mut tx.changes),
            fragment: TxFragment {
                index: tx.next_fragment,
                last: false,
            },
        });
        tx.next_fragment += 1;
        tx.bytes = 0;
    }

    /// Feeds one decoded event. `header_time` is the event header's timestamp (seconds),
    /// `log_pos` the offset of the next event in `file` (0 when unknown). Finished transactions
    /// and fragments are appended to `out`.
    pub fn push(
        &mut self,
        decoded: Decoded,
        header_time: u32,
        file: &str,
        log_pos: u64,
        out: &mut Vec<SourceTx>,
    ) -> Result<(), DecodeError> {
        let time_ms = i64::from(header_time) * 1000;
        // Events inside a MySQL 8 transaction payload carry no positions of their own; the
        // payload's end is the position after the transaction (kept from its event).
        let coord = (log_pos != 0).then(|| BinlogCoord::new(file, log_pos));
        match decoded {
            Decoded::MariaGtid(g) => {
                self.start(Some(TxGtid::Maria(g.gtid)), g.standalone(), time_ms)?;
                // MariaDB logs no XA START statement: the XID travels in the GTID event.
                if g.flags & super::event::gtid_flags::PREPARED_XA != 0
                    && let Some(open) = self.open.as_mut()
                {
                    open.xa_prepared_group = true;
                    open.xa = g.xid.as_ref().map(|x| x.text().to_ascii_uppercase());
                }
            }
            Decoded::MysqlGtid {
                gtid,
                commit_micros,
            } => {
                let ms = commit_micros.map_or(time_ms, |us| (us / 1000) as i64);
                self.start(Some(TxGtid::Mysql(gtid)), false, ms)?;
            }
            Decoded::AnonymousGtid => self.start(None, false, time_ms)?,
            Decoded::Query(q) => self.query(q.database, q.statement, time_ms, coord, out)?,
            Decoded::Rows { map, op, rows } => {
                let tx = self.ensure_open(time_ms)?;
                for (before, after) in rows {
                    let change = RowChange {
                        table: map.schema.clone(),
                        ordinal: tx.ordinal,
                        op,
                        before,
                        after,
                    };
                    tx.ordinal += 1;
                    tx.bytes += change.approx_bytes();
                    tx.changes.push(Change::Row(change));
                }
                self.flush_fragment_if_full(out);
            }
            Decoded::RowsSkipped { .. } | Decoded::TableMap(_) | Decoded::Annotate(_) => {
                self.ensure_open(time_ms)?;
            }
            Decoded::Xid(_) => {
                let coord = if self.in_payload { None } else { coord };
                self.commit(coord, out);
            }
            Decoded::XaPrepare => {
                // The prepared rows wait for XA COMMIT; the position does not move.
                if let Some(tx) = self.open.take() {
                    let key = tx.xa.clone().unwrap_or_default();
                    self.xa_pending.insert(key, tx.changes);
                }
            }
            Decoded::TransactionPayload => {
                self.in_payload = true;
                // The payload event's own log_pos is the end of the whole transaction.
                if let Some(c) = coord {
                    self.pending_payload_end = Some(c);
                }
            }
            Decoded::Rotate {
                file,
                position,
                fake,
            } => {
                if !fake && position != 0 && self.open.is_none() {
                    self.advance(None, Some(BinlogCoord::new(file, position)));
                }
            }
            Decoded::GtidList(_)
            | Decoded::FormatDescription { .. }
            | Decoded::Heartbeat
            | Decoded::Ignored(_) => {}
        }
        if self.open.is_none() && self.in_payload {
            self.in_payload = false;
            if let Some(end) = self.pending_payload_end.take()
                && let Some(last) = out.last_mut()
                && last.fragment.last
            {
                self.advance(None, Some(end));
                last.position = self.position.clone();
            }
        }
        Ok(())
    }

    fn query(
        &mut self,
        database: String,
        statement: String,
        time_ms: i64,
        coord: Option<BinlogCoord>,
        out: &mut Vec<SourceTx>,
    ) -> Result<(), DecodeError> {
        let s = statement.as_str();
        if starts_with_kw(s, "BEGIN") || starts_with_kw(s, "START TRANSACTION") {
            if self.open.is_none() {
                self.start(None, false, time_ms)?;
            } else if let Some(tx) = self.open.as_mut() {
                tx.standalone = false;
            }
            return Ok(());
        }
        if starts_with_kw(s, "COMMIT") {
            self.commit(coord, out);
            return Ok(());
        }
        if starts_with_kw(s, "SAVEPOINT") || starts_with_kw(s, "RELEASE SAVEPOINT") {
            return Ok(());
        }
        if starts_with_kw(s, "ROLLBACK") {
            let upper = s.trim().to_ascii_uppercase();
            if upper.starts_with("ROLLBACK TO") {
                return Ok(());
            }
            if let Some(tx) = self.open.as_mut() {
                if tx.next_fragment > 0 {
                    return Err(DecodeError(format!(
                        "transaction {} was rolled back after part of it was emitted",
                        tx.gtid
                            .as_ref()
                            .map_or("(no gtid)".into(), ToString::to_string)
                    )));
                }
                if !tx.changes.is_empty() {
                    warn!(
                        rows = tx.changes.len(),
                        "discarding a rolled-back group (non-transactional tables involved?)"
                    );
                }
                tx.changes.clear();
            }
            self.commit(coord, out);
            return Ok(());
        }
        if starts_with_kw(s, "XA") {
            let verb = s.trim()[2..].trim_start().to_ascii_uppercase();
            if verb.starts_with("START") || verb.starts_with("BEGIN") {
                let id = xa_id(
                    s,
                    if verb.starts_with("START") {
                        "START"
                    } else {
                        "BEGIN"
                    },
                );
                let tx = self.ensure_open(time_ms)?;
                tx.standalone = false;
                if tx.xa_prepared_group || !id.is_empty() {
                    tx.xa = Some(id);
                }
            } else if verb.starts_with("END") || verb.starts_with("PREPARE") {
                // Part of the prepare group; XA_PREPARE (or XA PREPARE) follows.
                if verb.starts_with("PREPARE")
                    && let Some(tx) = self.open.take()
                {
                    self.xa_pending
                        .insert(tx.xa.clone().unwrap_or_default(), tx.changes);
                }
            } else if verb.starts_with("COMMIT") || verb.starts_with("ROLLBACK") {
                let commit = verb.starts_with("COMMIT");
                let id = xa_id(s, if commit { "COMMIT" } else { "ROLLBACK" });
                let one_phase = verb.ends_with("ONE PHASE");
                if one_phase {
                    // The rows are in this group already.
                    self.commit(coord, out);
                    return Ok(());
                }
                let pending = self.xa_pending.remove(&id);
                let tx = self.ensure_open(time_ms)?;
                match (commit, pending) {
                    (true, Some(changes)) => {
                        tx.changes = changes;
                    }
                    (true, None) => {
                        return Err(DecodeError(format!(
                            "XA COMMIT {id}: the transaction was prepared before the stream's start position, so its rows \
                             were not seen; run my2pg verify and re-copy the differing tables (my2pg sync --resnapshot TABLE)"
                        )));
                    }
                    (false, _) => tx.changes.clear(),
                }
                self.commit(coord, out);
            }
            return Ok(());
        }
        // Row changes logged as statements cannot be reproduced on another engine exactly.
        for kw in [
            "INSERT",
            "UPDATE",
            "DELETE",
            "REPLACE",
            "LOAD DATA",
            "LOAD XML",
        ] {
            if starts_with_kw(s, kw) {
                let shown: String = s.chars().take(120).collect();
                return Err(DecodeError(format!(
                    "statement-based row change in the binlog ({shown:?}): the source logs in STATEMENT or MIXED \
                     format; run SET GLOBAL binlog_format = 'ROW' (and set it in my.cnf), then take a new snapshot"
                )));
            }
        }
        // Anything else is a schema change or an administrative statement; the stream turns
        // schema changes into `Decoded`-level DDL before they reach here (see `push_ddl`).
        let standalone = self.open.as_ref().is_none_or(|t| t.standalone);
        if standalone {
            self.ensure_open(time_ms)?;
            self.commit(coord, out);
        }
        let _ = database;
        Ok(())
    }

    /// Feeds a schema change (a QUERY event the stream has classified and whose tables it has
    /// re-read). Emitted as a transaction of its own.
    pub fn push_ddl(
        &mut self,
        ddl: DdlChange,
        header_time: u32,
        file: &str,
        log_pos: u64,
        out: &mut Vec<SourceTx>,
    ) -> Result<(), DecodeError> {
        let time_ms = i64::from(header_time) * 1000;
        let coord = (log_pos != 0).then(|| BinlogCoord::new(file, log_pos));
        let tx = self.ensure_open(time_ms)?;
        tx.changes.push(Change::Ddl(ddl));
        self.commit(coord, out);
        Ok(())
    }
}

/// The operation of a row change.
pub fn op_of(c: &Change) -> Option<ChangeOp> {
    match c {
        Change::Row(r) => Some(r.op),
        Change::Ddl(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::event::{MariaGtidEvent, QueryParts, gtid_flags};
    use schemas::position::MariaGtid;

    fn q(s: &str) -> Decoded {
        Decoded::Query(QueryParts {
            database: "d".into(),
            statement: s.into(),
        })
    }

    fn g(seq: u64, flags: u8) -> Decoded {
        Decoded::MariaGtid(MariaGtidEvent {
            gtid: MariaGtid {
                domain: 0,
                server_id: 1,
                seq,
            },
            flags,
            xid: None,
        })
    }

    #[test]
    fn xa_prepare_then_commit_emits_the_rows_at_commit() {
        let mut a = Assembler::new("mariadb-gtid:0-1-1".parse().unwrap());
        let mut out = Vec::new();
        let seq = [
            g(5, gtid_flags::PREPARED_XA),
            q("XA START X'7831',X'',1"),
            q("XA END X'7831',X'',1"),
            Decoded::XaPrepare,
            g(6, gtid_flags::COMPLETED_XA | gtid_flags::STANDALONE),
            q("XA COMMIT X'7831',X'',1"),
        ];
        for (i, d) in seq.into_iter().enumerate() {
            a.push(d, 0, "b.000001", 100 + i as u64, &mut out).unwrap();
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].position.to_string(),
            "mariadb-gtid:0-1-6@b.000001:105"
        );
    }
}
