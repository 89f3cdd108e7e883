//! Fuzz target: `cdc_reader::binlog::fuzzing::ddl` must never panic, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cdc_reader::binlog::fuzzing::ddl(data);
});
