//! Issue 19 §1: two definitions of one month could be differenced. Run as shipped, then with the
//! population `elb and geschlecht != 'd'`, the cells published in both differed by 1 or 2 where
//! the second counted one or two diverse people fewer. Each report now keeps a release record,
//! and a later report of the month is protected together with the released ones.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;

use crate::common::{Extract, Output, pseudagg, read_parquet, tree};

const PIPELINES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines");

/// Generated opDs data of one RD (SAC: 13 gEs, about 12,000 rows): thick enough that a report
/// takes a fraction of a second, thin enough to have small cells.
fn sac_extract() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("joint-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let all = dir.join("opds-all.csv");
        let r = pseudagg(&[
            "gen-testdata",
            "--kind",
            "opds-person",
            "--rows",
            "200000",
            "--month",
            "2025-03",
            "--seed",
            "1",
            "--out",
            all.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let mut x = Extract::read(all.to_str().unwrap());
        let rd = x.col("rd");
        x.rows.retain(|r| r[rd] == "SAC");
        x.write(&dir.join("opds-person-2025-03.csv"))
    })
}

fn report(definition: &Path, input: &Path, out: &Path) -> Output {
    crate::reports::report(
        definition.to_str().unwrap(),
        input.to_str().unwrap(),
        "2025-03",
        out,
    )
}

fn shipped(name: &str) -> PathBuf {
    PathBuf::from(format!("{PIPELINES}/{name}.toml"))
}

/// The shipped language report with its name and population changed.
fn variant(dir: &Path, name: &str, population: &str) -> PathBuf {
    let text = fs::read_to_string(shipped("beratung-sprachniveau")).unwrap();
    let text = text
        .replace(
            "name = \"beratung-sprachniveau\"",
            &format!("name = \"{name}\""),
        )
        .replace(
            "population = \"elb\"",
            &format!("population = \"{population}\""),
        );
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, text).unwrap();
    path
}

/// The published cells of the RD's table: (level, gE, category, indicator) -> value.
fn published(out: &Path, report: &str) -> BTreeMap<(String, String, String, String), i64> {
    let path = out.join(format!(
        "{report}/2025-03/parquet/recipient=rd-SAC/{report}-2025-03.parquet"
    ));
    let mut cells = BTreeMap::new();
    for b in read_parquet(&path) {
        let text = |name: &str, i: usize| {
            let c = b
                .column(b.schema().index_of(name).unwrap())
                .as_string::<i32>();
            if c.is_null(i) {
                String::new()
            } else {
                c.value(i).to_owned()
            }
        };
        let value = b
            .column(b.schema().index_of("value").unwrap())
            .as_primitive::<Int64Type>()
            .clone();
        for i in (0..b.num_rows()).filter(|&i| !value.is_null(i)) {
            cells.insert(
                (
                    text("level", i),
                    text("ge_nr", i),
                    text("sprachniveau", i),
                    text("indicator", i),
                ),
                value.value(i),
            );
        }
    }
    cells
}

/// The cells published in both whose difference (a group of people: the second report's cells
/// are subsets of the first's) is 1 or 2; and how many cells both publish.
fn small_differences(out_a: &Path, a: &str, out_b: &Path, b: &str) -> (usize, usize) {
    let (x, y) = (published(out_a, a), published(out_b, b));
    let common: Vec<_> = x.keys().filter(|k| y.contains_key(*k)).collect();
    let small = common
        .iter()
        .filter(|k| (1..=2).contains(&(x[**k] - y[**k])))
        .count();
    (small, common.len())
}

