//! TABLE_MAP events: how to read each column of the rows that follow, and which table schema
//! the rows belong to.
//!
//! The event is parsed by hand (rather than with `mysql_common`'s `TableMapEvent`) because the
//! metadata block must be walked per column type and MariaDB adds column types of its own
//! (`VARCHAR_COMPRESSED` = 140, `BLOB_COMPRESSED` = 141) that `mysql_common` does not know,
//! which would make every later column's metadata unreadable there.
//!
//! **Which schema a row has.** With `binlog_row_metadata=FULL` the table map names every column
//! and carries signedness, character sets, ENUM/SET labels and the primary key: the row is
//! decoded with the schema it was *written* with, even when the table has been altered since.
//! What the table map cannot say (TINYINT(1)'s display width, MariaDB's JSON-as-LONGTEXT,
//! defaults, comments, secondary keys) comes from the `information_schema` cache, matched **by
//! column name** and only where the cached type agrees with the binlog type; a cached column
//! that disagrees (the table changed later) is ignored in favour of the table map. Without FULL
//! metadata the cache must supply names by position, and a column-count mismatch is a definite
//! error asking for `binlog_row_metadata=FULL`.

use std::collections::HashMap;
use std::sync::Arc;

use schemas::table::{IntWidth, LobSize};
use schemas::{Charset, Column, ColumnType, TableId, TableSchema};

use super::event::{Cursor, DecodeError, DecodeResult};

/// MySQL column type codes as they appear in table maps.
pub mod ty {
    #![allow(missing_docs)]
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const MARIA_VARCHAR_COMPRESSED: u8 = 141;
    pub const MARIA_BLOB_COMPRESSED: u8 = 140;
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// How a column's value is laid out in a row image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// Little-endian integer of 1, 2, 3, 4 or 8 bytes.
    Int {
        /// Width in bytes.
        bytes: u8,
    },
    /// IEEE single.
    Float,
    /// IEEE double.
    Double,
    /// Binary decimal.
    NewDecimal {
        /// Precision 1..=65.
        precision: u8,
        /// Scale 0..=30.
        scale: u8,
    },
    /// One byte, 0 or year − 1900.
    Year,
    /// 3-byte packed date.
    Date,
    /// Old 3-byte TIME (HHMMSS as a signed integer).
    Time,
    /// TIME2 with fractional precision.
    Time2 {
        /// 0..=6.
        fsp: u8,
    },
    /// Old 8-byte DATETIME (YYYYMMDDhhmmss).
    DateTime,
    /// DATETIME2.
    DateTime2 {
        /// 0..=6.
        fsp: u8,
    },
    /// Old 4-byte TIMESTAMP.
    Timestamp,
    /// TIMESTAMP2.
    Timestamp2 {
        /// 0..=6.
        fsp: u8,
    },
    /// BIT(n).
    Bit {
        /// Width in bits, 1..=64.
        bits: u8,
    },
    /// ENUM index of 1 or 2 bytes.
    Enum {
        /// Bytes.
        pack: u8,
    },
    /// SET bitmask of 1..=8 bytes.
    Set {
        /// Bytes.
        pack: u8,
    },
    /// CHAR/BINARY: length prefix of 1 byte when the maximum is below 256, else 2.
    FixedString {
        /// Maximum length in bytes.
        max_len: u16,
    },
    /// VARCHAR/VARBINARY: same prefix rule.
    VarString {
        /// Maximum length in bytes.
        max_len: u16,
    },
    /// BLOB/TEXT/GEOMETRY/JSON carriers: length prefix of `pack` (1..=4) bytes.
    Blob {
        /// Prefix width.
        pack: u8,
    },
    /// MySQL binary JSON with a length prefix.
    Json {
        /// Prefix width.
        pack: u8,
    },
    /// MariaDB compressed VARCHAR (column attribute COMPRESSED).
    CompressedVarString {
        /// Maximum length in bytes.
        max_len: u16,
    },
    /// MariaDB compressed BLOB/TEXT.
    CompressedBlob {
        /// Prefix width.
        pack: u8,
    },
}

