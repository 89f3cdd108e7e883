//! One value as the PostgreSQL target holds it, and the conversion of source rows into it.
//!
//! [`PgValue`] is the value *after* the mapping's policies: it is what binary COPY and binary
//! parameters send ([`crate::pgbinary`]), what the verifier decodes from the target, and what
//! the canonical hash covers ([`crate::canonical`]). Its variants mirror PostgreSQL's own
//! binary representations (days and microseconds since 2000-01-01, an interval's three fields,
//! a numeric's exact digits), so a value converted from the source and the same value read
//! back from the target are equal as Rust values — no float, no time zone, no text formatting
//! sits between them.
//!
//! [`TableMapping::convert_row`] applies every policy of [`ColumnMapping`]. A value the target
//! type cannot hold under the chosen policy is a [`ConvertError`] naming `db.table.column`, the
//! row's key and the value — never a silent substitution. The only substitutions are those the
//! operator configured (`zero_date = null`, `nul_in_text = strip`, …), and they are exactly the
//! documented ones.

use std::fmt;

use serde::Serialize;

use crate::charset::Charset;
use crate::mapping::options::{InvalidText, NulInText, ZeroDate, is_real_date};
use crate::mapping::{ColumnMapping, PgType, TableMapping};
use crate::value::{Date, DateTime, Decimal, Row, Timestamp, Value, days_from_civil};

/// Days from 1970-01-01 (Unix) to 2000-01-01 (PostgreSQL's epoch).
pub const PG_EPOCH_UNIX_DAYS: i64 = 10_957;
/// Seconds from 1970-01-01 00:00:00 UTC to 2000-01-01 00:00:00 UTC.
pub const PG_EPOCH_UNIX_SECS: i64 = PG_EPOCH_UNIX_DAYS * 86_400;
/// PostgreSQL's `-infinity` date (days) and timestamp (microseconds).
pub const DATE_NEG_INFINITY: i32 = i32::MIN;
/// PostgreSQL's `infinity` date.
pub const DATE_INFINITY: i32 = i32::MAX;
/// PostgreSQL's `-infinity` timestamp.
pub const TIMESTAMP_NEG_INFINITY: i64 = i64::MIN;
/// PostgreSQL's `infinity` timestamp.
pub const TIMESTAMP_INFINITY: i64 = i64::MAX;

/// A `numeric` value: exact decimal digits, or one of PostgreSQL's special values (which no
/// MySQL value maps to; they can only be read from a target).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum Numeric {
    /// A number, with its scale (trailing fraction zeros) as written.
    Value(Decimal),
    /// `NaN`.
    NaN,
    /// `Infinity`.
    Infinity,
    /// `-Infinity`.
    NegInfinity,
}

/// One value as the target holds it. See the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PgValue {
    /// NULL.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `smallint`.
    Int2(i16),
    /// `integer`.
    Int4(i32),
    /// `bigint`.
    Int8(i64),
    /// `real`.
    Float4(f32),
    /// `double precision`.
    Float8(f64),
    /// `numeric`.
    Numeric(Numeric),
    /// `text` / `varchar`: valid UTF-8 without NUL.
    Text(String),
    /// `bytea`.
    Bytea(Vec<u8>),
    /// `date`: days since 2000-01-01 ([`DATE_NEG_INFINITY`], [`DATE_INFINITY`]).
    Date(i32),
    /// `timestamp`: microseconds since 2000-01-01 00:00:00 (no zone).
    Timestamp(i64),
    /// `timestamptz`: microseconds since 2000-01-01 00:00:00 UTC.
    Timestamptz(i64),
    /// `interval`, PostgreSQL's three fields.
    Interval {
        /// Months.
        months: i32,
        /// Days.
        days: i32,
        /// Microseconds.
        micros: i64,
    },
    /// `bit varying`: `len` bits, most significant first, padded with zero bits to bytes.
    BitVarying {
        /// Number of bits.
        len: u32,
        /// The bits.
        bytes: Vec<u8>,
    },
    /// `json`: the text as stored.
    Json(String),
    /// `jsonb`, as JSON text.
    Jsonb(String),
    /// `text[]` (one dimension, no NULL elements).
    TextArray(Vec<String>),
    /// A value of a PostgreSQL enum type: its label.
    Enum(String),
    /// `uuid`.
    Uuid([u8; 16]),
    /// PostGIS `geometry`, as extended WKB.
    Geometry(Vec<u8>),
}

