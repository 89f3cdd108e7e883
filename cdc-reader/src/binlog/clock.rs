//! When each binlog file was last written, as the stream saw it.
//!
//! A source purges a binlog file once the file is older than its expiry setting
//! (`binlog_expire_logs_seconds`, or `expire_logs_days`), where a file's age counts from its
//! last write, that is from the moment it was rotated out. No SQL statement reports that
//! moment (`SHOW BINARY LOGS` lists names and sizes only), but the stream carries it: the
//! ROTATE event that ends a file is stamped with the rotation time. The reader records it here
//! for every file it leaves, and the newest event time of the file it is in; the sync
//! pipeline turns that into the binlog runway of its checkpoint (`my2pg::sync::runway`).
//!
//! The reader always starts at the checkpoint and only moves forward, so every file from the
//! checkpoint's to the reader's current one has been seen since the process started.
//!
//! It also says whether the reader is at the end of the binlog (the last thing the server sent
//! was a heartbeat, which it sends only when it has nothing else to send) and the position of
//! the last whole transaction delivered: with heartbeats off, a pipeline whose checkpoint is
//! that position while the reader is at the end has no lag.
//! Written by hand: it is a few lines of bookkeeping no library offers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use schemas::{BinlogCoord, SourcePosition};

/// What the stream saw of one binlog file (source clock, seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTimes {
    /// The newest event header time read from the file.
    pub last_event: u32,
    /// When the file was rotated out (its ROTATE event), once the stream passed it.
    pub closed_at: Option<u32>,
}

/// Shared record of binlog file times, written by the reader and read by the pipeline.
/// Cloning shares the record.
#[derive(Debug, Clone, Default)]
pub struct BinlogClock {
    files: Arc<Mutex<BTreeMap<FileKey, FileTimes>>>,
    at_end: Arc<AtomicBool>,
    read_to: Arc<Mutex<Option<SourcePosition>>>,
}

/// Files order by their numeric suffix, then by name (`binlog.999999` < `binlog.1000000`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FileKey(Option<u64>, String);

impl FileKey {
    fn of(file: &str) -> FileKey {
        FileKey(BinlogCoord::new(file, 0).file_seq(), file.to_owned())
    }
}

/// Files remembered at most: older ones are dropped first (a checkpoint this far behind the
/// reader would hold the backlog of thousands of files).
const MAX_FILES: usize = 4096;

impl BinlogClock {
    /// An empty record.
    pub fn new() -> BinlogClock {
        BinlogClock::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<FileKey, FileTimes>) -> R) -> R {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut files)
    }

    /// An event stamped `time` was read from `file`.
    pub fn saw(&self, file: &str, time: u32) {
        if file.is_empty() || time == 0 {
            return;
        }
        self.with(|files| {
            let t = files.entry(FileKey::of(file)).or_insert(FileTimes {
                last_event: time,
                closed_at: None,
            });
            t.last_event = t.last_event.max(time);
            while files.len() > MAX_FILES {
                files.pop_first();
            }
        });
    }

    /// `file` ended with a ROTATE event stamped `time`.
    pub fn closed(&self, file: &str, time: u32) {
        if file.is_empty() || time == 0 {
            return;
        }
        self.saw(file, time);
        self.with(|files| {
            if let Some(t) = files.get_mut(&FileKey::of(file)) {
                t.closed_at = Some(time);
            }
        });
    }

    /// What was seen of `file`.
    pub fn times(&self, file: &str) -> Option<FileTimes> {
        self.with(|files| files.get(&FileKey::of(file)).copied())
    }

    /// Forgets the files before `file` (the checkpoint moved past them).
    pub fn forget_before(&self, file: &str) {
        let key = FileKey::of(file);
        self.with(|files| {
            *files = files.split_off(&key);
        });
    }

    /// A new stream starts: nothing read or delivered by it yet.
    pub fn stream_started(&self) {
        self.set_at_end(false);
        *self.read_to.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The server sent a heartbeat (`true`: nothing else to send) or an event (`false`).
    pub fn set_at_end(&self, at_end: bool) {
        self.at_end.store(at_end, Ordering::Relaxed);
    }

    /// Whether the last thing the server sent was a heartbeat.
    pub fn at_end(&self) -> bool {
        self.at_end.load(Ordering::Relaxed)
    }

    /// A whole transaction ending at `position` was delivered.
    pub fn delivered(&self, position: &SourcePosition) {
        let mut p = self.read_to.lock().unwrap_or_else(PoisonError::into_inner);
        if p.as_ref() != Some(position) {
            *p = Some(position.clone());
        }
    }

    /// The end of the last whole transaction delivered.
    pub fn read_to(&self) -> Option<SourcePosition> {
        self.read_to
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Files remembered.
    pub fn len(&self) -> usize {
        self.with(|files| files.len())
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_last_event_and_rotation() {
        let c = BinlogClock::new();
        c.saw("b.000001", 100);
        c.saw("b.000001", 90);
        assert_eq!(
            c.times("b.000001"),
            Some(FileTimes {
                last_event: 100,
                closed_at: None
            })
        );
        c.closed("b.000001", 120);
        assert_eq!(c.times("b.000001").and_then(|t| t.closed_at), Some(120));
        assert_eq!(c.times("b.000002"), None);
        // Unknown times (heartbeats, synthesised events) are not recorded.
        c.saw("b.000003", 0);
        assert_eq!(c.times("b.000003"), None);
    }

    #[test]
    fn forgets_older_files_in_numeric_order() {
        let c = BinlogClock::new();
        for (f, t) in [("b.999998", 1), ("b.999999", 2), ("b.1000000", 3)] {
            c.closed(f, t);
        }
        c.forget_before("b.999999");
        assert_eq!(c.len(), 2);
        assert!(c.times("b.999998").is_none());
        assert!(c.times("b.1000000").is_some());
    }
}