#[test]
fn a_second_definition_of_the_month_cannot_be_differenced_from_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let input = sac_extract();
    let without_d = variant(dir.path(), "ohne-d", "elb and geschlecht != 'd'");
    let out = dir.path().join("out");
    let r = report(&shipped("beratung-sprachniveau"), input, &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let release = out.join("beratung-sprachniveau/2025-03/release.json");
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(out.join("beratung-sprachniveau/2025-03/manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "release.json"),
        "the release record is hashed in the manifest (and so in the protocol)"
    );
    assert!(release.is_file());

    // Protected alone (in a root of its own, as before), the variant is differenced.
    let alone = dir.path().join("alone");
    let r = report(&without_d, input, &alone);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (small, common) = small_differences(&out, "beratung-sprachniveau", &alone, "ohne-d");
    assert!(
        small > 0,
        "the attack works on this data: {small} of {common}"
    );

    // Protected together with the released report: either no difference of 1 or 2 is left, or,
    // where that needs released cells suppressed (the released pattern is near-minimal, so it
    // leaves little room), the variant is refused with exit 1, names the released report and
    // publishes nothing.
    let r = report(&without_d, input, &out);
    let variant_root = out.join("ohne-d/2025-03");
    if r.code == 1 {
        assert!(
            r.stderr.contains("beratung-sprachniveau") && r.stderr.contains("released"),
            "{}",
            r.stderr
        );
        assert!(!variant_root.exists(), "a refused report publishes nothing");
        return;
    }
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (small, common) = small_differences(&out, "beratung-sprachniveau", &out, "ohne-d");
    assert_eq!(
        small, 0,
        "{small} of {common} common cells differ by 1 or 2"
    );
    assert!(common > 0);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(variant_root.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["suppression"]["joint"]["with"],
        serde_json::json!(["beratung-sprachniveau"])
    );
    assert!(manifest["suppression"]["joint"]["groups"].as_u64().unwrap() > 0);
}

#[test]
fn regenerating_a_month_reproduces_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let input = sac_extract();
    let out = dir.path().join("out");
    let names = ["beratung-sprachniveau", "gefluechtete"];
    for name in names {
        let r = report(&shipped(name), input, &out);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let month = |name: &str| out.join(name).join("2025-03");
    let before: Vec<_> = names.iter().map(|n| tree(&month(n))).collect();
    // Each one again, the other released: the same files, byte for byte. (The steward's manifest
    // says in addition that the regenerated report was audited together with the other.)
    let files = |m: &[u8]| serde_json::from_slice::<serde_json::Value>(m).unwrap()["files"].clone();
    for (i, name) in names.iter().enumerate() {
        let r = report(&shipped(name), input, &out);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let after = tree(&month(name));
        let changed: Vec<&String> = after
            .keys()
            .filter(|k| *k != "manifest.json" && before[i].get(*k) != after.get(*k))
            .collect();
        assert_eq!(
            files(&after["manifest.json"]),
            files(&before[i]["manifest.json"])
        );
        assert!(
            changed.is_empty() && after.len() == before[i].len(),
            "{name} changed when regenerated: {changed:?}"
        );
    }
}

#[test]
fn a_released_report_is_not_redefined_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let input = sac_extract();
    let out = dir.path().join("out");
    let r = report(&shipped("beratung-sprachniveau"), input, &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before = tree(&out.join("beratung-sprachniveau"));
    let changed = variant(
        dir.path(),
        "beratung-sprachniveau",
        "elb and geschlecht != 'd'",
    );
    let r = report(&changed, input, &out);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("released with another definition"),
        "{}",
        r.stderr
    );
    assert!(
        tree(&out.join("beratung-sprachniveau")) == before,
        "the release was replaced"
    );
}

#[test]
fn a_report_of_another_extract_of_the_month_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let r = report(&shipped("beratung-sprachniveau"), sac_extract(), &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut other = Extract::read(sac_extract().to_str().unwrap());
    other.rows.pop();
    let other = other.write(&dir.path().join("opds-person-2025-03.csv"));
    let r = report(&shipped("gefluechtete"), &other, &out);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("another extract"), "{}", r.stderr);
    assert!(!out.join("gefluechtete").exists(), "something was written");
}
