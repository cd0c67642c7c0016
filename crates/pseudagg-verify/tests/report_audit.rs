#![allow(clippy::from_iter_instead_of_collect, clippy::format_push_string)] // test fixtures, built for reading
//! The report checks on small hand-made reports, where the right answer is known by hand.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use pseudagg_verify::{Options, Rule, verify};
use sha2::{Digest, Sha256};

/// (level, rd, ge_nr, indicator, value or None when suppressed)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<i64>,
);

/// Writes `scope/r-2025-03.{parquet,csv}` for each scope and a manifest listing them.
fn write_report(dir: &Path, scopes: &[(&str, Vec<Row>)], subset: bool) {
    let mut files = Vec::new();
    for (scope, rows) in scopes {
        fs::create_dir_all(dir.join(scope)).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("level", DataType::Utf8, false),
            Field::new("rd", DataType::Utf8, true),
            Field::new("ge_nr", DataType::Utf8, true),
            Field::new("ge_name", DataType::Utf8, true),
            Field::new("indicator", DataType::Utf8, false),
            Field::new("value", DataType::Int64, true),
            Field::new("suppressed", DataType::Boolean, false),
        ]));
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(rows.iter().map(|r| opt(r.1)).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| opt(r.2)).collect::<StringArray>()),
            Arc::new(StringArray::from_iter(
                rows.iter()
                    .map(|r| opt(r.2).map(|g| format!("Jobcenter {g}"))),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.4))),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.4.is_none())),
            )),
        ];
        let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
        let rel = format!("{scope}/r-2025-03.parquet");
        let mut w =
            ArrowWriter::try_new(fs::File::create(dir.join(&rel)).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let mut csv = String::from("\u{feff}level;rd;ge_nr;ge_name;indicator;value;suppressed\r\n");
        for r in rows {
            let name = if r.2.is_empty() {
                String::new()
            } else {
                format!("Jobcenter {}", r.2)
            };
            let v = r.4.map_or("*".to_owned(), |v| v.to_string());
            let s = if r.4.is_none() { "J" } else { "N" };
            csv.push_str(&format!(
                "{};{};{};{name};{};{v};{s}\r\n",
                r.0, r.1, r.2, r.3
            ));
        }
        let crel = format!("{scope}/r-2025-03.csv");
        fs::write(dir.join(&crel), csv).unwrap();
        let mut own = Vec::new();
        for rel in [rel, crel] {
            let bytes = fs::read(dir.join(&rel)).unwrap();
            let entry = |path: &str| {
                serde_json::json!({
                    "path": path, "rows": rows.len(), "bytes": bytes.len(),
                    "sha256": hex::encode(Sha256::digest(&bytes)),
                })
            };
            own.push(entry(rel.trim_start_matches(&format!("{scope}/"))));
            files.push(entry(&rel));
        }
        // The recipient's own manifest: hashes, month, definition and scope only.
        let own = serde_json::json!({
            "manifest_version": 1, "kind": "report-scope", "report": "r", "report_sha256": "",
            "month": "2025-03", "scope": scope, "files": own,
        });
        let orel = format!("{scope}/_manifest.json");
        let bytes = serde_json::to_vec_pretty(&own).unwrap();
        fs::write(dir.join(&orel), &bytes).unwrap();
        files.push(serde_json::json!({
            "path": orel, "rows": 0, "bytes": bytes.len(),
            "sha256": hex::encode(Sha256::digest(&bytes)),
        }));
    }
    let indicators = if subset {
        serde_json::json!([{"name": "bestand", "subset_of": null}, {"name": "sv", "subset_of": "bestand"}])
    } else {
        serde_json::json!([{"name": "bestand", "subset_of": null}])
    };
    // Layout 1 (a folder per recipient), which verify still reads.
    let manifest = serde_json::json!({
        "manifest_version": 1, "kind": "report", "report": "r", "report_sha256": "", "month": "2025-03",
        "suppression": {"threshold": 3, "min_interval_width": 2},
        "structure": {"dimension": null, "categories": [], "total": null, "indicators": indicators},
        "scopes": scopes.iter().map(|s| s.0).collect::<Vec<_>>(),
        "files": files,
    });
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

fn rules(dir: &Path) -> Vec<Rule> {
    let v = verify(dir, &Options::default()).unwrap();
    v.counts.keys().copied().collect()
}

#[test]
fn a_lone_suppressed_cell_is_given_away_by_its_total() {
    let dir = tempfile::tempdir().unwrap();
    // gE 1 is 2 and suppressed; gE 2 (10) and the RD (12) are published: 12 - 10 = 2.
    write_report(
        dir.path(),
        &[(
            "rd=X",
            vec![
                ("gE", "X", "00001", "bestand", None),
                ("gE", "X", "00002", "bestand", Some(10)),
                ("RD", "X", "", "bestand", Some(12)),
            ],
        )],
        false,
    );
    assert_eq!(rules(dir.path()), [Rule::Disclosure]);
}

#[test]
fn a_second_suppression_hides_it() {
    let dir = tempfile::tempdir().unwrap();
    write_report(
        dir.path(),
        &[(
            "rd=X",
            vec![
                ("gE", "X", "00001", "bestand", None),
                ("gE", "X", "00002", "bestand", None),
                ("RD", "X", "", "bestand", Some(12)),
            ],
        )],
        false,
    );
    assert!(rules(dir.path()).is_empty());
}

#[test]
fn two_suppressed_cells_whose_sum_is_small_are_narrowed() {
    let dir = tempfile::tempdir().unwrap();
    // Both gEs are suppressed but the RD is 3: each lies in [1, 2].
    write_report(
        dir.path(),
        &[(
            "rd=X",
            vec![
                ("gE", "X", "00001", "bestand", None),
                ("gE", "X", "00002", "bestand", None),
                ("RD", "X", "", "bestand", Some(3)),
            ],
        )],
        false,
    );
    assert_eq!(rules(dir.path()), [Rule::Disclosure]);
}

#[test]
fn a_subset_bounds_a_suppressed_cell_from_above() {
    let dir = tempfile::tempdir().unwrap();
    // sv <= bestand = 2 tells that the suppressed sv is 1 or 2.
    write_report(
        dir.path(),
        &[(
            "ge=00001",
            vec![
                ("gE", "X", "00001", "bestand", Some(0)),
                ("gE", "X", "00001", "sv", None),
            ],
        )],
        true,
    );
    // bestand 0 with a suppressed (so positive) sv contradicts itself: fails closed.
    assert_eq!(rules(dir.path()), [Rule::Disclosure]);
}

#[test]
fn a_published_small_count_and_a_second_month_are_found() {
    let dir = tempfile::tempdir().unwrap();
    write_report(
        dir.path(),
        &[("bund", vec![("Bund", "", "", "bestand", Some(2))])],
        false,
    );
    let mut m: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(rules(dir.path()), [Rule::SmallCount]);
    m["month"] = "2025-04".into();
    fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    // The manifest says April, the files (in their names) March: the scope's table is missing.
    assert!(rules(dir.path()).contains(&Rule::Manifest));
}
