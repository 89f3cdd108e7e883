//! The initial copy (and re-copies of single tables), handed to streaming without a gap.
//!
//! **Algorithm.** 1. Read the source's current position `P_start` and store it. 2. Cut every
//! table into chunks by its key, at boundaries the source server chooses
//! (`cdc_reader::snapshot`: ranges of the key's leading integer column computed from its two
//! ends when its values are dense, else a walk of the key in the server's order; either way
//! chunk `i` is `key >= b(i) AND key < b(i+1)` evaluated by the server, so the chunks cover
//! every row exactly once whatever the bounds). 3. Copy the chunks with N workers, in parallel across and within
//! tables; each chunk is read in its own `START TRANSACTION WITH CONSISTENT SNAPSHOT` (no row
//! or table lock) and written with binary COPY, and its rows and its `done` mark commit
//! together. 4. Read the position `P_end` after the last chunk. 5. Stream from `P_start`.
//!
//! **Locks.** A chunk's read takes no lock the application's reads or writes wait on. Like any
//! query, it holds InnoDB's shared metadata lock on its table until the chunk's transaction
//! ends, which only DDL waits for: an `ALTER TABLE` issued during the copy waits for the
//! chunk in flight (and, as MariaDB queues metadata locks, the table's writes wait behind that
//! `ALTER`). A chunk lasts `chunk_rows` divided by the copy's pace, well under a second with
//! the defaults; a low `max_rows_per_second` lengthens it, so lower `chunk_rows` with it when
//! DDL may run during the copy.
//!
//! **Why the result is exact.** Every chunk shows the committed state of its rows at some
//! instant after `P_start` (its snapshot started after `P_start` was read). Streaming replays
//! every change after `P_start` — including changes older than the chunk's instant — as
//! full-row upserts and deletes by key. For each key, the value after the replay is the effect
//! of the *last* change to that key if the key changed at all after `P_start` (which is its
//! current state), and otherwise the copied value (which was then also its current state). So
//! once the stream has caught up, every key holds its source state, without comparing key
//! ranges between chunks and the stream, and without a global read point.
//!
//! While the replay runs, rows may hold older states than they did right after the copy, and
//! two rows may transiently claim the same unique value. That is why unique keys and foreign
//! keys of copied tables are created only once the applied position has passed `P_end`, when
//! the target is again a consistent image of the source (`my2pg.deferred_ddl`). Keys cannot
//! collide transiently and plain indexes cannot fail, so a table the copy creates gets its key
//! and plain indexes (one sorted build each) as soon as its last chunk commits, while other
//! tables are still copied, and before streaming starts: the upserts need the key. A table
//! copied again while streaming keeps its key throughout.
//!
//! **Resumption.** The chunk plan is stored before copying; a chunk whose rows committed is
//! marked done in the same transaction, so after a crash only unfinished chunks are copied, each
//! from a new snapshot taken after `P_start` — the argument above still holds.
//!
//! **`P_start` on MariaDB** is the position of a consistent snapshot
//! (`cdc_reader::snapshot::start_position`), not `@@gtid_binlog_pos`: a transaction can be in
//! the binlog a moment before InnoDB makes it visible, and a position naming it would let a
//! chunk that started in that moment miss it while streaming skips it.
//!
//! **Copying tables while streaming goes on** (`--resnapshot`, a table newly added to the
//! selection, or the rest of such a copy after a crash) uses the same argument chunk by chunk
//! (`super::live`): the table is emptied (its key kept, its other indexes and foreign keys
//! deferred), and each chunk's rows are upserted while the applier keeps applying every
//! table, with no change newer than the chunk's snapshot applied before the chunk commits.
//! Its deferred DDL runs once the applier passed the copy's end. On MySQL, which reports no
//! snapshot positions, such a copy runs before streaming resumes.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use schemas::{PgValue, Row, SourcePosition, TableId, TableMapping, TableSchema};
use tokio::sync::mpsc;
use tracing::info;

use cdc_reader::snapshot::{
    Chunk, abandon_snapshot, begin_snapshot, chunk_bounds, chunks, read_chunk, read_open_chunk,
    row_estimate, snapshot_gtid_pos,
};
use sink::apply::{ErrorPolicy, stage};
use sink::snapshot as state;

use super::SyncContext;
use crate::metrics::SnapshotState;

/// Numbers the snapshot publishers' transactional ids within this process.
static PUBLISHERS: AtomicU64 = AtomicU64::new(0);

/// Chunks planned ahead of the copy workers.
const JOBS_QUEUED: usize = 1024;

/// Rows per batch handed from a chunk's reader to its writer.
const READ_BATCH_ROWS: usize = 5_000;

/// How chunk rows reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Binary COPY into an empty table (the initial copy).
    Copy,
    /// Upsert through staging (a table the applier writes to at the same time).
    Upsert,
    /// Publish the source rows to Kafka as `op = r` events (`sync --via kafka`): a Kafka
    /// transaction per chunk, committed before the chunk is marked done.
    Publish,
}

