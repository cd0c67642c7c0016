//! Issue 19 §1: two definitions of one month could be differenced. Run as shipped, then with the
//! population `elb and geschlecht != 'd'`, the cells published in both differed by 1 or 2 where
//! the second counted one or two diverse people fewer. Each report now keeps a release record,
//! and a later report of the month is protected together with the released ones.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;

use sha2::{Digest, Sha256};

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
    // `verify` of the month root checks both, together: every containment the release records
    // name is in one system with both reports' cells.
    let (code, v) = verify_month(&out);
    assert_eq!(code, 0, "{v:#}");
    for output in v["outputs"].as_array().unwrap() {
        assert_eq!(
            output["facts"]["reports_checked_together"], "2",
            "{output:#}"
        );
        assert!(
            output["checks"]
                .as_array()
                .unwrap()
                .contains(&"reports-together".into())
        );
    }
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

/// `verify OUT --month 2025-03 --format json`: the exit code and the verdicts.
fn verify_month(out: &Path) -> (i32, serde_json::Value) {
    let r = pseudagg(&[
        "verify",
        out.to_str().unwrap(),
        "--month",
        "2025-03",
        "--format",
        "json",
    ]);
    assert!(r.code == 0 || r.code == 1, "verify errored:\n{}", r.stderr);
    (r.code, serde_json::from_str(&r.stdout).unwrap())
}

/// The findings of every output of a month verdict, as text.
fn messages(v: &serde_json::Value) -> Vec<String> {
    v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["findings"].as_array().unwrap().iter())
        .map(|f| format!("{} {}", f["rule"], f["message"]))
        .collect()
}

/// The differencing attack, found by `verify` alone: the variant protected in a root of its own
/// and put beside the released report afterwards. On main verify passed both outputs.
#[test]
fn verify_of_the_month_root_finds_two_reports_that_can_be_differenced() {
    let dir = tempfile::tempdir().unwrap();
    let input = sac_extract();
    let out = dir.path().join("out");
    let r = report(&shipped("beratung-sprachniveau"), input, &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let alone = dir.path().join("alone");
    let without_d = variant(dir.path(), "ohne-d", "elb and geschlecht != 'd'");
    let r = report(&without_d, input, &alone);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (code, v) = verify_month(&out);
    assert_eq!(code, 0, "the released report alone passes: {v:#}");

    // 1. Copied in: neither names the other as protected together.
    crate::verify::copy_tree(&alone.join("ohne-d"), &out.join("ohne-d"));
    let (code, v) = verify_month(&out);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["outputs"].as_array().unwrap().len(), 2);
    let found = messages(&v);
    assert!(
        found
            .iter()
            .any(|m| m.contains("\"disclosure\"") && m.contains("not protected together")),
        "{found:#?}"
    );

    // 2. A forger who also writes the containments the writer would have found (every cell of
    // the variant lies in the shipped report's cell of the same position) and claims joint
    // protection: the published differences of 1 or 2 are found, and no value is shown.
    let month = out.join("ohne-d/2025-03");
    edit_release(&month, |release| {
        let position = |report: &str, c: &serde_json::Value, i: &serde_json::Value| serde_json::json!({"report": report, "categories": [c], "indicator": i});
        let mut nested = Vec::new();
        for c in release["categories"].as_array().unwrap() {
            for i in release["indicators"].as_array().unwrap() {
                nested.push(serde_json::json!({
                    "outer": position("beratung-sprachniveau", c, i),
                    "inner": position("ohne-d", c, i),
                }));
            }
        }
        release["nested"] = nested.into();
    });
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(month.join("manifest.json")).unwrap()).unwrap();
    manifest["suppression"]["joint"] =
        serde_json::json!({"with": ["beratung-sprachniveau"], "atoms": 0, "groups": 0});
    fs::write(month.join("manifest.json"), manifest.to_string()).unwrap();
    let (code, v) = verify_month(&out);
    assert_eq!(code, 1, "{v:#}");
    let found = messages(&v);
    assert!(
        !found.iter().any(|m| m.contains("not protected together")),
        "{found:#?}"
    );
    let small = found
        .iter()
        .find(|m| m.contains("differ by 1 to 2 people"))
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert!(small.contains("beyond ohne-d"), "{small}");
    // Findings name places, never a count of people or an interval.
    assert!(!found.iter().any(|m| m.contains(" between ")), "{found:#?}");
}

