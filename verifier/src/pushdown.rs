//! Chunk checksums computed inside the two databases: the fast path of a table comparison.
//!
//! **Algorithm.** The table's rows are cut into chunks by an integer key column `k`: chunk
//! `b` holds the rows with `k DIV W = b` (MariaDB) and `k / W = b` (PostgreSQL; `div(k, W)`
//! for `numeric(20,0)`), where `W` comes from the source's `MIN(k)`, `MAX(k)` and row count
//! so that a chunk holds about [`CHUNK_ROWS`] rows. Each side runs **one** aggregate
//! query: per chunk, the row count and the sum of the first 60 bits of each row's MD5 over
//! its text form ([`forms`]), which both servers build byte for byte alike for equal
//! values. Chunks whose count or sum differ (or that exist on one side only) are compared
//! again by the always-correct streaming path ([`crate::read`], [`crate::compare`]),
//! restricted to exactly those chunks, so a differing row is still named with its columns'
//! values, and the lag-versus-drift re-check of [`crate::table`] applies unchanged (each
//! round runs the aggregates again, then streams the chunks that still differ).
//!
//! **Why chunks select the same rows on both sides.** A row's chunk is a function of one
//! integer value, computed by integer division that truncates toward zero on both servers
//! (MariaDB's `DIV` and PostgreSQL's integer `/` and `div(numeric, numeric)`); integers have
//! one value and one order everywhere. No collation, no string comparison and no chunk
//! boundary taken from one server and evaluated by the other ever decides which rows are
//! compared, so a case-insensitive key column (the other columns of a composite key are
//! irrelevant to the chunk) cannot put a row into different chunks on the two sides. A key
//! whose columns are all strings, dates or binary is compared by streaming. Rows of the
//! target outside the source's key range (or with a NULL key, were the target's key
//! constraint dropped) land in chunks the source lacks, which therefore differ.
//!
//! **Why matching aggregates mean matching rows.** Equal forms mean equal values (argued per
//! type in [`forms`]); each row's form includes its key, so moving a value between rows
//! changes the hashes. A chunk whose rows differ in any way has equal count and equal 60-bit
//! sum only when the MD5 slices of the differing rows happen to sum to the same value, a
//! chance of about 2⁻⁶⁰ per differing chunk for data not crafted against MD5. The sums are
//! exact (MariaDB sums `UNSIGNED` into `DECIMAL`, PostgreSQL `bigint` into `numeric`).
//!
//! **When it is not used** ([`plan`]): a transform plan that changes rows (masks, casts,
//! filters, renames computed in my2pg cannot be repeated in SQL), a column type without
//! shared form (floats, JSON, geometry, non-UTF-8 text), no integer key column, a target
//! whose encoding is not UTF8, or a rate-limited pass (background verification reads row by
//! row at the configured rate). The report names the path of every table and why.

pub mod forms;

use std::collections::BTreeMap;

use cdc_reader::rows::{prepare_session, quote_ident as my_ident, quote_table};
use mysql_async::prelude::Queryable;
use schemas::mapping::quote_ident as pg_ident;
use schemas::{ColumnType, PgType, SourcePosition};
use tokio_postgres::Client;

use crate::error::{Result, VerifyError};
use crate::table::TableJob;

/// Rows aimed at per chunk: small enough that re-reading a differing chunk row by row is
/// cheap, large enough that the aggregate result stays a few hundred rows per million.
pub const CHUNK_ROWS: u64 = 10_000;

/// More differing chunks than this are re-compared by streaming the whole table once (one
/// pass is cheaper than a long list of ranges).
pub const MAX_RESTRICTED_CHUNKS: usize = 64;

/// PostgreSQL session settings the target forms assume.
const TARGET_SESSION: &str =
    "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'";

/// How a table is compared.
#[derive(Debug, Clone)]
pub struct Pushdown {
    src_table: String,
    tgt_table: String,
    /// The chunking column, quoted for each side.
    src_key: String,
    tgt_key: String,
    /// The target chunking column is `numeric` (BIGINT UNSIGNED): `div()`, not `/`.
    tgt_key_numeric: bool,
    /// Per-row 60-bit hash expressions.
    src_hash: String,
    tgt_hash: String,
}

