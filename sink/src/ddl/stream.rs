//! DDL seen while streaming → PostgreSQL DDL, applied in stream order relative to the data.
//!
//! **Input.** A [`DdlChange`] as the reader emits it (the statement, the database it ran in,
//! and each table it touched with its schema *after* the statement, `None` when dropped), and
//! the schemas *before* it (what the pipeline has been applying rows with).
//!
//! **Algorithm.** The after-schema is the truth about the new shape, so the translation is a
//! diff of two [`TableMapping`]s — before and after, mapped under the same options — in a fixed
//! phase order that PostgreSQL accepts: table renames; dropped keys, indexes and foreign keys;
//! dropped columns; renamed columns; modified columns; added columns; new keys, indexes,
//! foreign keys, comments and triggers. What a diff cannot tell is read from the statement
//! ([`super::parse`]): renames (a drop plus an add would lose the column's values), TRUNCATE
//! and `CREATE OR REPLACE` (the schema is unchanged but the rows are gone).
//!
//! **Exactness.** Each step knows whether PostgreSQL will end in the state MySQL is in, rows
//! included. MySQL changes existing rows during some DDL without logging those rows: `ADD
//! COLUMN … NOT NULL` fills the type's implicit default, `DEFAULT CURRENT_TIMESTAMP` fills the
//! time of the ALTER, AUTO_INCREMENT numbers the rows, `MODIFY` converts values with MySQL's
//! casts (which differ from PostgreSQL's: rounding, truncation, time zones), BINARY(n) pads.
//! Where the step reproduces MySQL's effect exactly (the implicit default is written as a
//! temporary default, widening casts, BINARY padding and CHAR trimming written as `USING`
//! expressions) it is exact; otherwise it carries the reason.
//!
//! **Decision.** Each step's kind has an action ([`DdlPolicy`]): `auto` applies exact steps and
//! stops on inexact ones, `apply` applies either, `ignore` skips, `stop` stops. One stopping
//! step stops the whole statement — nothing of it is applied — so the target never holds half
//! a statement. The statements of an applied translation belong in the same target
//! transaction as the rows around them, and the change is recorded in
//! `my2pg.schema_history` ([`crate::state`]).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use schemas::mapping::{DdlAction, DdlPolicy, PgType, quote_ident};
use schemas::table::TableSchema;
use schemas::{DdlChange, TableId, TableMapping};

use super::create::{create_index, create_schema, create_table, on_update_trigger};
use super::parse::{ParsedDdl, parse};

mod columns;
mod diff;

use super::{Naming, objects};
use diff::diff_table;

/// The kind of one change, which selects its action in [`DdlPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DdlKind {
    /// A column was added.
    AddColumn,
    /// A column was dropped.
    DropColumn,
    /// A column was renamed.
    RenameColumn,
    /// A column's type, nullability, default or comment changed.
    ModifyColumn,
    /// A key or index was added.
    AddIndex,
    /// A key or index was dropped.
    DropIndex,
    /// A table was created.
    CreateTable,
    /// A table was dropped.
    DropTable,
    /// A table was renamed.
    RenameTable,
    /// A table was truncated.
    TruncateTable,
    /// Foreign keys, table comments, triggers.
    Other,
}

impl DdlKind {
    /// The configured action for this kind.
    pub fn action(self, p: &DdlPolicy) -> DdlAction {
        match self {
            DdlKind::AddColumn => p.add_column,
            DdlKind::DropColumn => p.drop_column,
            DdlKind::RenameColumn => p.rename_column,
            DdlKind::ModifyColumn => p.modify_column,
            DdlKind::AddIndex => p.add_index,
            DdlKind::DropIndex => p.drop_index,
            DdlKind::CreateTable => p.create_table,
            DdlKind::DropTable => p.drop_table,
            DdlKind::RenameTable => p.rename_table,
            DdlKind::TruncateTable => p.truncate_table,
            DdlKind::Other => p.other,
        }
    }

    /// The `[mapping.ddl]` key of this kind.
    pub fn key(self) -> &'static str {
        match self {
            DdlKind::AddColumn => "add_column",
            DdlKind::DropColumn => "drop_column",
            DdlKind::RenameColumn => "rename_column",
            DdlKind::ModifyColumn => "modify_column",
            DdlKind::AddIndex => "add_index",
            DdlKind::DropIndex => "drop_index",
            DdlKind::CreateTable => "create_table",
            DdlKind::DropTable => "drop_table",
            DdlKind::RenameTable => "rename_table",
            DdlKind::TruncateTable => "truncate_table",
            DdlKind::Other => "other",
        }
    }
}

