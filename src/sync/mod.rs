//! `my2pg sync`: the sidecar's main loop. Wiring only; the stages live in their crates.
//!
//! ```text
//! source ─▶ BinlogReader ─(bounded channel)─▶ batcher ─▶ Applier ─▶ target
//!    ▲           (cdc-reader)                              (sink: rows + checkpoint
//!    └── heartbeat writer                                   in one transaction)
//! ```
//!
//! On start: connect, ensure the `my2pg` state schema, read the checkpoint. Without one, copy
//! the selected tables (see [`snapshot`]) and store the copy's start position as the
//! checkpoint. Then stream from the checkpoint: the reader sends whole source transactions (or
//! fragments of huge ones) through a bounded channel, so a slow target slows the reader and
//! memory stays bounded; the batcher takes whatever is ready up to the batch limits, so batches
//! are one transaction when the source is quiet (low lag) and large when it is busy
//! (throughput); the applier commits rows and position together.
//!
//! Errors: transient ones (a server restarting, a connection cut, a deadlock) restart the whole
//! pipeline from the durable checkpoint after a backoff; definite ones stop it with the cause,
//! the position and the fix, leaving the checkpoint before the failed transaction. SIGINT or
//! SIGTERM stop it between batches: the batch in flight commits, then my2pg exits 0.

pub mod consume;
pub mod heartbeat;
pub mod live;
pub mod publish;
pub mod runway;
pub mod snapshot;
pub mod verify_loop;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow};
use cdc_reader::SourceOptions;
use cdc_reader::binlog::stream::{BinlogReader, StreamConfig, current_position};
use schemas::{SourcePosition, SourceTx, TableId, TableSchema};
use sink::TargetOptions;
use sink::apply::{Applier, ApplyConfig, Targeting};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{Config, SnapshotConfig, SyncConfig, TableSelection};
use crate::health::{Health, Phase};
use crate::metrics::{ErrorKind, Metrics};
use snapshot::{TableCopy, WriteMode};

/// Everything the stages share.
#[derive(Clone)]
pub struct SyncContext {
    /// Source connection options.
    pub source: SourceOptions,
    /// Target connection options.
    pub target: TargetOptions,
    /// Target naming.
    pub targeting: Targeting,
    /// Which tables are migrated.
    pub selection: Arc<TableSelection>,
    /// Pipeline name.
    pub pipeline: String,
    /// `[sync]`.
    pub sync: SyncConfig,
    /// `[snapshot]`.
    pub snapshot: SnapshotConfig,
    /// Metrics.
    pub metrics: Metrics,
    /// Health.
    pub health: Health,
    /// The heartbeat table, when heartbeats are on.
    pub heartbeat_table: Option<TableId>,
    /// The `[[transform]]` stages, between the reader and the applier (and the copy).
    pub transforms: Arc<transform::Chain>,
    /// `[verify]`: the background verification.
    pub verify: crate::config::VerifyConfig,
    /// `[kafka]`: the Kafka path.
    pub kafka: crate::config::KafkaConfig,
    /// The reader's record of binlog file times (for the runway).
    pub clock: cdc_reader::binlog::clock::BinlogClock,
    /// The position a restart resumes from (for the runway).
    pub tracker: Arc<runway::Tracker>,
}

impl std::fmt::Debug for SyncContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncContext")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl SyncContext {
    /// The binlog reader of the pipeline: the migrated tables and the heartbeat table, the
    /// configured server id, fragments sized from the batch budget, and the runway clock.
    pub(crate) fn reader(&self) -> BinlogReader {
        let sel = self.selection.clone();
        let hb = self.heartbeat_table.clone();
        let chain = self.transforms.clone();
        let selection: cdc_reader::binlog::decoder::Selection = Arc::new(move |id: &TableId| {
            (sel.selects(id) && chain.keeps_table(id)) || hb.as_ref() == Some(id)
        });
        let mut config = StreamConfig::new(selection);
        config.server_id = self.sync.server_id;
        config.clock = self.clock.clone();
        // Memory: the channel holds at most `channel_capacity` fragments; sizing fragments
        // from the batch budget keeps a huge source transaction within about twice
        // `batch_bytes` (channel plus the batch being applied) instead of capacity × the
        // reader's default fragment size.
        config.fragment_bytes = (self.sync.batch_bytes / self.sync.channel_capacity.max(1))
            .clamp(256 << 10, config.fragment_bytes);
        BinlogReader::new(self.source.clone(), config)
    }

    fn is_migrated(&self, id: &TableId) -> bool {
        self.selection.selects(id)
            && self.heartbeat_table.as_ref() != Some(id)
            && self.transforms.keeps_table(id)
    }

    /// A source table's schema after the transform stages (`None`: a stage drops it).
    pub fn output(&self, schema: &Arc<TableSchema>) -> Result<Option<Arc<TableSchema>>> {
        Ok(self.transforms.schema(schema)?)
    }
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Stop after the copy and report the position a later `sync` resumes from.
    pub snapshot_only: bool,
    /// Tables to copy again (`db.table`), while streaming goes on.
    pub resnapshot: Vec<TableId>,
    /// Publish to Kafka (`--via kafka`) instead of applying (see [`publish`]).
    pub via_kafka: bool,
}

