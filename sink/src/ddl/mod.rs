//! PostgreSQL DDL from the type mapping: creating the target tables (`my2pg schema`), comparing
//! tables that already exist, and translating DDL seen while streaming.
//!
//! - [`create`]: CREATE statements for a [`TableMapping`] — columns, NOT NULL, translated
//!   defaults, AUTO_INCREMENT as an identity starting at the source's next value, primary key,
//!   unique keys and indexes (prefix keys reported and handled), CHECKs for ENUM and SET,
//!   comments, the `ON UPDATE CURRENT_TIMESTAMP` trigger, foreign keys `NOT VALID`.
//! - [`objects`]: stable names of derived objects (indexes, enum types, triggers, …).
//! - [`compare`]: reading an existing target table and listing its differences.
//! - [`parse`] and [`stream`]: streaming DDL → PostgreSQL DDL with a per-kind policy.
//!
//! Every identifier is quoted, so names keep the spelling the mapping chose (lower case by
//! default, see `[mapping] identifiers`) whatever their case or reserved-word status.
//!
//! [`apply_schema`] runs the whole plan in **one transaction**: either every missing table is
//! created with its indexes, triggers and foreign keys and recorded in `my2pg.schema_history`,
//! or nothing is. Existing tables are never altered; their differences are reported.

pub mod compare;
pub mod create;
pub mod objects;
pub mod parse;
pub mod stream;

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;
use tokio_postgres::Client;

use schemas::mapping::{MappingError, MappingOptions, PgTable, map_table};
use schemas::{TableId, TableMapping, TableSchema};

pub use compare::{TargetTable, compare, read_target_table};
pub use create::{TablePlan, create_schema, create_table};
pub use stream::{
    DdlDecision, DdlKind, DdlStep, DdlTranslation, translate_ddl, translate_table_ddl,
};

use crate::error::{Result, SinkError};
use crate::state::{self, SchemaHistoryEntry};

/// How source names become target names: the mapping options, the database → schema map and
/// which tables are migrated (to resolve foreign keys).
#[derive(Clone, Copy)]
pub struct Naming<'a> {
    /// The `[mapping]` options (names, types, DDL policy).
    pub options: &'a MappingOptions,
    /// MySQL database → PostgreSQL schema.
    pub target_schema: &'a (dyn Fn(&str) -> String + Sync),
    /// Whether a source table is migrated (a foreign key to one that is not is skipped).
    pub migrated: &'a (dyn Fn(&TableId) -> bool + Sync),
}

impl std::fmt::Debug for Naming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Naming")
            .field("options", self.options)
            .finish_non_exhaustive()
    }
}

impl Naming<'_> {
    /// The target table of a migrated source table.
    pub fn table(&self, id: &TableId) -> Option<PgTable> {
        (self.migrated)(id).then(|| PgTable {
            schema: (self.target_schema)(&id.database),
            name: self.options.table_name(id),
        })
    }

    /// The target name of a source column.
    pub fn column(&self, id: &TableId, column: &str) -> String {
        self.options.column_name(id, column)
    }

    /// Maps a source table into its target schema.
    pub fn map(&self, schema: Arc<TableSchema>) -> std::result::Result<TableMapping, MappingError> {
        let target = (self.target_schema)(&schema.id.database);
        map_table(schema, &target, self.options)
    }
}

/// The DDL for a set of tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaPlan {
    /// Target schemas, each created with `IF NOT EXISTS`.
    pub schemas: Vec<String>,
    /// One plan per table.
    pub tables: Vec<TablePlan>,
}

impl SchemaPlan {
    /// Plans every table of `mappings`.
    pub fn new(mappings: &[TableMapping], naming: &Naming<'_>) -> SchemaPlan {
        let mut schemas: Vec<String> = mappings.iter().map(|m| m.target.schema.clone()).collect();
        schemas.sort();
        schemas.dedup();
        SchemaPlan {
            schemas,
            tables: mappings.iter().map(|m| create_table(m, naming)).collect(),
        }
    }

    /// The plan as one SQL script, notes as comments, foreign keys last.
    pub fn to_sql(&self) -> String {
        let mut out = String::new();
        for s in &self.schemas {
            let _ = writeln!(out, "{};", create_schema(s));
        }
        for t in &self.tables {
            let _ = writeln!(out, "\n-- table {}", t.table);
            for n in &t.notes {
                let _ = writeln!(out, "-- note: {}", n.replace('\n', " "));
            }
            for s in &t.statements {
                let _ = writeln!(out, "{s};");
            }
        }
        let fks: Vec<&String> = self.tables.iter().flat_map(|t| &t.foreign_keys).collect();
        if !fks.is_empty() {
            let _ = writeln!(
                out,
                "\n-- foreign keys: NOT VALID now (existing rows unchecked), VALIDATE CONSTRAINT at cutover"
            );
            for f in fks {
                let _ = writeln!(out, "{f};");
            }
        }
        out
    }
}

/// What [`apply_schema`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Tables created.
    pub created: Vec<String>,
    /// Tables that already existed, with their differences from the mapping (empty: same).
    pub existing: Vec<(String, Vec<String>)>,
}

impl ApplyReport {
    /// Whether an existing table differs from the mapping.
    pub fn has_differences(&self) -> bool {
        self.existing.iter().any(|(_, d)| !d.is_empty())
    }
}

/// Creates every missing table of `mappings` in one transaction and compares the existing ones.
pub async fn apply_schema(
    client: &mut Client,
    mappings: &[TableMapping],
    naming: &Naming<'_>,
) -> Result<ApplyReport> {
    let q = |what: String| move |source| SinkError::Query { what, source };
    let tx = client
        .transaction()
        .await
        .map_err(q("starting the schema transaction".into()))?;
    state::ensure_state(&tx).await?;
    let mut report = ApplyReport::default();
    let mut fks = Vec::new();
    let plan = SchemaPlan::new(mappings, naming);
    for s in &plan.schemas {
        tx.batch_execute(&create_schema(s))
            .await
            .map_err(q(format!("creating schema {s}")))?;
    }
    for (m, t) in mappings.iter().zip(&plan.tables) {
        if let Some(existing) = read_target_table(&tx, &m.target).await? {
            report
                .existing
                .push((t.table.clone(), compare(m, &existing)));
            continue;
        }
        for s in &t.statements {
            tx.batch_execute(s)
                .await
                .map_err(q(format!("creating {}: {s}", t.table)))?;
        }
        fks.extend(t.foreign_keys.iter().cloned());
        state::record_schema_history(
            &tx,
            &SchemaHistoryEntry {
                source_table: m.source_id.clone(),
                position: None,
                statement: "my2pg schema".into(),
                decision: "apply".into(),
                applied: t.statements.clone(),
                schema: Some((*m.source).clone()),
            },
        )
        .await?;
        report.created.push(t.table.clone());
    }
    for f in &fks {
        tx.batch_execute(f)
            .await
            .map_err(q(format!("creating a foreign key: {f}")))?;
    }
    tx.commit()
        .await
        .map_err(q("committing the schema transaction".into()))?;
    Ok(report)
}
