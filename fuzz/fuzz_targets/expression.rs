//! The expression parser against the opDs schema: an expression or an error with a position.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pseudagg_core::Schema;

fuzz_target!(|data: &[u8]| {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| Schema::builtin("opds-person").unwrap());
    let text = String::from_utf8_lossy(data);
    let _ = pseudagg_report::expr::parse(&text, schema);
});
