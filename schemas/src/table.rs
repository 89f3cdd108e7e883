//! Table identity and source column definitions.
//!
//! A [`TableSchema`] is what my2pg knows about one source table at one point of the binlog: its
//! columns with their exact MySQL types ([`ColumnType`]), keys, indexes and foreign keys. The
//! reader builds it from `information_schema` and keeps it current across DDL; the mapping turns
//! it into PostgreSQL DDL; every row carries values in `columns` order.
//!
//! [`ColumnType::parse`] reads `information_schema.COLUMNS.COLUMN_TYPE` (`int(10) unsigned`,
//! `enum('a','it''s')`, `decimal(65,30)`), which is the one place where MySQL spells out the
//! full type, including signedness and ENUM/SET labels with their quoting.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::charset::Charset;

/// A source table: MySQL database and table name, exactly as the server spells them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    /// MySQL database (schema).
    pub database: String,
    /// Table name.
    pub table: String,
}

impl TableId {
    /// Builds a table id.
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        TableId {
            database: database.into(),
            table: table.into(),
        }
    }

    /// Parses `db.table`. Names containing dots must be written with backquotes:
    /// `` `my.db`.`t` ``.
    pub fn parse(text: &str) -> Option<TableId> {
        let parts = split_qualified(text)?;
        match parts.as_slice() {
            [db, table] => Some(TableId::new(db.clone(), table.clone())),
            _ => None,
        }
    }
}

/// Splits `a.b` where either side may be backquoted (with ``` `` ``` as an escaped backquote).
pub fn split_qualified(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'`') {
            chars.next();
            loop {
                match chars.next()? {
                    '`' if chars.peek() == Some(&'`') => {
                        chars.next();
                        part.push('`');
                    }
                    '`' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// Everything my2pg knows about one source table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    /// The table.
    pub id: TableId,
    /// Columns in ordinal order (including generated and invisible ones: the binlog row image
    /// holds every column).
    pub columns: Vec<Column>,
    /// Primary-key column indexes, in key order; empty when the table has none.
    pub primary_key: Vec<usize>,
    /// Unique keys other than the primary key.
    pub unique_keys: Vec<Index>,
    /// Non-unique secondary indexes.
    pub indexes: Vec<Index>,
    /// Foreign keys declared on this table.
    pub foreign_keys: Vec<ForeignKey>,
    /// Table comment.
    pub comment: String,
    /// Next AUTO_INCREMENT value, when the table has one.
    pub auto_increment: Option<u64>,
}

impl TableSchema {
    /// A table with these columns and primary key, and no other keys, indexes or comment (what
    /// fixtures and decoded-event tests need).
    pub fn keyed(id: TableId, columns: Vec<Column>, primary_key: Vec<usize>) -> TableSchema {
        TableSchema {
            id,
            columns,
            primary_key,
            unique_keys: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            comment: String::new(),
            auto_increment: None,
        }
    }

    /// The columns that identify a row: the primary key, or else the first unique key whose
    /// columns are all NOT NULL and not prefixes (MySQL's own rule for an implicit primary key).
    /// `None` when the table has neither.
    pub fn identity_key(&self) -> Option<Vec<usize>> {
        if !self.primary_key.is_empty() {
            return Some(self.primary_key.clone());
        }
        self.unique_keys
            .iter()
            .find(|k| {
                k.columns.iter().all(|c| {
                    c.prefix_len.is_none()
                        && self.columns.get(c.column).is_some_and(|col| !col.nullable)
                })
            })
            .map(|k| k.columns.iter().map(|c| c.column).collect())
    }

    /// Index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// Shared, immutable table schema: row changes point at the schema they were decoded with.
pub type TableSchemaRef = Arc<TableSchema>;

/// One source column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Exact MySQL type.
    pub ty: ColumnType,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Character set of a text column (`None` for non-text types).
    pub charset: Option<Charset>,
    /// Collation of a text column, e.g. `utf8mb4_general_ci`.
    pub collation: Option<String>,
    /// Default as `information_schema.COLUMNS.COLUMN_DEFAULT` spells it (MariaDB quotes string
    /// literals; `NULL` means a NULL default; `None` means no default).
    pub default: Option<String>,
    /// Whether the column is AUTO_INCREMENT.
    pub auto_increment: bool,
    /// Whether the column has `ON UPDATE CURRENT_TIMESTAMP`.
    pub on_update_current_timestamp: bool,
    /// Generation expression of a generated column.
    pub generated: Option<Generated>,
    /// Whether the column is INVISIBLE.
    pub invisible: bool,
    /// Column comment.
    pub comment: String,
}

impl Column {
    /// A plain nullable column of type `ty`, no default, for tests and synthetic schemas.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Column {
        let charset = ty.is_text().then_some(Charset::Utf8mb4);
        Column {
            name: name.into(),
            ty,
            nullable: true,
            charset,
            collation: None,
            default: None,
            auto_increment: false,
            on_update_current_timestamp: false,
            generated: None,
            invisible: false,
            comment: String::new(),
        }
    }
}

/// A generated column's expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    /// The expression as the server prints it.
    pub expression: String,
    /// STORED (true) or VIRTUAL (false).
    pub stored: bool,
}

