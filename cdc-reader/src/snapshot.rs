//! Snapshot reads: chunk boundaries and chunk rows.
//!
//! **Boundaries are the server's.** A table is cut into chunks by its identity key (primary
//! key, or NOT NULL unique key). The boundaries are key values the server itself returns when
//! walking the key index in its own order (`WHERE key > last ORDER BY key LIMIT 1 OFFSET n`),
//! and a chunk is the set of rows with `lower <= key < upper` as the server compares them, with
//! its own collation. Nothing compares key values in Rust, so composite keys, VARCHAR keys
//! under case- and accent-insensitive collations, VARBINARY and DATETIME keys are cut exactly
//! as the server orders them. A key of one integer column whose values are dense is cut by
//! integers computed from its `MIN` and `MAX` instead (integers order alike everywhere; this
//! saves a walk of the whole table). Rows inserted after the boundaries were taken still fall
//! into exactly one chunk: the first chunk has no lower bound and the last no upper bound.
//!
//! **Each chunk is a consistent snapshot.** [`read_chunk`] runs `START TRANSACTION WITH
//! CONSISTENT SNAPSHOT, READ ONLY` on its own connection: the rows it returns are the committed
//! state at one instant, taken without any lock. Why that is enough for an exact result (no
//! global read point is needed) is argued in the sync module that drives the snapshot.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use schemas::value::DateTime;
use schemas::{ColumnType, Row, TableId, TableSchema, Value};

use crate::error::{ReaderError, Result};
use crate::rows::{decode_row, prepare_session, quote_ident, quote_table, select_list};
use crate::value::driver_integer;

fn q(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> ReaderError {
    let what = what.into();
    move |source| ReaderError::Query { what, source }
}

/// A chunk of a table: `lower <= key < upper` (key values in key order; `None`: unbounded).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    /// 0-based chunk number within the table.
    pub index: u32,
    /// Inclusive lower bound.
    pub lower: Option<Vec<Value>>,
    /// Exclusive upper bound.
    pub upper: Option<Vec<Value>>,
}

/// Chunks covering the whole key space, cut at `bounds` (ascending, as the server ordered
/// them).
pub fn chunks(bounds: Vec<Vec<Value>>) -> Vec<Chunk> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut lower = None;
    for (i, b) in bounds.into_iter().enumerate() {
        out.push(Chunk {
            index: i as u32,
            lower: lower.take(),
            upper: Some(b.clone()),
        });
        lower = Some(b);
    }
    out.push(Chunk {
        index: out.len() as u32,
        lower,
        upper: None,
    });
    out
}

/// The server's row estimate for a table (`information_schema.TABLES.TABLE_ROWS`), for
/// progress display only.
pub async fn row_estimate(conn: &mut Conn, id: &TableId) -> Result<u64> {
    let n: Option<Option<u64>> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&id.database, &id.table),
        )
        .await
        .map_err(q(format!("estimating the rows of {id}")))?;
    Ok(n.flatten().unwrap_or(0))
}

