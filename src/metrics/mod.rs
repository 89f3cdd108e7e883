//! Prometheus metrics: one [`Metrics`] handle owning a private registry with every `my2pg_*`
//! series, served as text by `/metrics` (`crate::http`) and read by the alert engine
//! (`crate::alerts::Signals::observe`). `docs/metrics.md` is the operator's reference.
//!
//! **Cheap on hot paths.** Updating a series is an atomic add. Label lookups (a hash and a
//! read lock in the `prometheus` crate) happen once per table: [`Metrics::table`] resolves
//! every per-table series into a [`TableMetrics`] that the pipeline keeps beside its table
//! schema, and the handle is cached so asking twice costs one map lookup. Label values come
//! from code (`ChangeOp`, [`SnapshotState`], [`ErrorKind`]) or from the table selection, so
//! cardinality is bounded by the number of selected tables.
//!
//! **Lag that does not go stale.** Peers report the lag of the last event they applied, so the
//! figure freezes (or shrinks to zero) exactly when the pipeline stops moving. Here the lag is
//! computed when it is read, from the last applied heartbeat: heartbeats are written to the
//! source every `interval`; if the heartbeat written at source time `S` was the last one
//! applied, the next one was written at `S + interval` and has not arrived, so at wall time
//! `now` the pipeline is at least `now - S - interval` behind. The reported lag is therefore
//! `max(lag measured when S was applied, now - S - interval)`: equal to the measured lag while
//! heartbeats flow, growing one second per second when apply stalls or the heartbeat stops —
//! never smaller than the truth by more than the clock skew between source and my2pg. With
//! heartbeats switched off (read-only source) the pipeline reports its own estimate
//! (binlog event time, position distance) through [`Metrics::set_estimated_lag`].
//!
//! **Unknown is not zero.** A lag, an event age or a binlog runway that has not been measured
//! yet is exported as `NaN` (a PromQL comparison with it is false, so nothing pages on a value
//! nobody measured); a source that never purges its binlog has a runway of `+Inf`.
//!
//! Series whose label values are known in advance (errors by kind, the table's operations and
//! states) are created at zero, so `rate()` and `increase()` see the first increment.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder as _, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use schemas::{ChangeOp, TableId};
use tokio::time::Instant;

mod labels;

pub use labels::{DeliveryOutcome, ErrorKind, SnapshotState};

/// The `Content-Type` of [`Metrics::encode`]: Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of `my2pg_apply_batch_duration_seconds`, in seconds. An apply batch is one
/// PostgreSQL transaction holding one or more source transactions: a few milliseconds when
/// rows trickle in, seconds for a bulk load, tens of seconds when the target is struggling —
/// the range that decides whether the pipeline keeps up, with roughly 2.5× steps so a
/// percentile is never off by more than one step.
pub const APPLY_BATCH_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A metric could not be created or encoded. Both mean a bug in this module (a bad name or a
/// duplicate registration), never a runtime condition.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A series could not be registered.
    #[error("cannot register metric {name}")]
    Register {
        /// The series name.
        name: &'static str,
        /// The library's error.
        #[source]
        source: prometheus::Error,
    },
    /// The registry could not be written as text.
    #[error("cannot encode the metrics as Prometheus text")]
    Encode {
        /// The library's error.
        #[source]
        source: prometheus::Error,
    },
}

