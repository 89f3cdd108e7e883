//! Set-based writes through temporary staging tables.
//!
//! Upserts: binary COPY of the rows into a temporary table shaped like the target, then one
//! `INSERT … SELECT … ON CONFLICT (key) DO UPDATE` — one round trip per table per batch however
//! many rows it holds. Deletes: binary COPY of the keys into a temporary key table, then one
//! `DELETE … USING`. Staging tables live for the session (`ON COMMIT DELETE ROWS` empties them
//! at every commit; they are also truncated after each use, because a large source transaction
//! applies several pieces inside one target transaction). A schema change to a table drops its
//! staging tables so they are rebuilt with the new shape.

use std::collections::HashSet;

use schemas::mapping::quote_ident;
use schemas::{PgValue, TableMapping};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::binary;
use crate::error::{Result, SinkError};

fn q(what: String) -> impl FnOnce(tokio_postgres::Error) -> SinkError {
    move |source| SinkError::Query { what, source }
}

/// Names of the staging tables of a target table: short, stable, free of user text.
pub fn stage_names(m: &TableMapping) -> (String, String) {
    let h = Sha256::digest(m.target.quoted().as_bytes());
    let tag: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
    (format!("my2pg_stage_{tag}"), format!("my2pg_stage_{tag}_k"))
}

fn key_columns(m: &TableMapping) -> Vec<String> {
    m.key
        .iter()
        .filter_map(|&k| m.columns.get(k))
        .map(|c| quote_ident(&c.name))
        .collect()
}

/// `INSERT INTO target (…) OVERRIDING SYSTEM VALUE SELECT … FROM stage ON CONFLICT (key) DO
/// UPDATE SET …` (`DO NOTHING` when every column is a key column).
pub fn upsert_sql(m: &TableMapping) -> String {
    let (stage, _) = stage_names(m);
    let cols = binary::column_list(m);
    let keys = key_columns(m);
    let sets = update_set(m);
    let action = if sets.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        format!("DO UPDATE SET {}", sets.join(", "))
    };
    format!(
        "INSERT INTO {} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM pg_temp.{} ON CONFLICT ({}) {action}",
        m.target.quoted(),
        quote_ident(&stage),
        keys.join(", ")
    )
}

/// `DELETE FROM target t USING key_stage s WHERE t.k = s.k AND …`.
pub fn delete_sql(m: &TableMapping) -> String {
    let (_, kstage) = stage_names(m);
    let cond: Vec<String> = key_columns(m)
        .iter()
        .map(|k| format!("t.{k} = s.{k}"))
        .collect();
    format!(
        "DELETE FROM {} t USING pg_temp.{} s WHERE {}",
        m.target.quoted(),
        quote_ident(&kstage),
        cond.join(" AND ")
    )
}

/// Creates the staging tables of `m` unless this session has them.
pub async fn ensure(
    client: &Client,
    m: &TableMapping,
    created: &mut HashSet<String>,
) -> Result<()> {
    let (stage, kstage) = stage_names(m);
    if created.contains(&stage) {
        return Ok(());
    }
    let keys = key_columns(m).join(", ");
    let cols = binary::column_list(m);
    // Only the mapped columns, in the mapping's order, with the target's column types.
    let sql = format!(
        "CREATE TEMP TABLE IF NOT EXISTS {s} ON COMMIT DELETE ROWS AS SELECT {cols} FROM {t} WITH NO DATA; \
         CREATE TEMP TABLE IF NOT EXISTS {k} ON COMMIT DELETE ROWS AS SELECT {keys} FROM {t} WITH NO DATA",
        s = quote_ident(&stage),
        k = quote_ident(&kstage),
        t = m.target.quoted(),
    );
    let sql = if keys.is_empty() {
        sql.split("; ").next().unwrap_or_default().to_owned()
    } else {
        sql
    };
    client
        .batch_execute(&sql)
        .await
        .map_err(q(format!("creating the staging tables of {}", m.target)))?;
    created.insert(stage);
    Ok(())
}

/// Drops the staging tables of `m` (after a schema change of its table).
pub async fn forget(
    client: &Client,
    m: &TableMapping,
    created: &mut HashSet<String>,
) -> Result<()> {
    let (stage, kstage) = stage_names(m);
    if created.remove(&stage) {
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS pg_temp.{}; DROP TABLE IF EXISTS pg_temp.{}",
                quote_ident(&stage),
                quote_ident(&kstage)
            ))
            .await
            .map_err(q(format!("dropping the staging tables of {}", m.target)))?;
    }
    Ok(())
}