/// The pushdown plan of a table, or why it streams.
pub fn plan(job: &TableJob) -> std::result::Result<Pushdown, String> {
    if !job.plan.is_identity() {
        return Err(
            "a transform changes its rows (row by row: the transform runs in my2pg)".into(),
        );
    }
    let schema = job.plan.output();
    let m = &job.mapping;
    if schema.columns.len() != m.columns.len() {
        return Err("its mapping does not match its columns".into());
    }
    let key = m
        .key
        .iter()
        .copied()
        .find(|&i| {
            matches!(
                (
                    schema.columns.get(i).map(|c| &c.ty),
                    m.columns.get(i).map(|c| &c.pg_type)
                ),
                (
                    Some(ColumnType::Integer { .. }),
                    Some(
                        PgType::SmallInt
                            | PgType::Integer
                            | PgType::BigInt
                            | PgType::Numeric { scale: 0, .. }
                    )
                )
            )
        })
        .ok_or_else(|| "its key has no integer column to cut chunks by".to_string())?;
    let mut src = Vec::with_capacity(m.columns.len());
    let mut tgt = Vec::with_capacity(m.columns.len());
    for (c, cm) in schema.columns.iter().zip(&m.columns) {
        let f = forms::column_form(c, cm)?;
        src.push(f.source);
        tgt.push(f.target);
    }
    let (Some(kc), Some(km)) = (schema.columns.get(key), m.columns.get(key)) else {
        return Err("its key names a column that does not exist".into());
    };
    Ok(Pushdown {
        src_table: quote_table(&schema.id),
        tgt_table: m.target.quoted(),
        src_key: my_ident(&kc.name),
        tgt_key: pg_ident(&km.name),
        tgt_key_numeric: matches!(km.pg_type, PgType::Numeric { .. }),
        src_hash: format!(
            "CAST(CONV(SUBSTR(MD5(CONCAT_WS('|', {})), 1, 15), 16, 10) AS UNSIGNED)",
            src.join(", ")
        ),
        tgt_hash: format!(
            "('x' || substr(md5(concat_ws('|', {})), 1, 15))::bit(60)::bigint",
            tgt.join(", ")
        ),
    })
}

/// Prepares the target connection for the forms; `Err(reason)` when the target cannot use
/// them.
pub async fn prepare_target(client: &Client) -> Result<std::result::Result<(), String>> {
    let q = |what: &str| {
        let what = what.to_owned();
        move |source| VerifyError::TargetQuery { what, source }
    };
    let enc: String = client
        .query_one("SHOW server_encoding", &[])
        .await
        .map_err(q("reading the target's server_encoding"))?
        .get(0);
    if !enc.eq_ignore_ascii_case("UTF8") {
        return Ok(Err(format!(
            "the target database's encoding is {enc}, not UTF8"
        )));
    }
    client
        .batch_execute(TARGET_SESSION)
        .await
        .map_err(q("setting the target session's date and time formats"))?;
    Ok(Ok(()))
}

/// One chunk's aggregate: row count and the exact sum of the row hashes (decimal text).
type Agg = (u64, String);

/// A chunk number; `None` for rows whose chunking key is NULL.
pub type ChunkId = Option<i128>;

/// The result of one aggregate comparison.
#[derive(Debug, Clone, Default)]
pub struct ChunkOutcome {
    /// Source rows (sum of the chunk counts).
    pub source_rows: u64,
    /// Target rows.
    pub target_rows: u64,
    /// Chunks compared (on either side).
    pub chunks: u64,
    /// Chunks whose aggregates differ.
    pub differing: Vec<ChunkId>,
    /// Source rows in the differing chunks.
    pub differing_rows: u64,
    /// Source position after the source's snapshot (when asked for).
    pub position: Option<SourcePosition>,
}

/// The chunk width and the rows in the differing chunks: the restriction a streaming
/// re-compare uses.
#[derive(Debug, Clone)]
pub struct Restriction {
    /// `WHERE` condition on the source.
    pub source: String,
    /// `WHERE` condition on the target.
    pub target: String,
}

fn source_q(what: String) -> impl FnOnce(mysql_async::Error) -> VerifyError {
    move |source| VerifyError::Source(cdc_reader::ReaderError::Query { what, source })
}

