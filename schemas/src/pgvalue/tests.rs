//! Conversion under every policy, with expected values written from the MySQL and PostgreSQL
//! documentation.

use std::sync::Arc;

use super::*;
use crate::mapping::{MappingOptions, NulInText, UnsignedBigintAs, map_table};
use crate::table::{Column, ColumnType, TableId, TableSchema};
use crate::value::Time;

fn mapping(ty: &str, opts: &MappingOptions) -> TableMapping {
    let mut id = Column::new("id", ColumnType::parse("int").unwrap());
    id.nullable = false;
    let t = Arc::new(TableSchema {
        id: TableId::new("shop", "t"),
        columns: vec![id, Column::new("c", ColumnType::parse(ty).unwrap())],
        primary_key: vec![0],
        unique_keys: vec![],
        indexes: vec![],
        foreign_keys: vec![],
        comment: String::new(),
        auto_increment: None,
    });
    map_table(t, "shop", opts).unwrap()
}

fn convert(ty: &str, v: Value, opts: &MappingOptions) -> Result<PgValue, ConvertError> {
    let m = mapping(ty, opts);
    m.convert_row(&Row(vec![Value::Int(7), v]))
        .map(|mut r| r.remove(1))
}

fn ok(ty: &str, v: Value) -> PgValue {
    convert(ty, v, &MappingOptions::default()).unwrap()
}

fn date(year: u16, month: u8, day: u8) -> Date {
    Date { year, month, day }
}

#[test]
fn integers_keep_their_value() {
    assert_eq!(
        ok("bigint unsigned", Value::UInt(u64::MAX)),
        PgValue::Numeric(Numeric::Value(
            Decimal::parse("18446744073709551615").unwrap()
        ))
    );
    assert_eq!(
        ok("int unsigned", Value::UInt(4_294_967_295)),
        PgValue::Int8(4_294_967_295)
    );
    assert_eq!(
        ok("smallint unsigned", Value::UInt(65_535)),
        PgValue::Int4(65_535)
    );
    assert_eq!(ok("tinyint unsigned", Value::UInt(255)), PgValue::Int2(255));
    assert_eq!(ok("bigint", Value::Int(i64::MIN)), PgValue::Int8(i64::MIN));
    assert_eq!(ok("year", Value::Year(0)), PgValue::Int2(0));
    assert_eq!(ok("year", Value::Year(2155)), PgValue::Int2(2155));
}

#[test]
fn unsigned_bigint_as_bigint_is_a_range_error_naming_column_key_and_value() {
    let o = MappingOptions {
        unsigned_bigint_as: UnsignedBigintAs::Bigint,
        ..Default::default()
    };
    assert_eq!(
        convert(
            "bigint unsigned",
            Value::UInt(9_223_372_036_854_775_807),
            &o
        )
        .unwrap(),
        PgValue::Int8(i64::MAX)
    );
    let e = convert(
        "bigint unsigned",
        Value::UInt(9_223_372_036_854_775_808),
        &o,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "column shop.t.c (key id=7): value 9223372036854775808 does not fit bigint"
    );
    assert!(e.hint().contains("unsigned_bigint_as"), "{}", e.hint());
}

#[test]
fn tinyint1_is_boolean_only_for_0_and_1() {
    assert_eq!(ok("tinyint(1)", Value::Int(1)), PgValue::Bool(true));
    assert_eq!(ok("tinyint(1)", Value::Int(0)), PgValue::Bool(false));
    let e = convert("tinyint(1)", Value::Int(5), &MappingOptions::default()).unwrap_err();
    assert_eq!(e.problem, ConvertProblem::NotBoolean);
    let o = MappingOptions {
        tinyint1_as_boolean: false,
        ..Default::default()
    };
    assert_eq!(
        convert("tinyint(1)", Value::Int(5), &o).unwrap(),
        PgValue::Int2(5)
    );
}