/// One translated change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DdlStep {
    /// What kind of change.
    pub kind: DdlKind,
    /// The source table.
    pub table: TableId,
    /// The change in words, e.g. `add column shop.t.c int`.
    pub what: String,
    /// Why the translation is not exact (`None`: exact).
    pub inexact: Option<String>,
    /// PostgreSQL statements, in order.
    pub statements: Vec<String>,
    /// The action taken for it.
    pub action: DdlAction,
}

/// What to do with the whole statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum DdlDecision {
    /// Run [`DdlTranslation::statements`] (possibly none) before the rows that follow.
    Apply,
    /// Run nothing: every step was ignored by policy.
    Ignore,
    /// Stop the pipeline before this statement.
    Stop {
        /// Why.
        reason: String,
        /// What the operator can do.
        hint: String,
    },
}

/// The translation of one source DDL statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DdlTranslation {
    /// The source statement.
    pub statement: String,
    /// The decision.
    pub decision: DdlDecision,
    /// Every step with its action.
    pub steps: Vec<DdlStep>,
    /// The statements to run when the decision is [`DdlDecision::Apply`], in order.
    pub statements: Vec<String>,
}

/// Translates one source DDL statement. `before` gives the schema each table had before it
/// (`None`: unknown to the pipeline, e.g. a table created by this statement).
pub fn translate_ddl(
    change: &DdlChange,
    before: &dyn Fn(&TableId) -> Option<Arc<TableSchema>>,
    naming: &Naming<'_>,
) -> DdlTranslation {
    let parsed = parse(&change.statement, &change.database);
    let mut steps = table_steps(change, before, naming, &parsed);
    let policy = &naming.options.ddl;
    for s in &mut steps {
        s.action = s.kind.action(policy);
    }
    decide(change.statement.clone(), steps)
}

/// Single-table form: `before` and `after` are the table's schema before and after the
/// statement (`after` is `None` when the statement dropped it; for a rename, `before` has the
/// old name and `after` the new one).
pub fn translate_table_ddl(
    statement: &str,
    database: &str,
    before: Option<&TableSchema>,
    after: Option<&TableSchema>,
    naming: &Naming<'_>,
) -> DdlTranslation {
    let mut tables = Vec::new();
    if let Some(b) = before
        && after.is_none_or(|a| a.id != b.id)
    {
        tables.push((b.id.clone(), None));
    }
    if let Some(a) = after {
        tables.push((a.id.clone(), Some(Arc::new(a.clone()))));
    }
    let change = DdlChange {
        database: database.to_owned(),
        statement: statement.to_owned(),
        tables,
    };
    let before = before.map(|b| Arc::new(b.clone()));
    translate_ddl(
        &change,
        &|id| before.as_ref().filter(|b| &b.id == id).cloned(),
        naming,
    )
}

fn decide(statement: String, steps: Vec<DdlStep>) -> DdlTranslation {
    let stop = steps.iter().find_map(|s| match s.action {
        DdlAction::Stop => Some((
            format!("{} is configured to stop ([mapping.ddl] {} = \"stop\")", s.what, s.kind.key()),
            format!(
                "apply the change to the target by hand, then set [mapping.ddl] {} to \"auto\" or \"ignore\" and restart",
                s.kind.key()
            ),
        )),
        DdlAction::Auto => s.inexact.as_ref().map(|why| {
            (
                format!("{}: no exact PostgreSQL translation: {why}", s.what),
                format!(
                    "re-copy the table after the change (my2pg sync --resnapshot {}), or set [mapping.ddl] {} = \"apply\" to let PostgreSQL's casts decide, or \"ignore\"",
                    s.table,
                    s.kind.key()
                ),
            )
        }),
        DdlAction::Apply | DdlAction::Ignore => None,
    });
    if let Some((reason, hint)) = stop {
        return DdlTranslation {
            statement,
            decision: DdlDecision::Stop { reason, hint },
            steps,
            statements: Vec::new(),
        };
    }
    let applied: Vec<&DdlStep> = steps
        .iter()
        .filter(|s| s.action != DdlAction::Ignore)
        .collect();
    let decision = if applied.is_empty() && !steps.is_empty() {
        DdlDecision::Ignore
    } else {
        DdlDecision::Apply
    };
    let statements = applied
        .iter()
        .flat_map(|s| s.statements.iter().cloned())
        .collect();
    DdlTranslation {
        statement,
        decision,
        steps,
        statements,
    }
}