/// Rewrites `release.json` of a month folder through `change` and its manifest entry to match.
fn edit_release(month: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let mut release: serde_json::Value =
        serde_json::from_slice(&fs::read(month.join("release.json")).unwrap()).unwrap();
    change(&mut release);
    let bytes = serde_json::to_vec(&release).unwrap();
    fs::write(month.join("release.json"), &bytes).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(month.join("manifest.json")).unwrap()).unwrap();
    for f in manifest["files"].as_array_mut().unwrap() {
        if f["path"] == "release.json" {
            f["sha256"] = hex::encode(Sha256::digest(&bytes)).into();
            f["bytes"] = bytes.len().into();
        }
    }
    fs::write(month.join("manifest.json"), manifest.to_string()).unwrap();
}

/// A release record from before containments were recorded (version 1): harmless for the month's
/// first report, which named none; a report made beside released ones must have them.
#[test]
fn a_release_record_without_its_containments_is_found_where_it_needed_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = sac_extract();
    let out = dir.path().join("out");
    for name in ["beratung-sprachniveau", "gefluechtete"] {
        let r = report(&shipped(name), input, &out);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let old = |r: &mut serde_json::Value| {
        r["release_version"] = 1.into();
        r.as_object_mut().unwrap().remove("nested");
    };
    edit_release(&out.join("beratung-sprachniveau/2025-03"), old);
    let (code, v) = verify_month(&out);
    assert_eq!(code, 0, "the first report named none: {v:#}");
    edit_release(&out.join("gefluechtete/2025-03"), old);
    let (code, v) = verify_month(&out);
    assert_eq!(code, 1, "{v:#}");
    let found = messages(&v);
    assert!(
        found
            .iter()
            .any(|m| m.contains("gefluechtete was made beside released reports")),
        "{found:#?}"
    );
}

/// Cells published by all three reports where `a + b - union` (the people both `a` and `b`
/// count, `union` counting everyone either counts) is 1 or 2; and how many such triples there are.
fn small_intersections(out: &[(&Path, &str)]) -> (usize, usize) {
    let [a, b, union] = [0, 1, 2].map(|i| published(out[i].0, out[i].1));
    let common: Vec<_> = union
        .keys()
        .filter(|k| a.contains_key(*k) && b.contains_key(*k))
        .collect();
    let small = common
        .iter()
        .filter(|k| (1..=2).contains(&(a[**k] + b[**k] - union[**k])))
        .count();
    (small, common.len())
}

/// The month folders of reports made in roots of their own (`alone[i]` holds `names[i]`), moved
/// side by side into one root, `apart` under `dir`.
fn side_by_side(dir: &Path, names: &[&str], alone: &[PathBuf]) -> PathBuf {
    let apart = dir.join("apart");
    for (n, root) in names.iter().zip(alone) {
        fs::create_dir_all(apart.join(n)).unwrap();
        fs::rename(root.join(n).join("2025-03"), apart.join(n).join("2025-03")).unwrap();
    }
    apart
}

