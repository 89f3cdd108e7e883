//! Writing and reading [`PgValue`]s in PostgreSQL's binary format through `tokio-postgres`:
//! binary parameters ([`Param`]), binary COPY into a table ([`copy_rows`]) and binary COPY out
//! of one ([`read_rows`], for the verifier and tests).
//!
//! The bytes come from `schemas::pgbinary` (see there why they are hand-written); this module
//! only frames them for the driver. Every statement names its columns in the mapping's source
//! column order, so rows line up with [`TableMapping::columns`] whatever the target's physical
//! column order is (streaming DDL can leave columns in another order than the source's).

use std::error::Error as StdError;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, TryStreamExt};
use schemas::mapping::quote_ident;
use schemas::pgbinary::{self, BinaryError};
use schemas::{PgType, PgValue, TableMapping};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, CopyInSink, Transaction};

use crate::error::{Result, SinkError};

/// Rows per COPY chunk handed to the driver: large enough to amortise the per-message cost,
/// small enough that a batch of wide rows stays a few megabytes.
pub const COPY_CHUNK_ROWS: usize = 1000;

/// A [`PgValue`] as a binary parameter. The value's bytes are checked against the parameter
/// type the server inferred where the value's type is fixed, so a mapping bug surfaces as an
/// error naming both types instead of bytes the server misreads.
#[derive(Debug, Clone, Copy)]
pub struct Param<'a>(pub &'a PgValue);

/// Whether a value's binary form is the binary form of the parameter type `ty`.
fn fits(v: &PgValue, ty: &Type) -> bool {
    let oid = ty.oid();
    match v {
        PgValue::Null => true,
        PgValue::Bool(_) => oid == Type::BOOL.oid(),
        PgValue::Int2(_) => oid == Type::INT2.oid(),
        PgValue::Int4(_) => oid == Type::INT4.oid(),
        PgValue::Int8(_) => oid == Type::INT8.oid(),
        PgValue::Float4(_) => oid == Type::FLOAT4.oid(),
        PgValue::Float8(_) => oid == Type::FLOAT8.oid(),
        PgValue::Numeric(_) => oid == Type::NUMERIC.oid(),
        PgValue::Text(_) => [
            Type::TEXT.oid(),
            Type::VARCHAR.oid(),
            Type::BPCHAR.oid(),
            Type::NAME.oid(),
            Type::UNKNOWN.oid(),
        ]
        .contains(&oid),
        PgValue::Bytea(_) => oid == Type::BYTEA.oid(),
        PgValue::Date(_) => oid == Type::DATE.oid(),
        PgValue::Timestamp(_) => oid == Type::TIMESTAMP.oid(),
        PgValue::Timestamptz(_) => oid == Type::TIMESTAMPTZ.oid(),
        PgValue::Interval { .. } => oid == Type::INTERVAL.oid(),
        PgValue::BitVarying { .. } => oid == Type::VARBIT.oid() || oid == Type::BIT.oid(),
        PgValue::Json(_) => oid == Type::JSON.oid(),
        PgValue::Jsonb(_) => oid == Type::JSONB.oid(),
        PgValue::TextArray(_) => oid == Type::TEXT_ARRAY.oid() || oid == Type::VARCHAR_ARRAY.oid(),
        PgValue::Enum(_) => matches!(ty.kind(), tokio_postgres::types::Kind::Enum(_)),
        PgValue::Uuid(_) => oid == Type::UUID.oid(),
        // PostGIS types have per-database OIDs.
        PgValue::Geometry(_) => true,
    }
}

/// The parameter type does not take this value's binary form.
#[derive(Debug, thiserror::Error)]
#[error("a {value} value cannot be sent as a {param} parameter")]
struct TypeMismatch {
    value: &'static str,
    param: String,
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        if self.0.is_null() {
            return Ok(IsNull::Yes);
        }
        if !fits(self.0, ty) {
            return Err(Box::new(TypeMismatch {
                value: self.0.kind(),
                param: ty.name().to_owned(),
            }));
        }
        let mut buf = Vec::new();
        pgbinary::encode_value(self.0, &mut buf)?;
        out.extend_from_slice(&buf);
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        // Checked per value in `to_sql`, where the value is known.
        true
    }

    to_sql_checked!();
}

/// Parameters for a row, ready for `client.execute(sql, &params(&values).refs())`.
pub fn params(values: &[PgValue]) -> Vec<Param<'_>> {
    values.iter().map(Param).collect()
}

