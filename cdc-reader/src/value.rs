//! Query results → [`schemas::Value`], exactly.
//!
//! Snapshot and verify read rows with the **binary protocol** (prepared statements), which
//! sends FLOAT and DOUBLE as IEEE bits (the text protocol prints FLOAT with six significant
//! digits, which is lossy), integers with their signedness, temporal values as fields and
//! strings as bytes. Sessions that read rows must run [`SESSION_SETUP`]: `time_zone='+00:00'`
//! makes TIMESTAMP values arrive as UTC readings (converted here to the instant), and
//! `character_set_results=NULL` makes the server send text in the column's own character set,
//! unconverted, so that it is decoded here exactly as the binlog decoder decodes it — a byte
//! that is invalid in the column's set is reported, not silently replaced with `?`.

use mysql_async::Value as My;
use schemas::value::{Date, DateTime, Decimal, Time, Timestamp};
use schemas::{Charset, Column, ColumnType, Value};

/// Session settings for connections that read rows (see the module documentation).
pub const SESSION_SETUP: &str = "SET time_zone = '+00:00', character_set_results = NULL, \
     sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')";

/// An integer the server returned for an aggregate or a key (`MIN`, `MAX`, `COUNT`, `SUM` of
/// integers), in whichever form the protocol carried it: binary integers, or decimal text.
pub fn driver_integer(v: &My) -> Option<i128> {
    match v {
        My::Int(i) => Some(i128::from(*i)),
        My::UInt(u) => Some(i128::from(*u)),
        My::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// A driver value that does not fit the column's declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column} ({ty}): cannot read {found}")]
pub struct ValueError {
    /// Column name.
    pub column: String,
    /// Declared type.
    pub ty: String,
    /// What arrived.
    pub found: String,
}

fn bad(col: &Column, v: &My) -> ValueError {
    ValueError {
        column: col.name.clone(),
        ty: col.ty.to_string(),
        found: format!("{v:?}"),
    }
}

/// Converts one binary-protocol value of `col` into a [`Value`].
pub fn from_driver(col: &Column, v: My) -> Result<Value, ValueError> {
    let v = match v {
        My::NULL => return Ok(Value::Null),
        My::Bytes(b) => match from_owned_bytes(col, b) {
            Ok(value) => return Ok(value),
            Err(b) => My::Bytes(b),
        },
        v => v,
    };
    let text = |charset: Option<&Charset>, bytes: &[u8]| {
        charset.unwrap_or(&Charset::Utf8mb4).decode(bytes)
    };
    Ok(match (&col.ty, &v) {
        (ColumnType::Integer { unsigned: true, .. }, My::UInt(u)) => Value::UInt(*u),
        (ColumnType::Integer { unsigned: true, .. }, My::Int(i)) => {
            Value::UInt(u64::try_from(*i).map_err(|_| bad(col, &v))?)
        }
        (
            ColumnType::Integer {
                unsigned: false, ..
            },
            My::Int(i),
        ) => Value::Int(*i),
        (
            ColumnType::Integer {
                unsigned: false, ..
            },
            My::UInt(u),
        ) => Value::Int(i64::try_from(*u).map_err(|_| bad(col, &v))?),
        (ColumnType::Integer { .. }, My::Bytes(b)) => {
            parse_int(col, b).ok_or_else(|| bad(col, &v))?
        }
        (ColumnType::Decimal { .. }, My::Bytes(b)) => Value::Decimal(
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| Decimal::parse(s).ok())
                .ok_or_else(|| bad(col, &v))?,
        ),
        (ColumnType::Float, My::Float(f)) => Value::Float(*f),
        (ColumnType::Float, My::Double(d)) => Value::Float(*d as f32),
        (ColumnType::Double, My::Double(d)) => Value::Double(*d),
        (ColumnType::Double, My::Float(f)) => Value::Double(f64::from(*f)),
        (ColumnType::Bit { width }, My::Bytes(b)) => {
            if b.len() > 8 {
                return Err(bad(col, &v));
            }
            Value::Bit {
                width: *width,
                bits: b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)),
            }
        }
        (ColumnType::Bit { width }, My::UInt(u)) => Value::Bit {
            width: *width,
            bits: *u,
        },
        (ColumnType::Bit { width }, My::Int(i)) => Value::Bit {
            width: *width,
            bits: *i as u64,
        },
        (ColumnType::Date, My::Date(y, m, d, ..)) => Value::Date(Date {
            year: *y,
            month: *m,
            day: *d,
        }),
        (ColumnType::DateTime { .. }, My::Date(y, m, d, h, mi, s, us)) => {
            Value::DateTime(DateTime {
                date: Date {
                    year: *y,
                    month: *m,
                    day: *d,
                },
                hour: *h,
                minute: *mi,
                second: *s,
                micros: *us,
            })
        }
        (ColumnType::Timestamp { .. }, My::Date(y, m, d, h, mi, s, us)) => {
            Value::Timestamp(Timestamp::from_utc(&DateTime {
                date: Date {
                    year: *y,
                    month: *m,
                    day: *d,
                },
                hour: *h,
                minute: *mi,
                second: *s,
                micros: *us,
            }))
        }
        (ColumnType::Time { .. }, My::Time(neg, days, h, m, s, us)) => {
            let hours =
                u16::try_from(u64::from(*days) * 24 + u64::from(*h)).map_err(|_| bad(col, &v))?;
            let t = Time {
                negative: *neg,
                hours,
                minutes: *m,
                seconds: *s,
                micros: *us,
            };
            // Normalise -00:00:00 to 00:00:00 (the same duration).
            Value::Time(Time::from_micros(t.total_micros()))
        }
        (ColumnType::Year, My::Int(y)) => Value::Year(u16::try_from(*y).map_err(|_| bad(col, &v))?),
        (ColumnType::Year, My::UInt(y)) => {
            Value::Year(u16::try_from(*y).map_err(|_| bad(col, &v))?)
        }
        (
            ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. },
            My::Bytes(b),
        ) => text(col.charset.as_ref(), b),
        (ColumnType::Binary { len }, My::Bytes(b)) => Value::Bytes(pad_binary(b, *len)),
        (ColumnType::VarBinary { .. } | ColumnType::Blob { .. }, My::Bytes(b)) => {
            Value::Bytes(b.clone())
        }
        (ColumnType::Enum { .. }, My::Bytes(b)) => match text(col.charset.as_ref(), b) {
            Value::Text(s) => Value::Enum(s),
            other => other,
        },
        (ColumnType::Set { .. }, My::Bytes(b)) => match text(col.charset.as_ref(), b) {
            // SET members cannot contain commas (MySQL rejects such definitions).
            Value::Text(s) if s.is_empty() => Value::Set(Vec::new()),
            Value::Text(s) => Value::Set(s.split(',').map(str::to_owned).collect()),
            other => other,
        },
        (ColumnType::Json, My::Bytes(b)) => match std::str::from_utf8(b) {
            Ok(s) => Value::Json(s.to_owned()),
            Err(_) => Value::InvalidText {
                bytes: b.clone(),
                charset: "utf8mb4".into(),
            },
        },
        (ColumnType::Geometry { .. }, My::Bytes(b)) => geometry(b).ok_or_else(|| bad(col, &v))?,
        (ColumnType::Unsupported { .. }, My::Bytes(b)) => Value::Bytes(b.clone()),
        _ => return Err(bad(col, &v)),
    })
}