/// Why a run ended without error.
#[derive(Debug, Clone, PartialEq)]
pub enum Exit {
    /// SIGINT/SIGTERM (or the caller's stop signal).
    Stopped,
    /// `--snapshot-only` finished; streaming resumes from this position.
    SnapshotOnly(SourcePosition),
}

/// Builds the shared context from the configuration.
pub fn context(cfg: &Config, metrics: Metrics, health: Health) -> Result<SyncContext> {
    let source = cfg.source_options()?;
    let target = cfg.target_options()?;
    let selection = Arc::new(cfg.selection()?);
    let heartbeat_table = if cfg.sync.heartbeat_interval_ms > 0 {
        Some(TableId::parse(&cfg.sync.heartbeat_table).ok_or_else(|| {
            crate::config::ConfigError::new(
                "sync.heartbeat_table",
                format!("{:?} is not of the form db.table", cfg.sync.heartbeat_table),
                "write it as db.table, e.g. my2pg.heartbeat",
            )
        })?)
    } else {
        None
    };
    let mut chain = cfg.transform_chain()?;
    if let Some(hb) = &heartbeat_table {
        chain = chain.exempt(hb.clone());
    }
    let transforms = Arc::new(chain);
    let sel = selection.clone();
    let hb = heartbeat_table.clone();
    let chain = transforms.clone();
    let migrated: Arc<dyn Fn(&TableId) -> bool + Send + Sync> = Arc::new(move |id: &TableId| {
        sel.selects(id) && hb.as_ref() != Some(id) && chain.keeps_table(id)
    });
    Ok(SyncContext {
        source,
        target,
        targeting: Targeting {
            options: cfg.mapping.clone(),
            schema_map: cfg.tables.schema_map.clone(),
            migrated,
        },
        selection,
        pipeline: cfg.sync.pipeline.clone(),
        sync: cfg.sync.clone(),
        snapshot: cfg.snapshot.clone(),
        metrics,
        health,
        heartbeat_table,
        transforms,
        verify: cfg.verify.clone(),
        kafka: cfg.kafka.clone(),
        clock: Default::default(),
        tracker: Default::default(),
    })
}

/// The selected source tables with their schemas, in name order.
pub async fn discover(ctx: &SyncContext) -> Result<Vec<Arc<TableSchema>>> {
    let mut conn = ctx.source.connect().await?;
    let mut databases: BTreeSet<String> = ctx.selection.named_databases().iter().cloned().collect();
    for d in cdc_reader::schema::list_databases(&mut conn).await? {
        if ctx.selection.may_select_database(&d) {
            databases.insert(d);
        }
    }
    let mut out = Vec::new();
    for db in databases {
        let tables = cdc_reader::schema::read_database(&mut conn, &db, None).await?;
        if tables.is_empty() && ctx.selection.named_databases().contains(&db) {
            return Err(cdc_reader::ReaderError::NotFound {
                what: format!("database {db} (or it has no tables)"),
            }
            .into());
        }
        for (_, t) in tables {
            let t = Arc::new(t);
            if ctx.is_migrated(&t.id) && ctx.output(&t)?.is_some() {
                out.push(t);
            }
        }
    }
    let _ = conn.disconnect().await;
    // PostgreSQL reserves schema names starting with pg_; say so before creating anything.
    let reserved: BTreeSet<String> = out
        .iter()
        .map(|t| t.id.database.clone())
        .filter(|db| {
            ctx.targeting
                .schema_of(db)
                .to_ascii_lowercase()
                .starts_with("pg_")
        })
        .collect();
    if let Some(db) = reserved.into_iter().next() {
        return Err(anyhow!(crate::config::ConfigError::new(
            format!("tables.schema_map.{db}"),
            format!(
                "database {db} would become PostgreSQL schema {:?}, a name PostgreSQL reserves",
                ctx.targeting.schema_of(&db)
            ),
            format!(
                "map it to another schema: [tables.schema_map] {db} = \"{}\"",
                db.trim_start_matches("pg_")
            ),
        )));
    }
    if out.is_empty() {
        return Err(anyhow!(crate::config::ConfigError::new(
            "tables",
            "the selection matches no table on the source",
            "check --databases / --include against SHOW TABLES on the source",
        )));
    }
    Ok(out)
}

