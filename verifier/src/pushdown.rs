//! Chunk checksums computed inside the two databases: the fast path of a table comparison.
//!
//! **Algorithm.** The table's rows are cut into chunks by ranges of the key's leading column
//! `k`, an integer: `lo <= k <= hi`, the ranges tiling the source's `MIN(k)..=MAX(k)` (read
//! from the key's index), each sized from the source's row estimate to hold about
//! [`CHUNK_ROWS`] rows (fewer when rows are wide), plus one chunk for every row outside that
//! range. For each chunk both servers run one query, concurrently (the source inside one
//! consistent snapshot, the target inside one repeatable-read transaction), returning the
//! row count and a digest of the rows' text forms ([`forms`]), which both servers build byte
//! for byte alike for equal values:
//!
//! - [`Digest::Ordered`] (every key column an integer): the MD5 of the chunk's row forms
//!   joined in key order (`MD5(GROUP_CONCAT(…))` / `md5(string_agg(…))` over the rows
//!   ordered by the key). One hash per chunk instead of one per row: the per-row MD5 call
//!   was half of what both servers spent on verify.
//! - [`Digest::RowSum`] (a key with non-integer columns, whose order differs between the
//!   servers' collations): the exact sum of the first 60 bits of each row's MD5.
//!
//! A differing chunk of more than [`BISECT_ROWS`] rows is bisected: its parts are compared
//! by checksum again, and only the parts that differ go on. Chunks whose counts or digests
//! differ are then compared again by the always-correct streaming
//! path ([`crate::read`], [`crate::compare`]), restricted to exactly those chunks, so a
//! differing row is still named with its columns' values, and the lag-versus-drift re-check
//! of [`crate::table`] applies unchanged (each round runs the checksums again, then streams
//! the chunks that still differ).
//!
//! **Why chunks select the same rows on both sides.** A chunk is a range of one integer
//! column, with bounds computed here as integers; integers have one value and one order
//! everywhere. No collation and no string comparison decides which rows are compared, so a
//! case-insensitive key column (a later column of a composite key) cannot put a row into
//! different chunks on the two sides. Rows of the target outside the source's key range (or
//! with a NULL key, were the target's key constraint dropped) fall into the `Outside` chunk,
//! which then differs. A key whose first column is not an integer is compared by streaming.
//!
//! **Why matching digests mean matching rows.** Equal forms mean equal values (argued per
//! type in [`forms`]); each row's form includes its key. Within a row the fields are
//! separated by `|` and rows by [`ROW_SEPARATOR`]; no form contains either outside a
//! length-prefixed string or a brace-delimited SET, so a chunk's text parses back into
//! exactly one list of rows: equal texts mean equal row lists. Differing texts give equal
//! MD5s only by a collision (about 2⁻¹²⁸ for data not crafted against MD5); differing rows
//! give equal 60-bit sums with a chance of about 2⁻⁶⁰ per differing chunk.
//!
//! **Row order is a speed matter, never a correctness one.** MariaDB joins the rows in the
//! order its range scan of the clustered key returns them (key order); PostgreSQL orders
//! them explicitly. Were the orders ever to differ, the digests of equal chunks would differ
//! and those chunks would be streamed: slower, never a missed difference, because a differing
//! digest only ever sends rows to the exact comparison.
//!
//! **Truncation.** MariaDB cuts `GROUP_CONCAT` at `group_concat_max_len` (set to
//! [`CONCAT_LIMIT`] for the session) with only a warning (1260). A chunk whose source query
//! reports that warning, or whose target text comes within a few bytes of the limit, is split
//! into [`SPLIT`] ranges and compared again; a single key value that large is streamed. A cut
//! text is therefore never compared.
//!
//! **When it is not used** ([`plan`], [`prepare_target`]): a transform plan that changes rows
//! (masks, casts, filters, renames computed in my2pg cannot be repeated in SQL), a column type
//! without shared form (floats, JSON, geometry, non-UTF-8 text), a key not led by an integer
//! column, a target table without an index led by that column (each chunk would scan the
//! table), a target whose encoding is not UTF8, or a rate-limited pass (background
//! verification reads row by row at the configured rate). The report names the path of every
//! table and why.

pub mod forms;

use std::collections::{BTreeMap, VecDeque};

use cdc_reader::rows::{prepare_session, quote_ident as my_ident, quote_table};
use cdc_reader::value::driver_integer as my_i128;
use mysql_async::prelude::Queryable;
use schemas::mapping::quote_ident as pg_ident;
use schemas::{ColumnType, PgType, SourcePosition};
use tokio_postgres::Client;