/// One table to copy.
#[derive(Debug, Clone)]
pub struct TableCopy {
    /// Source schema.
    pub schema: Arc<TableSchema>,
    /// Its transform plan (rows are read in the source schema, then transformed).
    pub plan: Arc<transform::TablePlan>,
    /// The mapping of the transformed schema.
    pub mapping: Arc<TableMapping>,
}

struct Job {
    table: usize,
    chunk: Chunk,
}

/// Progress display: bars on a terminal, a line per table every `progress_log_secs`
/// otherwise; the same figures (rows, rows/s, seconds left) as metrics either way.
struct Progress {
    bars: Option<(MultiProgress, Vec<ProgressBar>, ProgressBar)>,
    copied: Vec<AtomicU64>,
    /// Rows this run copied (without those a crashed run copied): the pace's numerator.
    run_rows: Vec<AtomicU64>,
    estimates: Vec<u64>,
    names: Vec<String>,
    metrics: Vec<crate::metrics::TableMetrics>,
    /// When each table's first rows arrived (its pace is measured from there).
    began: Vec<std::sync::OnceLock<Instant>>,
    log_every: Duration,
    last_log: Mutex<Instant>,
}

impl Progress {
    fn new(ctx: &SyncContext, tables: &[TableCopy], estimates: Vec<u64>) -> Progress {
        let names: Vec<String> = tables.iter().map(|t| t.schema.id.to_string()).collect();
        let bars = std::io::stderr().is_terminal().then(|| {
            let mp = MultiProgress::new();
            // indicatif's `{per_sec:N}` reads N as decimal places: whole rows per second,
            // right-aligned, instead.
            let rate = |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:>9.0} rows/s", s.per_sec());
            };
            let style = ProgressStyle::with_template(
                "{prefix:>28} {bar:30} {pos:>10}/{len:10} {rate} eta {eta}",
            )
            .map(|s| s.with_key("rate", rate))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bars: Vec<ProgressBar> = names
                .iter()
                .zip(&estimates)
                .map(|(n, e)| {
                    let b = mp.add(ProgressBar::new(*e));
                    b.set_style(style.clone());
                    b.set_prefix(n.clone());
                    b
                })
                .collect();
            let total = mp.add(ProgressBar::new(estimates.iter().sum::<u64>()));
            total.set_style(style);
            total.set_prefix("total");
            (mp, bars, total)
        });
        let metrics: Vec<_> = tables
            .iter()
            .map(|t| ctx.metrics.table(&t.schema.id))
            .collect();
        for (m, e) in metrics.iter().zip(&estimates) {
            m.snapshot_progress(*e, 0, 0);
        }
        Progress {
            bars,
            copied: names.iter().map(|_| AtomicU64::new(0)).collect(),
            run_rows: names.iter().map(|_| AtomicU64::new(0)).collect(),
            began: names.iter().map(|_| std::sync::OnceLock::new()).collect(),
            estimates,
            names,
            metrics,
            log_every: Duration::from_secs(ctx.snapshot.progress_log_secs.max(1)),
            last_log: Mutex::new(Instant::now()),
        }
    }

    /// Counts the rows a crashed run copied into `table` (known once the table is planned).
    fn already(&self, table: usize, rows: u64) {
        if rows == 0 {
            return;
        }
        let now = self.copied[table].fetch_add(rows, Ordering::Relaxed) + rows;
        if let Some((_, bars, total)) = &self.bars {
            if let Some(b) = bars.get(table) {
                b.set_length(b.length().unwrap_or(0).max(now));
                b.set_position(now);
            }
            total.set_length(total.length().unwrap_or(0).max(total.position() + rows));
            total.inc(rows);
        }
    }

    /// Rows per second of table `i` since its first rows, and the seconds left at that pace.
    fn pace(&self, i: usize, copied: u64, this_run: u64) -> (u64, u64) {
        let secs = self
            .began
            .get(i)
            .and_then(|b| b.get())
            .map_or(0.0, |b| b.elapsed().as_secs_f64());
        if secs <= 0.0 || this_run == 0 {
            return (0, 0);
        }
        let rate = this_run as f64 / secs;
        let left = self.estimates[i].saturating_sub(copied) as f64;
        (rate as u64, (left / rate).ceil() as u64)
    }

    fn add(&self, table: usize, rows: u64) {
        self.began[table].get_or_init(Instant::now);
        let now = self.copied[table].fetch_add(rows, Ordering::Relaxed) + rows;
        let run = self.run_rows[table].fetch_add(rows, Ordering::Relaxed) + rows;
        let (rate, eta) = self.pace(table, now, run);
        self.metrics[table].snapshot_progress(self.estimates[table].max(now), rate, eta);
        if let Some((_, bars, total)) = &self.bars {
            if let Some(b) = bars.get(table) {
                if now > b.length().unwrap_or(0) {
                    b.set_length(now);
                }
                b.set_position(now);
            }
            total.inc(rows);
            return;
        }
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= self.log_every {
            *last = Instant::now();
            for (i, name) in self.names.iter().enumerate() {
                let c = self.copied[i].load(Ordering::Relaxed);
                let pct = if self.estimates[i] > 0 {
                    (100 * c / self.estimates[i].max(1)).min(100)
                } else {
                    0
                };
                let (rate, eta) = self.pace(i, c, self.run_rows[i].load(Ordering::Relaxed));
                info!(table = %name, rows = c, estimated = self.estimates[i], percent = pct, rows_per_second = rate, eta_seconds = eta, "copying");
            }
        }
    }

    fn finish(&self) {
        let mut all = 0;
        for (i, m) in self.metrics.iter().enumerate() {
            let c = self.copied[i].load(Ordering::Relaxed);
            all += c;
            let (rate, _) = self.pace(i, c, self.run_rows[i].load(Ordering::Relaxed));
            m.snapshot_progress(self.estimates[i].max(c), rate, 0);
        }
        // The bars end at the rows copied, not at the source's estimate (`finish` would fill
        // them up to it).
        if let Some((_, bars, total)) = &self.bars {
            for (i, b) in bars.iter().enumerate() {
                b.set_length(self.copied[i].load(Ordering::Relaxed));
                b.finish();
            }
            total.set_length(all);
            total.finish();
        }
    }
}

