//! Schema introspection: `information_schema` → [`TableSchema`].
//!
//! One query per catalogue view per database (not per table), so a database with thousands of
//! tables is read in a handful of round trips. The server's own spelling is kept: names are
//! case-sensitive as stored, `COLUMN_TYPE` is parsed by [`ColumnType::parse`], defaults are kept
//! as `COLUMN_DEFAULT` prints them.
//!
//! MariaDB's JSON is `LONGTEXT` with a `CHECK (json_valid(col))` constraint; such columns are
//! reported as [`ColumnType::Json`] so that they map to `jsonb` like MySQL's native JSON.

use std::collections::{BTreeMap, HashMap};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use schemas::table::{ForeignKey, Generated, Index, IndexColumn};
use schemas::{Charset, Column, ColumnType, TableId, TableSchema};

use crate::error::{ReaderError, Result};

fn q(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> ReaderError {
    let what = what.into();
    move |source| ReaderError::Query { what, source }
}

/// Names of the base tables of `database` (views excluded), sorted.
pub async fn list_tables(conn: &mut Conn, database: &str) -> Result<Vec<String>> {
    conn.exec(
        "SELECT TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        (database,),
    )
    .await
    .map_err(q(format!("listing the tables of database {database}")))
}

/// Names of all databases except the server's own.
pub async fn list_databases(conn: &mut Conn) -> Result<Vec<String>> {
    conn.query(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN \
         ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY SCHEMA_NAME",
    )
    .await
    .map_err(q("listing databases"))
}

/// Reads the schema of one table; [`ReaderError::NotFound`] when it does not exist.
pub async fn read_table(conn: &mut Conn, id: &TableId) -> Result<TableSchema> {
    let mut all = read_database(conn, &id.database, Some(&id.table)).await?;
    all.remove(&id.table).ok_or_else(|| ReaderError::NotFound {
        what: format!("table {id}"),
    })
}

type ColumnRow = (
    String,         // TABLE_NAME
    String,         // COLUMN_NAME
    Option<String>, // COLUMN_DEFAULT
    String,         // IS_NULLABLE
    String,         // COLUMN_TYPE
    Option<String>, // CHARACTER_SET_NAME
    Option<String>, // COLLATION_NAME
    String,         // EXTRA
    String,         // COLUMN_COMMENT
    Option<String>, // GENERATION_EXPRESSION
);

/// Reads every base table of `database` (or only `only_table`), keyed by table name.
pub async fn read_database(
    conn: &mut Conn,
    database: &str,
    only_table: Option<&str>,
) -> Result<BTreeMap<String, TableSchema>> {
    let table_filter = if only_table.is_some() {
        " AND TABLE_NAME = ?"
    } else {
        " AND ? IS NULL"
    };
    let params = (database, only_table);
    let tables: Vec<(String, String, Option<u64>)> = conn
        .exec(
            format!(
                "SELECT TABLE_NAME, TABLE_COMMENT, AUTO_INCREMENT FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'{table_filter}"
            ),
            params,
        )
        .await
        .map_err(q(format!(
            "reading information_schema.TABLES for {database}"
        )))?;
    let mut out: BTreeMap<String, TableSchema> = tables
        .into_iter()
        .map(|(name, comment, auto_increment)| {
            let schema = TableSchema {
                id: TableId::new(database, name.clone()),
                columns: Vec::new(),
                primary_key: Vec::new(),
                unique_keys: Vec::new(),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                comment,
                auto_increment,
            };
            (name, schema)
        })
        .collect();
    if out.is_empty() {
        return Ok(out);
    }

    let json_columns = mariadb_json_columns(conn, database).await?;
    let columns: Vec<ColumnRow> = conn
        .exec(
            format!(
                "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE, \
                 CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, COLUMN_COMMENT, GENERATION_EXPRESSION \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?{table_filter} \
                 ORDER BY TABLE_NAME, ORDINAL_POSITION"
            ),
            params,
        )
        .await
        .map_err(q(format!(
            "reading information_schema.COLUMNS for {database}"
        )))?;
    for (
        table,
        name,
        default,
        nullable,
        column_type,
        charset,
        collation,
        extra,
        comment,
        gen_expr,
    ) in columns
    {
        let Some(t) = out.get_mut(&table) else {
            continue;
        };
        let extra_l = extra.to_ascii_lowercase();
        let mut ty = ColumnType::parse(&column_type).map_err(|e| ReaderError::Table {
            table: t.id.clone(),
            reason: format!("column {name}: {e}"),
            hint: "report this column type to the my2pg developers; exclude the table meanwhile"
                .into(),
        })?;
        if json_columns.contains(&(table.clone(), name.clone()))
            && matches!(ty, ColumnType::Text { .. })
        {
            ty = ColumnType::Json;
        }
        let generated = if extra_l.contains("generated") {
            Some(Generated {
                expression: gen_expr.unwrap_or_default(),
                stored: extra_l.contains("stored"),
            })
        } else {
            None
        };
        // Binary string types report no character set; JSON on MySQL is utf8mb4.
        let json_default = matches!(ty, ColumnType::Json).then_some(Charset::Utf8mb4);
        let charset = charset.as_deref().map(Charset::from_name).or(json_default);
        t.columns.push(Column {
            name,
            ty,
            nullable: nullable.eq_ignore_ascii_case("YES"),
            charset,
            collation,
            default,
            auto_increment: extra_l.contains("auto_increment"),
            on_update_current_timestamp: extra_l.contains("on update current_timestamp"),
            generated,
            invisible: extra_l.contains("invisible"),
            comment,
        });
    }

    // (table, index) → (non_unique, type, parts)
    type IndexRow = (
        String,
        String,
        i64,
        i64,
        Option<String>,
        Option<u32>,
        String,
        Option<String>,
    );
    let stats: Vec<IndexRow> = conn
        .exec(
            format!(
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, INDEX_TYPE, COLLATION \
                 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?{table_filter} \
                 ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
            ),
            params,
        )
        .await
        .map_err(q(format!("reading information_schema.STATISTICS for {database}")))?;
    let mut indexes: BTreeMap<(String, String), Index> = BTreeMap::new();
    for (table, index, non_unique, _seq, column, sub_part, kind, collation) in stats {
        let Some(t) = out.get(&table) else { continue };
        // Functional key parts (MySQL 8) have no column; such an index cannot be copied as is.
        let Some(column) = column else { continue };
        let Some(col_idx) = t.column_index(&column) else {
            continue;
        };
        let entry = indexes
            .entry((table.clone(), index.clone()))
            .or_insert_with(|| Index {
                name: index.clone(),
                columns: Vec::new(),
                unique: non_unique == 0,
                kind: kind.clone(),
            });
        entry.columns.push(IndexColumn {
            column: col_idx,
            prefix_len: sub_part,
            descending: collation.as_deref() == Some("D"),
        });
    }
    for ((table, name), index) in indexes {
        let Some(t) = out.get_mut(&table) else {
            continue;
        };
        if name == "PRIMARY" {
            t.primary_key = index.columns.iter().map(|c| c.column).collect();
        } else if index.unique {
            t.unique_keys.push(index);
        } else {
            t.indexes.push(index);
        }
    }

    type FkRow = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    );
    let fks: Vec<FkRow> = conn
        .exec(
            format!(
                "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, \
                 k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE \
                 FROM information_schema.KEY_COLUMN_USAGE k \
                 JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
                   ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
                  AND r.TABLE_NAME = k.TABLE_NAME \
                 WHERE k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL{} \
                 ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
                table_filter.replace("TABLE_NAME", "k.TABLE_NAME")
            ),
            params,
        )
        .await
        .map_err(q(format!("reading foreign keys of {database}")))?;
    let mut fk_map: BTreeMap<(String, String), ForeignKey> = BTreeMap::new();
    for (table, name, column, ref_db, ref_table, ref_column, on_update, on_delete) in fks {
        let fk = fk_map
            .entry((table, name.clone()))
            .or_insert_with(|| ForeignKey {
                name,
                columns: Vec::new(),
                references: TableId::new(ref_db, ref_table),
                referenced_columns: Vec::new(),
                on_delete,
                on_update,
            });
        fk.columns.push(column);
        fk.referenced_columns.push(ref_column);
    }
    for ((table, _), fk) in fk_map {
        if let Some(t) = out.get_mut(&table) {
            t.foreign_keys.push(fk);
        }
    }
    Ok(out)
}

