//! Reading table rows over SQL (snapshot chunks, verify, tests): statement building with safe
//! identifier quoting, and exact decoding through [`crate::value::from_driver`].

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use schemas::{Row, TableId, TableSchema};

use crate::error::{ReaderError, Result};
use crate::value::{SESSION_SETUP, from_driver};

/// Quotes a MySQL identifier: backquotes, with embedded backquotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `` `db`.`table` ``.
pub fn quote_table(id: &TableId) -> String {
    format!("{}.{}", quote_ident(&id.database), quote_ident(&id.table))
}

/// The select list naming every column explicitly (so INVISIBLE columns are included and the
/// order is the schema's).
pub fn select_list(schema: &TableSchema) -> String {
    schema
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prepares a connection for reading rows ([`SESSION_SETUP`]).
pub async fn prepare_session(conn: &mut Conn) -> Result<()> {
    conn.query_drop(SESSION_SETUP)
        .await
        .map_err(|source| ReaderError::Query {
            what: "setting up a row-reading session".into(),
            source,
        })
}

/// Decodes one driver row of `schema`'s select list.
pub fn decode_row(schema: &TableSchema, row: mysql_async::Row) -> Result<Row> {
    let values = row.unwrap();
    if values.len() != schema.columns.len() {
        return Err(ReaderError::Table {
            table: schema.id.clone(),
            reason: format!(
                "expected {} columns, the server sent {}",
                schema.columns.len(),
                values.len()
            ),
            hint: "the table changed while it was read; run again".into(),
        });
    }
    let mut out = Vec::with_capacity(values.len());
    for (col, v) in schema.columns.iter().zip(values) {
        out.push(from_driver(col, v).map_err(|e| ReaderError::Table {
            table: schema.id.clone(),
            reason: e.to_string(),
            hint: "report this value to the my2pg developers".into(),
        })?);
    }
    Ok(Row(out))
}

/// Reads every row of a table, ordered by its identity key when it has one. For tests and
/// small tables; the snapshot reads in key-range chunks instead.
pub async fn read_all(conn: &mut Conn, schema: &TableSchema) -> Result<Vec<Row>> {
    prepare_session(conn).await?;
    let order = schema
        .identity_key()
        .map(|k| {
            let cols: Vec<String> = k
                .iter()
                .map(|&i| quote_ident(&schema.columns[i].name))
                .collect();
            format!(" ORDER BY {}", cols.join(", "))
        })
        .unwrap_or_default();
    let sql = format!(
        "SELECT {} FROM {}{order}",
        select_list(schema),
        quote_table(&schema.id)
    );
    let rows: Vec<mysql_async::Row> =
        conn.exec(sql, ())
            .await
            .map_err(|source| ReaderError::Query {
                what: format!("reading {}", schema.id),
                source,
            })?;
    rows.into_iter().map(|r| decode_row(schema, r)).collect()
}