#[test]
fn zero_dates_under_each_policy() {
    let zero = Value::Date(date(0, 0, 0));
    let partial = Value::Date(date(2015, 0, 21));
    let year0 = Value::Date(date(0, 1, 21));
    let invalid = Value::Date(date(2021, 2, 30));
    for v in [&zero, &partial, &year0, &invalid] {
        let e = convert("date", v.clone(), &MappingOptions::default()).unwrap_err();
        assert_eq!(e.problem, ConvertProblem::ZeroDate, "{v}");
    }
    let mut o = MappingOptions {
        zero_date: ZeroDate::Null,
        ..Default::default()
    };
    assert_eq!(convert("date", zero.clone(), &o).unwrap(), PgValue::Null);
    o.zero_date = ZeroDate::NegInfinity;
    assert_eq!(
        convert("date", partial.clone(), &o).unwrap(),
        PgValue::Date(DATE_NEG_INFINITY)
    );
    assert_eq!(
        convert(
            "datetime",
            Value::DateTime(DateTime {
                date: date(0, 0, 0),
                hour: 0,
                minute: 0,
                second: 0,
                micros: 0
            }),
            &o
        )
        .unwrap(),
        PgValue::Timestamp(TIMESTAMP_NEG_INFINITY)
    );
    assert_eq!(
        convert("timestamp", Value::Timestamp(Timestamp::ZERO), &o).unwrap(),
        PgValue::Timestamptz(TIMESTAMP_NEG_INFINITY)
    );
    o.zero_date = ZeroDate::try_from("1970-01-01".to_owned()).unwrap();
    // 1970-01-01 is 10957 days before 2000-01-01.
    assert_eq!(convert("date", zero, &o).unwrap(), PgValue::Date(-10_957));
    assert_eq!(
        convert("timestamp", Value::Timestamp(Timestamp::ZERO), &o).unwrap(),
        PgValue::Timestamptz(-946_684_800_000_000)
    );
}

#[test]
fn zero_date_null_in_a_key_column_is_an_error() {
    let o = MappingOptions {
        zero_date: ZeroDate::Null,
        ..Default::default()
    };
    let mut d = Column::new("d", ColumnType::Date);
    d.nullable = false;
    let t = Arc::new(TableSchema {
        id: TableId::new("shop", "k"),
        columns: vec![d],
        primary_key: vec![0],
        unique_keys: vec![],
        indexes: vec![],
        foreign_keys: vec![],
        comment: String::new(),
        auto_increment: None,
    });
    let m = map_table(t, "shop", &o).unwrap();
    let e = m
        .convert_row(&Row(vec![Value::Date(date(0, 0, 0))]))
        .unwrap_err();
    assert_eq!(e.problem, ConvertProblem::ZeroDateInKey);
    assert_eq!(e.key, "d=0000-00-00");
}

#[test]
fn temporal_values_are_exact() {
    // 2038-01-19 03:14:07.999999 UTC = Unix 2147483647 s; PostgreSQL counts from 2000-01-01.
    assert_eq!(
        ok(
            "timestamp(6)",
            Value::Timestamp(Timestamp {
                secs: 2_147_483_647,
                micros: 999_999
            })
        ),
        PgValue::Timestamptz((2_147_483_647 - 946_684_800) * 1_000_000 + 999_999)
    );
    assert_eq!(
        ok(
            "datetime(6)",
            Value::DateTime(DateTime {
                date: date(9999, 12, 31),
                hour: 23,
                minute: 59,
                second: 59,
                micros: 999_999
            })
        ),
        PgValue::Timestamp(252_455_615_999_999_999)
    );
    assert_eq!(
        ok("date", Value::Date(date(1000, 1, 1))),
        PgValue::Date(-365_242)
    );
    assert_eq!(
        ok(
            "time(6)",
            Value::Time(Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 999_999
            })
        ),
        PgValue::Interval {
            months: 0,
            days: 0,
            micros: -3_020_399_999_999
        }
    );
}

#[test]
fn text_policies() {
    let e = convert(
        "varchar(10)",
        Value::Text("a\0b".into()),
        &MappingOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.problem, ConvertProblem::NulInText);
    assert!(e.to_string().contains("\"a\\0b\""), "{e}");
    let mut o = MappingOptions {
        nul_in_text: NulInText::Strip,
        ..Default::default()
    };
    assert_eq!(
        convert("text", Value::Text("a\0b".into()), &o).unwrap(),
        PgValue::Text("ab".into())
    );
    o.nul_in_text = NulInText::Replace;
    assert_eq!(
        convert("text", Value::Text("a\0b".into()), &o).unwrap(),
        PgValue::Text("a\u{FFFD}b".into())
    );
    let bad = Value::InvalidText {
        bytes: vec![b'a', 0xFF],
        charset: "utf8mb4".into(),
    };
    let e = convert("text", bad.clone(), &MappingOptions::default()).unwrap_err();
    assert_eq!(
        e.problem,
        ConvertProblem::InvalidText {
            charset: "utf8mb4".into()
        }
    );
    let o = MappingOptions {
        invalid_text: InvalidText::Replace,
        ..Default::default()
    };
    assert_eq!(
        convert("text", bad, &o).unwrap(),
        PgValue::Text("a\u{FFFD}".into())
    );
}

