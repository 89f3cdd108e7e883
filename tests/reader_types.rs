//! One fixture per column type against the harness MariaDB. Each case creates a table, writes
//! edge values, and checks the values that come out of the binlog decoder *and* out of the
//! snapshot (query) decoder against the values written here by hand from the MySQL/MariaDB
//! reference manual (data type ranges, storage and retrieval rules). Never from our own output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use my2pg::harness;
use schemas::value::{Date, DateTime, Decimal, Time, Timestamp};
use schemas::{Row, TableId, Value};

fn dec(s: &str) -> Value {
    Value::Decimal(Decimal::parse(s).unwrap())
}

fn date(y: u16, m: u8, d: u8) -> Date {
    Date {
        year: y,
        month: m,
        day: d,
    }
}

fn dt(d: Date, h: u8, mi: u8, s: u8, us: u32) -> Value {
    Value::DateTime(DateTime {
        date: d,
        hour: h,
        minute: mi,
        second: s,
        micros: us,
    })
}

fn time(neg: bool, h: u16, m: u8, s: u8, us: u32) -> Value {
    Value::Time(Time {
        negative: neg,
        hours: h,
        minutes: m,
        seconds: s,
        micros: us,
    })
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// Creates `t` with `columns` (the first column is `id INT PRIMARY KEY`), runs `inserts` under
/// `sql_mode`, and checks both decoders against `expected` (rows in id order, without the id).
async fn case(
    name: &str,
    columns: &str,
    sql_mode: &str,
    inserts: &[&str],
    expected: Vec<Vec<Value>>,
) {
    let db = harness::shared().fresh(name).await.unwrap();
    let mut c = my_conn(&db.mysql_db_url).await;
    exec(
        &mut c,
        &format!("CREATE TABLE t (id INT PRIMARY KEY, {columns})"),
    )
    .await;
    let from = position(&db.mysql_url).await;
    exec(
        &mut c,
        &format!("SET SESSION sql_mode = '{sql_mode}', time_zone = '+00:00'"),
    )
    .await;
    for sql in inserts {
        exec(&mut c, sql).await;
    }
    let expected: Vec<Row> = expected
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            v.insert(0, Value::Int(i as i64 + 1));
            Row(v)
        })
        .collect();

    let n = expected.len();
    let txs = collect_until(
        reader_for_db(&db.mysql_url, &db.name),
        from,
        Duration::from_secs(30),
        |t| rows(t).len() >= n,
    )
    .await;
    let streamed: Vec<Row> = rows(&txs)
        .iter()
        .map(|r| r.after.clone().unwrap())
        .collect();
    for (i, (got, want)) in streamed.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "{name}: binlog row {i}");
    }

    let schema = cdc_reader::schema::read_table(&mut c, &TableId::new(&db.name, "t"))
        .await
        .unwrap();
    let queried = cdc_reader::rows::read_all(&mut c, &schema).await.unwrap();
    for (i, (got, want)) in queried.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "{name}: query row {i}");
    }
    assert_eq!(queried.len(), n, "{name}: row count");
}