/// The shared metrics handle: cheap to clone (one `Arc`), safe to update from any task.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Inner {
    registry: Registry,
    heartbeat_lag: Gauge,
    last_event_age: Gauge,
    last_event_timestamp: Gauge,
    row_events: IntCounterVec,
    transactions: IntCounter,
    apply_batch: Histogram,
    snapshot_rows: IntCounterVec,
    snapshot_chunks: IntCounterVec,
    snapshot_state: IntGaugeVec,
    snapshot_estimated: IntGaugeVec,
    snapshot_rate: IntGaugeVec,
    snapshot_eta: IntGaugeVec,
    verify_compared: IntCounterVec,
    drift_rows: IntGaugeVec,
    binlog_runway: Gauge,
    binlog_distance: Gauge,
    errors: IntCounterVec,
    streaming: IntGauge,
    alert_deliveries: IntCounterVec,
    alert_retries: IntCounterVec,
    alerts_firing: IntGaugeVec,
    lag: Mutex<LagState>,
    /// Commit time (Unix nanoseconds) of the newest applied source event; 0 = none yet.
    last_event_nanos: AtomicU64,
    runway_bits: AtomicU64,
    tables: Mutex<HashMap<TableId, TableMetrics>>,
    drift: Mutex<BTreeMap<TableId, u64>>,
    snapshot: Arc<SnapshotProgress>,
}

#[derive(Debug, Default)]
struct LagState {
    /// Heartbeat interval; `None` when heartbeats are off.
    heartbeat_interval: Option<Duration>,
    /// Source commit time of the last applied heartbeat and the lag measured when it applied.
    last_heartbeat: Option<(SystemTime, f64)>,
    /// The pipeline's own estimate when heartbeats are off.
    estimated: Option<f64>,
}

/// Snapshot activity, for the "snapshot stalled" alert: which tables are copying and when rows
/// last arrived. Progress is nanoseconds since `base` on tokio's clock, so a paused test clock
/// drives it too.
struct SnapshotProgress {
    base: Instant,
    last_progress_nanos: AtomicU64,
    states: Mutex<BTreeMap<TableId, SnapshotState>>,
}

impl SnapshotProgress {
    fn touch(&self) {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_progress_nanos.fetch_max(nanos, Ordering::Relaxed);
    }
}

/// Per-table series with their labels resolved: every update is one atomic operation. Get one
/// from [`Metrics::table`] and keep it with the table's schema.
#[derive(Clone)]
pub struct TableMetrics {
    insert: IntCounter,
    update: IntCounter,
    delete: IntCounter,
    read: IntCounter,
    snapshot_rows: IntCounter,
    snapshot_chunks: IntCounter,
    snapshot_estimated: IntGauge,
    snapshot_rate: IntGauge,
    snapshot_eta: IntGauge,
    verify_compared: IntCounter,
    snapshot: Arc<SnapshotProgress>,
}

impl std::fmt::Debug for TableMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableMetrics").finish_non_exhaustive()
    }
}

impl TableMetrics {
    /// `n` row changes of kind `op` were applied to the target
    /// (`my2pg_row_events_applied_total`). Call after the commit that made them durable.
    pub fn row_events_applied(&self, op: ChangeOp, n: u64) {
        match op {
            ChangeOp::Insert => self.insert.inc_by(n),
            ChangeOp::Update => self.update.inc_by(n),
            ChangeOp::Delete => self.delete.inc_by(n),
            ChangeOp::Read => self.read.inc_by(n),
        }
    }

    /// A snapshot chunk of `rows` rows was copied and committed. Also counts as snapshot
    /// progress for the "snapshot stalled" alert.
    pub fn snapshot_chunk_copied(&self, rows: u64) {
        self.snapshot_rows.inc_by(rows);
        self.snapshot_chunks.inc();
        self.snapshot.touch();
    }

    /// The copy's figures for this table, as its progress bar shows them: the rows the source
    /// estimates it holds, rows copied per second so far, and seconds left at that pace
    /// (0 once copied).
    pub fn snapshot_progress(&self, estimated: u64, rows_per_second: u64, eta_seconds: u64) {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.snapshot_estimated.set(clamp(estimated));
        self.snapshot_rate.set(clamp(rows_per_second));
        self.snapshot_eta.set(clamp(eta_seconds));
    }

