//! Pure, synchronous transform stages built from configuration: one source transaction in,
//! zero or one out. The same stage chain is a `Row → Row` library call that the verifier reuses,
//! so a transformed target can still be verified.
//!
//! A stage works on the *source* side of the type mapping: it sees a table's
//! [`TableSchema`] and rows of [`schemas::Value`], and it hands on a (possibly different)
//! schema and rows that fit it. The type mapping then maps the transformed schema to
//! PostgreSQL exactly as it maps an untransformed one, so the target DDL, the applier and the
//! verifier all agree on what a transformed table looks like.
//!
//! Stages are compiled once per table schema ([`Chain::table`] returns a [`TablePlan`]); the
//! row path does no name lookups.
//!
//! The stages are hand-written: they are small, pure functions over our own value type, and
//! no crate offers this over MySQL values.

mod config;
mod filter;
mod mask;
mod stage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use schemas::change::{Change, ChangeOp, DdlChange, RowChange, SourceTx};
use schemas::table::{TableId, TableSchema, TableSchemaRef};
use schemas::value::Row;

pub use config::{CastTo, MaskWith, TransformConfig};
pub use stage::{Compiled, RowFn, Transform};

/// A stage configuration that cannot be used with a table, or cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transform {stage}: {problem}")]
pub struct TransformError {
    /// Which stage (`transform[2] mask shop.customers.email`).
    pub stage: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

/// A compiled stage chain for one table schema.
pub struct TablePlan {
    input: TableSchemaRef,
    output: TableSchemaRef,
    rows: Vec<Box<dyn RowFn>>,
}

impl std::fmt::Debug for TablePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TablePlan")
            .field("input", &self.input.id)
            .field("output", &self.output.id)
            .field("stages", &self.rows.len())
            .finish()
    }
}

impl TablePlan {
    /// The schema the plan was compiled for.
    pub fn input(&self) -> &TableSchemaRef {
        &self.input
    }

    /// The table's schema after the stages: what the mapping maps and the target holds.
    pub fn output(&self) -> &TableSchemaRef {
        &self.output
    }

    /// Whether the plan changes nothing (rows pass through untouched).
    pub fn is_identity(&self) -> bool {
        self.rows.is_empty() && Arc::ptr_eq(&self.input, &self.output)
    }

    /// One row image through every stage; `None` when a filter drops it.
    pub fn row(&self, mut row: Row) -> Option<Row> {
        for stage in &self.rows {
            row = stage.apply(row)?;
        }
        Some(row)
    }

    /// One row change through every stage. A filter turns an update into a delete when the
    /// row leaves the filtered set, into an insert when it enters it, and drops it when the
    /// row is outside before and after.
    pub fn change(&self, change: RowChange) -> Option<RowChange> {
        let RowChange {
            ordinal,
            op,
            before,
            after,
            ..
        } = change;
        let before = before.and_then(|r| self.row(r));
        let after = after.and_then(|r| self.row(r));
        let op = match (op, &before, &after) {
            (ChangeOp::Update, Some(_), Some(_)) => ChangeOp::Update,
            (ChangeOp::Update, Some(_), None) => ChangeOp::Delete,
            (ChangeOp::Update, None, Some(_)) => ChangeOp::Insert,
            (ChangeOp::Delete, Some(_), _) => ChangeOp::Delete,
            (ChangeOp::Insert | ChangeOp::Read, _, Some(_)) => op,
            _ => return None,
        };
        let (before, after) = match op {
            ChangeOp::Delete => (before, None),
            ChangeOp::Insert | ChangeOp::Read => (None, after),
            ChangeOp::Update => (before, after),
        };
        Some(RowChange {
            table: self.output.clone(),
            ordinal,
            op,
            before,
            after,
        })
    }
}

/// An ordered list of stages, with compiled plans cached per table schema.
pub struct Chain {
    stages: Vec<Box<dyn Transform>>,
    /// Tables the chain leaves alone (my2pg's own heartbeat table).
    exempt: Vec<TableId>,
    /// Plans by table, with the exact input schema they were compiled for (`None`: the table
    /// is dropped by a stage).
    cache: Mutex<HashMap<TableId, CachedPlan>>,
}

/// A compiled plan and the exact schema it was compiled for (`None`: the table is dropped).
type CachedPlan = (TableSchemaRef, Option<Arc<TablePlan>>);

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("stages", &self.describe())
            .finish()
    }
}

impl Default for Chain {
    fn default() -> Self {
        Chain::empty()
    }
}

impl Chain {
    /// The chain that changes nothing.
    pub fn empty() -> Chain {
        Chain::new(Vec::new())
    }