/// The target-side schemas of the source tables (after the transform stages).
pub(crate) fn outputs(
    ctx: &SyncContext,
    tables: &[Arc<TableSchema>],
) -> Result<Vec<Arc<TableSchema>>> {
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        if let Some(o) = ctx.output(t)? {
            out.push(o);
        }
    }
    Ok(out)
}

pub(crate) fn copies(ctx: &SyncContext, tables: &[Arc<TableSchema>]) -> Result<Vec<TableCopy>> {
    tables
        .iter()
        .filter_map(|s| match ctx.transforms.table(s) {
            Ok(Some(plan)) => Some(Ok((s, plan))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
        .map(|planned| {
            let (s, plan) = planned?;
            let mapping = ctx
                .targeting
                .with_naming(|n| n.map(plan.output().clone()))
                .map_err(|source| sink::SinkError::Mapping { source })?;
            if mapping.key.is_empty()
                && ctx.sync.tables_without_key == sink::apply::NoKeyPolicy::Stop
            {
                return Err(anyhow!(sink::SinkError::NoKey {
                    table: s.id.clone()
                }));
            }
            Ok(TableCopy {
                schema: s.clone(),
                plan,
                mapping: Arc::new(mapping),
            })
        })
        .collect()
}

/// Whether an error is worth retrying from the checkpoint.
pub fn is_transient(e: &anyhow::Error) -> bool {
    for cause in e.chain() {
        if let Some(r) = cause.downcast_ref::<cdc_reader::ReaderError>() {
            return r.is_transient();
        }
        if let Some(s) = cause.downcast_ref::<sink::SinkError>() {
            return sink::apply::transient(s);
        }
        if let Some(p) = cause.downcast_ref::<tokio_postgres::Error>() {
            return sink::error::is_transient_pg_error(p);
        }
        if let Some(m) = cause.downcast_ref::<mysql_async::Error>() {
            return cdc_reader::error::is_transient_driver_error(m);
        }
    }
    false
}

pub(crate) fn error_kind(e: &anyhow::Error, transient: bool) -> ErrorKind {
    if e.chain()
        .any(|c| c.downcast_ref::<transform::TransformError>().is_some())
    {
        return ErrorKind::Transform;
    }
    let source = e
        .chain()
        .any(|c| c.downcast_ref::<cdc_reader::ReaderError>().is_some());
    match (source, transient) {
        (true, true) => ErrorKind::SourceTransient,
        (true, false) => ErrorKind::SourceDefinite,
        (false, true) => ErrorKind::TargetTransient,
        (false, false) => ErrorKind::TargetDefinite,
    }
}

/// The source's preflight checks (ROW format, privileges, …): the first failure, with its fix.
pub(crate) async fn preflight_source(ctx: &SyncContext) -> Result<()> {
    let mut pre = ctx.source.connect().await?;
    let report = cdc_reader::preflight::preflight(&mut pre, &Default::default()).await?;
    if let Some(e) = report.first_failure() {
        return Err(e.into());
    }
    let _ = pre.disconnect().await;
    Ok(())
}

/// The wait after a transient error of a run loop.
pub(crate) struct Retry {
    /// What the log says happens next.
    pub action: &'static str,
    /// How long the failed run ran (a minute of good running resets the backoff).
    pub ran: Duration,
    /// Longest backoff.
    pub max: Duration,
}

impl Retry {
    /// Counts and logs `e`, marks the pipeline retrying and waits `backoff` (then doubles it).
    /// Returns `false` when a stop was requested meanwhile.
    pub async fn wait(
        &self,
        ctx: &SyncContext,
        e: &anyhow::Error,
        backoff: &mut Duration,
        stop: &watch::Receiver<bool>,
    ) -> bool {
        ctx.metrics.error(error_kind(e, true));
        let msg = crate::exit::render(e);
        warn!(error = %msg, retry_in = ?*backoff, "{}", self.action);
        ctx.health.set(Phase::Retrying(msg));
        if self.ran > Duration::from_secs(60) {
            *backoff = Duration::from_millis(500);
        }
        let mut s = stop.clone();
        let stopped = tokio::select! {
            _ = tokio::time::sleep(*backoff) => false,
            _ = s.changed() => true,
        };
        *backoff = (*backoff * 2).min(self.max);
        !stopped
    }
}

/// Runs the pipeline until stopped: retries transient errors with backoff, returns definite
/// ones.
pub async fn run(ctx: SyncContext, opts: SyncOptions, stop: watch::Receiver<bool>) -> Result<Exit> {
    // The binlog runway (and the lag estimate without heartbeats), for the whole run: it
    // matters most while the pipeline is down or copying.
    let watcher = tokio::spawn(runway::run(ctx.clone(), stop.clone()));
    let result = run_pipeline(ctx, opts, stop).await;
    watcher.abort();
    result
}

async fn run_pipeline(
    ctx: SyncContext,
    opts: SyncOptions,
    stop: watch::Receiver<bool>,
) -> Result<Exit> {
    let max_backoff = Duration::from_secs(ctx.sync.retry_max_backoff_secs.max(1));
    let mut backoff = Duration::from_millis(500);
    let mut opts = opts;
    // Background verification: drift as a number for the alerts, at the configured pace.
    // It runs on a thread of its own (a current-thread runtime): a pass reads whole tables and
    // must not take the applier's worker threads.
    if ctx.verify.interval_secs > 0 && !opts.snapshot_only {
        let (vctx, vstop) = (ctx.clone(), stop.clone());
        let every = Duration::from_secs(ctx.verify.interval_secs);
        let cap = ctx.verify.max_rows_per_second;
        let spawned = std::thread::Builder::new()
            .name("my2pg-verify".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(verify_loop::run_limited(vctx, every, cap, vstop)),
                    Err(e) => warn!(error = %e, "background verification could not start"),
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "background verification could not start");
        }
    }
    loop {
        ctx.health.set(Phase::Starting);
        let started = Instant::now();
        match run_once(&ctx, &opts, stop.clone()).await {
            Ok(exit) => {
                if let Ok(Ok(pg)) =
                    tokio::time::timeout(Duration::from_secs(5), ctx.target.connect()).await
                {
                    let phase = match &exit {
                        Exit::Stopped => "stopped on request",
                        Exit::SnapshotOnly(_) => "copied (snapshot only)",
                    };
                    let _ = sink::state::record_phase(&pg, &ctx.pipeline, phase, None).await;
                }
                return Ok(exit);
            }
            Err(e) if is_transient(&e) && !*stop.borrow() => {
                let retry = Retry {
                    action: "pipeline interrupted; resuming from the checkpoint",
                    ran: started.elapsed(),
                    max: max_backoff,
                };
                if !retry.wait(&ctx, &e, &mut backoff, &stop).await {
                    return Ok(Exit::Stopped);
                }
                // A resnapshot requested on the command line was done by the failed run.
                opts.resnapshot.clear();
            }
            Err(e) => {
                ctx.metrics.error(error_kind(&e, false));
                ctx.health.stopped(e.as_ref());
                // For `my2pg status`: best effort (the target may be what failed).
                if let Ok(Ok(pg)) =
                    tokio::time::timeout(Duration::from_secs(5), ctx.target.connect()).await
                {
                    let msg = crate::exit::render(&e);
                    let _ =
                        sink::state::record_phase(&pg, &ctx.pipeline, "stopped", Some(&msg)).await;
                }
                return Err(e);
            }
        }
    }
}

async fn run_once(
    ctx: &SyncContext,
    opts: &SyncOptions,
    stop: watch::Receiver<bool>,
) -> Result<Exit> {
    if opts.via_kafka {
        return publish::run_once(ctx, opts, stop).await;
    }
    // The target's state and the source's checks and schemas are independent: side by side
    // (about 20 ms less before the copy starts).
    let (mut applier, tables) = tokio::try_join!(
        async {
            let client = ctx.target.connect().await?;
            let applier = Applier::new(
                client,
                ApplyConfig {
                    pipeline: ctx.pipeline.clone(),
                    no_key: ctx.sync.tables_without_key,
                    on_error: ctx.sync.on_error,
                    heartbeat_table: ctx.heartbeat_table.clone(),
                },
                ctx.targeting.clone(),
            )
            .await?;
            Ok::<_, anyhow::Error>(applier)
        },
        async {
            // Discovery only reads, so it runs beside the checks; a failed check is the
            // better error (it names the fix), so it wins over discovery's.
            let (checked, tables) = tokio::join!(preflight_source(ctx), discover(ctx));
            checked?;
            tables
        },
    )?;
    let targets = outputs(ctx, &tables)?;
    for t in &targets {
        applier.know(t.clone());
    }
    let mut copy = sink::snapshot::read(applier.client(), &ctx.pipeline).await?;
    // Tables to copy while streaming (see `live`).
    let mut live = Vec::new();
    ctx.health.set(Phase::Snapshotting);
    match applier.checkpoint().cloned() {
        None => {
            // Initial copy (or its resumption after a crash).
            let start = match &copy {
                Some(s) => s.start.clone(),
                None => {
                    let mut c = ctx.source.connect().await?;
                    let p = cdc_reader::snapshot::start_position(&mut c).await?;
                    sink::snapshot::begin(applier.client(), &ctx.pipeline, &p).await?;
                    p
                }
            };
            ctx.tracker.set_resume(&start);
            info!(position = %start, tables = tables.len(), "copying the selected tables");
            snapshot::copy_tables(ctx, copies(ctx, &tables)?, WriteMode::Copy).await?;
            let end = {
                let mut c = ctx.source.connect().await?;
                current_position(&mut c).await?
            };
            let pg = applier.client();
            pg.batch_execute("BEGIN").await?;
            sink::snapshot::copied(pg, &ctx.pipeline, &end).await?;
            sink::checkpoint::write(pg, &ctx.pipeline, None, &start, None, None, 0).await?;
            pg.batch_execute("COMMIT").await?;
            applier = Applier::new(
                ctx.target.connect().await?,
                applier_config(ctx),
                ctx.targeting.clone(),
            )
            .await?;
            for t in &targets {
                applier.know(t.clone());
            }
            copy = sink::snapshot::read(applier.client(), &ctx.pipeline).await?;
            info!(start = %start, end = %end, "copy finished; streaming replays from its start");
        }
        Some(cp) => {
            ctx.tracker.set_resume(&cp);
            // Tables new to the selection, and tables to copy again, are copied while the
            // applier keeps its position (see the snapshot module for why that is exact).
            let mut again = Vec::new();
            for t in &tables {
                let planned =
                    sink::snapshot::planned(applier.client(), &ctx.pipeline, &t.id).await?;
                let unfinished = planned.iter().any(|c| !c.done);
                if opts.resnapshot.contains(&t.id) && !unfinished {
                    prepare_recopy(ctx, applier.client(), t).await?;
                    again.push(t.clone());
                } else if planned.is_empty() || unfinished {
                    // New to the selection, or a copy an earlier run did not finish: its
                    // finished chunks are kept (also when the restart repeats
                    // `--resnapshot` for it).
                    again.push(t.clone());
                }
            }
            if !again.is_empty() {
                let pg = applier.client();
                if copy.is_none() {
                    sink::snapshot::begin(pg, &ctx.pipeline, &cp).await?;
                }
                let flavor = {
                    let mut c = ctx.source.connect().await?;
                    cdc_reader::preflight::ServerInfo::read(&mut c)
                        .await?
                        .flavor
                };
                if flavor == cdc_reader::preflight::Flavor::Mariadb && !opts.snapshot_only {
                    info!(checkpoint = %cp, tables = again.len(), "copying tables new to the selection, asked to be copied again or left unfinished, while streaming goes on");
                    live = again;
                } else {
                    // MySQL reports no snapshot positions (see `live`), and `--snapshot-only`
                    // does not stream: the copy runs before streaming resumes. Upserted, not
                    // COPYed: a copy interrupted while streaming went on left rows the applier
                    // wrote in its unfinished chunks.
                    info!(checkpoint = %cp, tables = again.len(), "copying tables new to the selection, asked to be copied again or left unfinished, then streaming");
                    snapshot::copy_tables(ctx, copies(ctx, &again)?, WriteMode::Upsert).await?;
                    let end = {
                        let mut c = ctx.source.connect().await?;
                        current_position(&mut c).await?
                    };
                    sink::snapshot::copied(pg, &ctx.pipeline, &end).await?;
                    copy = sink::snapshot::read(pg, &ctx.pipeline).await?;
                }
            }
        }
    }
    let from = applier
        .checkpoint()
        .cloned()
        .ok_or_else(|| anyhow!("no checkpoint after the copy"))?;
    if opts.snapshot_only {
        return Ok(Exit::SnapshotOnly(from));
    }
    let deferred_end = copy
        .filter(|c| c.phase == sink::snapshot::Phase::Copied)
        .and_then(|c| c.end);
    stream(ctx, &mut applier, from, deferred_end, live, stop).await
}

pub(crate) fn applier_config(ctx: &SyncContext) -> ApplyConfig {
    ApplyConfig {
        pipeline: ctx.pipeline.clone(),
        no_key: ctx.sync.tables_without_key,
        on_error: ctx.sync.on_error,
        heartbeat_table: ctx.heartbeat_table.clone(),
    }
}

/// Empties a table to copy it again: its secondary indexes and the foreign keys on or towards
/// it are dropped and deferred (they would trip over the replay, see `snapshot`), the rows go,
/// and the chunk plan is forgotten.
async fn prepare_recopy(
    ctx: &SyncContext,
    pg: &tokio_postgres::Client,
    t: &Arc<TableSchema>,
) -> Result<()> {
    let Some(out) = ctx.output(t)? else {
        return Ok(());
    };
    let m = ctx
        .targeting
        .with_naming(|n| n.map(out))
        .map_err(|source| sink::SinkError::Mapping { source })?;
    let rel = m.target.quoted();
    let rows = pg
        .query(
            "SELECT 'DROP INDEX ' || quote_ident(n.nspname) || '.' || quote_ident(ci.relname), pg_get_indexdef(i.indexrelid) \
             FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ci.relnamespace \
             WHERE i.indrelid = $1::text::regclass AND NOT i.indisprimary \
               AND NOT (i.indisunique AND $2) \
             UNION ALL \
             SELECT 'ALTER TABLE ' || c.conrelid::regclass::text || ' DROP CONSTRAINT ' || quote_ident(c.conname), \
                    'ALTER TABLE ' || c.conrelid::regclass::text || ' ADD CONSTRAINT ' || quote_ident(c.conname) || ' ' || pg_get_constraintdef(c.oid) \
             FROM pg_constraint c WHERE c.contype = 'f' AND (c.conrelid = $1::text::regclass OR c.confrelid = $1::text::regclass)",
            &[&rel, &!m.key_is_primary],
        )
        .await
        .with_context(|| format!("reading the indexes and foreign keys of {rel}"))?;
    pg.batch_execute("BEGIN").await?;
    let mut deferred = Vec::new();
    for r in &rows {
        let (drop, create): (String, String) = (r.get(0), r.get(1));
        pg.batch_execute(&drop)
            .await
            .with_context(|| drop.clone())?;
        deferred.push(create);
    }
    pg.batch_execute(&format!("TRUNCATE {rel}")).await?;
    sink::snapshot::forget(pg, &ctx.pipeline, &t.id).await?;
    sink::snapshot::defer_ddl(pg, &ctx.pipeline, &t.id, &deferred).await?;
    pg.batch_execute("COMMIT").await?;
    info!(table = %t.id, deferred = deferred.len(), "emptied for a new copy");
    Ok(())
}

async fn stream(
    ctx: &SyncContext,
    applier: &mut Applier,
    from: SourcePosition,
    mut deferred_end: Option<SourcePosition>,
    live: Vec<Arc<TableSchema>>,
    mut stop: watch::Receiver<bool>,
) -> Result<Exit> {
    // When nothing was written during the copy, the checkpoint already stands at the copy's
    // end: the deferred indexes and foreign keys are built now, not after the first binlog
    // event (a quiet source without heartbeats would otherwise never finish the snapshot).
    finish_copy_if_passed(ctx, applier, &mut deferred_end).await?;
    // Tables copied beside the applier: the copy runs as a task, ordered against the
    // applier through the gate; its end position arms the deferred DDL.
    let (gate, mut live_copy) = if live.is_empty() {
        (None, None)
    } else {
        let gate = live::Gate::new(&from);
        let (ctx, g) = (ctx.clone(), Arc::clone(&gate));
        let task = tokio::spawn(async move {
            snapshot::copy_tables_live(&ctx, copies(&ctx, &live)?, g).await?;
            let end = {
                let mut c = ctx.source.connect().await?;
                current_position(&mut c).await?
            };
            let pg = ctx.target.connect().await?;
            sink::snapshot::copied(&pg, &ctx.pipeline, &end).await?;
            info!(end = %end, "copy beside streaming finished; its indexes and keys follow once streaming passes its end");
            Ok::<SourcePosition, anyhow::Error>(end)
        });
        (Some(gate), Some(AbortOnDrop(task)))
    };
    let (tx, reader_rx) = mpsc::channel::<SourceTx>(ctx.sync.channel_capacity.max(1));
    // Between the reader and the applier sits a backlog bounded in bytes, not transactions:
    // while a batch applies, the reader keeps decoding into it, so the next batch can reach
    // `batch_rows` even when source transactions are small; the backlog holds at most
    // `batch_bytes` (one batch being applied, the next one being read).
    let budget_bytes = ctx.sync.batch_bytes.clamp(1 << 20, u32::MAX as usize);
    let budget = Arc::new(tokio::sync::Semaphore::new(budget_bytes));
    let (backlog_tx, mut rx) = mpsc::channel::<(SourceTx, u32)>(BACKLOG_TRANSACTIONS);
    let forwarder = tokio::spawn(forward(reader_rx, backlog_tx, budget.clone(), budget_bytes));
    let reader = ctx.reader();
    let max_backoff = Duration::from_secs(ctx.sync.retry_max_backoff_secs.max(1));
    let reader_task =
        tokio::spawn(async move { reader.run_resilient(from, &tx, max_backoff).await });
    let (hb_stop_tx, hb_stop) = watch::channel(false);
    let mut hb_task = None;
    match &ctx.heartbeat_table {
        Some(table) if heartbeat::ensure_table(&ctx.source, table).await => {
            let interval = Duration::from_millis(ctx.sync.heartbeat_interval_ms);
            ctx.metrics.set_heartbeat_interval(Some(interval));
            hb_task = Some(tokio::spawn(heartbeat::run(
                ctx.source.clone(),
                table.clone(),
                ctx.pipeline.clone(),
                interval,
                hb_stop,
            )));
        }
        _ => ctx.metrics.set_heartbeat_interval(None),
    }
    ctx.health.set(Phase::Streaming);
    sink::state::record_phase(applier.client(), &ctx.pipeline, "streaming", None).await?;
    ctx.metrics.set_streaming(true);
    let mut lp = Loop {
        rx: &mut rx,
        budget: &budget,
        deferred_end: &mut deferred_end,
        stop: &mut stop,
        gate_rx: gate.as_ref().map(|g| g.subscribe()),
        gate,
        live_copy: &mut live_copy,
    };
    let result = apply_loop(ctx, applier, &mut lp).await;
    drop(live_copy);
    ctx.metrics.set_streaming(false);
    let _ = hb_stop_tx.send(true);
    drop(rx);
    forwarder.abort();
    if let Some(h) = hb_task {
        let _ = h.await;
    }
    applier.rollback().await;
    // The reader keeps nothing that needs flushing; when the apply loop ended for another
    // reason than the reader ending, stop it now (an idle stream would only notice the closed
    // channel on its next event, and would meanwhile reconnect to a source being shut down).
    if !matches!(result, Ok(None)) {
        reader_task.abort();
    }
    let reader_result = match tokio::time::timeout(Duration::from_secs(10), reader_task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.is_cancelled() => Ok(()),
        Ok(Err(e)) => Err(cdc_reader::ReaderError::StreamLost { source: None })
            .with_context(|| format!("reader task: {e}"))?,
        Err(_) => Ok(()),
    };
    match result {
        Ok(Some(exit)) => Ok(exit),
        Ok(None) => {
            reader_result?;
            Err(anyhow!(cdc_reader::ReaderError::StreamLost {
                source: None
            }))
        }
        Err(e) => Err(e),
    }
}

/// Most source transactions waiting between reader and applier (the byte budget usually
/// binds first; this bounds the count of tiny ones).
const BACKLOG_TRANSACTIONS: usize = 100_000;

/// Moves transactions from the reader into the backlog, each once its bytes fit the budget.
async fn forward(
    mut from: mpsc::Receiver<SourceTx>,
    to: mpsc::Sender<(SourceTx, u32)>,
    budget: Arc<tokio::sync::Semaphore>,
    max: usize,
) {
    while let Some(t) = from.recv().await {
        // A transaction larger than the whole budget passes alone.
        let n = u32::try_from(t.approx_bytes().clamp(1, max)).unwrap_or(u32::MAX);
        match budget.acquire_many(n).await {
            Ok(p) => p.forget(),
            Err(_) => return,
        }
        if to.send((t, n)).await.is_err() {
            return;
        }
    }
}

/// Aborts a task when dropped (a copy beside streaming ends with the stream).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the apply loop works with.
struct Loop<'a> {
    rx: &'a mut mpsc::Receiver<(SourceTx, u32)>,
    budget: &'a tokio::sync::Semaphore,
    deferred_end: &'a mut Option<SourcePosition>,
    stop: &'a mut watch::Receiver<bool>,
    /// Set while tables are copied beside the applier.
    gate: Option<Arc<live::Gate>>,
    /// The gate's changes, while a gate is set.
    gate_rx: Option<watch::Receiver<u64>>,
    live_copy: &'a mut Option<AbortOnDrop<Result<SourcePosition>>>,
}

/// What the apply loop waits for.
enum Next {
    Tx(SourceTx, u32),
    ReaderEnded,
    Stopped,
    /// The gate or the copy beside streaming changed.
    Recheck,
}

impl Loop<'_> {
    /// Marks the gate's current state as seen: a change after this wakes [`Loop::next`].
    fn mark_seen(&mut self) {
        if let Some(r) = self.gate_rx.as_mut() {
            r.borrow_and_update();
        }
    }

    /// Waits for a transaction (unless one waits for the gate), a stop, a change of the gate
    /// since [`Loop::mark_seen`], or the end of the copy beside streaming.
    async fn next(&mut self, waiting_for_gate: bool) -> Result<Next> {
        let (rx, stop, gate_rx, live_copy) = (
            &mut *self.rx,
            &mut *self.stop,
            &mut self.gate_rx,
            &mut *self.live_copy,
        );
        let gate_changed = async {
            match gate_rx.as_mut() {
                Some(r) if waiting_for_gate => {
                    let _ = r.changed().await;
                }
                _ => std::future::pending().await,
            }
        };
        let copy_done = async {
            match live_copy.as_mut() {
                Some(t) => (&mut t.0).await,
                None => std::future::pending().await,
            }
        };
        let copied = tokio::select! {
            msg = rx.recv(), if !waiting_for_gate => return Ok(match msg {
                Some((t, n)) => Next::Tx(t, n),
                None => Next::ReaderEnded,
            }),
            _ = stop.changed() => return Ok(Next::Stopped),
            () = gate_changed => return Ok(Next::Recheck),
            r = copy_done => r,
        };
        *self.live_copy = None;
        let end = copied.map_err(|e| anyhow!("the copy beside streaming failed: {e}"))??;
        *self.deferred_end = Some(end);
        // No chunk holds the applier any more.
        self.gate = None;
        self.gate_rx = None;
        Ok(Next::Recheck)
    }

    fn admits(&self, t: &SourceTx) -> bool {
        self.gate.as_ref().is_none_or(|g| g.try_admit(t))
    }
}

