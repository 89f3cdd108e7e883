//! Per-type SQL text forms: for each column, one MariaDB expression and one PostgreSQL
//! expression that produce the **same bytes** for values that `sync` makes equal, and
//! different bytes otherwise.
//!
//! **What must hold.** The pushdown compares the MD5 of a row's form on the source with the
//! MD5 of the row's form on the target. A chunk whose aggregates match is never looked at
//! again, so the one property that correctness rests on is: *equal forms imply equal
//! canonical values* (the streaming path would call the rows equal). The converse (equal
//! values give equal forms) only decides speed: a form that differs for equal values makes
//! the chunk's aggregates differ, and the chunk is re-compared row by row.
//!
//! **The row form.** One `CONCAT_WS` of the columns' arguments with `|` between them, on
//! both servers (`CONCAT_WS(_binary'|', …)` on the source, `concat_ws('|', …)` on the target).
//! Both functions skip NULL arguments and keep empty strings, and both print a number, date or
//! time argument with its type's own output (on PostgreSQL the type's output function, the
//! same text as `::text`, without the copy a cast to `text` and `||` make per field).
//! Each column gives one of two things:
//!
//! - **NULL:** the field `N`. The column's value arguments are all NULL and are skipped; its
//!   marker gives `N`. On the target the marker is one more argument,
//!   `CASE WHEN x IS NULL THEN 'N' END`; on the source it is folded into the first value
//!   argument, `IFNULL(first, _binary'N')`.
//! - **A value:** its value arguments, each non-NULL for every non-NULL input, so none is
//!   skipped (and the source's `IFNULL` returns the first as it is); the target's marker is
//!   NULL and skipped.
//!
//! A form whose MariaDB expression could return NULL for a stored value (`HEX` and `CONCAT`,
//! at `max_allowed_packet`) is instead one `IFNULL(…, 'N')` argument (and one
//! `coalesce(…, 'N')` on the target): a NULL it returns reads as `N` and never as a missing
//! field. A NOT NULL source column read as is needs no marker on the source. The target
//! always has one: nothing here proves its column NOT NULL.
//!
//! The source's literals are all `_binary`, so the form's bytes are the fields' bytes, never
//! converted to the connection's character set. A string is two fields, `<octet length>|<UTF-8
//! bytes>`; every other value is one token that contains no `|` and is never `N` (digits,
//! signs, `.`, `:`, `-`, spaces, `+`, `{}`, hex, PostgreSQL's `infinity` and ` BC`). Read left
//! to right knowing the column types, a row form splits into its fields in exactly one way
//! (`N` or a value at each column; a string's length says how many bytes follow), so equal
//! row forms mean equal fields, column by column.
//!
//! **Per type** (MariaDB side with `time_zone = '+00:00'`, PostgreSQL side with
//! `DateStyle = ISO, YMD`, `IntervalStyle = postgres`, `TimeZone = UTC`, server encoding
//! UTF8 — checked before use):
//!
//! | source → target | MariaDB | PostgreSQL | why equal forms mean equal values |
//! |---|---|---|---|
//! | integers, YEAR → smallint/integer/bigint/numeric(20,0) | decimal text (`YEAR + 0`) | `::text` | decimal text of an integer is unique |
//! | TINYINT(1), BIT(1) → boolean | `x + 0` | `x::int::text` | only `0`/`1` can match; sync writes 0→false, 1→true, anything else is an error |
//! | DECIMAL(p,s) → numeric(p,s) | text (always `s` decimals) | `::text` (the column's scale `s`, checked with its type) | same scale, unique text |
//! | BIT(n) → bit varying(n) | `n:` + `LPAD(BIN(x+0), n, '0')` | `length(x):` + `x::text` | length and every bit |
//! | DATE → date | text | `::text` | ISO text; PostgreSQL's BC dates carry ` BC`, infinities their name |
//! | DATETIME(p) → timestamp(p) | text, fraction's trailing zeros (and a bare `.`) trimmed | `::text` (PostgreSQL prints the fraction so) | |
//! | TIMESTAMP(p) → timestamptz(p) | the same in UTC + `+00` | `::text` in UTC | |
//! | TIME(p) → interval(p) | text, fraction trimmed | `::text` | PostgreSQL prints a span without days as `[-]H…H:MM:SS[.f]`; an interval with days or months prints differently and is re-compared row by row |
//! | CHAR/VARCHAR/TEXT/ENUM in utf8mb4, utf8mb3, ascii → varchar/text/enum | `LENGTH(x)`, bytes | `octet_length(x::text)`, `x` | bytes, with NULL ≠ `''` and trailing spaces kept |
//! | SET → text[] (members without `{}",\`, whitespace, not empty, not `NULL`) | `{` + `x` + `}` | `x::text` | PostgreSQL quotes any element that needs it, so an unquoted output is the plain member list |
//! | BINARY/VARBINARY/BLOB, binary-charset text → bytea | `HEX(x)` | `upper(encode(x, 'hex'))` | every byte |
//!
//! Not pushed down (the table is compared row by row): FLOAT and DOUBLE (the servers print
//! floats differently and equality is by IEEE value), JSON (key order and number spelling),
//! geometry, other character sets (the server's conversion is not the mapping's decoding),
//! any type not listed.

