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

use schemas::mapping::{DdlAction, DdlPolicy, PgDefault, PgType, quote_ident};
use schemas::pgtext::literal;
use schemas::table::{Index, TableSchema};
use schemas::value::{Date, DateTime, Decimal, Time, Timestamp};
use schemas::{ColumnType, DdlChange, TableId, TableMapping, Value};

use super::create::{
    check_expression, column_definition, comment_on_column, create_enum_type, create_index,
    create_schema, create_table, default_sql, foreign_key, on_update_trigger,
};
use super::parse::{ParsedDdl, parse};
use super::{Naming, objects};

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

/// An index as (lower-case name, unique, kind, key parts as (target column, prefix,
/// descending)), for comparison.
type IndexShape = (String, bool, String, Vec<(String, Option<u32>, bool)>);

/// The shape of an index of `m`.
fn index_shape(m: &TableMapping, idx: &Index) -> IndexShape {
    (
        idx.name.to_lowercase(),
        idx.unique,
        idx.kind.to_ascii_uppercase(),
        idx.columns
            .iter()
            .map(|p| {
                (
                    m.columns
                        .get(p.column)
                        .map_or(String::new(), |c| c.name.clone()),
                    p.prefix_len,
                    p.descending,
                )
            })
            .collect(),
    )
}

