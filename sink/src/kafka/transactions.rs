//! Reassembling source transactions from the transactional mode's single partition.
//!
//! **Layout** (`[kafka] mode = "transactional"`). The publisher writes every change of every
//! table — same envelope, same message key as the per-table mode — to one topic,
//! `<prefix>.my2pg-transactions`, which has exactly one partition (created so; the publisher
//! and the workers refuse a topic with more). After the last change of each source transaction
//! it writes an end marker, Debezium's transaction metadata `END` record with the transaction's
//! id and event count (`schemas::envelope::transaction`). One Kafka transaction holds whole
//! source transactions (a huge one's fragments share one), so a `read_committed` consumer sees
//! a source transaction's changes and its marker all or none, in source order.
//!
//! **How a worker knows a transaction ended.** Alternatives considered: (1) a change of
//! `transaction.id` between consecutive messages: the last transaction before a quiet period
//! would wait for the next one, indefinitely when heartbeats are off; (2) an event count in
//! every message: the publisher streams a huge transaction in fragments and does not know the
//! count until the last one; (3) Kafka transaction boundaries: consumers do not see them;
//! (4) Debezium's separate transaction topic: it is not ordered with the data topics. The
//! in-partition `END` marker has none of these problems, costs one message per source
//! transaction, and its `event_count` lets the worker check that it saw every change: a
//! sequence that does not add up stops the worker ([`SinkError::TxSequence`]) instead of
//! committing a partial transaction.
//!
//! **What the [`Assembler`] produces.** Messages are pushed in offset order with what they
//! decoded to ([`Item`]). A change with a transaction id joins the open transaction; the
//! transaction's `END` closes it into one [`Unit`] (a whole `SourceTx` and every offset it
//! covers, the marker's included). Messages outside any transaction — copy rows (`op = r`,
//! published by parallel copy workers and therefore interleaved, but self-contained),
//! tombstones, changes without a transaction id — are units of their own. When the open
//! transaction reaches `fragment_rows` changes it is handed out as a non-final fragment, which
//! the applier keeps in its open PostgreSQL transaction until the final one arrives — exactly
//! how direct sync applies a huge source transaction (`crate::apply`, "Fragments"), so memory
//! holds one fragment at a time and the transaction still commits once.
//!
//! **Exactly once.** A unit's offsets commit in the PostgreSQL transaction that applies it
//! (`crate::kafka::offsets`), and a PostgreSQL transaction commits only after whole units: its
//! stored next offset is one past an `END` marker (or past a self-contained message), never
//! inside a source transaction. The changes of a still open transaction have higher offsets
//! than every committed unit (one partition, offset order), so after a crash, a revocation or
//! a stop the worker resumes at the first change of that transaction and reads it whole again;
//! the fragments it had applied were rolled back with their PostgreSQL transaction.
//! On a rebalance the worker calls [`Assembler::forget`] (and rolls back), because the new
//! assignment starts again at the stored offset.

use schemas::change::{Change, RowChange, TxFragment};
use schemas::{BinlogCoord, SourcePosition, SourceTx};

use super::offsets::Consumed;
use crate::error::{Result, SinkError};

/// What one message decoded to.
#[derive(Debug)]
pub enum Item {
    /// A change of source transaction `tx_id`.
    Change {
        /// `transaction.id`.
        tx_id: String,
        /// The change.
        change: RowChange,
        /// Commit time on the source.
        commit_ms: i64,
    },
    /// The end marker of `id`, which had `event_count` changes.
    End {
        /// The transaction.
        id: String,
        /// Its change events.
        event_count: u64,
    },
    /// A self-contained unit (a copy row, a change outside any transaction).
    Whole(SourceTx),
    /// A message with nothing to apply (a tombstone): its offset moves with its neighbours.
    Nothing,
    /// A change that cannot be applied and was recorded as a dead letter: it counts as an
    /// event of the open transaction.
    Skipped,
}

/// A whole source transaction (or one fragment of a huge one) and the messages it came from.
#[derive(Debug)]
pub struct Unit {
    /// What to apply.
    pub tx: SourceTx,
    /// Where it came from.
    pub consumed: Vec<Consumed>,
}

/// The source transaction being read.
#[derive(Debug)]
struct Open {
    id: String,
    /// Where it is read from.
    topic: std::sync::Arc<str>,
    partition: i32,
    changes: Vec<Change>,
    consumed: Vec<Consumed>,
    /// Events read so far, fragments handed out included.
    events: u64,
    commit_ms: i64,
    /// Index of the next fragment.
    fragment: u32,
}

/// Turns the messages of one partition into units; see the module documentation.
#[derive(Debug)]
pub struct Assembler {
    open: Option<Open>,
    ready: Vec<Unit>,
    ready_rows: usize,
    fragment_rows: usize,
}