/// One column of a table map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapColumn {
    /// Type code as in the table map (for STRING: the real type from the metadata).
    pub type_code: u8,
    /// How to read its value.
    pub wire: Wire,
    /// NULL allowed.
    pub nullable: bool,
    /// Name (FULL metadata).
    pub name: Option<String>,
    /// UNSIGNED, for numeric columns (FULL or MINIMAL metadata).
    pub unsigned: Option<bool>,
    /// Collation id of a character, ENUM or SET column.
    pub collation: Option<u16>,
    /// ENUM or SET labels, as bytes in the column's character set.
    pub labels: Option<Vec<Vec<u8>>>,
    /// Geometry type code (0 geometry, 1 point, …).
    pub geometry_type: Option<u64>,
}

/// A parsed TABLE_MAP event.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMapEvent {
    /// Table id (valid until the next TABLE_MAP with the same id or a rotation).
    pub table_id: u64,
    /// The table.
    pub table: TableId,
    /// Columns in order.
    pub columns: Vec<MapColumn>,
    /// Primary key column indexes (FULL metadata).
    pub primary_key: Option<Vec<usize>>,
    /// Whether optional metadata named the columns.
    pub has_names: bool,
}

fn is_numeric(t: u8) -> bool {
    matches!(
        t,
        ty::TINY
            | ty::SHORT
            | ty::INT24
            | ty::LONG
            | ty::LONGLONG
            | ty::NEWDECIMAL
            | ty::FLOAT
            | ty::DOUBLE
    )
}

fn is_character(real: u8) -> bool {
    matches!(
        real,
        ty::STRING
            | ty::VAR_STRING
            | ty::VARCHAR
            | ty::BLOB
            | ty::TINY_BLOB
            | ty::MEDIUM_BLOB
            | ty::LONG_BLOB
            | ty::MARIA_VARCHAR_COMPRESSED
            | ty::MARIA_BLOB_COMPRESSED
    )
}

