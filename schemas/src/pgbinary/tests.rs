//! Wire-format vectors from PostgreSQL's `*send` functions, and round trips.

use proptest::prelude::*;

use super::*;
use crate::value::Decimal;

fn num(s: &str) -> PgValue {
    PgValue::Numeric(Numeric::Value(Decimal::parse(s).unwrap()))
}

fn bytes(v: &PgValue) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(v, &mut out).unwrap();
    out
}

#[test]
fn numeric_vectors() {
    // 12345.6: digits [1, 2345, 6000], weight 1, dscale 1.
    assert_eq!(
        bytes(&num("12345.6")),
        vec![0, 3, 0, 1, 0, 0, 0, 1, 0, 1, 0x09, 0x29, 0x17, 0x70]
    );
    // -0.0001: one digit 1 at weight -1, negative, dscale 4.
    assert_eq!(
        bytes(&num("-0.0001")),
        vec![0, 1, 0xFF, 0xFF, 0x40, 0, 0, 4, 0, 1]
    );
    // 0.00: no digits, dscale 2.
    assert_eq!(bytes(&num("0.00")), vec![0, 0, 0, 0, 0, 0, 0, 2]);
    // 10000: one digit 1 at weight 1 (trailing zero group dropped).
    assert_eq!(bytes(&num("10000")), vec![0, 1, 0, 1, 0, 0, 0, 0, 0, 1]);
}

#[test]
fn numeric_round_trips_keep_scale() {
    for s in [
        "0",
        "0.00",
        "1.50",
        "-1.5",
        "10000",
        "0.0001",
        "99999999999999999999",
        "18446744073709551615",
        "12345678901234567890123456789012345.123456789012345678901234567890",
        "-0.100000000000000000000000000000",
    ] {
        let v = num(s);
        let ty = PgType::Numeric {
            precision: 65,
            scale: 30,
        };
        assert_eq!(decode_value(&ty, Some(&bytes(&v))).unwrap(), v, "{s}");
    }
}

#[test]
fn numerics_wider_than_mysql_decimal_round_trip() {
    // More base-10000 groups than the encoder keeps on the stack (32).
    let long = format!("-{}.{}", "9".repeat(150), "1234567890".repeat(5));
    for s in [
        long.as_str(),
        "1000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001",
    ] {
        let v = num(s);
        let ty = PgType::Numeric {
            precision: 1000,
            scale: 50,
        };
        assert_eq!(decode_value(&ty, Some(&bytes(&v))).unwrap(), v, "{s}");
    }
}

#[test]
fn other_vectors() {
    assert_eq!(
        bytes(&PgValue::Interval {
            months: 0,
            days: 0,
            micros: -1
        }),
        [vec![0xFF; 8], vec![0; 8]].concat()
    );
    assert_eq!(bytes(&PgValue::Jsonb("{}".into())), vec![1, b'{', b'}']);
    assert_eq!(
        bytes(&PgValue::BitVarying {
            len: 3,
            bytes: vec![0xFF]
        }),
        vec![0, 0, 0, 3, 0b1110_0000]
    );
    assert_eq!(
        bytes(&PgValue::TextArray(vec![])),
        vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25]
    );
    assert_eq!(
        bytes(&PgValue::TextArray(vec!["a".into()])),
        vec![
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, b'a'
        ]
    );
}

#[test]
fn copy_framing_round_trips() {
    let types = [
        PgType::Integer,
        PgType::Text,
        PgType::Timestamptz { precision: 6 },
    ];
    let rows = vec![
        vec![
            PgValue::Int4(1),
            PgValue::Text("a".into()),
            PgValue::Timestamptz(5),
        ],
        vec![PgValue::Int4(2), PgValue::Null, PgValue::Null],
    ];
    let mut out = Vec::new();
    copy_header(&mut out);
    for r in &rows {
        copy_row(r, &mut out).unwrap();
    }
    copy_trailer(&mut out);
    assert_eq!(&out[..11], COPY_SIGNATURE);
    assert_eq!(decode_copy(&types, &out).unwrap(), rows);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(decode_value(&PgType::Integer, Some(&[1, 2])).is_err());
    assert!(
        decode_value(
            &PgType::Numeric {
                precision: 5,
                scale: 0
            },
            Some(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10])
        )
        .is_err()
    );
    assert!(decode_value(&PgType::Text, Some(&[0xFF])).is_err());
    assert!(decode_value(&PgType::Boolean, Some(&[2])).is_err());
}

