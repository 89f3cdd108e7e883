//! Column-level byte vectors from other projects' test suites (go-mysql, MySqlCdc), decoded by
//! our row-image decoder and compared with the values those projects expect. The vectors live
//! in `../shared/fixtures` (or `$MY2PG_FIXTURES`); each test says so and passes when they are
//! absent, so a fresh clone's suite does not depend on them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use cdc_reader::binlog::event::Cursor;
use cdc_reader::binlog::json::jsonb_to_text;
use cdc_reader::binlog::rows::decode_value;
use cdc_reader::binlog::tablemap::{MapColumn, Wire};
use schemas::table::IntWidth;
use schemas::value::Time;
use schemas::{Column, ColumnType, Value};
use serde_json::Value as Json;

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("MY2PG_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: fixtures not found at {} (set MY2PG_FIXTURES)",
            dir.display()
        );
        None
    }
}

fn load(rel: &str) -> Option<Json> {
    let path = fixtures()?.join(rel);
    Some(serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap())
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn mc(wire: Wire, unsigned: Option<bool>) -> MapColumn {
    MapColumn {
        type_code: 0,
        wire,
        nullable: true,
        name: None,
        unsigned,
        collation: None,
        labels: None,
        geometry_type: None,
    }
}

fn decode(bytes: &[u8], wire: Wire, col: &Column) -> (Result<Value, String>, usize) {
    let mut c = Cursor::new(bytes, "vector");
    let v = decode_value(&mut c, &mc(wire, None), col).map_err(|e| e.0);
    (v, c.position())
}

/// `hh:mm:ss[.frac]` with exactly `fsp` fraction digits, as the vectors print TIME.
fn time_text(t: &Time, fsp: u64) -> String {
    let mut s = format!(
        "{}{:02}:{:02}:{:02}",
        if t.negative { "-" } else { "" },
        t.hours,
        t.minutes,
        t.seconds
    );
    if fsp > 0 {
        let frac = format!("{:06}", t.micros);
        s.push('.');
        s.push_str(&frac[..fsp as usize]);
    }
    s
}

#[test]
fn go_mysql_decimals() {
    let Some(v) = load("binlog_vectors/go-mysql/field_value_vectors.json") else {
        return;
    };
    let mut n = 0;
    for key in [
        "newdecimal_field_values",
        "newdecimal_field_values_with_meta",
    ] {
        for case in v[key].as_array().unwrap() {
            let (p, s) = (
                case["precision"].as_u64().unwrap() as u8,
                case["scale"].as_u64().unwrap() as u8,
            );
            let col = Column::new(
                "d",
                ColumnType::Decimal {
                    precision: p,
                    scale: s,
                    unsigned: false,
                },
            );
            let bytes = hex(case["hex"].as_str().unwrap());
            let (got, used) = decode(
                &bytes,
                Wire::NewDecimal {
                    precision: p,
                    scale: s,
                },
                &col,
            );
            let expected = case["expected"].as_str().unwrap();
            match got {
                Ok(Value::Decimal(d)) => {
                    assert_eq!(d.as_str(), expected, "DECIMAL({p},{s}) {}", case["hex"])
                }
                other => panic!("DECIMAL({p},{s}) {}: {other:?}", case["hex"]),
            }
            if let Some(consumed) = case["bytes_consumed"].as_u64() {
                assert_eq!(used as u64, consumed, "bytes consumed for {}", case["hex"]);
            }
            n += 1;
        }
    }
    assert!(n > 190, "only {n} decimal vectors");
}

#[test]
fn go_mysql_datetime2_time2_and_unsigned() {
    let Some(v) = load("binlog_vectors/go-mysql/field_value_vectors.json") else {
        return;
    };
    for case in v["datetime2_field_values"].as_array().unwrap() {
        let fsp = case["fsp"].as_u64().unwrap();
        let col = Column::new("d", ColumnType::DateTime { fsp: fsp as u8 });
        let (got, _) = decode(
            &hex(case["hex"].as_str().unwrap()),
            Wire::DateTime2 { fsp: fsp as u8 },
            &col,
        );
        let Ok(Value::DateTime(dt)) = got else {
            panic!("{case}: {got:?}")
        };
        let mut text = format!(
            "{} {:02}:{:02}:{:02}",
            dt.date, dt.hour, dt.minute, dt.second
        );
        if fsp > 0 {
            text.push('.');
            text.push_str(&format!("{:06}", dt.micros)[..fsp as usize]);
        }
        assert_eq!(text, case["expected"].as_str().unwrap(), "{case}");
    }
    for case in v["time2_field_values"].as_array().unwrap() {
        let fsp = case["fsp"].as_u64().unwrap();
        let col = Column::new("t", ColumnType::Time { fsp: fsp as u8 });
        let (got, _) = decode(
            &hex(case["hex"].as_str().unwrap()),
            Wire::Time2 { fsp: fsp as u8 },
            &col,
        );
        let Ok(Value::Time(t)) = got else {
            panic!("{case}: {got:?}")
        };
        assert_eq!(
            time_text(&t, fsp),
            case["expected"].as_str().unwrap(),
            "{case}"
        );
    }
    for case in v["unsigned_integer_field_values"].as_array().unwrap() {
        let (bytes, width) = match case["mysql_type"].as_str().unwrap() {
            "MYSQL_TYPE_TINY" => (1, IntWidth::Tiny),
            "MYSQL_TYPE_SHORT" => (2, IntWidth::Small),
            "MYSQL_TYPE_INT24" => (3, IntWidth::Medium),
            "MYSQL_TYPE_LONG" => (4, IntWidth::Int),
            _ => (8, IntWidth::Big),
        };
        let col = Column::new(
            "i",
            ColumnType::Integer {
                width,
                unsigned: true,
                display_width: None,
            },
        );
        let data = hex(case["hex"].as_str().unwrap());
        let mut c = Cursor::new(&data, "vector");
        let got = decode_value(&mut c, &mc(Wire::Int { bytes }, Some(true)), &col).unwrap();
        assert_eq!(
            got.to_string(),
            case["expected"].as_str().unwrap(),
            "{case}"
        );
    }
}

#[test]
fn mysqlcdc_column_vectors() {
    let Some(v) = load("binlog_vectors/mysqlcdc_dotnet/column_value_vectors.json") else {
        return;
    };
    for case in v["vectors"].as_array().unwrap() {
        let test = case["test"].as_str().unwrap();
        let data = hex(case["hex"].as_str().unwrap());
        let meta = case["metadata"].as_u64().unwrap_or(0);
        let expected = case["expected"].as_str().unwrap();
        let (wire, ty) = match test {
            "Test_Bit" => (
                Wire::Bit {
                    bits: ((meta >> 8) * 8 + (meta & 0xff)) as u8,
                },
                ColumnType::Bit { width: 28 },
            ),
            "Test_Enum_Value" => (
                Wire::Enum { pack: 1 },
                ColumnType::Enum {
                    labels: vec!["Low".into(), "Medium".into(), "High".into()],
                },
            ),
            "Test_Set_Value" => (
                Wire::Set { pack: 1 },
                ColumnType::Set {
                    members: vec!["Green".into(), "Yellow".into(), "Red".into()],
                },
            ),
            "Test_Year_Min" | "Test_Year_Max" => (Wire::Year, ColumnType::Year),
            "Test_Date" | "Test_Date_Invalid" => (Wire::Date, ColumnType::Date),
            t if t.starts_with("Test_Time2") => (
                Wire::Time2 { fsp: meta as u8 },
                ColumnType::Time { fsp: meta as u8 },
            ),
            "Test_TimeStamp2" => (
                Wire::Timestamp2 { fsp: meta as u8 },
                ColumnType::Timestamp { fsp: meta as u8 },
            ),
            t if t.starts_with("Test_DateTime2") => (
                Wire::DateTime2 { fsp: meta as u8 },
                ColumnType::DateTime { fsp: meta as u8 },
            ),
            t if t.starts_with("Test_Time_") => (Wire::Time, ColumnType::Time { fsp: 0 }),
            "Test_TimeStamp" => (Wire::Timestamp, ColumnType::Timestamp { fsp: 0 }),
            t if t.starts_with("Test_DateTime") => {
                (Wire::DateTime, ColumnType::DateTime { fsp: 0 })
            }
            other => panic!("vector {other} not mapped"),
        };
        let col = Column::new("c", ty);
        let (got, _) = decode(&data, wire, &col);
        let text = match (&got, test) {
            (Ok(Value::Bit { width, bits }), _) => {
                format!("b'{:0w$b}'", bits, w = usize::from(*width))
            }
            (Ok(Value::Enum(l)), _) => format!("3 (=> '{l}' of enum('Low','Medium','High'))"),
            (Ok(Value::Set(m)), _) => {
                format!("6 (=> '{}' of set('Green','Yellow','Red'))", m.join(","))
            }
            (Ok(Value::Time(t)), _) => time_text(t, u64::from(meta.min(6) as u8)),
            (Ok(Value::Timestamp(ts)), _) => {
                let u = ts.to_utc();
                let mut s = format!("{} {:02}:{:02}:{:02}", u.date, u.hour, u.minute, u.second);
                if meta > 0 {
                    s.push('.');
                    s.push_str(&format!("{:06}", u.micros)[..meta as usize]);
                }
                s
            }
            (Ok(Value::DateTime(dt)), _) => {
                let mut s = format!(
                    "{} {:02}:{:02}:{:02}",
                    dt.date, dt.hour, dt.minute, dt.second
                );
                if meta > 0 {
                    s.push('.');
                    s.push_str(&format!("{:06}", dt.micros)[..meta as usize]);
                }
                s
            }
            (Ok(other), _) => other.to_string(),
            (Err(e), "Test_DateTime2_Invalid") => {
                assert!(e.contains("DATETIME2"), "{e}");
                continue;
            }
            (Err(e), _) => panic!("{test}: {e}"),
        };
        assert!(
            expected.starts_with(&text),
            "{test}: got {text:?}, expected {expected:?}"
        );
    }
}

/// JSON equality with numbers compared by value (the vectors print doubles their own way).
fn same_json(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            x.to_string() == y.to_string()
                || x.as_f64().zip(y.as_f64()).is_some_and(|(p, q)| p == q)
        }
        // MySqlCdc renders an opaque DECIMAL as a string; MySQL prints it as a number, which
        // is what we keep. Same digits either way.
        (Json::Number(x), Json::String(y)) => x.to_string() == *y,
        // MySQL prints JSON temporal values with six fraction digits, MySqlCdc with three:
        // the same instant.
        (Json::String(x), Json::String(y)) => {
            trim_fraction(x) == trim_fraction(y) || opaque_base64(x) == Some(y)
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// MySQL prints opaque binary JSON values as `base64:type<N>:<data>`; MySqlCdc only `<data>`.
fn opaque_base64(s: &str) -> Option<&str> {
    s.strip_prefix("base64:type")?
        .split_once(':')
        .map(|(_, d)| d)
}

fn trim_fraction(s: &str) -> &str {
    let b = s.as_bytes();
    let datetime = s.len() > 19 && b.get(4) == Some(&b'-') && b.get(19) == Some(&b'.');
    let time = s.len() > 8 && b.get(2) == Some(&b':') && b.get(8) == Some(&b'.');
    if datetime || time {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[test]
fn mysqlcdc_binary_json_vectors() {
    let Some(v) = load("binlog_vectors/mysqlcdc_dotnet/jsonb_value_vectors.json") else {
        return;
    };
    let mut checked = 0;
    for case in v["vectors"].as_array().unwrap() {
        let test = case["test"].as_str().unwrap();
        let Some(expected) = case["expected_text"].as_str() else {
            continue;
        };
        // MySqlCdc truncates temporal values to milliseconds; the inserted literal (in
        // sql_context) is the ground truth for TIMESTAMP/DATETIME values.
        let literal = case["sql_context"][0]
            .as_str()
            .filter(|_| test == "Test_OpaqueTimeStamp" || test == "Test_OpaqueDateTime")
            .and_then(|s| s.split('\'').nth(1))
            .map(|s| format!("\"{s}\""));
        let expected = literal.as_deref().unwrap_or(expected);
        let got = jsonb_to_text(&hex(case["jsonb_hex"].as_str().unwrap()))
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        let (Ok(g), Ok(e)) = (
            serde_json::from_str::<Json>(&got),
            serde_json::from_str::<Json>(expected),
        ) else {
            // Scalars the vectors print without JSON quoting (e.g. opaque values).
            let (g, e) = (got.trim_matches('"'), expected.trim_matches('"'));
            assert!(
                trim_fraction(g) == trim_fraction(e) || opaque_base64(g) == Some(e),
                "{test}: {g} vs {e}"
            );
            checked += 1;
            continue;
        };
        assert!(same_json(&g, &e), "{test}:\n got {got}\nwant {expected}");
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} JSON vectors checked");
}