/// A source value as a statement parameter that compares equal to the stored value.
pub fn param(v: &Value) -> mysql_async::Value {
    use mysql_async::Value as P;
    match v {
        Value::Null => P::NULL,
        Value::Int(i) => P::Int(*i),
        Value::UInt(u) => P::UInt(*u),
        Value::Float(f) => P::Float(*f),
        Value::Double(d) => P::Double(*d),
        Value::Decimal(d) => P::Bytes(d.as_str().as_bytes().to_vec()),
        Value::Bit { bits, .. } => P::UInt(*bits),
        Value::Date(d) => P::Date(d.year, d.month, d.day, 0, 0, 0, 0),
        Value::DateTime(DateTime {
            date,
            hour,
            minute,
            second,
            micros,
        }) => P::Date(
            date.year, date.month, date.day, *hour, *minute, *second, *micros,
        ),
        // Sessions that read rows run in UTC (`rows::SESSION_SETUP`).
        Value::Timestamp(t) if t.is_zero() => P::Date(0, 0, 0, 0, 0, 0, 0),
        Value::Timestamp(t) => {
            let u = t.to_utc();
            P::Date(
                u.date.year,
                u.date.month,
                u.date.day,
                u.hour,
                u.minute,
                u.second,
                u.micros,
            )
        }
        Value::Time(t) => {
            let days = u32::from(t.hours) / 24;
            P::Time(
                t.negative,
                days,
                (t.hours % 24) as u8,
                t.minutes,
                t.seconds,
                t.micros,
            )
        }
        Value::Year(y) => P::Int(i64::from(*y)),
        Value::Text(s) | Value::Enum(s) | Value::Json(s) => P::Bytes(s.as_bytes().to_vec()),
        Value::Set(m) => P::Bytes(m.join(",").into_bytes()),
        Value::InvalidText { bytes, .. } | Value::Bytes(bytes) => P::Bytes(bytes.clone()),
        Value::Geometry { srid, wkb } => {
            let mut b = srid.to_le_bytes().to_vec();
            b.extend_from_slice(wkb);
            P::Bytes(b)
        }
    }
}

/// `(k1, …, kn) <op> (v1, …, vn)` expanded into the lexicographic form the range optimiser
/// uses: `k1 > v1 OR (k1 = v1 AND k2 > v2) OR …`, with `=` on the last column for `>=`.
fn lexicographic(cols: &[String], greater: bool, inclusive: bool) -> String {
    let (strict, eq) = if greater { (">", ">=") } else { ("<", "<=") };
    let mut terms = Vec::with_capacity(cols.len());
    for i in 0..cols.len() {
        let mut parts: Vec<String> = cols[..i].iter().map(|c| format!("{c} = ?")).collect();
        let last = i == cols.len() - 1;
        parts.push(format!(
            "{} {} ?",
            cols[i],
            if last && inclusive { eq } else { strict }
        ));
        terms.push(format!("({})", parts.join(" AND ")));
    }
    format!("({})", terms.join(" OR "))
}

/// Parameters for [`lexicographic`] with bound `b`.
fn lexicographic_params(b: &[Value]) -> Vec<mysql_async::Value> {
    let mut out = Vec::new();
    for i in 0..b.len() {
        for v in &b[..=i] {
            out.push(param(v));
        }
    }
    out
}