    /// The verifier compared `rows` more rows of this table.
    pub fn verify_rows_compared(&self, rows: u64) {
        self.verify_compared.inc_by(rows);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain numbers behind, still valid.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn seconds_between(later: SystemTime, earlier: SystemTime) -> f64 {
    match later.duration_since(earlier) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

impl Metrics {
    /// Creates every series in a fresh registry (not the `prometheus` crate's global one, so
    /// tests and several pipelines in one process do not collide).
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let r = Registrar {
            registry: &registry,
        };
        let heartbeat_lag = r.gauge(
            "my2pg_heartbeat_lag_seconds",
            "Replication lag measured end to end by the heartbeat row: apply time minus source \
             commit time of the last applied heartbeat, growing while the next one is overdue. \
             NaN until the first heartbeat is applied.",
        )?;
        let last_event_age = r.gauge(
            "my2pg_last_event_age_seconds",
            "Seconds since the source commit of the newest applied event (grows while the \
             source is idle; use my2pg_heartbeat_lag_seconds for lag). NaN before the first.",
        )?;
        let last_event_timestamp = r.gauge(
            "my2pg_last_applied_event_timestamp_seconds",
            "Unix time of the source commit of the newest applied event.",
        )?;
        let row_events = r.counter_vec(
            "my2pg_row_events_applied_total",
            "Row changes applied to the target, by source table and operation.",
            &["table", "op"],
        )?;
        let transactions = r.counter(
            "my2pg_transactions_applied_total",
            "Source transactions applied to the target (committed with the checkpoint).",
        )?;
        let apply_batch = Histogram::with_opts(
            HistogramOpts::new(
                "my2pg_apply_batch_duration_seconds",
                "Wall time of one apply batch: one target transaction with its checkpoint.",
            )
            .buckets(APPLY_BATCH_BUCKETS.to_vec()),
        )
        .map_err(|source| MetricsError::Register {
            name: "my2pg_apply_batch_duration_seconds",
            source,
        })?;
        r.register("my2pg_apply_batch_duration_seconds", apply_batch.clone())?;
        let snapshot_rows = r.counter_vec(
            "my2pg_snapshot_rows_total",
            "Rows copied by the initial snapshot, by source table.",
            &["table"],
        )?;
        let snapshot_chunks = r.counter_vec(
            "my2pg_snapshot_chunks_total",
            "Snapshot chunks copied and committed, by source table.",
            &["table"],
        )?;
        let snapshot_state = r.gauge_vec(
            "my2pg_snapshot_state",
            "Snapshot state of each table: 1 for its current state, 0 for the others.",
            &["table", "state"],
        )?;
        let snapshot_estimated = r.gauge_vec(
            "my2pg_snapshot_rows_estimated",
            "Rows the source estimates a table being copied holds (the copy's 100 %).",
            &["table"],
        )?;
        let snapshot_rate = r.gauge_vec(
            "my2pg_snapshot_rows_per_second",
            "Rows per second the copy of a table has averaged so far.",
            &["table"],
        )?;
        let snapshot_eta = r.gauge_vec(
            "my2pg_snapshot_eta_seconds",
            "Seconds until the copy of a table ends at its average pace so far; 0 once copied.",
            &["table"],
        )?;
        let verify_compared = r.counter_vec(
            "my2pg_verify_rows_compared_total",
            "Rows compared between source and target by the verifier, by source table.",
            &["table"],
        )?;
        let drift_rows = r.gauge_vec(
            "my2pg_drift_rows",
            "Rows that differ between source and target (missing, extra or changed) in the \
             last completed verification of each table.",
            &["table"],
        )?;
        let binlog_runway = r.gauge(
            "my2pg_binlog_runway_seconds",
            "Seconds until the source would purge the binlog file holding the checkpoint under \
             its expiry setting. +Inf when the source never purges, NaN until measured.",
        )?;
        let binlog_distance = r.gauge(
            "my2pg_binlog_distance_bytes",
            "Binlog bytes between the checkpoint and the source's current position. NaN until \
             measured.",
        )?;
        let errors = r.counter_vec(
            "my2pg_errors_total",
            "Errors by kind; *_transient ones were retried, *_definite ones stopped the \
             pipeline.",
            &["kind"],
        )?;
        let streaming = r.int_gauge(
            "my2pg_streaming",
            "1 while the pipeline streams changes from the binlog, 0 otherwise.",
        )?;
        let build_info = r.gauge_vec(
            "my2pg_build_info",
            "Always 1; the labels tell the my2pg version.",
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let alert_deliveries = r.counter_vec(
            "my2pg_alert_deliveries_total",
            "Alert notifications by receiver and outcome (delivered, failed after retries, \
             dropped from a full queue).",
            &["receiver", "outcome"],
        )?;
        let alert_retries = r.counter_vec(
            "my2pg_alert_delivery_retries_total",
            "Alert delivery attempts that failed and were retried, by receiver.",
            &["receiver"],
        )?;
        let alerts_firing = r.gauge_vec(
            "my2pg_alerts_firing",
            "1 while an alert rule is firing, 0 otherwise, by rule name.",
            &["rule"],
        )?;
        for kind in ErrorKind::ALL {
            errors.with_label_values(&[kind.as_str()]);
        }
        for g in [&heartbeat_lag, &last_event_age, &last_event_timestamp] {
            g.set(f64::NAN);
        }
        binlog_runway.set(f64::NAN);
        binlog_distance.set(f64::NAN);
        Ok(Metrics {
            inner: Arc::new(Inner {
                registry,
                heartbeat_lag,
                last_event_age,
                last_event_timestamp,
                row_events,
                transactions,
                apply_batch,
                snapshot_rows,
                snapshot_chunks,
                snapshot_state,
                snapshot_estimated,
                snapshot_rate,
                snapshot_eta,
                verify_compared,
                drift_rows,
                binlog_runway,
                binlog_distance,
                errors,
                streaming,
                alert_deliveries,
                alert_retries,
                alerts_firing,
                lag: Mutex::new(LagState::default()),
                last_event_nanos: AtomicU64::new(0),
                runway_bits: AtomicU64::new(f64::NAN.to_bits()),
                tables: Mutex::new(HashMap::new()),
                drift: Mutex::new(BTreeMap::new()),
                snapshot: Arc::new(SnapshotProgress {
                    base: Instant::now(),
                    last_progress_nanos: AtomicU64::new(0),
                    states: Mutex::new(BTreeMap::new()),
                }),
            }),
        })
    }

    /// The per-table handle: every per-table series of `table`, created at zero (and the
    /// table's snapshot state set to pending) on first use. Cached: call it once per table and
    /// keep the handle, or call it per batch at the cost of one map lookup.
    pub fn table(&self, table: &TableId) -> TableMetrics {
        let mut tables = lock(&self.inner.tables);
        if let Some(t) = tables.get(table) {
            return t.clone();
        }
        let name = table.to_string();
        let i = &self.inner;
        let op = |op: ChangeOp| {
            i.row_events
                .with_label_values(&[name.as_str(), op.as_str()])
        };
        let handle = TableMetrics {
            insert: op(ChangeOp::Insert),
            update: op(ChangeOp::Update),
            delete: op(ChangeOp::Delete),
            read: op(ChangeOp::Read),
            snapshot_rows: i.snapshot_rows.with_label_values(&[name.as_str()]),
            snapshot_chunks: i.snapshot_chunks.with_label_values(&[name.as_str()]),
            snapshot_estimated: i.snapshot_estimated.with_label_values(&[name.as_str()]),
            snapshot_rate: i.snapshot_rate.with_label_values(&[name.as_str()]),
            snapshot_eta: i.snapshot_eta.with_label_values(&[name.as_str()]),
            verify_compared: i.verify_compared.with_label_values(&[name.as_str()]),
            snapshot: Arc::clone(&i.snapshot),
        };
        tables.insert(table.clone(), handle.clone());
        drop(tables);
        let mut states = lock(&i.snapshot.states);
        if !states.contains_key(table) {
            states.insert(table.clone(), SnapshotState::Pending);
            drop(states);
            self.export_snapshot_state(&name, SnapshotState::Pending);
        }
        handle
    }

    /// `n` row changes of kind `op` were applied to `table`. Prefer [`TableMetrics`] in loops.
    pub fn row_events_applied(&self, table: &TableId, op: ChangeOp, n: u64) {
        self.table(table).row_events_applied(op, n);
    }

    /// `n` source transactions were committed to the target together with their checkpoint.
    pub fn transactions_applied(&self, n: u64) {
        self.inner.transactions.inc_by(n);
    }

    /// Streamed row changes applied so far, all tables and kinds (snapshot rows excluded).
    pub fn row_events_applied_total(&self) -> u64 {
        ["insert", "update", "delete"]
            .iter()
            .map(|op| {
                lock(&self.inner.tables)
                    .keys()
                    .map(|t| {
                        self.inner
                            .row_events
                            .with_label_values(&[t.to_string().as_str(), op])
                            .get()
                    })
                    .sum::<u64>()
            })
            .sum()
    }

    /// Rows copied by the snapshot so far, all tables.
    pub fn snapshot_rows_total(&self) -> u64 {
        lock(&self.inner.tables)
            .keys()
            .map(|t| {
                self.inner
                    .snapshot_rows
                    .with_label_values(&[t.to_string().as_str()])
                    .get()
            })
            .sum()
    }

    /// One apply batch (one target transaction with its checkpoint) took `elapsed`.
    pub fn apply_batch_finished(&self, elapsed: Duration) {
        self.inner.apply_batch.observe(elapsed.as_secs_f64());
    }

    /// A source event committed at `source_commit` was applied. The newest time wins, so
    /// callers may report out of order (parallel snapshot and stream).
    pub fn event_applied(&self, source_commit: SystemTime) {
        self.inner
            .last_event_nanos
            .fetch_max(unix_nanos(source_commit), Ordering::Relaxed);
    }

    /// Sets how often heartbeats are written to the source (`None`: heartbeats are off and
    /// lag comes from [`Metrics::set_estimated_lag`]). Call once when the pipeline starts.
    pub fn set_heartbeat_interval(&self, interval: Option<Duration>) {
        lock(&self.inner.lag).heartbeat_interval = interval;
    }

    /// The heartbeat written at `source_commit` (source clock) was applied to the target at
    /// `applied_at` (the clock that stamps the apply, ideally the target's `now()` inside the
    /// applying transaction). A heartbeat older than the last one recorded is ignored.
    pub fn heartbeat_applied(&self, source_commit: SystemTime, applied_at: SystemTime) {
        let mut lag = lock(&self.inner.lag);
        if lag
            .last_heartbeat
            .is_some_and(|(last, _)| last > source_commit)
        {
            return;
        }
        lag.last_heartbeat = Some((source_commit, seconds_between(applied_at, source_commit)));
    }

    /// The pipeline's own lag estimate in seconds, used only while heartbeats are off
    /// (binlog event time and position distance). `None`: unknown.
    pub fn set_estimated_lag(&self, seconds: Option<f64>) {
        lock(&self.inner.lag).estimated = seconds.filter(|s| s.is_finite());
    }

    /// The replication lag in seconds as of now, `None` while unknown. This one figure feeds
    /// the gauge, `/readyz` and the lag alert; see the module doc for why it cannot go stale.
    pub fn lag_seconds(&self) -> Option<f64> {
        self.lag_seconds_at(SystemTime::now())
    }

    /// [`Metrics::lag_seconds`] as of `now` (tests).
    pub fn lag_seconds_at(&self, now: SystemTime) -> Option<f64> {
        let lag = lock(&self.inner.lag);
        match lag.heartbeat_interval {
            Some(interval) => lag.last_heartbeat.map(|(source, measured)| {
                let overdue = seconds_between(now, source) - interval.as_secs_f64();
                measured.max(overdue).max(0.0)
            }),
            None => lag.estimated.map(|s| s.max(0.0)),
        }
    }

    /// Seconds since the source commit of the newest applied event as of `now`, `None` before
    /// the first.
    pub fn last_event_age_at(&self, now: SystemTime) -> Option<f64> {
        match self.inner.last_event_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => {
                let at = UNIX_EPOCH + Duration::from_nanos(nanos);
                Some(seconds_between(now, at).max(0.0))
            }
        }
    }

    /// Sets where `table`'s initial copy stands. Entering [`SnapshotState::Copying`] counts as
    /// progress (the stall timer starts then, not at the last chunk of another table).
    pub fn set_snapshot_state(&self, table: &TableId, state: SnapshotState) {
        let _ = self.table(table);
        lock(&self.inner.snapshot.states).insert(table.clone(), state);
        if state == SnapshotState::Copying {
            self.inner.snapshot.touch();
        }
        self.export_snapshot_state(&table.to_string(), state);
    }

    fn export_snapshot_state(&self, table: &str, state: SnapshotState) {
        for s in SnapshotState::ALL {
            self.inner
                .snapshot_state
                .with_label_values(&[table, s.as_str()])
                .set(i64::from(s == state));
        }
    }

    /// How long the snapshot has made no progress, `None` when no table is copying.
    pub fn snapshot_stalled_for(&self) -> Option<Duration> {
        let p = &self.inner.snapshot;
        let copying = lock(&p.states)
            .values()
            .any(|s| *s == SnapshotState::Copying);
        copying.then(|| {
            let last = Duration::from_nanos(p.last_progress_nanos.load(Ordering::Relaxed));
            p.base.elapsed().saturating_sub(last)
        })
    }

    /// A verification of `table` finished with `rows` differing rows (0: identical). Replaces
    /// the table's previous figure.
    pub fn set_drift_rows(&self, table: &TableId, rows: u64) {
        lock(&self.inner.drift).insert(table.clone(), rows);
        self.inner
            .drift_rows
            .with_label_values(&[table.to_string().as_str()])
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
    }

    /// Differing rows summed over every verified table, `None` before the first verification.
    pub fn drift_rows_total(&self) -> Option<u64> {
        let drift = lock(&self.inner.drift);
        (!drift.is_empty()).then(|| drift.values().fold(0u64, |a, b| a.saturating_add(*b)))
    }

    /// Sets the binlog runway: `Some(d)` time until the checkpoint's binlog file would be
    /// purged, `Some(Duration::MAX)` when the source never purges, `None` when unknown.
    pub fn set_binlog_runway(&self, runway: Option<Duration>) {
        let secs = match runway {
            None => f64::NAN,
            Some(Duration::MAX) => f64::INFINITY,
            Some(d) => d.as_secs_f64(),
        };
        self.inner.binlog_runway.set(secs);
        self.inner
            .runway_bits
            .store(secs.to_bits(), Ordering::Relaxed);
    }

    /// Sets the binlog bytes between the checkpoint and the source's position (`None`:
    /// unknown).
    pub fn set_binlog_distance(&self, bytes: Option<u64>) {
        self.inner
            .binlog_distance
            .set(bytes.map_or(f64::NAN, |b| b as f64));
    }

    /// Commit time of the newest applied source event, `None` before the first.
    pub fn last_event_time(&self) -> Option<SystemTime> {
        match self.inner.last_event_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(UNIX_EPOCH + Duration::from_nanos(nanos)),
        }
    }

    /// The binlog runway in seconds (`+Inf`: never purged), `None` when unknown.
    pub fn binlog_runway_seconds(&self) -> Option<f64> {
        let s = f64::from_bits(self.inner.runway_bits.load(Ordering::Relaxed));
        (!s.is_nan()).then_some(s)
    }

    /// Counts one error of `kind`.
    pub fn error(&self, kind: ErrorKind) {
        self.errors(kind, 1);
    }

    /// Counts `n` errors of `kind`.
    pub fn errors(&self, kind: ErrorKind, n: u64) {
        self.inner
            .errors
            .with_label_values(&[kind.as_str()])
            .inc_by(n);
    }

    /// Whether the pipeline is streaming from the binlog (`my2pg_streaming`).
    pub fn set_streaming(&self, streaming: bool) {
        self.inner.streaming.set(i64::from(streaming));
    }

    /// Whether the pipeline is streaming.
    pub fn is_streaming(&self) -> bool {
        self.inner.streaming.get() == 1
    }

    /// Whether lag comes from heartbeats (else from [`Metrics::set_estimated_lag`]).
    pub fn heartbeats_on(&self) -> bool {
        lock(&self.inner.lag).heartbeat_interval.is_some()
    }

    /// Creates a receiver's delivery series at zero (so a receiver that never fails still
    /// shows up).
    pub fn register_receiver(&self, receiver: &str) {
        for outcome in DeliveryOutcome::ALL {
            self.inner
                .alert_deliveries
                .with_label_values(&[receiver, outcome.as_str()]);
        }
        self.inner.alert_retries.with_label_values(&[receiver]);
    }

    /// Counts one alert notification's final outcome for `receiver`.
    pub fn alert_delivery(&self, receiver: &str, outcome: DeliveryOutcome) {
        self.inner
            .alert_deliveries
            .with_label_values(&[receiver, outcome.as_str()])
            .inc();
    }

    /// The number of notifications with `outcome` for `receiver` so far (tests, `alert test`).
    pub fn alert_deliveries(&self, receiver: &str, outcome: DeliveryOutcome) -> u64 {
        self.inner
            .alert_deliveries
            .with_label_values(&[receiver, outcome.as_str()])
            .get()
    }

    /// Counts one failed delivery attempt that will be retried.
    pub fn alert_retry(&self, receiver: &str) {
        self.inner
            .alert_retries
            .with_label_values(&[receiver])
            .inc();
    }

    /// Whether alert `rule` is firing.
    pub fn set_alert_firing(&self, rule: &str, firing: bool) {
        self.inner
            .alerts_firing
            .with_label_values(&[rule])
            .set(i64::from(firing));
    }

    /// The whole registry in Prometheus text format 0.0.4 ([`CONTENT_TYPE`]), with the
    /// time-dependent gauges (lag, event age) computed as of now.
    pub fn encode(&self) -> Result<String, MetricsError> {
        self.encode_at(SystemTime::now())
    }

    /// [`Metrics::encode`] as of `now` (tests).
    pub fn encode_at(&self, now: SystemTime) -> Result<String, MetricsError> {
        let i = &self.inner;
        i.heartbeat_lag
            .set(self.lag_seconds_at(now).unwrap_or(f64::NAN));
        i.last_event_age
            .set(self.last_event_age_at(now).unwrap_or(f64::NAN));
        let nanos = i.last_event_nanos.load(Ordering::Relaxed);
        i.last_event_timestamp.set(if nanos == 0 {
            f64::NAN
        } else {
            Duration::from_nanos(nanos).as_secs_f64()
        });
        let families = i.registry.gather();
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(|source| MetricsError::Encode { source })?;
        // The encoder writes only UTF-8 (names and labels are Rust strings).
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Creates and registers series, naming the one that failed.
struct Registrar<'a> {
    registry: &'a Registry,
}

impl Registrar<'_> {
    fn register<C: prometheus::core::Collector + 'static>(
        &self,
        name: &'static str,
        c: C,
    ) -> Result<(), MetricsError> {
        self.registry
            .register(Box::new(c))
            .map_err(|source| MetricsError::Register { name, source })
    }