#[test]
fn enum_set_json_bit_geometry() {
    assert_eq!(
        ok("enum('a,b','c''d')", Value::Enum("c'd".into())),
        PgValue::Text("c'd".into())
    );
    assert_eq!(
        ok("set('x','y')", Value::Set(vec!["x".into(), "y".into()])),
        PgValue::TextArray(vec!["x".into(), "y".into()])
    );
    assert_eq!(
        ok("set('x','y')", Value::Set(vec![])),
        PgValue::TextArray(vec![])
    );
    let mut o = MappingOptions {
        set_as: crate::mapping::SetAs::Text,
        ..Default::default()
    };
    assert_eq!(
        convert("set('x','y')", Value::Set(vec!["x".into(), "y".into()]), &o).unwrap(),
        PgValue::Text("x,y".into())
    );
    o.enum_as = crate::mapping::EnumAs::PgEnum;
    assert_eq!(
        convert("enum('a')", Value::Enum(String::new()), &o)
            .unwrap_err()
            .problem,
        ConvertProblem::EnumErrorValue
    );
    assert_eq!(
        ok("json", Value::Json("{\"a\": 18446744073709551616}".into())),
        PgValue::Jsonb("{\"a\": 18446744073709551616}".into())
    );
    assert_eq!(
        convert(
            "json",
            Value::Json("\"\\u0000\"".into()),
            &MappingOptions::default()
        )
        .unwrap_err()
        .problem,
        ConvertProblem::NulInJson
    );
    assert!(matches!(
        convert("json", Value::Json("{".into()), &MappingOptions::default())
            .unwrap_err()
            .problem,
        ConvertProblem::InvalidJson { .. }
    ));
    assert_eq!(
        ok("bit(1)", Value::Bit { width: 1, bits: 1 }),
        PgValue::Bool(true)
    );
    assert_eq!(
        ok(
            "bit(64)",
            Value::Bit {
                width: 64,
                bits: u64::MAX
            }
        ),
        PgValue::BitVarying {
            len: 64,
            bytes: vec![0xFF; 8]
        }
    );
    assert_eq!(
        ok(
            "bit(10)",
            Value::Bit {
                width: 10,
                bits: 0b10_0000_0001
            }
        ),
        PgValue::BitVarying {
            len: 10,
            bytes: vec![0b1000_0000, 0b0100_0000]
        }
    );
    // POINT(1 2), little-endian WKB, SRID 4326 → EWKB with the SRID flag 0x20000000.
    let wkb = hex::decode("0101000000000000000000f03f0000000000000040").unwrap();
    assert_eq!(
        ok(
            "point",
            Value::Geometry {
                srid: 0,
                wkb: wkb.clone()
            }
        ),
        PgValue::Bytea(wkb.clone())
    );
    assert_eq!(
        ok("point", Value::Geometry { srid: 4326, wkb }),
        PgValue::Bytea(hex::decode("0101000020e6100000000000000000f03f0000000000000040").unwrap())
    );
    assert_eq!(
        ok(
            "uuid",
            Value::Bytes(b"123e4567-e89b-12d3-a456-426614174000".to_vec())
        ),
        PgValue::Uuid([
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
            0x40, 0x00
        ])
    );
}

#[test]
fn a_value_of_the_wrong_kind_is_reported_not_coerced() {
    let e = convert("int", Value::Text("5".into()), &MappingOptions::default()).unwrap_err();
    assert!(
        matches!(e.problem, ConvertProblem::TypeMismatch { .. }),
        "{e}"
    );
    let m = mapping("int", &MappingOptions::default());
    assert!(m.convert_row(&Row(vec![Value::Int(1)])).is_err());
}