impl PgValue {
    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, PgValue::Null)
    }

    /// The PostgreSQL date of a real calendar date; `None` for zero or invalid dates.
    pub fn date_days(d: &Date) -> Option<i32> {
        if !is_real_date(d) {
            return None;
        }
        let days = days_from_civil(i64::from(d.year), u32::from(d.month), u32::from(d.day))
            - PG_EPOCH_UNIX_DAYS;
        i32::try_from(days).ok()
    }

    /// Microseconds since 2000-01-01 of a DATETIME reading; `None` for zero or invalid dates.
    pub fn timestamp_micros(dt: &DateTime) -> Option<i64> {
        let days = i64::from(Self::date_days(&dt.date)?);
        let secs = days * 86_400
            + i64::from(dt.hour) * 3600
            + i64::from(dt.minute) * 60
            + i64::from(dt.second);
        Some(secs * 1_000_000 + i64::from(dt.micros))
    }

    /// Microseconds since 2000-01-01 UTC of a TIMESTAMP instant (the zero timestamp is the
    /// caller's business: see [`Timestamp::is_zero`]).
    pub fn timestamptz_micros(ts: &Timestamp) -> i64 {
        (ts.secs - PG_EPOCH_UNIX_SECS) * 1_000_000 + i64::from(ts.micros)
    }

    /// A short name of the variant, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            PgValue::Null => "null",
            PgValue::Bool(_) => "boolean",
            PgValue::Int2(_) => "smallint",
            PgValue::Int4(_) => "integer",
            PgValue::Int8(_) => "bigint",
            PgValue::Float4(_) => "real",
            PgValue::Float8(_) => "double precision",
            PgValue::Numeric(_) => "numeric",
            PgValue::Text(_) => "text",
            PgValue::Bytea(_) => "bytea",
            PgValue::Date(_) => "date",
            PgValue::Timestamp(_) => "timestamp",
            PgValue::Timestamptz(_) => "timestamptz",
            PgValue::Interval { .. } => "interval",
            PgValue::BitVarying { .. } => "bit varying",
            PgValue::Json(_) => "json",
            PgValue::Jsonb(_) => "jsonb",
            PgValue::TextArray(_) => "text[]",
            PgValue::Enum(_) => "enum",
            PgValue::Uuid(_) => "uuid",
            PgValue::Geometry(_) => "geometry",
        }
    }
}

/// Why a value cannot be written under the column's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ConvertProblem {
    /// A zero or invalid date under `zero_date = error`.
    ZeroDate,
    /// A zero date in a key column under `zero_date = null`.
    ZeroDateInKey,
    /// U+0000 in text under `nul_in_text = error`.
    NulInText,
    /// Bytes invalid in the column's character set under `invalid_text = error`.
    InvalidText {
        /// The declared character set.
        charset: String,
    },
    /// A number outside the target type's range.
    OutOfRange {
        /// The target type.
        pg_type: String,
    },
    /// TINYINT(1) holding a value other than 0 or 1 under `tinyint1_as_boolean = true`.
    NotBoolean,
    /// The JSON escape `\u0000`, which `jsonb` rejects.
    NulInJson,
    /// Text in a JSON column that does not parse as JSON.
    InvalidJson {
        /// The parser's message.
        reason: String,
    },
    /// MySQL's ENUM error value `''` in a PostgreSQL enum column.
    EnumErrorValue,
    /// A UUID column value that is not a UUID.
    InvalidUuid,
    /// A value of another type than the column's (a decoding bug).
    TypeMismatch {
        /// The column's target type.
        pg_type: String,
    },
}

