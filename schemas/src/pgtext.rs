//! [`PgValue`] as PostgreSQL input text and as SQL literals (for DDL defaults and messages).
//!
//! [`input_text`] writes the text that PostgreSQL's input function for the value's type reads
//! back into *exactly* that value: floats in Rust's shortest round-trip form (which PostgreSQL's
//! correctly rounded `strtod`/`strtof` read back bit for bit), numerics with their scale, dates
//! and timestamps in ISO form with `BC` for years before 1, intervals as `[-]H:MM:SS.ffffff`.
//! [`literal`] wraps it in a quoted string and a cast, so a default in generated DDL means the
//! same value whatever the session's `DateStyle`, `IntervalStyle` or `standard_conforming_strings`.

use std::fmt;

use crate::mapping::PgType;
use crate::pgvalue::{
    DATE_INFINITY, DATE_NEG_INFINITY, Numeric, PG_EPOCH_UNIX_DAYS, PgValue, TIMESTAMP_INFINITY,
    TIMESTAMP_NEG_INFINITY,
};
use crate::value::civil_from_days;

/// The input text of a value (`None` for NULL).
pub fn input_text(v: &PgValue) -> Option<String> {
    Some(match v {
        PgValue::Null => return None,
        PgValue::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
        PgValue::Int2(i) => i.to_string(),
        PgValue::Int4(i) => i.to_string(),
        PgValue::Int8(i) => i.to_string(),
        PgValue::Float4(f) => float_text(f64::from(*f), f.to_string()),
        PgValue::Float8(f) => float_text(*f, f.to_string()),
        PgValue::Numeric(n) => match n {
            Numeric::Value(d) => d.to_string(),
            Numeric::NaN => "NaN".into(),
            Numeric::Infinity => "Infinity".into(),
            Numeric::NegInfinity => "-Infinity".into(),
        },
        PgValue::Text(s) | PgValue::Json(s) | PgValue::Jsonb(s) | PgValue::Enum(s) => s.clone(),
        PgValue::Bytea(b) => format!("\\x{}", hex::encode(b)),
        PgValue::Date(d) => date_text(*d),
        PgValue::Timestamp(us) => timestamp_text(*us),
        PgValue::Timestamptz(us) => match *us {
            TIMESTAMP_NEG_INFINITY | TIMESTAMP_INFINITY => timestamp_text(*us),
            _ => format!("{}+00", timestamp_text(*us)),
        },
        PgValue::Interval {
            months,
            days,
            micros,
        } => interval_text(*months, *days, *micros),
        PgValue::BitVarying { len, bytes } => (0..*len)
            .map(|i| {
                let byte = bytes.get((i / 8) as usize).copied().unwrap_or(0);
                if byte & (0x80 >> (i % 8)) != 0 {
                    '1'
                } else {
                    '0'
                }
            })
            .collect(),
        PgValue::TextArray(items) => {
            let quoted: Vec<String> = items
                .iter()
                .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            format!("{{{}}}", quoted.join(","))
        }
        PgValue::Uuid(u) => {
            let h = hex::encode(u);
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        }
        PgValue::Geometry(b) => hex::encode(b),
    })
}

fn float_text(f: f64, shortest: String) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        shortest
    }
}

/// `YYYY-MM-DD` (with ` BC` for years before 1) of days since 2000-01-01.
fn date_text(days: i32) -> String {
    match days {
        DATE_NEG_INFINITY => "-infinity".into(),
        DATE_INFINITY => "infinity".into(),
        _ => {
            let (y, m, d) = civil_from_days(i64::from(days) + PG_EPOCH_UNIX_DAYS);
            with_era(y, &format!("{:02}-{:02}", m, d), "")
        }
    }
}

