//! Column defaults: `information_schema.COLUMNS.COLUMN_DEFAULT` → a PostgreSQL default.
//!
//! A literal default is parsed into a source [`Value`] of the column's type and converted by
//! the column's own [`ColumnMapping::convert`], so a default obeys exactly the policies its
//! values obey: `'0000-00-00'` becomes NULL, `-infinity` or the fixed date under `zero_date`,
//! and is dropped (with a note) under `zero_date = error` rather than breaking the DDL.
//! `CURRENT_TIMESTAMP` (any spelling MySQL and MariaDB print) becomes `CURRENT_TIMESTAMP(p)`
//! for `timestamptz` and `LOCALTIMESTAMP(p)` for `timestamp`, which is what MySQL computes for
//! TIMESTAMP and DATETIME respectively. Other expressions are not translated: the default is
//! dropped and the note says so. A missing default never loses data in flight (the stream
//! writes every column); it matters to the application after cutover, hence the note.
//!
//! Spelling: MariaDB (10.2.7+) quotes string literals (`'abc'`) and prints `NULL` for a NULL
//! default; MySQL prints literals unquoted. Unquoted text without parentheses is therefore
//! read as a MySQL literal, and anything with parentheses as an expression.

use serde::Serialize;

use crate::mapping::{PgType, TableMapping};
use crate::pgvalue::PgValue;
use crate::table::ColumnType;
use crate::value::{Date, DateTime, Decimal, Time, Timestamp, Value};

/// A translated column default.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PgDefault {
    /// A constant.
    Value {
        /// The value, converted under the column's policies.
        value: PgValue,
    },
    /// `CURRENT_TIMESTAMP(p)` (a `timestamptz` column).
    CurrentTimestamp {
        /// Fractional digits.
        precision: u8,
    },
    /// `LOCALTIMESTAMP(p)` (a `timestamp` column).
    LocalTimestamp {
        /// Fractional digits.
        precision: u8,
    },
    /// `CURRENT_DATE`.
    CurrentDate,
}

impl PgDefault {
    /// The SQL expression for `DEFAULT …` on a column of type `ty`.
    pub fn to_sql(&self, ty: &PgType) -> String {
        match self {
            PgDefault::Value { value } => crate::pgtext::literal(value, ty),
            PgDefault::CurrentTimestamp { precision } => format!("CURRENT_TIMESTAMP({precision})"),
            PgDefault::LocalTimestamp { precision } => format!("LOCALTIMESTAMP({precision})"),
            PgDefault::CurrentDate => "CURRENT_DATE".to_owned(),
        }
    }
}

/// Translates the default of column `i` of `m`; returns it and notes for the operator.
pub(crate) fn translate(
    m: &TableMapping,
    i: usize,
    raw: Option<&str>,
) -> (Option<PgDefault>, Vec<String>) {
    let Some(col) = m.columns.get(i) else {
        return (None, Vec::new());
    };
    let Some(raw) = raw.map(str::trim) else {
        return (None, Vec::new());
    };
    if raw.eq_ignore_ascii_case("null") {
        return (None, Vec::new());
    }
    let dropped = |why: String| (None, vec![format!("default {raw} not copied: {why}")]);
    if let Some(p) = current_timestamp(raw) {
        return match &col.pg_type {
            PgType::Timestamptz { precision } => (
                Some(PgDefault::CurrentTimestamp {
                    precision: p.unwrap_or(*precision),
                }),
                Vec::new(),
            ),
            PgType::Timestamp { precision } => (
                Some(PgDefault::LocalTimestamp {
                    precision: p.unwrap_or(*precision),
                }),
                Vec::new(),
            ),
            _ => dropped(format!("the current time does not fit {}", col.pg_type)),
        };
    }
    if is_current_date(raw) && col.pg_type == PgType::Date {
        return (Some(PgDefault::CurrentDate), Vec::new());
    }
    let text: String =
        if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            unquote(inner)
        } else if raw.contains('(') {
            return dropped("expression defaults are not translated".into());
        } else {
            raw.to_owned()
        };
    let Some(value) = parse_literal(&col.source_type, &text, raw) else {
        return dropped(format!("cannot read it as {}", col.source_type));
    };
    match col.convert(&value) {
        Ok(PgValue::Null) => (None, Vec::new()),
        Ok(v) => {
            let mut notes = Vec::new();
            if matches!(col.source_type, ColumnType::Timestamp { .. }) {
                notes.push(format!("default {raw} read as UTC"));
            }
            (Some(PgDefault::Value { value: v }), notes)
        }
        Err(problem) => dropped(format!("the value {problem}")),
    }
}