use cdc_reader::rows::quote_ident as my_ident;
use schemas::mapping::{ColumnMapping, quote_ident as pg_ident};
use schemas::{Charset, Column, ColumnType, PgType};

/// The arguments of one column in the row's `CONCAT_WS` (NULL handled, see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// MariaDB/MySQL arguments.
    pub source: Vec<String>,
    /// PostgreSQL arguments.
    pub target: Vec<String>,
}

/// A column's value expressions before NULL handling.
struct Value {
    source: Vec<String>,
    target: Vec<String>,
    /// Whether every source expression is non-NULL for every non-NULL input (a field can then
    /// be skipped only for a NULL column, and the marker says which).
    total: bool,
}

impl Value {
    fn one(source: String, target: String, total: bool) -> Self {
        Value {
            source: vec![source],
            target: vec![target],
            total,
        }
    }
}

/// Why a column has no form (the table then streams), or its form.
pub fn column_form(col: &Column, cm: &ColumnMapping) -> Result<Form, String> {
    let s = my_ident(&col.name);
    let t = pg_ident(&cm.name);
    let utf8 = matches!(
        col.charset,
        Some(Charset::Utf8mb4 | Charset::Utf8mb3 | Charset::Ascii)
    );
    let binary = matches!(col.charset, Some(Charset::Binary));
    let trimmed =
        |x: &str| format!("TRIM(TRAILING _binary'.' FROM TRIM(TRAILING _binary'0' FROM {x}))");
    let string = |x: &str| Value {
        source: vec![format!("LENGTH({x})"), format!("CAST({x} AS BINARY)")],
        target: vec![format!("octet_length({t}::text)"), t.clone()],
        total: true,
    };
    let no = |why: &str| Err(format!("column {} ({}) {why}", col.name, cm.source_type));
    let form = match (&col.ty, &cm.pg_type) {
        (
            ColumnType::Integer { .. },
            PgType::SmallInt | PgType::Integer | PgType::BigInt | PgType::Numeric { scale: 0, .. },
        ) => Value::one(s.clone(), t.clone(), true),
        (ColumnType::Year, PgType::SmallInt) => Value::one(format!("({s} + 0)"), t.clone(), true),
        (ColumnType::Integer { .. } | ColumnType::Bit { width: 1 }, PgType::Boolean) => {
            Value::one(format!("({s} + 0)"), format!("{t}::int"), true)
        }
        (
            ColumnType::Decimal { scale, .. },
            PgType::Numeric {
                scale: pg_scale, ..
            },
        ) if u16::from(*scale) == *pg_scale => Value::one(s.clone(), t.clone(), true),
        (ColumnType::Bit { width }, PgType::BitVarying { len }) if u32::from(*width) == *len => {
            Value::one(
                format!("CONCAT(_binary'{width}:', LPAD(BIN({s} + 0), {width}, _binary'0'))"),
                format!("length({t}) || ':' || {t}::text"),
                false,
            )
        }
        (ColumnType::Date, PgType::Date)
        | (ColumnType::DateTime { fsp: 0 }, PgType::Timestamp { .. })
        | (ColumnType::Time { fsp: 0 }, PgType::Interval { .. }) => {
            Value::one(s.clone(), t.clone(), true)
        }
        // TRIM never lengthens its argument, so it is total.
        (ColumnType::DateTime { .. }, PgType::Timestamp { .. })
        | (ColumnType::Time { .. }, PgType::Interval { .. }) => {
            Value::one(trimmed(&s), t.clone(), true)
        }
        (ColumnType::Timestamp { fsp }, PgType::Timestamptz { .. }) => Value::one(
            if *fsp == 0 {
                format!("CONCAT({s}, _binary'+00')")
            } else {
                format!("CONCAT({}, _binary'+00')", trimmed(&s))
            },
            format!("{t}::text"),
            false,
        ),
        (
            ColumnType::Char { .. }
            | ColumnType::VarChar { .. }
            | ColumnType::Text { .. }
            | ColumnType::Enum { .. }
            | ColumnType::Set { .. },
            PgType::Bytea,
        ) if binary => Value::one(
            format!("HEX({s})"),
            format!("upper(encode({t}, 'hex'))"),
            false,
        ),
        (
            ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. },
            PgType::Bytea,
        ) => Value::one(
            format!("HEX({s})"),
            format!("upper(encode({t}, 'hex'))"),
            false,
        ),
        (
            ColumnType::Char { .. }
            | ColumnType::VarChar { .. }
            | ColumnType::Text { .. }
            | ColumnType::Enum { .. }
            | ColumnType::Set { .. },
            PgType::Text | PgType::VarChar { .. } | PgType::Enum { .. },
        ) if utf8 => string(&s),
        (ColumnType::Set { members }, PgType::TextArray) if utf8 => {
            if !members.iter().all(|m| plain_array_element(m)) {
                return no(
                    "has a member PostgreSQL quotes in array text (empty, NULL, whitespace or {}\",\\)",
                );
            }
            Value::one(
                format!("CONCAT(_binary'{{', CAST({s} AS BINARY), _binary'}}')"),
                format!("{t}::text"),
                false,
            )
        }
        (ColumnType::Float | ColumnType::Double, _) => {
            return no("is a float: the servers print floats differently");
        }
        (ColumnType::Json, _) => {
            return no("is JSON: key order and number spelling differ between the servers");
        }
        (ColumnType::Geometry { .. }, _) => return no("is a spatial type"),
        (ty, _) if ty.is_text() && !utf8 => {
            return no("is not in utf8mb4, utf8mb3 or ascii");
        }
        _ => {
            return no(&format!(
                "maps to {}, which has no shared text form",
                cm.pg_type
            ));
        }
    };
    // See the module doc: a total form gets a marker argument (none on the source for a NOT
    // NULL column), any other is one `IFNULL` argument.
    let Value {
        source,
        target,
        total,
    } = form;
    if !total {
        let (Some(source), Some(target)) = (source.first(), target.first()) else {
            return no("has no expression");
        };
        return Ok(Form {
            source: vec![format!("IFNULL({source}, _binary'N')")],
            target: vec![format!("coalesce({target}, 'N')")],
        });
    }
    let mut source = source;
    let mut target = target;
    // On the source the marker is folded into the first argument, which is NULL exactly when
    // the column is (every argument of a total form is): one IFNULL per column instead of an
    // IF and an IS NULL (about a tenth of MariaDB's work on verify). PostgreSQL's coalesce
    // would need `N` to be of the column's type, so the target has a separate marker.
    if col.nullable
        && let Some(first) = source.first_mut()
    {
        *first = format!("IFNULL({first}, _binary'N')");
    }
    target.push(format!("CASE WHEN {t} IS NULL THEN 'N' END"));
    Ok(Form { source, target })
}

/// Whether PostgreSQL's `array_out` prints `m` as is (unquoted, unescaped).
fn plain_array_element(m: &str) -> bool {
    !m.is_empty()
        && !m.eq_ignore_ascii_case("null")
        && !m
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '{' | '}' | '"' | ',' | '\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_members_that_array_text_would_quote_are_refused() {
        assert!(plain_array_element("x"));
        assert!(plain_array_element("café"));
        for m in ["", "NULL", "null", "a b", "a,b", "{", "\"", "a\\b", "a\tb"] {
            assert!(!plain_array_element(m), "{m:?}");
        }
    }
}