fn nowhere() -> SourcePosition {
    SourcePosition::File(BinlogCoord::new("", 0))
}

impl Assembler {
    /// An assembler that hands out a fragment of an open transaction every `fragment_rows`
    /// changes.
    pub fn new(fragment_rows: usize) -> Assembler {
        Assembler {
            open: None,
            ready: Vec::new(),
            ready_rows: 0,
            fragment_rows: fragment_rows.max(1),
        }
    }

    /// Changes held: in ready units and in the open transaction.
    pub fn rows(&self) -> usize {
        self.ready_rows + self.open.as_ref().map_or(0, |o| o.changes.len())
    }

    /// Forgets what is held of one partition (revoked, or assigned again: either way its next
    /// owner starts at the stored offset). Returns whether an unfinished source transaction
    /// was dropped, whose applied fragments the caller must roll back.
    pub fn forget(&mut self, topic: &str, partition: i32) -> bool {
        let of = |c: &Consumed| &*c.topic == topic && c.partition == partition;
        self.ready.retain(|u| !u.consumed.iter().any(of));
        self.ready_rows = self.ready.iter().map(|u| u.tx.row_count()).sum();
        let dropped = self
            .open
            .as_ref()
            .is_some_and(|o| &*o.topic == topic && o.partition == partition);
        if dropped {
            self.open = None;
        }
        dropped
    }

    /// Adds the next message of the partition.
    pub fn push(&mut self, item: Item, from: Consumed) -> Result<()> {
        let broken = |from: &Consumed, reason: String| SinkError::TxSequence {
            topic: from.topic.to_string(),
            partition: from.partition,
            offset: from.offset,
            reason,
        };
        match item {
            Item::Change {
                tx_id,
                change,
                commit_ms,
            } => {
                if let Some(o) = &self.open
                    && o.id != tx_id
                {
                    return Err(broken(
                        &from,
                        format!(
                            "a change of transaction {tx_id} before the end marker of transaction {}",
                            o.id
                        ),
                    ));
                }
                let o = self.open.get_or_insert_with(|| Open {
                    id: tx_id,
                    topic: from.topic.clone(),
                    partition: from.partition,
                    changes: Vec::new(),
                    consumed: Vec::new(),
                    events: 0,
                    commit_ms,
                    fragment: 0,
                });
                o.changes.push(Change::Row(change));
                o.consumed.push(from);
                o.events += 1;
            }
            Item::End { id, event_count } => {
                let Some(mut o) = self.open.take() else {
                    if event_count == 0 {
                        self.ready.push(Unit {
                            tx: whole(Vec::new(), 0, TxFragment::WHOLE),
                            consumed: vec![from],
                        });
                        return Ok(());
                    }
                    return Err(broken(
                        &from,
                        format!(
                            "the end marker of transaction {id} ({event_count} events) without its changes"
                        ),
                    ));
                };
                if o.id != id || o.events != event_count {
                    return Err(broken(
                        &from,
                        format!(
                            "the end marker of transaction {id} counts {event_count} events; {} events of transaction {} were read",
                            o.events, o.id
                        ),
                    ));
                }
                o.consumed.push(from);
                self.ready_rows += o.changes.len();
                let fragment = TxFragment {
                    index: o.fragment,
                    last: true,
                };
                self.ready.push(Unit {
                    tx: whole(o.changes, o.commit_ms, fragment),
                    consumed: o.consumed,
                });
            }
            Item::Whole(tx) => {
                if let Some(o) = &self.open {
                    return Err(broken(
                        &from,
                        format!(
                            "a change outside any transaction before the end marker of transaction {}",
                            o.id
                        ),
                    ));
                }
                self.ready_rows += tx.row_count();
                self.ready.push(Unit {
                    tx,
                    consumed: vec![from],
                });
            }
            Item::Nothing | Item::Skipped => {
                let counts = matches!(item, Item::Skipped);
                match &mut self.open {
                    Some(o) => {
                        o.consumed.push(from);
                        o.events += u64::from(counts);
                    }
                    None => self.ready.push(Unit {
                        tx: whole(Vec::new(), 0, TxFragment::WHOLE),
                        consumed: vec![from],
                    }),
                }
            }
        }
        Ok(())
    }

    /// The units ready to apply, in order: every closed one, then — when the open transaction
    /// holds `fragment_rows` changes — its next non-final fragment.
    pub fn take(&mut self) -> Vec<Unit> {
        let mut out = std::mem::take(&mut self.ready);
        self.ready_rows = 0;
        if let Some(o) = &mut self.open
            && o.changes.len() >= self.fragment_rows
        {
            let fragment = TxFragment {
                index: o.fragment,
                last: false,
            };
            o.fragment += 1;
            out.push(Unit {
                tx: whole(std::mem::take(&mut o.changes), o.commit_ms, fragment),
                consumed: std::mem::take(&mut o.consumed),
            });
        }
        out
    }
}