/// The union attack: no report's cell contains another's, so no containment relates them, but
/// one report counts women, one Ukrainians and one everyone who is either; the sum of the first
/// two less the third counts the Ukrainian women. Protected together, the three reports leave no
/// such count of 1 or 2 (or the third is refused), and `verify` of the month checks the same.
#[test]
fn three_reports_of_the_month_cannot_be_combined_to_count_who_is_in_two() {
    let dir = tempfile::tempdir().unwrap();
    let input = sac_extract();
    let defs = [
        variant(dir.path(), "frauen", "elb and geschlecht = 'w'"),
        variant(dir.path(), "ukr", "elb and staatsangehoerigkeit = 'UKR'"),
        variant(
            dir.path(),
            "frauen-oder-ukr",
            "elb and (geschlecht = 'w' or staatsangehoerigkeit = 'UKR')",
        ),
    ];
    let names = ["frauen", "ukr", "frauen-oder-ukr"];

    // Each in a root of its own (as before the reports of a month were protected together): the
    // attack works on this data.
    let alone: Vec<PathBuf> = names.iter().map(|n| dir.path().join(n)).collect();
    for (def, root) in defs.iter().zip(&alone) {
        let r = report(def, input, root);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let (small, common) = small_intersections(&[
        (&alone[0], names[0]),
        (&alone[1], names[1]),
        (&alone[2], names[2]),
    ]);
    assert!(
        small > 0,
        "the attack works on this data: {small} of {common}"
    );

    let out = dir.path().join("out");
    for def in &defs[..2] {
        let r = report(def, input, &out);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = report(&defs[2], input, &out);
    if r.code == 1 {
        assert!(
            r.stderr.contains("released") && r.stderr.contains("frauen"),
            "{}",
            r.stderr
        );
        assert!(!out.join("frauen-oder-ukr/2025-03").exists());
        return;
    }
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (small, common) =
        small_intersections(&[(&out, names[0]), (&out, names[1]), (&out, names[2])]);
    assert_eq!(
        small, 0,
        "{small} of {common} triples count 1 or 2 people in both"
    );
    assert!(common > 0);
    let release: serde_json::Value = serde_json::from_slice(
        &fs::read(out.join("frauen-oder-ukr/2025-03/release.json")).unwrap(),
    )
    .unwrap();
    assert!(
        release["unions"].as_array().is_some_and(|u| !u.is_empty()),
        "the union is recorded for verify: {}",
        release["unions"]
    );
    let (code, v) = verify_month(&out);
    assert_eq!(code, 0, "{:#?}", messages(&v));

    // verify finds the attack in the outputs made apart, put side by side with the records.
    let apart = side_by_side(dir.path(), &names, &alone);
    let unions = release["unions"].clone();
    edit_release(&apart.join("frauen-oder-ukr/2025-03"), |r| {
        r["unions"] = unions;
    });
    let (code, v) = verify_month(&apart);
    assert_eq!(code, 1, "{v:#}");
    let found = messages(&v);
    assert!(
        found.iter().any(|m| m.contains("the people both")),
        "{found:#?}"
    );
}

#[test]
fn a_crossed_report_that_released_sums_leave_no_room_for_is_refused_at_once() {
    // `gefluechtete` publishes each origin's count per gE; `gefluechtete-geschlecht` splits it by
    // gender. Where a released origin count is published and its gender cells are small, no
    // pattern of the crossed report hides them: the relation's other cells cannot move far
    // enough. The run says so from the relations alone, before any audit round (it used to take
    // three rounds of audits: 10 minutes at 550,000 rows), and names the cells.
    let dir = tempfile::tempdir().unwrap();
    let input = sac_extract();
    let out = dir.path().join("out");
    let r = report(&shipped("gefluechtete"), input, &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = report(&shipped("gefluechtete-geschlecht"), input, &out);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot be protected together")
            && r.stderr.contains("(gefluechtete)")
            && r.stderr.contains("cannot hide them"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("could be narrowed to [1.0, 2.0]"),
        "the cells are named with what they can be narrowed to: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("audit round"),
        "refused before any audit round: {}",
        r.stderr
    );
    assert!(!out.join("gefluechtete-geschlecht/2025-03").exists());
}

/// Where three of `four` reports' cells are published and one is suppressed, the sum (the first
/// report is the whole, the others its parts) gives the fourth: how many such cells count 1 or 2
/// people, and how many there are.
fn derived_from_partition(four: &[(&Path, &str)]) -> (usize, usize) {
    let cells: Vec<_> = four.iter().map(|(out, r)| published(out, r)).collect();
    let mut keys: BTreeSet<_> = BTreeSet::new();
    for c in &cells {
        keys.extend(c.keys().cloned());
    }
    let (mut small, mut derived) = (0, 0);
    for k in keys {
        let v: Vec<Option<i64>> = cells.iter().map(|c| c.get(&k).copied()).collect();
        if v.iter().filter(|x| x.is_none()).count() != 1 {
            continue;
        }
        let parts: i64 = v[1..].iter().flatten().sum();
        let value = match v[0] {
            None => parts,
            Some(whole) => whole - parts,
        };
        derived += 1;
        if (1..=2).contains(&value) {
            small += 1;
        }
    }
    (small, derived)
}

/// The partition attack: a report of everyone, and one each of women, men and diverse people.
/// No two parts make the whole, so no union relates them, and no containment shows the third;
/// but the whole less two published parts is the third. Protected together, no suppressed small
/// cell can be computed that way (or the whole is refused), the partition is recorded, and
/// `verify` of the month passes.
#[test]
fn a_report_of_everyone_beside_one_per_gender_does_not_give_away_the_third() {
    let dir = tempfile::tempdir().unwrap();
    let input = sac_extract();
    let defs = [
        variant(dir.path(), "alle", "elb"),
        variant(dir.path(), "frauen", "elb and geschlecht = 'w'"),
        variant(dir.path(), "maenner", "elb and geschlecht = 'm'"),
        variant(dir.path(), "divers", "elb and geschlecht = 'd'"),
    ];
    let names = ["alle", "frauen", "maenner", "divers"];
    let alone: Vec<PathBuf> = names.iter().map(|n| dir.path().join(n)).collect();
    for (def, root) in defs.iter().zip(&alone) {
        let r = report(def, input, root);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let apart: Vec<(&Path, &str)> = alone.iter().map(PathBuf::as_path).zip(names).collect();
    let (small, derived) = derived_from_partition(&apart);
    assert!(
        small > 0,
        "the attack works on this data: {small} of {derived}"
    );

    // The parts first, then the whole, in one root.
    let out = dir.path().join("out");
    for def in &defs[1..] {
        let r = report(def, input, &out);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = report(&defs[0], input, &out);
    if r.code == 1 {
        assert!(r.stderr.contains("released"), "{}", r.stderr);
        assert!(!out.join("alle/2025-03").exists());
        return;
    }
    assert_eq!(r.code, 0, "{}", r.stderr);
    let together: Vec<(&Path, &str)> = names.iter().map(|n| (out.as_path(), *n)).collect();
    let (small, derived) = derived_from_partition(&together);
    assert_eq!(
        small, 0,
        "{small} of {derived} suppressed cells are 1 or 2 by the sum"
    );
    let release: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("alle/2025-03/release.json")).unwrap()).unwrap();
    assert!(
        release["partitions"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x["parts"].as_array().unwrap().len() == 3)),
        "the partition is recorded for verify: {}",
        release["partitions"]
    );
    let (code, v) = verify_month(&out);
    assert_eq!(code, 0, "{:#?}", messages(&v));

    // verify finds the attack in the outputs made apart, put side by side with the records.
    let apart = side_by_side(dir.path(), &names, &alone);
    let narrowed = |v: &serde_json::Value| {
        messages(v)
            .iter()
            .filter(|m| m.contains("narrow the suppressed cell") && m.contains("(divers)"))
            .count()
    };
    let (code, v) = verify_month(&apart);
    assert_eq!(code, 1, "not protected together: {v:#}");
    let without = narrowed(&v);
    let partitions = release["partitions"].clone();
    edit_release(&apart.join("alle/2025-03"), |r| {
        r["partitions"] = partitions;
    });
    let (code, v) = verify_month(&apart);
    assert_eq!(code, 1, "{v:#}");
    assert!(
        narrowed(&v) > without,
        "the partitions show small diverse cells: {} with them, {without} without",
        narrowed(&v)
    );
}
