//! Binlog runway, binlog distance and (with heartbeats off) the lag estimate.
//!
//! **Runway.** The source purges a binlog file once it is older than its expiry setting, a
//! file's age counting from its last write (the moment it was rotated out). If the file
//! holding my2pg's resume position is purged, the pipeline cannot resume and the migration
//! starts over, so on-call must hear about it hours before. The runway is
//! `expiry − (now − last write of the resume file)`:
//! - the resume position is the copy's start position while the initial copy runs (streaming
//!   will replay from there) and the applier's checkpoint afterwards ([`Tracker`]);
//! - the last write of a file the reader left is exact: the reader records the time of the
//!   ROTATE event that closed it (`cdc_reader::binlog::clock`);
//! - otherwise a lower bound is used, the newest of: the newest event the reader read from the
//!   file, and the last poll that saw the file as the source's active file. A lower bound of
//!   the last write gives a lower bound of the runway, so the alert errs early, never late;
//! - no expiry (`binlog_expire_logs_seconds` and `expire_logs_days` 0, or MySQL's
//!   `binlog_expire_logs_auto_purge=OFF`) is an infinite runway; nothing known is `NaN`.
//!
//! The source is polled every [`POLL`] (expiry, active file, file sizes, its clock); between
//! polls the runway is recomputed each second from the source clock offset, so it keeps
//! falling while the source is unreachable, which is exactly when it matters. Times are the
//! source's own clock, so a skewed my2pg host does not shift them.
//!
//! **Distance.** Bytes of binlog between the resume position and the source's position,
//! from `SHOW BINARY LOGS`.
//!
//! **Lag without heartbeats.** With heartbeats off (a read-only source), lag falls back to
//! event time, as a replica's `Seconds_Behind_Master` does: when the reader is at the end of
//! the binlog (the server's last message was a heartbeat) and the checkpoint is the end of the
//! last transaction the reader delivered, the pipeline is caught up and the lag is 0;
//! otherwise it is the source's time now minus the commit time of the newest applied
//! transaction. It can read high for up to one reader heartbeat period after a burst ends.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use schemas::{BinlogCoord, SourcePosition};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::SyncContext;

/// How often the source is polled.
pub const POLL: Duration = Duration::from_secs(5);
/// How often the figures are recomputed.
const TICK: Duration = Duration::from_secs(1);

/// Where the pipeline would resume from, and what it applied last. Written by the pipeline,
/// read by [`run`].
#[derive(Debug, Default)]
pub struct Tracker {
    state: Mutex<TrackerState>,
}

#[derive(Debug, Default, Clone)]
struct TrackerState {
    resume: Option<SourcePosition>,
}

impl Tracker {
    /// The position a restart would resume from (the copy's start, then the checkpoint).
    pub fn set_resume(&self, position: &SourcePosition) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.resume.as_ref() != Some(position) {
            s.resume = Some(position.clone());
        }
    }

    /// The resume position, if known.
    pub fn resume(&self) -> Option<SourcePosition> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .resume
            .clone()
    }
}

/// How long the source keeps binlog files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Files are never purged automatically.
    Never,
    /// Files are purged once older than this.
    After(Duration),
}

/// What a poll of the source found.
#[derive(Debug, Clone)]
pub struct SourceLogs {
    /// The expiry setting.
    pub expiry: Expiry,
    /// The source's clock (seconds since the epoch).
    pub now: f64,
    /// The source's current position.
    pub active: BinlogCoord,
    /// `SHOW BINARY LOGS`: file names and sizes, oldest first.
    pub files: Vec<(String, u64)>,
}

/// The runway of a resume position in file `file`. `closed_at` is the exact time the file
/// was rotated out, `written_at_least` a time the file was still being written; `None`
/// when nothing is known.
pub fn runway(
    expiry: Expiry,
    now: f64,
    closed_at: Option<f64>,
    written_at_least: Option<f64>,
) -> Option<Duration> {
    let Expiry::After(expire) = expiry else {
        return Some(Duration::MAX);
    };
    let last_write = closed_at.or(written_at_least)?;
    let left = expire.as_secs_f64() - (now - last_write).max(0.0);
    Some(Duration::from_secs_f64(left.max(0.0)))
}