fn with_era(year: i64, rest: &str, time: &str) -> String {
    if year >= 1 {
        format!("{year:04}-{rest}{time}")
    } else {
        format!("{:04}-{rest}{time} BC", 1 - year)
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` of microseconds since 2000-01-01.
fn timestamp_text(us: i64) -> String {
    match us {
        TIMESTAMP_NEG_INFINITY => "-infinity".into(),
        TIMESTAMP_INFINITY => "infinity".into(),
        _ => {
            let secs = us.div_euclid(1_000_000);
            let micros = us.rem_euclid(1_000_000);
            let days = secs.div_euclid(86_400);
            let rem = secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(days + PG_EPOCH_UNIX_DAYS);
            let time = format!(
                " {:02}:{:02}:{:02}{}",
                rem / 3600,
                (rem / 60) % 60,
                rem % 60,
                fraction(micros as u64)
            );
            with_era(y, &format!("{m:02}-{d:02}"), &time)
        }
    }
}

/// `.ffffff` without trailing zeros, or nothing.
fn fraction(micros: u64) -> String {
    if micros == 0 {
        return String::new();
    }
    let f = format!(".{micros:06}");
    f.trim_end_matches('0').to_owned()
}

fn interval_text(months: i32, days: i32, micros: i64) -> String {
    let neg = micros < 0;
    let abs = micros.unsigned_abs();
    let secs = abs / 1_000_000;
    let time = format!(
        "{}{}:{:02}:{:02}{}",
        if neg { "-" } else { "" },
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        fraction(abs % 1_000_000)
    );
    if months == 0 && days == 0 {
        time
    } else {
        format!("{months} mons {days} days {time}")
    }
}

/// A string literal PostgreSQL reads the same under any `standard_conforming_strings`.
pub fn quote_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// A SQL expression for the value as type `ty` (for DDL defaults and CHECKs).
pub fn literal(v: &PgValue, ty: &PgType) -> String {
    let Some(text) = input_text(v) else {
        return "NULL".into();
    };
    match v {
        PgValue::Bool(_) | PgValue::Int2(_) | PgValue::Int4(_) | PgValue::Int8(_) => text,
        PgValue::Numeric(Numeric::Value(_)) => text,
        PgValue::Text(_) => quote_literal(&text),
        PgValue::BitVarying { .. } => format!("B'{text}'"),
        PgValue::TextArray(items) if items.is_empty() => "'{}'::text[]".into(),
        PgValue::TextArray(items) => format!(
            "ARRAY[{}]::text[]",
            items
                .iter()
                .map(|s| quote_literal(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!("{}::{ty}", quote_literal(&text)),
    }
}

impl fmt::Display for PgValue {
    /// The input text, or `NULL`; text longer than 200 characters is cut with `…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match input_text(self) {
            None => f.write_str("NULL"),
            Some(t) => {
                let cut: String = t.chars().take(200).collect();
                if cut.len() < t.len() {
                    write!(f, "{cut}…")
                } else {
                    f.write_str(&t)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Date, DateTime};

    #[test]
    fn temporal_text_round_trips_the_calendar() {
        let d = PgValue::date_days(&Date {
            year: 1,
            month: 1,
            day: 1,
        })
        .unwrap();
        assert_eq!(date_text(d), "0001-01-01");
        assert_eq!(date_text(d - 1), "0001-12-31 BC");
        assert_eq!(date_text(0), "2000-01-01");
        let us = PgValue::timestamp_micros(&DateTime {
            date: Date {
                year: 9999,
                month: 12,
                day: 31,
            },
            hour: 23,
            minute: 59,
            second: 59,
            micros: 999_999,
        })
        .unwrap();
        assert_eq!(timestamp_text(us), "9999-12-31 23:59:59.999999");
        assert_eq!(timestamp_text(-1), "1999-12-31 23:59:59.999999");
        assert_eq!(
            input_text(&PgValue::Timestamptz(0)).unwrap(),
            "2000-01-01 00:00:00+00"
        );
    }

    #[test]
    fn interval_bits_and_literals() {
        assert_eq!(interval_text(0, 0, -3_020_399_999_999), "-838:59:59.999999");
        assert_eq!(interval_text(0, 0, 1), "0:00:00.000001");
        assert_eq!(interval_text(1, 2, 3_600_000_000), "1 mons 2 days 1:00:00");
        let bits = PgValue::BitVarying {
            len: 10,
            bytes: vec![0b1000_0000, 0b0100_0000],
        };
        assert_eq!(input_text(&bits).unwrap(), "1000000001");
        assert_eq!(quote_literal("a'b\\c"), "E'a''b\\\\c'");
        assert_eq!(
            literal(&PgValue::Bytea(vec![0, 255]), &PgType::Bytea),
            "E'\\\\x00ff'::bytea"
        );
        assert_eq!(literal(&PgValue::Float4(5.6), &PgType::Real), "'5.6'::real");
        assert_eq!(
            literal(&PgValue::Float8(f64::NEG_INFINITY), &PgType::Double),
            "'-Infinity'::double precision"
        );
        assert_eq!(
            input_text(&PgValue::TextArray(vec!["a,b".into(), "c\"d".into()])).unwrap(),
            "{\"a,b\",\"c\\\"d\"}"
        );
    }
}
