//! The MySQL → PostgreSQL type mapping: which PostgreSQL type each source column becomes, under
//! which policies its values convert, and the target names of tables and columns.
//!
//! [`map_table`] turns one source [`TableSchema`] into a [`TableMapping`]: one
//! [`ColumnMapping`] per source column, *in source column order*, so `row.0[i]` always converts
//! with `columns[i]` — the snapshot, the stream and the verifier index rows the same way and
//! cannot disagree about which value goes where. Target column order may differ from source
//! order after streaming DDL (`ADD COLUMN … AFTER` cannot move a PostgreSQL column), so every
//! statement that writes rows names its columns.
//!
//! **Why the mapping, not the value, decides.** A column's PostgreSQL type and policies are a
//! function of its declared MySQL type and the configuration only, never of the value at hand.
//! So TINYINT(1) is `boolean` for the snapshot and the stream alike (the binlog does not carry
//! the display width; the reader's `information_schema` schema does), and a value the chosen
//! type cannot hold is an error ([`crate::pgvalue::ConvertError`]) rather than a quiet change
//! of type or value.
//!
//! The defaults (`../shared/DESIGN.md`, reference table in `docs/type-mapping.md`):
//!
//! | MySQL | PostgreSQL |
//! |---|---|
//! | TINYINT(1) | boolean (`tinyint1_as_boolean`) |
//! | TINYINT, SMALLINT, TINYINT UNSIGNED | smallint |
//! | MEDIUMINT, INT, SMALLINT/MEDIUMINT UNSIGNED | integer |
//! | INT UNSIGNED, BIGINT | bigint |
//! | BIGINT UNSIGNED | numeric(20,0) (`unsigned_bigint_as`) |
//! | DECIMAL(p,s) | numeric(p,s) |
//! | FLOAT / DOUBLE | real / double precision |
//! | BIT(1) / BIT(n) | boolean / bit varying(n) |
//! | CHAR(n), VARCHAR(n) / TEXT | varchar(n) (`string_as`) / text |
//! | BINARY, VARBINARY, BLOB | bytea |
//! | DATE, DATETIME(p), TIMESTAMP(p) | date, timestamp(p), timestamptz(p) (`zero_date`) |
//! | TIME(p) | interval(p) |
//! | YEAR | smallint |
//! | ENUM / SET | text + CHECK (`enum_as`) / text[] (`set_as`) |
//! | JSON | jsonb (`json_as`) |
//! | spatial | bytea WKB (`geometry_as`) |
//! | UUID (MariaDB) | uuid |

mod default;
pub mod options;

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::table::{ColumnType, IntWidth, TableId, TableSchema};

pub use default::PgDefault;
pub use options::{
    ColumnOverride, ColumnPolicy, DdlAction, DdlPolicy, EnumAs, GeometryAs, IdentifierCase,
    InvalidText, JsonAs, MappingOptions, NulInText, OptionsError, SetAs, StringAs, TableOverride,
    UnsignedBigintAs, ZeroDate,
};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1). Longer names are truncated by the server
/// without an error, so the mapping refuses them instead.
pub const PG_MAX_IDENTIFIER_BYTES: usize = 63;

/// A PostgreSQL column type. `Display` writes it as SQL, spelled the way `format_type()`
/// prints it, so a created column and one read back from the catalogue compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum PgType {
    /// `boolean`.
    Boolean,
    /// `smallint`.
    SmallInt,
    /// `integer`.
    Integer,
    /// `bigint`.
    BigInt,
    /// `numeric(precision,scale)`.
    Numeric {
        /// Total digits.
        precision: u16,
        /// Digits after the point.
        scale: u16,
    },
    /// `real`.
    Real,
    /// `double precision`.
    Double,
    /// `character varying(len)`.
    VarChar {
        /// Length in characters.
        len: u32,
    },
    /// `text`.
    Text,
    /// `bytea`.
    Bytea,
    /// `date`.
    Date,
    /// `timestamp(p) without time zone`.
    Timestamp {
        /// Fractional digits, 0..=6.
        precision: u8,
    },
    /// `timestamp(p) with time zone`.
    Timestamptz {
        /// Fractional digits, 0..=6.
        precision: u8,
    },
    /// `interval(p)`.
    Interval {
        /// Fractional digits, 0..=6.
        precision: u8,
    },
    /// `bit varying(len)`.
    BitVarying {
        /// Maximum length in bits.
        len: u32,
    },
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// `text[]`.
    TextArray,
    /// A PostgreSQL enum type created for the column.
    Enum {
        /// Schema of the type.
        schema: String,
        /// Type name.
        name: String,
    },
    /// `uuid`.
    Uuid,
    /// PostGIS `geometry`.
    Geometry,
}

