//! A Traeger's request: accepted or refused with its problems, whatever the text.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pseudagg_core::Month;
use pseudagg_governance::TraegerRegister;

fuzz_target!(|data: &[u8]| {
    static REGISTER: OnceLock<TraegerRegister> = OnceLock::new();
    let register = REGISTER.get_or_init(|| {
        TraegerRegister::from_toml(
            include_str!("../../pipelines/traeger-register.toml"),
            "traeger.toml".as_ref(),
        )
        .unwrap()
    });
    let text = String::from_utf8_lossy(data);
    let _ = pseudagg_governance::Request::from_toml(
        &text,
        "fuzz.toml".as_ref(),
        Month::new(2025, 3).unwrap(),
        register,
    );
});
