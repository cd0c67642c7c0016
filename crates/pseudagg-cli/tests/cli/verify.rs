//! `pseudagg verify`: good output passes; each kind of violation, planted into a copy of good
//! output, is found and named by its rule.

#![allow(clippy::many_single_char_names)] // d: the output copy, g: the good outputs, t: the truth

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{
    Extract, SAMPLE_VKB, key_file, pseudagg, pseudonymise_vkb, read_parquet, recipient_table,
    report_of_three_rds,
};

/// Runs `verify --format json` and returns the exit code and the verdict.
fn verify(dir: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["verify", dir.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let r = pseudagg(&args);
    assert!(r.code == 0 || r.code == 1, "verify errored:\n{}", r.stderr);
    (r.code, serde_json::from_str(&r.stdout).unwrap())
}

fn rules(verdict: &Value) -> BTreeSet<String> {
    verdict["counts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

pub(crate) fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Recomputes the size and SHA-256 of every listed file, as a forger who also edits the manifest
/// would: then only the content rules can find the change.
fn refresh_manifest(dir: &Path) {
    // The recipients' own manifests first (`manifests/<scope>.json`, their files relative to the
    // month folder): the report's manifest lists them too.
    for entry in fs::read_dir(dir.join("manifests"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let own = entry.path();
        if own.is_file() {
            let mut m: Value = serde_json::from_slice(&fs::read(&own).unwrap()).unwrap();
            for f in m["files"].as_array_mut().unwrap() {
                let bytes = fs::read(dir.join(f["path"].as_str().unwrap())).unwrap();
                f["bytes"] = bytes.len().into();
                f["sha256"] = hex::encode(Sha256::digest(&bytes)).into();
            }
            fs::write(&own, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        }
    }
    let path = dir.join("manifest.json");
    let mut m: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    for f in m["files"].as_array_mut().unwrap() {
        let bytes = fs::read(dir.join(f["path"].as_str().unwrap())).unwrap();
        f["bytes"] = bytes.len().into();
        f["sha256"] = hex::encode(Sha256::digest(&bytes)).into();
    }
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// Reads a Parquet file, lets `change` edit its columns, and writes it back.
/// Rewrites a Parquet file's columns; its key-value metadata (the month) stays.
fn rewrite_parquet(path: &Path, change: impl FnOnce(&mut HashMap<String, ArrayRef>)) {
    let kv = parquet::file::reader::FileReader::metadata(
        &parquet::file::reader::SerializedFileReader::new(fs::File::open(path).unwrap()).unwrap(),
    )
    .file_metadata()
    .key_value_metadata()
    .cloned();
    rewrite_parquet_with(path, kv, change);
}

fn rewrite_parquet_with(
    path: &Path,
    kv: Option<Vec<parquet::file::metadata::KeyValue>>,
    change: impl FnOnce(&mut HashMap<String, ArrayRef>),
) {
    let batches = read_parquet(path);
    let schema = batches[0].schema();
    let batch = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
    let mut columns: HashMap<String, ArrayRef> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| (f.name().clone(), c.clone()))
        .collect();
    let mut order: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    change(&mut columns);
    let mut added: Vec<String> = columns
        .keys()
        .filter(|k| !order.contains(k))
        .cloned()
        .collect();
    added.sort();
    order.extend(added);
    let fields: Vec<_> = order
        .iter()
        .map(|name| {
            let c = &columns[name];
            arrow_schema::Field::new(name, c.data_type().clone(), true)
        })
        .collect();
    let schema = Arc::new(arrow_schema::Schema::new(fields));
    let cols = schema
        .fields()
        .iter()
        .map(|f| columns[f.name()].clone())
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_key_value_metadata(kv)
        .build();
    let mut w = ArrowWriter::try_new(fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn strings(c: &ArrayRef) -> Vec<Option<String>> {
    c.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect()
}

fn set_string(columns: &mut HashMap<String, ArrayRef>, name: &str, row: usize, value: &str) {
    let mut v = strings(&columns[name]);
    v[row] = Some(value.to_owned());
    columns.insert(name.to_owned(), Arc::new(StringArray::from(v)));
}

/// One good VKB output per test process for 2025-03 (key A) and 2025-04 (same key, same customers).
struct Good {
    dir: PathBuf,
    key: PathBuf,
    other_key: PathBuf,
    input_03: PathBuf,
    input_04: PathBuf,
}

fn good() -> &'static Good {
    static GOOD: OnceLock<Good> = OnceLock::new();
    GOOD.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("verify-good-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let key = key_file(&dir, [11; 32]);
        let other_dir = dir.join("other");
        fs::create_dir_all(&other_dir).unwrap();
        let other_key = key_file(&other_dir, [12; 32]);
        let input_03 = PathBuf::from(SAMPLE_VKB);
        // The same customers a month later: the April extract is the March one with its Datenstand.
        let mut april = Extract::sample_vkb();
        for row in 0..april.rows.len() {
            april.set(row, "datenstand", "2025-04");
        }
        let input_04 = april.write(&dir.join("verbis-vkb-2025-04.csv"));
        for (input, month, key, out) in [
            (&input_03, "2025-03", &key, "out"),
            (&input_04, "2025-04", &key, "out"),
            (&input_03, "2025-03", &other_key, "other-out"),
        ] {
            let r = pseudonymise_vkb(input, month, key, &dir.join(out), &[]);
            assert_eq!(r.code, 0, "{}", r.stderr);
        }
        Good {
            dir,
            key,
            other_key,
            input_03,
            input_04,
        }
    })
}

/// A private copy of the good March dataset.
fn march_copy(tmp: &Path) -> PathBuf {
    let to = tmp.join("vkb-2025-03");
    copy_tree(&good().dir.join("out/vkb/2025-03"), &to);
    to
}

fn full_checks(g: &Good) -> Vec<&str> {
    vec![
        "--input",
        g.input_03.to_str().unwrap(),
        "--key-file",
        g.key.to_str().unwrap(),
    ]
}

#[test]
fn good_datasets_pass_every_check_and_the_months_are_unlinkable() {
    let g = good();
    let march = g.dir.join("out/vkb/2025-03");
    let april = g.dir.join("out/vkb/2025-04");
    let (code, v) = verify(&march, &full_checks(g));
    assert_eq!(code, 0, "{v:#}");
    for check in [
        "manifest",
        "columns",
        "values",
        "input-values",
        "pseudonyms",
        "pseudonym-recompute",
        "partitions",
        "one-month",
        "k-anonymity",
    ] {
        assert!(
            v["checks"].as_array().unwrap().iter().any(|c| c == check),
            "{check} did not run"
        );
    }
    let (code, v) = verify(
        &april,
        &[
            "--input",
            g.input_04.to_str().unwrap(),
            "--key-file",
            g.key.to_str().unwrap(),
            "--against",
            march.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["facts"]["shared_pseudonyms"], "0");
    // The text summary for people says the same.
    let r = pseudagg(&["verify", march.to_str().unwrap()]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("PASSED"), "{}", r.stdout);
}

#[test]
fn a_tampered_file_and_an_unlisted_file_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    let part = d.join("parquet/rd=BY/part-00000.parquet");
    let mut bytes = fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&part, bytes).unwrap();
    fs::write(d.join("parquet/rd=BY/notes.csv"), "anything\n").unwrap();
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    let r = rules(&v);
    assert!(r.contains("file-hash"), "{r:?}");
    assert!(r.contains("unlisted-file"), "{r:?}");
    let f = &v["findings"].as_array().unwrap();
    assert!(
        f.iter()
            .any(|f| f["rule"] == "unlisted-file" && f["file"] == "parquet/rd=BY/notes.csv")
    );
}

#[test]
fn a_leaked_name_in_a_renamed_column_is_found_with_the_input() {
    let g = good();
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    let input = Extract::sample_vkb();
    let surname = input.get(0, "nachname").to_owned();
    // `profillage` is a declared, publishable column: only the value gives the leak away.
    rewrite_parquet(&d.join("parquet/rd=NRW/part-00000.parquet"), |c| {
        set_string(c, "profillage", 2, &surname);
    });
    refresh_manifest(&d);
    let (code, v) = verify(&d, &full_checks(g));
    assert_eq!(code, 1);
    assert_eq!(
        rules(&v),
        // `profillage` is a quasi-identifier: the changed value also leaves a group below k.
        BTreeSet::from([
            "column-value".to_owned(),
            "input-value".to_owned(),
            "k-anonymity".to_owned()
        ]),
        "{v:#}"
    );
    let findings = v["findings"].as_array().unwrap();
    let f = findings
        .iter()
        .find(|f| f["rule"] == "input-value")
        .unwrap();
    assert_eq!(f["file"], "parquet/rd=NRW/part-00000.parquet");
    assert_eq!(f["row"], 3);
    assert_eq!(f["column"], "profillage");
    // The finding names where, never what.
    assert!(!serde_json::to_string(&v).unwrap().contains(&surname));
}

#[test]
fn a_kundennummer_inside_a_text_column_is_found_without_the_input() {
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    rewrite_parquet(&d.join("parquet/rd=BW/part-00000.parquet"), |c| {
        set_string(c, "massnahme", 0, "Rueckruf wegen 325D123456 am Montag");
    });
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        rules(&v),
        BTreeSet::from([
            "column-value".to_owned(),
            "k-anonymity".to_owned(),
            "kundennummer".to_owned()
        ]),
        "{v:#}"
    );
    assert!(!serde_json::to_string(&v).unwrap().contains("325D123456"));
}

/// Issue 18 §6: verify used to trust the writer's manifest. A column it declares "generalised from
/// geburtsdatum" that holds free text passed, and so did a kept column's value outside the schema's
/// allowed values. Now every value is checked against its column's contract: the schema's allowed
/// values or pattern for a kept column, the band labels for a generalised one.
#[test]
fn values_outside_their_columns_contract_are_found_without_the_input() {
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    rewrite_parquet(&d.join("parquet/rd=BY/part-00000.parquet"), |c| {
        set_string(c, "altersgruppe", 1, "Anna, geb. 1990");
        set_string(c, "dauer_seit_zugang", 2, "seit Montag");
        set_string(c, "kundenprozess", 3, "Herr Meier");
        set_string(c, "staatsangehoerigkeit", 4, "deutsch");
    });
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    // Changed quasi-identifiers also make a group smaller than k, which is found too.
    assert!(rules(&v).contains("column-value"), "{v:#}");
    let mut found: Vec<(u64, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "column-value")
        .map(|f| {
            (
                f["row"].as_u64().unwrap(),
                f["column"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (2, "altersgruppe".to_owned()),
            (3, "dauer_seit_zugang".to_owned()),
            (4, "kundenprozess".to_owned()),
            (5, "staatsangehoerigkeit".to_owned()),
        ]
    );
    let text = serde_json::to_string(&v).unwrap();
    for value in ["Anna", "Montag", "Meier", "deutsch"] {
        assert!(!text.contains(value), "the value is echoed");
    }
}

/// Issue 18 §6: a Parquet file whose metadata was stripped no longer says its month; it passed.
#[test]
fn a_dataset_file_without_its_month_metadata_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    rewrite_parquet_with(&d.join("parquet/rd=HES/part-00000.parquet"), None, |_| {});
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert_eq!(rules(&v), BTreeSet::from(["manifest".to_owned()]), "{v:#}");
    assert_eq!(
        v["findings"][0]["file"],
        "parquet/rd=HES/part-00000.parquet"
    );
}

#[test]
fn an_undeclared_column_named_like_personal_data_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    rewrite_parquet(&d.join("parquet/rd=BB/part-00000.parquet"), |c| {
        let n = c["pseudonym"].len();
        c.insert(
            "vorname".into(),
            Arc::new(StringArray::from(vec![Some("x"); n])),
        );
    });
    refresh_manifest(&d);
    let (_, v) = verify(&d, &[]);
    let r = rules(&v);
    assert!(
        r.contains("column-not-allowed") && r.contains("sensitive-column"),
        "{r:?}"
    );
}

#[test]
fn a_row_in_the_wrong_rd_folder_is_found() {
    let g = good();
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    // The files carry the RD in their folder only; a forged `rd` column names another RD for
    // one row.
    rewrite_parquet(&d.join("parquet/rd=BY/part-00000.parquet"), |c| {
        let rows = c["pseudonym"].len();
        let mut rd = vec!["BY"; rows];
        rd[1] = "NRW";
        c.insert("rd".into(), Arc::new(arrow_array::StringArray::from(rd)));
    });
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert_eq!(rules(&v), BTreeSet::from(["partition".to_owned()]), "{v:#}");
    assert_eq!(v["findings"][0]["row"], 2);

    // A whole row moved into another RD's file: its rd agrees with the folder, but the input row
    // it recomputes from belongs to another RD.
    let d2 = tmp.path().join("moved");
    copy_tree(&good().dir.join("out/vkb/2025-03"), &d2);
    let by = read_parquet(&d2.join("parquet/rd=BY/part-00000.parquet"));
    let stolen = by[0]
        .column_by_name("pseudonym")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_owned();
    rewrite_parquet(&d2.join("parquet/rd=NRW/part-00000.parquet"), |c| {
        set_string(c, "pseudonym", 0, &stolen);
    });
    refresh_manifest(&d2);
    let (_, v) = verify(&d2, &full_checks(g));
    let r = rules(&v);
    assert!(r.contains("partition"), "{r:?}");
    // ... and it now appears twice.
    assert!(r.contains("pseudonym-format"), "{r:?}");
}

#[test]
fn a_pseudonym_made_with_another_key_is_found() {
    let g = good();
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    let foreign = read_parquet(
        &g.dir
            .join("other-out/vkb/2025-03/parquet/rd=HES/part-00000.parquet"),
    );
    let p = foreign[0]
        .column_by_name("pseudonym")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_owned();
    rewrite_parquet(&d.join("parquet/rd=HES/part-00000.parquet"), |c| {
        set_string(c, "pseudonym", 0, &p);
    });
    refresh_manifest(&d);
    let (code, v) = verify(&d, &full_checks(g));
    assert_eq!(code, 1);
    assert_eq!(
        rules(&v),
        BTreeSet::from(["pseudonym-recompute".to_owned()]),
        "{v:#}"
    );

    // Issue 17: the whole other-key dataset, checked with our key, used to list a finding per row
    // and exit 1. The key id differs: the check cannot be made, exit 2, before any row is read.
    let mut args = vec!["verify", "--format", "json"];
    let other_out = g.dir.join("other-out/vkb/2025-03");
    args.push(other_out.to_str().unwrap());
    let checks = full_checks(g);
    args.extend(checks.iter().copied());
    let r = pseudagg(&args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("is not the one that wrote this output"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("pseudonym-recompute"), "{}", r.stderr);
    // A wrong key file for the right dataset is refused the same way.
    let other = g.other_key.to_str().unwrap();
    let right = g.dir.join("out/vkb/2025-03");
    let input = g.input_03.to_str().unwrap();
    let r = pseudagg(&[
        "verify",
        right.to_str().unwrap(),
        "--input",
        input,
        "--key-file",
        other,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn the_same_pseudonym_in_two_months_is_found() {
    let g = good();
    let tmp = tempfile::tempdir().unwrap();
    let april = tmp.path().join("vkb-2025-04");
    copy_tree(&g.dir.join("out/vkb/2025-04"), &april);
    let march = read_parquet(
        &g.dir
            .join("out/vkb/2025-03/parquet/rd=SAC/part-00000.parquet"),
    );
    let p = march[0]
        .column_by_name("pseudonym")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_owned();
    rewrite_parquet(&april.join("parquet/rd=SAC/part-00000.parquet"), |c| {
        set_string(c, "pseudonym", 0, &p);
    });
    refresh_manifest(&april);
    let march_dir = g.dir.join("out/vkb/2025-03");
    let (code, v) = verify(&april, &["--against", march_dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(rules(&v), BTreeSet::from(["linkable".to_owned()]), "{v:#}");
    assert_eq!(v["facts"]["shared_pseudonyms"], "1");
}

#[test]
fn a_second_month_in_a_dataset_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    rewrite_parquet(&d.join("parquet/rd=SAT/part-00000.parquet"), |c| {
        set_string(c, "datenstand", 0, "2025-02");
    });
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        rules(&v),
        BTreeSet::from(["time-series".to_owned()]),
        "{v:#}"
    );
}

#[test]
fn a_group_below_k_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    // Give one row a nationality nobody else in its RD has.
    rewrite_parquet(&d.join("parquet/rd=NSB/part-00000.parquet"), |c| {
        set_string(c, "staatsangehoerigkeit", 0, "ISL");
        set_string(c, "altersgruppe", 0, "30-34");
    });
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        rules(&v),
        BTreeSet::from(["k-anonymity".to_owned()]),
        "{v:#}"
    );
}

#[test]
fn a_jobcenter_beside_a_blanked_agency_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = march_copy(tmp.path());
    let path = d.join("parquet/rd=NRW/part-00000.parquet");
    // Put a Jobcenter back into a row whose agency k-anonymity blanked: its number gives the
    // agency away.
    let mut planted = false;
    rewrite_parquet(&path, |c| {
        let agency = strings(&c["agentur_nr"]);
        let row = agency
            .iter()
            .position(Option::is_none)
            .expect("a blanked agency in NRW");
        set_string(c, "ge_nr", row, "31401");
        planted = true;
    });
    assert!(planted);
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1, "{v:#}");
    let text = v.to_string();
    assert!(
        text.contains("`agentur_nr` is blanked, but `ge_nr` is not"),
        "{v:#}"
    );
}

#[test]
fn verify_errors_are_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let r = pseudagg(&["verify", tmp.path().to_str().unwrap()]);
    assert_eq!(r.code, 2, "no manifest: {}", r.stderr);
    let d = march_copy(tmp.path());
    let r = pseudagg(&[
        "verify",
        d.to_str().unwrap(),
        "--key-file",
        good().key.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "key without input: {}", r.stderr);
}

// ---- reports ----

/// A good report of part of the sample (three RDs, to keep the run short), made once per process.
fn good_report() -> &'static (PathBuf, Extract) {
    static REPORT: OnceLock<(PathBuf, Extract)> = OnceLock::new();
    REPORT.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("verify-report-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let input = report_of_three_rds(&dir, &dir.join("out"));
        (dir.join("out/gefluechtete/2025-03"), input)
    })
}

/// Rewrites a scope's Parquet table with `change` and its CSV to match, as a careful forger would.
fn edit_scope(dir: &Path, scope: &str, change: impl FnOnce(&mut HashMap<String, ArrayRef>)) {
    let pq = recipient_table(dir, scope, "gefluechtete-2025-03", "parquet");
    rewrite_parquet(&pq, change);
    let batches = read_parquet(&pq);
    let b = &batches[0];
    let mut csv = String::from("\u{feff}");
    let names: Vec<String> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    csv.push_str(&names.join(";"));
    csv.push_str("\r\n");
    for row in 0..b.num_rows() {
        let line: Vec<String> = names
            .iter()
            .map(|n| {
                let c = b.column_by_name(n).unwrap();
                match n.as_str() {
                    "value" => {
                        let v = c.as_primitive::<arrow_array::types::Int64Type>();
                        if v.is_null(row) {
                            "*".into()
                        } else {
                            v.value(row).to_string()
                        }
                    }
                    "suppressed" => {
                        if c.as_boolean().value(row) {
                            "J".into()
                        } else {
                            "N".into()
                        }
                    }
                    _ => {
                        let s = c.as_string::<i32>();
                        if s.is_null(row) {
                            String::new()
                        } else {
                            s.value(row).to_owned()
                        }
                    }
                }
            })
            .collect();
        csv.push_str(&line.join(";"));
        csv.push_str("\r\n");
    }
    fs::write(
        recipient_table(dir, scope, "gefluechtete-2025-03", "csv"),
        csv,
    )
    .unwrap();
    refresh_manifest(dir);
}

fn report_copy(tmp: &Path) -> PathBuf {
    let to = tmp.join("report");
    copy_tree(&good_report().0, &to);
    to
}

/// Rows of the long table: (level, ge_nr, herkunft, indicator) -> row.
fn row_index(c: &HashMap<String, ArrayRef>) -> HashMap<(String, String, String, String), usize> {
    let s = |n: &str| strings(&c[n]);
    let (level, ge, h, ind) = (s("level"), s("ge_nr"), s("herkunft"), s("indicator"));
    (0..level.len())
        .map(|i| {
            (
                (
                    level[i].clone().unwrap(),
                    ge[i].clone().unwrap_or_default(),
                    h[i].clone().unwrap(),
                    ind[i].clone().unwrap(),
                ),
                i,
            )
        })
        .collect()
}

fn set_cell(c: &mut HashMap<String, ArrayRef>, row: usize, value: Option<i64>) {
    let mut v: Vec<Option<i64>> = c["value"]
        .as_primitive::<arrow_array::types::Int64Type>()
        .iter()
        .collect();
    let mut s: Vec<bool> = c["suppressed"]
        .as_boolean()
        .iter()
        .map(Option::unwrap)
        .collect();
    v[row] = value;
    s[row] = value.is_none();
    c.insert("value".into(), Arc::new(Int64Array::from(v)));
    c.insert("suppressed".into(), Arc::new(BooleanArray::from(s)));
}

#[test]
fn a_good_report_passes_and_is_audited_per_scope() {
    let (dir, _) = good_report();
    let (code, v) = verify(dir, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "interval-audit")
    );
    assert!(
        v["facts"]["suppressed_cells_audited"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
}

#[test]
fn an_unsuppressed_two_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = report_copy(tmp.path());
    edit_scope(&d, "bund", |c| {
        let rows = row_index(c);
        let r = rows[&(
            "bund".into(),
            String::new(),
            "Ukraine".into(),
            "geringfuegig".into(),
        )];
        set_cell(c, r, Some(2));
    });
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    let r = rules(&v);
    assert!(r.contains("small-count"), "{r:?}");
}

const ASYL: [&str; 8] = ["AFG", "ERI", "IRQ", "IRN", "NGA", "PAK", "SOM", "SYR"];

#[test]
fn a_suppressed_cell_that_the_totals_reveal_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = report_copy(tmp.path());
    let (_, input) = good_report();
    // The true `bestand` of each gE by origin, from the input (population: elb).
    let mut truth: HashMap<(String, &str), i64> = HashMap::new();
    let (ge, elb, nat) = (
        input.col("ge_nr"),
        input.col("elb"),
        input.col("staatsangehoerigkeit"),
    );
    for r in &input.rows {
        let origin = if r[nat] == "UKR" {
            "Ukraine"
        } else if ASYL.contains(&r[nat].as_str()) {
            "Asylherkunftslaender"
        } else {
            continue;
        };
        if r[elb] == "J" {
            *truth.entry((r[ge].clone(), origin)).or_default() += 1;
            *truth.entry((r[ge].clone(), "Insgesamt")).or_default() += 1;
        }
    }
    let t = |g: &str, o: &str| truth.get(&(g.to_owned(), o)).copied().unwrap_or(0);
    // In RD SAC's scope, pick a gE whose Ukraine count is 1 or 2 and suppressed, and publish its
    // two partners (Asylherkunftslaender and Insgesamt) with their true values: then
    // Ukraine = Insgesamt - Asylherkunftslaender.
    let mut planted = None;
    edit_scope(&d, "rd-SAC", |c| {
        let rows = row_index(c);
        let sup: Vec<bool> = c["suppressed"]
            .as_boolean()
            .iter()
            .map(Option::unwrap)
            .collect();
        let key = |g: &str, o: &str| {
            (
                "ge".to_owned(),
                g.to_owned(),
                o.to_owned(),
                "bestand".to_owned(),
            )
        };
        let mut ges: Vec<&String> = rows.keys().filter(|k| k.0 == "ge").map(|k| &k.1).collect();
        ges.sort();
        ges.dedup();
        let g = ges
            .into_iter()
            .find(|g| {
                (1..=2).contains(&t(g, "Ukraine"))
                    && ["Ukraine", "Asylherkunftslaender", "Insgesamt"]
                        .iter()
                        .all(|o| sup[rows[&key(g, o)]])
            })
            .expect("a gE in SAC with a small suppressed Ukraine count")
            .clone();
        for o in ["Asylherkunftslaender", "Insgesamt"] {
            set_cell(c, rows[&key(&g, o)], Some(t(&g, o)));
        }
        planted = Some(g);
    });
    let g = planted.unwrap();
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    let r = rules(&v);
    assert!(r.contains("disclosure"), "{r:?}");
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "disclosure"
                && f["file"] == "recipient=rd-SAC/"
                && f["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("gE {g} / Ukraine / bestand"))),
        "{v:#}"
    );
}