/// Shared cap on rows read per second.
struct RateCap {
    per_second: Option<u64>,
    started: Instant,
    rows: AtomicU64,
}

impl RateCap {
    async fn admit(&self, rows: u64) {
        let Some(rate) = self.per_second.filter(|r| *r > 0) else {
            return;
        };
        let total = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let due = Duration::from_secs_f64(total as f64 / rate as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// Creates the target table of `t` when missing (deferring secondary indexes and foreign keys)
/// and returns whether it already existed.
pub(crate) async fn ensure_table(
    ctx: &SyncContext,
    pg: &tokio_postgres::Client,
    t: &TableCopy,
    mode: WriteMode,
) -> Result<bool> {
    // Apply workers and the publisher may create the same table at once (`sync --via
    // kafka`): one at a time, and the second finds it there.
    pg.execute("SELECT pg_advisory_lock($1)", &[&CREATE_LOCK])
        .await?;
    let result = create_missing(ctx, pg, t, mode).await;
    let _ = pg
        .execute("SELECT pg_advisory_unlock($1)", &[&CREATE_LOCK])
        .await;
    result
}

/// Advisory lock key serialising target table creation (`my2pgct` in ASCII).
const CREATE_LOCK: i64 = 0x006d_7932_7067_6374;

async fn create_missing(
    ctx: &SyncContext,
    pg: &tokio_postgres::Client,
    t: &TableCopy,
    mode: WriteMode,
) -> Result<bool> {
    let exists: bool = pg
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&t.mapping.target.quoted()],
        )
        .await
        .with_context(|| format!("looking for {}", t.mapping.target))?
        .get(0);
    if exists {
        return Ok(true);
    }
    // A bulk load into a new table builds its primary key afterwards ([`build_keys`]).
    let plan = ctx.targeting.with_naming(|n| match mode {
        WriteMode::Copy => sink::ddl::create::create_table_without_key(&t.mapping, n),
        // Rows arrive as upserts (from the applier, or from Kafka through apply workers).
        WriteMode::Upsert | WriteMode::Publish => sink::ddl::create::create_table(&t.mapping, n),
    });
    let keep_unique = !t.mapping.key_is_primary;
    let (now, later): (Vec<String>, Vec<String>) = plan.statements.into_iter().partition(|s| {
        let upper = s.trim_start().to_ascii_uppercase();
        let index = upper.starts_with("CREATE INDEX") || upper.starts_with("CREATE UNIQUE INDEX");
        !index || (keep_unique && upper.starts_with("CREATE UNIQUE INDEX"))
    });
    // Plain indexes (and the key, in copy mode) are built right after the load, before
    // streaming; unique indexes and foreign keys wait until the replay has passed the copy's
    // end (see the module doc).
    let (after_load, mut deferred): (Vec<String>, Vec<String>) = later.into_iter().partition(|s| {
        mode == WriteMode::Copy
            && s.trim_start()
                .to_ascii_uppercase()
                .starts_with("CREATE INDEX ")
    });
    let mut after_load: Vec<String> = after_load
        .into_iter()
        .map(|s| s.replacen("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1))
        .collect();
    if mode == WriteMode::Copy
        && let Some((index, constraint)) = sink::ddl::create::primary_key_sql(&t.mapping)
    {
        after_load.insert(0, index);
        after_load.push(constraint);
    }
    deferred.extend(plan.foreign_keys);
    // The table and what remains to build on it commit together: a crash in between would
    // leave a table whose indexes nobody builds.
    let created = async {
        pg.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            schemas::mapping::quote_ident(&t.mapping.target.schema)
        ))
        .await
        .with_context(|| format!("creating schema {}", t.mapping.target.schema))?;
        for s in &now {
            pg.batch_execute(s)
                .await
                .with_context(|| format!("creating {}: {s}", t.mapping.target))?;
        }
        state::defer_ddl(pg, &ctx.pipeline, &t.schema.id, &deferred).await?;
        state::after_load_ddl(pg, &ctx.pipeline, &t.schema.id, &after_load).await?;
        Ok::<(), anyhow::Error>(())
    };
    pg.batch_execute("BEGIN").await?;
    if let Err(e) = created.await {
        let _ = pg.batch_execute("ROLLBACK").await;
        return Err(e);
    }
    pg.batch_execute("COMMIT").await?;
    info!(table = %t.mapping.target, after_load = after_load.len(), deferred = deferred.len(), "created target table");
    Ok(false)
}

/// Copies `tables`. With [`WriteMode::Copy`] the target tables must be empty or missing (they
/// are created); with [`WriteMode::Upsert`] they are emptied first by the caller.
///
/// The workers start (and connect) at once; the tables are prepared one after another, the
/// largest first by the source's estimate, and each table's chunks are queued as soon as it
/// is planned, so preparing the next tables overlaps copying the first. Largest first, with
/// chunks in key order, also keeps the end of the copy short: the last chunks to run are
/// those of small tables (longest-processing-time-first order).
pub async fn copy_tables(ctx: &SyncContext, tables: Vec<TableCopy>, mode: WriteMode) -> Result<()> {
    copy_with(ctx, tables, mode, None).await
}

/// Copies `tables` (emptied or new) into the target while the applier streams, each chunk
/// ordered against the applier through `gate` (see [`super::live`]). MariaDB only.
pub async fn copy_tables_live(
    ctx: &SyncContext,
    tables: Vec<TableCopy>,
    gate: Arc<super::live::Gate>,
) -> Result<()> {
    copy_with(ctx, tables, WriteMode::Upsert, Some(gate)).await
}

async fn copy_with(
    ctx: &SyncContext,
    tables: Vec<TableCopy>,
    mode: WriteMode,
    gate: Option<Arc<super::live::Gate>>,
) -> Result<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let tables = Arc::new(tables);
    // Bounded like every queue here: a table of many chunks makes planning wait for the
    // workers, which changes nothing since its chunks would wait in the queue anyway.
    let (jobs, queue) = mpsc::channel::<Job>(JOBS_QUEUED);
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let mut my = ctx.source.connect().await?;
    let mut estimates = Vec::with_capacity(tables.len());
    for t in tables.iter() {
        estimates.push(row_estimate(&mut my, &t.schema.id).await?);
    }
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(estimates[i]));
    let progress = Arc::new(Progress::new(ctx, &tables, estimates));
    let cap = Arc::new(RateCap {
        per_second: ctx.snapshot.max_rows_per_second,
        started: Instant::now(),
        rows: AtomicU64::new(0),
    });
    // In copy mode a table's key and plain indexes are built as soon as its last chunk
    // commits (`build_keys`), beside the copy of the tables after it.
    let mut keys = tokio::task::JoinSet::new();
    let copied = (mode == WriteMode::Copy).then(|| {
        // Room for every table: each is sent once, so sending never waits.
        let (tx, rx) = mpsc::channel::<TableId>(tables.len().max(1));
        keys.spawn(build_keys(ctx.clone(), rx));
        Arc::new(TablesCopied {
            left: tables.iter().map(|_| AtomicUsize::new(0)).collect(),
            tx,
        })
    });
    // Dropping the sets (an error below) stops the workers and the builds; chunks roll back
    // and every build is idempotent.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..ctx.snapshot.workers.max(1) {
        workers.spawn(worker(
            ctx.clone(),
            queue.clone(),
            tables.clone(),
            progress.clone(),
            cap.clone(),
            copied.clone(),
            Target {
                mode,
                gate: gate.clone(),
            },
        ));
    }
    // The workers hold the queue: once all of them failed, sending fails and planning stops.
    drop(queue);
    let pg = ctx.target.connect().await?;
    'plan: for i in order {
        let t = &tables[i];
        let pending = plan_table(ctx, &pg, &mut my, t, mode, &progress, i).await?;
        if let Some(c) = &copied {
            c.planned(i, &t.schema.id, pending.len());
        }
        for chunk in pending {
            if jobs.send(Job { table: i, chunk }).await.is_err() {
                break 'plan;
            }
        }
    }
    drop(jobs);
    let _ = my.disconnect().await;
    let mut first_error = None;
    loop {
        tokio::select! {
            r = workers.join_next() => {
                let Some(r) = r else { break };
                let r = r
                    .map_err(|e| anyhow!("a copy worker failed: {e}"))
                    .and_then(|r| r);
                if let Err(e) = r {
                    first_error.get_or_insert(e);
                }
            }
            // While the workers run, the builder ends only by failing (its channel is still
            // open): stop the copy now rather than after hours of loading.
            Some(r) = keys.join_next() => {
                let r = r
                    .map_err(|e| anyhow!("the index builder failed: {e}"))
                    .and_then(|r| r);
                if let Err(e) = r {
                    // Reported like a worker's error; returning drops (stops) the workers.
                    first_error.get_or_insert(e);
                    break;
                }
            }
        }
    }
    progress.finish();
    if let Some(e) = first_error {
        return Err(e);
    }
    // With the workers gone, only this handle keeps the builder's channel open.
    drop(copied);
    while let Some(r) = keys.join_next().await {
        r.map_err(|e| anyhow!("the index builder failed: {e}"))??;
    }
    for t in tables.iter() {
        ctx.metrics
            .set_snapshot_state(&t.schema.id, SnapshotState::Done);
    }
    Ok(())
}

