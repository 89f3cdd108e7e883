//! Entry points that take arbitrary bytes, shared by the cargo-fuzz targets in `fuzz/` and the
//! robustness property tests that CI runs on stable Rust. Each must return (any result) for
//! every input and never panic, loop forever or allocate without bound.

use super::event::{maria_decompress, parse_maria_gtid, parse_maria_gtid_list, parse_query};
use super::file::decode_bytes;
use super::json::jsonb_to_text;
use super::rows::{decode_rows, parse_rows_event};
use super::tablemap::{StaticCollations, merged_schema, parse_table_map};

/// A whole binlog file (the magic header is added when missing, so the fuzzer reaches events).
pub fn binlog_file(data: &[u8]) {
    if data.starts_with(&super::file::MAGIC) {
        let _ = decode_bytes("fuzz", data);
    } else {
        let mut with = super::file::MAGIC.to_vec();
        with.extend_from_slice(data);
        let _ = decode_bytes("fuzz", &with);
    }
}

/// A table map followed by a rows event: the first byte picks the rows event type, the next
/// two give the table map's length, then the table map body, then the rows body.
pub fn table_map_and_rows(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let kinds = [23u8, 24, 25, 30, 31, 32, 39, 166, 167, 168, 169, 170, 171];
    let kind = kinds[usize::from(data[0]) % kinds.len()];
    let split = (usize::from(data[1]) | (usize::from(data[2]) << 8)).min(data.len() - 3);
    let (tm, rows) = data[3..].split_at(split);
    let Ok(map) = parse_table_map(tm) else { return };
    let Ok(schema) = merged_schema(&map, None, &StaticCollations) else {
        return;
    };
    let Ok(ev) = parse_rows_event(kind, rows) else {
        return;
    };
    let _ = decode_rows(&ev, &map, &schema);
}

/// MariaDB-specific events and compression.
pub fn maria_events(data: &[u8]) {
    let _ = parse_maria_gtid(data, 1);
    let _ = parse_maria_gtid_list(data);
    let _ = maria_decompress(data);
    let _ = parse_query(data, false);
    let _ = parse_query(data, true);
}

/// MySQL binary JSON.
pub fn jsonb(data: &[u8]) {
    let _ = jsonb_to_text(data);
}

/// DDL statements (classification).
pub fn ddl(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::ddl::classify(sql, "db");
}