#[test]
fn a_csv_that_disagrees_with_its_table_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = report_copy(tmp.path());
    let csv = d.join("csv/recipient=bund/gefluechtete-2025-03.csv");
    let text = fs::read_to_string(&csv).unwrap();
    let changed = text.replacen("bestand;", "bestand;9", 1);
    assert_ne!(text, changed);
    fs::write(&csv, changed).unwrap();
    refresh_manifest(&d);
    let (_, v) = verify(&d, &[]);
    assert!(rules(&v).contains("inconsistent"), "{v:#}");
}

/// Issue 18: the manifest inside a request folder, which a Traeger receives, held the audit, and a
/// secondary cell's `lower == upper` was its true value.
#[test]
fn a_recipient_folder_with_audit_data_or_another_file_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let d = report_copy(tmp.path());
    let steward: Value =
        serde_json::from_slice(&fs::read(d.join("manifest.json")).unwrap()).unwrap();
    assert!(steward["audit"].as_array().is_some_and(|a| !a.is_empty()));
    // The audit planted in one recipient's manifest.
    let own_path = d.join("manifests/rd-SAC.json");
    let mut own: Value = serde_json::from_slice(&fs::read(&own_path).unwrap()).unwrap();
    own["audit"] = steward["audit"].clone();
    fs::write(&own_path, serde_json::to_vec_pretty(&own).unwrap()).unwrap();
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        rules(&v),
        BTreeSet::from(["recipient-folder".to_owned()]),
        "{v:#}"
    );
    assert!(v.to_string().contains("holds `audit`"), "{v:#}");

    // The steward's manifest copied into a recipient folder, listed as if it belonged there.
    let d = tmp.path().join("second");
    copy_tree(&good_report().0, &d);
    fs::copy(
        d.join("manifest.json"),
        d.join("parquet/recipient=bund/steward.json"),
    )
    .unwrap();
    let mut m: Value = serde_json::from_slice(&fs::read(d.join("manifest.json")).unwrap()).unwrap();
    m["files"].as_array_mut().unwrap().push(serde_json::json!({
        "path": "parquet/recipient=bund/steward.json", "rows": 0, "bytes": 0, "sha256": ""
    }));
    fs::write(
        d.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert!(rules(&v).contains("recipient-folder"), "{v:#}");
}