fn my_i128(v: &mysql_async::Value) -> Option<i128> {
    use mysql_async::Value as V;
    match v {
        V::Int(i) => Some(i128::from(*i)),
        V::UInt(u) => Some(i128::from(*u)),
        V::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn my_text(v: &mysql_async::Value) -> Option<String> {
    use mysql_async::Value as V;
    match v {
        V::Int(i) => Some(i.to_string()),
        V::UInt(u) => Some(u.to_string()),
        V::Bytes(b) => Some(String::from_utf8_lossy(b).trim().to_owned()),
        _ => None,
    }
}

impl Pushdown {
    /// Runs the aggregates on both sides (concurrently) and compares them chunk by chunk.
    pub async fn compare(
        &self,
        source: &cdc_reader::SourceOptions,
        client: &Client,
        table: &schemas::TableId,
        want_position: bool,
    ) -> Result<(ChunkOutcome, i128)> {
        let mut conn = source.connect().await?;
        prepare_session(&mut conn).await?;
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(source_q(format!(
                "starting a consistent snapshot of {table}"
            )))?;
        let what = format!("reading the key range of {table}");
        let row: Option<mysql_async::Row> = conn
            .query_first(format!(
                "SELECT MIN({k}), MAX({k}), COUNT(*) FROM {t}",
                k = self.src_key,
                t = self.src_table
            ))
            .await
            .map_err(source_q(what.clone()))?;
        let (min, max, count) = match row.map(mysql_async::Row::unwrap).as_deref() {
            Some([a, b, c]) => (my_i128(a), my_i128(b), my_i128(c).unwrap_or(0)),
            _ => (None, None, 0),
        };
        let width = chunk_width(min, max, count);
        let src_sql = format!(
            "SELECT {k} DIV {width}, COUNT(*), SUM({h}) FROM {t} GROUP BY 1",
            k = self.src_key,
            h = self.src_hash,
            t = self.src_table
        );
        let tgt_sql = format!(
            "SELECT b::text, n, s::text FROM (SELECT {b} AS b, count(*) AS n, sum({h}) AS s \
             FROM {t} GROUP BY 1) c",
            b = self.tgt_chunk(width),
            h = self.tgt_hash,
            t = self.tgt_table
        );
        let src_what = format!("computing chunk checksums of {table}");
        let source_side = async {
            let rows: Vec<mysql_async::Row> = conn
                .query(src_sql)
                .await
                .map_err(source_q(src_what.clone()))?;
            let mut out: BTreeMap<ChunkId, Agg> = BTreeMap::new();
            for r in rows {
                let v = r.unwrap();
                let (Some(b), Some(n), Some(s)) = (v.first(), v.get(1), v.get(2)) else {
                    continue;
                };
                let id = if matches!(b, mysql_async::Value::NULL) {
                    None
                } else {
                    Some(my_i128(b).ok_or_else(|| VerifyError::Aborted {
                        table: table.clone(),
                        reason: format!("unexpected chunk number {b:?} from the source"),
                    })?)
                };
                let n = my_i128(n).and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                out.insert(id, (n, my_text(s).unwrap_or_default()));
            }
            conn.query_drop("COMMIT")
                .await
                .map_err(source_q("ending a snapshot transaction".into()))?;
            let position = if want_position {
                Some(cdc_reader::binlog::stream::current_position(&mut conn).await?)
            } else {
                None
            };
            let _ = conn.disconnect().await;
            Ok::<_, VerifyError>((out, position))
        };
        let target_side = async {
            let rows = client
                .query(tgt_sql.as_str(), &[])
                .await
                .map_err(|source| VerifyError::TargetQuery {
                    what: format!("computing chunk checksums of {table} on the target"),
                    source,
                })?;
            let mut out: BTreeMap<ChunkId, Agg> = BTreeMap::new();
            let read = |source| VerifyError::TargetQuery {
                what: format!("reading the chunk checksums of {table} on the target"),
                source,
            };
            for r in rows {
                let b: Option<String> = r.try_get(0).map_err(read)?;
                let n: i64 = r.try_get(1).map_err(read)?;
                let s: Option<String> = r.try_get(2).map_err(read)?;
                let id = match b {
                    None => None,
                    Some(b) => Some(b.parse::<i128>().map_err(|_| VerifyError::Aborted {
                        table: table.clone(),
                        reason: format!("unexpected chunk number {b:?} from the target"),
                    })?),
                };
                out.insert(id, (u64::try_from(n).unwrap_or(0), s.unwrap_or_default()));
            }
            Ok::<_, VerifyError>(out)
        };
        let ((src, position), tgt) = futures::try_join!(source_side, target_side)?;
        let mut o = ChunkOutcome {
            position,
            ..ChunkOutcome::default()
        };
        o.source_rows = src.values().map(|a| a.0).sum();
        o.target_rows = tgt.values().map(|a| a.0).sum();
        let ids: std::collections::BTreeSet<&ChunkId> = src.keys().chain(tgt.keys()).collect();
        o.chunks = ids.len() as u64;
        for id in ids {
            let (a, b) = (src.get(id), tgt.get(id));
            if a != b {
                o.differing.push(*id);
                o.differing_rows += a.map_or(0, |a| a.0);
            }
        }
        Ok((o, width))
    }

    fn tgt_chunk(&self, width: i128) -> String {
        if self.tgt_key_numeric {
            format!("div({}, {width})", self.tgt_key)
        } else {
            format!("{} / {width}", self.tgt_key)
        }
    }

    /// The `WHERE` conditions selecting exactly the rows of `chunks` on each side: the chunk
    /// expression itself (exact), and around it the key range that contains the chunk under
    /// truncating division (so the servers can use the key's index).
    pub fn restriction(&self, chunks: &[ChunkId], width: i128) -> Restriction {
        let mut src = Vec::with_capacity(chunks.len());
        let mut tgt = Vec::with_capacity(chunks.len());
        for c in chunks {
            match c {
                None => {
                    src.push(format!("{} IS NULL", self.src_key));
                    tgt.push(format!("{} IS NULL", self.tgt_key));
                }
                Some(b) => {
                    // trunc(k / W) = b  ⇒  b·W − (W − 1) ≤ k ≤ b·W + (W − 1)
                    let lo = b.saturating_mul(width).saturating_sub(width - 1);
                    let hi = b.saturating_mul(width).saturating_add(width - 1);
                    // Clamped to the column's range, so the literals stay of its type (an
                    // index scan) without excluding any value it can hold.
                    let top = if self.tgt_key_numeric {
                        i128::from(u64::MAX)
                    } else {
                        i128::from(i64::MAX)
                    };
                    let (lo, hi) = (lo.max(i128::from(i64::MIN)), hi.min(top));
                    src.push(format!(
                        "({k} BETWEEN {lo} AND {hi} AND {k} DIV {width} = {b})",
                        k = self.src_key
                    ));
                    tgt.push(format!(
                        "({k} BETWEEN {lo} AND {hi} AND {c} = {b})",
                        k = self.tgt_key,
                        c = self.tgt_chunk(width)
                    ));
                }
            }
        }
        Restriction {
            source: src.join(" OR "),
            target: tgt.join(" OR "),
        }
    }
}

/// The chunk width: about [`CHUNK_ROWS`] rows per chunk if the keys were spread evenly over
/// `min..=max`; one huge chunk for an empty source (every target row then differs anyway).
/// Never above `i64::MAX`, so it is a valid literal next to any integer column.
fn chunk_width(min: Option<i128>, max: Option<i128>, count: i128) -> i128 {
    let cap = i128::from(i64::MAX);
    let (Some(min), Some(max)) = (min, max) else {
        return cap;
    };
    let chunks = (count.max(1) + i128::from(CHUNK_ROWS) - 1) / i128::from(CHUNK_ROWS);
    let span = max.saturating_sub(min).saturating_add(1).max(1);
    ((span + chunks - 1) / chunks).clamp(1, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_width_spreads_the_key_range() {
        assert_eq!(chunk_width(Some(1), Some(1_000_000), 1_000_000), 10_000);
        assert_eq!(chunk_width(Some(1), Some(10), 10), 10);
        assert_eq!(chunk_width(None, None, 0), i128::from(i64::MAX));
        assert_eq!(
            chunk_width(Some(i128::from(i64::MIN)), Some(i128::from(u64::MAX)), 3),
            i128::from(i64::MAX)
        );
    }

    /// Every integer in the range computed for its chunk, for positive, zero and negative
    /// chunks under truncating division.
    #[test]
    fn restriction_ranges_contain_their_chunk() {
        for w in [1i128, 2, 3, 7, 10] {
            for k in -50i128..50 {
                let b = k / w; // Rust's `/` truncates toward zero, as both servers do.
                let lo = b * w - (w - 1);
                let hi = b * w + (w - 1);
                assert!(lo <= k && k <= hi, "k {k} w {w}");
            }
        }
    }
}