fn step(kind: DdlKind, table: &TableId, what: String, statements: Vec<String>) -> DdlStep {
    DdlStep {
        kind,
        table: table.clone(),
        what,
        inexact: None,
        statements,
        action: DdlAction::Auto,
    }
}

fn inexact(mut s: DdlStep, why: impl Into<String>) -> DdlStep {
    s.inexact = Some(why.into());
    s
}

/// The steps for every table the statement touched.
fn table_steps(
    change: &DdlChange,
    before: &dyn Fn(&TableId) -> Option<Arc<TableSchema>>,
    naming: &Naming<'_>,
    parsed: &ParsedDdl,
) -> Vec<DdlStep> {
    let mut steps = Vec::new();
    // Renames run first and in statement order (RENAME TABLE a TO t, b TO a, t TO b swaps).
    // `origin` maps a table's name after the renames to its name before the statement.
    let mut origin: HashMap<TableId, TableId> = HashMap::new();
    for (old, new) in &parsed.table_renames {
        let first = origin.remove(old).unwrap_or_else(|| old.clone());
        if let Some(schema) = before(&first) {
            steps.extend(rename_table(&schema, old, new, naming));
        }
        origin.insert(new.clone(), first);
    }
    let renamed_away: Vec<&TableId> = parsed.table_renames.iter().map(|(o, _)| o).collect();
    for (id, after) in &change.tables {
        let origin_id = origin.get(id).cloned().unwrap_or_else(|| id.clone());
        let was = before(&origin_id);
        match (was, after) {
            (None, None) => {}
            (Some(b), None) => {
                if !renamed_away.contains(&id) || origin.contains_key(id) {
                    steps.push(drop_table(&b, naming));
                }
            }
            (None, Some(a)) => steps.extend(create(a, naming)),
            (Some(b), Some(a)) => {
                if parsed.replaced.contains(id) {
                    steps.push(drop_table(&b, naming));
                    steps.extend(create(a, naming));
                    continue;
                }
                if parsed.truncated.contains(id) {
                    steps.push(truncate(&b, naming));
                }
                // Diff with the before-schema under its name after the renames.
                let mut renamed = (*b).clone();
                renamed.id = id.clone();
                steps.extend(diff_table(&renamed, a, naming, parsed, &origin_id));
            }
        }
    }
    steps
}

fn map_or_step(
    schema: &TableSchema,
    naming: &Naming<'_>,
    kind: DdlKind,
) -> Result<TableMapping, Box<DdlStep>> {
    naming.map(Arc::new(schema.clone())).map_err(|e| {
        let hint = e.hint();
        Box::new(inexact(
            step(
                kind,
                &schema.id,
                format!("{kind:?} on {}", schema.id),
                vec![],
            ),
            format!("{e} ({hint})"),
        ))
    })
}

fn create(a: &Arc<TableSchema>, naming: &Naming<'_>) -> Vec<DdlStep> {
    let m = match map_or_step(a, naming, DdlKind::CreateTable) {
        Ok(m) => m,
        Err(s) => return vec![*s],
    };
    let plan = create_table(&m, naming);
    let mut statements = vec![create_schema(&m.target.schema)];
    statements.extend(plan.statements);
    statements.extend(plan.foreign_keys);
    vec![step(
        DdlKind::CreateTable,
        &a.id,
        format!("create table {}", a.id),
        statements,
    )]
}

fn drop_table(b: &TableSchema, naming: &Naming<'_>) -> DdlStep {
    let m = match map_or_step(b, naming, DdlKind::DropTable) {
        Ok(m) => m,
        Err(s) => return *s,
    };
    let mut statements = vec![format!("DROP TABLE IF EXISTS {}", m.target.quoted())];
    for c in &m.columns {
        if let PgType::Enum { schema, name } = &c.pg_type {
            statements.push(format!(
                "DROP TYPE IF EXISTS {}.{}",
                quote_ident(schema),
                quote_ident(name)
            ));
        }
    }
    statements.push(format!(
        "DROP FUNCTION IF EXISTS {}.{}()",
        quote_ident(&m.target.schema),
        quote_ident(&objects::on_update_function(&m))
    ));
    step(
        DdlKind::DropTable,
        &b.id,
        format!("drop table {}", b.id),
        statements,
    )
}

fn truncate(b: &TableSchema, naming: &Naming<'_>) -> DdlStep {
    let m = match map_or_step(b, naming, DdlKind::TruncateTable) {
        Ok(m) => m,
        Err(s) => return *s,
    };
    // MySQL's TRUNCATE resets AUTO_INCREMENT; RESTART IDENTITY also restarts owned sequences.
    step(
        DdlKind::TruncateTable,
        &b.id,
        format!("truncate table {}", b.id),
        vec![format!(
            "TRUNCATE TABLE {} RESTART IDENTITY",
            m.target.quoted()
        )],
    )
}