fn key_columns(schema: &TableSchema) -> Result<Vec<String>> {
    let key = schema.identity_key().unwrap_or_default();
    key.iter()
        .map(|&i| schema.columns.get(i).map(|c| quote_ident(&c.name)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ReaderError::Table {
            table: schema.id.clone(),
            reason: "its key names a column that does not exist".into(),
            hint: "re-read the schema (the table changed while it was read)".into(),
        })
}

/// The boundaries that cut `schema` into chunks of about `chunk_rows` rows, as the server
/// orders the key. Empty for a table without a key (one chunk) or smaller than one chunk.
pub async fn chunk_bounds(
    conn: &mut Conn,
    schema: &TableSchema,
    chunk_rows: u64,
) -> Result<Vec<Vec<Value>>> {
    let cols = key_columns(schema)?;
    if cols.is_empty() || chunk_rows == 0 {
        return Ok(Vec::new());
    }
    prepare_session(conn).await?;
    let key: Vec<usize> = schema.identity_key().unwrap_or_default();
    // A key led by an integer column is cut by ranges of that column. The later key columns
    // of a bound only decide where rows with the same leading value fall; any value would
    // do (chunk `i` holds `key >= b(i) AND key < b(i+1)`, complementary conditions the server
    // evaluates), so each gets its smallest value, putting all rows of one leading value in
    // one chunk.
    let rest: Option<Vec<Value>> = key
        .iter()
        .skip(1)
        .map(|&i| match schema.columns.get(i).map(|c| &c.ty) {
            Some(ColumnType::Integer { unsigned: true, .. }) => Some(Value::UInt(0)),
            Some(ColumnType::Integer { .. }) => Some(Value::Int(i64::MIN)),
            Some(ColumnType::Char { .. } | ColumnType::VarChar { .. }) => {
                Some(Value::Text(String::new()))
            }
            _ => None,
        })
        .collect();
    if let (Some(k), Some(col), Some(rest)) = (key.first(), cols.first(), rest)
        && let Some(ColumnType::Integer { unsigned, .. }) = schema.columns.get(*k).map(|c| &c.ty)
        && let Some(bounds) = integer_bounds(conn, schema, col, *unsigned, chunk_rows).await?
    {
        return Ok(bounds
            .into_iter()
            .map(|mut b| {
                b.extend(rest.iter().cloned());
                b
            })
            .collect());
    }
    let key_schema = TableSchema {
        columns: key
            .iter()
            .filter_map(|&i| schema.columns.get(i).cloned())
            .collect(),
        primary_key: (0..key.len()).collect(),
        ..schema.clone()
    };
    let order = cols.join(", ");
    let table = quote_table(&schema.id);
    let mut bounds: Vec<Vec<Value>> = Vec::new();
    loop {
        let (sql, params) = match bounds.last() {
            None => (
                format!("SELECT {order} FROM {table} ORDER BY {order} LIMIT 1 OFFSET {chunk_rows}"),
                Vec::new(),
            ),
            Some(b) => (
                format!(
                    "SELECT {order} FROM {table} WHERE {} ORDER BY {order} LIMIT 1 OFFSET {}",
                    lexicographic(&cols, true, true),
                    chunk_rows
                ),
                lexicographic_params(b),
            ),
        };
        let row: Option<mysql_async::Row> = conn
            .exec_first(sql, params)
            .await
            .map_err(q(format!("finding chunk boundaries of {}", schema.id)))?;
        let Some(row) = row else { break };
        let bound = decode_row(&key_schema, row)?.0;
        if bounds.last() == Some(&bound) {
            break;
        }
        bounds.push(bound);
    }
    Ok(bounds)
}

/// Boundaries of a key's leading integer column computed from its two ends: integers order
/// alike everywhere, so no walk of the key is needed (the walk reads every row once more on
/// the server just to find the boundaries). Used when the values are dense enough that equal
/// ranges hold about equal numbers of rows (the range at most 4 × the estimated rows) and
/// many enough to make every chunk (a leading column with few values, such as a tenant id,
/// would make huge chunks); `None` otherwise, or before the server has a row estimate, and
/// the walk decides.
async fn integer_bounds(
    conn: &mut Conn,
    schema: &TableSchema,
    col: &str,
    unsigned: bool,
    chunk_rows: u64,
) -> Result<Option<Vec<Vec<Value>>>> {
    let estimate = row_estimate(conn, &schema.id).await?;
    if estimate < chunk_rows.saturating_mul(2) {
        return Ok(None);
    }
    let ends: Option<(mysql_async::Value, mysql_async::Value)> = conn
        .query_first(format!(
            "SELECT MIN({col}), MAX({col}) FROM {}",
            quote_table(&schema.id)
        ))
        .await
        .map_err(q(format!("reading the key range of {}", schema.id)))?;
    let Some((Some(min), Some(max))) = ends.map(|(a, b)| (driver_integer(&a), driver_integer(&b)))
    else {
        return Ok(None);
    };
    let span = max - min + 1;
    let n = i128::from(estimate.div_ceil(chunk_rows));
    if span > i128::from(estimate) * 4 || span < n {
        return Ok(None);
    }
    let width = ((span + n - 1) / n).max(1);
    let mut bounds = Vec::new();
    let mut b = min + width;
    while b <= max {
        bounds.push(vec![
            if unsigned {
                u64::try_from(b).map(Value::UInt)
            } else {
                i64::try_from(b).map(Value::Int)
            }
            .map_err(|_| ReaderError::Table {
                table: schema.id.clone(),
                reason: format!("key bound {b} outside the key column's type"),
                hint: "re-read the schema (the table changed while it was read)".into(),
            })?,
        ]);
        b += width;
    }
    Ok(Some(bounds))
}

/// The SELECT of one chunk and its parameters.
pub fn chunk_query(
    schema: &TableSchema,
    chunk: &Chunk,
) -> Result<(String, Vec<mysql_async::Value>)> {
    let cols = key_columns(schema)?;
    let mut conds = Vec::new();
    let mut params = Vec::new();
    if let Some(l) = &chunk.lower {
        conds.push(lexicographic(&cols, true, true));
        params.extend(lexicographic_params(l));
    }
    if let Some(u) = &chunk.upper {
        conds.push(lexicographic(&cols, false, false));
        params.extend(lexicographic_params(u));
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    Ok((
        format!(
            "SELECT {} FROM {}{filter}",
            select_list(schema),
            quote_table(&schema.id)
        ),
        params,
    ))
}

/// Reads one chunk in a consistent snapshot, sending batches of up to `batch_rows` rows to
/// `out` (a bounded channel, so a slow writer slows the read). Returns the number of rows
/// read; stops early, without error, when `out` is closed.
pub async fn read_chunk(
    conn: &mut Conn,
    schema: &TableSchema,
    chunk: &Chunk,
    batch_rows: usize,
    out: &tokio::sync::mpsc::Sender<Vec<Row>>,
) -> Result<u64> {
    begin_snapshot(conn, &schema.id).await?;
    read_open_chunk(conn, schema, chunk, batch_rows, out).await
}

/// Starts the consistent snapshot a chunk is read in ([`read_open_chunk`] reads and ends it).
pub async fn begin_snapshot(conn: &mut Conn, table: &TableId) -> Result<()> {
    prepare_session(conn).await?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(q(format!("starting a consistent snapshot of {table}")))
}

/// Ends a snapshot started by [`begin_snapshot`] without reading it.
pub async fn abandon_snapshot(conn: &mut Conn) -> Result<()> {
    conn.query_drop("ROLLBACK")
        .await
        .map_err(q("ending a snapshot transaction"))
}

/// MariaDB only: the GTID position the open consistent snapshot shows, exactly: every
/// transaction in it is visible to the snapshot and no later one is. MariaDB reports the
/// binlog coordinate of a `WITH CONSISTENT SNAPSHOT` transaction in the status variables
/// `binlog_snapshot_file` and `binlog_snapshot_position` (taken atomically with the snapshot,
/// without a lock), and `BINLOG_GTID_POS` turns it into GTIDs. `None` on MySQL, which reports
/// no such position.
pub async fn snapshot_gtid_pos(
    conn: &mut Conn,
) -> Result<Option<(schemas::MariaGtidPos, schemas::BinlogCoord)>> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(q("reading the snapshot's binlog position"))?;
    let get = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (Some(file), Some(pos)) = (get("binlog_snapshot_file"), get("binlog_snapshot_position"))
    else {
        return Ok(None);
    };
    if file.is_empty() {
        return Ok(None);
    }
    let pos: u64 = pos.parse().map_err(|_| ReaderError::Decode {
        at: "binlog_snapshot_position".into(),
        reason: format!("{pos:?} is not a byte offset"),
    })?;
    let gtid: Option<String> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.as_str(), pos))
        .await
        .map_err(q("converting the snapshot's binlog position to GTIDs"))?;
    let Some(gtid) = gtid else {
        return Ok(None);
    };
    let gtid =
        gtid.parse().map_err(
            |e: schemas::position::PositionParseError| ReaderError::Decode {
                at: "BINLOG_GTID_POS".into(),
                reason: e.to_string(),
            },
        )?;
    Ok(Some((gtid, schemas::BinlogCoord::new(file, pos))))
}

