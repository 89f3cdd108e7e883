//! Applying source transactions to PostgreSQL with exactly-once effect.
//!
//! **Contract.** [`Applier::apply`] takes whole source transactions in source order (the last
//! one may be a non-final fragment of a large transaction, see `schemas::change`). It applies
//! them in one PostgreSQL transaction and, in that same transaction, stores the position after
//! the last whole source transaction as the checkpoint. A source transaction is therefore on
//! the target entirely or not at all, together with the position that says so. Re-applying a
//! transaction at or below the stored checkpoint is a no-op (it is skipped by its GTID or
//! position). Returns what is now durable.
//!
//! **Fragments.** When a batch ends with a non-final fragment, the PostgreSQL transaction stays
//! open and the call returns without committing; the following calls continue it until the
//! final fragment arrives, then commit rows and checkpoint together. Memory holds one fragment
//! at a time.
//!
//! **Order.** Within a batch, row changes are collapsed per key (see [`batch`]) and applied per
//! table, deletes before upserts. That is not the source's statement order, which is why
//! foreign keys are created `DEFERRABLE INITIALLY DEFERRED` (checked at commit, when the whole
//! source transactions are in). A schema change is a barrier: the rows before it are written,
//! then its translated DDL runs (recorded in `my2pg.schema_history`), then the rows after it.
//! If the set-based write fails for a reason that depends on the data (a transient unique
//! violation between collapsed rows, a value the target rejects), the batch is rolled back and
//! applied again row by row in source order with a savepoint per row, which either succeeds
//! (the source's own order is valid) or names the exact row that fails — and, with the
//! dead-letter policy, records it in `my2pg.dead_letter` and goes on.

pub mod batch;
pub mod stage;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use schemas::change::{Change, DdlChange, RowChange, TxGtid};
use schemas::mapping::MappingOptions;
use schemas::{
    ChangeOp, PgValue, SourcePosition, SourceTx, TableId, TableMapping, TableSchema, Value,
};
use tokio_postgres::Client;
use tracing::{debug, info, warn};

use crate::binary::{param_refs, params};
use crate::checkpoint;
use crate::ddl::{Naming, stream::DdlDecision};
use crate::error::{Result, SinkError, is_transient_pg_error};
use crate::kafka::offsets::{Consumed, Fence};
use crate::state;
use batch::{OPS, TableOps};

/// What to do with a table that has neither a primary key nor a NOT NULL unique key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoKeyPolicy {
    /// Stop with a message naming the table (default: a keyless table cannot be updated or
    /// deleted exactly when it holds duplicate rows).
    #[default]
    Stop,
    /// Match rows on the full before image (one matching row per change).
    MatchFullRow,
}

/// What to do with a change the target rejects for a reason in the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorPolicy {
    /// Stop the pipeline, leaving the checkpoint before the failed transaction.
    #[default]
    Stop,
    /// Record the change in `my2pg.dead_letter`, skip it, and go on (counted and alerted).
    DeadLetter,
}

/// Applier settings.
#[derive(Debug, Clone)]
pub struct ApplyConfig {
    /// Pipeline name (key of the checkpoint).
    pub pipeline: String,
    /// Tables without a key.
    pub no_key: NoKeyPolicy,
    /// Rejected changes.
    pub on_error: ErrorPolicy,
    /// The source table my2pg's heartbeat writer updates (its rows are not applied as data).
    pub heartbeat_table: Option<TableId>,
}

/// Target names: the mapping options, the database → schema map, and the selection.
#[derive(Clone)]
pub struct Targeting {
    /// `[mapping]`.
    pub options: MappingOptions,
    /// MySQL database → PostgreSQL schema (missing: the name folded like every identifier).
    pub schema_map: BTreeMap<String, String>,
    /// Whether a source table is migrated.
    pub migrated: Arc<dyn Fn(&TableId) -> bool + Send + Sync>,
}

impl std::fmt::Debug for Targeting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Targeting")
            .field("schema_map", &self.schema_map)
            .finish_non_exhaustive()
    }
}

