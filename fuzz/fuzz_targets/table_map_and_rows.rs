//! Fuzz target: `cdc_reader::binlog::fuzzing::table_map_and_rows` must never panic, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cdc_reader::binlog::fuzzing::table_map_and_rows(data);
});