fn ins(values: &str) -> String {
    format!("INSERT INTO t VALUES {values}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_signed_and_unsigned_at_their_limits() {
    // Ranges from "Integer Types (Exact Value)".
    case(
        "ints",
        "a TINYINT, b TINYINT UNSIGNED, c SMALLINT, d SMALLINT UNSIGNED, e MEDIUMINT, f MEDIUMINT UNSIGNED, \
         g INT, h INT UNSIGNED, i BIGINT, j BIGINT UNSIGNED, k TINYINT(1)",
        "STRICT_ALL_TABLES",
        &[
            &ins("(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, 0)"),
            &ins("(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, 1)"),
        ],
        vec![
            vec![
                Value::Int(-128),
                Value::UInt(0),
                Value::Int(-32768),
                Value::UInt(0),
                Value::Int(-8_388_608),
                Value::UInt(0),
                Value::Int(-2_147_483_648),
                Value::UInt(0),
                Value::Int(i64::MIN),
                Value::UInt(0),
                Value::Int(0),
            ],
            vec![
                Value::Int(127),
                Value::UInt(255),
                Value::Int(32767),
                Value::UInt(65535),
                Value::Int(8_388_607),
                Value::UInt(16_777_215),
                Value::Int(2_147_483_647),
                Value::UInt(4_294_967_295),
                Value::Int(i64::MAX),
                Value::UInt(u64::MAX),
                Value::Int(1),
            ],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimals_keep_every_digit_and_their_scale() {
    // DECIMAL(65,30) is the maximum precision and scale ("Fixed-Point Types").
    case(
        "decimals",
        "a DECIMAL(65,30), b DECIMAL(5,2), c DECIMAL(10,0), d DECIMAL(30,30)",
        "STRICT_ALL_TABLES",
        &[
            &ins("(1, 12345678901234567890123456789012345.123456789012345678901234567890, 1.5, 0, 0.100000000000000000000000000000)"),
            &ins("(2, -99999999999999999999999999999999999.999999999999999999999999999999, -0.01, -9999999999, -0.999999999999999999999999999999)"),
        ],
        vec![
            vec![
                dec("12345678901234567890123456789012345.123456789012345678901234567890"),
                dec("1.50"),
                dec("0"),
                dec("0.100000000000000000000000000000"),
            ],
            vec![
                dec("-99999999999999999999999999999999999.999999999999999999999999999999"),
                dec("-0.01"),
                dec("-9999999999"),
                dec("-0.999999999999999999999999999999"),
            ],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floats_and_doubles_are_bit_exact() {
    // FLOAT is IEEE single, DOUBLE IEEE double ("Floating-Point Types").
    case(
        "floats",
        "a FLOAT, b DOUBLE",
        "STRICT_ALL_TABLES",
        &[
            &ins("(1, 0.1, 0.1)"),
            &ins("(2, 3.40282e38, 1.7976931348623157e308)"),
            &ins("(3, -1.17549e-38, 2.2250738585072014e-308)"),
        ],
        vec![
            vec![Value::Float(0.1f32), Value::Double(0.1)],
            vec![Value::Float(3.40282e38f32), Value::Double(f64::MAX)],
            vec![
                Value::Float(-1.17549e-38f32),
                Value::Double(f64::MIN_POSITIVE),
            ],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bits_of_every_width() {
    // "Bit-Value Type - BIT": BIT(M), M from 1 to 64.
    case(
        "bits",
        "a BIT(1), b BIT(10), c BIT(64)",
        "STRICT_ALL_TABLES",
        &[&ins("(1, b'1', b'1010101010', b'1111111111111111111111111111111111111111111111111111111111111111')"), &ins("(2, b'0', b'0000000001', 0)")],
        vec![
            vec![Value::Bit { width: 1, bits: 1 }, Value::Bit { width: 10, bits: 0b10_1010_1010 }, Value::Bit { width: 64, bits: u64::MAX }],
            vec![Value::Bit { width: 1, bits: 0 }, Value::Bit { width: 10, bits: 1 }, Value::Bit { width: 64, bits: 0 }],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_datetimes_and_zero_dates() {
    // DATE range 1000-01-01..9999-12-31, DATETIME with fractional seconds up to microseconds;
    // zero and partial-zero dates are allowed without NO_ZERO_DATE / NO_ZERO_IN_DATE.
    case(
        "dates",
        "a DATE, b DATETIME(6), c DATETIME",
        "",
        &[
            &ins("(1, '1000-01-01', '1000-01-01 00:00:00.000000', '2024-02-29 12:34:56')"),
            &ins("(2, '9999-12-31', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59')"),
            &ins("(3, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00')"),
            &ins("(4, '2015-00-21', '2016-10-00 15:30:42.000500', '0018-04-01 00:00:00')"),
        ],
        vec![
            vec![
                Value::Date(date(1000, 1, 1)),
                dt(date(1000, 1, 1), 0, 0, 0, 0),
                dt(date(2024, 2, 29), 12, 34, 56, 0),
            ],
            vec![
                Value::Date(date(9999, 12, 31)),
                dt(date(9999, 12, 31), 23, 59, 59, 999_999),
                dt(date(9999, 12, 31), 23, 59, 59, 0),
            ],
            vec![
                Value::Date(date(0, 0, 0)),
                dt(date(0, 0, 0), 0, 0, 0, 0),
                dt(date(0, 0, 0), 0, 0, 0, 0),
            ],
            vec![
                Value::Date(date(2015, 0, 21)),
                dt(date(2016, 10, 0), 15, 30, 42, 500),
                dt(date(18, 4, 1), 0, 0, 0, 0),
            ],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_are_utc_instants() {
    // TIMESTAMP range '1970-01-01 00:00:01' UTC to '2038-01-19 03:14:07' UTC; the value is
    // stored as UTC and converted from the session time zone (here +00:00 and +02:00).
    case(
        "timestamps",
        "a TIMESTAMP(6) NULL, b TIMESTAMP NULL",
        "",
        &[
            &ins("(1, '1970-01-01 00:00:01.000000', '2038-01-19 03:14:07')"),
            &ins("(2, '2038-01-19 03:14:07.999999', '0000-00-00 00:00:00')"),
            "SET time_zone = '+02:00'",
            &ins("(3, '2024-06-01 12:00:00.123456', NULL)"),
        ],
        vec![
            vec![
                Value::Timestamp(Timestamp { secs: 1, micros: 0 }),
                Value::Timestamp(Timestamp {
                    secs: 2_147_483_647,
                    micros: 0,
                }),
            ],
            vec![
                Value::Timestamp(Timestamp {
                    secs: 2_147_483_647,
                    micros: 999_999,
                }),
                Value::Timestamp(Timestamp::ZERO),
            ],
            // 2024-06-01 10:00:00.123456 UTC = 1717236000.123456
            vec![
                Value::Timestamp(Timestamp {
                    secs: 1_717_236_000,
                    micros: 123_456,
                }),
                Value::Null,
            ],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_beyond_a_day_negative_and_fractional() {
    // TIME range '-838:59:59.000000' to '838:59:59.000000' (MariaDB allows .999999).
    case(
        "times",
        "a TIME(6), b TIME, c TIME(3)",
        "",
        &[
            &ins("(1, '838:59:59.999999', '-838:59:59', '-733:00:00.001')"),
            &ins("(2, '-00:00:00.000001', '00:00:00', '-00:20:38.500')"),
            &ins("(3, '-01:01:01.000001', '24:00:00', '517:51:04.777')"),
        ],
        vec![
            vec![
                time(false, 838, 59, 59, 999_999),
                time(true, 838, 59, 59, 0),
                time(true, 733, 0, 0, 1000),
            ],
            vec![
                time(true, 0, 0, 0, 1),
                time(false, 0, 0, 0, 0),
                time(true, 0, 20, 38, 500_000),
            ],
            vec![
                time(true, 1, 1, 1, 1),
                time(false, 24, 0, 0, 0),
                time(false, 517, 51, 4, 777_000),
            ],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn years_including_zero() {
    // YEAR range 1901..2155 and 0000; two-digit '69' is 2069 and '70' is 1970.
    case(
        "years",
        "a YEAR",
        "",
        &[&ins("(1, 1901), (2, 2155), (3, 0), (4, '69'), (5, '70')")],
        vec![
            vec![Value::Year(1901)],
            vec![Value::Year(2155)],
            vec![Value::Year(0)],
            vec![Value::Year(2069)],
            vec![Value::Year(1970)],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_in_every_character_set() {
    // CHAR values are right-padded on storage and returned without trailing spaces
    // ("The CHAR and VARCHAR Types"); latin1 is cp1252 (0x80 = '€').
    case(
        "texts",
        "a CHAR(5) CHARACTER SET utf8mb4, b VARCHAR(10) CHARACTER SET utf8mb4, c VARCHAR(10) CHARACTER SET latin1, \
         d VARCHAR(10) CHARACTER SET ascii, e VARCHAR(10) CHARACTER SET utf8mb3, f TEXT CHARACTER SET utf8mb4, \
         g CHAR(3) CHARACTER SET latin1",
        "STRICT_ALL_TABLES",
        &[
            "SET NAMES utf8mb4",
            &ins("(1, 'ab  ', '😀✓ z', CONVERT(x'80E9' USING latin1), 'plain', 'über', 'a\\0b', 'x')"),
            &ins("(2, '', '', '', '', '', '', '')"),
        ],
        vec![
            vec![text("ab"), text("😀✓ z"), text("€é"), text("plain"), text("über"), text("a\0b"), text("x")],
            vec![text(""), text(""), text(""), text(""), text(""), text(""), text("")],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_strings_are_bytes_and_binary_is_padded() {
    // BINARY(M) is right-padded with 0x00 to M bytes and returned padded
    // ("The BINARY and VARBINARY Types").
    case(
        "binaries",
        "a BINARY(4), b VARBINARY(10), c BLOB, d VARCHAR(5) CHARACTER SET binary",
        "STRICT_ALL_TABLES",
        &[
            &ins("(1, x'0102', x'00FF00', x'DEADBEEF00', x'61')"),
            &ins("(2, x'', x'', x'', x'')"),
        ],
        vec![
            vec![
                Value::Bytes(vec![1, 2, 0, 0]),
                Value::Bytes(vec![0, 0xff, 0]),
                Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef, 0]),
                Value::Bytes(b"a".to_vec()),
            ],
            vec![
                Value::Bytes(vec![0, 0, 0, 0]),
                Value::Bytes(vec![]),
                Value::Bytes(vec![]),
                Value::Bytes(vec![]),
            ],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enums_and_sets_come_out_as_labels() {
    // ENUM: index 0 is the error value ''; SET members are returned in definition order
    // whatever order they were given in ("The ENUM Type", "The SET Type").
    case(
        "enumsets",
        "a ENUM('a','b,c','it''s'), b SET('x','y','z')",
        "",
        &[
            &ins("(1, 'b,c', 'z,x')"),
            &ins("(2, 'it''s', '')"),
            &ins("(3, 'nope', 'y')"),
        ],
        vec![
            vec![
                Value::Enum("b,c".into()),
                Value::Set(vec!["x".into(), "z".into()]),
            ],
            vec![Value::Enum("it's".into()), Value::Set(vec![])],
            vec![Value::Enum(String::new()), Value::Set(vec!["y".into()])],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_json_is_the_text_as_written() {
    // MariaDB's JSON is LONGTEXT with a json_valid check; the text is kept as written.
    let doc = r#"{"b": 1, "a": [1.50, 12345678901234567890123, "😀"], "n": null}"#;
    case(
        "json",
        "a JSON",
        "STRICT_ALL_TABLES",
        &[&ins(&format!("(1, '{doc}')")), &ins("(2, '[]')")],
        vec![
            vec![Value::Json(doc.into())],
            vec![Value::Json("[]".into())],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geometry_is_srid_and_wkb() {
    // Internal geometry format: 4-byte SRID then OGC WKB; POINT(1 2) in little-endian WKB is
    // 01 01000000 000000000000F03F 0000000000000040.
    let wkb = hex_bytes("0101000000000000000000F03F0000000000000040");
    case(
        "geometry",
        "a GEOMETRY, b POINT",
        "STRICT_ALL_TABLES",
        &[&ins(
            "(1, ST_GeomFromText('POINT(1 2)'), ST_GeomFromText('POINT(1 2)', 4326))",
        )],
        vec![vec![
            Value::Geometry {
                srid: 0,
                wkb: wkb.clone(),
            },
            Value::Geometry { srid: 4326, wkb },
        ]],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_and_invisible_columns_are_in_the_row() {
    case(
        "generated",
        "a INT, g INT AS (a + 1) VIRTUAL, s INT AS (a * 2) STORED, h INT INVISIBLE DEFAULT 5",
        "STRICT_ALL_TABLES",
        &["INSERT INTO t (id, a) VALUES (1, 10)"],
        vec![vec![
            Value::Int(10),
            Value::Int(11),
            Value::Int(20),
            Value::Int(5),
        ]],
    )
    .await;
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