use crate::error::{Result, VerifyError};
use crate::table::TableJob;

/// Rows aimed at per chunk: small enough that re-reading a differing chunk row by row is
/// cheap (about 0.1 s), large enough that the per-query cost vanishes (25,000 instead of
/// 10,000 rows: 1.29–1.31M instead of 1.20–1.26M rows/s in `benches/verify.rs`).
pub const CHUNK_ROWS: u64 = 25_000;

/// Bytes of row text aimed at per chunk (wide rows make smaller chunks).
const CHUNK_BYTES: u64 = 4 << 20;

/// `group_concat_max_len` of the source session. A chunk whose concatenated text reaches it
/// (MariaDB truncates silently there) is split and compared again as smaller chunks.
const CONCAT_LIMIT: u64 = 32 << 20;

/// Sub-chunks an oversized or differing chunk is split into.
const SPLIT: i128 = 16;

/// A differing chunk holding more rows than this (on either side) is bisected: its
/// [`SPLIT`] parts are compared by checksum, and only those that differ are streamed. A
/// few changed rows in a 25,000-row chunk then cost a second checksum of that chunk and the
/// streaming of about 1,600 rows instead of 25,000.
const BISECT_ROWS: u64 = 2_000;

/// Differing chunks bisected per table at most: when many chunks differ, most of the table
/// is streamed anyway (see [`MAX_RESTRICTED_CHUNKS`]), and more checksums would only add to
/// it.
const MAX_BISECTED: usize = 8;

/// More differing chunks than this are re-compared by streaming the whole table once (one
/// pass is cheaper than a long list of ranges).
pub const MAX_RESTRICTED_CHUNKS: usize = 64;

/// Separates rows in a chunk's text. No row form contains it outside a length-prefixed or
/// brace-delimited field ([`forms`]), so the concatenation parses back into one row list.
const ROW_SEPARATOR: &str = ";";

/// PostgreSQL session settings the target forms assume.
const TARGET_SESSION: &str =
    "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'";

/// How a table is compared.
#[derive(Debug, Clone)]
pub struct Pushdown {
    src_table: String,
    tgt_table: String,
    /// The integer key column chunks are cut by, quoted for each side.
    src_key: String,
    tgt_key: String,
    /// The target's chunking column is `numeric` (BIGINT UNSIGNED): `div()`, not `/`.
    tgt_key_numeric: bool,
    /// How chunks are cut: ranges of a leading key column, or one grouped scan.
    chunking: Chunking,
    /// The target's leading key column, unquoted (to find its index).
    tgt_key_name: String,
    /// The target's key columns, quoted, in key order (the order of a chunk's rows).
    tgt_order: String,
    /// Every key column is an integer: a chunk's rows are concatenated in key order and
    /// hashed once ([`Digest::Ordered`]); otherwise each row is hashed and the hashes summed.
    digest: Digest,
    /// The row's text form on each side.
    src_form: String,
    tgt_form: String,
}

/// How a table is cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Ranges of the key's leading column, one indexed query per chunk and side.
    Ranges,
    /// `k DIV W` groups of an integer key column that does not lead the key (or lacks a
    /// target index): one scan per side, every chunk in one `GROUP BY`.
    Grouped,
}

/// How a chunk's rows become one checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// MD5 of the rows' forms joined in key order: one hash per chunk. Used when the key
    /// orders rows alike on both servers (integers only).
    Ordered,
    /// The exact sum of 60 bits of each row's MD5: order-free, one hash per row.
    RowSum,
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
    let integer = |i: usize| {
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
    };
    let leading = m.key.first().is_some_and(|&i| integer(i));
    let Some(lead) = m.key.iter().copied().find(|&i| integer(i)) else {
        return Err("its key has no integer column to cut chunks by".into());
    };
    let mut src = Vec::with_capacity(m.columns.len());
    let mut tgt = Vec::with_capacity(m.columns.len());
    for (c, cm) in schema.columns.iter().zip(&m.columns) {
        let f = forms::column_form(c, cm)?;
        src.push(f.source);
        tgt.push(f.target);
    }
    let (Some(kc), Some(km)) = (schema.columns.get(lead), m.columns.get(lead)) else {
        return Err("its key names a column that does not exist".into());
    };
    let tgt_order = m
        .key
        .iter()
        .filter_map(|&i| m.columns.get(i))
        .map(|c| pg_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Pushdown {
        src_table: quote_table(&schema.id),
        tgt_table: m.target.quoted(),
        src_key: my_ident(&kc.name),
        tgt_key: pg_ident(&km.name),
        tgt_key_name: km.name.clone(),
        tgt_key_numeric: matches!(km.pg_type, PgType::Numeric { .. }),
        chunking: if leading {
            Chunking::Ranges
        } else {
            Chunking::Grouped
        },
        tgt_order,
        digest: if leading && m.key.iter().all(|&i| integer(i)) {
            Digest::Ordered
        } else {
            Digest::RowSum
        },
        // Every literal of the source form is `_binary`: with one binary operand the whole
        // form is binary, so MariaDB appends each field's bytes without converting them to
        // the connection's character set (about 15 % of the source's work on verify).
        src_form: concat_ws("CONCAT_WS(_binary'|', ", src),
        tgt_form: concat_ws("concat_ws('|', ", tgt),
    })
}