impl PgType {
    /// The type's OID when it is a built-in type (enum and PostGIS types have OIDs assigned
    /// per database).
    pub fn oid(&self) -> Option<u32> {
        Some(match self {
            PgType::Boolean => 16,
            PgType::Bytea => 17,
            PgType::BigInt => 20,
            PgType::SmallInt => 21,
            PgType::Integer => 23,
            PgType::Text => 25,
            PgType::Json => 114,
            PgType::Real => 700,
            PgType::Double => 701,
            PgType::VarChar { .. } => 1043,
            PgType::Date => 1082,
            PgType::Timestamp { .. } => 1114,
            PgType::Timestamptz { .. } => 1184,
            PgType::Interval { .. } => 1186,
            PgType::BitVarying { .. } => 1562,
            PgType::Numeric { .. } => 1700,
            PgType::Uuid => 2950,
            PgType::Jsonb => 3802,
            PgType::TextArray => 1009,
            PgType::Enum { .. } | PgType::Geometry => return None,
        })
    }

    /// Whether values are text (PostgreSQL rejects NUL characters in them).
    pub fn is_textual(&self) -> bool {
        matches!(
            self,
            PgType::Text
                | PgType::VarChar { .. }
                | PgType::Enum { .. }
                | PgType::TextArray
                | PgType::Json
                | PgType::Jsonb
        )
    }

    /// Whether the type can carry an identity (`GENERATED BY DEFAULT AS IDENTITY`).
    pub fn is_integer(&self) -> bool {
        matches!(self, PgType::SmallInt | PgType::Integer | PgType::BigInt)
    }
}

impl fmt::Display for PgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgType::Boolean => f.write_str("boolean"),
            PgType::SmallInt => f.write_str("smallint"),
            PgType::Integer => f.write_str("integer"),
            PgType::BigInt => f.write_str("bigint"),
            PgType::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
            PgType::Real => f.write_str("real"),
            PgType::Double => f.write_str("double precision"),
            PgType::VarChar { len } => write!(f, "character varying({len})"),
            PgType::Text => f.write_str("text"),
            PgType::Bytea => f.write_str("bytea"),
            PgType::Date => f.write_str("date"),
            PgType::Timestamp { precision } => {
                write!(f, "timestamp({precision}) without time zone")
            }
            PgType::Timestamptz { precision } => write!(f, "timestamp({precision}) with time zone"),
            PgType::Interval { precision } => write!(f, "interval({precision})"),
            PgType::BitVarying { len } => write!(f, "bit varying({len})"),
            PgType::Json => f.write_str("json"),
            PgType::Jsonb => f.write_str("jsonb"),
            PgType::TextArray => f.write_str("text[]"),
            PgType::Enum { schema, name } => {
                write!(f, "{}.{}", quote_ident(schema), quote_ident(name))
            }
            PgType::Uuid => f.write_str("uuid"),
            PgType::Geometry => f.write_str("geometry"),
        }
    }
}

/// Quotes a PostgreSQL identifier: double quotes, embedded double quotes doubled. Always
/// quoting keeps the exact spelling (case, reserved words, spaces) of every name.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A name built from parts joined with `_`, cut to 63 bytes with a hash suffix when longer, so
/// that derived names (indexes, enum types, triggers) are unique, stable and never truncated
/// silently by the server.
pub fn derived_name(parts: &[&str]) -> String {
    let full = parts.join("_");
    if full.len() <= PG_MAX_IDENTIFIER_BYTES {
        return full;
    }
    let hash = hex::encode(&Sha256::digest(full.as_bytes())[..4]);
    let mut cut = PG_MAX_IDENTIFIER_BYTES - hash.len() - 1;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{hash}", &full[..cut])
}

/// A PostgreSQL table: schema and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PgTable {
    /// Schema.
    pub schema: String,
    /// Table name.
    pub name: String,
}