/// `(table, column)` pairs that MariaDB declares as JSON (`CHECK (json_valid(col))`). MySQL has
/// no such constraints for its native JSON type, so this is empty there.
async fn mariadb_json_columns(conn: &mut Conn, database: &str) -> Result<Vec<(String, String)>> {
    // CHECK_CONSTRAINTS exists on MariaDB 10.2+ and MySQL 8.0.16+; older servers have no JSON
    // emulation to detect, so an error here means "none".
    let rows: Vec<(String, String)> = match conn
        .exec(
            "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND CHECK_CLAUSE LIKE '%json_valid%'",
            (database,),
        )
        .await
    {
        Ok(rows) => rows,
        Err(mysql_async::Error::Server(_)) => return Ok(Vec::new()),
        Err(e) => return Err(q(format!("reading check constraints of {database}"))(e)),
    };
    let mut out = Vec::new();
    for (table, clause) in rows {
        // MariaDB writes `json_valid(`col`)`.
        let lower = clause.to_ascii_lowercase();
        if let Some(start) = lower.find("json_valid(") {
            let inner = &clause[start + "json_valid(".len()..];
            if let Some(end) = inner.find(')') {
                let name = inner[..end].trim().trim_matches('`').replace("``", "`");
                out.push((table, name));
            }
        }
    }
    Ok(out)
}

/// The default collation of a table (`information_schema.TABLES.TABLE_COLLATION`).
pub async fn table_collation(conn: &mut Conn, id: &TableId) -> Result<Option<String>> {
    let c: Option<Option<String>> = conn
        .exec_first(
            "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&id.database, &id.table),
        )
        .await
        .map_err(q(format!("reading the collation of {id}")))?;
    Ok(c.flatten())
}

/// Collation id → character set, from the live server (knows every id, including MariaDB's
/// UCA 14 collations above 2047). Used to decode text columns named by collation id in binlog
/// table maps.
pub async fn collation_charsets(conn: &mut Conn) -> Result<HashMap<u16, Charset>> {
    let rows: Vec<(Option<u64>, Option<String>)> = conn
        .query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS")
        .await
        .map_err(q("reading information_schema.COLLATIONS"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, cs)| Some((u16::try_from(id?).ok()?, Charset::from_name(&cs?))))
        .collect())
}