/// Where streaming starts for a copy beginning now. On MariaDB, the position of a consistent
/// snapshot ([`snapshot_gtid_pos`]): every transaction up to it is visible to every chunk
/// snapshot taken afterwards. A position read from `@@gtid_binlog_pos` could name a
/// transaction already in the binlog but not yet committed in InnoDB, which a chunk starting
/// at that moment would not see and streaming would not replay. MySQL reports no snapshot
/// position: its current position is used.
pub async fn start_position(conn: &mut Conn) -> Result<schemas::SourcePosition> {
    let info = crate::preflight::ServerInfo::read(conn).await?;
    if info.flavor == crate::preflight::Flavor::Mariadb {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(q("starting a consistent snapshot"))?;
        let seen = snapshot_gtid_pos(conn).await;
        conn.query_drop("COMMIT")
            .await
            .map_err(q("ending a snapshot transaction"))?;
        if let Some((pos, coord)) = seen? {
            return Ok(schemas::SourcePosition::MariaGtid {
                pos,
                coord: Some(coord),
            });
        }
    }
    crate::binlog::stream::current_position(conn).await
}

/// A chunk's read error: a column or table that no longer exists means the table changed
/// since the copy read its schema (retried with the new one), anything else is the query's.
fn chunk_error(schema: &TableSchema, chunk: &Chunk, e: mysql_async::Error) -> ReaderError {
    // ER_BAD_FIELD_ERROR, ER_NO_SUCH_TABLE.
    if matches!(&e, mysql_async::Error::Server(s) if s.code == 1054 || s.code == 1146) {
        return ReaderError::ChangedDuringCopy {
            table: schema.id.to_string(),
            source: e,
        };
    }
    q(format!("reading chunk {} of {}", chunk.index, schema.id))(e)
}