/// Diffs one table. `b` is the before-schema under the table's current name.
fn diff_table(
    b: &TableSchema,
    a: &Arc<TableSchema>,
    naming: &Naming<'_>,
    parsed: &ParsedDdl,
    origin: &TableId,
) -> Vec<DdlStep> {
    let id = &a.id;
    let bm = match map_or_step(b, naming, DdlKind::ModifyColumn) {
        Ok(m) => m,
        Err(s) => return vec![*s],
    };
    let am = match map_or_step(a, naming, DdlKind::ModifyColumn) {
        Ok(m) => m,
        Err(s) => return vec![*s],
    };
    let t = am.target.quoted();
    // Match after-columns to before-columns: statement renames, then same name, then a
    // case-only difference (MySQL column names are case-insensitive).
    let renames: Vec<(&str, &str)> = parsed
        .column_renames
        .iter()
        .filter(|(tid, _, _)| tid == origin || tid == id)
        .map(|(_, o, n)| (o.as_str(), n.as_str()))
        .collect();
    let mut matched_before = vec![false; bm.columns.len()];
    let mut pairs: Vec<(Option<usize>, usize)> = Vec::new();
    for (ai, ac) in am.columns.iter().enumerate() {
        let by_rename = renames
            .iter()
            .rev()
            .find(|(_, n)| n.eq_ignore_ascii_case(&ac.source_name))
            .and_then(|(o, _)| {
                bm.columns
                    .iter()
                    .position(|c| c.source_name.eq_ignore_ascii_case(o))
            });
        let renamed_away = |name: &str| {
            renames
                .iter()
                .any(|(o, n)| o.eq_ignore_ascii_case(name) && !n.eq_ignore_ascii_case(name))
        };
        let by_name = || {
            bm.columns
                .iter()
                .position(|c| c.source_name == ac.source_name && !renamed_away(&c.source_name))
                .or_else(|| {
                    bm.columns.iter().position(|c| {
                        c.source_name.eq_ignore_ascii_case(&ac.source_name)
                            && !renamed_away(&c.source_name)
                    })
                })
        };
        let bi = by_rename.or_else(by_name).filter(|&bi| !matched_before[bi]);
        if let Some(bi) = bi {
            matched_before[bi] = true;
        }
        pairs.push((bi, ai));
    }
    let dropped: Vec<usize> = (0..bm.columns.len())
        .filter(|&i| !matched_before[i])
        .collect();
    let added: Vec<usize> = pairs
        .iter()
        .filter(|(b, _)| b.is_none())
        .map(|(_, a)| *a)
        .collect();
    let ambiguous = (!parsed.parsed && !dropped.is_empty() && !added.is_empty()).then(|| {
        "the statement could not be parsed, so a dropped and an added column cannot be told from a rename".to_owned()
    });

    let mut drop_keys = Vec::new();
    let mut drop_cols = Vec::new();
    let mut renames_out = Vec::new();
    let mut modifies = Vec::new();
    let mut adds = Vec::new();
    let mut add_keys = Vec::new();

    // Primary key, by target column names.
    let pk = |m: &TableMapping| -> Vec<String> {
        m.source
            .primary_key
            .iter()
            .filter_map(|&i| m.columns.get(i))
            .map(|c| c.name.clone())
            .collect()
    };
    let rename_target = |name: &str| -> String {
        pairs
            .iter()
            .find(|(bi, _)| {
                bi.and_then(|bi| bm.columns.get(bi))
                    .is_some_and(|c| c.name == name)
            })
            .and_then(|(_, ai)| am.columns.get(*ai))
            .map_or_else(|| name.to_owned(), |c| c.name.clone())
    };
    let (bpk, apk) = (
        pk(&bm).iter().map(|n| rename_target(n)).collect::<Vec<_>>(),
        pk(&am),
    );
    if bpk != apk {
        if !bpk.is_empty() {
            drop_keys.push(step(
                DdlKind::DropIndex,
                id,
                format!("drop primary key of {id}"),
                vec![format!(
                    "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
                    quote_ident(&objects::pkey(&bm))
                )],
            ));
        }
        if !apk.is_empty() {
            add_keys.push(step(
                DdlKind::AddIndex,
                id,
                format!("add primary key ({}) to {id}", apk.join(", ")),
                vec![format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {} PRIMARY KEY ({})",
                    quote_ident(&objects::pkey(&am)),
                    apk.iter()
                        .map(|c| quote_ident(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                )],
            ));
        }
    }
    // Indexes, by name and shape (column renames applied to the before side).
    let shape_before = |idx: &Index| {
        let (n, u, k, cols) = index_shape(&bm, idx);
        (
            n,
            u,
            k,
            cols.into_iter()
                .map(|(c, p, d)| (rename_target(&c), p, d))
                .collect::<Vec<_>>(),
        )
    };
    let before_idx: Vec<&Index> = bm
        .source
        .unique_keys
        .iter()
        .chain(&bm.source.indexes)
        .collect();
    let after_idx: Vec<&Index> = am
        .source
        .unique_keys
        .iter()
        .chain(&am.source.indexes)
        .collect();
    for bi in &before_idx {
        let same = after_idx
            .iter()
            .any(|ai| index_shape(&am, ai) == shape_before(bi));
        if !same && create_index(&bm, bi).is_ok() {
            drop_keys.push(step(
                DdlKind::DropIndex,
                id,
                format!("drop index {} of {id}", bi.name),
                vec![format!(
                    "DROP INDEX IF EXISTS {}.{}",
                    quote_ident(&am.target.schema),
                    quote_ident(&objects::index(&bm, &bi.name))
                )],
            ));
        }
    }
    for ai in &after_idx {
        if before_idx
            .iter()
            .any(|bi| index_shape(&am, ai) == shape_before(bi))
        {
            continue;
        }
        let s = match create_index(&am, ai) {
            Ok((sql, _)) => vec![sql],
            Err(_) => Vec::new(),
        };
        add_keys.push(step(
            DdlKind::AddIndex,
            id,
            format!("add index {} to {id}", ai.name),
            s,
        ));
    }
    // Foreign keys, by name.
    for fk in &bm.source.foreign_keys {
        if !am
            .source
            .foreign_keys
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(&fk.name))
        {
            drop_keys.push(step(
                DdlKind::Other,
                id,
                format!("drop foreign key {} of {id}", fk.name),
                vec![format!(
                    "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
                    quote_ident(&objects::foreign_key(&bm, &fk.name))
                )],
            ));
        }
    }
    for fk in &am.source.foreign_keys {
        if !bm
            .source
            .foreign_keys
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(&fk.name))
        {
            add_keys.push(step(
                DdlKind::Other,
                id,
                format!("add foreign key {} to {id}", fk.name),
                foreign_key(&am, fk, naming).into_iter().collect(),
            ));
        }
    }
    if bm.source.comment != am.source.comment {
        add_keys.push(step(
            DdlKind::Other,
            id,
            format!("comment on table {id}"),
            vec![format!(
                "COMMENT ON TABLE {t} IS {}",
                if am.source.comment.is_empty() {
                    "NULL".into()
                } else {
                    schemas::pgtext::quote_literal(&am.source.comment)
                }
            )],
        ));
    }
    if on_update_trigger(&bm) != on_update_trigger(&am) {
        let mut st = vec![format!(
            "DROP TRIGGER IF EXISTS {} ON {t}",
            quote_ident(&objects::on_update_trigger(&am))
        )];
        st.extend(on_update_trigger(&am));
        add_keys.push(step(
            DdlKind::Other,
            id,
            format!("ON UPDATE CURRENT_TIMESTAMP trigger of {id}"),
            st,
        ));
    }

    for &bi in &dropped {
        let c = &bm.columns[bi];
        let s = step(
            DdlKind::DropColumn,
            id,
            format!("drop column {id}.{}", c.source_name),
            vec![format!(
                "ALTER TABLE {t} DROP COLUMN IF EXISTS {}",
                quote_ident(&c.name)
            )],
        );
        drop_cols.push(match &ambiguous {
            Some(why) => inexact(s, why.clone()),
            None => s,
        });
    }
    for (bi, ai) in &pairs {
        let ac = &am.columns[*ai];
        let Some(bi) = bi else {
            let s = add_column(&am, *ai, a);
            adds.push(match (&ambiguous, s.inexact.is_none()) {
                (Some(why), true) => inexact(s, why.clone()),
                _ => s,
            });
            continue;
        };
        let bc = &bm.columns[*bi];
        if bc.name != ac.name {
            renames_out.push(step(
                DdlKind::RenameColumn,
                id,
                format!(
                    "rename column {id}.{} to {}",
                    bc.source_name, ac.source_name
                ),
                vec![format!(
                    "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                    quote_ident(&bc.name),
                    quote_ident(&ac.name)
                )],
            ));
        } else if bc.source_name != ac.source_name {
            renames_out.push(step(
                DdlKind::RenameColumn,
                id,
                format!(
                    "rename column {id}.{} to {}",
                    bc.source_name, ac.source_name
                ),
                vec![],
            ));
        }
        modifies.extend(modify_column(&bm, *bi, &am, *ai));
    }
    [drop_keys, drop_cols, renames_out, modifies, adds, add_keys].concat()
}