/// The common byte values (text in UTF-8 or ASCII, bytes, JSON, DECIMAL) taken over without a
/// copy: the same values [`from_driver`]'s general match makes from a borrowed slice (the
/// initial copy's hot path; one allocation and copy less per such field). Gives the bytes back
/// for every other case, invalid text included, which the general match decodes or reports.
fn from_owned_bytes(col: &Column, b: Vec<u8>) -> Result<Value, Vec<u8>> {
    let charset = col.charset.as_ref().unwrap_or(&Charset::Utf8mb4);
    let utf8 = |b: Vec<u8>| match charset {
        Charset::Utf8mb4 | Charset::Utf8mb3 => String::from_utf8(b).map_err(|e| e.into_bytes()),
        Charset::Ascii if b.is_ascii() => String::from_utf8(b).map_err(|e| e.into_bytes()),
        _ => Err(b),
    };
    match &col.ty {
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => {
            if matches!(charset, Charset::Binary) {
                return Ok(Value::Bytes(b));
            }
            utf8(b).map(Value::Text)
        }
        ColumnType::Enum { .. } if !matches!(charset, Charset::Binary) => utf8(b).map(Value::Enum),
        ColumnType::Binary { len } if b.len() as u64 >= u64::from(*len) => Ok(Value::Bytes(b)),
        ColumnType::VarBinary { .. } | ColumnType::Blob { .. } | ColumnType::Unsupported { .. } => {
            Ok(Value::Bytes(b))
        }
        ColumnType::Json => String::from_utf8(b)
            .map(Value::Json)
            .map_err(|e| e.into_bytes()),
        ColumnType::Decimal { .. } => {
            let text = String::from_utf8(b).map_err(|e| e.into_bytes())?;
            match Decimal::parse_owned(text) {
                Ok(d) => Ok(Value::Decimal(d)),
                Err(e) => Err(e.0.into_bytes()),
            }
        }
        _ => Err(b),
    }
}

fn parse_int(col: &Column, b: &[u8]) -> Option<Value> {
    let s = std::str::from_utf8(b).ok()?;
    match col.ty {
        ColumnType::Integer { unsigned: true, .. } => s.parse().ok().map(Value::UInt),
        _ => s.parse().ok().map(Value::Int),
    }
}