/// Reads one chunk in the snapshot [`begin_snapshot`] started, like [`read_chunk`], and ends
/// the snapshot.
pub async fn read_open_chunk(
    conn: &mut Conn,
    schema: &TableSchema,
    chunk: &Chunk,
    batch_rows: usize,
    out: &tokio::sync::mpsc::Sender<Vec<Row>>,
) -> Result<u64> {
    let (sql, params) = chunk_query(schema, chunk)?;
    let mut total = 0u64;
    {
        let mut result = conn
            .exec_iter(sql, params)
            .await
            .map_err(|e| chunk_error(schema, chunk, e))?;
        // `QueryResult::next` rather than `QueryResult::stream`: the stream boxes a future
        // for every row, a measurable share of the copy's CPU. `next` is public but hidden
        // from mysql_async's docs; its own `for_each`, `collect` and tests are built on it.
        let mut batch = Vec::with_capacity(batch_rows);
        loop {
            // The message is formatted only on error (this runs once per row).
            let row = result
                .next()
                .await
                .map_err(|e| chunk_error(schema, chunk, e))?;
            let Some(row) = row else { break };
            batch.push(decode_row(schema, row)?);
            if batch.len() >= batch_rows {
                total += batch.len() as u64;
                if out.send(std::mem::take(&mut batch)).await.is_err() {
                    return Ok(total);
                }
            }
        }
        if !batch.is_empty() {
            total += batch.len() as u64;
            let _ = out.send(batch).await;
        }
    }
    conn.query_drop("COMMIT")
        .await
        .map_err(q("ending a snapshot transaction"))?;
    Ok(total)
}

/// Decimal text of a bound, for logs.
pub fn describe(bound: &Option<Vec<Value>>) -> String {
    match bound {
        None => "-".into(),
        Some(v) => v
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicographic_bounds() {
        let cols = vec!["`a`".to_owned(), "`b`".to_owned()];
        assert_eq!(
            lexicographic(&cols, true, true),
            "((`a` > ?) OR (`a` = ? AND `b` >= ?))"
        );
        assert_eq!(
            lexicographic(&cols, false, false),
            "((`a` < ?) OR (`a` = ? AND `b` < ?))"
        );
        let p = lexicographic_params(&[Value::Int(1), Value::Int(2)]);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn chunks_cover_everything() {
        let c = chunks(vec![vec![Value::Int(10)], vec![Value::Int(20)]]);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].lower, None);
        assert_eq!(c[2].upper, None);
        assert_eq!(c[1].lower, Some(vec![Value::Int(10)]));
        assert_eq!(chunks(vec![]).len(), 1);
    }
}