/// The value MySQL writes into existing rows for `ADD COLUMN … NOT NULL` without a default.
fn implicit_default(ty: &ColumnType) -> Option<Value> {
    Some(match ty {
        ColumnType::Integer { unsigned: true, .. } => Value::UInt(0),
        ColumnType::Integer { .. } => Value::Int(0),
        ColumnType::Decimal { scale, .. } => Value::Decimal(
            Decimal::parse(&if *scale == 0 {
                "0".to_owned()
            } else {
                format!("0.{}", "0".repeat(usize::from(*scale)))
            })
            .ok()?,
        ),
        ColumnType::Float => Value::Float(0.0),
        ColumnType::Double => Value::Double(0.0),
        ColumnType::Bit { width } => Value::Bit {
            width: *width,
            bits: 0,
        },
        ColumnType::Date => Value::Date(Date {
            year: 0,
            month: 0,
            day: 0,
        }),
        ColumnType::DateTime { .. } => Value::DateTime(DateTime {
            date: Date {
                year: 0,
                month: 0,
                day: 0,
            },
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        }),
        ColumnType::Timestamp { .. } => Value::Timestamp(Timestamp::ZERO),
        ColumnType::Time { .. } => Value::Time(Time::from_micros(0)),
        ColumnType::Year => Value::Year(0),
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => {
            Value::Text(String::new())
        }
        ColumnType::Binary { len } => Value::Bytes(vec![0; *len as usize]),
        ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => Value::Bytes(Vec::new()),
        ColumnType::Enum { labels } => Value::Enum(labels.first().cloned().unwrap_or_default()),
        ColumnType::Set { .. } => Value::Set(Vec::new()),
        ColumnType::Json | ColumnType::Geometry { .. } | ColumnType::Unsupported { .. } => {
            return None;
        }
    })
}

