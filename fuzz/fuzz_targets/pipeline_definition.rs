//! Parsing and checking a pipeline definition: any text gives a plan or a list of problems.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = pseudagg_pipeline::Plan::from_toml(&text, "fuzz.toml".as_ref());
});