/// Batches and applies until stopped (`Ok(Some)`), the reader ends (`Ok(None)`), or an error.
async fn apply_loop(
    ctx: &SyncContext,
    applier: &mut Applier,
    lp: &mut Loop<'_>,
) -> Result<Option<Exit>> {
    // A transaction the gate did not admit yet (a chunk copied beside streaming holds it).
    let mut waiting: Option<(SourceTx, u32)> = None;
    // Held while the applier's PostgreSQL transaction is open, when a gate is set.
    let mut writing: Option<tokio::sync::OwnedRwLockWriteGuard<()>> = None;
    loop {
        if *lp.stop.borrow() {
            return Ok(Some(Exit::Stopped));
        }
        lp.mark_seen();
        let (first, held) = match waiting.take() {
            Some((t, n)) if lp.admits(&t) => (t, n),
            w => {
                let blocked = w.is_some();
                waiting = w;
                match lp.next(blocked).await? {
                    Next::Tx(t, n) if lp.admits(&t) => (t, n),
                    Next::Tx(t, n) => {
                        waiting = Some((t, n));
                        continue;
                    }
                    Next::ReaderEnded => return Ok(None),
                    Next::Stopped => return Ok(Some(Exit::Stopped)),
                    Next::Recheck => {
                        finish_copy_if_passed(ctx, applier, lp.deferred_end).await?;
                        continue;
                    }
                }
            }
        };
        let mut held = held as usize;
        let first = ctx.transforms.apply(first)?;
        let mut rows = first.row_count();
        let mut bytes = first.approx_bytes();
        let mut batch = vec![first];
        // Take what is ready, never wait: a quiet source gets one-transaction batches (low
        // lag), a busy one large batches (throughput). A non-final fragment ends the batch.
        while rows < ctx.sync.batch_rows
            && bytes < ctx.sync.batch_bytes
            && batch.last().is_some_and(|t| t.fragment.last)
        {
            match lp.rx.try_recv() {
                Ok((t, n)) if lp.admits(&t) => {
                    held += n as usize;
                    let t = ctx.transforms.apply(t)?;
                    rows += t.row_count();
                    bytes += t.approx_bytes();
                    batch.push(t);
                }
                Ok(t) => {
                    waiting = Some(t);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(g) = &lp.gate
            && writing.is_none()
        {
            writing = Some(Arc::clone(&g.writes).write_owned().await);
        }
        let open_after = batch.last().is_some_and(|t| !t.fragment.last);
        let started = Instant::now();
        let outcome = applier.apply(batch).await;
        lp.budget.add_permits(held);
        let outcome = outcome?;
        if !open_after {
            // The transaction committed: chunks may write again.
            writing = None;
        }
        let now = SystemTime::now();
        ctx.metrics.apply_batch_finished(started.elapsed());
        ctx.metrics.transactions_applied(outcome.transactions);
        if outcome.dead_letters > 0 {
            ctx.metrics
                .errors(ErrorKind::DeadLetter, outcome.dead_letters);
        }
        for (table, op, n) in &outcome.rows {
            ctx.metrics.row_events_applied(table, *op, *n);
        }
        if let Some(ms) = outcome.last_commit_ms {
            ctx.metrics
                .event_applied(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64));
        }
        if let Some(hb) = outcome.heartbeat {
            ctx.metrics.heartbeat_applied(hb, now);
        }
        if let Some(cp) = applier.checkpoint() {
            ctx.tracker.set_resume(cp);
        }
        finish_copy_if_passed(ctx, applier, lp.deferred_end).await?;
    }
}

/// Builds the unique indexes and foreign keys deferred past the copy once the applied
/// checkpoint stands at or after the copy's end, and forgets that end.
async fn finish_copy_if_passed(
    ctx: &SyncContext,
    applier: &Applier,
    deferred_end: &mut Option<SourcePosition>,
) -> Result<()> {
    if let (Some(end), Some(cp)) = (deferred_end.as_ref(), applier.checkpoint())
        && snapshot::run_deferred_ddl(applier.client(), &ctx.pipeline, cp, end).await?
    {
        *deferred_end = None;
    }
    Ok(())
}

/// The position as the operator needs it after `--snapshot-only`.
pub fn describe_exit(exit: &Exit) -> String {
    match exit {
        Exit::Stopped => "stopped; the checkpoint is committed".into(),
        Exit::SnapshotOnly(p) => format!("copy finished; `my2pg sync` will stream from {p}"),
    }
}
