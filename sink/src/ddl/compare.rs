//! Comparing a table that already exists on the target with what the mapping would create.
//!
//! `my2pg schema --apply` never overwrites a table: when the target already has it, the
//! catalogue's view (`format_type`, `attnotnull`, the primary key) is compared with the
//! mapping and every difference is reported, so the operator decides. Types are compared in
//! `format_type` spelling, which is how [`PgType`]'s `Display` writes them.

use serde::Serialize;
use tokio_postgres::GenericClient;

use schemas::TableMapping;
use schemas::mapping::{PgTable, PgType};

use crate::error::{Result, SinkError};

/// One column of an existing target table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetColumn {
    /// Column name.
    pub name: String,
    /// `format_type(atttypid, atttypmod)`.
    pub type_name: String,
    /// `attnotnull`.
    pub not_null: bool,
}

/// An existing target table as the catalogue describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetTable {
    /// Columns in physical order.
    pub columns: Vec<TargetColumn>,
    /// Primary key column names, in key order (empty: none).
    pub primary_key: Vec<String>,
}

/// Reads `t` from the catalogue; `None` when it does not exist.
pub async fn read_target_table<C: GenericClient + Sync>(
    client: &C,
    t: &PgTable,
) -> Result<Option<TargetTable>> {
    let q = |source| SinkError::Query {
        what: format!("reading the definition of {t} on the target"),
        source,
    };
    let reg = t.quoted();
    let exists = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&reg])
        .await
        .map_err(q)?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull \
             FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 \
             AND NOT a.attisdropped ORDER BY a.attnum",
            &[&reg],
        )
        .await
        .map_err(q)?;
    let columns = rows
        .iter()
        .map(|r| TargetColumn {
            name: r.get(0),
            type_name: r.get(1),
            not_null: r.get(2),
        })
        .collect();
    let pk = client
        .query(
            "SELECT a.attname::text FROM pg_constraint c \
             CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
             WHERE c.conrelid = to_regclass($1) AND c.contype = 'p' ORDER BY k.ord",
            &[&reg],
        )
        .await
        .map_err(q)?;
    Ok(Some(TargetTable {
        columns,
        primary_key: pk.iter().map(|r| r.get(0)).collect(),
    }))
}

/// Whether a catalogue type name is the mapped type.
fn same_type(expected: &PgType, found: &str) -> bool {
    let unquoted = found.replace('"', "");
    match expected {
        PgType::Enum { schema, name } => {
            unquoted == *name || unquoted == format!("{schema}.{name}")
        }
        PgType::Geometry => unquoted
            .trim_start_matches("public.")
            .starts_with("geometry"),
        other => other.to_string() == found,
    }
}

/// The differences between the mapping and an existing table, one sentence each (empty:
/// the table is what the mapping would create).
pub fn compare(m: &TableMapping, t: &TargetTable) -> Vec<String> {
    let mut out = Vec::new();
    for c in &m.columns {
        match t.columns.iter().find(|tc| tc.name == c.name) {
            None => out.push(format!(
                "column {:?} is missing (expected {})",
                c.name, c.pg_type
            )),
            Some(tc) => {
                if !same_type(&c.pg_type, &tc.type_name) {
                    out.push(format!(
                        "column {:?} is {}, the mapping gives {}",
                        c.name, tc.type_name, c.pg_type
                    ));
                }
                if tc.not_null == c.nullable {
                    out.push(format!(
                        "column {:?} is {}, the source column is {}",
                        c.name,
                        if tc.not_null { "NOT NULL" } else { "nullable" },
                        if c.nullable { "nullable" } else { "NOT NULL" }
                    ));
                }
            }
        }
    }
    for tc in &t.columns {
        if !m.columns.iter().any(|c| c.name == tc.name) {
            out.push(format!(
                "column {:?} ({}) is not in the source table",
                tc.name, tc.type_name
            ));
        }
    }
    let expected_pk: Vec<String> = m
        .source
        .primary_key
        .iter()
        .filter_map(|&i| m.columns.get(i))
        .map(|c| c.name.clone())
        .collect();
    if expected_pk != t.primary_key {
        out.push(format!(
            "primary key is ({}), the source's is ({})",
            t.primary_key.join(", "),
            expected_pk.join(", ")
        ));
    }
    out
}