/// Reads one column's metadata from the metadata block and returns (real type, wire).
fn read_wire(t: u8, meta: &mut Cursor<'_>) -> DecodeResult<(u8, Wire)> {
    let bad = |what: String| DecodeError(format!("TABLE_MAP: {what}"));
    Ok(match t {
        ty::TINY => (t, Wire::Int { bytes: 1 }),
        ty::SHORT => (t, Wire::Int { bytes: 2 }),
        ty::INT24 => (t, Wire::Int { bytes: 3 }),
        ty::LONG => (t, Wire::Int { bytes: 4 }),
        ty::LONGLONG => (t, Wire::Int { bytes: 8 }),
        ty::FLOAT | ty::DOUBLE => {
            let pack = meta.u8()?;
            match (t, pack) {
                (ty::FLOAT, 4) => (t, Wire::Float),
                (ty::DOUBLE, 8) => (t, Wire::Double),
                _ => return Err(bad(format!("floating-point column of {pack} bytes"))),
            }
        }
        ty::NEWDECIMAL => {
            let precision = meta.u8()?;
            let scale = meta.u8()?;
            if !(1..=65).contains(&precision) || scale > 30 || scale > precision {
                return Err(bad(format!(
                    "DECIMAL({precision},{scale}) is outside MySQL's limits"
                )));
            }
            (t, Wire::NewDecimal { precision, scale })
        }
        ty::YEAR => (t, Wire::Year),
        ty::DATE | ty::NEWDATE => (ty::DATE, Wire::Date),
        ty::TIME => (t, Wire::Time),
        ty::DATETIME => (t, Wire::DateTime),
        ty::TIMESTAMP => (t, Wire::Timestamp),
        ty::TIME2 | ty::DATETIME2 | ty::TIMESTAMP2 => {
            let fsp = meta.u8()?;
            if fsp > 6 {
                return Err(bad(format!("fractional-second precision {fsp} above 6")));
            }
            let w = match t {
                ty::TIME2 => Wire::Time2 { fsp },
                ty::DATETIME2 => Wire::DateTime2 { fsp },
                _ => Wire::Timestamp2 { fsp },
            };
            (t, w)
        }
        ty::BIT => {
            let rem = meta.u8()?;
            let bytes = meta.u8()?;
            let bits = u16::from(bytes) * 8 + u16::from(rem);
            if !(1..=64).contains(&bits) || rem > 7 {
                return Err(bad(format!("BIT({bits}) is outside 1..=64")));
            }
            (t, Wire::Bit { bits: bits as u8 })
        }
        ty::VARCHAR | ty::VAR_STRING => (
            ty::VARCHAR,
            Wire::VarString {
                max_len: meta.u16()?,
            },
        ),
        ty::MARIA_VARCHAR_COMPRESSED => (
            t,
            Wire::CompressedVarString {
                max_len: meta.u16()?,
            },
        ),
        ty::BLOB
        | ty::TINY_BLOB
        | ty::MEDIUM_BLOB
        | ty::LONG_BLOB
        | ty::GEOMETRY
        | ty::JSON
        | ty::VECTOR => {
            let pack = meta.u8()?;
            if !(1..=4).contains(&pack) {
                return Err(bad(format!("length prefix of {pack} bytes")));
            }
            let w = if t == ty::JSON {
                Wire::Json { pack }
            } else {
                Wire::Blob { pack }
            };
            (
                if matches!(t, ty::TINY_BLOB | ty::MEDIUM_BLOB | ty::LONG_BLOB) {
                    ty::BLOB
                } else {
                    t
                },
                w,
            )
        }
        ty::MARIA_BLOB_COMPRESSED => {
            let pack = meta.u8()?;
            if !(1..=4).contains(&pack) {
                return Err(bad(format!("length prefix of {pack} bytes")));
            }
            (t, Wire::CompressedBlob { pack })
        }
        ty::STRING | ty::ENUM | ty::SET => {
            let b0 = meta.u8()?;
            let b1 = meta.u8()?;
            // Field_string::save_field_metadata: byte 0 = real_type ^ ((len & 0x300) >> 4).
            let (real, max_len) = if b0 & 0x30 != 0x30 {
                (
                    b0 | 0x30,
                    u16::from(b1) | ((u16::from(b0 & 0x30) ^ 0x30) << 4),
                )
            } else {
                (b0, u16::from(b1))
            };
            match real {
                ty::ENUM if b1 == 1 || b1 == 2 => (ty::ENUM, Wire::Enum { pack: b1 }),
                ty::SET if (1..=8).contains(&b1) => (ty::SET, Wire::Set { pack: b1 }),
                ty::STRING => (ty::STRING, Wire::FixedString { max_len }),
                _ => {
                    return Err(bad(format!(
                        "string column with real type {real} and length byte {b1}"
                    )));
                }
            }
        }
        ty::DECIMAL => {
            return Err(bad(
                "pre-5.0 DECIMAL column: ALTER TABLE … FORCE on the source to convert it".into(),
            ));
        }
        other => return Err(bad(format!("unknown column type {other}"))),
    })
}

/// Parses a TABLE_MAP event body (post-header with a 6-byte table id, as every server since
/// MySQL 5.1 writes it).
pub fn parse_table_map(body: &[u8]) -> DecodeResult<TableMapEvent> {
    let mut c = Cursor::new(body, "TABLE_MAP event");
    let table_id = c.uint_le(6)?;
    let _flags = c.u16()?;
    let db_len = usize::from(c.u8()?);
    let database = String::from_utf8_lossy(c.take(db_len)?).into_owned();
    c.u8()?;
    let t_len = usize::from(c.u8()?);
    let table = String::from_utf8_lossy(c.take(t_len)?).into_owned();
    c.u8()?;
    let count = c.lenenc()?;
    if count == 0 || count > 4096 {
        return Err(DecodeError(format!(
            "TABLE_MAP for {database}.{table}: {count} columns (MySQL allows 1 to 4096)"
        )));
    }
    let count = count as usize;
    let types = c.take(count)?.to_vec();
    let meta_len = usize::try_from(c.lenenc()?)
        .map_err(|_| DecodeError::new("TABLE_MAP: metadata too long"))?;
    let mut meta = Cursor::new(c.take(meta_len)?, "TABLE_MAP metadata");
    let mut columns = Vec::with_capacity(count);
    for &t in &types {
        let (real, wire) = read_wire(t, &mut meta)?;
        columns.push(MapColumn {
            type_code: real,
            wire,
            nullable: false,
            name: None,
            unsigned: None,
            collation: None,
            labels: None,
            geometry_type: None,
        });
    }
    let nulls = c.take(count.div_ceil(8))?;
    for (i, col) in columns.iter_mut().enumerate() {
        col.nullable = nulls[i / 8] & (1 << (i % 8)) != 0;
    }
    let mut map = TableMapEvent {
        table_id,
        table: TableId::new(database, table),
        columns,
        primary_key: None,
        has_names: false,
    };
    parse_optional_metadata(&mut map, c.remaining())?;
    Ok(map)
}