/// Most arguments one `concat_ws` call takes here (PostgreSQL allows 100 per call).
const CONCAT_ARGS: usize = 90;

/// The row form: `open` (a `CONCAT_WS(` with its separator) over the columns' arguments. A
/// table with more arguments than one call takes is joined in nested calls of whole columns;
/// each column gives at least one non-NULL argument (its value or its NULL marker), so no
/// inner call is empty and the text is the same as one flat call's.
fn concat_ws(open: &str, columns: Vec<Vec<String>>) -> String {
    let call = |args: Vec<String>| format!("{open}{})", args.join(", "));
    let mut groups: Vec<Vec<String>> = vec![Vec::new()];
    for column in columns {
        if groups
            .last()
            .is_some_and(|g| !g.is_empty() && g.len() + column.len() > CONCAT_ARGS)
        {
            groups.push(Vec::new());
        }
        if let Some(g) = groups.last_mut() {
            g.extend(column);
        }
    }
    if groups.len() == 1 {
        call(groups.concat())
    } else {
        call(groups.into_iter().map(call).collect())
    }
}

/// Prepares the target connection for the forms and checks that chunk queries can use an
/// index; `Err(reason)` when the target cannot use them.
pub async fn prepare_target(
    client: &Client,
    p: &mut Pushdown,
) -> Result<std::result::Result<(), String>> {
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
    // Each range query selects a range of the leading key column: without an index led by
    // it, every chunk would scan the whole table, so the table is scanned once, grouped.
    let indexed: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
               ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = $1::text::regclass AND a.attname = $2)",
            &[&p.tgt_table, &p.tgt_key_name],
        )
        .await
        .map_err(q("looking up the target's indexes"))?
        .get(0);
    if !indexed {
        p.chunking = Chunking::Grouped;
        p.digest = Digest::RowSum;
    }
    client
        .batch_execute(TARGET_SESSION)
        .await
        .map_err(q("setting the target session's date and time formats"))?;
    Ok(Ok(()))
}

/// A set of rows compared by one checksum: a range of the leading key column, or every row
/// outside the source's key range (a NULL key included; the whole table when the source is
/// empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// `lo <= k <= hi`.
    Keys { lo: i128, hi: i128 },
    /// `k` NULL, below `min` or above `max`.
    Outside {
        min: Option<i128>,
        max: Option<i128>,
    },
    /// [`Chunking::Grouped`]: `k DIV width = b` (truncating), or `k` NULL for `b = None`.
    Group { b: Option<i128>, width: i128 },
}

impl Chunk {
    /// The rows of the chunk, on MariaDB (`mysql`) or PostgreSQL; `top` is the largest value
    /// the key column holds, so range literals stay of its type (an index scan).
    fn condition(&self, k: &str, mysql: bool, top: i128) -> String {
        match *self {
            Chunk::Keys { lo, hi } => format!("{k} BETWEEN {lo} AND {hi}"),
            Chunk::Outside {
                min: Some(min),
                max: Some(max),
            } => format!("({k} IS NULL OR {k} < {min} OR {k} > {max})"),
            Chunk::Outside { .. } => "TRUE".into(),
            Chunk::Group { b: None, .. } => format!("{k} IS NULL"),
            Chunk::Group { b: Some(b), width } => {
                // trunc(k / W) = b  ⇒  b·W − (W − 1) ≤ k ≤ b·W + (W − 1): the range lets the
                // server use the key's index; the division itself decides.
                let lo = b.saturating_mul(width).saturating_sub(width - 1);
                let hi = b.saturating_mul(width).saturating_add(width - 1);
                let (lo, hi) = (lo.max(i128::from(i64::MIN)), hi.min(top));
                let d = if mysql {
                    format!("{k} DIV {width}")
                } else {
                    format!("div({k}, {width})")
                };
                format!("({k} BETWEEN {lo} AND {hi} AND {d} = {b})")
            }
        }
    }
}