impl Targeting {
    /// The PostgreSQL schema of a MySQL database: its `schema_map` entry, else its name folded
    /// under `identifiers` (database `Shop` becomes schema `shop`, like its tables).
    pub fn schema_of(&self, db: &str) -> String {
        self.schema_map
            .get(db)
            .cloned()
            .unwrap_or_else(|| self.options.fold(db))
    }

    /// Runs `f` with a [`Naming`] view.
    pub fn with_naming<R>(&self, f: impl FnOnce(&Naming<'_>) -> R) -> R {
        let schema = |db: &str| self.schema_of(db);
        let naming = Naming {
            options: &self.options,
            target_schema: &schema,
            migrated: &*self.migrated,
        };
        f(&naming)
    }
}

/// What one call made durable.
#[derive(Debug, Clone, Default)]
pub struct ApplyOutcome {
    /// Whether the call committed (false: a large transaction is still open).
    pub committed: bool,
    /// Source transactions committed by this call.
    pub transactions: u64,
    /// Row changes committed, by table and operation.
    pub rows: Vec<(TableId, ChangeOp, u64)>,
    /// Source time of the newest heartbeat applied.
    pub heartbeat: Option<SystemTime>,
    /// Commit time (ms) of the newest source transaction applied.
    pub last_commit_ms: Option<i64>,
    /// Changes sent to the dead-letter table.
    pub dead_letters: u64,
    /// The checkpoint after the call.
    pub checkpoint: Option<SourcePosition>,
}

/// A change rejected for a reason in the data.
#[derive(Debug, Clone)]
struct Rejected {
    position: SourcePosition,
    gtid: Option<String>,
    table: TableId,
    key: String,
    error: String,
    hint: Option<String>,
}

/// Writes source transactions into PostgreSQL; see the module documentation.
pub struct Applier {
    client: Client,
    config: ApplyConfig,
    targeting: Targeting,
    mappings: HashMap<usize, (Arc<TableSchema>, Arc<TableMapping>)>,
    known: HashMap<TableId, Arc<TableSchema>>,
    stages: HashSet<String>,
    checkpoint: Option<SourcePosition>,
    open: bool,
    /// On the Kafka path: the consumed offsets, committed instead of the checkpoint.
    consuming: Option<Consuming>,
}

/// The Kafka path's progress: the fence, and where each transaction of the batch came from.
#[derive(Debug)]
struct Consuming {
    fence: Fence,
    /// The messages of each transaction of the batch being applied.
    batch: Vec<Vec<Consumed>>,
    /// The messages of the non-final fragments applied in the open PostgreSQL transaction:
    /// their offsets commit with the final fragment.
    carried: Vec<Consumed>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("pipeline", &self.config.pipeline)
            .field("checkpoint", &self.checkpoint)
            .finish()
    }
}

