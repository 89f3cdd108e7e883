//! Copying tables while streaming goes on (`--resnapshot`, a table new to the selection, or
//! the rest of such a copy after a crash), on MariaDB.
//!
//! The initial copy is exact because every change after the copy's start is replayed *after*
//! the chunks were written (see the snapshot module). While the applier runs, that order has
//! to be kept chunk by chunk: a change newer than a chunk's snapshot must not reach the target
//! before the chunk does, or the chunk would overwrite it with an older row. A change at or
//! before the snapshot may come before or after the chunk: if after, it briefly sets an older
//! state, and the changes after it (all replayed) end at the source's state again.
//!
//! So each chunk holds a [`Ticket`] from before its snapshot starts until its rows commit:
//! - while the snapshot starts, the applier admits no new transaction;
//! - MariaDB reports the GTID position the snapshot shows exactly (`binlog_snapshot_*`), and
//!   the chunk checks that every transaction the applier already admitted is in it (one
//!   written to the binlog but not yet visible in InnoDB is not: the chunk then takes a new
//!   snapshot a moment later);
//! - from then on the applier admits transactions inside that position only, so it keeps
//!   streaming while the chunk is read and written (it waits only when it catches up with the
//!   snapshot).
//!
//! The chunk and the applier also never write the target's rows at the same time
//! ([`Gate::writes`]): the chunk upserts rows the applier may be changing, and two
//! transactions locking the same rows in different orders could deadlock. A chunk stages its
//! rows in a temporary table as they are read and merges them into the target in one
//! statement just before it commits, so the applier waits only for that statement; chunks
//! (disjoint key ranges) merge side by side.
//!
//! Hand-written: this is the coordination between my2pg's own reader, applier and copy
//! workers; no library knows about them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use schemas::change::TxGtid;
use schemas::{MariaGtidPos, SourcePosition, SourceTx};
use tokio::sync::{RwLock, watch};

/// What the applier may admit while chunks are copied.
#[derive(Debug)]
pub struct Gate {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// Held shared by chunks while their PostgreSQL transaction is open, and exclusively by
    /// the applier while its own is.
    pub writes: Arc<RwLock<()>>,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    /// Each open ticket's limit: `None` while its snapshot starts (nothing new is admitted).
    tickets: HashMap<u64, Option<MariaGtidPos>>,
    /// Every transaction admitted so far (from the checkpoint on).
    admitted: MariaGtidPos,
}

impl Gate {
    /// A gate for an applier resuming from `from`.
    pub fn new(from: &SourcePosition) -> Arc<Gate> {
        let admitted = match from {
            SourcePosition::MariaGtid { pos, .. } => pos.clone(),
            _ => MariaGtidPos::new(),
        };
        Arc::new(Gate {
            state: Mutex::new(State {
                admitted,
                ..State::default()
            }),
            changed: watch::channel(0).0,
            writes: Arc::new(RwLock::new(())),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Admits `tx` when every open ticket allows it, and records it as admitted.
    pub fn try_admit(&self, tx: &SourceTx) -> bool {
        let mut s = self.lock();
        let gtid = match &tx.gtid {
            Some(TxGtid::Maria(g)) => Some(g),
            _ => None,
        };
        let allowed = s.tickets.values().all(|limit| match (limit, gtid) {
            (Some(limit), Some(g)) => limit.contains_gtid(g),
            // A transaction without a MariaDB GTID cannot be placed: it waits for the chunks.
            _ => false,
        });
        if allowed && let Some(g) = gtid {
            s.admitted.update(*g);
        }
        allowed
    }

    /// A receiver that changes whenever a ticket is limited or released.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Stops admissions until the ticket is limited ([`Ticket::limit`]) or dropped.
    pub fn hold(self: &Arc<Gate>) -> Ticket {
        let mut s = self.lock();
        let id = s.next;
        s.next += 1;
        s.tickets.insert(id, None);
        Ticket {
            gate: Arc::clone(self),
            id,
        }
    }
}

/// One chunk's claim on the applier (see the module doc); released when dropped.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<Gate>,
    id: u64,
}

impl Ticket {
    /// Whether a snapshot showing `seen` shows everything the applier admitted, and if so
    /// lets the applier admit what the snapshot shows (and nothing later).
    pub fn limit(&self, seen: MariaGtidPos) -> bool {
        let mut s = self.gate.lock();
        if !seen.contains(&s.admitted) {
            return false;
        }
        s.tickets.insert(self.id, Some(seen));
        drop(s);
        self.gate.bump();
        true
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.lock().tickets.remove(&self.id);
        self.gate.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::TxFragment;
    use schemas::position::MariaGtid;

    fn tx(seq: u64) -> SourceTx {
        let g = MariaGtid {
            domain: 0,
            server_id: 1,
            seq,
        };
        SourceTx {
            gtid: Some(TxGtid::Maria(g)),
            position: SourcePosition::File(schemas::BinlogCoord::new("b.1", seq)),
            commit_time_ms: 0,
            changes: Vec::new(),
            fragment: TxFragment::WHOLE,
        }
    }

    fn pos(seq: u64) -> MariaGtidPos {
        format!("0-1-{seq}").parse().unwrap_or_default()
    }

    #[test]
    fn a_ticket_holds_the_applier_at_its_snapshot() {
        let gate = Gate::new(&SourcePosition::MariaGtid {
            pos: pos(10),
            coord: None,
        });
        assert!(gate.try_admit(&tx(11)));
        let t = gate.hold();
        assert!(
            !gate.try_admit(&tx(12)),
            "nothing while the snapshot starts"
        );
        // A snapshot that does not show transaction 11 (admitted) is refused.
        assert!(!t.limit(pos(10)));
        assert!(t.limit(pos(13)));
        assert!(gate.try_admit(&tx(12)));
        assert!(gate.try_admit(&tx(13)));
        assert!(
            !gate.try_admit(&tx(14)),
            "after the snapshot: waits for the chunk"
        );
        drop(t);
        assert!(gate.try_admit(&tx(14)));
    }

    #[test]
    fn the_lowest_ticket_wins_and_unplaceable_transactions_wait() {
        let gate = Gate::new(&SourcePosition::MariaGtid {
            pos: pos(1),
            coord: None,
        });
        let (a, b) = (gate.hold(), gate.hold());
        assert!(a.limit(pos(5)) && b.limit(pos(3)));
        assert!(gate.try_admit(&tx(3)));
        assert!(!gate.try_admit(&tx(4)));
        let mut no_gtid = tx(4);
        no_gtid.gtid = None;
        assert!(!gate.try_admit(&no_gtid));
        drop((a, b));
        assert!(gate.try_admit(&no_gtid) && gate.try_admit(&tx(4)));
    }
}