/// Prepares table `i` of a copy: creates it on the target when missing, plans its chunks at
/// bounds the source chooses (or reads the plan a crashed run stored) and returns the chunks
/// still to copy.
async fn plan_table(
    ctx: &SyncContext,
    pg: &tokio_postgres::Client,
    my: &mut mysql_async::Conn,
    t: &TableCopy,
    mode: WriteMode,
    progress: &Progress,
    i: usize,
) -> Result<Vec<Chunk>> {
    let existed = ensure_table(ctx, pg, t, mode).await?;
    let mut plan = state::planned(pg, &ctx.pipeline, &t.schema.id).await?;
    if plan.is_empty() {
        if existed && mode == WriteMode::Copy {
            let rows: i64 = pg
                .query_one(
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT 1) x",
                        t.mapping.target.quoted()
                    ),
                    &[],
                )
                .await?
                .get(0);
            if rows > 0 {
                return Err(anyhow!(
                    "target table {} already holds rows but was not copied by my2pg; empty it (TRUNCATE {}) \
                     or exclude {} from the selection",
                    t.mapping.target,
                    t.mapping.target.quoted(),
                    t.schema.id
                ));
            }
        }
        let bounds = chunk_bounds(my, &t.schema, ctx.snapshot.chunk_rows).await?;
        let cs: Vec<state::ChunkBounds> = chunks(bounds)
            .into_iter()
            .map(|c| (c.index, c.lower, c.upper))
            .collect();
        plan = state::plan(pg, &ctx.pipeline, &t.schema.id, &cs).await?;
    }
    progress.already(
        i,
        plan.iter().filter(|c| c.done).map(|c| c.rows as u64).sum(),
    );
    let pending: Vec<Chunk> = plan
        .into_iter()
        .filter(|c| !c.done)
        .map(|c| Chunk {
            index: c.index,
            lower: c.lower,
            upper: c.upper,
        })
        .collect();
    ctx.metrics.set_snapshot_state(
        &t.schema.id,
        if pending.is_empty() {
            SnapshotState::Done
        } else {
            SnapshotState::Copying
        },
    );
    info!(table = %t.schema.id, pending = pending.len(), "copy planned");
    Ok(pending)
}