fn q(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SinkError {
    let what = what.into();
    move |source| SinkError::Query { what, source }
}

/// How many mappings to keep before forgetting them (one per table schema version).
const MAPPING_CACHE: usize = 4096;

impl Applier {
    /// Prepares `client` for applying: the state schema, the session settings, the checkpoint.
    pub async fn new(client: Client, config: ApplyConfig, targeting: Targeting) -> Result<Applier> {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(q("starting the state migration"))?;
        state::ensure_state(&client).await?;
        client
            .batch_execute("COMMIT")
            .await
            .map_err(q("committing the state migration"))?;
        // `my2pg.applying` keeps the ON UPDATE CURRENT_TIMESTAMP triggers from overwriting the
        // source's values; the rest keeps long batches from being cut by session limits.
        client
            .batch_execute(
                "SET my2pg.applying = 'on'; SET statement_timeout = 0; SET lock_timeout = 0; \
                 SET idle_in_transaction_session_timeout = 0",
            )
            .await
            .map_err(q("setting up the apply session"))?;
        let checkpoint = checkpoint::read(&client, &config.pipeline)
            .await?
            .map(|c| c.position);
        Ok(Applier {
            client,
            config,
            targeting,
            mappings: HashMap::new(),
            known: HashMap::new(),
            stages: HashSet::new(),
            checkpoint,
            open: false,
            consuming: None,
        })
    }

    /// Switches to the Kafka path: batches come from [`Applier::apply_consumed`] and commit the
    /// consumed offsets (`crate::kafka::offsets`) instead of a source checkpoint, which has no
    /// meaning across independently consumed partitions.
    pub fn consuming(mut self, fence: Fence) -> Applier {
        self.checkpoint = None;
        self.consuming = Some(Consuming {
            fence,
            batch: Vec::new(),
            carried: Vec::new(),
        });
        self
    }

    /// The fence of the Kafka path (to record assignments).
    pub fn fence_mut(&mut self) -> Option<&mut Fence> {
        self.consuming.as_mut().map(|c| &mut c.fence)
    }

    /// Applies messages consumed from Kafka: `batch[i]` came from the messages `consumed[i]`
    /// (one message per transaction in the per-table mode, a whole source transaction's in the
    /// transactional mode). Rows and the partitions' next offsets commit together; when the
    /// batch ends with a non-final fragment, its offsets wait for the final one. See
    /// [`Applier::apply`] for the rest.
    pub async fn apply_consumed(
        &mut self,
        batch: Vec<SourceTx>,
        consumed: Vec<Vec<Consumed>>,
    ) -> Result<ApplyOutcome> {
        if let Some(c) = self.consuming.as_mut() {
            c.batch = consumed;
        }
        let result = self.apply(batch).await;
        match &result {
            // A fenced commit leaves its transaction open: its rows must not stay.
            Err(_) => self.rollback().await,
            Ok(o) if !o.committed => {
                if let Some(c) = self.consuming.as_mut() {
                    let held = std::mem::take(&mut c.batch);
                    c.carried.extend(held.into_iter().flatten());
                }
            }
            Ok(_) => {}
        }
        result
    }

    /// The durable checkpoint.
    pub fn checkpoint(&self) -> Option<&SourcePosition> {
        self.checkpoint.as_ref()
    }

    /// The connection (for callers that share it between batches, e.g. the snapshot).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Records the schema a table had before streaming starts (from the snapshot), so that
    /// the first DDL can be translated.
    pub fn know(&mut self, schema: Arc<TableSchema>) {
        self.known.insert(schema.id.clone(), schema);
    }

    fn already_applied(&self, tx: &SourceTx) -> bool {
        let Some(cp) = &self.checkpoint else {
            return false;
        };
        match (&tx.gtid, cp) {
            (Some(TxGtid::Maria(g)), SourcePosition::MariaGtid { pos, .. }) => pos.contains_gtid(g),
            (Some(TxGtid::Mysql(g)), SourcePosition::MysqlGtid { executed, .. }) => {
                executed.contains_gtid(g)
            }
            _ => {
                tx.fragment.index == 0
                    && tx.fragment.last
                    && cp.is_at_or_after(&tx.position) == Some(true)
            }
        }
    }

    /// The mapping for a row's schema (cached by schema identity).
    fn mapping(&mut self, schema: &Arc<TableSchema>) -> Result<Arc<TableMapping>> {
        let key = Arc::as_ptr(schema) as usize;
        if let Some((_, m)) = self.mappings.get(&key) {
            return Ok(m.clone());
        }
        let m = self
            .targeting
            .with_naming(|n| n.map(schema.clone()))
            .map_err(|source| SinkError::Mapping { source })?;
        if m.key.is_empty() && self.config.no_key == NoKeyPolicy::Stop {
            return Err(SinkError::NoKey {
                table: schema.id.clone(),
            });
        }
        if self.mappings.len() > MAPPING_CACHE {
            self.mappings.clear();
        }
        let m = Arc::new(m);
        self.mappings.insert(key, (schema.clone(), m.clone()));
        self.known
            .entry(schema.id.clone())
            .or_insert_with(|| schema.clone());
        Ok(m)
    }

    async fn begin(&mut self) -> Result<()> {
        if !self.open {
            self.client
                .batch_execute("BEGIN")
                .await
                .map_err(q("starting an apply transaction"))?;
            self.open = true;
        }
        Ok(())
    }

    /// Rolls back an open transaction (after an error, or on the Kafka path when the
    /// partition of an unfinished source transaction is given up).
    pub async fn rollback(&mut self) {
        if let Some(c) = self.consuming.as_mut() {
            c.carried.clear();
        }
        if self.open {
            let _ = self.client.batch_execute("ROLLBACK").await;
            self.open = false;
        }
    }

    /// Applies `batch`; see the module documentation.
    pub async fn apply(&mut self, batch: Vec<SourceTx>) -> Result<ApplyOutcome> {
        let batch: Vec<SourceTx> = batch
            .into_iter()
            .filter(|tx| !self.already_applied(tx))
            .collect();
        if batch.is_empty() {
            return Ok(ApplyOutcome {
                committed: !self.open,
                checkpoint: self.checkpoint.clone(),
                ..Default::default()
            });
        }
        let fragmented = self.open || batch.iter().any(|t| !t.fragment.last);
        self.begin().await?;
        match self.apply_fast(&batch).await {
            Ok(mut outcome) => {
                if batch.last().is_some_and(|t| t.fragment.last) {
                    self.finish(&batch, &mut outcome).await?;
                }
                Ok(outcome)
            }
            Err(e) if e.is_transient() || fragmented => {
                // Fragments of a huge transaction are not kept for a replay: a definite error
                // there stops with the statement's message.
                self.rollback().await;
                Err(e)
            }
            Err(e) => {
                debug!(error = %e, "set-based apply failed; retrying the batch row by row");
                self.rollback().await;
                self.begin().await?;
                let mut outcome = self.apply_slow(&batch).await?;
                self.finish(&batch, &mut outcome).await?;
                Ok(outcome)
            }
        }
    }

    /// Writes the checkpoint of the last whole transaction and commits.
    async fn finish(&mut self, batch: &[SourceTx], outcome: &mut ApplyOutcome) -> Result<()> {
        let Some(last) = batch.iter().rev().find(|t| t.fragment.last) else {
            return Ok(());
        };
        let whole = batch.iter().filter(|t| t.fragment.last).count() as i64;
        if let Some(c) = self.consuming.as_mut() {
            let mut done = std::mem::take(&mut c.carried);
            for m in c.batch.iter().take(batch.len()) {
                done.extend(m.iter().cloned());
            }
            let advanced = c.fence.advance(&self.client, &done).await?;
            self.client
                .batch_execute("COMMIT")
                .await
                .map_err(q("committing an apply transaction"))?;
            self.open = false;
            c.fence.confirm(advanced);
            outcome.committed = true;
            outcome.transactions = whole as u64;
            outcome.last_commit_ms = Some(last.commit_time_ms);
            return Ok(());
        }
        let gtid = last.gtid.as_ref().map(ToString::to_string);
        checkpoint::write(
            &self.client,
            &self.config.pipeline,
            self.checkpoint.as_ref(),
            &last.position,
            gtid.as_deref(),
            Some(last.commit_time_ms),
            whole,
        )
        .await?;
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(q("committing an apply transaction"))?;
        self.open = false;
        self.checkpoint = Some(last.position.clone());
        outcome.committed = true;
        outcome.transactions = whole as u64;
        outcome.last_commit_ms = Some(last.commit_time_ms);
        outcome.checkpoint = self.checkpoint.clone();
        Ok(())
    }

    fn is_heartbeat(&self, t: &TableId) -> bool {
        self.config.heartbeat_table.as_ref() == Some(t)
    }

    /// Source time written in a heartbeat row (column `ts`, DATETIME(6) in UTC).
    fn heartbeat_time(r: &RowChange) -> Option<SystemTime> {
        let row = r.after.as_ref()?;
        let i = r.table.column_index("ts")?;
        match row.get(i)? {
            Value::DateTime(dt) => {
                let ts = schemas::value::Timestamp::from_utc(dt);
                Some(
                    UNIX_EPOCH
                        + Duration::from_secs(ts.secs.max(0) as u64)
                        + Duration::from_micros(u64::from(ts.micros)),
                )
            }
            Value::Timestamp(ts) => Some(
                UNIX_EPOCH
                    + Duration::from_secs(ts.secs.max(0) as u64)
                    + Duration::from_micros(u64::from(ts.micros)),
            ),
            _ => None,
        }
    }

    async fn record_heartbeat(&self, at: SystemTime) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO my2pg.heartbeat (pipeline, source_time, applied_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (pipeline) DO UPDATE SET source_time = EXCLUDED.source_time, applied_at = EXCLUDED.applied_at",
                &[&self.config.pipeline, &at],
            )
            .await
            .map_err(q("recording a heartbeat"))?;
        Ok(())
    }

    /// The set-based path: collapse per key, write per table, DDL as barriers.
    async fn apply_fast(&mut self, batch: &[SourceTx]) -> Result<ApplyOutcome> {
        let mut outcome = ApplyOutcome::default();
        let mut pending: Vec<TableOps> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for tx in batch {
            for change in &tx.changes {
                match change {
                    Change::Row(r) if self.is_heartbeat(&r.table.id) => {
                        if let Some(t) = Self::heartbeat_time(r) {
                            outcome.heartbeat = Some(outcome.heartbeat.map_or(t, |h| h.max(t)));
                        }
                    }
                    Change::Row(r) => {
                        let m = self.mapping(&r.table)?;
                        let before = r.before.as_ref().map(|b| m.convert_row(b)).transpose()?;
                        let after = r.after.as_ref().map(|a| m.convert_row(a)).transpose()?;
                        let name = m.target.quoted();
                        let i = *index.entry(name).or_insert_with(|| {
                            pending.push(TableOps::new(m.clone()));
                            pending.len() - 1
                        });
                        // A schema change since the ops were opened gives a new mapping.
                        if !Arc::ptr_eq(&pending[i].mapping, &m) {
                            self.flush(&mut pending, &mut outcome).await?;
                            index.clear();
                            index.insert(m.target.quoted(), 0);
                            pending.push(TableOps::new(m.clone()));
                            pending[0].push(r.op, before, after);
                            continue;
                        }
                        pending[i].push(r.op, before, after);
                    }
                    Change::Ddl(d) => {
                        self.flush(&mut pending, &mut outcome).await?;
                        index.clear();
                        self.apply_ddl(d, &tx.position).await?;
                    }
                }
            }
        }
        self.flush(&mut pending, &mut outcome).await?;
        if let Some(t) = outcome.heartbeat {
            self.record_heartbeat(t).await?;
        }
        Ok(outcome)
    }

    /// Writes the collapsed operations: deletes of every table, then upserts.
    async fn flush(
        &mut self,
        pending: &mut Vec<TableOps>,
        outcome: &mut ApplyOutcome,
    ) -> Result<()> {
        for ops in pending.iter_mut() {
            if !ops.unkeyed.is_empty() {
                self.apply_unkeyed(ops).await?;
            }
        }
        let mut upserts = Vec::with_capacity(pending.len());
        for ops in pending.iter_mut() {
            let (deletes, rows) = ops.split();
            if deletes.is_empty() && rows.is_empty() {
                upserts.push(Vec::new());
                continue;
            }
            stage::ensure(&self.client, &ops.mapping, &mut self.stages).await?;
            stage::delete(&self.client, &ops.mapping, &deletes).await?;
            upserts.push(rows);
        }
        for (ops, rows) in pending.iter().zip(upserts) {
            stage::upsert(&self.client, &ops.mapping, &rows).await?;
            for (i, n) in ops.counts.iter().enumerate() {
                if *n > 0 {
                    outcome
                        .rows
                        .push((ops.mapping.source_id.clone(), OPS[i], *n));
                }
            }
        }
        pending.clear();
        Ok(())
    }

    /// Changes of a table without a key, in order, matching full rows.
    async fn apply_unkeyed(&self, ops: &mut TableOps) -> Result<()> {
        let m = &ops.mapping;
        let insert = stage::upsert_one_sql(m);
        let delete = stage::delete_full_row_sql(m);
        for c in ops.unkeyed.drain(..) {
            if let Some(b) = &c.before
                && matches!(c.op, ChangeOp::Update | ChangeOp::Delete)
            {
                let p = params(b);
                self.client
                    .execute(&delete, &param_refs(&p))
                    .await
                    .map_err(q(format!("deleting from {}", m.target)))?;
            }
            if let Some(a) = &c.after {
                let p = params(a);
                self.client
                    .execute(&insert, &param_refs(&p))
                    .await
                    .map_err(q(format!("inserting into {}", m.target)))?;
            }
        }
        Ok(())
    }

    /// Translates and runs a schema change, recording it in `my2pg.schema_history`.
    async fn apply_ddl(&mut self, d: &DdlChange, position: &SourcePosition) -> Result<()> {
        // my2pg's own heartbeat table is read for its rows, never migrated: its DDL (sync
        // creates it on the source) has no place on the target.
        let filtered;
        let d = if d.tables.iter().any(|(id, _)| self.is_heartbeat(id)) {
            let tables: Vec<_> = d
                .tables
                .iter()
                .filter(|(id, _)| !self.is_heartbeat(id))
                .cloned()
                .collect();
            if tables.is_empty() {
                return Ok(());
            }
            filtered = DdlChange {
                tables,
                ..d.clone()
            };
            &filtered
        } else {
            d
        };
        let known = self.known.clone();
        let translation = self.targeting.with_naming(|n| {
            crate::ddl::stream::translate_ddl(d, &|id: &TableId| known.get(id).cloned(), n)
        });
        if let DdlDecision::Stop { reason, hint } = &translation.decision {
            return Err(SinkError::Ddl {
                statement: d.statement.clone(),
                reason: reason.clone(),
                hint: hint.clone(),
            });
        }
        let apply = matches!(translation.decision, DdlDecision::Apply);
        if apply {
            for s in &translation.statements {
                self.client
                    .batch_execute(s)
                    .await
                    .map_err(q(format!("running DDL {s}")))?;
            }
        }
        for (id, after) in &d.tables {
            // Staging tables of the old shape must go.
            if let Some(old) = self.known.get(id).cloned()
                && let Ok(m) = self.targeting.with_naming(|n| n.map(old))
            {
                stage::forget(&self.client, &m, &mut self.stages).await?;
            }
            let applied: Vec<String> = translation
                .steps
                .iter()
                .filter(|s| &s.table == id)
                .flat_map(|s| s.statements.clone())
                .collect();
            state::record_schema_history(
                &self.client,
                &state::SchemaHistoryEntry {
                    source_table: id.clone(),
                    position: Some(position.to_string()),
                    statement: d.statement.clone(),
                    decision: if apply {
                        "apply".into()
                    } else {
                        "ignore".into()
                    },
                    applied,
                    schema: after.as_deref().cloned(),
                },
            )
            .await?;
            match after {
                Some(s) => {
                    self.known.insert(id.clone(), s.clone());
                }
                None => {
                    self.known.remove(id);
                }
            }
        }
        self.mappings.clear();
        info!(statement = %d.statement, decision = if apply { "apply" } else { "ignore" }, "schema change");
        Ok(())
    }

    /// The row-by-row path: every change in source order under its own savepoint; a change the
    /// target rejects is reported with its table and key (stop) or recorded (dead letter).
    async fn apply_slow(&mut self, batch: &[SourceTx]) -> Result<ApplyOutcome> {
        let mut outcome = ApplyOutcome::default();
        let mut counts: BTreeMap<(TableId, usize), u64> = BTreeMap::new();
        for (k, tx) in batch.iter().enumerate() {
            self.client
                .batch_execute("SAVEPOINT my2pg_tx")
                .await
                .map_err(q("opening a savepoint"))?;
            for change in &tx.changes {
                match change {
                    Change::Row(r) if self.is_heartbeat(&r.table.id) => {
                        if let Some(t) = Self::heartbeat_time(r) {
                            outcome.heartbeat = Some(outcome.heartbeat.map_or(t, |h| h.max(t)));
                        }
                    }
                    Change::Row(r) => {
                        let m = self.mapping(&r.table)?;
                        match self.apply_one(&m, r).await {
                            Ok(()) => {
                                *counts
                                    .entry((r.table.id.clone(), batch::op_index(r.op)))
                                    .or_default() += 1
                            }
                            Err(rej) => {
                                let rej = Rejected {
                                    position: tx.position.clone(),
                                    gtid: tx.gtid.as_ref().map(ToString::to_string),
                                    ..*rej
                                };
                                if matches!(self.config.on_error, ErrorPolicy::Stop) {
                                    // The transactions before this one are good: they commit
                                    // with their checkpoint, so a restart after the fix
                                    // resumes exactly at the rejected transaction.
                                    self.client
                                        .batch_execute("ROLLBACK TO SAVEPOINT my2pg_tx")
                                        .await
                                        .map_err(q("rolling back a rejected transaction"))?;
                                    let done = &batch[..k];
                                    if done.iter().any(|t| t.fragment.last) {
                                        self.finish(done, &mut outcome).await?;
                                    }
                                }
                                self.reject(rej, r).await?;
                                outcome.dead_letters += 1;
                            }
                        }
                    }
                    Change::Ddl(d) => self.apply_ddl(d, &tx.position).await?,
                }
            }
        }
        if let Some(t) = outcome.heartbeat {
            self.record_heartbeat(t).await?;
        }
        outcome.rows = counts
            .into_iter()
            .map(|((t, i), n)| (t, OPS[i], n))
            .collect();
        Ok(outcome)
    }

    async fn apply_one(
        &self,
        m: &Arc<TableMapping>,
        r: &RowChange,
    ) -> std::result::Result<(), Box<Rejected>> {
        let key = |row: &schemas::Row| m.render_key(row);
        let reject = |row: &schemas::Row, error: String, hint: Option<String>| {
            Box::new(Rejected {
                position: SourcePosition::File(schemas::BinlogCoord::new("", 0)),
                gtid: None,
                table: r.table.id.clone(),
                key: key(row),
                error,
                hint,
            })
        };
        let image = r.after.as_ref().or(r.before.as_ref());
        let Some(image) = image else { return Ok(()) };
        let convert = |row: &schemas::Row| {
            m.convert_row(row)
                .map_err(|e| reject(row, e.to_string(), Some(e.hint())))
        };
        let before = r.before.as_ref().map(convert).transpose()?;
        let after = r.after.as_ref().map(convert).transpose()?;
        self.client
            .batch_execute("SAVEPOINT my2pg_row")
            .await
            .map_err(|e| reject(image, e.to_string(), None))?;
        let result = self
            .write_one(m, r.op, before.as_deref(), after.as_deref())
            .await;
        match result {
            Ok(()) => {
                let _ = self
                    .client
                    .batch_execute("RELEASE SAVEPOINT my2pg_row")
                    .await;
                Ok(())
            }
            Err(e) => {
                let _ = self
                    .client
                    .batch_execute("ROLLBACK TO SAVEPOINT my2pg_row")
                    .await;
                let text = crate::error::chain(&e);
                Err(reject(image, text, None))
            }
        }
    }

    async fn write_one(
        &self,
        m: &TableMapping,
        op: ChangeOp,
        before: Option<&[PgValue]>,
        after: Option<&[PgValue]>,
    ) -> std::result::Result<(), tokio_postgres::Error> {
        let keyed = !m.key.is_empty();
        if let Some(b) = before {
            let key_changed = after.is_some_and(|a| m.key.iter().any(|&k| a.get(k) != b.get(k)));
            if op == ChangeOp::Delete
                || (keyed && key_changed)
                || (!keyed && op == ChangeOp::Update)
            {
                if keyed {
                    let keys: Vec<PgValue> =
                        m.key.iter().filter_map(|&k| b.get(k).cloned()).collect();
                    let p = params(&keys);
                    self.client
                        .execute(&stage::delete_one_sql(m), &param_refs(&p))
                        .await?;
                } else {
                    let p = params(b);
                    self.client
                        .execute(&stage::delete_full_row_sql(m), &param_refs(&p))
                        .await?;
                }
            }
        }
        if let Some(a) = after {
            let p = params(a);
            self.client
                .execute(&stage::upsert_one_sql(m), &param_refs(&p))
                .await?;
        }
        Ok(())
    }

    async fn reject(&self, rej: Rejected, r: &RowChange) -> Result<()> {
        match self.config.on_error {
            ErrorPolicy::Stop => Err(SinkError::Rejected {
                position: rej.position.to_string(),
                table: rej.table.to_string(),
                key: rej.key,
                reason: rej.error,
                hint: rej.hint,
            }),
            ErrorPolicy::DeadLetter => {
                warn!(table = %rej.table, key = %rej.key, error = %rej.error, "change rejected by the target; recorded in my2pg.dead_letter");
                record_dead_letter(
                    &self.client,
                    &self.config.pipeline,
                    &DeadLetter {
                        position: rej.position.to_string(),
                        gtid: rej.gtid,
                        table: &r.table,
                        key: rej.key,
                        op: r.op,
                        before: r.before.as_ref(),
                        after: r.after.as_ref(),
                        error: rej.error,
                    },
                )
                .await
            }
        }
    }
}