impl fmt::Display for ConvertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertProblem::ZeroDate => f.write_str(
                "is a zero or invalid date, which PostgreSQL cannot hold (zero_date = \"error\")",
            ),
            ConvertProblem::ZeroDateInKey => f.write_str(
                "is a zero date in a key column, which cannot become NULL (zero_date = \"null\")",
            ),
            ConvertProblem::NulInText => f.write_str(
                "contains a NUL character, which PostgreSQL text cannot hold (nul_in_text = \"error\")",
            ),
            ConvertProblem::InvalidText { charset } => write!(
                f,
                "is not valid {charset} text (invalid_text = \"error\")"
            ),
            ConvertProblem::OutOfRange { pg_type } => write!(f, "does not fit {pg_type}"),
            ConvertProblem::NotBoolean => f.write_str(
                "is neither 0 nor 1, so boolean cannot hold it (tinyint1_as_boolean = true)",
            ),
            ConvertProblem::NulInJson => {
                f.write_str("contains the JSON escape \\u0000, which jsonb cannot hold")
            }
            ConvertProblem::InvalidJson { reason } => write!(f, "is not valid JSON: {reason}"),
            ConvertProblem::EnumErrorValue => f.write_str(
                "is MySQL's ENUM error value '', which a PostgreSQL enum cannot hold",
            ),
            ConvertProblem::InvalidUuid => f.write_str("is not a UUID"),
            ConvertProblem::TypeMismatch { pg_type } => {
                write!(f, "does not match the column's type ({pg_type})")
            }
        }
    }
}

/// A source value that cannot be written to the target under the chosen policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("column {column} (key {key}): value {value} {problem}")]
pub struct ConvertError {
    /// `db.table.column` on the source.
    pub column: String,
    /// The row's key, e.g. `id=42` or `a=1, b="x"` (`none` for a table without one).
    pub key: String,
    /// The value, as [`Value`]'s `Display` prints it.
    pub value: String,
    /// What is wrong.
    pub problem: ConvertProblem,
}

impl ConvertError {
    /// What the operator should do.
    pub fn hint(&self) -> String {
        let col = &self.column;
        let per_column = |key: &str, values: &str| {
            format!(
                "set [mapping] {key} = {values} for every column, or [mapping.columns.\"{col}\"] {key} = … for this one; or fix the row on the source"
            )
        };
        match &self.problem {
            ConvertProblem::ZeroDate => {
                per_column("zero_date", "\"null\" | \"-infinity\" | \"1970-01-01\"")
            }
            ConvertProblem::ZeroDateInKey => format!(
                "set [mapping.columns.\"{col}\"] zero_date = \"-infinity\" or a fixed date; NULL cannot be part of a key"
            ),
            ConvertProblem::NulInText => per_column("nul_in_text", "\"strip\" | \"replace\""),
            ConvertProblem::InvalidText { .. } => per_column("invalid_text", "\"replace\""),
            ConvertProblem::OutOfRange { .. } => format!(
                "set [mapping.columns.\"{col}\"] unsigned_bigint_as = \"numeric\" (the default), or fix the value on the source"
            ),
            ConvertProblem::NotBoolean => format!(
                "set [mapping.columns.\"{col}\"] tinyint1_as_boolean = false to keep the number (smallint)"
            ),
            ConvertProblem::NulInJson => format!(
                "set [mapping.columns.\"{col}\"] json_as = \"json\" (keeps the text) or \"text\""
            ),
            ConvertProblem::InvalidJson { .. } => format!(
                "set [mapping.columns.\"{col}\"] json_as = \"text\", or fix the value on the source"
            ),
            ConvertProblem::EnumErrorValue => format!(
                "set [mapping.columns.\"{col}\"] enum_as = \"check\" (text with a CHECK that allows '')"
            ),
            ConvertProblem::InvalidUuid => "fix the value on the source".to_owned(),
            ConvertProblem::TypeMismatch { .. } => {
                "this is a my2pg decoding bug: report the column type and value".to_owned()
            }
        }
    }
}

impl TableMapping {
    /// Converts one source row (in source column order) into target values (same order).
    pub fn convert_row(&self, row: &Row) -> Result<Vec<PgValue>, ConvertError> {
        if row.len() != self.columns.len() {
            return Err(ConvertError {
                column: format!("{}.*", self.source_id),
                key: self.render_key(row),
                value: format!("a row of {} values", row.len()),
                problem: ConvertProblem::TypeMismatch {
                    pg_type: format!("a row of {} columns", self.columns.len()),
                },
            });
        }
        self.columns
            .iter()
            .zip(&row.0)
            .enumerate()
            .map(|(i, (col, v))| self.convert_at(i, col, v, row))
            .collect()
    }

