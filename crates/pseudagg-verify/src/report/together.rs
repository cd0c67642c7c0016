//! The month's reports together (issue 19 §1): two report definitions of one month could be
//! subtracted, a cell of one that contains a cell of another showing how many people it counts
//! beyond it.
//!
//! Every report output keeps a release record, `release.json` (listed and hashed in its manifest).
//! It names, as the writer found them from the extract, the positions where a cell of one of the
//! month's reports contains a cell of another at every gE (`nested`). Without the extract those
//! containments cannot be found again here; what is checked from the published files is:
//!
//! - the month's other released reports in the same output root are found beside this one, and
//!   their files of every published cell (`all/`) are read, each checked against its manifest's
//!   SHA-256;
//! - every containment, at every area both reports show, is the relation
//!   `outer = inner + group` with a group of zero or more people;
//! - a group both of whose cells are published must not be 1 to `threshold - 1` people;
//! - the parts of the month's joint system that hold a group are audited again as each report's
//!   own audit is: no suppressed cell of any report, and no group, narrowed to a small count by
//!   everything the month published together.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use pseudagg_core::{Error, Result};

use super::{
    POSITION_SEPARATOR, Relation, ScopeTable, Structure, audit_relations, read_table, relations,
    structure,
};
use crate::finding::{Finding, Rule, Verdict};
use crate::manifest::{self, Manifest};
use crate::read::read_parquet;

const RELEASE_FILE: &str = "release.json";

/// A report of the month: its name and request, the table of every cell it published, its
/// structure and how many RDs it shows.
struct MonthReport {
    name: (String, Option<String>),
    /// The released reports it was protected together with (its manifest's
    /// `suppression.joint.with`).
    with: Vec<String>,
    table: ScopeTable,
    structure: Structure,
    rd_count: usize,
}

impl MonthReport {
    fn label(&self) -> String {
        label(&self.name)
    }
}

/// (outer, inner): report, request, categories joined as the cell keys join them, indicator.
type Position = (String, Option<String>, String, String);

/// The report `dir` (its manifest `m`, its published cells `own`) with the month's other
/// released reports in its output root.
pub(super) fn check(
    dir: &Path,
    m: &Manifest,
    own: ScopeTable,
    rd_count: usize,
    verdict: &mut Verdict,
) -> Result<()> {
    if !m.files.iter().any(|f| f.path == RELEASE_FILE) {
        // An output of layout 1, or written before release records: nothing names the month's
        // other reports.
        return Ok(());
    }
    verdict.check("reports-together");
    let own_release = read_release(&dir.join(RELEASE_FILE))?;
    let own_name = name_of(&own_release);
    let month = m.month.clone().unwrap_or_default();
    let depth = if own_name.1.is_some() { 4 } else { 2 };
    let Some(root) = dir.ancestors().nth(depth) else {
        return Ok(());
    };
    let mut reports = vec![MonthReport {
        name: own_name.clone(),
        with: protected_with(m),
        table: own,
        structure: structure(m, &dir.join("manifest.json"))?,
        rd_count,
    }];
    let mut releases = vec![own_release];
    for other in release_folders(root, &month) {
        let Some(found) = read_other(&other, &own_name, verdict)? else {
            continue;
        };
        releases.push(found.1);
        reports.push(found.0);
    }
    verdict.fact("reports_checked_together", &reports.len());
    if reports.len() < 2 {
        return Ok(());
    }
    // A record made beside released reports holds the containments with them from version 2
    // on; one made first names none and needs none (the later ones hold them).
    for (r, report) in releases.iter().zip(&reports) {
        if r.get("release_version")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            < 2
            && !report.with.is_empty()
        {
            verdict.push(Finding::new(
                Rule::Manifest,
                format!(
                    "the release record of {} was made beside released reports but does not say how its cells nest in theirs (it was written before release version 2), so the month's reports cannot be checked together; run it again",
                    label(&name_of(r))
                ),
            ));
        }
    }
    // Each two of the month's reports were protected together: the later one names the earlier.
    for (i, a) in reports.iter().enumerate() {
        for b in &reports[i + 1..] {
            if !a.with.contains(&b.label()) && !b.with.contains(&a.label()) {
                verdict.push(Finding::new(
                    Rule::Disclosure,
                    format!(
                        "{} and {} of the month were not protected together (neither names the other in `suppression.joint`: one was made in another output root, or before the other was released), so one may be subtracted from the other; run the later one again in this root",
                        a.label(),
                        b.label()
                    ),
                ));
            }
        }
    }
    let nestings = nestings(&releases);
    verdict.fact("nestings", &nestings.len());
    audit_together(&reports, &nestings, verdict);
    Ok(())
}

