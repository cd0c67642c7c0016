//! Reading a VerBIS CSV extract with full schema validation: any bytes give batches or an error,
//! never a panic or a hang.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pseudagg_core::{Month, Schema};
use pseudagg_io::{ExtractReader, ReadOptions};

fuzz_target!(|data: &[u8]| {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| Schema::builtin("verbis-vkb").unwrap());
    let dir = std::env::temp_dir();
    let path = dir.join(format!("pseudagg-fuzz-{}.csv", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let month = Month::new(2025, 3).unwrap();
    if let Ok(mut reader) = ExtractReader::open(&path, schema, ReadOptions::new(month)) {
        while let Ok(Some(_)) = reader.next_batch() {}
        let _ = reader.finish();
    }
});