impl PgTable {
    /// `"schema"."name"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl fmt::Display for PgTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// How one source column maps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnMapping {
    /// Source column name.
    pub source_name: String,
    /// Source type.
    pub source_type: ColumnType,
    /// Target column name.
    pub name: String,
    /// Target type.
    pub pg_type: PgType,
    /// Whether the target column allows NULL (the source's nullability, relaxed when the
    /// `zero_date = null` policy may write NULL).
    pub nullable: bool,
    /// The translated default.
    pub default: Option<PgDefault>,
    /// For AUTO_INCREMENT: the next value (the start of the identity or sequence).
    pub identity_start: Option<u64>,
    /// Whether the source has `ON UPDATE CURRENT_TIMESTAMP` (becomes a trigger).
    pub on_update_current_timestamp: bool,
    /// Labels for the CHECK of an ENUM (`enum_as = check`) or SET (`set_as = array`).
    pub allowed: Option<Vec<String>>,
    /// The policies its values convert under.
    pub policy: ColumnPolicy,
    /// Whether it is part of the row identity key.
    pub in_key: bool,
    /// Column comment.
    pub comment: String,
    /// Decisions the operator should know (defaults dropped, NOT NULL relaxed, …).
    pub notes: Vec<String>,
}

/// How one source table maps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableMapping {
    /// The source schema this mapping was built from.
    #[serde(skip)]
    pub source: Arc<TableSchema>,
    /// Source table.
    pub source_id: TableId,
    /// Target table.
    pub target: PgTable,
    /// One per source column, in source column order.
    pub columns: Vec<ColumnMapping>,
    /// Row identity: the primary key, else the first NOT NULL unique key (indexes into
    /// `columns`); empty when the table has neither.
    pub key: Vec<usize>,
    /// Whether `key` is the source's primary key (false: a unique key stands in).
    pub key_is_primary: bool,
    /// Decisions the operator should know.
    pub notes: Vec<String>,
}

impl TableMapping {
    /// The mapping of the column named `source_name`.
    pub fn column(&self, source_name: &str) -> Option<&ColumnMapping> {
        self.columns.iter().find(|c| c.source_name == source_name)
    }

    /// Target column names in source column order (the column list for COPY and INSERT).
    pub fn target_columns(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// `db.table.column` of column `i`, for messages.
    pub fn column_path(&self, i: usize) -> String {
        format!(
            "{}.{}",
            self.source_id,
            self.columns.get(i).map_or("?", |c| c.source_name.as_str())
        )
    }
}

/// A table that cannot be mapped as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A column type my2pg does not migrate.
    #[error("column {column}: type {ty} has no PostgreSQL mapping")]
    Unsupported {
        /// `db.table.column`.
        column: String,
        /// The MySQL type.
        ty: String,
    },
    /// A target name longer than PostgreSQL's 63-byte limit.
    #[error("{what} {name:?} is {bytes} bytes long; PostgreSQL identifiers hold at most 63")]
    NameTooLong {
        /// What is named (`table shop.t`, `column shop.t.c`).
        what: String,
        /// The target name.
        name: String,
        /// Its length in bytes.
        bytes: usize,
    },
    /// Two columns with the same target name.
    #[error("table {table}: columns {first:?} and {second:?} both become {name:?} in PostgreSQL")]
    NameClash {
        /// `db.table`.
        table: String,
        /// First source column.
        first: String,
        /// Second source column.
        second: String,
        /// The target name they share.
        name: String,
    },
    /// An ENUM label a PostgreSQL enum cannot hold.
    #[error(
        "column {column}: enum label {label:?} is longer than PostgreSQL's 63-byte enum labels"
    )]
    EnumLabel {
        /// `db.table.column`.
        column: String,
        /// The label.
        label: String,
    },
}

impl MappingError {
    /// What the operator should do.
    pub fn hint(&self) -> String {
        match self {
            MappingError::Unsupported { column, .. } => format!(
                "exclude the table (--exclude) or change the column's type on the source; {column} cannot be copied exactly"
            ),
            MappingError::NameTooLong { what, .. } => {
                if what.starts_with("column") {
                    format!(
                        "give it a shorter name: [mapping.columns.\"{}\"] name = \"…\"",
                        what.trim_start_matches("column ")
                    )
                } else {
                    format!(
                        "give it a shorter name: [mapping.tables.\"{}\"] name = \"…\"",
                        what.trim_start_matches("table ")
                    )
                }
            }
            MappingError::NameClash { table, second, .. } => format!(
                "rename one of them: [mapping.columns.\"{table}.{second}\"] name = \"…\", or set [mapping] identifiers = \"preserve\""
            ),
            MappingError::EnumLabel { column, .. } => format!(
                "use [mapping.columns.\"{column}\"] enum_as = \"check\" (text with a CHECK)"
            ),
        }
    }
}

