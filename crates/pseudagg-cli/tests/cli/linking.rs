//! Issue 19, part 2: a person's VKB records of two months must not link through what they keep.
//!
//! The setup is the attack as it was tried: the same customers in 2025-03 and 2025-04 (the
//! sample extract, with the Datenstand moved on a month, so every stable attribute is the same),
//! each month pseudonymised with the shipped `pipelines/vkb.toml`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use crate::common::{
    Extract, SAMPLE_VKB, VKB_PIPELINE, key_file, pseudagg, pseudonymise_vkb, pseudonymise_with,
    read_parquet,
};

/// One month's output as rows of (column -> text), every RD's dataset together, the RD from its
/// `rd=` folder as a hive reader takes it.
fn rows_of(out: &Path, month: &str) -> Vec<HashMap<String, Option<String>>> {
    let root = out.join("vkb").join(month).join("parquet");
    let mut rows = Vec::new();
    for rd in fs::read_dir(&root).unwrap() {
        let rd = rd.unwrap().path();
        let value = rd
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_prefix("rd=")
            .unwrap()
            .to_owned();
        for part in fs::read_dir(&rd).unwrap() {
            let batches: Vec<RecordBatch> = read_parquet(&part.unwrap().path());
            for b in &batches {
                for i in 0..b.num_rows() {
                    let mut row = HashMap::new();
                    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                        let v = (!c.is_null(i)).then(|| match f.data_type() {
                            DataType::Utf8 => c.as_string::<i32>().value(i).to_owned(),
                            DataType::Boolean => c.as_boolean().value(i).to_string(),
                            DataType::Date32 => c
                                .as_primitive::<arrow_array::types::Date32Type>()
                                .value(i)
                                .to_string(),
                            other => panic!("unexpected type {other}"),
                        });
                        row.insert(f.name().clone(), v);
                    }
                    row.insert("rd".to_owned(), Some(value.clone()));
                    rows.push(row);
                }
            }
        }
    }
    rows
}

/// The share of `a`'s rows that match exactly one row of `b` on `columns` (an attacker who has
/// both months links those one-to-one).
fn uniquely_linked(
    a: &[HashMap<String, Option<String>>],
    b: &[HashMap<String, Option<String>>],
    columns: &[&str],
) -> f64 {
    let key = |r: &HashMap<String, Option<String>>| -> Vec<Option<String>> {
        columns
            .iter()
            .map(|c| r.get(*c).cloned().flatten())
            .collect()
    };
    let mut in_b: HashMap<Vec<Option<String>>, u32> = HashMap::new();
    for r in b {
        *in_b.entry(key(r)).or_default() += 1;
    }
    let unique = a.iter().filter(|r| in_b.get(&key(r)) == Some(&1)).count();
    unique as f64 / a.len() as f64
}