/// One side's checksum of a chunk: rows, digest (text, `None` for no rows), and whether the
/// joined text may have been cut at `group_concat_max_len` (on the source MariaDB says so
/// with warning 1260; on the target, a text that long would be cut on the source).
type Sum = (u64, Option<String>, bool);

/// MariaDB's warning for a `GROUP_CONCAT` cut at `group_concat_max_len`.
const WARN_GROUP_CONCAT_CUT: u16 = 1260;

/// The result of one aggregate comparison.
#[derive(Debug, Clone, Default)]
pub struct ChunkOutcome {
    /// Source rows (sum of the chunk counts).
    pub source_rows: u64,
    /// Target rows.
    pub target_rows: u64,
    /// Chunks compared.
    pub chunks: u64,
    /// Chunks whose checksums differ.
    pub differing: Vec<Chunk>,
    /// Source rows in the differing chunks.
    pub differing_rows: u64,
    /// Source position after the source's snapshot (when asked for).
    pub position: Option<SourcePosition>,
}

/// The rows of the differing chunks: the restriction a streaming re-compare uses.
#[derive(Debug, Clone)]
pub struct Restriction {
    /// `WHERE` condition on the source.
    pub source: String,
    /// `WHERE` condition on the target.
    pub target: String,
}

/// Whether the last statement's warnings include a `GROUP_CONCAT` cut (run only when the
/// statement reported warnings).
async fn concat_cut(conn: &mut mysql_async::Conn) -> std::result::Result<bool, mysql_async::Error> {
    let warnings: Vec<(String, u16, String)> = conn.query("SHOW WARNINGS").await?;
    Ok(warnings
        .iter()
        .any(|(_, code, _)| *code == WARN_GROUP_CONCAT_CUT))
}