fn add_column(am: &TableMapping, ai: usize, a: &TableSchema) -> DdlStep {
    let id = &am.source_id;
    let t = am.target.quoted();
    let ac = &am.columns[ai];
    let what = format!("add column {id}.{} {}", ac.source_name, ac.source_type);
    let mut statements = Vec::new();
    if let PgType::Enum { schema, name } = &ac.pg_type {
        statements.push(create_enum_type(schema, name, &ac.source_type));
    }
    if ac.identity_start.is_some() && !ac.pg_type.is_integer() {
        return inexact(
            step(DdlKind::AddColumn, id, what, statements),
            "an AUTO_INCREMENT column that is not an integer in PostgreSQL",
        );
    }
    let def = column_definition(am, ai, default_sql(am, ai).as_deref());
    let generated = a.columns.get(ai).and_then(|c| c.generated.as_ref());
    let mut s = match (&ac.default, ac.nullable) {
        _ if ac.identity_start.is_some() => {
            statements.push(format!("ALTER TABLE {t} ADD COLUMN {def}"));
            inexact(
                step(DdlKind::AddColumn, id, what, statements),
                "MySQL numbered the existing rows itself",
            )
        }
        (Some(PgDefault::Value { .. }), _) | (None, true) => {
            statements.push(format!("ALTER TABLE {t} ADD COLUMN {def}"));
            step(DdlKind::AddColumn, id, what, statements)
        }
        (Some(_), _) => {
            statements.push(format!("ALTER TABLE {t} ADD COLUMN {def}"));
            inexact(
                step(DdlKind::AddColumn, id, what, statements),
                "existing rows got the time of the ALTER on the source, which PostgreSQL cannot know",
            )
        }
        (None, false) => {
            // MySQL fills existing rows with the type's implicit default.
            let fill = implicit_default(&ac.source_type).ok_or_else(|| {
                format!("the implicit default MySQL wrote into existing rows of a NOT NULL {} column is unknown", ac.source_type)
            });
            let fill = fill.and_then(|v| {
                let shown = v.to_string();
                ac.convert(&v)
                    .map_err(|p| format!("existing rows got {shown}, which {p}"))
            });
            match fill {
                Ok(v) => {
                    let fill = literal(&v, &ac.pg_type);
                    statements.push(format!(
                        "ALTER TABLE {t} ADD COLUMN {}",
                        column_definition(am, ai, Some(&fill))
                    ));
                    statements.push(format!(
                        "ALTER TABLE {t} ALTER COLUMN {} DROP DEFAULT",
                        quote_ident(&ac.name)
                    ));
                    step(DdlKind::AddColumn, id, what, statements)
                }
                Err(why) => {
                    statements.push(format!("ALTER TABLE {t} ADD COLUMN {def}"));
                    inexact(step(DdlKind::AddColumn, id, what, statements), why)
                }
            }
        }
    };
    if generated.is_some() && s.inexact.is_none() {
        s = inexact(
            s,
            "a generated column: its values in existing rows are computed on the source and not in the binlog",
        );
    }
    if !ac.comment.is_empty() {
        s.statements
            .push(comment_on_column(am, &ac.name, &ac.comment));
    }
    s
}