/// A key or index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Index name.
    pub name: String,
    /// Key parts in order.
    pub columns: Vec<IndexColumn>,
    /// Whether the index is unique.
    pub unique: bool,
    /// BTREE, HASH, FULLTEXT or SPATIAL.
    pub kind: String,
}

/// One key part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexColumn {
    /// Column index in the table.
    pub column: usize,
    /// Prefix length in characters for a prefix index (`KEY (name(10))`).
    pub prefix_len: Option<u32>,
    /// Whether the part is descending.
    pub descending: bool,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table.
    pub references: TableId,
    /// Referenced columns.
    pub referenced_columns: Vec<String>,
    /// ON DELETE rule as MySQL names it (`CASCADE`, `RESTRICT`, …).
    pub on_delete: String,
    /// ON UPDATE rule.
    pub on_update: String,
}

/// Size class of TEXT and BLOB types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LobSize {
    /// TINYTEXT / TINYBLOB (255 bytes).
    Tiny,
    /// TEXT / BLOB (64 KiB).
    Regular,
    /// MEDIUMTEXT / MEDIUMBLOB (16 MiB).
    Medium,
    /// LONGTEXT / LONGBLOB (4 GiB).
    Long,
}

/// Integer width classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntWidth {
    /// TINYINT, 1 byte.
    Tiny,
    /// SMALLINT, 2 bytes.
    Small,
    /// MEDIUMINT, 3 bytes.
    Medium,
    /// INT, 4 bytes.
    Int,
    /// BIGINT, 8 bytes.
    Big,
}

impl IntWidth {
    /// Smallest and largest value of this width.
    pub fn range(self, unsigned: bool) -> (i128, i128) {
        let bits = match self {
            IntWidth::Tiny => 8,
            IntWidth::Small => 16,
            IntWidth::Medium => 24,
            IntWidth::Int => 32,
            IntWidth::Big => 64,
        };
        if unsigned {
            (0, (1i128 << bits) - 1)
        } else {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        }
    }
}

/// Spatial type names.
pub const GEOMETRY_TYPES: &[&str] = &[
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
];