/// The steward's file of every published cell once (`all/`) must say what the recipients'
/// tables say: a changed value, or a cell twice, is found, even with the manifest's hashes and
/// sums made to fit.
#[test]
fn the_stewards_file_of_all_cells_agrees_with_the_recipients_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let all = "all/gefluechtete-2025-03.parquet";
    let fix_sum = |d: &Path| {
        let sum: i64 = read_parquet(&d.join(all))
            .iter()
            .flat_map(|b| {
                b.column_by_name("value")
                    .unwrap()
                    .as_primitive::<arrow_array::types::Int64Type>()
                    .iter()
                    .flatten()
                    .collect::<Vec<_>>()
            })
            .sum();
        let path = d.join("manifest.json");
        let mut m: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        for f in m["files"].as_array_mut().unwrap() {
            if f["path"] == all {
                f["value_sum"] = sum.into();
            }
        }
        fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        refresh_manifest(d);
    };
    let d = report_copy(tmp.path());
    rewrite_parquet(&d.join(all), |c| {
        let v = c["value"].as_primitive::<arrow_array::types::Int64Type>();
        let row = (0..v.len()).find(|&i| v.is_valid(i)).unwrap();
        let planted = v.value(row) + 5;
        set_cell(c, row, Some(planted));
    });
    fix_sum(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        rules(&v),
        BTreeSet::from(["inconsistent".to_owned()]),
        "{v:#}"
    );
    assert!(
        v.to_string()
            .contains("differs from the recipients' tables"),
        "{v:#}"
    );

    // The first row again at the end: one cell twice.
    let d = tmp.path().join("twice");
    copy_tree(&good_report().0, &d);
    rewrite_parquet(&d.join(all), |c| {
        for col in c.values_mut() {
            let first = col.slice(0, 1);
            *col = arrow_select::concat::concat(&[col.as_ref(), first.as_ref()]).unwrap();
        }
    });
    fix_sum(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert!(v.to_string().contains("appear more than once"), "{v:#}");
}

