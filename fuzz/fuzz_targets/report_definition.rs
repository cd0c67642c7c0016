//! Parsing and checking a report definition (with its expressions): a plan or problems.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = pseudagg_report::ReportPlan::from_toml(&text, "fuzz.toml".as_ref());
});