    /// Converts one value of column `i`; `row` (when known) names the key in errors.
    pub fn convert_value(
        &self,
        i: usize,
        value: &Value,
        row: Option<&Row>,
    ) -> Result<PgValue, ConvertError> {
        let Some(col) = self.columns.get(i) else {
            return Err(ConvertError {
                column: format!("{}.#{i}", self.source_id),
                key: "none".into(),
                value: value.to_string(),
                problem: ConvertProblem::TypeMismatch {
                    pg_type: "no such column".into(),
                },
            });
        };
        match row {
            Some(r) => self.convert_at(i, col, value, r),
            None => col.convert(value).map_err(|problem| ConvertError {
                column: self.column_path(i),
                key: "none".into(),
                value: value.to_string(),
                problem,
            }),
        }
    }

    fn convert_at(
        &self,
        i: usize,
        col: &ColumnMapping,
        v: &Value,
        row: &Row,
    ) -> Result<PgValue, ConvertError> {
        col.convert(v).map_err(|problem| ConvertError {
            column: self.column_path(i),
            key: self.render_key(row),
            value: v.to_string(),
            problem,
        })
    }

    /// The row's key as `col=value, …`, or `none`.
    pub fn render_key(&self, row: &Row) -> String {
        if self.key.is_empty() {
            return "none".into();
        }
        self.key
            .iter()
            .map(|&k| {
                let name = self.columns.get(k).map_or("?", |c| c.source_name.as_str());
                let v = row.get(k).map_or_else(|| "?".to_owned(), Value::to_string);
                format!("{name}={v}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A source row that cannot be written as a COPY tuple.
#[derive(Debug, thiserror::Error)]
pub enum CopyRowError {
    /// A value does not convert under the column's policies.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// A converted value does not fit the wire format.
    #[error(transparent)]
    Binary(#[from] crate::pgbinary::BinaryError),
}

/// Why one field could not be written.
enum FieldError {
    Convert(ConvertProblem),
    Binary(crate::pgbinary::BinaryError),
}

impl From<ConvertProblem> for FieldError {
    fn from(p: ConvertProblem) -> Self {
        FieldError::Convert(p)
    }
}

impl From<crate::pgbinary::BinaryError> for FieldError {
    fn from(e: crate::pgbinary::BinaryError) -> Self {
        FieldError::Binary(e)
    }
}

impl TableMapping {
    /// Writes one source row as a binary COPY tuple straight from the source values: exactly
    /// the bytes of [`crate::pgbinary::copy_row`] over [`Self::convert_row`], without building
    /// a `PgValue` per column. This is the initial copy's hot path, where the intermediate
    /// values (a `String` copy per text column, a `Vec` per row) were a large share of
    /// my2pg's CPU. On error nothing is to be trusted in `out` past its length on entry.
    pub fn copy_row(&self, row: &Row, out: &mut Vec<u8>) -> Result<(), CopyRowError> {
        if row.len() != self.columns.len() {
            // The conversion names the mismatch.
            self.convert_row(row)?;
        }
        let n = i16::try_from(self.columns.len()).map_err(|_| {
            crate::pgbinary::BinaryError::TooLarge {
                what: "a row of more than 32767 columns".into(),
            }
        })?;
        out.extend_from_slice(&n.to_be_bytes());
        for (i, (col, v)) in self.columns.iter().zip(&row.0).enumerate() {
            match col.copy_field(v, out) {
                Ok(()) => {}
                Err(FieldError::Convert(problem)) => {
                    return Err(ConvertError {
                        column: self.column_path(i),
                        key: self.render_key(row),
                        value: v.to_string(),
                        problem,
                    }
                    .into());
                }
                Err(FieldError::Binary(e)) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl ColumnMapping {
    /// One COPY field (length and bytes) of `v`: text, bytes, decimals and integers into
    /// `numeric` written from the source value without a copy or an allocation, fixed-width values through a `PgValue` that allocates
    /// nothing, the rest (and every value a policy may change: NUL in text, zero dates, out
    /// of range) through [`Self::convert`].
    fn copy_field(&self, v: &Value, out: &mut Vec<u8>) -> Result<(), FieldError> {
        use crate::pgbinary::{
            encode_decimal, encode_field, encode_field_with, encode_integer_numeric,
        };
        fn raw(out: &mut Vec<u8>, b: &[u8]) -> Result<(), FieldError> {
            Ok(encode_field_with(out, |out| {
                out.extend_from_slice(b);
                Ok(())
            })?)
        }
        match (&self.pg_type, v) {
            (PgType::VarChar { .. } | PgType::Text, Value::Text(s) | Value::Enum(s))
                if !s.contains('\0') =>
            {
                return raw(out, s.as_bytes());
            }
            (PgType::Enum { .. }, Value::Enum(s)) if !s.is_empty() && !s.contains('\0') => {
                return raw(out, s.as_bytes());
            }
            (PgType::Bytea, Value::Bytes(b)) => return raw(out, b),
            (PgType::Numeric { .. }, Value::Decimal(d)) => {
                return Ok(encode_field_with(out, |out| encode_decimal(d, out))?);
            }
            (PgType::Numeric { .. }, Value::UInt(u)) => {
                return Ok(encode_field_with(out, |out| {
                    encode_integer_numeric(false, *u, out);
                    Ok(())
                })?);
            }
            (PgType::Numeric { .. }, Value::Int(i)) => {
                return Ok(encode_field_with(out, |out| {
                    encode_integer_numeric(*i < 0, i.unsigned_abs(), out);
                    Ok(())
                })?);
            }
            _ => {}
        }
        let fixed = match (&self.pg_type, v) {
            (PgType::BigInt, Value::Int(i)) => Some(PgValue::Int8(*i)),
            (PgType::BigInt, Value::UInt(u)) => i64::try_from(*u).ok().map(PgValue::Int8),
            (PgType::Integer, Value::Int(i)) => i32::try_from(*i).ok().map(PgValue::Int4),
            (PgType::Integer, Value::UInt(u)) => i32::try_from(*u).ok().map(PgValue::Int4),
            (PgType::SmallInt, Value::Int(i)) => i16::try_from(*i).ok().map(PgValue::Int2),
            (PgType::Timestamp { .. }, Value::DateTime(dt)) => {
                PgValue::timestamp_micros(dt).map(PgValue::Timestamp)
            }
            (PgType::Timestamptz { .. }, Value::Timestamp(ts)) if !ts.is_zero() => {
                Some(PgValue::Timestamptz(PgValue::timestamptz_micros(ts)))
            }
            (PgType::Date, Value::Date(d)) => PgValue::date_days(d).map(PgValue::Date),
            _ => None,
        };
        let value = match fixed {
            Some(p) => p,
            None => self.convert(v)?,
        };
        Ok(encode_field(&value, out)?)
    }
}

impl ColumnMapping {
    /// Converts one source value of this column under its policies.
    pub fn convert(&self, v: &Value) -> Result<PgValue, ConvertProblem> {
        let mismatch = || ConvertProblem::TypeMismatch {
            pg_type: self.pg_type.to_string(),
        };
        let range = || ConvertProblem::OutOfRange {
            pg_type: self.pg_type.to_string(),
        };
        if let Value::Null = v {
            return Ok(PgValue::Null);
        }
        Ok(match (&self.pg_type, v) {
            (PgType::Boolean, Value::Int(0) | Value::UInt(0)) => PgValue::Bool(false),
            (PgType::Boolean, Value::Int(1) | Value::UInt(1)) => PgValue::Bool(true),
            (PgType::Boolean, Value::Int(_) | Value::UInt(_)) => {
                return Err(ConvertProblem::NotBoolean);
            }
            (PgType::Boolean, Value::Bit { bits, .. }) => PgValue::Bool(*bits != 0),
            (PgType::SmallInt, Value::Int(i)) => {
                PgValue::Int2(i16::try_from(*i).map_err(|_| range())?)
            }
            (PgType::SmallInt, Value::UInt(u)) => {
                PgValue::Int2(i16::try_from(*u).map_err(|_| range())?)
            }
            (PgType::SmallInt, Value::Year(y)) => {
                PgValue::Int2(i16::try_from(*y).map_err(|_| range())?)
            }
            (PgType::Integer, Value::Int(i)) => {
                PgValue::Int4(i32::try_from(*i).map_err(|_| range())?)
            }
            (PgType::Integer, Value::UInt(u)) => {
                PgValue::Int4(i32::try_from(*u).map_err(|_| range())?)
            }
            (PgType::BigInt, Value::Int(i)) => PgValue::Int8(*i),
            (PgType::BigInt, Value::UInt(u)) => {
                PgValue::Int8(i64::try_from(*u).map_err(|_| range())?)
            }
            (PgType::Numeric { .. }, Value::Decimal(d)) => {
                PgValue::Numeric(Numeric::Value(d.clone()))
            }
            (PgType::Numeric { .. }, Value::UInt(u)) => PgValue::Numeric(Numeric::Value(
                Decimal::parse(&u.to_string()).map_err(|_| mismatch())?,
            )),
            (PgType::Numeric { .. }, Value::Int(i)) => PgValue::Numeric(Numeric::Value(
                Decimal::parse(&i.to_string()).map_err(|_| mismatch())?,
            )),
            (PgType::Real, Value::Float(f)) => PgValue::Float4(*f),
            (PgType::Double, Value::Double(d)) => PgValue::Float8(*d),
            (PgType::Double, Value::Float(f)) => PgValue::Float8(f64::from(*f)),
            (PgType::VarChar { .. } | PgType::Text, Value::Text(s) | Value::Enum(s)) => {
                PgValue::Text(self.text(s)?)
            }
            (PgType::VarChar { .. } | PgType::Text, Value::InvalidText { bytes, charset }) => {
                PgValue::Text(self.invalid_text(bytes, charset)?)
            }
            (PgType::Text, Value::Set(members)) => PgValue::Text(self.text(&members.join(","))?),
            (PgType::Text, Value::Json(s)) => PgValue::Text(self.text(s)?),
            (PgType::Bytea, Value::Bytes(b)) => PgValue::Bytea(b.clone()),
            (PgType::Bytea, Value::Geometry { srid, wkb }) => PgValue::Bytea(ewkb(*srid, wkb)),
            (PgType::Geometry, Value::Geometry { srid, wkb }) => {
                PgValue::Geometry(ewkb(*srid, wkb))
            }
            (PgType::Date, Value::Date(d)) => match PgValue::date_days(d) {
                Some(days) => PgValue::Date(days),
                None => self.zero_date(
                    |fixed| PgValue::date_days(&fixed.date).map(PgValue::Date),
                    PgValue::Date(DATE_NEG_INFINITY),
                )?,
            },
            (PgType::Timestamp { .. }, Value::DateTime(dt)) => {
                match PgValue::timestamp_micros(dt) {
                    Some(us) => PgValue::Timestamp(us),
                    None => self.zero_date(
                        |fixed| PgValue::timestamp_micros(fixed).map(PgValue::Timestamp),
                        PgValue::Timestamp(TIMESTAMP_NEG_INFINITY),
                    )?,
                }
            }
            (PgType::Timestamptz { .. }, Value::Timestamp(ts)) => {
                if ts.is_zero() {
                    self.zero_date(
                        |fixed| PgValue::timestamp_micros(fixed).map(PgValue::Timestamptz),
                        PgValue::Timestamptz(TIMESTAMP_NEG_INFINITY),
                    )?
                } else {
                    PgValue::Timestamptz(PgValue::timestamptz_micros(ts))
                }
            }
            (PgType::Interval { .. }, Value::Time(t)) => PgValue::Interval {
                months: 0,
                days: 0,
                micros: t.total_micros(),
            },
            (PgType::BitVarying { len }, Value::Bit { width, bits }) => {
                let n = u32::from(*width).min(*len);
                PgValue::BitVarying {
                    len: n,
                    bytes: bit_bytes(*bits, n),
                }
            }
            (PgType::Json, Value::Json(s)) => {
                check_json(s)?;
                PgValue::Json(s.clone())
            }
            (PgType::Jsonb, Value::Json(s)) => {
                check_json(s)?;
                if s.contains("\\u0000") {
                    return Err(ConvertProblem::NulInJson);
                }
                PgValue::Jsonb(s.clone())
            }
            (PgType::Json | PgType::Jsonb, Value::InvalidText { charset, .. }) => {
                return Err(ConvertProblem::InvalidText {
                    charset: charset.clone(),
                });
            }
            (PgType::TextArray, Value::Set(members)) => PgValue::TextArray(
                members
                    .iter()
                    .map(|m| self.text(m))
                    .collect::<Result<_, _>>()?,
            ),
            (PgType::Enum { .. }, Value::Enum(s)) => {
                if s.is_empty() {
                    return Err(ConvertProblem::EnumErrorValue);
                }
                PgValue::Enum(self.text(s)?)
            }
            (PgType::Uuid, Value::Bytes(b)) => PgValue::Uuid(parse_uuid(b)?),
            (PgType::Uuid, Value::Text(s)) => PgValue::Uuid(parse_uuid(s.as_bytes())?),
            (_, Value::InvalidText { charset, .. }) => {
                return Err(ConvertProblem::InvalidText {
                    charset: charset.clone(),
                });
            }
            _ => return Err(mismatch()),
        })
    }

    /// Applies `nul_in_text`.
    fn text(&self, s: &str) -> Result<String, ConvertProblem> {
        if !s.contains('\0') {
            return Ok(s.to_owned());
        }
        match self.policy.nul_in_text {
            NulInText::Error => Err(ConvertProblem::NulInText),
            NulInText::Strip => Ok(s.replace('\0', "")),
            NulInText::Replace => Ok(s.replace(
                '\0',
                crate::mapping::options::REPLACEMENT_CHARACTER.encode_utf8(&mut [0; 4]),
            )),
        }
    }

    /// Applies `invalid_text` (then `nul_in_text` to what the replacement decoded).
    fn invalid_text(&self, bytes: &[u8], charset: &str) -> Result<String, ConvertProblem> {
        match self.policy.invalid_text {
            InvalidText::Error => Err(ConvertProblem::InvalidText {
                charset: charset.to_owned(),
            }),
            InvalidText::Replace => self.text(&Charset::from_name(charset).decode_lossy(bytes)),
        }
    }

    /// Applies `zero_date`: `fixed` builds the fixed value, `neg_inf` is `-infinity`.
    fn zero_date(
        &self,
        fixed: impl FnOnce(&DateTime) -> Option<PgValue>,
        neg_inf: PgValue,
    ) -> Result<PgValue, ConvertProblem> {
        match self.policy.zero_date {
            ZeroDate::Error => Err(ConvertProblem::ZeroDate),
            ZeroDate::Null if self.in_key || !self.nullable => Err(ConvertProblem::ZeroDateInKey),
            ZeroDate::Null => Ok(PgValue::Null),
            ZeroDate::NegInfinity => Ok(neg_inf),
            ZeroDate::Fixed(dt) => fixed(&dt).ok_or(ConvertProblem::ZeroDate),
        }
    }
}

/// The bytes of a BIT value of `len` bits: most significant bit first, zero-padded at the end
/// to whole bytes (PostgreSQL's `bit varying` layout).
pub fn bit_bytes(bits: u64, len: u32) -> Vec<u8> {
    let nbytes = len.div_ceil(8) as usize;
    let shifted = if len == 0 {
        0
    } else {
        // Left-align the `len` low bits in a 64-bit word.
        (bits & (u64::MAX >> (64 - len))) << (64 - len)
    };
    shifted.to_be_bytes()[..nbytes].to_vec()
}

/// MySQL's SRID + WKB as one byte string: plain WKB when the SRID is 0, PostGIS extended WKB
/// (the SRID flag set in the type word and the SRID after it) otherwise, so the SRID is never
/// dropped and SRID-0 values stay the WKB every tool reads.
pub fn ewkb(srid: u32, wkb: &[u8]) -> Vec<u8> {
    const SRID_FLAG: u32 = 0x2000_0000;
    if srid == 0 || wkb.len() < 5 {
        return wkb.to_vec();
    }
    let little = wkb[0] == 1;
    let word = [wkb[1], wkb[2], wkb[3], wkb[4]];
    let ty = if little {
        u32::from_le_bytes(word)
    } else {
        u32::from_be_bytes(word)
    };
    let mut out = Vec::with_capacity(wkb.len() + 4);
    out.push(wkb[0]);
    let (ty, srid) = if little {
        ((ty | SRID_FLAG).to_le_bytes(), srid.to_le_bytes())
    } else {
        ((ty | SRID_FLAG).to_be_bytes(), srid.to_be_bytes())
    };
    out.extend_from_slice(&ty);
    out.extend_from_slice(&srid);
    out.extend_from_slice(&wkb[5..]);
    out
}

fn check_json(s: &str) -> Result<(), ConvertProblem> {
    serde_json::from_str::<serde::de::IgnoredAny>(s)
        .map(|_| ())
        .map_err(|e| ConvertProblem::InvalidJson {
            reason: e.to_string(),
        })
}

/// Parses the 36-character text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
fn parse_uuid(b: &[u8]) -> Result<[u8; 16], ConvertProblem> {
    let hex_digits: Vec<u8> = b.iter().copied().filter(|&c| c != b'-').collect();
    if b.len() != 36 || hex_digits.len() != 32 {
        return Err(ConvertProblem::InvalidUuid);
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(&hex_digits, &mut out).map_err(|_| ConvertProblem::InvalidUuid)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
