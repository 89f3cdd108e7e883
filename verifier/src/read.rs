//! The two row streams: source rows through the transform plan and the mapping, and target
//! rows decoded from a binary COPY. Each side reduces its rows to [`KeyedRow`]s in its own
//! task (decoding, conversion and SHA-256 run in parallel with the other side and with the
//! merge) and sends them in batches through a bounded channel, so a slow merge slows the
//! readers instead of filling memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use mysql_async::prelude::Queryable;
use schemas::pgbinary::{self, COPY_SIGNATURE};
use schemas::{PgType, PgValue, SourcePosition, TableMapping, TableSchema};
use tokio::sync::mpsc;
use tokio_postgres::Client;

use crate::compare::{KeyedRow, Side};
use crate::error::{Result, VerifyError};

/// Rows per batch sent to the merge.
pub const BATCH_ROWS: usize = 1024;

/// A batch of rows of one side.
pub type Batch = (Side, Vec<KeyedRow>);

/// A rows-per-second limit, applied per batch.
#[derive(Debug)]
pub struct Throttle {
    per_second: Option<u64>,
    start: Instant,
    rows: u64,
}

impl Throttle {
    /// No limit when `per_second` is `None` or 0.
    pub fn new(per_second: Option<u64>) -> Throttle {
        Throttle {
            per_second: per_second.filter(|&n| n > 0),
            start: Instant::now(),
            rows: 0,
        }
    }

    async fn account(&mut self, rows: usize) {
        self.rows += rows as u64;
        if let Some(rate) = self.per_second {
            let due = Duration::from_secs_f64(self.rows as f64 / rate as f64);
            let spent = self.start.elapsed();
            if due > spent {
                tokio::time::sleep(due - spent).await;
            }
        }
    }
}

fn source_q(what: String) -> impl FnOnce(mysql_async::Error) -> VerifyError {
    move |source| VerifyError::Source(cdc_reader::ReaderError::Query { what, source })
}

/// Streams every source row of `input` (in one consistent snapshot, ordered by its key)
/// through `plan` and `mapping`; only the rows matching `filter` (a `WHERE` condition on the
/// source columns) when given. Returns the source position read right after the snapshot
/// ended when `want_position` (the point a concurrent applier must pass before a difference
/// can be called drift).
#[allow(clippy::too_many_arguments)]
pub async fn stream_source(
    opts: cdc_reader::SourceOptions,
    input: Arc<TableSchema>,
    plan: Arc<transform::TablePlan>,
    mapping: Arc<TableMapping>,
    filter: Option<String>,
    out: mpsc::Sender<Batch>,
    rate: Option<u64>,
    want_position: bool,
) -> Result<Option<SourcePosition>> {
    use cdc_reader::rows::{decode_row, prepare_session, quote_ident, quote_table, select_list};
    let mut conn = opts.connect().await?;
    prepare_session(&mut conn).await?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(source_q(format!(
            "starting a consistent snapshot of {}",
            input.id
        )))?;
    let order: Vec<String> = input
        .identity_key()
        .unwrap_or_default()
        .iter()
        .filter_map(|&i| input.columns.get(i).map(|c| quote_ident(&c.name)))
        .collect();
    let order = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", order.join(", "))
    };
    let sql = format!(
        "SELECT {} FROM {}{}{order}",
        select_list(&input),
        quote_table(&input.id),
        filter.map(|f| format!(" WHERE {f}")).unwrap_or_default()
    );
    let what = format!("reading {}", input.id);
    let mut throttle = Throttle::new(rate);
    let mut buf = Vec::with_capacity(512);
    {
        let mut result = conn
            .exec_iter(sql, ())
            .await
            .map_err(source_q(what.clone()))?;
        let stream = result
            .stream::<mysql_async::Row>()
            .await
            .map_err(source_q(what.clone()))?;
        if let Some(mut stream) = stream {
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            while let Some(row) = stream.next().await {
                let row = decode_row(&input, row.map_err(source_q(what.clone()))?)?;
                let Some(row) = plan.row(row) else { continue };
                let values = mapping
                    .convert_row(&row)
                    .map_err(|source| VerifyError::Convert { source })?;
                batch.push(KeyedRow::new(values, &mapping.key, &mut buf));
                if batch.len() >= BATCH_ROWS {
                    throttle.account(batch.len()).await;
                    if out
                        .send((Side::Source, std::mem::take(&mut batch)))
                        .await
                        .is_err()
                    {
                        return Ok(None);
                    }
                }
            }
            if !batch.is_empty() {
                let _ = out.send((Side::Source, batch)).await;
            }
        }
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
    Ok(position)
}

/// `ORDER BY` of the target key columns (empty without a key).
fn target_order(m: &TableMapping) -> String {
    let cols: Vec<String> = m
        .key
        .iter()
        .filter_map(|&i| {
            m.columns
                .get(i)
                .map(|c| schemas::mapping::quote_ident(&c.name))
        })
        .collect();
    if cols.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", cols.join(", "))
    }
}

