//! `[[transform]]` entries: what the TOML says, checked and built into stages.

use std::fmt;

use serde::{Deserialize, Serialize};

use schemas::table::{ColumnType, IntWidth, TableId, split_qualified};
use schemas::value::{DateTime, Decimal, Timestamp, Value};

use crate::TransformError;
use crate::filter::Filter;
use crate::mask::Mask;
use crate::stage::{Cast, ExcludeColumns, RenameColumn, TableFilter, Transform, long_text};

/// One `[[transform]]` entry. Stages run in the order they are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformConfig {
    /// Only the matching tables are migrated (applied after `[tables]`).
    IncludeTables {
        /// `db.table` patterns; `*` matches any run of characters.
        tables: Vec<String>,
    },
    /// The matching tables are not migrated.
    ExcludeTables {
        /// `db.table` patterns.
        tables: Vec<String>,
    },
    /// Columns that are neither copied nor compared.
    ExcludeColumns {
        /// `db.table` pattern.
        table: String,
        /// Column names (a table the pattern matches that lacks one is left alone).
        columns: Vec<String>,
    },
    /// A column gets another name on the target.
    RenameColumn {
        /// `db.table` pattern.
        table: String,
        /// Source column name.
        column: String,
        /// Target column name (before identifier folding).
        to: String,
    },
    /// Personal data replaced by a salted SHA-256, NULL or a constant.
    Mask {
        /// `db.table` pattern.
        table: String,
        /// Column names.
        columns: Vec<String>,
        /// `sha256`, `null` or `constant`.
        with: MaskWith,
        /// For `sha256`: the salt (keep it secret; `${VAR}` reads it from the environment).
        #[serde(default)]
        salt: Option<String>,
        /// For `constant`: the value written instead.
        #[serde(default)]
        value: Option<String>,
    },
    /// Only rows for which the predicate is true are migrated.
    Filter {
        /// `db.table` pattern.
        table: String,
        /// A predicate on column values, e.g. `status <> 'test' AND tenant_id IN (1, 2)`.
        #[serde(rename = "where")]
        predicate: String,
    },
    /// A column's values change type.
    Cast {
        /// `db.table` pattern.
        table: String,
        /// Column name.
        column: String,
        /// `text`, `json`, `bigint` or `timestamp`.
        to: CastTo,
    },
}

/// How a mask replaces a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskWith {
    /// Lowercase hex SHA-256 of the salt and the value: equal values stay equal (joins and
    /// keys still work), the value cannot be read back without the salt.
    Sha256,
    /// NULL (not allowed on key columns).
    Null,
    /// A fixed value (not allowed on key columns).
    Constant,
}

/// What a cast converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CastTo {
    /// The value's text form (numbers as written, temporal values in ISO form, UTF-8 bytes
    /// as text).
    Text,
    /// Text holding JSON becomes a JSON column (`jsonb` under the default mapping).
    Json,
    /// Integers, integral decimals and integer text become `bigint`.
    Bigint,
    /// Unix epoch seconds (integers) or a TIMESTAMP become their UTC reading, a DATETIME
    /// (PostgreSQL `timestamp without time zone`, in UTC). Not `timestamptz`: MySQL's zero
    /// TIMESTAMP is the Unix epoch's own second, so an epoch-0 value would be mistaken for it.
    Timestamp,
}