/// `&dyn ToSql` views of parameters.
pub fn param_refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// `"col1", "col2", …` in the mapping's (source) column order.
pub fn column_list(m: &TableMapping) -> String {
    m.columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO t (cols) VALUES ($1, …)` for one row of the mapping.
pub fn insert_statement(m: &TableMapping) -> String {
    let placeholders: Vec<String> = (1..=m.columns.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        m.target.quoted(),
        column_list(m),
        placeholders.join(", ")
    )
}

/// `COPY t (cols) FROM STDIN (FORMAT binary)`.
pub fn copy_in_statement(m: &TableMapping) -> String {
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        m.target.quoted(),
        column_list(m)
    )
}

/// Something that can start a COPY FROM STDIN (a client or a transaction).
pub trait CopyTarget {
    /// Starts `COPY … FROM STDIN`.
    fn copy_in_raw(
        &self,
        sql: &str,
    ) -> impl std::future::Future<
        Output = std::result::Result<CopyInSink<Bytes>, tokio_postgres::Error>,
    > + Send;
}

impl CopyTarget for Client {
    async fn copy_in_raw(
        &self,
        sql: &str,
    ) -> std::result::Result<CopyInSink<Bytes>, tokio_postgres::Error> {
        self.copy_in(sql).await
    }
}

impl CopyTarget for Transaction<'_> {
    async fn copy_in_raw(
        &self,
        sql: &str,
    ) -> std::result::Result<CopyInSink<Bytes>, tokio_postgres::Error> {
        self.copy_in(sql).await
    }
}

fn encode_err(m: &TableMapping, e: BinaryError) -> SinkError {
    SinkError::Encode {
        table: m.target.to_string(),
        source: e,
    }
}

/// Writes converted rows (each in the mapping's column order) with one binary COPY; returns
/// the number of rows the server reports.
pub async fn copy_rows<C: CopyTarget + Sync>(
    client: &C,
    m: &TableMapping,
    rows: &[Vec<PgValue>],
) -> Result<u64> {
    let mut buf = Vec::with_capacity(64 * 1024);
    pgbinary::copy_header(&mut buf);
    for row in rows {
        pgbinary::copy_row(row, &mut buf).map_err(|e| encode_err(m, e))?;
    }
    pgbinary::copy_trailer(&mut buf);
    copy_encoded(client, m, buf).await
}

/// Writes one complete binary COPY stream (header, tuples, trailer: [`pgbinary`], or
/// [`TableMapping::copy_row`] for source rows) into the mapping's table; returns the number
/// of rows the server reports.
pub async fn copy_encoded<C: CopyTarget + Sync>(
    client: &C,
    m: &TableMapping,
    data: Vec<u8>,
) -> Result<u64> {
    let what = || format!("COPY into {}", m.target);
    let q = |source| SinkError::Query {
        what: what(),
        source,
    };
    let sink = client.copy_in_raw(&copy_in_statement(m)).await.map_err(q)?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(data)).await.map_err(q)?;
    sink.as_mut().finish().await.map_err(q)
}

/// A binary COPY kept open across batches: [`CopyStream::open`] sends the header, each
/// [`CopyStream::send`] a run of tuples (from [`TableMapping::copy_row`]), and
/// [`CopyStream::finish`] the trailer. The initial copy writes a whole chunk through one
/// statement instead of one per batch: PostgreSQL sets up its multi-insert state per COPY
/// and, before version 17, releases its buffered slots at a cost that grows with the square
/// of their number, so short COPYs cost it noticeably more per row.
pub struct CopyStream {
    sink: std::pin::Pin<Box<CopyInSink<Bytes>>>,
    target: String,
    /// Tuples sent, checked against the server's count at [`CopyStream::finish`].
    rows: u64,
}

impl std::fmt::Debug for CopyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyStream")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl CopyStream {
    /// Starts `COPY … FROM STDIN (FORMAT binary)` into the mapping's table.
    pub async fn open<C: CopyTarget + Sync>(client: &C, m: &TableMapping) -> Result<Self> {
        let target = m.target.to_string();
        let sink = client
            .copy_in_raw(&copy_in_statement(m))
            .await
            .map_err(copy_error(&target))?;
        let mut stream = CopyStream {
            sink: Box::pin(sink),
            target,
            rows: 0,
        };
        let mut header = Vec::with_capacity(19);
        pgbinary::copy_header(&mut header);
        stream.send(header, 0).await?;
        Ok(stream)
    }

    /// Sends `rows` encoded tuples (no header, no trailer).
    pub async fn send(&mut self, data: Vec<u8>, rows: u64) -> Result<()> {
        self.rows += rows;
        self.sink
            .send(Bytes::from(data))
            .await
            .map_err(copy_error(&self.target))
    }

    /// Sends the trailer and ends the COPY; returns the number of rows written, an error if
    /// the server counted another number than was sent (nothing is then taken as copied).
    pub async fn finish(mut self) -> Result<u64> {
        let mut trailer = Vec::with_capacity(2);
        pgbinary::copy_trailer(&mut trailer);
        self.send(trailer, 0).await?;
        let written = self
            .sink
            .as_mut()
            .finish()
            .await
            .map_err(copy_error(&self.target))?;
        if written != self.rows {
            return Err(SinkError::CopyCount {
                table: self.target,
                sent: self.rows,
                written,
            });
        }
        Ok(written)
    }
}

fn copy_error(target: &str) -> impl Fn(tokio_postgres::Error) -> SinkError + '_ {
    move |source| SinkError::Query {
        what: format!("COPY into {target}"),
        source,
    }
}

/// Reads every row of the mapping's target table with a binary COPY, decoded into
/// [`PgValue`]s in the mapping's column order; `order_by` (target column names) sorts them.
pub async fn read_rows(
    client: &Client,
    m: &TableMapping,
    order_by: &[&str],
) -> Result<Vec<Vec<PgValue>>> {
    let order = if order_by.is_empty() {
        String::new()
    } else {
        format!(
            " ORDER BY {}",
            order_by
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let sql = format!(
        "COPY (SELECT {} FROM {}{order}) TO STDOUT (FORMAT binary)",
        column_list(m),
        m.target.quoted()
    );
    let what = || format!("reading {} with COPY", m.target);
    let stream = client
        .copy_out(&sql)
        .await
        .map_err(|source| SinkError::Query {
            what: what(),
            source,
        })?;
    let chunks: Vec<Bytes> = stream
        .try_collect()
        .await
        .map_err(|source| SinkError::Query {
            what: what(),
            source,
        })?;
    let data: Vec<u8> = chunks.concat();
    let types: Vec<PgType> = m.columns.iter().map(|c| c.pg_type.clone()).collect();
    pgbinary::decode_copy(&types, &data).map_err(|e| encode_err(m, e))
}
