//! Every MySQL type and mapping option, round trip through real servers: created in MariaDB
//! with edge values, read back exactly by the reader, mapped and converted, written to
//! PostgreSQL with binary COPY *and* with binary parameters into tables created by the sink's
//! own DDL, then read back as text and compared with the value written here by hand from the
//! MySQL and PostgreSQL documentation (`docs/type-mapping.md` has one row per test). The
//! binary COPY copy is also read back in binary and must equal the converted values exactly,
//! with equal canonical digests.
//!
//! Values the target cannot hold under the policy must fail with the documented problem,
//! naming `db.t.c` and the row's key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use schemas::mapping::{
    EnumAs, GeometryAs, InvalidText, JsonAs, MappingOptions, NulInText, SetAs, StringAs,
    UnsignedBigintAs, ZeroDate,
};
use schemas::pgvalue::ConvertProblem;
use support::opts;
use support::pg;
use support::roundtrip::Expect::{Fails, Null};
use support::roundtrip::{Expect, run, run_in, t};

fn default() -> MappingOptions {
    MappingOptions::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tinyint1_is_boolean_or_smallint() {
    let rows = [
        ("0", t("false")),
        ("1", t("true")),
        ("5", Fails(ConvertProblem::NotBoolean)),
        ("NULL", Null),
    ];
    run("tinyint1", &default(), "TINYINT(1)", "boolean", &rows).await;
    run("boolean", &default(), "BOOLEAN", "boolean", &rows[..2]).await;
    let o = opts(|o| o.tinyint1_as_boolean = false);
    run(
        "tinyint1_off",
        &o,
        "TINYINT(1)",
        "smallint",
        &[("5", t("5")), ("-128", t("-128"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_keep_sign_and_range() {
    let o = default();
    run(
        "tiny",
        &o,
        "TINYINT",
        "smallint",
        &[("-128", t("-128")), ("127", t("127"))],
    )
    .await;
    run(
        "utiny",
        &o,
        "TINYINT UNSIGNED",
        "smallint",
        &[("255", t("255"))],
    )
    .await;
    run(
        "small",
        &o,
        "SMALLINT",
        "smallint",
        &[("-32768", t("-32768")), ("32767", t("32767"))],
    )
    .await;
    run(
        "usmall",
        &o,
        "SMALLINT UNSIGNED",
        "integer",
        &[("65535", t("65535"))],
    )
    .await;
    run(
        "medium",
        &o,
        "MEDIUMINT",
        "integer",
        &[("-8388608", t("-8388608")), ("8388607", t("8388607"))],
    )
    .await;
    run(
        "umedium",
        &o,
        "MEDIUMINT UNSIGNED",
        "integer",
        &[("16777215", t("16777215"))],
    )
    .await;
    run(
        "int",
        &o,
        "INT",
        "integer",
        &[
            ("-2147483648", t("-2147483648")),
            ("2147483647", t("2147483647")),
        ],
    )
    .await;
    run(
        "uint",
        &o,
        "INT UNSIGNED",
        "bigint",
        &[("4294967295", t("4294967295"))],
    )
    .await;
    run(
        "big",
        &o,
        "BIGINT",
        "bigint",
        &[
            ("-9223372036854775808", t("-9223372036854775808")),
            ("9223372036854775807", t("9223372036854775807")),
        ],
    )
    .await;
    run(
        "zerofill",
        &o,
        "INT(5) UNSIGNED ZEROFILL",
        "bigint",
        &[("42", t("42"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigint_unsigned_as_numeric_or_bigint() {
    run(
        "ubig",
        &default(),
        "BIGINT UNSIGNED",
        "numeric(20,0)",
        &[
            ("18446744073709551615", t("18446744073709551615")),
            ("0", t("0")),
        ],
    )
    .await;
    let o = opts(|o| o.unsigned_bigint_as = UnsignedBigintAs::Bigint);
    run(
        "ubig_bigint",
        &o,
        "BIGINT UNSIGNED",
        "bigint",
        &[
            ("9223372036854775807", t("9223372036854775807")),
            (
                "9223372036854775808",
                Fails(ConvertProblem::OutOfRange {
                    pg_type: "bigint".into(),
                }),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_keeps_every_digit_and_the_scale() {
    let o = default();
    run(
        "dec65",
        &o,
        "DECIMAL(65,30)",
        "numeric(65,30)",
        &[
            (
                "12345678901234567890123456789012345.123456789012345678901234567890",
                t("12345678901234567890123456789012345.123456789012345678901234567890"),
            ),
            (
                "-0.000000000000000000000000000001",
                t("-0.000000000000000000000000000001"),
            ),
            ("0", t("0.000000000000000000000000000000")),
        ],
    )
    .await;
    run(
        "dec10",
        &o,
        "DECIMAL(10,2)",
        "numeric(10,2)",
        &[("1.5", t("1.50")), ("-99999999.99", t("-99999999.99"))],
    )
    .await;
    run(
        "dec_int",
        &o,
        "DECIMAL(20)",
        "numeric(20,0)",
        &[("99999999999999999999", t("99999999999999999999"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_and_double_are_bit_exact() {
    let o = default();
    // FLOAT is IEEE single precision: 5.6 is stored as the float nearest 5.6, which PostgreSQL's
    // real prints as 5.6 (shortest round trip); FLT_MAX and FLT_MIN (normal) likewise.
    run(
        "float",
        &o,
        "FLOAT",
        "real",
        &[
            ("5.6", t("5.6")),
            ("3.4028234663852886e38", t("3.4028235e+38")),
            ("1.1754943508222875e-38", t("1.1754944e-38")),
            ("-0.0", t("0")),
        ],
    )
    .await;
    run(
        "double",
        &o,
        "DOUBLE",
        "double precision",
        &[
            ("0.1", t("0.1")),
            ("1.7976931348623157e308", t("1.7976931348623157e+308")),
            ("-2.2250738585072014e-308", t("-2.2250738585072014e-308")),
            ("123456789.09876543", t("123456789.09876543")),
        ],
    )
    .await;
    // FLOAT(p) with p > 24 is a DOUBLE.
    run(
        "float30",
        &o,
        "FLOAT(30)",
        "double precision",
        &[("0.1", t("0.1"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_is_boolean_or_bit_varying() {
    let o = default();
    run(
        "bit1",
        &o,
        "BIT(1)",
        "boolean",
        &[("b'1'", t("true")), ("b'0'", t("false"))],
    )
    .await;
    run(
        "bit10",
        &o,
        "BIT(10)",
        "bit varying(10)",
        &[
            ("b'1000000001'", t("1000000001")),
            ("b'1'", t("0000000001")),
        ],
    )
    .await;
    run(
        "bit64",
        &o,
        "BIT(64)",
        "bit varying(64)",
        &[
            (
                "b'1111111111111111111111111111111111111111111111111111111111111111'",
                t(&"1".repeat(64)),
            ),
            ("b'101'", t(&format!("{}101", "0".repeat(61)))),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_and_the_zero_date_policies() {
    let zero = |p: Expect| {
        [
            ("'1000-01-01'", t("1000-01-01")),
            ("'9999-12-31'", t("9999-12-31")),
            ("'0000-00-00'", p.clone()),
            ("'2015-00-21'", p.clone()),
            ("'0000-01-21'", p.clone()),
            ("'2021-02-30'", p),
            ("NULL", Null),
        ]
    };
    run(
        "date",
        &default(),
        "DATE",
        "date",
        &zero(Fails(ConvertProblem::ZeroDate)),
    )
    .await;
    let o = opts(|o| o.zero_date = ZeroDate::Null);
    run("date_null", &o, "DATE", "date", &zero(Null)).await;
    let o = opts(|o| o.zero_date = ZeroDate::NegInfinity);
    run("date_ninf", &o, "DATE", "date", &zero(t("-infinity"))).await;
    let o = opts(|o| o.zero_date = ZeroDate::try_from("1970-01-01".to_owned()).unwrap());
    run("date_fixed", &o, "DATE", "date", &zero(t("1970-01-01"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datetime_is_timestamp_without_zone() {
    run(
        "dt6",
        &default(),
        "DATETIME(6)",
        "timestamp(6) without time zone",
        &[
            (
                "'9999-12-31 23:59:59.999999'",
                t("9999-12-31 23:59:59.999999"),
            ),
            (
                "'1000-01-01 00:00:00.000001'",
                t("1000-01-01 00:00:00.000001"),
            ),
            ("'2020-02-29 12:00:00.5'", t("2020-02-29 12:00:00.5")),
            ("'0000-00-00 00:00:00'", Fails(ConvertProblem::ZeroDate)),
        ],
    )
    .await;
    let o = opts(|o| o.zero_date = ZeroDate::NegInfinity);
    run(
        "dt0",
        &o,
        "DATETIME",
        "timestamp(0) without time zone",
        &[
            ("'2020-01-01 00:00:00'", t("2020-01-01 00:00:00")),
            ("'0000-00-00 00:00:00'", t("-infinity")),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_is_an_instant_in_utc() {
    // Inserted in a +05:00 session: MySQL stores the UTC instant, five hours earlier.
    run_in(
        "ts6",
        &default(),
        "TIMESTAMP(6) NULL",
        "timestamp(6) with time zone",
        &[
            (
                "'2038-01-19 08:14:07.999999'",
                t("2038-01-19 03:14:07.999999+00"),
            ),
            ("'1970-01-01 05:00:01'", t("1970-01-01 00:00:01+00")),
            ("'2020-06-01 00:30:00'", t("2020-05-31 19:30:00+00")),
            ("'0000-00-00 00:00:00'", Fails(ConvertProblem::ZeroDate)),
            ("NULL", Null),
        ],
        "SET time_zone = '+05:00'",
    )
    .await;
    let o = opts(|o| o.zero_date = ZeroDate::Null);
    run(
        "ts_null",
        &o,
        "TIMESTAMP NULL",
        "timestamp(0) with time zone",
        &[("'0000-00-00 00:00:00'", Null)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_is_an_interval_beyond_a_day_and_negative() {
    run(
        "time6",
        &default(),
        "TIME(6)",
        "interval(6)",
        &[
            ("'838:59:59.999999'", t("838:59:59.999999")),
            ("'-838:59:59.999999'", t("-838:59:59.999999")),
            ("'-00:00:01.5'", t("-00:00:01.5")),
            ("'24:00:00'", t("24:00:00")),
            ("'00:00:00'", t("00:00:00")),
        ],
    )
    .await;
    run(
        "time0",
        &default(),
        "TIME",
        "interval(0)",
        &[("'-838:59:59'", t("-838:59:59"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn year_is_smallint() {
    run(
        "year",
        &default(),
        "YEAR",
        "smallint",
        &[
            ("0", t("0")),
            ("1901", t("1901")),
            ("2155", t("2155")),
            ("'69'", t("2069")),
            ("'70'", t("1970")),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_decode_their_charset() {
    let o = default();
    run(
        "utf8mb4",
        &o,
        "VARCHAR(10) CHARACTER SET utf8mb4",
        "character varying(10)",
        &[("'😀 é'", t("😀 é")), ("'ab  '", t("ab  ")), ("''", t(""))],
    )
    .await;
    // MySQL's CHAR strips trailing spaces when read; varchar(5) keeps what MySQL returns.
    run(
        "char",
        &o,
        "CHAR(5)",
        "character varying(5)",
        &[("'ab  '", t("ab")), ("'abcde'", t("abcde"))],
    )
    .await;
    // latin1 is Windows-1252: byte 0x80 is the euro sign, 0x81 is undefined (U+0081).
    run(
        "latin1",
        &o,
        "VARCHAR(10) CHARACTER SET latin1",
        "character varying(10)",
        &[("X'80'", t("€")), ("'é'", t("é")), ("X'81'", t("\u{81}"))],
    )
    .await;
    run(
        "text",
        &o,
        "MEDIUMTEXT",
        "text",
        &[("REPEAT('x', 70000)", t(&"x".repeat(70000)))],
    )
    .await;
    let o = opts(|o| o.string_as = StringAs::Text);
    run(
        "string_text",
        &o,
        "VARCHAR(10)",
        "text",
        &[("'abc'", t("abc"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_text_policies() {
    let rows = |p: Expect| [("X'610062'", p), ("'ab'", t("ab"))];
    run(
        "nul",
        &default(),
        "VARCHAR(10)",
        "character varying(10)",
        &rows(Fails(ConvertProblem::NulInText)),
    )
    .await;
    let o = opts(|o| o.nul_in_text = NulInText::Strip);
    run("nul_strip", &o, "TEXT", "text", &rows(t("ab"))).await;
    let o = opts(|o| o.nul_in_text = NulInText::Replace);
    run("nul_replace", &o, "TEXT", "text", &rows(t("a\u{FFFD}b"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_text_policies() {
    // An ascii column holding byte 0xC3 (stored through a binary client connection).
    let rows = |p: Expect| [("X'61C362'", p), ("'abc'", t("abc"))];
    let ty = "VARCHAR(10) CHARACTER SET ascii";
    run_in(
        "invalid",
        &default(),
        ty,
        "character varying(10)",
        &rows(Fails(ConvertProblem::InvalidText {
            charset: "ascii".into(),
        })),
        "SET NAMES binary",
    )
    .await;
    let o = opts(|o| o.invalid_text = InvalidText::Replace);
    run_in(
        "invalid_replace",
        &o,
        ty,
        "character varying(10)",
        &rows(t("a\u{FFFD}b")),
        "SET NAMES binary",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_strings_are_bytea_with_binary_padding() {
    let o = default();
    run(
        "binary",
        &o,
        "BINARY(4)",
        "bytea",
        &[("'a'", t("\\x61000000")), ("X'00FF'", t("\\x00ff0000"))],
    )
    .await;
    run(
        "varbinary",
        &o,
        "VARBINARY(10)",
        "bytea",
        &[("X''", t("\\x")), ("X'00'", t("\\x00"))],
    )
    .await;
    run(
        "blob",
        &o,
        "LONGBLOB",
        "bytea",
        &[("X'000102FF'", t("\\x000102ff"))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enum_policies() {
    let ty = "ENUM('a,b','it''s','x')";
    run(
        "enum_check",
        &default(),
        ty,
        "text",
        &[
            ("'a,b'", t("a,b")),
            ("'it''s'", t("it's")),
            // Non-strict MySQL stores an unknown label as the error value ''.
            ("'nope'", t("")),
            ("NULL", Null),
        ],
    )
    .await;
    let o = opts(|o| o.enum_as = EnumAs::PgEnum);
    run(
        "enum_pg",
        &o,
        ty,
        "copy.t_c",
        &[
            ("'it''s'", t("it's")),
            ("'nope'", Fails(ConvertProblem::EnumErrorValue)),
        ],
    )
    .await;
    let o = opts(|o| o.enum_as = EnumAs::Text);
    run("enum_text", &o, ty, "text", &[("'x'", t("x"))]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_policies() {
    let ty = "SET('a','b','c''d')";
    run(
        "set_array",
        &default(),
        ty,
        "text[]",
        &[
            ("'b,a'", t("{a,b}")),
            ("''", t("{}")),
            ("'a,b,c''d'", t("{a,b,c'd}")),
        ],
    )
    .await;
    let o = opts(|o| o.set_as = SetAs::Text);
    run("set_text", &o, ty, "text", &[("'b,a'", t("a,b"))]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_policies() {
    let doc = r#"'{"b": 1, "a": [1, 2.50, 18446744073709551616]}'"#;
    let nul = r#"'"\\u0000"'"#;
    run(
        "jsonb",
        &default(),
        "JSON",
        "jsonb",
        &[
            // jsonb orders keys (shorter first, then bytewise) and keeps numbers exactly.
            (doc, t(r#"{"a": [1, 2.50, 18446744073709551616], "b": 1}"#)),
            (r#"'"\\u00e9"'"#, t(r#""é""#)),
            (nul, Fails(ConvertProblem::NulInJson)),
        ],
    )
    .await;
    let o = opts(|o| o.json_as = JsonAs::Json);
    run(
        "json",
        &o,
        "JSON",
        "json",
        &[
            (doc, t(r#"{"b": 1, "a": [1, 2.50, 18446744073709551616]}"#)),
            (nul, t(r#""\u0000""#)),
        ],
    )
    .await;
    let o = opts(|o| o.json_as = JsonAs::Text);
    run(
        "json_text",
        &o,
        "JSON",
        "text",
        &[(r#"'{"a":1}'"#, t(r#"{"a":1}"#))],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geometry_is_wkb_keeping_the_srid() {
    // POINT(1 2): byte order 01, type 1, x = 1.0 and y = 2.0 as little-endian doubles. With
    // SRID 4326 the type word carries PostGIS's SRID flag (0x20000000) and the SRID follows.
    run(
        "geometry",
        &default(),
        "GEOMETRY",
        "bytea",
        &[
            (
                "ST_GeomFromText('POINT(1 2)')",
                t("\\x0101000000000000000000f03f0000000000000040"),
            ),
            (
                "ST_GeomFromText('POINT(1 2)', 4326)",
                t("\\x0101000020e6100000000000000000f03f0000000000000040"),
            ),
        ],
    )
    .await;
    let postgis = {
        let db = my2pg::harness::shared()
            .fresh("postgis_probe")
            .await
            .unwrap();
        let pg = pg(&db.pg_url).await;
        pg.batch_execute("CREATE EXTENSION IF NOT EXISTS postgis")
            .await
            .is_ok()
    };
    if !postgis {
        eprintln!("skipping geometry_as = \"postgis\": the PostGIS extension is not installed");
        return;
    }
    let o = opts(|o| o.geometry_as = GeometryAs::Postgis);
    run(
        "postgis",
        &o,
        "POINT",
        "geometry",
        &[(
            "ST_GeomFromText('POINT(1 2)')",
            t("0101000000000000000000F03F0000000000000040"),
        )],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_uuid_is_uuid() {
    run(
        "uuid",
        &default(),
        "UUID",
        "uuid",
        &[
            (
                "'123e4567-e89b-12d3-a456-426614174000'",
                t("123e4567-e89b-12d3-a456-426614174000"),
            ),
            (
                "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                t("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            ),
        ],
    )
    .await;
}