/// Parses the optional metadata TLVs (`binlog_row_metadata=MINIMAL|FULL`).
fn parse_optional_metadata(map: &mut TableMapEvent, mut data: &[u8]) -> DecodeResult<()> {
    let numeric: Vec<usize> = idx(&map.columns, |c| is_numeric(c.type_code));
    let character: Vec<usize> = idx(&map.columns, |c| is_character(c.type_code));
    let enum_set: Vec<usize> = idx(&map.columns, |c| matches!(c.type_code, ty::ENUM | ty::SET));
    let enums: Vec<usize> = idx(&map.columns, |c| c.type_code == ty::ENUM);
    let sets: Vec<usize> = idx(&map.columns, |c| c.type_code == ty::SET);
    let geoms: Vec<usize> = idx(&map.columns, |c| c.type_code == ty::GEOMETRY);
    while !data.is_empty() {
        let mut c = Cursor::new(data, "TABLE_MAP optional metadata");
        let kind = c.u8()?;
        let len = usize::try_from(c.lenenc()?)
            .map_err(|_| DecodeError::new("optional metadata too long"))?;
        let value = c.take(len)?;
        data = c.remaining();
        let mut v = Cursor::new(value, "TABLE_MAP optional metadata field");
        match kind {
            // SIGNEDNESS: one bit per numeric column, most significant bit first.
            1 => {
                let bits = v.take(numeric.len().div_ceil(8))?;
                for (k, &col) in numeric.iter().enumerate() {
                    map.columns[col].unsigned = Some(bits[k / 8] & (0x80 >> (k % 8)) != 0);
                }
            }
            // DEFAULT_CHARSET (2) / ENUM_AND_SET_DEFAULT_CHARSET (10): default collation, then
            // (index among the columns of that class, collation) pairs.
            2 | 10 => {
                let class = if kind == 2 { &character } else { &enum_set };
                let default = collation_id(v.lenenc()?)?;
                for &col in class {
                    map.columns[col].collation = Some(default);
                }
                while !v.is_empty() {
                    let k = usize::try_from(v.lenenc()?).unwrap_or(usize::MAX);
                    let coll = collation_id(v.lenenc()?)?;
                    let col = *class.get(k).ok_or_else(|| {
                        DecodeError::new("charset entry for a column that does not exist")
                    })?;
                    map.columns[col].collation = Some(coll);
                }
            }
            // COLUMN_CHARSET (3) / ENUM_AND_SET_COLUMN_CHARSET (11): one collation per column.
            3 | 11 => {
                let class = if kind == 3 { &character } else { &enum_set };
                for &col in class {
                    map.columns[col].collation = Some(collation_id(v.lenenc()?)?);
                }
            }
            // COLUMN_NAME: one length-prefixed name per column.
            4 => {
                for col in map.columns.iter_mut() {
                    let n = usize::try_from(v.lenenc()?).unwrap_or(usize::MAX);
                    col.name = Some(String::from_utf8_lossy(v.take(n)?).into_owned());
                }
                map.has_names = true;
            }
            // SET_STR_VALUE (5) / ENUM_STR_VALUE (6): per column, a count then the labels.
            5 | 6 => {
                let class = if kind == 5 { &sets } else { &enums };
                for &col in class {
                    let count = v.lenenc()?;
                    if count > 65_535 {
                        return Err(DecodeError(format!("{count} ENUM/SET labels")));
                    }
                    let mut labels = Vec::with_capacity(count as usize);
                    for _ in 0..count {
                        let n = usize::try_from(v.lenenc()?).unwrap_or(usize::MAX);
                        labels.push(v.take(n)?.to_vec());
                    }
                    // Decoded once the column's collation is known (see `implied_type`).
                    map.columns[col].labels = Some(labels);
                }
            }
            // GEOMETRY_TYPE: one per geometry column.
            7 => {
                for &col in &geoms {
                    map.columns[col].geometry_type = Some(v.lenenc()?);
                }
            }
            // SIMPLE_PRIMARY_KEY: column indexes.
            8 => {
                let mut pk = Vec::new();
                while !v.is_empty() {
                    pk.push(column_index(v.lenenc()?, map.columns.len())?);
                }
                map.primary_key = Some(pk);
            }
            // PRIMARY_KEY_WITH_PREFIX: (index, prefix length) pairs.
            9 => {
                let mut pk = Vec::new();
                while !v.is_empty() {
                    pk.push(column_index(v.lenenc()?, map.columns.len())?);
                    v.lenenc()?;
                }
                map.primary_key = Some(pk);
            }
            // COLUMN_VISIBILITY (12), VECTOR_DIMENSIONALITY (13) and anything newer: not needed.
            _ => {}
        }
    }
    Ok(())
}