/// The workbook is checked against the Parquet table too: another scope's workbook in its place
/// shows other values and another number of `*`.
#[test]
fn a_workbook_that_shows_other_values_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let d = report_copy(tmp.path());
    fs::copy(
        d.join("xlsx/recipient=rd-SAC/gefluechtete-2025-03.xlsx"),
        d.join("xlsx/recipient=bund/gefluechtete-2025-03.xlsx"),
    )
    .unwrap();
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert!(
        rules(&v).contains("recipient-folder") || rules(&v).contains("inconsistent"),
        "{v:#}"
    );
}

/// A secondary cell's recorded interval is its feasible interval, not its true value.
#[test]
fn secondary_intervals_in_the_stewards_audit_are_not_true_values() {
    let steward: Value =
        serde_json::from_slice(&fs::read(good_report().0.join("manifest.json")).unwrap()).unwrap();
    let audit = steward["audit"].as_array().unwrap();
    let secondary: Vec<&Value> = audit.iter().filter(|a| a["primary"] == false).collect();
    assert!(!secondary.is_empty());
    let points = secondary
        .iter()
        .filter(|a| a["upper"].as_f64() == a["lower"].as_f64())
        .count();
    assert_eq!(
        points,
        0,
        "{points} of {} secondary cells are recorded as a single value",
        secondary.len()
    );
    assert!(secondary.iter().all(|a| a["interval"] == "feasible"));
}

#[test]
fn a_second_month_in_a_report_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let d = report_copy(tmp.path());
    // A scope table carrying another month in its metadata, as if copied from another report.
    let pq = d.join("parquet/recipient=bund/gefluechtete-2025-03.parquet");
    let batches = read_parquet(&pq);
    let props = parquet::file::properties::WriterProperties::builder()
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            "pseudagg.month".into(),
            "2025-02".to_owned(),
        )]))
        .build();
    let mut w = ArrowWriter::try_new(
        fs::File::create(&pq).unwrap(),
        batches[0].schema(),
        Some(props),
    )
    .unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    refresh_manifest(&d);
    let (code, v) = verify(&d, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        rules(&v),
        BTreeSet::from(["time-series".to_owned()]),
        "{v:#}"
    );
}