/// The copy's direct encoder writes exactly what conversion then encoding writes, for every
/// type it takes a short cut on, at and past each range edge, and under each policy that
/// changes values; and fails where conversion fails.
#[test]
fn copy_row_writes_what_convert_then_encode_writes() {
    let dt = |y, mo, d, h, mi, s, us| DateTime {
        date: date(y, mo, d),
        hour: h,
        minute: mi,
        second: s,
        micros: us,
    };
    let cases: Vec<(&str, Value)> = vec![
        ("bigint", Value::Int(i64::MIN)),
        ("bigint", Value::Int(i64::MAX)),
        ("bigint", Value::Null),
        ("bigint unsigned", Value::UInt(u64::MAX)),
        ("bigint unsigned", Value::UInt(5)),
        ("bigint unsigned", Value::UInt(0)),
        ("bigint unsigned", Value::UInt(9_999)),
        ("bigint unsigned", Value::UInt(10_000)),
        ("bigint unsigned", Value::UInt(100_000_000)),
        ("bigint unsigned", Value::UInt(9_223_372_036_854_775_808)),
        ("bigint unsigned", Value::Int(-10_000)),
        ("decimal(20,2)", Value::UInt(12_345)),
        ("int", Value::Int(i64::from(i32::MIN))),
        ("int", Value::Int(i64::from(i32::MAX) + 1)),
        ("int unsigned", Value::UInt(4_294_967_295)),
        ("mediumint unsigned", Value::UInt(16_777_215)),
        ("smallint", Value::Int(-32_768)),
        ("smallint unsigned", Value::UInt(65_535)),
        ("tinyint", Value::Int(-128)),
        ("tinyint(1)", Value::Int(1)),
        ("tinyint(1)", Value::Int(2)),
        ("year", Value::Year(2155)),
        ("varchar(10)", Value::Text("héllo 😀".into())),
        ("varchar(10)", Value::Text(String::new())),
        ("text", Value::Text("a\0b".into())),
        ("text", Value::Enum("x".into())),
        ("enum('a','b')", Value::Enum("b".into())),
        ("enum('a','b')", Value::Enum(String::new())),
        ("set('a','b')", Value::Set(vec!["a".into(), "b".into()])),
        ("varbinary(4)", Value::Bytes(vec![0, 255, 10])),
        ("blob", Value::Bytes(Vec::new())),
        (
            "decimal(12,2)",
            Value::Decimal(Decimal::parse("-12345.60").unwrap()),
        ),
        (
            "decimal(65,30)",
            Value::Decimal(Decimal::parse("0.000000000000000000000000000001").unwrap()),
        ),
        ("decimal(5,0)", Value::Decimal(Decimal::parse("0").unwrap())),
        (
            "decimal(20,0)",
            Value::Decimal(Decimal::parse("10000").unwrap()),
        ),
        (
            "datetime(6)",
            Value::DateTime(dt(2024, 2, 29, 23, 59, 59, 999_999)),
        ),
        ("datetime", Value::DateTime(dt(1000, 1, 1, 0, 0, 0, 0))),
        ("datetime", Value::DateTime(dt(0, 0, 0, 0, 0, 0, 0))),
        (
            "timestamp(3)",
            Value::Timestamp(Timestamp {
                secs: 1,
                micros: 500_000,
            }),
        ),
        (
            "timestamp",
            Value::Timestamp(Timestamp { secs: 0, micros: 0 }),
        ),
        ("date", Value::Date(date(1970, 1, 1))),
        ("date", Value::Date(date(2021, 2, 30))),
        (
            "time(6)",
            Value::Time(Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0,
            }),
        ),
        ("double", Value::Double(-0.0)),
        ("float", Value::Float(1.5)),
        ("json", Value::Json("{\"a\": [1, 2]}".into())),
        ("bit(3)", Value::Bit { width: 3, bits: 5 }),
    ];
    let policies = [
        MappingOptions::default(),
        MappingOptions {
            zero_date: ZeroDate::Null,
            nul_in_text: NulInText::Strip,
            ..Default::default()
        },
        MappingOptions {
            zero_date: ZeroDate::NegInfinity,
            nul_in_text: NulInText::Replace,
            unsigned_bigint_as: UnsignedBigintAs::Bigint,
            ..Default::default()
        },
    ];
    for opts in &policies {
        for (ty, v) in &cases {
            let m = mapping(ty, opts);
            let row = Row(vec![Value::Int(7), v.clone()]);
            let mut direct = Vec::new();
            let got = m.copy_row(&row, &mut direct);
            match m.convert_row(&row) {
                Ok(values) => {
                    let mut want = Vec::new();
                    crate::pgbinary::copy_row(&values, &mut want).unwrap();
                    assert!(got.is_ok(), "{ty} {v:?}: {got:?}");
                    assert_eq!(direct, want, "{ty} {v:?} under {opts:?}");
                }
                Err(e) => {
                    let got = got.expect_err(ty);
                    assert_eq!(got.to_string(), e.to_string(), "{ty} {v:?}");
                }
            }
        }
    }
}