/// `Err` (the copy stops) unless the error policy sends rows that cannot be converted to
/// the dead-letter table.
fn rejectable(ctx: &SyncContext, e: schemas::ConvertError) -> Result<schemas::ConvertError> {
    if matches!(ctx.sync.on_error, ErrorPolicy::DeadLetter) {
        Ok(e)
    } else {
        Err(e.into())
    }
}

/// Rejected rows a chunk holds before it ends its COPY to record them (a connection in COPY
/// runs no other statement); the chunk's rows after them go into a new COPY.
const REJECTS_HELD: usize = 1000;

/// Ends the chunk's open COPY, if any, then records the rows it rejected (a connection in
/// COPY runs no other statement).
async fn end_copy(
    ctx: &SyncContext,
    pg: &tokio_postgres::Client,
    t: &TableCopy,
    copy: &mut Option<sink::binary::CopyStream>,
    rejected: &mut Vec<(Row, schemas::ConvertError)>,
) -> Result<()> {
    if let Some(s) = copy.take() {
        s.finish().await?;
    }
    for (r, e) in rejected.drain(..) {
        reject(ctx, pg, t, r, e).await?;
    }
    Ok(())
}

async fn reject(
    ctx: &SyncContext,
    pg: &tokio_postgres::Client,
    t: &TableCopy,
    r: Row,
    e: schemas::ConvertError,
) -> Result<()> {
    let e = rejectable(ctx, e)?;
    let r = &r;
    tracing::warn!(table = %t.schema.id, key = %t.mapping.render_key(r), error = %e, "copied row rejected; recorded in my2pg.dead_letter");
    ctx.metrics.error(crate::metrics::ErrorKind::DeadLetter);
    sink::apply::record_dead_letter(
        pg,
        &ctx.pipeline,
        &sink::apply::DeadLetter {
            position: "snapshot".into(),
            gtid: None,
            table: t.plan.output(),
            key: t.mapping.render_key(r),
            op: schemas::ChangeOp::Read,
            before: None,
            after: Some(r),
            error: e.to_string(),
        },
    )
    .await?;
    Ok(())
}