fn whole(changes: Vec<Change>, commit_time_ms: i64, fragment: TxFragment) -> SourceTx {
    SourceTx {
        gtid: None,
        position: nowhere(),
        commit_time_ms,
        changes,
        fragment,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use schemas::table::{Column, ColumnType, TableId, TableSchema};
    use schemas::{ChangeOp, Row, Value};

    use super::*;

    fn change(id: i64) -> RowChange {
        let schema = Arc::new(TableSchema::keyed(
            TableId::new("shop", "a"),
            vec![Column::new("id", ColumnType::parse("int").unwrap())],
            vec![0],
        ));
        RowChange {
            table: schema,
            ordinal: 0,
            op: ChangeOp::Insert,
            before: None,
            after: Some(Row(vec![Value::Int(id)])),
        }
    }

    fn at(offset: i64) -> Consumed {
        Consumed {
            topic: Arc::from("p.my2pg-transactions"),
            partition: 0,
            offset,
        }
    }

    fn c(tx: &str, id: i64) -> Item {
        Item::Change {
            tx_id: tx.into(),
            change: change(id),
            commit_ms: 7,
        }
    }

    fn end(tx: &str, n: u64) -> Item {
        Item::End {
            id: tx.into(),
            event_count: n,
        }
    }

    fn offsets(u: &Unit) -> Vec<i64> {
        u.consumed.iter().map(|c| c.offset).collect()
    }

    #[test]
    fn a_transaction_is_handed_out_only_with_its_end_marker() {
        let mut a = Assembler::new(100);
        a.push(c("t1", 1), at(0)).unwrap();
        a.push(c("t1", 2), at(1)).unwrap();
        assert!(a.take().is_empty());
        a.push(end("t1", 2), at(2)).unwrap();
        a.push(c("t2", 3), at(3)).unwrap();
        let units = a.take();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].tx.changes.len(), 2);
        assert!(units[0].tx.fragment.last);
        assert_eq!(offsets(&units[0]), vec![0, 1, 2]);
        // t2 stays open, its offset uncommitted.
        assert_eq!(a.rows(), 1);
    }

    #[test]
    fn a_huge_transaction_comes_out_in_fragments_and_ends_whole() {
        let mut a = Assembler::new(2);
        for i in 0..5 {
            a.push(c("big", i), at(i)).unwrap();
            if i == 1 || i == 3 {
                let f = a.take();
                assert_eq!(f.len(), 1);
                assert!(!f[0].tx.fragment.last);
            }
        }
        a.push(end("big", 5), at(5)).unwrap();
        let last = a.take();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].tx.fragment.index, 2);
        assert!(last[0].tx.fragment.last);
        assert_eq!(offsets(&last[0]), vec![4, 5]);
    }

    #[test]
    fn a_sequence_that_does_not_add_up_stops() {
        let mut a = Assembler::new(100);
        a.push(c("t1", 1), at(0)).unwrap();
        let e = a.push(c("t2", 2), at(1)).unwrap_err();
        assert!(e.to_string().contains("@1 breaks"), "{e}");
        let mut a = Assembler::new(100);
        a.push(c("t1", 1), at(0)).unwrap();
        let e = a.push(end("t1", 2), at(1)).unwrap_err();
        assert!(e.to_string().contains("counts 2 events; 1 events"), "{e}");
        let mut a = Assembler::new(100);
        assert!(a.push(end("t0", 3), at(0)).is_err());
    }

    #[test]
    fn a_revoked_partition_is_forgotten_with_its_open_transaction() {
        let mut a = Assembler::new(100);
        a.push(c("t1", 1), at(0)).unwrap();
        a.push(end("t1", 1), at(1)).unwrap();
        a.push(c("t2", 2), at(2)).unwrap();
        assert!(!a.forget("other", 0));
        assert_eq!(a.rows(), 2);
        assert!(a.forget("p.my2pg-transactions", 0));
        assert_eq!(a.rows(), 0);
        assert!(a.take().is_empty());
    }

    #[test]
    fn copy_rows_tombstones_and_dead_letters_keep_their_offsets() {
        let mut a = Assembler::new(100);
        let mut read = whole(vec![Change::Row(change(9))], 0, TxFragment::WHOLE);
        read.commit_time_ms = 1;
        a.push(Item::Whole(read), at(0)).unwrap();
        a.push(Item::Nothing, at(1)).unwrap();
        a.push(c("t1", 1), at(2)).unwrap();
        a.push(Item::Skipped, at(3)).unwrap();
        a.push(end("t1", 2), at(4)).unwrap();
        let units = a.take();
        let all: Vec<Vec<i64>> = units.iter().map(offsets).collect();
        assert_eq!(all, vec![vec![0], vec![1], vec![2, 3, 4]]);
        assert_eq!(units[2].tx.changes.len(), 1);
    }
}
