//! The fuzz corpora as regression tests: every input the fuzzers kept (`fuzz/corpus/<target>/`)
//! and every crash they ever found (`fuzz/regressions/<target>/`) goes through the same code as
//! the fuzz target, on stable Rust, in every CI run. A panic fails the test.

use std::path::{Path, PathBuf};

use pseudagg_core::{Month, Schema};
use pseudagg_io::{ExtractReader, ReadOptions};

const FUZZ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz");

fn inputs(target: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let d = Path::new(FUZZ).join(dir).join(target);
        if let Ok(entries) = std::fs::read_dir(&d) {
            out.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no corpus for {target}");
    out
}

#[test]
fn csv_extract_corpus() {
    let schema = Schema::builtin("verbis-vkb").unwrap();
    let month = Month::new(2025, 3).unwrap();
    for path in inputs("csv_extract") {
        // The reader takes files: the corpus files are files already.
        if let Ok(mut reader) = ExtractReader::open(&path, &schema, ReadOptions::new(month)) {
            while let Ok(Some(_)) = reader.next_batch() {}
            let _ = reader.finish();
        }
    }
}

#[test]
fn definition_expression_and_request_corpora() {
    let opds = Schema::builtin("opds-person").unwrap();
    let month = Month::new(2025, 3).unwrap();
    let text = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    for p in inputs("pipeline_definition") {
        let _ = pseudagg_pipeline::Plan::from_toml(&text(&p), "fuzz.toml".as_ref());
    }
    for p in inputs("report_definition") {
        let _ = pseudagg_report::ReportPlan::from_toml(&text(&p), "fuzz.toml".as_ref());
    }
    for p in inputs("expression") {
        let _ = pseudagg_report::expr::parse(&text(&p), &opds);
    }
    let register = pseudagg_governance::TraegerRegister::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/traeger-register.toml"),
    )
    .unwrap();
    for p in inputs("request") {
        let _ = pseudagg_governance::Request::from_toml(
            &text(&p),
            "fuzz.toml".as_ref(),
            month,
            &register,
        );
    }
}
