//! Canonical bytes of a [`PgValue`] for hashing: two values that PostgreSQL considers equal
//! encode to the same bytes, and two that it considers different encode differently.
//!
//! The verifier hashes the source row (converted through the mapping) and the target row (read
//! back in binary) and compares digests, so the encoding must not depend on *how* a value was
//! spelled. Decisions, each matching PostgreSQL's equality for the type:
//!
//! - **Numbers** (`smallint` … `numeric`): one form for all integer and numeric types, the
//!   decimal value with trailing fraction zeros removed, so `1.50` = `1.5` = `Int4(1)`+`.5`…
//!   exactly as `numeric_eq` ignores scale. `NaN`, `±Infinity` have their own codes.
//! - **Floats**: `real` is widened to `double` (exact), `-0.0` is encoded as `0.0` (PostgreSQL's
//!   `float8eq` says `-0 = 0`, and MySQL prints both as `0`), every NaN as one NaN (PostgreSQL
//!   sorts all NaNs equal). Floats are kept apart from numerics: a float column's values are
//!   binary fractions and never compared with decimals.
//! - **Text**, varchar and enum labels: the UTF-8 bytes (PostgreSQL's deterministic collations
//!   compare bytes after equality of the collation key, i.e. byte equality).
//! - **JSON** (`json` and `jsonb`): the parsed value, object keys sorted by their UTF-8 bytes
//!   with duplicate keys resolved as `jsonb` does (the last one wins), numbers by value as for
//!   `numeric` (`1.0` = `1` = `1e0`), strings unescaped; whitespace and key order vanish.
//!   Text that does not parse as JSON falls back to its bytes under a distinct tag.
//! - **Intervals**: PostgreSQL compares intervals by their span with a month of 30 days and a
//!   day of 24 hours (`interval_cmp`), so `1 day` = `24:00:00`; the encoding is that span in µs.
//! - **Dates and timestamps**: the PostgreSQL integer (days or µs since 2000-01-01).
//!   `timestamp` and `timestamptz` use different tags: they are different types.
//! - **bit varying**: the length and the bits, padding bits cleared.
//!
//! Every encoding starts with a one-byte type tag and carries its own length, so the encoding
//! of a row — the concatenation of its values' encodings after the value count — is
//! unambiguous, and [`row_digest`] is SHA-256 over it.

use sha2::{Digest, Sha256};

use crate::pgvalue::{Numeric, PgValue};

const T_NULL: u8 = 0;
const T_BOOL: u8 = 1;
const T_NUMBER: u8 = 2;
const T_FLOAT: u8 = 3;
const T_TEXT: u8 = 4;
const T_BYTES: u8 = 5;
const T_DATE: u8 = 6;
const T_TIMESTAMP: u8 = 7;
const T_TIMESTAMPTZ: u8 = 8;
const T_INTERVAL: u8 = 9;
const T_BITS: u8 = 10;
const T_JSON: u8 = 11;
const T_JSON_INVALID: u8 = 12;
const T_ARRAY: u8 = 13;
const T_UUID: u8 = 14;

const J_NULL: u8 = 0;
const J_FALSE: u8 = 1;
const J_TRUE: u8 = 2;
const J_NUMBER: u8 = 3;
const J_STRING: u8 = 4;
const J_ARRAY: u8 = 5;
const J_OBJECT: u8 = 6;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_be_bytes());
    out.extend_from_slice(b);
}

