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
//! **The row form.** The fields joined by `|` (`CONCAT_WS(_binary'|', f1, …, fn)` on the
//! source, `f1 || '|' || … || fn` on the target), every field NOT NULL (`CONCAT_WS` would
//! skip a NULL, `||` would make the row NULL): NULL is the field `N` (no marker needed for a
//! NOT NULL source column read as is); the source's literals are all `_binary`, so the
//! form's bytes are the fields' bytes, never converted to the connection's character set;
//! strings are `<octet length>:<UTF-8 bytes>`; every other field is a token
//! that contains neither `|` nor starts like a string field or equals `N` (digits, signs,
//! `.`, `:`, `-`, spaces, `+`, `{}` and hex). Read left to right, a row form splits into its
//! fields in exactly one way (a string field says how many bytes it takes), so equal row
//! forms mean equal fields, column by column.
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
//! | CHAR/VARCHAR/TEXT/ENUM in utf8mb4, utf8mb3, ascii → varchar/text/enum | `LENGTH(x):` + bytes | `octet_length(x):` + `x::text` | bytes, with NULL ≠ `''` and trailing spaces kept |
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

/// The two expressions of one column (NULL already replaced by `N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// MariaDB/MySQL expression.
    pub source: String,
    /// PostgreSQL expression.
    pub target: String,
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
    let string = |x: &str| Form {
        source: format!("CONCAT(LENGTH({x}), _binary':', CAST({x} AS BINARY))"),
        target: format!("octet_length({t}::text) || ':' || {t}::text"),
    };
    let no = |why: &str| Err(format!("column {} ({}) {why}", col.name, cm.source_type));
    let form = match (&col.ty, &cm.pg_type) {
        (
            ColumnType::Integer { .. },
            PgType::SmallInt | PgType::Integer | PgType::BigInt | PgType::Numeric { scale: 0, .. },
        ) => Form {
            source: s.clone(),
            target: format!("{t}::text"),
        },
        (ColumnType::Year, PgType::SmallInt) => Form {
            source: format!("({s} + 0)"),
            target: format!("{t}::text"),
        },
        (ColumnType::Integer { .. } | ColumnType::Bit { width: 1 }, PgType::Boolean) => Form {
            source: format!("({s} + 0)"),
            target: format!("{t}::int::text"),
        },
        (
            ColumnType::Decimal { scale, .. },
            PgType::Numeric {
                scale: pg_scale, ..
            },
        ) if u16::from(*scale) == *pg_scale => Form {
            source: s.clone(),
            target: format!("{t}::text"),
        },
        (ColumnType::Bit { width }, PgType::BitVarying { len }) if u32::from(*width) == *len => {
            Form {
                source: format!(
                    "CONCAT(_binary'{width}:', LPAD(BIN({s} + 0), {width}, _binary'0'))"
                ),
                target: format!("length({t}) || ':' || {t}::text"),
            }
        }
        (ColumnType::Date, PgType::Date) => Form {
            source: s.clone(),
            target: format!("{t}::text"),
        },
        (ColumnType::DateTime { fsp: 0 }, PgType::Timestamp { .. })
        | (ColumnType::Time { fsp: 0 }, PgType::Interval { .. }) => Form {
            source: s.clone(),
            target: format!("{t}::text"),
        },
        (ColumnType::DateTime { .. }, PgType::Timestamp { .. })
        | (ColumnType::Time { .. }, PgType::Interval { .. }) => Form {
            source: trimmed(&s),
            target: format!("{t}::text"),
        },
        (ColumnType::Timestamp { fsp }, PgType::Timestamptz { .. }) => Form {
            source: if *fsp == 0 {
                format!("CONCAT({s}, _binary'+00')")
            } else {
                format!("CONCAT({}, _binary'+00')", trimmed(&s))
            },
            target: format!("{t}::text"),
        },
        (
            ColumnType::Char { .. }
            | ColumnType::VarChar { .. }
            | ColumnType::Text { .. }
            | ColumnType::Enum { .. }
            | ColumnType::Set { .. },
            PgType::Bytea,
        ) if binary => Form {
            source: format!("HEX({s})"),
            target: format!("upper(encode({t}, 'hex'))"),
        },
        (
            ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. },
            PgType::Bytea,
        ) => Form {
            source: format!("HEX({s})"),
            target: format!("upper(encode({t}, 'hex'))"),
        },
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
            Form {
                source: format!("CONCAT(_binary'{{', CAST({s} AS BINARY), _binary'}}')"),
                target: format!("{t}::text"),
            }
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
    // A NOT NULL source column read as is cannot be NULL and needs no marker on the source
    // (one function call less per row; a function of it keeps the marker, in case it returns
    // NULL for some stored value). The target keeps it: nothing here proves its column
    // NOT NULL.
    Ok(Form {
        source: if col.nullable || form.source != s {
            format!("IFNULL({}, _binary'N')", form.source)
        } else {
            form.source
        },
        target: format!("coalesce({}, 'N')", form.target),
    })
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