    /// A chain of the given stages, applied in order.
    pub fn new(stages: Vec<Box<dyn Transform>>) -> Chain {
        Chain {
            stages,
            exempt: Vec::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Leaves `table` untouched by every stage (for my2pg's own heartbeat table, whose rows
    /// must reach the applier whatever the filters say).
    pub fn exempt(mut self, table: TableId) -> Chain {
        self.exempt.push(table);
        self
    }

    /// Builds the chain from `[[transform]]` entries, checking each.
    pub fn from_config(entries: &[TransformConfig]) -> Result<Chain, TransformError> {
        let mut stages = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            stages.push(e.build(i)?);
        }
        Ok(Chain::new(stages))
    }

    /// Whether the chain has no stage.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// One line per stage, for logs and reports.
    pub fn describe(&self) -> Vec<String> {
        self.stages.iter().map(|s| s.describe()).collect()
    }

    /// Whether a table passes the table filters, judged by name alone (before its schema is
    /// known).
    pub fn keeps_table(&self, id: &TableId) -> bool {
        self.exempt.contains(id) || self.stages.iter().all(|s| s.keeps_table(id))
    }

    /// The compiled plan for a table schema; `None` when a stage drops the table.
    pub fn table(&self, schema: &TableSchemaRef) -> Result<Option<Arc<TablePlan>>, TransformError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((input, plan)) = cache.get(&schema.id)
            && (Arc::ptr_eq(input, schema) || **input == **schema)
        {
            return Ok(plan.clone());
        }
        let plan = self.compile(schema)?.map(Arc::new);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(schema.id.clone(), (schema.clone(), plan.clone()));
        }
        Ok(plan)
    }

    fn compile(&self, schema: &TableSchemaRef) -> Result<Option<TablePlan>, TransformError> {
        let mut current = schema.clone();
        let mut rows: Vec<Box<dyn RowFn>> = Vec::new();
        let stages: &[Box<dyn Transform>] = if self.exempt.contains(&schema.id) {
            &[]
        } else {
            &self.stages
        };
        for stage in stages {
            match stage.compile(&current)? {
                Compiled::Drop => return Ok(None),
                Compiled::Pass => {}
                Compiled::Schema(s) => current = Arc::new(s),
                Compiled::Rows { output, rows: f } => {
                    current = Arc::new(output);
                    rows.push(f);
                }
            }
        }
        Ok(Some(TablePlan {
            input: schema.clone(),
            output: current,
            rows,
        }))
    }

    /// The output schema of a table, `None` when it is dropped.
    pub fn schema(
        &self,
        schema: &TableSchemaRef,
    ) -> Result<Option<TableSchemaRef>, TransformError> {
        Ok(self.table(schema)?.map(|p| p.output.clone()))
    }

    /// One row of `schema` through the chain (the verifier's entry point).
    pub fn row(&self, schema: &TableSchemaRef, row: Row) -> Result<Option<Row>, TransformError> {
        Ok(self.table(schema)?.and_then(|p| p.row(row)))
    }

    /// One source transaction through the chain. Changes of dropped tables and filtered rows
    /// go; the transaction itself always comes out, possibly with no changes, so that its
    /// position still reaches the checkpoint.
    pub fn apply(&self, tx: SourceTx) -> Result<SourceTx, TransformError> {
        if self.stages.is_empty() {
            return Ok(tx);
        }
        let SourceTx {
            gtid,
            position,
            commit_time_ms,
            changes,
            fragment,
        } = tx;
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            match change {
                Change::Row(r) => {
                    if let Some(plan) = self.table(&r.table)?
                        && let Some(r) = plan.change(r)
                    {
                        out.push(Change::Row(r));
                    }
                }
                Change::Ddl(d) => {
                    if let Some(d) = self.ddl(d)? {
                        out.push(Change::Ddl(d));
                    }
                }
            }
        }
        Ok(SourceTx {
            gtid,
            position,
            commit_time_ms,
            changes: out,
            fragment,
        })
    }

    /// A schema change with each table's new schema transformed; tables the chain drops are
    /// left out, and a change that touches only such tables goes.
    fn ddl(&self, d: DdlChange) -> Result<Option<DdlChange>, TransformError> {
        let mut tables = Vec::with_capacity(d.tables.len());
        for (id, after) in d.tables {
            match after {
                Some(s) => {
                    if let Some(out) = self.schema(&s)? {
                        tables.push((id, Some(out)));
                    }
                }
                None => {
                    if self.keeps_table(&id) {
                        tables.push((id, None));
                    }
                }
            }
        }
        if tables.is_empty() {
            return Ok(None);
        }
        Ok(Some(DdlChange {
            database: d.database,
            statement: d.statement,
            tables,
        }))
    }
}

/// A convenience for callers holding an owned schema.
pub fn schema_ref(schema: TableSchema) -> TableSchemaRef {
    Arc::new(schema)
}