/// Decodes ENUM/SET labels from the column's character set (UTF-8 when unknown).
pub fn decode_labels(raw: &[Vec<u8>], charset: Option<&Charset>) -> Vec<String> {
    raw.iter()
        .map(
            |bytes| match charset.unwrap_or(&Charset::Utf8mb4).decode(bytes) {
                schemas::Value::Text(t) => t,
                _ => String::from_utf8_lossy(bytes).into_owned(),
            },
        )
        .collect()
}

fn idx(cols: &[MapColumn], f: impl Fn(&MapColumn) -> bool) -> Vec<usize> {
    cols.iter()
        .enumerate()
        .filter(|(_, c)| f(c))
        .map(|(i, _)| i)
        .collect()
}

fn collation_id(v: u64) -> DecodeResult<u16> {
    u16::try_from(v).map_err(|_| DecodeError(format!("collation id {v} out of range")))
}

fn column_index(v: u64, n: usize) -> DecodeResult<usize> {
    usize::try_from(v)
        .ok()
        .filter(|&i| i < n)
        .ok_or_else(|| DecodeError(format!("column index {v} out of range")))
}

/// Resolves collation ids to character sets.
pub trait CollationLookup {
    /// The character set of collation `id`, if known.
    fn charset(&self, id: u16) -> Option<Charset>;
}

impl CollationLookup for HashMap<u16, Charset> {
    fn charset(&self, id: u16) -> Option<Charset> {
        self.get(&id)
            .cloned()
            .or_else(|| schemas::charset::charset_of_collation_id(id))
    }
}

/// Offline lookup: only the ids that are the same on every server.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticCollations;

impl CollationLookup for StaticCollations {
    fn charset(&self, id: u16) -> Option<Charset> {
        schemas::charset::charset_of_collation_id(id)
    }
}