/// The reports a manifest says its report was protected together with.
fn protected_with(m: &Manifest) -> Vec<String> {
    m.raw
        .pointer("/suppression/joint/with")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn label(name: &(String, Option<String>)) -> String {
    match &name.1 {
        None => name.0.clone(),
        Some(r) => format!("{} (request {r})", name.0),
    }
}

fn read_release(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_slice(&text).map_err(|e| Error::Format {
        path: path.to_owned(),
        reason: format!(
            "is not JSON (line {}, column {}); the release record is written by pseudagg and must not be edited",
            e.line(),
            e.column()
        ),
    })
}

fn name_of(release: &Value) -> (String, Option<String>) {
    (
        release
            .get("report")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        release
            .get("request")
            .and_then(Value::as_str)
            .map(str::to_owned),
    )
}

/// Every output folder of `month` under `root` with a release record: `{root}/{report}/{month}`
/// and `{root}/{report}/requests/{reference}/{month}`, in path order. (Listing folders is no
/// check: verify takes the same walk as the writers.) A month that is no month has none.
fn release_folders(root: &Path, month: &str) -> Vec<PathBuf> {
    let Ok(month) = month.parse() else {
        return Vec::new();
    };
    let mut out = pseudagg_core::month_folders(root, month);
    out.retain(|d| d.join(RELEASE_FILE).is_file() && d.join("manifest.json").is_file());
    out
}

/// Another released report of the month, unless it is `own` (its published version, when `own` is
/// a staged or regenerated one). Its release record and its file of every published cell must
/// have the SHA-256 its manifest lists.
fn read_other(
    dir: &Path,
    own: &(String, Option<String>),
    verdict: &mut Verdict,
) -> Result<Option<(MonthReport, Value)>> {
    let release = read_release(&dir.join(RELEASE_FILE))?;
    let name = name_of(&release);
    if &name == own {
        return Ok(None);
    }
    let m = manifest::load(dir)?;
    let month = m.month.clone().unwrap_or_default();
    let stem = format!("{}-{month}", name.0);
    let all = format!("all/{stem}.parquet");
    for rel in [RELEASE_FILE, all.as_str()] {
        let listed = m.files.iter().find(|f| f.path == rel);
        let actual = std::fs::read(dir.join(rel))
            .ok()
            .map(|b| hex::encode(Sha256::digest(&b)));
        if listed.is_none() || listed.map(|f| &f.sha256) != actual.as_ref() {
            verdict.push(
                Finding::new(
                    Rule::FileHash,
                    format!(
                        "the month's released report {} is not as its manifest lists it, so the month's reports cannot be checked together; restore it from backup",
                        label(&name)
                    ),
                )
                .file(dir.join(rel).display().to_string()),
            );
            return Ok(None);
        }
    }
    let s = structure(&m, &dir.join("manifest.json"))?;
    let file = read_parquet(&dir.join(&all))?;
    // Its own findings are its own verify's: here its cells are what counts.
    let mut scratch = Verdict::new(dir, "report");
    let table = read_table(&file, &all, &s, &mut scratch);
    let rd_count = m
        .raw
        .get("scopes")
        .and_then(Value::as_array)
        .map_or(0, |a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|x| x.starts_with("rd-") || x.starts_with("rd="))
                .count()
        });
    Ok(Some((
        MonthReport {
            name,
            with: protected_with(&m),
            table,
            structure: s,
            rd_count,
        },
        release,
    )))
}