/// Binlog bytes from `from` to `to`, given the files and their sizes (`None` when a file is
/// not listed: purged, or another server's).
pub fn distance(from: &BinlogCoord, to: &BinlogCoord, files: &[(String, u64)]) -> Option<u64> {
    if from.file == to.file {
        return Some(to.offset.saturating_sub(from.offset));
    }
    let start = files.iter().position(|(f, _)| *f == from.file)?;
    let end = files.iter().position(|(f, _)| *f == to.file)?;
    if end < start {
        return Some(0);
    }
    let mut bytes = files[start].1.saturating_sub(from.offset);
    for (_, size) in &files[start + 1..end] {
        bytes += size;
    }
    Some(bytes + to.offset)
}

/// Reads the expiry setting, the clock, the position and the files of the source.
pub async fn poll(conn: &mut mysql_async::Conn) -> anyhow::Result<SourceLogs> {
    let vars: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN \
             ('binlog_expire_logs_seconds', 'expire_logs_days', 'binlog_expire_logs_auto_purge')",
        )
        .await?;
    let var = |name: &str| {
        vars.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let seconds = var("binlog_expire_logs_seconds")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let days = var("expire_logs_days")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let auto_purge =
        var("binlog_expire_logs_auto_purge").is_none_or(|v| !v.eq_ignore_ascii_case("OFF"));
    // MySQL 8 and MariaDB 10.6+: seconds win when set; older servers know days only.
    let expire = if seconds > 0.0 {
        seconds
    } else {
        days * 86_400.0
    };
    let expiry = if auto_purge && expire > 0.0 {
        Expiry::After(Duration::from_secs_f64(expire))
    } else {
        Expiry::Never
    };
    let micros: Option<i64> = conn
        .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
        .await?;
    let now = micros.unwrap_or_default() as f64 / 1e6;
    let position = cdc_reader::binlog::stream::current_position(conn).await?;
    let active = position
        .coord()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the source reports no binlog file position"))?;
    let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await?;
    let files = rows
        .into_iter()
        .filter_map(|r| {
            let name: Option<String> = r.get(0);
            let size: Option<u64> = r.get(1);
            name.zip(size)
        })
        .collect();
    Ok(SourceLogs {
        expiry,
        now,
        active,
        files,
    })
}