#[test]
fn the_dates_no_longer_link_a_persons_records_of_two_months() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [4; 32]);
    let out = dir.path().join("out");
    let march = Extract::read(SAMPLE_VKB);
    let mut april = march.clone();
    let ds = april.col("datenstand");
    for r in &mut april.rows {
        r[ds] = "2025-04".into();
    }
    let april_csv = april.write(&dir.path().join("april.csv"));
    for (input, month) in [(Path::new(SAMPLE_VKB), "2025-03"), (&*april_csv, "2025-04")] {
        let r = pseudonymise_vkb(input, month, &key, &out, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let a = rows_of(&out, "2025-03");
    let b = rows_of(&out, "2025-04");
    assert!(a.len() > 100, "the sample has flagged cases");
    assert_eq!(a.len(), b.len());

    // No published column is a calendar day.
    let names: Vec<&String> = a[0].keys().collect();
    for gone in [
        "zugang_datum",
        "letzter_kontakt_datum",
        "vkb_bewertung_datum",
    ] {
        assert!(!names.iter().any(|n| *n == gone), "{gone} is published");
    }

    // On main, 98 % of the rows were unique within their RD on zugang_datum alone, and every row
    // linked one-to-one on the three dates. The durations are shared by many.
    let dates = [
        "rd",
        "dauer_seit_zugang",
        "tage_seit_letztem_kontakt",
        "tage_seit_vkb_bewertung",
    ];
    let linked = uniquely_linked(&a, &b, &dates);
    let zugang = uniquely_linked(&a, &b, &dates[..2]);
    assert!(
        zugang <= 0.05,
        "{zugang:.3} of the rows link on the Zugang alone"
    );
    assert!(
        linked <= 0.25,
        "{linked:.3} of the rows link on the durations"
    );

    // The Jobcenter gives the agency away, so a row whose agency is blanked has no Jobcenter.
    for r in a.iter().chain(&b) {
        if r["agentur_nr"].is_none() {
            assert!(
                r["ge_nr"].is_none(),
                "a blanked agency's Jobcenter is published"
            );
        }
    }
}

/// The same customers in two months, as in the test above.
fn two_months(dir: &Path) -> std::path::PathBuf {
    let mut april = Extract::read(SAMPLE_VKB);
    let ds = april.col("datenstand");
    for r in &mut april.rows {
        r[ds] = "2025-04".into();
    }
    april.write(&dir.join("april.csv"))
}

/// Issue 19 §2: on the shipped pipeline of main, 95 % of the sample's April records matched
/// exactly one March record on the kept attributes, and `verify --against` passed. Every kept
/// attribute is now a quasi-identifier, `verify --against` measures the share of records that link
/// one-to-one, and `pseudonymise` refuses to publish a month that links to its neighbour.
#[test]
fn the_whole_kept_record_does_not_link_two_months() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), [5; 32]);
    let april = two_months(dir.path());
    let out = dir.path().join("out");
    for (input, month) in [(Path::new(SAMPLE_VKB), "2025-03"), (&*april, "2025-04")] {
        let r = pseudonymise_vkb(input, month, &key, &out, &[]);
        assert_eq!(r.code, 0, "{month}: {}", r.stderr);
    }
    // An attacker's own measure: exact matches on every kept column.
    let a = rows_of(&out, "2025-04");
    let b = rows_of(&out, "2025-03");
    let mut columns: Vec<&str> = a[0]
        .keys()
        .map(String::as_str)
        .filter(|c| !["pseudonym", "datenstand"].contains(c))
        .collect();
    columns.sort_unstable();
    let linked = uniquely_linked(&a, &b, &columns);
    assert!(
        linked <= 0.05,
        "{linked:.3} of the records link on {columns:?}"
    );
    // verify's measure (blanks as wildcards, bands shifted by the month between) agrees.
    let r = pseudagg(&[
        "verify",
        out.join("vkb/2025-04").to_str().unwrap(),
        "--against",
        out.join("vkb/2025-03").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let share: f64 = v["facts"]["linkable_share"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(share <= 0.05, "{share}");

    // The quasi-identifiers of main: April links to March, and is not published.
    let pipeline = dir.path().join("vkb-main.toml");
    let shipped = fs::read_to_string(VKB_PIPELINE).unwrap();
    let start = shipped.find("quasi-identifiers = [").unwrap();
    let end = start + shipped[start..].find(']').unwrap() + 1;
    fs::write(
        &pipeline,
        format!(
            "{}quasi-identifiers = [\"staatsangehoerigkeit\", \"altersgruppe\", \"geschlecht\", \"ge_nr\", \"agentur_nr\"]{}",
            &shipped[..start],
            &shipped[end..]
        ),
    )
    .unwrap();
    let old = dir.path().join("old");
    let run =
        |input: &Path, month: &str| pseudonymise_with(&pipeline, input, month, &key, &old, &[]);
    assert_eq!(run(Path::new(SAMPLE_VKB), "2025-03").code, 0);
    let r = run(&april, "2025-04");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("(linkable 1)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("match exactly one record of"),
        "{}",
        r.stderr
    );
    assert!(!old.join("vkb/2025-04").exists(), "nothing is published");
    // The threshold is the steward's: 1 allows any share.
    let r = pseudagg(&[
        "verify",
        old.join("vkb/2025-03").to_str().unwrap(),
        "--against",
        out.join("vkb/2025-04").to_str().unwrap(),
        "--max-linkable",
        "1",
    ]);
    assert_eq!(r.code, 0, "a threshold of 1 allows any share: {}", r.stderr);
}
