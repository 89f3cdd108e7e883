//! Every decoder that reads bytes from the network or a file returns an error for bad input
//! and never panics. These property tests run the same entry points as the cargo-fuzz targets
//! (`fuzz/`), on stable Rust, in CI: random bytes, and valid events with bytes flipped,
//! inserted, removed or cut.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cdc_reader::binlog::fuzzing;
use proptest::prelude::*;

/// A valid TABLE_MAP body for `t.x (id INT, s VARCHAR(10) utf8mb4, d DECIMAL(10,2),
/// dt DATETIME(6), j JSON, e ENUM('a','b'), b BIT(12), n BLOB)` with FULL metadata.
fn table_map() -> Vec<u8> {
    let mut b = vec![1, 0, 0, 0, 0, 0, 1, 0];
    b.extend_from_slice(&[1, b't', 0, 1, b'x', 0]);
    let types = [3u8, 15, 246, 18, 245, 254, 16, 252];
    b.push(types.len() as u8);
    b.extend_from_slice(&types);
    let meta = [40u8, 0, 10, 2, 6, 4, 247, 1, 4, 1, 2];
    b.push(meta.len() as u8);
    b.extend_from_slice(&meta);
    b.push(0xff); // all nullable
    // SIGNEDNESS for INT and DECIMAL: both signed.
    b.extend_from_slice(&[1, 1, 0]);
    // COLUMN_NAME
    let names: Vec<&[u8]> = vec![b"id", b"s", b"d", b"dt", b"j", b"e", b"b", b"n"];
    let mut v = Vec::new();
    for n in &names {
        v.push(n.len() as u8);
        v.extend_from_slice(n);
    }
    b.push(4);
    b.push(v.len() as u8);
    b.extend_from_slice(&v);
    // ENUM_STR_VALUE
    b.extend_from_slice(&[6, 5, 2, 1, b'a', 1, b'b']);
    // DEFAULT_CHARSET utf8mb4_general_ci (45)
    b.extend_from_slice(&[2, 1, 45]);
    b
}

/// A WRITE_ROWS_V1 body with one row for [`table_map`].
fn rows() -> Vec<u8> {
    let mut b = vec![1, 0, 0, 0, 0, 0, 1, 0, 8, 0xff, 0x00];
    b.extend_from_slice(&7i32.to_le_bytes());
    b.extend_from_slice(&[3, b'a', b'b', b'c']);
    b.extend_from_slice(&[0x80, 0x00, 0x00, 0x0c, 0x32]); // 12.50
    b.extend_from_slice(&[0x99, 0x9a, 0xb8, 0xf7, 0xaa, 0, 0, 1]); // datetime2(6)
    b.extend_from_slice(&[2, 0, 0, 0, 0x04, 0x01]); // JSON true
    b.push(2); // enum 'b'
    b.extend_from_slice(&[0x0a, 0xbc]); // bit(12)
    b.extend_from_slice(&[3, 0, 1, 2, 3]); // blob
    b
}

fn framed(tm: &[u8], rows: &[u8], kind: u8) -> Vec<u8> {
    let mut d = vec![kind, tm.len() as u8, (tm.len() >> 8) as u8];
    d.extend_from_slice(tm);
    d.extend_from_slice(rows);
    d
}

#[test]
fn the_seed_event_decodes() {
    use cdc_reader::binlog::rows::{decode_rows, parse_rows_event};
    use cdc_reader::binlog::tablemap::{StaticCollations, merged_schema, parse_table_map};
    let map = parse_table_map(&table_map()).unwrap();
    let schema = merged_schema(&map, None, &StaticCollations).unwrap();
    let rows_body = rows();
    let ev = parse_rows_event(23, &rows_body).unwrap();
    let decoded = decode_rows(&ev, &map, &schema).unwrap();
    assert_eq!(decoded.len(), 1);
    let after = decoded[0].1.as_ref().unwrap();
    assert_eq!(after.0[0], schemas::Value::Int(7));
    assert_eq!(after.0[1], schemas::Value::Text("abc".into()));
    assert_eq!(after.0[5], schemas::Value::Enum("b".into()));
    assert_eq!(after.0[4], schemas::Value::Json("true".into()));
}

/// Found by `random_bytes_never_panic`: binary JSON holding an opaque DECIMAL of precision 0
/// and scale 1 made mysql_common's decimal size computation underflow.
#[test]
fn a_decimal_with_scale_above_precision_is_refused_not_a_panic() {
    let mut data = vec![15, 246, 2, 0, 1];
    data.resize(78, 0);
    fuzzing::binlog_file(&data);
    fuzzing::table_map_and_rows(&data);
    fuzzing::maria_events(&data);
    fuzzing::jsonb(&data);
    fuzzing::ddl(&data);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Cut(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Cut),
    ]
}

fn apply(mut data: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if data.is_empty() {
            break;
        }
        let n = data.len();
        match *m {
            Mutation::Flip(i, b) => data[i % n] ^= b.max(1),
            Mutation::Insert(i, b) => data.insert(i % (n + 1), b),
            Mutation::Remove(i) => {
                data.remove(i % n);
            }
            Mutation::Cut(i) => data.truncate(i % n),
        }
    }
    data
}

proptest! {
    // The long runs belong to cargo-fuzz (see fuzz/README.md); CI runs a couple of thousand.
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzzing::binlog_file(&data);
        fuzzing::table_map_and_rows(&data);
        fuzzing::maria_events(&data);
        fuzzing::jsonb(&data);
        fuzzing::ddl(&data);
    }

    #[test]
    fn mutated_row_events_never_panic(
        kind in 0u8..13,
        muts in proptest::collection::vec(mutation(), 1..6),
        target_rows in any::<bool>(),
    ) {
        let (tm, rw) = if target_rows { (table_map(), apply(rows(), &muts)) } else { (apply(table_map(), &muts), rows()) };
        fuzzing::table_map_and_rows(&framed(&tm, &rw, kind));
    }

    #[test]
    fn mutated_json_never_panics(muts in proptest::collection::vec(mutation(), 1..6)) {
        // {"a": [1, 2.5, "x"], "b": null} in MySQL binary JSON (small object).
        let seed = hex_seed();
        fuzzing::jsonb(&apply(seed, &muts));
    }
}

fn hex_seed() -> Vec<u8> {
    let s = "0002002900120001001300010002001d0001006162020017000500010005000200050008000c000078000b000000000000000040";
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