fn rename_table(
    schema: &TableSchema,
    old: &TableId,
    new: &TableId,
    naming: &Naming<'_>,
) -> Vec<DdlStep> {
    let mut from = schema.clone();
    from.id = old.clone();
    let mut to = schema.clone();
    to.id = new.clone();
    let (from, to) = match (
        map_or_step(&from, naming, DdlKind::RenameTable),
        map_or_step(&to, naming, DdlKind::RenameTable),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(s), _) | (_, Err(s)) => return vec![*s],
    };
    let mut st = Vec::new();
    let (fs, ts) = (&from.target.schema, &to.target.schema);
    if fs != ts {
        st.push(format!(
            "ALTER TABLE {} SET SCHEMA {}",
            from.target.quoted(),
            quote_ident(ts)
        ));
        for c in &from.columns {
            if let PgType::Enum { name, .. } = &c.pg_type {
                st.push(format!(
                    "ALTER TYPE {}.{} SET SCHEMA {}",
                    quote_ident(fs),
                    quote_ident(name),
                    quote_ident(ts)
                ));
            }
        }
        if !on_update_trigger(&from).is_empty() {
            st.push(format!(
                "ALTER FUNCTION {}.{}() SET SCHEMA {}",
                quote_ident(fs),
                quote_ident(&objects::on_update_function(&from)),
                quote_ident(ts)
            ));
        }
    }
    let table = format!("{}.{}", quote_ident(ts), quote_ident(&from.target.name));
    if from.target.name != to.target.name {
        st.push(format!(
            "ALTER TABLE {table} RENAME TO {}",
            quote_ident(&to.target.name)
        ));
        let t = to.target.quoted();
        let mut rename = |kind: &str, a: String, b: String| {
            if a != b {
                st.push(match kind {
                    "constraint" => format!(
                        "ALTER TABLE {t} RENAME CONSTRAINT {} TO {}",
                        quote_ident(&a),
                        quote_ident(&b)
                    ),
                    "trigger" => format!(
                        "ALTER TRIGGER {} ON {t} RENAME TO {}",
                        quote_ident(&a),
                        quote_ident(&b)
                    ),
                    "function" => format!(
                        "ALTER FUNCTION {}.{}() RENAME TO {}",
                        quote_ident(ts),
                        quote_ident(&a),
                        quote_ident(&b)
                    ),
                    other => format!(
                        "ALTER {other} IF EXISTS {}.{} RENAME TO {}",
                        quote_ident(ts),
                        quote_ident(&a),
                        quote_ident(&b)
                    ),
                });
            }
        };
        if !schema.primary_key.is_empty() {
            rename("constraint", objects::pkey(&from), objects::pkey(&to));
        }
        for idx in schema.unique_keys.iter().chain(&schema.indexes) {
            if create_index(&from, idx).is_ok() {
                rename(
                    "INDEX",
                    objects::index(&from, &idx.name),
                    objects::index(&to, &idx.name),
                );
            }
        }
        for (fc, tc) in from.columns.iter().zip(&to.columns) {
            if fc.allowed.is_some() {
                rename(
                    "constraint",
                    objects::check(&from, &fc.name),
                    objects::check(&to, &tc.name),
                );
            }
            if let (PgType::Enum { name: a, .. }, PgType::Enum { name: b, .. }) =
                (&fc.pg_type, &tc.pg_type)
            {
                rename("TYPE", a.clone(), b.clone());
            }
            if fc.identity_start.is_some() && !fc.pg_type.is_integer() {
                rename(
                    "SEQUENCE",
                    objects::sequence(&from, &fc.name),
                    objects::sequence(&to, &tc.name),
                );
            }
        }
        for fk in &schema.foreign_keys {
            rename(
                "constraint",
                objects::foreign_key(&from, &fk.name),
                objects::foreign_key(&to, &fk.name),
            );
        }
        if !on_update_trigger(&from).is_empty() {
            rename(
                "trigger",
                objects::on_update_trigger(&from),
                objects::on_update_trigger(&to),
            );
            rename(
                "function",
                objects::on_update_function(&from),
                objects::on_update_function(&to),
            );
        }
    }
    vec![step(
        DdlKind::RenameTable,
        new,
        format!("rename table {old} to {new}"),
        st,
    )]
}

#[cfg(test)]
mod tests;
