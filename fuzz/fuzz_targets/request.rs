//! A Traeger's request: accepted or refused with its problems, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pseudagg_core::Month;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = pseudagg_governance::Request::from_toml(
        &text,
        "fuzz.toml".as_ref(),
        Month::new(2025, 3).unwrap(),
    );
});