/// The type a table-map column implies when nothing better is known.
pub fn implied_type(col: &MapColumn, charset: Option<&Charset>) -> ColumnType {
    let unsigned = col.unsigned.unwrap_or(false);
    let int = |width| ColumnType::Integer {
        width,
        unsigned,
        display_width: None,
    };
    // A character column whose collation is unknown (no optional metadata at all) is treated as
    // text here; the information_schema cache refines it when it has the column.
    let binary = charset.is_some_and(Charset::is_binary);
    match &col.wire {
        Wire::Int { bytes: 1 } => int(IntWidth::Tiny),
        Wire::Int { bytes: 2 } => int(IntWidth::Small),
        Wire::Int { bytes: 3 } => int(IntWidth::Medium),
        Wire::Int { bytes: 4 } => int(IntWidth::Int),
        Wire::Int { .. } => int(IntWidth::Big),
        Wire::Float => ColumnType::Float,
        Wire::Double => ColumnType::Double,
        Wire::NewDecimal { precision, scale } => ColumnType::Decimal {
            precision: *precision,
            scale: *scale,
            unsigned,
        },
        Wire::Year => ColumnType::Year,
        Wire::Date => ColumnType::Date,
        Wire::Time => ColumnType::Time { fsp: 0 },
        Wire::Time2 { fsp } => ColumnType::Time { fsp: *fsp },
        Wire::DateTime => ColumnType::DateTime { fsp: 0 },
        Wire::DateTime2 { fsp } => ColumnType::DateTime { fsp: *fsp },
        Wire::Timestamp => ColumnType::Timestamp { fsp: 0 },
        Wire::Timestamp2 { fsp } => ColumnType::Timestamp { fsp: *fsp },
        Wire::Bit { bits } => ColumnType::Bit { width: *bits },
        Wire::Enum { .. } => ColumnType::Enum {
            labels: decode_labels(col.labels.as_deref().unwrap_or_default(), charset),
        },
        Wire::Set { .. } => ColumnType::Set {
            members: decode_labels(col.labels.as_deref().unwrap_or_default(), charset),
        },
        Wire::FixedString { max_len } => {
            if binary {
                ColumnType::Binary {
                    len: u32::from(*max_len),
                }
            } else {
                ColumnType::Char {
                    len: u32::from(*max_len),
                }
            }
        }
        Wire::VarString { max_len } | Wire::CompressedVarString { max_len } => {
            if binary {
                ColumnType::VarBinary {
                    len: u32::from(*max_len),
                }
            } else {
                ColumnType::VarChar {
                    len: u32::from(*max_len),
                }
            }
        }
        Wire::Json { .. } => ColumnType::Json,
        Wire::Blob { pack } | Wire::CompressedBlob { pack } => {
            if col.type_code == ty::GEOMETRY {
                return ColumnType::Geometry {
                    kind: geometry_name(col.geometry_type).into(),
                };
            }
            let size = match pack {
                1 => LobSize::Tiny,
                2 => LobSize::Regular,
                3 => LobSize::Medium,
                _ => LobSize::Long,
            };
            if binary {
                ColumnType::Blob { size }
            } else {
                ColumnType::Text { size }
            }
        }
    }
}

fn geometry_name(code: Option<u64>) -> &'static str {
    match code {
        Some(1) => "point",
        Some(2) => "linestring",
        Some(3) => "polygon",
        Some(4) => "multipoint",
        Some(5) => "multilinestring",
        Some(6) => "multipolygon",
        Some(7) => "geometrycollection",
        _ => "geometry",
    }
}

/// Whether a cached column type describes the same storage as the table map says, so that the
/// cache may refine it (display width, JSON-as-LONGTEXT, character length).
fn compatible(cached: &ColumnType, implied: &ColumnType) -> bool {
    use ColumnType as T;
    match (cached, implied) {
        (
            T::Integer {
                width: a,
                unsigned: ua,
                ..
            },
            T::Integer {
                width: b,
                unsigned: ub,
                ..
            },
        ) => a == b && ua == ub,
        (T::Json, T::Text { .. } | T::Blob { .. } | T::Json) => true,
        (T::Char { .. }, T::Char { .. }) | (T::VarChar { .. }, T::VarChar { .. }) => true,
        (T::Text { size: a }, T::Text { size: b }) | (T::Blob { size: a }, T::Blob { size: b }) => {
            a == b
        }
        (T::Binary { .. }, T::Binary { .. }) | (T::VarBinary { .. }, T::VarBinary { .. }) => true,
        (T::Enum { labels: a }, T::Enum { labels: b }) => b.is_empty() || a == b,
        (T::Set { members: a }, T::Set { members: b }) => b.is_empty() || a == b,
        (T::Geometry { .. }, T::Geometry { .. }) => true,
        (
            T::Decimal {
                precision: a,
                scale: s,
                ..
            },
            T::Decimal {
                precision: b,
                scale: t,
                ..
            },
        ) => a == b && s == t,
        (a, b) => a == b,
    }
}

