//! The canary test: every identifier, personal, staff and free-text field of the inputs carries a
//! unique canary; every command runs on them, on good input and on each kind of broken input, at
//! the most verbose log level with `RUST_BACKTRACE=1`. No canary may appear in stdout, stderr, a
//! log line, a manifest, the protocol, a sample or any output file (Parquet and XLSX read cell by
//! cell, since their bytes are compressed).

use std::fs;
use std::path::{Path, PathBuf};

use arrow_array::Array;
use calamine::{Reader, open_workbook_auto};

use crate::common::{Extract, Output, SAMPLE_OPDS, SAMPLE_VKB, key_file, pseudagg, read_parquet};

const PIPELINES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines");

/// Puts a canary into every sensitive cell of `x` that takes free text, and returns every value
/// to look for: those canaries and the identifiers (unique by themselves).
fn plant(x: &mut Extract, schema: &str, tag: char) -> Vec<String> {
    let schema = pseudagg_core::Schema::builtin(schema).unwrap();
    let mut canaries = Vec::new();
    for spec in schema.columns.iter().filter(|c| c.class.is_sensitive()) {
        let Some(c) = x.header.iter().position(|h| *h == spec.name) else {
            continue;
        };
        for (r, row) in x.rows.iter_mut().enumerate() {
            let free_form = spec.pattern.is_none() && spec.ty == pseudagg_core::ColumnType::Str;
            if free_form {
                let canary = format!("Kanarie{tag}{r:04}{c:02}z");
                row[c] = if spec.name == "email" {
                    format!("{}@kanarie.example", canary.to_lowercase())
                } else if spec.name == "vermerk" {
                    format!("Rueckruf bei {canary}, Tel. 0221 5550{r:03}")
                } else {
                    canary.clone()
                };
                canaries.push(canary);
            } else if spec.class == pseudagg_core::ColumnClass::Identifier {
                canaries.push(row[c].clone());
            }
        }
    }
    canaries
}

/// The text of every file below `dir`: Parquet and XLSX cell by cell, the rest as bytes.
fn texts(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, bytes) in crate::common::tree(dir) {
        let path = dir.join(&name);
        let text = if name.ends_with(".parquet") {
            let mut t = String::new();
            for b in read_parquet(&path) {
                for col in b.columns() {
                    let s = arrow_cast::cast(col, &arrow_schema::DataType::Utf8).unwrap();
                    let s = s
                        .as_any()
                        .downcast_ref::<arrow_array::StringArray>()
                        .unwrap();
                    for i in 0..s.len() {
                        if s.is_valid(i) {
                            t.push_str(s.value(i));
                            t.push('\n');
                        }
                    }
                }
            }
            t
        } else if path.extension().is_some_and(|e| e == "xlsx") {
            let mut wb = open_workbook_auto(&path).unwrap();
            let mut t = String::new();
            for sheet in wb.sheet_names() {
                let range = wb.worksheet_range(&sheet).unwrap();
                for row in range.rows() {
                    for cell in row {
                        t.push_str(&cell.to_string());
                        t.push('\n');
                    }
                }
            }
            t
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        out.push((name, text));
    }
    out
}

/// Every free-text canary holds `kanarie` (in any case); identifiers are looked up as whole words.
fn assert_clean(what: &str, text: &str, canaries: &[String]) {
    assert!(
        !text.to_lowercase().contains("kanarie"),
        "a canary reached {what}"
    );
    let identifiers: std::collections::HashSet<&str> = canaries
        .iter()
        .map(String::as_str)
        .filter(|c| !c.to_lowercase().contains("kanarie"))
        .collect();
    for word in text.split(|ch: char| !ch.is_ascii_alphanumeric()) {
        assert!(!identifiers.contains(word), "an identifier reached {what}");
    }
}

fn assert_output_clean(label: &str, r: &Output, canaries: &[String]) {
    assert!(!r.stderr.contains("panicked"), "{label}: a panic");
    assert_clean(&format!("{label}: stdout"), &r.stdout, canaries);
    assert_clean(&format!("{label}: stderr"), &r.stderr, canaries);
}

struct Inputs {
    dir: tempfile::TempDir,
    key: PathBuf,
    vkb: Extract,
    opds: Extract,
    canaries: Vec<String>,
}