/// `Some(precision)` for the spellings of CURRENT_TIMESTAMP (`None` inside: no precision).
fn current_timestamp(raw: &str) -> Option<Option<u8>> {
    let s: String = raw
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    for name in [
        "current_timestamp",
        "now",
        "localtimestamp",
        "localtime",
        "utc_timestamp",
    ] {
        if let Some(rest) = s.strip_prefix(name) {
            if rest.is_empty() || rest == "()" {
                return Some(None);
            }
            if let Some(p) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')'))
                && let Ok(p) = p.parse::<u8>()
                && p <= 6
            {
                return Some(Some(p));
            }
        }
    }
    None
}

fn is_current_date(raw: &str) -> bool {
    let s = raw.to_ascii_lowercase().replace(' ', "");
    matches!(s.as_str(), "curdate()" | "current_date" | "current_date()")
}

/// Undoes MariaDB's quoting inside `'…'`: `''` and backslash escapes.
fn unquote(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push('\'');
            }
            '\\' => match chars.next() {
                Some('0') => out.push('\0'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('Z') => out.push('\u{1a}'),
                Some('b') => out.push('\u{8}'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// Parses default text as a source value of `ty`; `raw` is the unmodified text (for `b'…'`).
fn parse_literal(ty: &ColumnType, text: &str, raw: &str) -> Option<Value> {
    Some(match ty {
        ColumnType::Integer { unsigned: true, .. } => Value::UInt(text.parse().ok()?),
        ColumnType::Integer { .. } => Value::Int(text.parse().ok()?),
        ColumnType::Decimal { .. } => Value::Decimal(Decimal::parse(text).ok()?),
        ColumnType::Float => Value::Float(text.parse().ok()?),
        ColumnType::Double => Value::Double(text.parse().ok()?),
        ColumnType::Bit { width } => {
            let digits = raw
                .strip_prefix("b'")
                .or_else(|| raw.strip_prefix("B'"))
                .and_then(|r| r.strip_suffix('\''));
            let bits = match digits {
                Some(d) => u64::from_str_radix(d, 2).ok()?,
                None => text.parse().ok()?,
            };
            Value::Bit {
                width: *width,
                bits,
            }
        }
        ColumnType::Date => Value::Date(parse_date(text)?),
        ColumnType::DateTime { .. } => Value::DateTime(parse_datetime(text)?),
        ColumnType::Timestamp { .. } => {
            Value::Timestamp(Timestamp::from_utc(&parse_datetime(text)?))
        }
        ColumnType::Time { .. } => Value::Time(parse_time(text)?),
        ColumnType::Year => Value::Year(text.parse().ok()?),
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => {
            Value::Text(text.to_owned())
        }
        ColumnType::Enum { .. } => Value::Enum(text.to_owned()),
        ColumnType::Set { .. } => Value::Set(
            text.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        ColumnType::Binary { len } => {
            let mut b = text.as_bytes().to_vec();
            if b.len() < *len as usize {
                b.resize(*len as usize, 0);
            }
            Value::Bytes(b)
        }
        ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => {
            Value::Bytes(text.as_bytes().to_vec())
        }
        ColumnType::Json => Value::Json(text.to_owned()),
        ColumnType::Geometry { .. } | ColumnType::Unsupported { .. } => return None,
    })
}

/// `YYYY-MM-DD`, zero parts allowed.
pub(crate) fn parse_date(s: &str) -> Option<Date> {
    let mut p = s.split('-');
    let year = p.next()?.parse().ok()?;
    let month = p.next()?.parse().ok()?;
    let day = p.next()?.parse().ok()?;
    if p.next().is_some() || month > 12 || day > 31 {
        return None;
    }
    Some(Date { year, month, day })
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]`, zero parts allowed.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime> {
    let (d, t) = match s.split_once(' ') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let date = parse_date(d)?;
    let (hour, minute, second, micros) = match t {
        None => (0, 0, 0, 0),
        Some(t) => {
            let (hms, micros) = split_fraction(t)?;
            let mut p = hms.split(':');
            let h: u8 = p.next()?.parse().ok()?;
            let m: u8 = p.next()?.parse().ok()?;
            let s: u8 = p.next()?.parse().ok()?;
            if p.next().is_some() || h > 23 || m > 59 || s > 59 {
                return None;
            }
            (h, m, s, micros)
        }
    };
    Some(DateTime {
        date,
        hour,
        minute,
        second,
        micros,
    })
}

/// `[-]H…H:MM:SS[.ffffff]`.
pub(crate) fn parse_time(s: &str) -> Option<Time> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (hms, micros) = split_fraction(s)?;
    let mut p = hms.split(':');
    let hours: u16 = p.next()?.parse().ok()?;
    let minutes: u8 = p.next()?.parse().ok()?;
    let seconds: u8 = p.next()?.parse().ok()?;
    if p.next().is_some() || minutes > 59 || seconds > 59 || hours > 838 {
        return None;
    }
    let t = Time {
        negative,
        hours,
        minutes,
        seconds,
        micros,
    };
    Some(Time::from_micros(t.total_micros()))
}

fn split_fraction(s: &str) -> Option<(&str, u32)> {
    match s.split_once('.') {
        None => Some((s, 0)),
        Some((a, f)) => {
            if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((a, format!("{f:0<6}").parse().ok()?))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::mapping::{MappingOptions, ZeroDate, map_table};
    use crate::table::{Column, TableId, TableSchema};

    fn mapped(ty: &str, default: &str, opts: &MappingOptions) -> (Option<String>, Vec<String>) {
        let mut c = Column::new("c", ColumnType::parse(ty).unwrap());
        c.default = Some(default.to_owned());
        let t = Arc::new(TableSchema {
            id: TableId::new("db", "t"),
            columns: vec![c],
            primary_key: vec![],
            unique_keys: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            comment: String::new(),
            auto_increment: None,
        });
        let m = map_table(t, "db", opts).unwrap();
        let col = &m.columns[0];
        (
            col.default.as_ref().map(|d| d.to_sql(&col.pg_type)),
            col.notes.clone(),
        )
    }

    #[test]
    fn literals_follow_the_column_conversion() {
        let o = MappingOptions::default();
        assert_eq!(mapped("int", "5", &o).0.as_deref(), Some("5"));
        assert_eq!(mapped("tinyint(1)", "1", &o).0.as_deref(), Some("true"));
        assert_eq!(
            mapped("decimal(10,2)", "1.50", &o).0.as_deref(),
            Some("1.50")
        );
        assert_eq!(
            mapped("varchar(10)", "'it''s'", &o).0.as_deref(),
            Some("'it''s'")
        );
        assert_eq!(
            mapped("varchar(10)", "plain", &o).0.as_deref(),
            Some("'plain'")
        );
        assert_eq!(mapped("bit(4)", "b'101'", &o).0.as_deref(), Some("B'0101'"));
        assert_eq!(
            mapped("datetime(6)", "'2020-01-02 03:04:05.500000'", &o)
                .0
                .as_deref(),
            Some("'2020-01-02 03:04:05.5'::timestamp(6) without time zone")
        );
        assert_eq!(
            mapped("time", "'-838:59:59'", &o).0.as_deref(),
            Some("'-838:59:59'::interval(0)")
        );
        assert_eq!(
            mapped("set('a','b')", "'a,b'", &o).0.as_deref(),
            Some("ARRAY['a', 'b']::text[]")
        );
        assert_eq!(mapped("int", "NULL", &o), (None, vec![]));
    }

    #[test]
    fn current_timestamp_spellings() {
        let o = MappingOptions::default();
        assert_eq!(
            mapped("timestamp", "current_timestamp()", &o).0.as_deref(),
            Some("CURRENT_TIMESTAMP(0)")
        );
        assert_eq!(
            mapped("datetime(6)", "CURRENT_TIMESTAMP(6)", &o)
                .0
                .as_deref(),
            Some("LOCALTIMESTAMP(6)")
        );
        assert_eq!(
            mapped("datetime", "now()", &o).0.as_deref(),
            Some("LOCALTIMESTAMP(0)")
        );
    }

    #[test]
    fn zero_date_defaults_follow_the_policy() {
        let o = MappingOptions::default();
        let (d, notes) = mapped("date", "'0000-00-00'", &o);
        assert_eq!(d, None);
        assert!(notes[0].contains("zero or invalid date"), "{notes:?}");
        let mut o = MappingOptions {
            zero_date: ZeroDate::NegInfinity,
            ..Default::default()
        };
        assert_eq!(
            mapped("datetime", "'0000-00-00 00:00:00'", &o).0.as_deref(),
            Some("'-infinity'::timestamp(0) without time zone")
        );
        o.zero_date = ZeroDate::Null;
        assert_eq!(mapped("date", "'0000-00-00'", &o).0, None);
    }

    #[test]
    fn expressions_are_dropped_with_a_note() {
        let (d, notes) = mapped("int", "(1 + 2)", &MappingOptions::default());
        assert_eq!(d, None);
        assert!(notes[0].contains("expression"), "{notes:?}");
    }
}