/// One change the target rejected, as `my2pg.dead_letter` records it.
#[derive(Debug)]
pub struct DeadLetter<'a> {
    /// The source position of its transaction (`snapshot` for a copied row).
    pub position: String,
    /// Its transaction's GTID.
    pub gtid: Option<String>,
    /// Its table.
    pub table: &'a TableSchema,
    /// Its key, rendered.
    pub key: String,
    /// What happened to the row.
    pub op: ChangeOp,
    /// Row before.
    pub before: Option<&'a schemas::Row>,
    /// Row after.
    pub after: Option<&'a schemas::Row>,
    /// Why the target rejected it.
    pub error: String,
}

/// Records a rejected change in `my2pg.dead_letter` (in the caller's transaction, so it
/// commits with the checkpoint that skips it).
pub async fn record_dead_letter(client: &Client, pipeline: &str, d: &DeadLetter<'_>) -> Result<()> {
    let event = serde_json::json!({
        "op": d.op.as_str(),
        "before": d.before.map(|b| row_json(d.table, b)),
        "after": d.after.map(|a| row_json(d.table, a)),
    });
    client
        .execute(
            "INSERT INTO my2pg.dead_letter (pipeline, position, gtid, source_table, row_key, event, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &pipeline,
                &d.position,
                &d.gtid,
                &d.table.id.to_string(),
                &d.key,
                &event,
                &d.error,
            ],
        )
        .await
        .map_err(q("recording a dead letter"))?;
    Ok(())
}

fn row_json(schema: &TableSchema, row: &schemas::Row) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (c, v) in schema.columns.iter().zip(&row.0) {
        m.insert(c.name.clone(), serde_json::json!(v.to_string()));
    }
    serde_json::Value::Object(m)
}

/// Whether an error from [`Applier::apply`] is worth retrying from the checkpoint.
pub fn transient(e: &SinkError) -> bool {
    match e {
        SinkError::Query { source, .. } => is_transient_pg_error(source),
        other => other.is_transient(),
    }
}