/// COPY of `rows` into a staging table named by `table` with `columns`.
async fn copy_into(
    client: &Client,
    table: &str,
    columns: &str,
    rows: &[Vec<PgValue>],
    what: &str,
) -> Result<()> {
    use futures::SinkExt as _;
    let sql = format!(
        "COPY pg_temp.{} ({columns}) FROM STDIN (FORMAT binary)",
        quote_ident(table)
    );
    let sink = client
        .copy_in(&sql)
        .await
        .map_err(q(format!("COPY into staging for {what}")))?;
    futures::pin_mut!(sink);
    let mut buf = Vec::with_capacity(64 * 1024);
    schemas::pgbinary::copy_header(&mut buf);
    for chunk in rows.chunks(binary::COPY_CHUNK_ROWS) {
        for row in chunk {
            schemas::pgbinary::copy_row(row, &mut buf).map_err(|source| SinkError::Encode {
                table: what.to_owned(),
                source,
            })?;
        }
        sink.send(bytes::Bytes::from(std::mem::take(&mut buf)))
            .await
            .map_err(q(format!("COPY into staging for {what}")))?;
    }
    schemas::pgbinary::copy_trailer(&mut buf);
    sink.send(bytes::Bytes::from(buf))
        .await
        .map_err(q(format!("COPY into staging for {what}")))?;
    sink.as_mut()
        .finish()
        .await
        .map_err(q(format!("COPY into staging for {what}")))?;
    Ok(())
}

/// Upserts `rows` (each in the mapping's column order) into the target.
pub async fn upsert(client: &Client, m: &TableMapping, rows: &[Vec<PgValue>]) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    stage_rows(client, m, rows).await?;
    merge_staged(client, m).await
}

/// Adds `rows` (each in the mapping's column order) to the staging table of `m`, touching no
/// row of the target until [`merge_staged`].
pub async fn stage_rows(client: &Client, m: &TableMapping, rows: &[Vec<PgValue>]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let (stage, _) = stage_names(m);
    copy_into(
        client,
        &stage,
        &binary::column_list(m),
        rows,
        &m.target.to_string(),
    )
    .await
}

/// Upserts every row staged for `m` into the target in one statement, and empties the
/// staging table.
pub async fn merge_staged(client: &Client, m: &TableMapping) -> Result<u64> {
    let (stage, _) = stage_names(m);
    let what = m.target.to_string();
    let n = client
        .execute(&upsert_sql(m), &[])
        .await
        .map_err(q(format!("upserting into {what}")))?;
    client
        .batch_execute(&format!("TRUNCATE pg_temp.{}", quote_ident(&stage)))
        .await
        .map_err(q(format!("emptying the staging table of {what}")))?;
    Ok(n)
}

/// Deletes the rows with `keys` (each in key order) from the target.
pub async fn delete(client: &Client, m: &TableMapping, keys: &[Vec<PgValue>]) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let (_, kstage) = stage_names(m);
    let what = m.target.to_string();
    copy_into(client, &kstage, &key_columns(m).join(", "), keys, &what).await?;
    let n = client
        .execute(&delete_sql(m), &[])
        .await
        .map_err(q(format!("deleting from {what}")))?;
    client
        .batch_execute(&format!("TRUNCATE pg_temp.{}", quote_ident(&kstage)))
        .await
        .map_err(q(format!("emptying the staging table of {what}")))?;
    Ok(n)
}

/// `col = EXCLUDED.col` for every non-key column (the SET list of an upsert).
fn update_set(m: &TableMapping) -> Vec<String> {
    m.columns
        .iter()
        .enumerate()
        .filter(|(i, _)| !m.key.contains(i))
        .map(|(_, c)| {
            let n = quote_ident(&c.name);
            format!("{n} = EXCLUDED.{n}")
        })
        .collect()
}

/// Single-row upsert with parameters (the row-by-row path).
pub fn upsert_one_sql(m: &TableMapping) -> String {
    let cols = binary::column_list(m);
    let params: Vec<String> = (1..=m.columns.len()).map(|i| format!("${i}")).collect();
    let keys = key_columns(m);
    let sets = update_set(m);
    let conflict = if keys.is_empty() {
        String::new()
    } else if sets.is_empty() {
        format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", "))
    } else {
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            keys.join(", "),
            sets.join(", ")
        )
    };
    format!(
        "INSERT INTO {} ({cols}) OVERRIDING SYSTEM VALUE VALUES ({}){conflict}",
        m.target.quoted(),
        params.join(", ")
    )
}

/// Single-row delete by key with parameters.
pub fn delete_one_sql(m: &TableMapping) -> String {
    let cond: Vec<String> = key_columns(m)
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ${}", i + 1))
        .collect();
    format!(
        "DELETE FROM {} WHERE {}",
        m.target.quoted(),
        cond.join(" AND ")
    )
}

/// Deletes one row equal to `row` in every column (tables without a key): the first match
/// by physical location, so duplicates are removed one at a time as the source removed them.
pub fn delete_full_row_sql(m: &TableMapping) -> String {
    let cond: Vec<String> = m
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} IS NOT DISTINCT FROM ${}", quote_ident(&c.name), i + 1))
        .collect();
    format!(
        "DELETE FROM {t} WHERE ctid = (SELECT ctid FROM {t} WHERE {} LIMIT 1)",
        cond.join(" AND "),
        t = m.target.quoted()
    )
}