/// Chunks left per table of a copy; a table whose last chunk committed goes to the builder.
struct TablesCopied {
    left: Vec<AtomicUsize>,
    tx: mpsc::Sender<TableId>,
}

impl TablesCopied {
    /// Records that table `i` has `chunks` chunks to copy (set before they are queued).
    fn planned(&self, i: usize, id: &TableId, chunks: usize) {
        if let Some(left) = self.left.get(i) {
            left.store(chunks, Ordering::Release);
        }
        if chunks == 0 {
            self.copied(id);
        }
    }

    /// Counts a committed chunk of table `i`; the last one hands the table to the builder.
    fn chunk_committed(&self, i: usize, id: &TableId) {
        if let Some(left) = self.left.get(i)
            && left.fetch_sub(1, Ordering::AcqRel) == 1
        {
            self.copied(id);
        }
    }

    fn copied(&self, id: &TableId) {
        // The builder is gone only when the copy is failing anyway, and the channel has
        // room for every table.
        let _ = self.tx.try_send(id.clone());
    }
}

/// How a worker writes: the mode, and the gate when copying beside the applier.
struct Target {
    mode: WriteMode,
    gate: Option<Arc<super::live::Gate>>,
}

async fn worker(
    ctx: SyncContext,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    tables: Arc<Vec<TableCopy>>,
    progress: Arc<Progress>,
    cap: Arc<RateCap>,
    copied: Option<Arc<TablesCopied>>,
    Target { mode, gate }: Target,
) -> Result<()> {
    let mut my = ctx.source.connect().await?;
    let pg = ctx.target.connect().await?;
    pg.batch_execute("SET my2pg.applying = 'on'; SET synchronous_commit = off")
        .await?;
    let mut stages = std::collections::HashSet::new();
    let publisher = match mode {
        WriteMode::Publish => {
            let opts = ctx.kafka.options()?;
            let id = format!("snapshot-{}", PUBLISHERS.fetch_add(1, Ordering::Relaxed));
            Some(sink::kafka::publish::Publisher::connect(&opts, &ctx.pipeline, Some(&id)).await?)
        }
        _ => None,
    };
    loop {
        // Waits while the next tables are being planned; `None` once all were and the
        // queue is empty.
        let job = queue.lock().await.recv().await;
        let Some(job) = job else { break };
        let t = &tables[job.table];
        let started = Instant::now();
        // Copying beside the applier: the chunk's snapshot and its write are ordered against
        // the applier (see `live`); both are released when the chunk committed.
        let mut ticket = None;
        if let Some(g) = &gate {
            ticket = Some(snapshot_for(&mut my, g, &t.schema.id).await?);
        }
        if mode == WriteMode::Upsert {
            // Before the chunk's transaction: creating the staging table reads the target's
            // definition, and that lock must not outlast the statement (the applier's DDL on
            // the table would wait for it while the chunk waits for the applier).
            stage::ensure(&pg, &t.mapping, &mut stages).await?;
        }
        pg.batch_execute("BEGIN").await?;
        if let Some(p) = &publisher {
            p.begin()?;
        }
        let (tx, mut rx) = mpsc::channel::<Vec<Row>>(4);
        let read = async {
            let r = if ticket.is_some() {
                read_open_chunk(&mut my, &t.schema, &job.chunk, READ_BATCH_ROWS, &tx).await
            } else {
                read_chunk(&mut my, &t.schema, &job.chunk, READ_BATCH_ROWS, &tx).await
            };
            drop(tx);
            r
        };
        let write = async {
            let mut n = 0u64;
            // One COPY for the whole chunk (`CopyStream`), and the rows it rejected.
            let mut copy: Option<sink::binary::CopyStream> = None;
            let mut rejected = Vec::new();
            while let Some(rows) = rx.recv().await {
                cap.admit(rows.len() as u64).await;
                let read = rows.len() as u64;
                if let Some(p) = &publisher {
                    // Source rows as they are: the apply workers run the transforms, as they
                    // do for Debezium's events.
                    p.send_reads(&t.schema, rows).await?;
                    n += read;
                    progress.add(job.table, read);
                    ctx.metrics.table(&t.schema.id).snapshot_chunk_copied(read);
                    continue;
                }
                let written = match mode {
                    WriteMode::Copy => {
                        // Source values straight into COPY bytes (`TableMapping::copy_row`).
                        let mut buf = Vec::with_capacity(rows.len().saturating_mul(128));
                        let mut encoded = 0u64;
                        for r in rows {
                            let Some(r) = t.plan.row(r) else { continue };
                            let at = buf.len();
                            match t.mapping.copy_row(&r, &mut buf) {
                                Ok(()) => encoded += 1,
                                Err(schemas::pgvalue::CopyRowError::Convert(e)) => {
                                    buf.truncate(at);
                                    rejected.push((r, rejectable(&ctx, e)?));
                                }
                                Err(e) => return Err(e.into()),
                            }
                        }
                        let stream = match copy.as_mut() {
                            Some(s) => s,
                            None => {
                                copy.insert(sink::binary::CopyStream::open(&pg, &t.mapping).await?)
                            }
                        };
                        stream.send(buf, encoded).await?;
                        if rejected.len() >= REJECTS_HELD {
                            end_copy(&ctx, &pg, t, &mut copy, &mut rejected).await?;
                        }
                        encoded
                    }
                    WriteMode::Upsert | WriteMode::Publish => {
                        let mut converted: Vec<Vec<PgValue>> = Vec::with_capacity(rows.len());
                        for r in rows {
                            let Some(r) = t.plan.row(r) else { continue };
                            match t.mapping.convert_row(&r) {
                                Ok(v) => converted.push(v),
                                Err(e) => reject(&ctx, &pg, t, r, e).await?,
                            }
                        }
                        if mode == WriteMode::Upsert {
                            // Into staging: the target's rows are written at once at the end
                            // of the chunk (see below).
                            stage::stage_rows(&pg, &t.mapping, &converted).await?;
                        }
                        converted.len() as u64
                    }
                };
                n += written;
                progress.add(job.table, read);
                ctx.metrics
                    .table(&t.schema.id)
                    .snapshot_chunk_copied(written);
            }
            end_copy(&ctx, &pg, t, &mut copy, &mut rejected).await?;
            Ok::<u64, anyhow::Error>(n)
        };
        let (read, written) = tokio::join!(read, write);
        let written = match (read, written) {
            (Ok(_), Ok(n)) => n,
            (Err(e), _) => {
                let _ = pg.batch_execute("ROLLBACK").await;
                if let Some(p) = &publisher {
                    p.abort().await;
                }
                return Err(e.into());
            }
            (_, Err(e)) => {
                let _ = pg.batch_execute("ROLLBACK").await;
                if let Some(p) = &publisher {
                    p.abort().await;
                }
                return Err(e);
            }
        };
        // A chunk beside the applier touches the target's rows in one short statement, while
        // the applier writes nothing (see `live`).
        let mut writing = None;
        if mode == WriteMode::Upsert {
            if let Some(g) = &gate {
                writing = Some(Arc::clone(&g.writes).read_owned().await);
            }
            stage::merge_staged(&pg, &t.mapping).await?;
        }
        if let Some(p) = &publisher {
            // Published before marked done: a crash in between publishes the chunk again
            // (harmless, see the module documentation), never loses it.
            p.commit(None).await?;
        }
        state::chunk_done(&pg, &ctx.pipeline, &t.schema.id, job.chunk.index, written).await?;
        pg.batch_execute("COMMIT").await?;
        drop((writing, ticket));
        tracing::debug!(table = %t.schema.id, chunk = job.chunk.index, rows = written, ms = started.elapsed().as_millis() as u64, "chunk copied");
        if let Some(c) = &copied {
            c.chunk_committed(job.table, &t.schema.id);
        }
    }
    let _ = my.disconnect().await;
    Ok(())
}