/// An exact MySQL column type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ColumnType {
    /// TINYINT … BIGINT. `display_width` matters only for `TINYINT(1)`, the boolean idiom.
    Integer {
        /// Width class.
        width: IntWidth,
        /// UNSIGNED.
        unsigned: bool,
        /// Display width, e.g. the 1 in TINYINT(1).
        display_width: Option<u32>,
    },
    /// DECIMAL(precision, scale).
    Decimal {
        /// 1..=65.
        precision: u8,
        /// 0..=30.
        scale: u8,
        /// UNSIGNED (deprecated in MySQL, still accepted).
        unsigned: bool,
    },
    /// FLOAT.
    Float,
    /// DOUBLE / REAL.
    Double,
    /// BIT(width).
    Bit {
        /// 1..=64.
        width: u8,
    },
    /// DATE.
    Date,
    /// DATETIME(fsp).
    DateTime {
        /// Fractional-second precision 0..=6.
        fsp: u8,
    },
    /// TIMESTAMP(fsp).
    Timestamp {
        /// Fractional-second precision 0..=6.
        fsp: u8,
    },
    /// TIME(fsp).
    Time {
        /// Fractional-second precision 0..=6.
        fsp: u8,
    },
    /// YEAR.
    Year,
    /// CHAR(len) in characters.
    Char {
        /// Length in characters.
        len: u32,
    },
    /// VARCHAR(len) in characters.
    VarChar {
        /// Length in characters.
        len: u32,
    },
    /// TINYTEXT … LONGTEXT.
    Text {
        /// Size class.
        size: LobSize,
    },
    /// BINARY(len) in bytes.
    Binary {
        /// Length in bytes.
        len: u32,
    },
    /// VARBINARY(len) in bytes.
    VarBinary {
        /// Length in bytes.
        len: u32,
    },
    /// TINYBLOB … LONGBLOB.
    Blob {
        /// Size class.
        size: LobSize,
    },
    /// ENUM with its labels in definition order (index 1 is `labels[0]`).
    Enum {
        /// Labels.
        labels: Vec<String>,
    },
    /// SET with its members in definition order (bit 0 is `members[0]`).
    Set {
        /// Members.
        members: Vec<String>,
    },
    /// JSON (MySQL binary JSON; on MariaDB an alias of LONGTEXT with a JSON check).
    Json,
    /// A spatial type: `geometry`, `point`, … (lowercase name).
    Geometry {
        /// The spatial type name.
        kind: String,
    },
    /// A type my2pg does not migrate (the name as the server prints it). Selecting a table
    /// with such a column is a definite error unless the column is excluded.
    Unsupported {
        /// The full COLUMN_TYPE text.
        name: String,
    },
}

/// COLUMN_TYPE text that [`ColumnType::parse`] cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read column type {0:?}")]
pub struct ColumnTypeParseError(pub String);

impl ColumnType {
    /// Whether values are text in a character set.
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            ColumnType::Char { .. }
                | ColumnType::VarChar { .. }
                | ColumnType::Text { .. }
                | ColumnType::Enum { .. }
                | ColumnType::Set { .. }
        )
    }

    /// Parses `information_schema.COLUMNS.COLUMN_TYPE`, e.g. `bigint(20) unsigned zerofill`,
    /// `enum('a','b''c')`, `decimal(10,2)`, `datetime(6)`.
    pub fn parse(column_type: &str) -> Result<ColumnType, ColumnTypeParseError> {
        let err = || ColumnTypeParseError(column_type.to_owned());
        let text = column_type.trim();
        let lower = text.to_ascii_lowercase();
        let (name, args, rest) = match lower.find('(') {
            Some(open) => {
                let close = matching_paren(text, open).ok_or_else(err)?;
                (
                    &lower[..open],
                    Some(&text[open + 1..close]),
                    &lower[close + 1..],
                )
            }
            None => {
                let name_end = lower.find(' ').unwrap_or(lower.len());
                (&lower[..name_end], None, &lower[name_end..])
            }
        };
        let name = name.trim();
        let unsigned = rest.split_whitespace().any(|w| w == "unsigned");
        let nums = || -> Result<Vec<u32>, ColumnTypeParseError> {
            args.map(|a| {
                a.split(',')
                    .map(|n| n.trim().parse::<u32>().map_err(|_| err()))
                    .collect()
            })
            .unwrap_or(Ok(Vec::new()))
        };
        let first = |default: u32| -> Result<u32, ColumnTypeParseError> {
            Ok(nums()?.first().copied().unwrap_or(default))
        };
        let fsp = || -> Result<u8, ColumnTypeParseError> {
            let f = first(0)?;
            if f > 6 {
                return Err(err());
            }
            Ok(f as u8)
        };
        let int = |width: IntWidth| -> Result<ColumnType, ColumnTypeParseError> {
            Ok(ColumnType::Integer {
                width,
                unsigned,
                display_width: nums()?.first().copied(),
            })
        };
        Ok(match name {
            "tinyint" | "bool" | "boolean" => int(IntWidth::Tiny)?,
            "smallint" => int(IntWidth::Small)?,
            "mediumint" => int(IntWidth::Medium)?,
            "int" | "integer" => int(IntWidth::Int)?,
            "bigint" => int(IntWidth::Big)?,
            "decimal" | "numeric" | "dec" | "fixed" => {
                let n = nums()?;
                let precision = n.first().copied().unwrap_or(10);
                let scale = n.get(1).copied().unwrap_or(0);
                if !(1..=65).contains(&precision) || scale > 38 || scale > precision {
                    return Err(err());
                }
                ColumnType::Decimal {
                    precision: precision as u8,
                    scale: scale as u8,
                    unsigned,
                }
            }
            "float" => {
                // FLOAT(p) with p > 24 is a DOUBLE; FLOAT(M,D) stays a FLOAT.
                let n = nums()?;
                if n.len() == 1 && n[0] > 24 {
                    ColumnType::Double
                } else {
                    ColumnType::Float
                }
            }
            "double" | "real" | "double precision" => ColumnType::Double,
            "bit" => {
                let w = first(1)?;
                if !(1..=64).contains(&w) {
                    return Err(err());
                }
                ColumnType::Bit { width: w as u8 }
            }
            "date" => ColumnType::Date,
            "datetime" => ColumnType::DateTime { fsp: fsp()? },
            "timestamp" => ColumnType::Timestamp { fsp: fsp()? },
            "time" => ColumnType::Time { fsp: fsp()? },
            "year" => ColumnType::Year,
            "char" => ColumnType::Char { len: first(1)? },
            "varchar" => ColumnType::VarChar { len: first(0)? },
            "tinytext" => ColumnType::Text {
                size: LobSize::Tiny,
            },
            "text" => ColumnType::Text {
                size: LobSize::Regular,
            },
            "mediumtext" => ColumnType::Text {
                size: LobSize::Medium,
            },
            "longtext" => ColumnType::Text {
                size: LobSize::Long,
            },
            "binary" => ColumnType::Binary { len: first(1)? },
            "varbinary" => ColumnType::VarBinary { len: first(0)? },
            "tinyblob" => ColumnType::Blob {
                size: LobSize::Tiny,
            },
            "blob" => ColumnType::Blob {
                size: LobSize::Regular,
            },
            "mediumblob" => ColumnType::Blob {
                size: LobSize::Medium,
            },
            "longblob" => ColumnType::Blob {
                size: LobSize::Long,
            },
            "enum" => ColumnType::Enum {
                labels: parse_labels(args.ok_or_else(err)?).ok_or_else(err)?,
            },
            "set" => ColumnType::Set {
                members: parse_labels(args.ok_or_else(err)?).ok_or_else(err)?,
            },
            "json" => ColumnType::Json,
            g if GEOMETRY_TYPES.contains(&g) => ColumnType::Geometry { kind: g.to_owned() },
            _ => ColumnType::Unsupported {
                name: text.to_owned(),
            },
        })
    }
}