/// Appends the canonical encoding of `v`.
pub fn encode(v: &PgValue, out: &mut Vec<u8>) {
    match v {
        PgValue::Null => out.push(T_NULL),
        PgValue::Bool(b) => {
            out.push(T_BOOL);
            out.push(u8::from(*b));
        }
        PgValue::Int2(i) => integer(out, i64::from(*i)),
        PgValue::Int4(i) => integer(out, i64::from(*i)),
        PgValue::Int8(i) => integer(out, *i),
        PgValue::Numeric(Numeric::Value(d)) => number(out, d.as_str()),
        PgValue::Numeric(special) => {
            out.push(T_NUMBER);
            put_bytes(
                out,
                match special {
                    Numeric::NaN => b"NaN",
                    Numeric::Infinity => b"+Inf",
                    _ => b"-Inf",
                },
            );
        }
        PgValue::Float4(f) => float(out, f64::from(*f)),
        PgValue::Float8(f) => float(out, *f),
        PgValue::Text(s) | PgValue::Enum(s) => {
            out.push(T_TEXT);
            put_bytes(out, s.as_bytes());
        }
        PgValue::Bytea(b) | PgValue::Geometry(b) => {
            out.push(T_BYTES);
            put_bytes(out, b);
        }
        PgValue::Date(d) => {
            out.push(T_DATE);
            out.extend_from_slice(&d.to_be_bytes());
        }
        PgValue::Timestamp(us) => {
            out.push(T_TIMESTAMP);
            out.extend_from_slice(&us.to_be_bytes());
        }
        PgValue::Timestamptz(us) => {
            out.push(T_TIMESTAMPTZ);
            out.extend_from_slice(&us.to_be_bytes());
        }
        PgValue::Interval {
            months,
            days,
            micros,
        } => {
            const DAY: i128 = 86_400_000_000;
            let span =
                i128::from(*months) * 30 * DAY + i128::from(*days) * DAY + i128::from(*micros);
            out.push(T_INTERVAL);
            out.extend_from_slice(&span.to_be_bytes());
        }
        PgValue::BitVarying { len, bytes } => {
            out.push(T_BITS);
            out.extend_from_slice(&len.to_be_bytes());
            let n = len.div_ceil(8) as usize;
            let mut b = bytes.clone();
            b.resize(n, 0);
            if len % 8 != 0
                && let Some(last) = b.last_mut()
            {
                *last &= 0xFFu8 << (8 - len % 8);
            }
            out.extend_from_slice(&b);
        }
        PgValue::Json(s) | PgValue::Jsonb(s) => {
            match serde_json::from_str::<serde_json::Value>(s) {
                Ok(j) => {
                    out.push(T_JSON);
                    json(out, &j);
                }
                Err(_) => {
                    out.push(T_JSON_INVALID);
                    put_bytes(out, s.as_bytes());
                }
            }
        }
        PgValue::TextArray(items) => {
            out.push(T_ARRAY);
            out.extend_from_slice(&(items.len() as u64).to_be_bytes());
            for s in items {
                put_bytes(out, s.as_bytes());
            }
        }
        PgValue::Uuid(u) => {
            out.push(T_UUID);
            out.extend_from_slice(u);
        }
    }
}

/// The canonical encoding of one value.
pub fn canonical_bytes(v: &PgValue) -> Vec<u8> {
    let mut out = Vec::new();
    encode(v, &mut out);
    out
}

/// SHA-256 of a row's canonical encoding (value count, then each value).
pub fn row_digest(values: &[PgValue]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(64 * values.len());
    buf.extend_from_slice(&(values.len() as u64).to_be_bytes());
    for v in values {
        encode(v, &mut buf);
    }
    Sha256::digest(&buf).into()
}

fn float(out: &mut Vec<u8>, f: f64) {
    out.push(T_FLOAT);
    let f = if f == 0.0 {
        0.0
    } else if f.is_nan() {
        f64::NAN
    } else {
        f
    };
    out.extend_from_slice(&f.to_bits().to_be_bytes());
}

/// [`number`] of an integer without formatting it through a `String` (the verifier encodes
/// every integer of every row): the same bytes as `canonical_number(&v.to_string())`, which
/// the property tests check.
fn integer(out: &mut Vec<u8>, v: i64) {
    out.push(T_NUMBER);
    if v == 0 {
        put_bytes(out, b"0");
        return;
    }
    // Decimal digits, least significant first.
    let mut rev = [0u8; 20];
    let mut n = 0;
    let mut u = v.unsigned_abs();
    while u > 0 {
        rev[n] = b'0' + (u % 10) as u8;
        u /= 10;
        n += 1;
    }
    let zeros = rev.iter().take_while(|&&d| d == b'0').count();
    // [-]0.DIGITSeN: at most 1 + 2 + 19 + 1 + 2 bytes.
    let mut text = [0u8; 32];
    let mut len = 0;
    let mut push = |b: u8| {
        text[len] = b;
        len += 1;
    };
    if v < 0 {
        push(b'-');
    }
    push(b'0');
    push(b'.');
    for &d in rev[zeros..n].iter().rev() {
        push(d);
    }
    push(b'e');
    if n >= 10 {
        push(b'0' + (n / 10) as u8);
    }
    push(b'0' + (n % 10) as u8);
    put_bytes(out, &text[..len]);
}

fn number(out: &mut Vec<u8>, text: &str) {
    out.push(T_NUMBER);
    put_bytes(out, canonical_number(text).as_bytes());
}