/// State between ticks.
#[derive(Debug, Default)]
struct Watcher {
    /// Source clock minus local clock, seconds.
    offset: f64,
    expiry: Option<Expiry>,
    active: Option<BinlogCoord>,
    files: Vec<(String, u64)>,
    /// Files seen as the active one by a poll, with the source time of that poll.
    seen_active: BTreeMap<String, f64>,
    warned: bool,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Watcher {
    fn polled(&mut self, logs: SourceLogs) {
        self.offset = logs.now - unix_now();
        self.expiry = Some(logs.expiry);
        self.seen_active.insert(logs.active.file.clone(), logs.now);
        self.active = Some(logs.active);
        self.files = logs.files;
        self.warned = false;
    }

    /// Recomputes the figures.
    fn tick(&mut self, ctx: &SyncContext) {
        let now = unix_now() + self.offset;
        let resume = ctx.tracker.resume();
        let coord = resume.as_ref().and_then(|p| p.coord());
        if let Some(c) = coord {
            // Files before the resume position will never be needed again.
            self.seen_active = self.seen_active.split_off(&c.file);
            if self.seen_active.len() > 64
                && let Some(first) = self.seen_active.keys().next().cloned()
            {
                self.seen_active.remove(&first);
            }
            ctx.clock.forget_before(&c.file);
        }
        let runway_now = match (self.expiry, coord) {
            (Some(Expiry::Never), _) => Some(Duration::MAX),
            (Some(expiry), Some(c)) => {
                let times = ctx.clock.times(&c.file);
                let closed = times.and_then(|t| t.closed_at).map(f64::from);
                let written = [
                    times.map(|t| f64::from(t.last_event)),
                    self.seen_active.get(&c.file).copied(),
                ]
                .into_iter()
                .flatten()
                .reduce(f64::max);
                runway(expiry, now, closed, written)
            }
            _ => None,
        };
        ctx.metrics.set_binlog_runway(runway_now);
        let dist = match (coord, &self.active) {
            (Some(c), Some(a)) => distance(c, a, &self.files),
            _ => None,
        };
        ctx.metrics.set_binlog_distance(dist);
        if !ctx.metrics.heartbeats_on() && ctx.metrics.is_streaming() {
            let caught_up = ctx.clock.at_end()
                && match ctx.clock.read_to() {
                    None => true,
                    Some(p) => resume.as_ref() == Some(&p),
                };
            let lag = if caught_up {
                Some(0.0)
            } else {
                ctx.metrics.last_event_time().map(|t| {
                    let at = t
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    (now - at).max(0.0)
                })
            };
            ctx.metrics.set_estimated_lag(lag);
        }
    }
}

/// Keeps the runway, the distance and (heartbeats off) the lag estimate current until
/// `stop`. Never fails: a poll that fails is logged and retried, the figures keep being
/// recomputed from what the last poll found.
pub async fn run(ctx: SyncContext, mut stop: watch::Receiver<bool>) {
    let mut w = Watcher::default();
    let mut conn: Option<mysql_async::Conn> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let polls_every = (POLL.as_secs_f64() / TICK.as_secs_f64()).round().max(1.0) as u32;
    let mut n: u32 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        if n.is_multiple_of(polls_every) {
            let polled = tokio::time::timeout(POLL, async {
                if conn.is_none() {
                    conn = Some(ctx.source.connect().await?);
                }
                match conn.as_mut() {
                    Some(c) => poll(c).await,
                    None => Err(anyhow::anyhow!("no connection")),
                }
            })
            .await;
            match polled {
                Ok(Ok(logs)) => w.polled(logs),
                Ok(Err(e)) => {
                    conn = None;
                    if !w.warned {
                        warn!(error = %format!("{e:#}"), "cannot read the source's binlog files for the binlog runway; retrying (needs the BINLOG MONITOR or REPLICATION CLIENT privilege)");
                        w.warned = true;
                    } else {
                        debug!(error = %format!("{e:#}"), "binlog runway poll failed");
                    }
                }
                Err(_) => conn = None,
            }
        }
        n = n.wrapping_add(1);
        w.tick(&ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn runway_counts_from_the_last_write() {
        let e = Expiry::After(HOUR);
        // Closed 600 s ago: 3000 s left, whatever else is known.
        assert_eq!(
            runway(e, 10_000.0, Some(9_400.0), Some(9_900.0)),
            Some(Duration::from_secs(3000))
        );
        // Only a lower bound of the last write: a lower bound of the runway.
        assert_eq!(
            runway(e, 10_000.0, None, Some(9_000.0)),
            Some(Duration::from_secs(2600))
        );
        // Past the expiry: 0, not negative.
        assert_eq!(runway(e, 10_000.0, Some(1.0), None), Some(Duration::ZERO));
        // Nothing known.
        assert_eq!(runway(e, 10_000.0, None, None), None);
        // Never purged.
        assert_eq!(runway(Expiry::Never, 1.0, None, None), Some(Duration::MAX));
        // A clock behind the file's time does not give more than the expiry.
        assert_eq!(runway(e, 100.0, Some(200.0), None), Some(HOUR));
    }

    #[test]
    fn distance_spans_files() {
        let files = vec![
            ("b.000001".to_owned(), 1000),
            ("b.000002".to_owned(), 500),
            ("b.000003".to_owned(), 300),
        ];
        let c = |f: &str, o| BinlogCoord::new(f, o);
        assert_eq!(
            distance(&c("b.000002", 100), &c("b.000002", 400), &files),
            Some(300)
        );
        assert_eq!(
            distance(&c("b.000001", 900), &c("b.000003", 50), &files),
            Some(100 + 500 + 50)
        );
        assert_eq!(
            distance(&c("b.000009", 1), &c("b.000003", 50), &files),
            None
        );
        assert_eq!(
            distance(&c("b.000003", 10), &c("b.000001", 50), &files),
            Some(0)
        );
    }
}