/// Streams every target row of `mapping`'s table (one binary COPY, ordered by key); only the
/// rows matching `filter` (a `WHERE` condition on the target columns) when given.
pub async fn stream_target(
    client: Arc<Client>,
    mapping: Arc<TableMapping>,
    filter: Option<String>,
    out: mpsc::Sender<Batch>,
    rate: Option<u64>,
) -> Result<()> {
    let sql = format!(
        "COPY (SELECT {} FROM {}{}{}) TO STDOUT (FORMAT binary)",
        sink::binary::column_list(&mapping),
        mapping.target.quoted(),
        filter.map(|f| format!(" WHERE {f}")).unwrap_or_default(),
        target_order(&mapping)
    );
    let what = || format!("reading {} with COPY", mapping.target);
    let stream = client
        .copy_out(&sql)
        .await
        .map_err(|source| VerifyError::TargetQuery {
            what: what(),
            source,
        })?;
    futures::pin_mut!(stream);
    let types: Vec<PgType> = mapping.columns.iter().map(|c| c.pg_type.clone()).collect();
    let mut decoder = CopyDecoder::new(types);
    let mut throttle = Throttle::new(rate);
    let mut buf = Vec::with_capacity(512);
    let decode_err = |source| VerifyError::Decode {
        table: mapping.target.to_string(),
        source,
    };
    // COPY sends one message per row: gather rows across messages into full batches, so the
    // channel (and the merge task's wake-ups) see one send per BATCH_ROWS rows, not per row.
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = chunk.map_err(|source| VerifyError::TargetQuery {
            what: what(),
            source,
        })?;
        decoder.feed(&chunk);
        while let Some(values) = decoder.next_row().map_err(decode_err)? {
            batch.push(KeyedRow::new(values, &mapping.key, &mut buf));
        }
        if batch.len() >= BATCH_ROWS {
            throttle.account(batch.len()).await;
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            if out.send((Side::Target, full)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = out.send((Side::Target, batch)).await;
    }
    Ok(())
}

/// An incremental decoder of a `COPY … TO STDOUT (FORMAT binary)` stream: bytes arrive in
/// arbitrary pieces, complete tuples come out. Hand-written because `schemas::pgbinary`
/// decodes a whole stream held in memory and no crate decodes COPY BINARY into our values.
#[derive(Debug)]
pub struct CopyDecoder {
    types: Vec<PgType>,
    buf: Vec<u8>,
    pos: usize,
    header_done: bool,
    ended: bool,
}

fn short(what: &str) -> schemas::pgbinary::BinaryError {
    schemas::pgbinary::BinaryError::Decode {
        ty: "COPY stream".into(),
        reason: what.into(),
    }
}

impl CopyDecoder {
    /// A decoder for tuples of `types`.
    pub fn new(types: Vec<PgType>) -> CopyDecoder {
        CopyDecoder {
            types,
            buf: Vec::new(),
            pos: 0,
            header_done: false,
            ended: false,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    fn avail(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// The next complete tuple, `None` when more bytes are needed (or the trailer was read).
    pub fn next_row(&mut self) -> Result<Option<Vec<PgValue>>, schemas::pgbinary::BinaryError> {
        if self.ended {
            return Ok(None);
        }
        if !self.header_done {
            let b = self.avail();
            let fixed = COPY_SIGNATURE.len() + 8;
            if b.len() < fixed {
                return Ok(None);
            }
            if &b[..COPY_SIGNATURE.len()] != COPY_SIGNATURE {
                return Err(short("missing PGCOPY signature"));
            }
            let ext = i32::from_be_bytes([b[15], b[16], b[17], b[18]]);
            let ext = usize::try_from(ext).map_err(|_| short("negative header extension"))?;
            if b.len() < fixed + ext {
                return Ok(None);
            }
            self.pos += fixed + ext;
            self.header_done = true;
        }
        let b = self.avail();
        if b.len() < 2 {
            return Ok(None);
        }
        let n = i16::from_be_bytes([b[0], b[1]]);
        if n == -1 {
            self.ended = true;
            self.pos += 2;
            return Ok(None);
        }
        if usize::try_from(n).ok() != Some(self.types.len()) {
            return Err(short(&format!(
                "tuple of {n} fields, expected {}",
                self.types.len()
            )));
        }
        // First pass: is the whole tuple here? (Field boundaries only, nothing decoded.)
        let mut at = 2usize;
        let mut fields: Vec<Option<(usize, usize)>> = Vec::with_capacity(self.types.len());
        for _ in 0..self.types.len() {
            let Some(l) = b.get(at..at + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
            at += 4;
            match usize::try_from(len) {
                Ok(len) => {
                    if b.len() < at + len {
                        return Ok(None);
                    }
                    fields.push(Some((at, len)));
                    at += len;
                }
                Err(_) => fields.push(None),
            }
        }
        let mut row = Vec::with_capacity(self.types.len());
        for (ty, f) in self.types.iter().zip(&fields) {
            let bytes = f.map(|(s, l)| &b[s..s + l]);
            row.push(pgbinary::decode_value(ty, bytes)?);
        }
        self.pos += at;
        Ok(Some(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_copy_stream_split_anywhere() {
        let types = vec![PgType::Integer, PgType::Text];
        let rows = vec![
            vec![PgValue::Int4(1), PgValue::Text("a".into())],
            vec![PgValue::Int4(2), PgValue::Null],
        ];
        let mut data = Vec::new();
        pgbinary::copy_header(&mut data);
        for r in &rows {
            pgbinary::copy_row(r, &mut data).unwrap();
        }
        pgbinary::copy_trailer(&mut data);
        for split in 1..data.len() {
            let mut d = CopyDecoder::new(types.clone());
            let mut got = Vec::new();
            for piece in data.chunks(split) {
                d.feed(piece);
                while let Some(r) = d.next_row().unwrap() {
                    got.push(r);
                }
            }
            assert_eq!(got, rows, "split {split}");
        }
    }
}