/// Builds the schema rows of this table map are decoded with (see the module documentation).
pub fn merged_schema(
    map: &TableMapEvent,
    cached: Option<&TableSchema>,
    collations: &dyn CollationLookup,
) -> Result<TableSchema, String> {
    let names: Vec<String> = if map.has_names {
        map.columns
            .iter()
            .map(|c| c.name.clone().unwrap_or_default())
            .collect()
    } else {
        match cached {
            Some(t) if t.columns.len() == map.columns.len() => {
                t.columns.iter().map(|c| c.name.clone()).collect()
            }
            Some(t) => {
                return Err(format!(
                    "the binlog has {} columns for {} but the table now has {}, and binlog_row_metadata is not FULL, \
                     so the columns cannot be matched by name",
                    map.columns.len(),
                    map.table,
                    t.columns.len()
                ));
            }
            None => (0..map.columns.len())
                .map(|i| format!("@{}", i + 1))
                .collect(),
        }
    };
    let mut columns = Vec::with_capacity(map.columns.len());
    for (col, name) in map.columns.iter().zip(&names) {
        let charset = col.collation.and_then(|id| collations.charset(id));
        let implied = implied_type(col, charset.as_ref());
        let cached_col = cached.and_then(|t| t.columns.iter().find(|c| &c.name == name));
        let column = match cached_col {
            Some(cc) if compatible(&cc.ty, &implied) => {
                let mut c = cc.clone();
                c.nullable = col.nullable;
                if charset.is_some() {
                    c.charset = charset.clone();
                }
                // Prefer labels from the binlog: they are the ones the row was written with.
                if let (ColumnType::Enum { labels: cl }, ColumnType::Enum { labels: il })
                | (ColumnType::Set { members: cl }, ColumnType::Set { members: il }) =
                    (&mut c.ty, &implied)
                    && !il.is_empty()
                {
                    cl.clone_from(il);
                }
                c
            }
            _ => {
                let mut c = Column::new(name.clone(), implied);
                c.nullable = col.nullable;
                c.charset = if c.ty.is_text() || matches!(c.ty, ColumnType::Json) {
                    charset.or(Some(Charset::Utf8mb4))
                } else {
                    charset.filter(|cs| !cs.is_binary())
                };
                c
            }
        };
        columns.push(column);
    }
    let name_index = |n: &str| columns.iter().position(|c| c.name == n);
    let primary_key = match &map.primary_key {
        Some(pk) => pk.clone(),
        None => cached
            .map(|t| {
                t.primary_key
                    .iter()
                    .filter_map(|&i| t.columns.get(i).and_then(|c| name_index(&c.name)))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let remap = |index: &schemas::table::Index| -> Option<schemas::table::Index> {
        let t = cached?;
        let mut out = index.clone();
        for part in out.columns.iter_mut() {
            part.column = name_index(&t.columns.get(part.column)?.name)?;
        }
        Some(out)
    };
    let unique_keys = cached
        .map(|t| t.unique_keys.iter().filter_map(remap).collect())
        .unwrap_or_default();
    let indexes = cached
        .map(|t| t.indexes.iter().filter_map(remap).collect())
        .unwrap_or_default();
    Ok(TableSchema {
        id: map.table.clone(),
        columns,
        primary_key,
        unique_keys,
        indexes,
        foreign_keys: cached.map(|t| t.foreign_keys.clone()).unwrap_or_default(),
        comment: cached.map(|t| t.comment.clone()).unwrap_or_default(),
        auto_increment: cached.and_then(|t| t.auto_increment),
    })
}

/// A table map with its decoded schema, shared by the row events that follow it.
#[derive(Debug, Clone)]
pub struct TableMap {
    /// The parsed event.
    pub event: TableMapEvent,
    /// The schema rows are decoded with.
    pub schema: Arc<TableSchema>,
}