fn matching_paren(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_quote = false;
    let bytes = text.as_bytes();
    let mut i = open;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quote {
            if b == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    in_quote = false;
                }
            } else if b == b'\\' {
                i += 1;
            }
        } else if b == b'\'' {
            in_quote = true;
        } else if b == b'(' {
            depth += 1;
        } else if b == b')' {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

/// Parses `'a','b''c','d\'e'` into labels.
fn parse_labels(args: &str) -> Option<Vec<String>> {
    let mut labels = Vec::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next()? != '\'' {
            return None;
        }
        let mut label = String::new();
        loop {
            match chars.next()? {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => label.push(chars.next()?),
                c => label.push(c),
            }
        }
        labels.push(label);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(labels),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = |v: &[String]| {
            v.iter()
                .map(|l| format!("'{}'", l.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            ColumnType::Integer {
                width,
                unsigned,
                display_width,
            } => {
                let name = match width {
                    IntWidth::Tiny => "tinyint",
                    IntWidth::Small => "smallint",
                    IntWidth::Medium => "mediumint",
                    IntWidth::Int => "int",
                    IntWidth::Big => "bigint",
                };
                f.write_str(name)?;
                if let Some(w) = display_width {
                    write!(f, "({w})")?;
                }
                if *unsigned {
                    f.write_str(" unsigned")?;
                }
                Ok(())
            }
            ColumnType::Decimal {
                precision,
                scale,
                unsigned,
            } => {
                write!(
                    f,
                    "decimal({precision},{scale}){}",
                    if *unsigned { " unsigned" } else { "" }
                )
            }
            ColumnType::Float => f.write_str("float"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::Bit { width } => write!(f, "bit({width})"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::DateTime { fsp } => write!(f, "datetime({fsp})"),
            ColumnType::Timestamp { fsp } => write!(f, "timestamp({fsp})"),
            ColumnType::Time { fsp } => write!(f, "time({fsp})"),
            ColumnType::Year => f.write_str("year"),
            ColumnType::Char { len } => write!(f, "char({len})"),
            ColumnType::VarChar { len } => write!(f, "varchar({len})"),
            ColumnType::Text { size } => f.write_str(match size {
                LobSize::Tiny => "tinytext",
                LobSize::Regular => "text",
                LobSize::Medium => "mediumtext",
                LobSize::Long => "longtext",
            }),
            ColumnType::Binary { len } => write!(f, "binary({len})"),
            ColumnType::VarBinary { len } => write!(f, "varbinary({len})"),
            ColumnType::Blob { size } => f.write_str(match size {
                LobSize::Tiny => "tinyblob",
                LobSize::Regular => "blob",
                LobSize::Medium => "mediumblob",
                LobSize::Long => "longblob",
            }),
            ColumnType::Enum { labels } => write!(f, "enum({})", quote(labels)),
            ColumnType::Set { members } => write!(f, "set({})", quote(members)),
            ColumnType::Json => f.write_str("json"),
            ColumnType::Geometry { kind } => f.write_str(kind),
            ColumnType::Unsupported { name } => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_integer_types_with_sign_and_width() {
        assert_eq!(
            ColumnType::parse("bigint(20) unsigned zerofill").unwrap(),
            ColumnType::Integer {
                width: IntWidth::Big,
                unsigned: true,
                display_width: Some(20)
            }
        );
        assert_eq!(
            ColumnType::parse("tinyint(1)").unwrap(),
            ColumnType::Integer {
                width: IntWidth::Tiny,
                unsigned: false,
                display_width: Some(1)
            }
        );
        assert_eq!(
            ColumnType::parse("int").unwrap(),
            ColumnType::Integer {
                width: IntWidth::Int,
                unsigned: false,
                display_width: None
            }
        );
    }

    #[test]
    fn parses_enum_labels_with_quotes_and_commas() {
        assert_eq!(
            ColumnType::parse("enum('a,b','c''d','e\\'f')").unwrap(),
            ColumnType::Enum {
                labels: vec!["a,b".into(), "c'd".into(), "e'f".into()]
            }
        );
        assert_eq!(
            ColumnType::parse("set('one','two')").unwrap(),
            ColumnType::Set {
                members: vec!["one".into(), "two".into()]
            }
        );
    }

    #[test]
    fn parses_decimal_temporal_and_strings() {
        assert_eq!(
            ColumnType::parse("decimal(65,30)").unwrap(),
            ColumnType::Decimal {
                precision: 65,
                scale: 30,
                unsigned: false
            }
        );
        assert_eq!(
            ColumnType::parse("datetime(6)").unwrap(),
            ColumnType::DateTime { fsp: 6 }
        );
        assert_eq!(
            ColumnType::parse("timestamp").unwrap(),
            ColumnType::Timestamp { fsp: 0 }
        );
        assert_eq!(
            ColumnType::parse("varchar(255)").unwrap(),
            ColumnType::VarChar { len: 255 }
        );
        assert_eq!(ColumnType::parse("float(30)").unwrap(), ColumnType::Double);
        assert_eq!(
            ColumnType::parse("point").unwrap(),
            ColumnType::Geometry {
                kind: "point".into()
            }
        );
        assert_eq!(
            ColumnType::parse("inet6").unwrap(),
            ColumnType::Unsupported {
                name: "inet6".into()
            }
        );
        assert!(ColumnType::parse("datetime(7)").is_err());
        assert!(ColumnType::parse("enum(").is_err());
    }

    #[test]
    fn table_id_parses_backquoted_names() {
        assert_eq!(
            TableId::parse("shop.orders"),
            Some(TableId::new("shop", "orders"))
        );
        assert_eq!(
            TableId::parse("`my.db`.`a``b`"),
            Some(TableId::new("my.db", "a`b"))
        );
        assert_eq!(TableId::parse("shop"), None);
        assert_eq!(TableId::parse("a.b.c"), None);
    }
}