/// How a type change converts existing values: `Ok(USING expression or None)` when
/// PostgreSQL ends with MySQL's values, `Err(reason)` when not.
fn type_change(
    bc: &schemas::ColumnMapping,
    ac: &schemas::ColumnMapping,
) -> Result<Option<String>, String> {
    use PgType::*;
    let col = quote_ident(&ac.name);
    let digits = |t: &PgType| match t {
        SmallInt => 5,
        Integer => 10,
        BigInt => 19,
        _ => 0,
    };
    // BINARY(n) pads every value with 0x00 to n bytes; CHAR(n) strips trailing spaces.
    if let ColumnType::Binary { len } = ac.source_type
        && bc.source_type != ac.source_type
        && bc.pg_type == Bytea
    {
        return Ok(Some(format!(
            "CASE WHEN length({col}) < {len} THEN {col} || decode(repeat('00', {len} - length({col})), 'hex') ELSE {col} END"
        )));
    }
    let to_char = matches!(ac.source_type, ColumnType::Char { .. })
        && !matches!(bc.source_type, ColumnType::Char { .. });
    let exact = match (&bc.pg_type, &ac.pg_type) {
        (a, b) if a == b => true,
        (SmallInt, Integer | BigInt)
        | (Integer, BigInt)
        | (Real, Double)
        | (Date, Timestamp { .. }) => true,
        (SmallInt | Integer | BigInt, Numeric { precision, scale }) => {
            i32::from(*precision) - i32::from(*scale) >= digits(&bc.pg_type)
        }
        (
            Numeric {
                precision: p1,
                scale: s1,
            },
            Numeric {
                precision: p2,
                scale: s2,
            },
        ) => s2 >= s1 && i32::from(*p2) - i32::from(*s2) >= i32::from(*p1) - i32::from(*s1),
        (VarChar { .. } | Text, VarChar { .. } | Text) => true,
        (Timestamp { precision: p }, Timestamp { precision: q })
        | (Timestamptz { precision: p }, Timestamptz { precision: q })
        | (Interval { precision: p }, Interval { precision: q }) => q >= p,
        (Enum { .. }, Text | VarChar { .. }) | (Text | VarChar { .. }, Enum { .. }) => {
            return Ok(Some(format!("{col}::{}", ac.pg_type)));
        }
        (Text | VarChar { .. }, Json | Jsonb) | (Json, Jsonb) => {
            return Ok(Some(format!("{col}::{}", ac.pg_type)));
        }
        (BitVarying { .. }, BitVarying { len }) => {
            return Ok(Some(format!(
                "lpad({col}::text, {len}, '0')::bit varying({len})"
            )));
        }
        (Boolean, BitVarying { len }) if matches!(bc.source_type, ColumnType::Bit { .. }) => {
            return Ok(Some(format!(
                "lpad({col}::int::text, {len}, '0')::bit varying({len})"
            )));
        }
        (Boolean, SmallInt | Integer | BigInt) => {
            return Ok(Some(format!("{col}::int::{}", ac.pg_type)));
        }
        _ => false,
    };
    if !exact {
        return Err(format!(
            "MySQL converted the existing values from {} to {} with its own casts",
            bc.source_type, ac.source_type
        ));
    }
    Ok(to_char.then(|| format!("rtrim({col}, ' ')")))
}

