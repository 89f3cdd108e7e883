//! The selected source tables, introspected: `[tables]` (or `--databases`, `--include`,
//! `--exclude`) applied to the databases the source user can see.

use std::sync::Arc;

use anyhow::Result;
use mysql_async::Conn;

use cdc_reader::ReaderError;
use cdc_reader::schema::{list_databases, read_database};
use schemas::TableSchema;

use crate::config::TableSelection;

/// Reads the schema of every selected table, sorted by database and name. A database named
/// explicitly (`--databases`) that does not exist is an error.
pub async fn read_selected(
    conn: &mut Conn,
    selection: &TableSelection,
) -> Result<Vec<Arc<TableSchema>>> {
    let databases = list_databases(conn).await?;
    for named in selection.named_databases() {
        if !databases.contains(named) {
            return Err(ReaderError::NotFound {
                what: format!("database {named}"),
            }
            .into());
        }
    }
    let mut out = Vec::new();
    for db in databases
        .iter()
        .filter(|d| selection.may_select_database(d))
    {
        for (_, t) in read_database(conn, db, None).await? {
            if selection.selects(&t.id) {
                out.push(Arc::new(t));
            }
        }
    }
    Ok(out)
}