fn source_q(what: String) -> impl FnOnce(mysql_async::Error) -> VerifyError {
    move |source| VerifyError::Source(cdc_reader::ReaderError::Query { what, source })
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
    /// How this table's chunks are hashed.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The largest value of the chunking column.
    fn top(&self) -> i128 {
        if self.tgt_key_numeric {
            i128::from(u64::MAX)
        } else {
            i128::from(i64::MAX)
        }
    }

    /// A row's 60-bit hash on the source (an exact `UNSIGNED`, summed into `DECIMAL`).
    fn src_row_hash(&self) -> String {
        format!(
            "CAST(CONV(SUBSTR(MD5({}), 1, 15), 16, 10) AS UNSIGNED)",
            self.src_form
        )
    }

    /// The same hash on the target (a `bigint`, summed into `numeric`).
    fn tgt_row_hash(&self) -> String {
        format!(
            "('x' || substr(md5({}), 1, 15))::bit(60)::bigint",
            self.tgt_form
        )
    }

    /// The source query of one chunk: rows, digest.
    fn source_sql(&self, c: &Chunk) -> String {
        let w = c.condition(&self.src_key, true, self.top());
        let (t, f) = (&self.src_table, &self.src_form);
        match self.digest {
            // A range of the clustered key is read in key order, so the rows are joined in
            // key order; were they not, the digests would differ and the chunk would be
            // streamed (slower, never wrong).
            // No derived table: MariaDB would materialize its long text on disk (a temporary
            // Aria table, created and deleted per chunk). A cut is told by a warning instead
            // of the text's length.
            Digest::Ordered => format!(
                "SELECT COUNT(*), MD5(GROUP_CONCAT({f} SEPARATOR '{ROW_SEPARATOR}')) \
                 FROM {t} WHERE {w}"
            ),
            Digest::RowSum => format!(
                "SELECT COUNT(*), SUM({h}) FROM {t} WHERE {w}",
                h = self.src_row_hash()
            ),
        }
    }

    /// The target query of one chunk, in the same shape as [`Self::source_sql`].
    fn target_sql(&self, c: &Chunk) -> String {
        let w = c.condition(&self.tgt_key, false, self.top());
        let (t, f) = (&self.tgt_table, &self.tgt_form);
        match self.digest {
            Digest::Ordered => format!(
                "SELECT n, md5(g), coalesce(octet_length(g), 0)::bigint FROM (SELECT count(*) AS n, \
                 string_agg(x, '{ROW_SEPARATOR}') AS g FROM (SELECT {f} AS x FROM {t} WHERE {w} \
                 ORDER BY {o}) AS r) AS c",
                o = self.tgt_order
            ),
            Digest::RowSum => format!(
                "SELECT count(*), sum({h})::text, 0::bigint FROM {t} WHERE {w}",
                h = self.tgt_row_hash()
            ),
        }
    }

    /// Compares the table chunk by chunk: the source in one consistent snapshot, the target
    /// in one repeatable-read transaction, each chunk's two queries concurrently.
    pub async fn compare(
        &self,
        source: &cdc_reader::SourceOptions,
        client: &Client,
        table: &schemas::TableId,
        want_position: bool,
    ) -> Result<ChunkOutcome> {
        let tq = |what: String| move |source| VerifyError::TargetQuery { what, source };
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(tq(format!("starting a snapshot of {table} on the target")))?;
        let out = self.compare_in(source, client, table, want_position).await;
        // Read-only: ending it either way changes nothing, and frees the connection for the
        // streaming re-compare.
        let end = client.batch_execute("ROLLBACK").await;
        let out = out?;
        end.map_err(tq(format!("ending a snapshot of {table} on the target")))?;
        Ok(out)
    }

    async fn compare_in(
        &self,
        source: &cdc_reader::SourceOptions,
        client: &Client,
        table: &schemas::TableId,
        want_position: bool,
    ) -> Result<ChunkOutcome> {
        let mut conn = source.connect().await?;
        prepare_session(&mut conn).await?;
        conn.query_drop(format!("SET SESSION group_concat_max_len = {CONCAT_LIMIT}"))
            .await
            .map_err(source_q("setting group_concat_max_len".into()))?;
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(source_q(format!(
                "starting a consistent snapshot of {table}"
            )))?;
        // The key's ends come from its index; the row estimate only sizes the chunks.
        let what = format!("reading the key range of {table}");
        let row: Option<mysql_async::Row> = conn
            .query_first(format!(
                "SELECT MIN({k}), MAX({k}) FROM {t}",
                k = self.src_key,
                t = self.src_table
            ))
            .await
            .map_err(source_q(what.clone()))?;
        let (min, max) = match row.map(mysql_async::Row::unwrap).as_deref() {
            Some([a, b]) => (my_i128(a), my_i128(b)),
            _ => (None, None),
        };
        let estimate: Option<(Option<u64>, Option<u64>)> = conn
            .exec_first(
                "SELECT TABLE_ROWS, AVG_ROW_LENGTH FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (table.database.as_str(), table.table.as_str()),
            )
            .await
            .map_err(source_q(what))?;
        let (rows, row_len) = estimate.unwrap_or_default();
        let mut o = if self.chunking == Chunking::Grouped {
            self.grouped(&mut conn, client, table, min, max, rows.unwrap_or(0))
                .await?
        } else {
            self.ranges(&mut conn, client, table, (min, max), (rows, row_len))
                .await?
        };
        conn.query_drop("COMMIT")
            .await
            .map_err(source_q("ending a snapshot transaction".into()))?;
        if want_position {
            o.position = Some(cdc_reader::binlog::stream::current_position(&mut conn).await?);
        }
        let _ = conn.disconnect().await;
        Ok(o)
    }

    /// [`Chunking::Ranges`]: one query per chunk and side.
    async fn ranges(
        &self,
        conn: &mut mysql_async::Conn,
        client: &Client,
        table: &schemas::TableId,
        (min, max): (Option<i128>, Option<i128>),
        (rows, row_len): (Option<u64>, Option<u64>),
    ) -> Result<ChunkOutcome> {
        let mut queue: VecDeque<Chunk> = chunks(min, max, rows.unwrap_or(0), row_len.unwrap_or(0));
        queue.push_back(Chunk::Outside { min, max });

        let mut o = ChunkOutcome::default();
        let src_what = format!("computing chunk checksums of {table}");
        let tgt_what = format!("computing chunk checksums of {table} on the target");
        // A table just loaded by `sync` has no planner statistics until autovacuum analyzes
        // it: PostgreSQL then guesses a few hundred rows per range and plans a bitmap scan
        // plus a sort, about 1.8 times the work of the key index read in order. A range of
        // the key is always best read in order from its index (checked in `prepare_target`),
        // so sorting is ruled out for ranges, whatever the statistics say; `Outside`, a
        // disjunction an index scan cannot take, keeps the planner's choice. `SET LOCAL`
        // ends with the snapshot's transaction.
        let mut sort_off = false;
        let mut bisected = 0;
        while let Some(chunk) = queue.pop_front() {
            let want_off = self.digest == Digest::Ordered && matches!(chunk, Chunk::Keys { .. });
            if want_off != sort_off {
                let set = if want_off { "off" } else { "on" };
                client
                    .batch_execute(&format!("SET LOCAL enable_sort = {set}"))
                    .await
                    .map_err(|source| VerifyError::TargetQuery {
                        what: format!("setting enable_sort for the chunks of {table}"),
                        source,
                    })?;
                sort_off = want_off;
            }
            let (s, t) = futures::try_join!(
                async {
                    let r: Option<mysql_async::Row> = conn
                        .query_first(self.source_sql(&chunk))
                        .await
                        .map_err(source_q(src_what.clone()))?;
                    let cut = conn.get_warnings() > 0
                        && concat_cut(conn).await.map_err(source_q(src_what.clone()))?;
                    Ok::<Sum, VerifyError>(match r.map(mysql_async::Row::unwrap).as_deref() {
                        Some([n, d]) => (
                            my_i128(n).and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                            my_text(d),
                            cut,
                        ),
                        _ => (0, None, cut),
                    })
                },
                async {
                    let r = client
                        .query_one(self.target_sql(&chunk).as_str(), &[])
                        .await
                        .map_err(|source| VerifyError::TargetQuery {
                            what: tgt_what.clone(),
                            source,
                        })?;
                    let read = |source| VerifyError::TargetQuery {
                        what: tgt_what.clone(),
                        source,
                    };
                    let n: i64 = r.try_get(0).map_err(read)?;
                    let d: Option<String> = r.try_get(1).map_err(read)?;
                    let len: i64 = r.try_get(2).map_err(read)?;
                    let len = u64::try_from(len).unwrap_or(0);
                    Ok::<Sum, VerifyError>((
                        u64::try_from(n).unwrap_or(0),
                        d,
                        len + 4 >= CONCAT_LIMIT,
                    ))
                }
            )?;
            // MariaDB cut the text (or would have): compare smaller chunks instead.
            if self.digest == Digest::Ordered
                && (s.2 || t.2)
                && let Some(parts) = split(&chunk)
            {
                for p in parts.into_iter().rev() {
                    queue.push_front(p);
                }
                continue;
            }
            let differs = s.0 != t.0 || s.1 != t.1 || s.2 || t.2;
            // Bisection: a large differing chunk is compared again in parts, and only the
            // parts that differ are streamed.
            if differs
                && s.0.max(t.0) > BISECT_ROWS
                && bisected < MAX_BISECTED
                && let Some(parts) = split(&chunk)
            {
                bisected += 1;
                for p in parts.into_iter().rev() {
                    queue.push_front(p);
                }
                continue;
            }
            o.chunks += 1;
            o.source_rows += s.0;
            o.target_rows += t.0;
            if differs {
                o.differing.push(chunk);
                o.differing_rows += s.0;
            }
        }
        Ok(o)
    }

    /// [`Chunking::Grouped`]: one aggregate scan per side, chunk `k DIV W`.
    async fn grouped(
        &self,
        conn: &mut mysql_async::Conn,
        client: &Client,
        table: &schemas::TableId,
        min: Option<i128>,
        max: Option<i128>,
        rows: u64,
    ) -> Result<ChunkOutcome> {
        let width = group_width(min, max, rows);
        let src_sql = format!(
            "SELECT {k} DIV {width}, COUNT(*), SUM({h}) FROM {t} GROUP BY 1",
            k = self.src_key,
            h = self.src_row_hash(),
            t = self.src_table
        );
        let tgt_chunk = if self.tgt_key_numeric {
            format!("div({}, {width})", self.tgt_key)
        } else {
            format!("{} / {width}", self.tgt_key)
        };
        let tgt_sql = format!(
            "SELECT b::text, n, s::text FROM (SELECT {tgt_chunk} AS b, count(*) AS n, sum({h}) AS s \
             FROM {t} GROUP BY 1) c",
            h = self.tgt_row_hash(),
            t = self.tgt_table
        );
        type Groups = BTreeMap<Option<i128>, (u64, Option<String>)>;
        let bad = |side: &str, b: &dyn std::fmt::Debug| VerifyError::Aborted {
            table: table.clone(),
            reason: format!("unexpected chunk number {b:?} from the {side}"),
        };
        let source_side = async {
            let rows: Vec<mysql_async::Row> = conn
                .query(src_sql)
                .await
                .map_err(source_q(format!("computing chunk checksums of {table}")))?;
            let mut out = Groups::new();
            for r in rows {
                let v = r.unwrap();
                let (Some(b), Some(n), Some(s)) = (v.first(), v.get(1), v.get(2)) else {
                    continue;
                };
                let id = match b {
                    mysql_async::Value::NULL => None,
                    b => Some(my_i128(b).ok_or_else(|| bad("source", b))?),
                };
                let n = my_i128(n).and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                out.insert(id, (n, my_text(s)));
            }
            Ok::<_, VerifyError>(out)
        };
        let target_side = async {
            let what = format!("computing chunk checksums of {table} on the target");
            let read = |source| VerifyError::TargetQuery {
                what: what.clone(),
                source,
            };
            let rows = client.query(tgt_sql.as_str(), &[]).await.map_err(read)?;
            let mut out = Groups::new();
            for r in rows {
                let b: Option<String> = r.try_get(0).map_err(read)?;
                let n: i64 = r.try_get(1).map_err(read)?;
                let s: Option<String> = r.try_get(2).map_err(read)?;
                let id = match b {
                    None => None,
                    Some(b) => Some(b.parse::<i128>().map_err(|_| bad("target", &b))?),
                };
                out.insert(id, (u64::try_from(n).unwrap_or(0), s));
            }
            Ok::<_, VerifyError>(out)
        };
        let (src, tgt) = futures::try_join!(source_side, target_side)?;
        let mut o = ChunkOutcome {
            source_rows: src.values().map(|a| a.0).sum(),
            target_rows: tgt.values().map(|a| a.0).sum(),
            ..ChunkOutcome::default()
        };
        let ids: std::collections::BTreeSet<&Option<i128>> = src.keys().chain(tgt.keys()).collect();
        o.chunks = ids.len() as u64;
        for id in ids {
            let (a, b) = (src.get(id), tgt.get(id));
            if a != b {
                o.differing.push(Chunk::Group { b: *id, width });
                o.differing_rows += a.map_or(0, |a| a.0);
            }
        }
        Ok(o)
    }

    /// The `WHERE` conditions selecting exactly the rows of `chunks` on each side.
    pub fn restriction(&self, chunks: &[Chunk]) -> Restriction {
        let join = |k: &str, mysql: bool| {
            chunks
                .iter()
                .map(|c| format!("({})", c.condition(k, mysql, self.top())))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        Restriction {
            source: join(&self.src_key, true),
            target: join(&self.tgt_key, false),
        }
    }
}

/// The key ranges covering `min..=max`: about [`CHUNK_ROWS`] rows (fewer for wide rows) each
/// if the `rows` estimated were spread evenly. Bounds stay within `min..=max`, so they are
/// valid literals of the key's type.
fn chunks(min: Option<i128>, max: Option<i128>, rows: u64, row_len: u64) -> VecDeque<Chunk> {
    let (Some(min), Some(max)) = (min, max) else {
        return VecDeque::new();
    };
    let per_chunk = (CHUNK_BYTES / row_len.max(1)).clamp(100, CHUNK_ROWS);
    let n = i128::from(rows.div_ceil(per_chunk).max(1));
    let span = max - min + 1;
    let width = ((span + n - 1) / n).max(1);
    let mut out = VecDeque::new();
    let mut lo = min;
    while lo <= max {
        let hi = lo.saturating_add(width - 1).min(max);
        out.push_back(Chunk::Keys { lo, hi });
        lo = hi + 1;
    }
    out
}

/// The width of [`Chunking::Grouped`] chunks: about [`CHUNK_ROWS`] rows each if the keys
/// were spread evenly over `min..=max`; one huge chunk for an empty source (every target row
/// then differs anyway). Never above `i64::MAX`, so it is a valid literal next to any integer
/// column.
fn group_width(min: Option<i128>, max: Option<i128>, rows: u64) -> i128 {
    let cap = i128::from(i64::MAX);
    let (Some(min), Some(max)) = (min, max) else {
        return cap;
    };
    let n = i128::from(rows.div_ceil(CHUNK_ROWS).max(1));
    let span = max.saturating_sub(min).saturating_add(1).max(1);
    ((span + n - 1) / n).clamp(1, cap)
}

/// An oversized chunk in up to [`SPLIT`] parts; `None` for a single key value (streamed).
fn split(c: &Chunk) -> Option<Vec<Chunk>> {
    let Chunk::Keys { lo, hi } = *c else {
        return None;
    };
    if lo >= hi {
        return None;
    }
    let width = ((hi - lo + 1) + SPLIT - 1) / SPLIT;
    let mut out = Vec::new();
    let mut a = lo;
    while a <= hi {
        let b = a.saturating_add(width - 1).min(hi);
        out.push(Chunk::Keys { lo: a, hi: b });
        a = b + 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &VecDeque<Chunk>) -> Vec<(i128, i128)> {
        c.iter()
            .filter_map(|c| match *c {
                Chunk::Keys { lo, hi } => Some((lo, hi)),
                Chunk::Outside { .. } | Chunk::Group { .. } => None,
            })
            .collect()
    }

    /// The ranges tile `min..=max` exactly: no gap, no overlap, no bound outside it.
    #[test]
    fn row_forms_nest_whole_columns_past_the_argument_limit() {
        let col = |i: usize| vec![format!("a{i}"), format!("b{i}")];
        let flat = concat_ws("f(", (0..3).map(col).collect());
        assert_eq!(flat, "f(a0, b0, a1, b1, a2, b2)");
        let wide = concat_ws("f(", (0..100).map(col).collect());
        assert!(wide.starts_with("f(f(a0, b0, "), "{wide}");
        // 45 columns of 2 per inner call, 3 calls, every argument once and in order.
        assert_eq!(wide.matches("f(").count(), 4, "{wide}");
        let args: Vec<&str> = wide
            .split([',', '(', ')', ' '])
            .filter(|a| !a.is_empty() && *a != "f")
            .collect();
        let want: Vec<String> = (0..100).flat_map(col).collect();
        assert_eq!(args, want);
        for inner in wide[2..wide.len() - 1].split("), f(") {
            assert!(inner.matches(',').count() < CONCAT_ARGS, "{inner}");
        }
    }

    #[test]
    fn chunks_tile_the_key_range() {
        for (min, max, rows, len) in [
            (1i128, 1_000_000i128, 1_000_000u64, 50u64),
            (-7, 7, 15, 10),
            (i128::from(i64::MIN), i128::from(i64::MAX), 3, 10),
            (0, i128::from(u64::MAX), 123_456, 2_000_000),
            (5, 5, 0, 0),
        ] {
            let c = keys(&chunks(Some(min), Some(max), rows, len));
            assert_eq!(c.first().map(|c| c.0), Some(min));
            assert_eq!(c.last().map(|c| c.1), Some(max));
            for w in c.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0);
            }
            assert!(c.iter().all(|(a, b)| a <= b));
        }
        assert_eq!(
            keys(&chunks(Some(1), Some(1_000_000), 1_000_000, 50)).len() as u64,
            1_000_000 / CHUNK_ROWS
        );
        assert!(chunks(None, None, 0, 0).is_empty());
    }

    #[test]
    fn group_width_spreads_the_key_range() {
        assert_eq!(
            group_width(Some(1), Some(1_000_000), 1_000_000),
            i128::from(CHUNK_ROWS)
        );
        assert_eq!(group_width(Some(1), Some(10), 10), 10);
        assert_eq!(group_width(None, None, 0), i128::from(i64::MAX));
        assert_eq!(
            group_width(Some(i128::from(i64::MIN)), Some(i128::from(u64::MAX)), 3),
            i128::from(i64::MAX)
        );
    }

    /// Every integer lies in the range computed for its group, for positive, zero and
    /// negative groups under truncating division.
    #[test]
    fn group_ranges_contain_their_group() {
        for w in [1i128, 2, 3, 7, 10] {
            for k in -50i128..50 {
                let b = k / w; // Rust's `/` truncates toward zero, as both servers do.
                let lo = b * w - (w - 1);
                let hi = b * w + (w - 1);
                assert!(lo <= k && k <= hi, "k {k} w {w}");
            }
        }
    }

    #[test]
    fn split_tiles_the_chunk() {
        let parts = split(&Chunk::Keys { lo: -5, hi: 40 }).unwrap();
        let k: VecDeque<Chunk> = parts.into();
        let k = keys(&k);
        assert_eq!(k.first().map(|c| c.0), Some(-5));
        assert_eq!(k.last().map(|c| c.1), Some(40));
        for w in k.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
        assert!(split(&Chunk::Keys { lo: 3, hi: 3 }).is_none());
        assert!(
            split(&Chunk::Outside {
                min: None,
                max: None
            })
            .is_none()
        );
    }
}