fn modify_column(bm: &TableMapping, bi: usize, am: &TableMapping, ai: usize) -> Vec<DdlStep> {
    let id = &am.source_id;
    let t = am.target.quoted();
    let (bc, ac) = (&bm.columns[bi], &am.columns[ai]);
    let col = quote_ident(&ac.name);
    let what = format!(
        "modify column {id}.{} {} → {}",
        ac.source_name, bc.source_type, ac.source_type
    );
    let mut st = Vec::new();
    let mut why = None;
    let check_changed = bc.allowed != ac.allowed || bc.pg_type != ac.pg_type;
    if check_changed && bc.allowed.is_some() {
        st.push(format!(
            "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {}",
            quote_ident(&objects::check(bm, &bc.name))
        ));
    }
    if bc.pg_type != ac.pg_type || bc.source_type != ac.source_type {
        match (&bc.pg_type, &ac.pg_type) {
            (PgType::Enum { schema, name }, PgType::Enum { .. }) => {
                // Same type object: only appended labels keep every value's meaning.
                let (ColumnType::Enum { labels: old }, ColumnType::Enum { labels: new }) =
                    (&bc.source_type, &ac.source_type)
                else {
                    return vec![];
                };
                if new.starts_with(old) {
                    for l in &new[old.len()..] {
                        st.push(format!(
                            "ALTER TYPE {}.{} ADD VALUE {}",
                            quote_ident(schema),
                            quote_ident(name),
                            schemas::pgtext::quote_literal(l)
                        ));
                    }
                } else {
                    why = Some("ENUM labels were removed or reordered, which a PostgreSQL enum type cannot follow".to_owned());
                }
            }
            _ => {
                if let PgType::Enum { schema, name } = &ac.pg_type {
                    st.push(create_enum_type(schema, name, &ac.source_type));
                }
                let (using, reason) = match type_change(bc, ac) {
                    Ok(u) => (u, None),
                    Err(r) => (Some(format!("{col}::{}", ac.pg_type)), Some(r)),
                };
                if bc.pg_type != ac.pg_type || using.is_some() {
                    let mut s = format!("ALTER TABLE {t} ALTER COLUMN {col} TYPE {}", ac.pg_type);
                    if let Some(u) = using {
                        s.push_str(&format!(" USING {u}"));
                    }
                    st.push(s);
                }
                why = reason;
                if let PgType::Enum { schema, name } = &bc.pg_type {
                    st.push(format!(
                        "DROP TYPE IF EXISTS {}.{}",
                        quote_ident(schema),
                        quote_ident(name)
                    ));
                }
            }
        }
    }
    if bc.nullable != ac.nullable {
        st.push(format!(
            "ALTER TABLE {t} ALTER COLUMN {col} {} NOT NULL",
            if ac.nullable { "DROP" } else { "SET" }
        ));
    }
    match (bc.identity_start.is_some(), ac.identity_start.is_some() && ac.pg_type.is_integer()) {
        (false, true) => st.push(format!(
            "ALTER TABLE {t} ALTER COLUMN {col} ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {})",
            ac.identity_start.unwrap_or(1).max(1)
        )),
        (true, false) if bc.pg_type.is_integer() => {
            st.push(format!("ALTER TABLE {t} ALTER COLUMN {col} DROP IDENTITY IF EXISTS"))
        }
        _ => {}
    }
    if bc.default != ac.default && ac.identity_start.is_none() {
        st.push(match &ac.default {
            Some(d) => format!(
                "ALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT {}",
                d.to_sql(&ac.pg_type)
            ),
            None => format!("ALTER TABLE {t} ALTER COLUMN {col} DROP DEFAULT"),
        });
    }
    if check_changed && let Some(check) = check_expression(am, ai) {
        st.push(format!(
            "ALTER TABLE {t} ADD CONSTRAINT {} CHECK ({check})",
            quote_ident(&objects::check(am, &ac.name))
        ));
    }
    if bc.comment != ac.comment {
        st.push(comment_on_column(am, &ac.name, &ac.comment));
    }
    if st.is_empty() && why.is_none() {
        return Vec::new();
    }
    let s = step(DdlKind::ModifyColumn, id, what, st);
    vec![match why {
        Some(w) => inexact(s, w),
        None => s,
    }]
}

#[cfg(test)]
mod tests;