impl CastTo {
    /// The name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            CastTo::Text => "text",
            CastTo::Json => "json",
            CastTo::Bigint => "bigint",
            CastTo::Timestamp => "timestamp",
        }
    }

    /// The input types it reads, for messages.
    pub(crate) fn reads(self) -> &'static str {
        match self {
            CastTo::Text => "any type but spatial and binary-only types",
            CastTo::Json => "CHAR, VARCHAR, TEXT or JSON",
            CastTo::Bigint => "integer, DECIMAL with scale 0, YEAR, BIT or text columns",
            CastTo::Timestamp => "integer (Unix seconds) or TIMESTAMP columns",
        }
    }

    /// The column type after the cast, `None` when `from` cannot be read.
    pub(crate) fn output_type(self, from: &ColumnType) -> Option<ColumnType> {
        use ColumnType as T;
        match self {
            CastTo::Text => match from {
                T::Geometry { .. } | T::Unsupported { .. } => None,
                _ => Some(long_text()),
            },
            CastTo::Json => matches!(
                from,
                T::Char { .. } | T::VarChar { .. } | T::Text { .. } | T::Json
            )
            .then_some(T::Json),
            CastTo::Bigint => matches!(
                from,
                T::Integer { .. }
                    | T::Decimal { scale: 0, .. }
                    | T::Year
                    | T::Bit { .. }
                    | T::Char { .. }
                    | T::VarChar { .. }
                    | T::Text { .. }
            )
            .then_some(T::Integer {
                width: IntWidth::Big,
                unsigned: false,
                display_width: None,
            }),
            CastTo::Timestamp => match from {
                T::Integer { .. } => Some(T::DateTime { fsp: 0 }),
                T::Timestamp { fsp } => Some(T::DateTime { fsp: *fsp }),
                _ => None,
            },
        }
    }

    /// Converts one value. A value that cannot be converted is passed on unchanged: the type
    /// mapping then rejects it as not fitting the column, and sync stops naming the row (or
    /// records it as a dead letter), so nothing is silently altered.
    pub(crate) fn convert(self, v: Value) -> Value {
        if v.is_null() {
            return v;
        }
        match self {
            CastTo::Text => text_form(&v).map_or(v, Value::Text),
            CastTo::Json => match v {
                Value::Text(s) if serde_json::from_str::<serde_json::Value>(&s).is_ok() => {
                    Value::Json(s)
                }
                other => other,
            },
            CastTo::Bigint => match &v {
                Value::Int(_) => v,
                Value::UInt(u) => i64::try_from(*u).map_or(v, Value::Int),
                Value::Year(y) => Value::Int(i64::from(*y)),
                Value::Bit { bits, .. } => i64::try_from(*bits).map_or(v, Value::Int),
                Value::Decimal(d) => d.as_str().parse::<i64>().map_or(v, Value::Int),
                Value::Text(s) => s.trim().parse::<i64>().map_or(v, Value::Int),
                _ => v,
            },
            CastTo::Timestamp => match &v {
                Value::Int(s) => epoch_reading(*s).map_or(v, Value::DateTime),
                Value::UInt(s) => i64::try_from(*s)
                    .ok()
                    .and_then(epoch_reading)
                    .map_or(v, Value::DateTime),
                // The zero TIMESTAMP stays a zero reading: the `zero_date` policy decides.
                Value::Timestamp(t) if t.is_zero() => Value::DateTime(ZERO_READING),
                Value::Timestamp(t) => Value::DateTime(t.to_utc()),
                _ => v,
            },
        }
    }
}

/// The UTC calendar reading of Unix second `secs`, within years 1..=9999 (MySQL's DATETIME
/// range; beyond it the value is left for the mapping to reject).
const ZERO_READING: DateTime = DateTime {
    date: schemas::value::Date {
        year: 0,
        month: 0,
        day: 0,
    },
    hour: 0,
    minute: 0,
    second: 0,
    micros: 0,
};

fn epoch_reading(secs: i64) -> Option<DateTime> {
    // 0001-01-01 00:00:00 and 10000-01-01 00:00:00 in Unix seconds.
    const MIN: i64 = -62_135_596_800;
    const MAX: i64 = 253_402_300_800;
    (MIN..MAX)
        .contains(&secs)
        .then(|| Timestamp { secs, micros: 0 }.to_utc())
}

/// The text form of a value: numbers as the source wrote them, temporal values in ISO form,
/// SET as its comma-joined members, UTF-8 bytes as text. `None` for values without one
/// (bytes that are not UTF-8, spatial values).
pub(crate) fn text_form(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Decimal(d) => d.as_str().to_owned(),
        Value::Bit { bits, .. } => bits.to_string(),
        Value::Date(d) => d.to_string(),
        Value::DateTime(d) => d.to_string(),
        Value::Timestamp(t) => {
            let mut s = t.to_utc().to_string();
            s.push_str("+00");
            s
        }
        Value::Time(t) => t.to_string(),
        Value::Year(y) => format!("{y:04}"),
        Value::Text(s) | Value::Enum(s) | Value::Json(s) => s.clone(),
        Value::Set(m) => m.join(","),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok()?,
        Value::InvalidText { .. } | Value::Geometry { .. } => return None,
    })
}

/// Parses a constant for a column of type `ty`; `None` when the type takes no constant.
pub(crate) fn constant_for(ty: &ColumnType, text: &str) -> Option<Value> {
    use ColumnType as T;
    match ty {
        T::Char { len } | T::VarChar { len } => {
            (text.chars().count() <= *len as usize).then(|| Value::Text(text.to_owned()))
        }
        T::Text { .. } => Some(Value::Text(text.to_owned())),
        T::Integer {
            unsigned: false, ..
        } => text.parse().ok().map(Value::Int),
        T::Integer { unsigned: true, .. } => text.parse().ok().map(Value::UInt),
        T::Decimal { .. } => Decimal::parse(text).ok().map(Value::Decimal),
        T::Enum { labels } => labels
            .iter()
            .any(|l| l == text)
            .then(|| Value::Enum(text.to_owned())),
        T::Json => serde_json::from_str::<serde_json::Value>(text)
            .is_ok()
            .then(|| Value::Json(text.to_owned())),
        _ => None,
    }
}