/// Every containment the month's release records name, once.
fn nestings(releases: &[Value]) -> BTreeSet<(Position, Position)> {
    let position = |v: &Value| -> Option<Position> {
        Some((
            v.get("report")?.as_str()?.to_owned(),
            v.get("request").and_then(Value::as_str).map(str::to_owned),
            v.get("categories")?
                .as_array()?
                .iter()
                .map(|c| c.as_str().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(POSITION_SEPARATOR),
            v.get("indicator")?.as_str()?.to_owned(),
        ))
    };
    releases
        .iter()
        .filter_map(|r| r.get("nested").and_then(Value::as_array))
        .flatten()
        .filter_map(|n| Some((position(n.get("outer")?)?, position(n.get("inner")?)?)))
        .collect()
}

/// The month's reports as one table: each report's cells and relations, and per containment and
/// area a group `outer - inner`.
fn audit_together(
    reports: &[MonthReport],
    nestings: &BTreeSet<(Position, Position)>,
    verdict: &mut Verdict,
) {
    let (mut joint, mut rels, offsets) = joint_table(reports);
    let by_name: HashMap<(String, Option<String>), usize> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.clone(), i))
        .collect();
    let threshold = reports[0].structure.threshold;
    let mut small: Vec<String> = Vec::new();
    let mut contradicting = 0_usize;
    let mut groups = 0_usize;
    let mut seen_pairs: HashSet<(usize, usize)> = HashSet::new();
    for (outer, inner) in nestings {
        let (Some(&at_outer), Some(&at_inner)) = (
            by_name.get(&(outer.0.clone(), outer.1.clone())),
            by_name.get(&(inner.0.clone(), inner.1.clone())),
        ) else {
            // A report no longer in the root: nothing of it is checked here.
            continue;
        };
        let (ra, rb) = (&reports[at_outer], &reports[at_inner]);
        for (i, key) in ra.table.keys.iter().enumerate() {
            if key.1 != outer.2 || key.2 != outer.3 {
                continue;
            }
            let Some(&j) = rb
                .table
                .index
                .get(&(key.0.clone(), inner.2.clone(), inner.3.clone()))
            else {
                continue;
            };
            let (x, y) = (offsets[at_outer] + i, offsets[at_inner] + j);
            if !seen_pairs.insert((x, y)) {
                continue;
            }
            let value = match (joint.values[x], joint.values[y]) {
                (Some(vx), Some(vy)) if vx < vy => {
                    contradicting += 1;
                    continue;
                }
                (Some(vx), Some(vy)) => Some(vx - vy),
                _ => None,
            };
            groups += 1;
            let g = joint.keys.len();
            let name = format!(
                "{}: the people {} counts in {} beyond {} in {}",
                place(&key.0),
                ra.label(),
                position(&outer.2, &outer.3),
                rb.label(),
                position(&inner.2, &inner.3)
            );
            if value.is_some_and(|v| (1..threshold).contains(&v)) {
                small.push(name.clone());
            }
            joint.groups.insert(g, name);
            joint
                .keys
                .push((key.0.clone(), format!("group {g}"), String::new()));
            joint.values.push(value);
            rels.push(Relation::Sum(x, vec![y, g]));
        }
    }
    verdict.fact("groups_checked_together", &groups);
    if contradicting > 0 {
        verdict.push(Finding::new(
            Rule::Inconsistent,
            format!(
                "{contradicting} published cells are smaller than a cell of another of the month's reports that they contain (by the release records)"
            ),
        ));
    }
    if !small.is_empty() {
        verdict.push(Finding::new(
            Rule::Disclosure,
            format!(
                "{} pairs of cells published by two of the month's reports, one containing the other, differ by 1 to {} people, so the difference counts a small group; the first: {}",
                small.len(),
                threshold - 1,
                small.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ),
        ));
    }
    let (findings, audited) = audit_relations(
        "the month's reports together",
        &joint,
        &reports[0].structure,
        &rels,
        true,
    );
    verdict.fact("suppressed_cells_audited_together", &audited);
    for f in findings {
        verdict.push(f);
    }
}

/// Every report's cells in one table (each indicator named with its report), with each report's
/// relations, and where each report's cells start.
fn joint_table(reports: &[MonthReport]) -> (ScopeTable, Vec<Relation>, Vec<usize>) {
    let mut joint = ScopeTable::default();
    let mut rels: Vec<Relation> = Vec::new();
    let mut offsets = Vec::new();
    for r in reports {
        let off = joint.keys.len();
        offsets.push(off);
        let name = r.label();
        for (key, v) in r.table.keys.iter().zip(&r.table.values) {
            let (area, cat, ind) = key.clone();
            let key = (area, cat, format!("{ind} ({name})"));
            joint.index.insert(key.clone(), joint.keys.len());
            joint.keys.push(key);
            joint.values.push(*v);
        }
        rels.extend(
            relations(&r.table, &r.structure, r.rd_count)
                .into_iter()
                .map(|rel| match rel {
                    Relation::Sum(t, parts) => {
                        Relation::Sum(t + off, parts.into_iter().map(|p| p + off).collect())
                    }
                    Relation::Subset(p, w) => Relation::Subset(p + off, w + off),
                }),
        );
    }
    (joint, rels, offsets)
}

/// How findings name an area: `gE 86101`, `RD NRW`, `Bund`.
fn place(area: &super::Area) -> String {
    match area.0.as_str() {
        "ge" => format!("gE {}", area.2),
        "rd" => format!("RD {}", area.1),
        _ => "Bund".to_owned(),
    }
}

/// How findings name a position: `Ukraine / bestand`, or the indicator alone.
fn position(categories: &str, indicator: &str) -> String {
    if categories.is_empty() {
        indicator.to_owned()
    } else {
        format!(
            "{} / {indicator}",
            categories.replace(POSITION_SEPARATOR, " / ")
        )
    }
}