/// Maps one source table into `target_schema` under `opts`.
pub fn map_table(
    schema: Arc<TableSchema>,
    target_schema: &str,
    opts: &MappingOptions,
) -> Result<TableMapping, MappingError> {
    let id = schema.id.clone();
    let table_name = opts.table_name(&id);
    check_len(&format!("table {id}"), &table_name)?;
    check_len(&format!("schema of {id}"), target_schema)?;
    let key = schema.identity_key().unwrap_or_default();
    let key_is_primary = !schema.primary_key.is_empty();
    let mut columns: Vec<ColumnMapping> = Vec::with_capacity(schema.columns.len());
    for (i, col) in schema.columns.iter().enumerate() {
        let path = format!("{id}.{}", col.name);
        let policy = opts.policy_for(&id, &col.name);
        let name = opts.column_name(&id, &col.name);
        check_len(&format!("column {path}"), &name)?;
        if let Some(other) = columns.iter().find(|c| c.name == name) {
            return Err(MappingError::NameClash {
                table: id.to_string(),
                first: other.source_name.clone(),
                second: col.name.clone(),
                name,
            });
        }
        let binary_text = col.ty.is_text() && col.charset.as_ref().is_some_and(|c| c.is_binary());
        let pg_type = pg_type_for(&col.ty, &policy, binary_text, || PgTable {
            schema: target_schema.to_owned(),
            name: derived_name(&[&table_name, &name]),
        })
        .ok_or_else(|| MappingError::Unsupported {
            column: path.clone(),
            ty: col.ty.to_string(),
        })?;
        if let (PgType::Enum { .. }, ColumnType::Enum { labels }) = (&pg_type, &col.ty)
            && let Some(l) = labels.iter().find(|l| l.is_empty() || l.len() > 63)
        {
            return Err(MappingError::EnumLabel {
                column: path,
                label: l.clone(),
            });
        }
        let in_key = key.contains(&i);
        let mut notes = Vec::new();
        let temporal = matches!(
            col.ty,
            ColumnType::Date | ColumnType::DateTime { .. } | ColumnType::Timestamp { .. }
        );
        let mut nullable = col.nullable;
        if temporal && !nullable && policy.zero_date == ZeroDate::Null && !in_key {
            nullable = true;
            notes.push("NOT NULL dropped: zero_date = null writes NULL for zero dates".to_owned());
        }
        let allowed = match (&col.ty, &pg_type) {
            (ColumnType::Enum { labels }, PgType::Text) if policy.enum_as == EnumAs::Check => {
                let mut l = labels.clone();
                if !l.iter().any(String::is_empty) {
                    // MySQL's error value: every ENUM column can hold it.
                    l.push(String::new());
                }
                Some(l)
            }
            (ColumnType::Set { members }, PgType::TextArray) => Some(members.clone()),
            _ => None,
        };
        if let ColumnType::Enum { labels } = &col.ty {
            if policy.enum_as == EnumAs::Text || binary_text {
                // no constraint
            } else if policy.enum_as == EnumAs::PgEnum && !labels.iter().any(String::is_empty) {
                notes.push(
                    "MySQL's ENUM error value '' cannot be stored in a PostgreSQL enum".to_owned(),
                );
            }
        }
        if let Some(g) = &col.generated {
            notes.push(format!(
                "generated column ({} {}) copied as a plain column: its values come from the source",
                if g.stored { "STORED" } else { "VIRTUAL" },
                g.expression
            ));
        }
        if let (ColumnType::Char { len: 0 } | ColumnType::VarChar { len: 0 }, PgType::Text) =
            (&col.ty, &pg_type)
        {
            notes.push(format!(
                "{} becomes text: PostgreSQL has no zero-length varchar",
                col.ty
            ));
        }
        let identity_start = col
            .auto_increment
            .then(|| schema.auto_increment.unwrap_or(1));
        columns.push(ColumnMapping {
            source_name: col.name.clone(),
            source_type: col.ty.clone(),
            name,
            pg_type,
            nullable,
            default: None,
            identity_start,
            on_update_current_timestamp: col.on_update_current_timestamp,
            allowed,
            policy,
            in_key,
            comment: col.comment.clone(),
            notes,
        });
    }
    let mut mapping = TableMapping {
        source_id: id,
        target: PgTable {
            schema: target_schema.to_owned(),
            name: table_name,
        },
        columns,
        key,
        key_is_primary,
        notes: Vec::new(),
        source: schema.clone(),
    };
    for (i, col) in schema.columns.iter().enumerate() {
        let (default, notes) = default::translate(&mapping, i, col.default.as_deref());
        if let Some(c) = mapping.columns.get_mut(i) {
            c.default = default;
            c.notes.extend(notes);
        }
    }
    if mapping.key.is_empty() {
        mapping
            .notes
            .push("no primary key and no NOT NULL unique key: rows cannot be identified".into());
    } else if !mapping.key_is_primary {
        mapping
            .notes
            .push("no primary key: a NOT NULL unique key identifies rows".into());
    }
    Ok(mapping)
}