fn decimal_text() -> impl Strategy<Value = String> {
    ("-?[0-9]{1,40}", proptest::option::of("[0-9]{1,40}")).prop_map(|(i, f)| match f {
        Some(f) => format!("{i}.{f}"),
        None => i,
    })
}

fn value_and_type() -> impl Strategy<Value = (PgValue, PgType)> {
    prop_oneof![
        any::<bool>().prop_map(|b| (PgValue::Bool(b), PgType::Boolean)),
        any::<i16>().prop_map(|i| (PgValue::Int2(i), PgType::SmallInt)),
        any::<i32>().prop_map(|i| (PgValue::Int4(i), PgType::Integer)),
        any::<i64>().prop_map(|i| (PgValue::Int8(i), PgType::BigInt)),
        any::<f32>().prop_map(|f| (PgValue::Float4(f), PgType::Real)),
        any::<f64>().prop_map(|f| (PgValue::Float8(f), PgType::Double)),
        decimal_text().prop_map(|d| (
            num(&d),
            PgType::Numeric {
                precision: 80,
                scale: 40
            }
        )),
        "[^\u{0}]*".prop_map(|s| (PgValue::Text(s), PgType::Text)),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| (PgValue::Bytea(b), PgType::Bytea)),
        any::<i32>().prop_map(|d| (PgValue::Date(d), PgType::Date)),
        any::<i64>().prop_map(|t| (PgValue::Timestamp(t), PgType::Timestamp { precision: 6 })),
        any::<i64>().prop_map(|t| (
            PgValue::Timestamptz(t),
            PgType::Timestamptz { precision: 6 }
        )),
        (any::<i32>(), any::<i32>(), any::<i64>()).prop_map(|(months, days, micros)| (
            PgValue::Interval {
                months,
                days,
                micros
            },
            PgType::Interval { precision: 6 }
        )),
        (1u32..=64, any::<u64>()).prop_map(|(len, bits)| (
            PgValue::BitVarying {
                len,
                bytes: crate::pgvalue::bit_bytes(bits, len)
            },
            PgType::BitVarying { len: 64 }
        )),
        proptest::collection::vec("[^\u{0}]*", 0..5)
            .prop_map(|v| (PgValue::TextArray(v), PgType::TextArray)),
        any::<[u8; 16]>().prop_map(|u| (PgValue::Uuid(u), PgType::Uuid)),
    ]
}

proptest! {
    #[test]
    fn every_value_round_trips((v, ty) in value_and_type()) {
        let decoded = decode_value(&ty, Some(&bytes(&v))).unwrap();
        match (&v, &decoded) {
            (PgValue::Float4(a), PgValue::Float4(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
            (PgValue::Float8(a), PgValue::Float8(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
            _ => prop_assert_eq!(decoded, v),
        }
    }
}

proptest! {
    /// The integer fast path writes the bytes of the decimal text path.
    #[test]
    fn integer_numerics_match_their_decimal_text(i in any::<i64>(), u in any::<u64>()) {
        for (negative, abs, text) in [
            (i < 0, i.unsigned_abs(), i.to_string()),
            (false, u, u.to_string()),
            (false, u % 100_000_000, (u % 100_000_000).to_string()),
        ] {
            let mut fast = Vec::new();
            encode_integer_numeric(negative, abs, &mut fast);
            let mut slow = Vec::new();
            encode_decimal(&Decimal::parse(&text).unwrap(), &mut slow).unwrap();
            prop_assert_eq!(fast, slow, "{}", text);
        }
    }
}

#[test]
fn integer_numeric_edges() {
    for (negative, abs, text) in [
        (false, 0, "0"),
        (false, 10_000, "10000"),
        (false, u64::MAX, "18446744073709551615"),
        (true, 1 << 63, "-9223372036854775808"),
        (true, 100_000_000, "-100000000"),
    ] {
        let mut fast = Vec::new();
        encode_integer_numeric(negative, abs, &mut fast);
        assert_eq!(fast, bytes(&num(text)), "{text}");
    }
}