/// A list of `db.table` patterns where `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TablePatterns(Vec<(String, String)>);

impl TablePatterns {
    pub(crate) fn parse(stage: &str, patterns: &[String]) -> Result<Self, TransformError> {
        if patterns.is_empty() {
            return Err(TransformError {
                stage: stage.to_owned(),
                problem: "no table pattern given; write e.g. table = \"shop.customers\" or \
                          tables = [\"shop.*\"]"
                    .into(),
            });
        }
        let mut out = Vec::with_capacity(patterns.len());
        for p in patterns {
            match split_qualified(p) {
                Some(parts) if parts.len() == 2 => {
                    out.push((parts[0].clone(), parts[1].clone()));
                }
                _ => {
                    return Err(TransformError {
                        stage: stage.to_owned(),
                        problem: format!(
                            "{p:?} is not db.table (use * for any run of characters, \
                             backquotes around names holding dots)"
                        ),
                    });
                }
            }
        }
        Ok(TablePatterns(out))
    }

    pub(crate) fn matches(&self, id: &TableId) -> bool {
        self.0
            .iter()
            .any(|(d, t)| glob(d, &id.database) && glob(t, &id.table))
    }
}

impl fmt::Display for TablePatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.0.iter().map(|(d, t)| format!("{d}.{t}")).collect();
        f.write_str(&all.join(", "))
    }
}

/// `*`-only glob, case-sensitive like MySQL table names on Linux. Hand-written: eight lines
/// do not justify a glob crate whose other metacharacters (`?`, `[`) are legal in names.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl TransformConfig {
    /// The stage this entry describes; `index` numbers it in messages.
    pub fn build(&self, index: usize) -> Result<Box<dyn Transform>, TransformError> {
        let name = format!("[[transform]] #{} ({})", index + 1, self.kind());
        let label = name.clone();
        let one = |t: &String| TablePatterns::parse(&label, std::slice::from_ref(t));
        let nonempty = |what: &str, v: &[String]| {
            if v.is_empty() || v.iter().any(String::is_empty) {
                Err(TransformError {
                    stage: label.clone(),
                    problem: format!("{what} must name at least one column, none empty"),
                })
            } else {
                Ok(())
            }
        };
        Ok(match self {
            TransformConfig::IncludeTables { tables } => Box::new(TableFilter {
                patterns: TablePatterns::parse(&name, tables)?,
                include: true,
            }),
            TransformConfig::ExcludeTables { tables } => Box::new(TableFilter {
                patterns: TablePatterns::parse(&name, tables)?,
                include: false,
            }),
            TransformConfig::ExcludeColumns { table, columns } => {
                nonempty("columns", columns)?;
                Box::new(ExcludeColumns {
                    name,
                    tables: one(table)?,
                    columns: columns.clone(),
                })
            }
            TransformConfig::RenameColumn { table, column, to } => {
                nonempty("column and to", &[column.clone(), to.clone()])?;
                Box::new(RenameColumn {
                    tables: one(table)?,
                    name,
                    column: column.clone(),
                    to: to.clone(),
                })
            }
            TransformConfig::Mask {
                table,
                columns,
                with,
                salt,
                value,
            } => {
                nonempty("columns", columns)?;
                let tables = one(table)?;
                Box::new(Mask::new(
                    name,
                    tables,
                    columns.clone(),
                    *with,
                    salt.clone(),
                    value.clone(),
                )?)
            }
            TransformConfig::Filter { table, predicate } => {
                let tables = one(table)?;
                Box::new(Filter::parse(name, tables, predicate)?)
            }
            TransformConfig::Cast { table, column, to } => {
                nonempty("column", std::slice::from_ref(column))?;
                Box::new(Cast {
                    tables: one(table)?,
                    name,
                    column: column.clone(),
                    to: *to,
                })
            }
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            TransformConfig::IncludeTables { .. } => "include_tables",
            TransformConfig::ExcludeTables { .. } => "exclude_tables",
            TransformConfig::ExcludeColumns { .. } => "exclude_columns",
            TransformConfig::RenameColumn { .. } => "rename_column",
            TransformConfig::Mask { .. } => "mask",
            TransformConfig::Filter { .. } => "filter",
            TransformConfig::Cast { .. } => "cast",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_only() {
        assert!(glob("shop", "shop"));
        assert!(!glob("shop", "shops"));
        assert!(glob("*", ""));
        assert!(glob("audit_*", "audit_2024"));
        assert!(glob("*_log", "order_log"));
        assert!(!glob("*_log", "order_logs"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXcYYb"));
        assert!(glob("ab*ab", "ab"[..].repeat(2).as_str()));
        assert!(!glob("ab*ab", "ab"));
        assert!(glob("t?", "t?"));
        assert!(!glob("t?", "tx"));
    }
}