fn check_len(what: &str, name: &str) -> Result<(), MappingError> {
    if name.len() > PG_MAX_IDENTIFIER_BYTES {
        return Err(MappingError::NameTooLong {
            what: what.to_owned(),
            name: name.to_owned(),
            bytes: name.len(),
        });
    }
    Ok(())
}

/// The PostgreSQL type of a MySQL type under `policy`; `None` for types my2pg does not
/// migrate. `binary_text` is a text type declared in the `binary` character set (bytes).
/// `enum_type` names the PostgreSQL enum type, when `enum_as = pg_enum` needs one.
pub fn pg_type_for(
    ty: &ColumnType,
    policy: &ColumnPolicy,
    binary_text: bool,
    enum_type: impl FnOnce() -> PgTable,
) -> Option<PgType> {
    Some(match ty {
        ColumnType::Integer {
            width,
            unsigned,
            display_width,
        } => match (width, unsigned) {
            (IntWidth::Tiny, _) if *display_width == Some(1) && policy.tinyint1_as_boolean => {
                PgType::Boolean
            }
            (IntWidth::Tiny, _) | (IntWidth::Small, false) => PgType::SmallInt,
            (IntWidth::Small, true) | (IntWidth::Medium, _) | (IntWidth::Int, false) => {
                PgType::Integer
            }
            (IntWidth::Int, true) | (IntWidth::Big, false) => PgType::BigInt,
            (IntWidth::Big, true) => match policy.unsigned_bigint_as {
                UnsignedBigintAs::Numeric => PgType::Numeric {
                    precision: 20,
                    scale: 0,
                },
                UnsignedBigintAs::Bigint => PgType::BigInt,
            },
        },
        ColumnType::Decimal {
            precision, scale, ..
        } => PgType::Numeric {
            precision: u16::from(*precision),
            scale: u16::from(*scale),
        },
        ColumnType::Float => PgType::Real,
        ColumnType::Double => PgType::Double,
        ColumnType::Bit { width: 1 } => PgType::Boolean,
        ColumnType::Bit { width } => PgType::BitVarying {
            len: u32::from(*width),
        },
        ColumnType::Date => PgType::Date,
        ColumnType::DateTime { fsp } => PgType::Timestamp { precision: *fsp },
        ColumnType::Timestamp { fsp } => PgType::Timestamptz { precision: *fsp },
        ColumnType::Time { fsp } => PgType::Interval { precision: *fsp },
        ColumnType::Year => PgType::SmallInt,
        _ if binary_text => PgType::Bytea,
        ColumnType::Char { len } | ColumnType::VarChar { len } => match policy.string_as {
            StringAs::Varchar if *len > 0 => PgType::VarChar { len: *len },
            _ => PgType::Text,
        },
        ColumnType::Text { .. } => PgType::Text,
        ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => {
            PgType::Bytea
        }
        ColumnType::Enum { .. } => match policy.enum_as {
            EnumAs::Check | EnumAs::Text => PgType::Text,
            EnumAs::PgEnum => {
                let t = enum_type();
                PgType::Enum {
                    schema: t.schema,
                    name: t.name,
                }
            }
        },
        ColumnType::Set { .. } => match policy.set_as {
            SetAs::Array => PgType::TextArray,
            SetAs::Text => PgType::Text,
        },
        ColumnType::Json => match policy.json_as {
            JsonAs::Jsonb => PgType::Jsonb,
            JsonAs::Json => PgType::Json,
            JsonAs::Text => PgType::Text,
        },
        ColumnType::Geometry { .. } => match policy.geometry_as {
            GeometryAs::Wkb => PgType::Bytea,
            GeometryAs::Postgis => PgType::Geometry,
        },
        ColumnType::Unsupported { name } if name.eq_ignore_ascii_case("uuid") => PgType::Uuid,
        ColumnType::Unsupported { .. } => return None,
    })
}

#[cfg(test)]
mod tests;