/// The canonical spelling of a decimal number given as `[-]digits[.digits][e[+-]digits]`:
/// `0`, or `[-]0.DIGITSeEXP` with no leading or trailing zero in DIGITS (value =
/// 0.DIGITS × 10^EXP). Text that is not such a number is returned unchanged (it then only
/// equals itself).
pub fn canonical_number(text: &str) -> String {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, "0"),
    };
    let Ok(exp) = exp.parse::<i64>() else {
        return text.to_owned();
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return text.to_owned();
    }
    // value = 0.(int frac) × 10^(exp + len(int))
    let all = format!("{int}{frac}");
    let lead = all.bytes().take_while(|&b| b == b'0').count();
    let digits = all[lead..].trim_end_matches('0');
    if digits.is_empty() {
        return "0".to_owned();
    }
    let point = exp
        .saturating_add(int.len() as i64)
        .saturating_sub(lead as i64);
    format!("{}0.{digits}e{point}", if negative { "-" } else { "" })
}

fn json(out: &mut Vec<u8>, v: &serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Null => out.push(J_NULL),
        J::Bool(false) => out.push(J_FALSE),
        J::Bool(true) => out.push(J_TRUE),
        J::Number(n) => {
            out.push(J_NUMBER);
            put_bytes(out, canonical_number(&n.to_string()).as_bytes());
        }
        J::String(s) => {
            out.push(J_STRING);
            put_bytes(out, s.as_bytes());
        }
        J::Array(items) => {
            out.push(J_ARRAY);
            out.extend_from_slice(&(items.len() as u64).to_be_bytes());
            for i in items {
                json(out, i);
            }
        }
        J::Object(map) => {
            // serde_json keeps the last value of a duplicate key, as jsonb does.
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(J_OBJECT);
            out.extend_from_slice(&(entries.len() as u64).to_be_bytes());
            for (k, v) in entries {
                put_bytes(out, k.as_bytes());
                json(out, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::value::Decimal;

    fn num(s: &str) -> PgValue {
        PgValue::Numeric(Numeric::Value(Decimal::parse(s).unwrap()))
    }

    #[test]
    fn numerics_compare_by_value() {
        assert_eq!(canonical_bytes(&num("1.50")), canonical_bytes(&num("1.5")));
        assert_eq!(
            canonical_bytes(&num("2.000")),
            canonical_bytes(&PgValue::Int4(2))
        );
        assert_eq!(
            canonical_bytes(&num("-0.00")),
            canonical_bytes(&PgValue::Int8(0))
        );
        assert_ne!(canonical_bytes(&num("1.5")), canonical_bytes(&num("15")));
        assert_ne!(
            canonical_bytes(&num("0.015")),
            canonical_bytes(&num("0.15"))
        );
        assert_eq!(canonical_number("100"), "0.1e3");
        assert_eq!(canonical_number("1e2"), "0.1e3");
        assert_eq!(canonical_number("0.00120"), "0.12e-2");
        assert_eq!(canonical_number("-12.5E-1"), "-0.125e1");
    }

    #[test]
    fn integer_edges_encode_as_their_decimal_text() {
        for v in [
            0,
            1,
            -1,
            10,
            -100,
            1_000_000,
            i64::MAX,
            i64::MIN,
            120,
            9_000_000_000_000_000_000,
        ] {
            let mut slow = Vec::new();
            number(&mut slow, &v.to_string());
            assert_eq!(canonical_bytes(&PgValue::Int8(v)), slow, "{v}");
        }
    }

    #[test]
    fn float_zero_sign_and_nan_are_one_value() {
        assert_eq!(
            canonical_bytes(&PgValue::Float8(-0.0)),
            canonical_bytes(&PgValue::Float8(0.0))
        );
        assert_eq!(
            canonical_bytes(&PgValue::Float8(f64::from_bits(0x7ff8_0000_0000_0001))),
            canonical_bytes(&PgValue::Float8(f64::NAN))
        );
        assert_eq!(
            canonical_bytes(&PgValue::Float4(5.6)),
            canonical_bytes(&PgValue::Float8(f64::from(5.6f32)))
        );
        assert_ne!(
            canonical_bytes(&PgValue::Float8(5.6)),
            canonical_bytes(&PgValue::Float4(5.6))
        );
    }

    #[test]
    fn json_ignores_spelling_but_not_content() {
        let a = PgValue::Jsonb(r#"{"b": [1, 2.0], "a": {"y": null, "x": "é"}}"#.into());
        let b = PgValue::Json(r#"{"a":{"x":"\u00e9","y":null},"b":[1e0,2]}"#.into());
        assert_eq!(canonical_bytes(&a), canonical_bytes(&b));
        let big = PgValue::Jsonb("18446744073709551616".into());
        let big2 = PgValue::Jsonb("1.8446744073709551616e19".into());
        assert_eq!(canonical_bytes(&big), canonical_bytes(&big2));
        assert_ne!(
            canonical_bytes(&PgValue::Jsonb("[1,2]".into())),
            canonical_bytes(&PgValue::Jsonb("[2,1]".into()))
        );
        assert_ne!(
            canonical_bytes(&PgValue::Jsonb("\"1\"".into())),
            canonical_bytes(&PgValue::Jsonb("1".into()))
        );
        // Duplicate keys: the last wins, as in jsonb.
        assert_eq!(
            canonical_bytes(&PgValue::Json(r#"{"a":1,"a":2}"#.into())),
            canonical_bytes(&PgValue::Jsonb(r#"{"a":2}"#.into()))
        );
    }

    #[test]
    fn intervals_compare_by_span() {
        let day = PgValue::Interval {
            months: 0,
            days: 1,
            micros: 0,
        };
        let hours = PgValue::Interval {
            months: 0,
            days: 0,
            micros: 86_400_000_000,
        };
        assert_eq!(canonical_bytes(&day), canonical_bytes(&hours));
    }

    #[test]
    fn rows_are_framed() {
        let a = [PgValue::Text("ab".into()), PgValue::Text("c".into())];
        let b = [PgValue::Text("a".into()), PgValue::Text("bc".into())];
        assert_ne!(row_digest(&a), row_digest(&b));
        assert_ne!(row_digest(&[PgValue::Null]), row_digest(&[]));
    }

    fn decimal_text() -> impl Strategy<Value = String> {
        ("-?[0-9]{1,30}", proptest::option::of("[0-9]{1,30}")).prop_map(|(i, f)| match f {
            Some(f) => format!("{i}.{f}"),
            None => i,
        })
    }

    proptest! {
        #[test]
        fn trailing_zeros_never_change_the_hash(d in decimal_text(), zeros in 0usize..5) {
            let padded = if d.contains('.') {
                format!("{d}{}", "0".repeat(zeros))
            } else if zeros > 0 {
                format!("{d}.{}", "0".repeat(zeros))
            } else {
                d.clone()
            };
            prop_assert_eq!(canonical_bytes(&num(&d)), canonical_bytes(&num(&padded)));
        }

        #[test]
        fn distinct_integers_hash_apart(a in any::<i64>(), b in any::<i64>()) {
            prop_assume!(a != b);
            prop_assert_ne!(row_digest(&[PgValue::Int8(a)]), row_digest(&[PgValue::Int8(b)]));
            prop_assert_eq!(
                canonical_bytes(&PgValue::Int8(a)),
                canonical_bytes(&num(&a.to_string()))
            );
        }

        #[test]
        fn integer_fast_path_is_the_decimal_encoding(a in any::<i64>(), b in any::<i32>(), c in any::<i16>()) {
            for (v, text) in [
                (PgValue::Int8(a), a.to_string()),
                (PgValue::Int4(b), b.to_string()),
                (PgValue::Int2(c), c.to_string()),
            ] {
                let mut slow = Vec::new();
                number(&mut slow, &text);
                prop_assert_eq!(canonical_bytes(&v), slow);
            }
        }

        #[test]
        fn distinct_decimals_hash_apart(a in decimal_text(), b in decimal_text()) {
            let (da, db) = (Decimal::parse(&a).unwrap(), Decimal::parse(&b).unwrap());
            prop_assume!(da.normalized() != db.normalized());
            prop_assert_ne!(canonical_bytes(&num(&a)), canonical_bytes(&num(&b)));
        }

        #[test]
        fn json_key_order_never_matters(keys in proptest::collection::btree_map("[a-z]{1,4}", any::<i32>(), 0..8)) {
            let forward: Vec<String> = keys.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            let backward: Vec<String> = keys.iter().rev().map(|(k, v)| format!("\"{k}\":{v}.0")).collect();
            let a = PgValue::Jsonb(format!("{{{}}}", forward.join(", ")));
            let b = PgValue::Json(format!("{{{}}}", backward.join(",")));
            prop_assert_eq!(canonical_bytes(&a), canonical_bytes(&b));
        }

        #[test]
        fn distinct_texts_hash_apart(a in ".*", b in ".*") {
            prop_assume!(a != b);
            prop_assert_ne!(
                row_digest(&[PgValue::Text(a)]),
                row_digest(&[PgValue::Text(b)])
            );
        }
    }
}