/// BINARY(n) always holds exactly `n` bytes: MySQL pads shorter values with 0x00. Some paths
/// (the binlog row image) send the value with trailing zero bytes removed; padding back to the
/// declared length makes both paths give the stored value.
pub fn pad_binary(b: &[u8], len: u32) -> Vec<u8> {
    let mut v = b.to_vec();
    if (v.len() as u64) < u64::from(len) {
        v.resize(len as usize, 0);
    }
    v
}

/// MySQL's internal geometry format: 4-byte little-endian SRID, then WKB.
pub fn geometry(b: &[u8]) -> Option<Value> {
    if b.len() < 4 {
        return None;
    }
    let srid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    Some(Value::Geometry {
        srid,
        wkb: b[4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::table::IntWidth;

    fn col(ty: ColumnType) -> Column {
        Column::new("c", ty)
    }

    #[test]
    fn owned_bytes_give_what_the_borrowed_decoding_gives() {
        let texts: [&[u8]; 6] = [
            b"",
            b"plain",
            "h\u{e9}llo \u{1f600}".as_bytes(),
            b"\xff\xfe",
            b"a\0b",
            b"\xe9t\xe9",
        ];
        for ty in ["char(4)", "varchar(10)", "text", "enum('a','b')"] {
            for cs in [
                None,
                Some(Charset::Utf8mb4),
                Some(Charset::Utf8mb3),
                Some(Charset::Ascii),
                Some(Charset::Latin1),
                Some(Charset::Binary),
            ] {
                let mut c = col(ColumnType::parse(ty).unwrap());
                c.charset = cs.clone();
                for b in texts {
                    let want = match cs.as_ref().unwrap_or(&Charset::Utf8mb4).decode(b) {
                        Value::Text(s) if ty.starts_with("enum") => Value::Enum(s),
                        other => other,
                    };
                    assert_eq!(
                        from_driver(&c, My::Bytes(b.to_vec())).unwrap(),
                        want,
                        "{ty} {cs:?} {b:?}"
                    );
                }
            }
        }
        let bin = col(ColumnType::parse("binary(4)").unwrap());
        assert_eq!(
            from_driver(&bin, My::Bytes(vec![1])).unwrap(),
            Value::Bytes(vec![1, 0, 0, 0])
        );
        assert_eq!(
            from_driver(&bin, My::Bytes(vec![1, 2, 3, 4])).unwrap(),
            Value::Bytes(vec![1, 2, 3, 4])
        );
        let json = col(ColumnType::Json);
        assert_eq!(
            from_driver(&json, My::Bytes(b"{}".to_vec())).unwrap(),
            Value::Json("{}".into())
        );
        assert!(matches!(
            from_driver(&json, My::Bytes(vec![0xff])).unwrap(),
            Value::InvalidText { .. }
        ));
        let dec = col(ColumnType::parse("decimal(10,2)").unwrap());
        for t in ["1.50", "-0.00", "007.10", "-12.00"] {
            assert_eq!(
                from_driver(&dec, My::Bytes(t.as_bytes().to_vec())).unwrap(),
                Value::Decimal(Decimal::parse(t).unwrap())
            );
        }
        assert!(from_driver(&dec, My::Bytes(b"1e5".to_vec())).is_err());
    }

    #[test]
    fn unsigned_bigint_stays_unsigned() {
        let c = col(ColumnType::Integer {
            width: IntWidth::Big,
            unsigned: true,
            display_width: None,
        });
        assert_eq!(
            from_driver(&c, My::UInt(u64::MAX)).unwrap(),
            Value::UInt(u64::MAX)
        );
        let c = col(ColumnType::Integer {
            width: IntWidth::Big,
            unsigned: false,
            display_width: None,
        });
        assert!(from_driver(&c, My::UInt(u64::MAX)).is_err());
    }

    #[test]
    fn time_beyond_a_day_and_negative() {
        let c = col(ColumnType::Time { fsp: 6 });
        assert_eq!(
            from_driver(&c, My::Time(true, 34, 22, 59, 59, 999_999)).unwrap(),
            Value::Time(Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 999_999
            })
        );
        assert_eq!(
            from_driver(&c, My::Time(true, 0, 0, 0, 0, 0)).unwrap(),
            Value::Time(Time {
                negative: false,
                hours: 0,
                minutes: 0,
                seconds: 0,
                micros: 0
            })
        );
    }

    #[test]
    fn zero_timestamp_and_binary_padding() {
        let c = col(ColumnType::Timestamp { fsp: 0 });
        assert_eq!(
            from_driver(&c, My::Date(0, 0, 0, 0, 0, 0, 0)).unwrap(),
            Value::Timestamp(Timestamp::ZERO)
        );
        let c = col(ColumnType::Binary { len: 4 });
        assert_eq!(
            from_driver(&c, My::Bytes(vec![1])).unwrap(),
            Value::Bytes(vec![1, 0, 0, 0])
        );
    }
}