/// Starts the chunk's snapshot on `my` once it shows everything the applier admitted, and
/// returns the ticket that keeps the applier inside it (see `live`).
async fn snapshot_for(
    my: &mut mysql_async::Conn,
    gate: &Arc<super::live::Gate>,
    table: &TableId,
) -> Result<super::live::Ticket> {
    let ticket = gate.hold();
    // A transaction the applier admitted is in the binlog; it is visible to new snapshots a
    // moment later, once InnoDB committed it too. Waiting longer than this means the source
    // does not report snapshot positions as MariaDB documents them.
    for _ in 0..SNAPSHOT_TRIES {
        begin_snapshot(my, table).await?;
        let (seen, _) = snapshot_gtid_pos(my).await?.ok_or_else(|| {
            anyhow!(
                "the source reports no binlog position for consistent snapshots \
                 (binlog_snapshot_file is empty): copying {table} while streaming needs MariaDB \
                 with its binary log on"
            )
        })?;
        if ticket.limit(seen) {
            return Ok(ticket);
        }
        abandon_snapshot(my).await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err(anyhow!(
        "the source's consistent snapshots of {table} kept missing transactions already \
         streamed (for 2 s); copy it with streaming stopped: `my2pg sync --snapshot-only`, \
         then `my2pg sync`"
    ))
}

/// Snapshots a chunk may take before it shows what the applier admitted (2 ms apart).
const SNAPSHOT_TRIES: usize = 1000;

/// Runs the deferred DDL once the applied position is at or after `end`; returns whether it
/// ran (or nothing was deferred).
pub async fn run_deferred_ddl(
    pg: &tokio_postgres::Client,
    pipeline: &str,
    applied: &SourcePosition,
    end: &SourcePosition,
) -> Result<bool> {
    if applied.is_at_or_after(end) != Some(true) {
        return Ok(false);
    }
    let ddl = state::deferred_ddl(pg, pipeline).await?;
    pg.batch_execute("BEGIN").await?;
    for (table, statement) in &ddl {
        if let Err(e) = pg.batch_execute(statement).await {
            let _ = pg.batch_execute("ROLLBACK").await;
            return Err(anyhow!(e).context(format!(
                "building the deferred index or key of {table}: {statement}"
            )));
        }
    }
    state::done(pg, pipeline).await?;
    pg.batch_execute("COMMIT").await?;
    info!(
        statements = ddl.len(),
        "copy finished: secondary indexes and foreign keys built"
    );
    Ok(true)
}

/// Runs the statements recorded to follow the load (the primary keys and plain indexes of
/// the tables the copy created: one sorted build each instead of one B-tree insert per row),
/// table by table as `copied` names the tables whose last chunk committed, while the copy
/// of the others goes on; once the channel closes, whatever else is recorded (a crashed run
/// may have left a table's statements) and then the records go. This ends before streaming
/// starts, since the applier's upserts need the keys. Every statement is idempotent and the
/// records are only deleted once all ran, so a crash anywhere here is repaired by the next
/// start.
async fn build_keys(ctx: SyncContext, mut copied: mpsc::Receiver<TableId>) -> Result<()> {
    let pg = Arc::new(ctx.target.connect().await?);
    let permits = Arc::new(tokio::sync::Semaphore::new(ctx.snapshot.index_builds()));
    let mut builds = tokio::task::JoinSet::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut open = true;
    while open || !builds.is_empty() {
        tokio::select! {
            table = copied.recv(), if open => {
                open = table.is_some();
                // A copied table's statements (or, at the end, all not yet started).
                let mut statements: HashMap<String, Vec<String>> = HashMap::new();
                for (table, sql) in state::pending_after_load(pg.as_ref(), &ctx.pipeline, table.as_ref()).await? {
                    if !started.contains(&table) {
                        statements.entry(table).or_default().push(sql);
                    }
                }
                for (table, sql) in statements {
                    started.insert(table.clone());
                    builds.spawn(build_table_keys(ctx.target.clone(), pg.clone(), permits.clone(), table, sql));
                }
            },
            Some(done) = builds.join_next() => {
                // The first failure stops the rest (dropping `builds` cancels them).
                done.map_err(|e| anyhow!("an index build failed: {e}"))??;
            }
        }
    }
    if !started.is_empty() {
        state::after_load_done(pg.as_ref(), &ctx.pipeline).await?;
        info!("primary keys and indexes of the copied tables built");
    }
    Ok(())
}

/// Builds one table's recorded indexes side by side (several indexes of one table may: the
/// `CREATE INDEX` lock allows it), one connection each and at most `permits` builds in the
/// whole copy, then attaches its primary key constraint to its index on the builder's `pg`.
async fn build_table_keys(
    target: sink::TargetOptions,
    pg: Arc<tokio_postgres::Client>,
    permits: Arc<tokio::sync::Semaphore>,
    table: String,
    statements: Vec<String>,
) -> Result<()> {
    let (indexes, constraints): (Vec<_>, Vec<_>) = statements
        .into_iter()
        .partition(|s| !s.starts_with("ALTER TABLE"));
    let mut set = tokio::task::JoinSet::new();
    for sql in indexes {
        let (target, permits, table) = (target.clone(), permits.clone(), table.clone());
        set.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let pg = target.connect().await?;
            let started = Instant::now();
            // More sort memory than the default 64 MB keeps a build in memory. The builds
            // already run side by side, one per connection; PostgreSQL's parallel workers on
            // top of them only oversubscribe the cores (1.47–1.57 s instead of 1.65–1.68 s
            // for the 1M-row shop of `benches/snapshot.rs`).
            let _ = pg.batch_execute("SET maintenance_work_mem = '256MB'; SET max_parallel_maintenance_workers = 0").await;
            pg.batch_execute(&sql)
                .await
                .with_context(|| format!("building an index of {table} after the copy: {sql}"))?;
            tracing::debug!(table = %table, ms = started.elapsed().as_millis() as u64, statement = %sql, "index built");
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| anyhow!("an index build failed: {e}"))??;
    }
    for sql in constraints {
        let target_table = sql
            .strip_prefix("ALTER TABLE ")
            .and_then(|rest| rest.split(" ADD CONSTRAINT ").next())
            .unwrap_or_default();
        let has_key: bool = pg
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)",
                &[&target_table],
            )
            .await
            .with_context(|| format!("looking for the primary key of {table}"))?
            .get(0);
        if !has_key {
            pg.batch_execute(&sql)
                .await
                .with_context(|| format!("adding the primary key of {table}: {sql}"))?;
        }
    }
    Ok(())
}