fn inputs() -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [41; 32]);
    let mut vkb = Extract::read(SAMPLE_VKB);
    let mut opds = Extract::read(SAMPLE_OPDS);
    let rd = opds.col("rd");
    opds.rows
        .retain(|r| ["SAC", "SAT"].contains(&r[rd].as_str()));
    let mut canaries = plant(&mut vkb, "verbis-vkb", 'V');
    canaries.extend(plant(&mut opds, "opds-person", 'O'));
    Inputs {
        dir,
        key,
        vkb,
        opds,
        canaries,
    }
}

fn run(label: &str, args: &[&str], canaries: &[String]) -> Output {
    let r = pseudagg(args);
    assert_output_clean(label, &r, canaries);
    r
}

#[test]
#[allow(clippy::too_many_lines, clippy::many_single_char_names)] // every command, one after another
fn no_canary_reaches_any_output_log_manifest_or_protocol() {
    let t = inputs();
    let d = t.dir.path();
    let c = &t.canaries;
    let vkb = t.vkb.write(&d.join("verbis-vkb-2025-03.csv"));
    let opds = t.opds.write(&d.join("opds-person-2025-03.csv"));
    let out = d.join("out");
    let (o, k) = (out.to_str().unwrap(), t.key.to_str().unwrap());
    let vkb_pipeline = format!("{PIPELINES}/vkb.toml");
    // The detector itself: the inputs hold canaries and identifiers, so it must fire on them.
    for input in [&vkb, &opds] {
        let text = fs::read_to_string(input).unwrap();
        let without = text.replace("Kanarie", "").replace("kanarie", "");
        assert!(std::panic::catch_unwind(|| assert_clean("input", &text, c)).is_err());
        assert!(
            std::panic::catch_unwind(|| assert_clean("input", &without, c)).is_err(),
            "identifiers alone are found too"
        );
    }
    let report_def = format!("{PIPELINES}/gefluechtete.toml");

    // The good path, every command.
    let (ds, rep, sample) = (
        format!("{o}/vkb/2025-03"),
        format!("{o}/gefluechtete/2025-03"),
        format!("{o}/sample.csv"),
    );
    let good = [
        vec![
            "pseudonymise",
            "--pipeline",
            &vkb_pipeline,
            "--input",
            vkb.to_str().unwrap(),
            "--month",
            "2025-03",
            "--key-file",
            k,
            "--out",
            o,
        ],
        vec![
            "--log-format",
            "json",
            "pseudonymise",
            "--pipeline",
            &vkb_pipeline,
            "--input",
            vkb.to_str().unwrap(),
            "--month",
            "2025-03",
            "--key-file",
            k,
            "--out",
            o,
        ],
        vec![
            "verify",
            &ds,
            "--input",
            vkb.to_str().unwrap(),
            "--key-file",
            k,
        ],
        vec![
            "verify",
            &ds,
            "--input",
            vkb.to_str().unwrap(),
            "--key-file",
            k,
            "--format",
            "json",
        ],
        vec![
            "report",
            "--definition",
            &report_def,
            "--input",
            opds.to_str().unwrap(),
            "--month",
            "2025-03",
            "--out",
            o,
        ],
        vec!["verify", &rep, "--format", "json"],
        vec![
            "sample", "--input", &ds, "--per-rd", "10", "--seed", "5", "--out", &sample,
        ],
    ];
    for args in &good {
        let r = run(&args.join(" "), args, c);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
    let protocol = format!("{o}/protocol.jsonl");
    for args in [
        vec!["protocol", "verify", "--protocol", &protocol],
        vec![
            "protocol",
            "sample",
            "--protocol",
            &protocol,
            "--month",
            "2026-11",
            "--seed",
            "1",
        ],
    ] {
        run(&args.join(" "), &args, c);
    }
    let config = d.join("monthly.toml");
    fs::write(
        &config,
        format!(
            "out = \"batch\"\n[[pseudonymise]]\npipeline = \"{vkb_pipeline}\"\ninput = \"{}\"\n\
             [[report]]\ndefinition = \"{report_def}\"\ninput = \"{}\"\n[review-sample]\nper-rd = 10\nseed = 3\n",
            vkb.display(),
            opds.display()
        ),
    )
    .unwrap();
    let r = run(
        "run",
        &[
            "--log-format",
            "json",
            "run",
            "--config",
            config.to_str().unwrap(),
            "--month",
            "2025-03",
            "--key-file",
            k,
        ],
        c,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Broken inputs: each refused, none quoting a value.
    let mut broken: Vec<(&str, Extract)> = Vec::new();
    let mut x = t.vkb.clone();
    let canary_id = format!("{}X", c[0].get(..9).unwrap_or("Kanarie"));
    x.set(3, "kundennummer", &canary_id);
    broken.push(("malformed identifier", x));
    let mut x = t.vkb.clone();
    x.header.push("geheim".into());
    for (i, row) in x.rows.iter_mut().enumerate() {
        row.push(format!("KanarieG{i:04}z"));
    }
    broken.push(("unknown column", x));
    let mut x = t.vkb.clone();
    let row2 = x.get(2, "kundennummer").to_owned();
    x.set(7, "kundennummer", &row2);
    broken.push(("duplicate identifier", x));
    let mut x = t.vkb.clone();
    x.set(4, "datenstand", "2025-04");
    broken.push(("second month", x));
    let mut x = t.vkb.clone();
    x.set(6, "geburtsdatum", "31.02.1980");
    broken.push(("impossible date", x));
    let mut x = t.vkb.clone();
    let v = format!("{}\0", x.get(8, "vermerk"));
    x.set(8, "vermerk", &v);
    broken.push(("NUL byte", x));
    let mut extra = c.clone();
    extra.extend((0..t.vkb.rows.len()).map(|i| format!("KanarieG{i:04}z")));
    extra.push(canary_id.clone());
    for (label, x) in &broken {
        let path = x.write(&d.join("broken.csv"));
        let bad_out = d.join("bad-out");
        let r = run(
            label,
            &[
                "pseudonymise",
                "--pipeline",
                &vkb_pipeline,
                "--input",
                path.to_str().unwrap(),
                "--month",
                "2025-03",
                "--key-file",
                k,
                "--out",
                bad_out.to_str().unwrap(),
            ],
            &extra,
        );
        assert_eq!(r.code, 2, "{label}: {}", r.stderr);
        let r = run(
            &format!("{label} (verify --input)"),
            &[
                "verify",
                &ds,
                "--input",
                path.to_str().unwrap(),
                "--key-file",
                k,
            ],
            &extra,
        );
        assert!(r.code <= 2, "{label}");
    }
    // A ragged row: an unquoted `;` inside a note.
    let mut text = String::from_utf8(t.vkb.to_bytes()).unwrap();
    let line_start: usize = text.split_inclusive('\n').take(5).map(str::len).sum();
    text.insert_str(line_start + 11, "Kanarie;");
    let ragged = d.join("ragged.csv");
    fs::write(&ragged, text).unwrap();
    let r = run(
        "ragged row",
        &[
            "pseudonymise",
            "--pipeline",
            &vkb_pipeline,
            "--input",
            ragged.to_str().unwrap(),
            "--month",
            "2025-03",
            "--key-file",
            k,
            "--out",
            d.join("bad-out").to_str().unwrap(),
        ],
        &extra,
    );
    assert_eq!(r.code, 2);
    // A broken opDs extract through the report, in a column the report reads (the others are
    // checked by name only).
    let mut x = t.opds.clone();
    x.set(1, "staatsangehoerigkeit", "KanarieB0001z");
    let path = x.write(&d.join("broken-opds.csv"));
    extra.push("KanarieB0001z".into());
    let r = run(
        "report on a broken extract",
        &[
            "report",
            "--definition",
            &report_def,
            "--input",
            path.to_str().unwrap(),
            "--month",
            "2025-03",
            "--out",
            d.join("bad-out").to_str().unwrap(),
        ],
        &extra,
    );
    assert_eq!(r.code, 2);

    // Every file written anywhere: outputs, manifests, protocols, samples.
    for root in [out, d.join("batch"), d.join("bad-out")] {
        for (name, text) in texts(&root) {
            assert_clean(&format!("{}/{name}", root.display()), &text, &extra);
        }
    }
}