    fn gauge(&self, name: &'static str, help: &str) -> Result<Gauge, MetricsError> {
        let g = Gauge::new(name, help).map_err(|source| MetricsError::Register { name, source })?;
        self.register(name, g.clone())?;
        Ok(g)
    }

    fn int_gauge(&self, name: &'static str, help: &str) -> Result<IntGauge, MetricsError> {
        let g =
            IntGauge::new(name, help).map_err(|source| MetricsError::Register { name, source })?;
        self.register(name, g.clone())?;
        Ok(g)
    }

    fn counter(&self, name: &'static str, help: &str) -> Result<IntCounter, MetricsError> {
        let c = IntCounter::new(name, help)
            .map_err(|source| MetricsError::Register { name, source })?;
        self.register(name, c.clone())?;
        Ok(c)
    }

    fn counter_vec(
        &self,
        name: &'static str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        let c = IntCounterVec::new(Opts::new(name, help), labels)
            .map_err(|source| MetricsError::Register { name, source })?;
        self.register(name, c.clone())?;
        Ok(c)
    }

    fn gauge_vec(
        &self,
        name: &'static str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricsError> {
        let g = IntGaugeVec::new(Opts::new(name, help), labels)
            .map_err(|source| MetricsError::Register { name, source })?;
        self.register(name, g.clone())?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn heartbeat_lag_grows_while_the_next_heartbeat_is_overdue() {
        let m = Metrics::new().unwrap();
        m.set_heartbeat_interval(Some(Duration::from_secs(1)));
        assert_eq!(m.lag_seconds_at(at(0)), None, "unknown before a heartbeat");
        m.heartbeat_applied(at(10), at(10) + Duration::from_millis(200));
        let lag = m
            .lag_seconds_at(at(10) + Duration::from_millis(300))
            .unwrap();
        assert!((lag - 0.2).abs() < 1e-9, "{lag}");
        // The next heartbeat (due at 11) has not arrived by 11.5: still the measured figure.
        let lag = m
            .lag_seconds_at(at(11) + Duration::from_millis(100))
            .unwrap();
        assert!((lag - 0.2).abs() < 1e-9, "{lag}");
        // Apply stalled: at 40 the heartbeat of 11 is 29 s overdue.
        assert_eq!(m.lag_seconds_at(at(40)), Some(29.0));
        // An older heartbeat arriving late does not move the figure back.
        m.heartbeat_applied(at(5), at(41));
        assert_eq!(m.lag_seconds_at(at(40)), Some(29.0));
    }

    #[test]
    fn estimated_lag_is_used_when_heartbeats_are_off() {
        let m = Metrics::new().unwrap();
        m.set_heartbeat_interval(None);
        assert_eq!(m.lag_seconds(), None);
        m.set_estimated_lag(Some(3.5));
        assert_eq!(m.lag_seconds(), Some(3.5));
        m.set_estimated_lag(Some(f64::NAN));
        assert_eq!(m.lag_seconds(), None);
    }

    #[test]
    fn drift_total_replaces_per_table_figures() {
        let m = Metrics::new().unwrap();
        assert_eq!(m.drift_rows_total(), None);
        let a = TableId::new("shop", "a");
        m.set_drift_rows(&a, 3);
        m.set_drift_rows(&TableId::new("shop", "b"), 2);
        assert_eq!(m.drift_rows_total(), Some(5));
        m.set_drift_rows(&a, 0);
        assert_eq!(m.drift_rows_total(), Some(2));
    }

    #[test]
    fn runway_distinguishes_unknown_and_never() {
        let m = Metrics::new().unwrap();
        assert_eq!(m.binlog_runway_seconds(), None);
        m.set_binlog_runway(Some(Duration::MAX));
        assert_eq!(m.binlog_runway_seconds(), Some(f64::INFINITY));
        m.set_binlog_runway(Some(Duration::from_secs(90)));
        assert_eq!(m.binlog_runway_seconds(), Some(90.0));
    }

    #[tokio::test(start_paused = true)]
    async fn snapshot_stall_counts_only_while_copying() {
        let m = Metrics::new().unwrap();
        let t = TableId::new("shop", "orders");
        let h = m.table(&t);
        assert_eq!(m.snapshot_stalled_for(), None);
        m.set_snapshot_state(&t, SnapshotState::Copying);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(m.snapshot_stalled_for(), Some(Duration::from_secs(30)));
        h.snapshot_chunk_copied(1000);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(m.snapshot_stalled_for(), Some(Duration::from_secs(5)));
        m.set_snapshot_state(&t, SnapshotState::Done);
        assert_eq!(m.snapshot_stalled_for(), None);
    }
}
