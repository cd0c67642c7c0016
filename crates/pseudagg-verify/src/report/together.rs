//! The month's reports together (issue 19 §1): two report definitions of one month could be
//! subtracted, a cell of one that contains a cell of another showing how many people it counts
//! beyond it.
//!
//! Every report output keeps a release record, `release.json` (listed and hashed in its manifest).
//! It names, as the writer found them from the extract, how the cells of the month's reports
//! relate at every gE: where a cell of one contains a cell of another (`nested`), where two count
//! the same people (`equal`, release version 3), where one counts exactly the people either
//! of two others counts (`unions`, version 3), and where one counts exactly the people of three or
//! more others that share nobody (`partitions`, version 4). Without the extract those relations cannot be
//! found again here; what is checked from the published files is:
//!
//! - the month's other released reports in the same output root are found beside this one, and
//!   their files of every published cell (`all/`) are read, each checked against its manifest's
//!   SHA-256;
//! - every containment, at every area both reports show, is the relation
//!   `outer = inner + group` with a group of zero or more people;
//! - every equality is `x = y`, every union `union = x + (union - x)`,
//!   `y = (union - x) + both`, with `both` the people both count, and every partition
//!   `whole = part1 + part2 + ...`;
//! - a group whose cells are all published must not be 1 to `threshold - 1` people;
//! - the parts of the month's joint system that hold a group are audited again as each report's
//!   own audit is: no suppressed cell of any report, and no group, narrowed to a small count by
//!   everything the month published together.

use std::collections::{BTreeSet, HashMap};
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

pub(super) const RELEASE_FILE: &str = "release.json";

/// A report of the month: its name and request, the table of every cell it published, its
/// structure and how many RDs it shows.
struct MonthReport {
    name: (String, Option<String>),
    /// Its manifest as read (JSON text): with its cells, what the joint audit depends on.
    manifest: String,
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
    (own, own_structure): (ScopeTable, Structure),
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
        manifest: m.raw.to_string(),
        with: protected_with(m),
        table: own,
        structure: own_structure,
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
    // on, the equal cells and unions from version 3 and the partitions from version 4; one made
    // first names none and needs none (the later ones hold them).
    for (r, report) in releases.iter().zip(&reports) {
        if r.get("release_version")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            < 4
            && !report.with.is_empty()
        {
            verdict.push(Finding::new(
                Rule::Manifest,
                format!(
                    "the release record of {} was made beside released reports but does not say every way its cells relate to theirs (it was written before release version 4, which records equal cells, unions and partitions beside the containments), so the month's reports cannot be checked together; run it again",
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
    let recorded = recorded(&releases);
    verdict.fact("nestings", &recorded.nested.len());
    verdict.fact("relations_recorded", &recorded.len());
    // In name order, so that every output of the month sets up the same system.
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    let key = fingerprint(&reports, &recorded);
    let audited = AUDITED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key)
        .or_insert_with(|| audit_together(&reports, &recorded))
        .clone();
    verdict.fact("groups_checked_together", &audited.groups);
    verdict.fact("suppressed_cells_audited_together", &audited.cells_audited);
    for f in audited.findings {
        verdict.push(f);
    }
    Ok(())
}

/// What the joint audit of a month's reports found: the same for each of the month's outputs.
#[derive(Clone)]
struct JointAudit {
    groups: usize,
    cells_audited: usize,
    findings: Vec<Finding>,
}

/// The joint audits done in this process, by [`fingerprint`]: `verify OUT --month M` gives a
/// verdict per output, and each output's would otherwise solve the same system again.
static AUDITED: std::sync::LazyLock<std::sync::Mutex<HashMap<[u8; 32], JointAudit>>> =
    std::sync::LazyLock::new(Default::default);

/// Everything the joint audit reads: each report's name, manifest and published cells, and the
/// recorded relations. (The same cells in another order set up the same system.)
fn fingerprint(reports: &[MonthReport], recorded: &Recorded) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    for r in reports {
        field(label(&r.name).as_bytes());
        field(r.manifest.as_bytes());
        // In key order: a report's own cells come from its scope files, another's from its
        // file of every cell, each in its own row order.
        let mut cells: Vec<String> = r
            .table
            .keys
            .iter()
            .zip(&r.table.values)
            .map(|(k, v)| format!("{k:?}={v:?}"))
            .collect();
        cells.sort_unstable();
        for c in cells {
            field(c.as_bytes());
        }
    }
    field(
        format!(
            "{:?}",
            (
                &recorded.equal,
                &recorded.nested,
                &recorded.unions,
                &recorded.partitions
            )
        )
        .as_bytes(),
    );
    h.finalize().into()
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

pub(super) fn read_release(path: &Path) -> Result<Value> {
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
    // Its own findings are its own verify's: here its cells and relations are what counts.
    let mut scratch = Verdict::new(dir, "report");
    let mut s = structure(&m, &dir.join("manifest.json"))?;
    super::definition::confirm(dir, &m, &mut s, &mut scratch)?;
    let file = read_parquet(&dir.join(&all))?;
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
            manifest: m.raw.to_string(),
            with: protected_with(&m),
            table,
            structure: s,
            rd_count,
        },
        release,
    )))
}

/// How the month's release records say their cells relate, each relation once.
#[derive(Default)]
struct Recorded {
    /// (x, y): the same people.
    equal: BTreeSet<(Position, Position)>,
    /// (outer, inner).
    nested: BTreeSet<(Position, Position)>,
    /// (union, x, y): the union counts exactly the people x or y counts.
    unions: BTreeSet<(Position, Position, Position)>,
    /// (whole, parts): the whole counts exactly the people of its parts, which share nobody.
    partitions: BTreeSet<(Position, Vec<Position>)>,
}

impl Recorded {
    fn len(&self) -> usize {
        self.equal.len() + self.nested.len() + self.unions.len() + self.partitions.len()
    }
}

/// Every relation the month's release records name, once.
fn recorded(releases: &[Value]) -> Recorded {
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
    let list = |field: &'static str| {
        releases
            .iter()
            .filter_map(move |r| r.get(field).and_then(Value::as_array))
            .flatten()
    };
    let pair = |n: &Value| Some((position(n.get("outer")?)?, position(n.get("inner")?)?));
    Recorded {
        equal: list("equal").filter_map(pair).collect(),
        nested: list("nested").filter_map(pair).collect(),
        unions: list("unions")
            .filter_map(|u| {
                let parts = u.get("parts")?.as_array()?;
                Some((
                    position(u.get("union")?)?,
                    position(parts.first()?)?,
                    position(parts.get(1)?)?,
                ))
            })
            .collect(),
        partitions: list("partitions")
            .filter_map(|u| {
                let parts: Option<Vec<Position>> =
                    u.get("parts")?.as_array()?.iter().map(position).collect();
                Some((position(u.get("union")?)?, parts?))
            })
            .collect(),
    }
}

/// The month's reports as one joint table, to which the recorded relations add.
struct Together<'a> {
    reports: &'a [MonthReport],
    joint: ScopeTable,
    rels: Vec<Relation>,
    offsets: Vec<usize>,
    by_name: HashMap<(String, Option<String>), usize>,
    /// The group `x - y` made for cells (x, y).
    made: HashMap<(usize, usize), usize>,
    threshold: u64,
    /// Groups of 1 to `threshold - 1` people that published cells show, by name.
    small: Vec<String>,
    contradicting: usize,
    groups: usize,
}

impl Together<'_> {
    /// Per area that every position's report shows: the area and each position's cell there. A
    /// position of a report no longer in the root gives none (nothing of it is checked here).
    fn cells(&self, at: &[&Position]) -> Vec<(super::Area, Vec<usize>)> {
        let Some(reports) = at
            .iter()
            .map(|p| self.by_name.get(&(p.0.clone(), p.1.clone())).copied())
            .collect::<Option<Vec<usize>>>()
        else {
            return Vec::new();
        };
        let first = &self.reports[reports[0]];
        let mut out = Vec::new();
        for key in &first.table.keys {
            if key.1 != at[0].2 || key.2 != at[0].3 {
                continue;
            }
            let cells: Option<Vec<usize>> = at
                .iter()
                .zip(&reports)
                .map(|(p, &r)| {
                    let i = *self.reports[r].table.index.get(&(
                        key.0.clone(),
                        p.2.clone(),
                        p.3.clone(),
                    ))?;
                    Some(self.offsets[r] + i)
                })
                .collect();
            if let Some(cells) = cells {
                out.push((key.0.clone(), cells));
            }
        }
        out
    }

    /// Adds a group of people of `value` (unknown where `None`) at `area`, named `name`.
    fn group(&mut self, area: &super::Area, value: Option<u64>, name: String) -> usize {
        self.groups += 1;
        let g = self.joint.keys.len();
        if value.is_some_and(|v| (1..self.threshold).contains(&v)) {
            self.small.push(name.clone());
        }
        self.joint.groups.insert(g, name);
        self.joint.linked.insert(g);
        self.joint
            .keys
            .push((area.clone(), format!("group {g}"), String::new()));
        self.joint.values.push(value);
        g
    }

    /// `whole = parts[0] + parts[1] + ...`.
    fn partition(&mut self, whole: &Position, parts: &[Position]) {
        let mut all = vec![whole];
        all.extend(parts);
        for (_, c) in self.cells(&all) {
            let values: Option<Vec<u64>> = c.iter().map(|&x| self.joint.values[x]).collect();
            if let Some(v) = values
                && v[0] != v[1..].iter().sum::<u64>()
            {
                self.contradicting += 1;
                continue;
            }
            self.joint.linked.extend(c.iter().copied());
            self.rels.push(Relation::Sum(c[0], c[1..].to_vec()));
        }
    }

    /// `x = y`.
    fn equal(&mut self, x: &Position, y: &Position) {
        for (_, c) in self.cells(&[x, y]) {
            let (cx, cy) = (c[0], c[1]);
            if let (Some(vx), Some(vy)) = (self.joint.values[cx], self.joint.values[cy])
                && vx != vy
            {
                self.contradicting += 1;
                continue;
            }
            self.joint.linked.extend([cx, cy]);
            self.rels.push(Relation::Sum(cx, vec![cy]));
        }
    }

    /// The group `outer - inner` of cells (x, y) at `area`, made once: `x = y + group`.
    fn beyond(
        &mut self,
        area: &super::Area,
        (x, y): (usize, usize),
        (outer, inner): (&Position, &Position),
    ) -> Option<usize> {
        if let Some(&g) = self.made.get(&(x, y)) {
            return Some(g);
        }
        let value = match (self.joint.values[x], self.joint.values[y]) {
            (Some(vx), Some(vy)) if vx < vy => {
                self.contradicting += 1;
                return None;
            }
            (Some(vx), Some(vy)) => Some(vx - vy),
            _ => None,
        };
        let name = format!(
            "{}: the people {} counts beyond {}",
            place(area),
            cell_name(outer),
            cell_name(inner)
        );
        let g = self.group(area, value, name);
        self.made.insert((x, y), g);
        self.joint.linked.extend([x, y]);
        self.rels.push(Relation::Sum(x, vec![y, g]));
        Some(g)
    }

    /// `outer` counts everyone `inner` counts.
    fn nested(&mut self, outer: &Position, inner: &Position) {
        for (area, c) in self.cells(&[outer, inner]) {
            self.beyond(&area, (c[0], c[1]), (outer, inner));
        }
    }

    /// `union` counts exactly the people `x` or `y` counts: `union = x + (union - x)` and
    /// `y = (union - x) + both`.
    fn union(&mut self, union: &Position, x: &Position, y: &Position) {
        for (area, c) in self.cells(&[union, x, y]) {
            let (cz, cx, cy) = (c[0], c[1], c[2]);
            let Some(d) = self.beyond(&area, (cz, cx), (union, x)) else {
                continue;
            };
            let value = match (
                self.joint.values[cz],
                self.joint.values[cx],
                self.joint.values[cy],
            ) {
                (Some(vz), Some(vx), Some(vy)) if vx + vy < vz || vy > vz => {
                    self.contradicting += 1;
                    continue;
                }
                (Some(vz), Some(vx), Some(vy)) => Some(vx + vy - vz),
                _ => None,
            };
            let name = format!(
                "{}: the people both {} and {} count ({} counts everyone either counts)",
                place(&area),
                cell_name(x),
                cell_name(y),
                cell_name(union)
            );
            let both = self.group(&area, value, name);
            self.joint.linked.insert(cy);
            self.rels.push(Relation::Sum(cy, vec![d, both]));
        }
    }
}

/// The month's reports as one table: each report's cells and relations, and the relations the
/// release records name between them, with a group of people for each difference they make.
fn audit_together(reports: &[MonthReport], recorded: &Recorded) -> JointAudit {
    let (joint, rels, offsets) = joint_table(reports);
    let mut t = Together {
        reports,
        joint,
        rels,
        offsets,
        by_name: reports
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect(),
        made: HashMap::new(),
        // The strictest of the month's reports' rules.
        threshold: reports
            .iter()
            .map(|r| r.structure.threshold)
            .max()
            .unwrap_or(0),
        small: Vec::new(),
        contradicting: 0,
        groups: 0,
    };
    for (x, y) in &recorded.equal {
        t.equal(x, y);
    }
    for (outer, inner) in &recorded.nested {
        t.nested(outer, inner);
    }
    for (union, x, y) in &recorded.unions {
        t.union(union, x, y);
    }
    for (whole, parts) in &recorded.partitions {
        t.partition(whole, parts);
    }
    let threshold = t.threshold;
    let mut findings = Vec::new();
    if t.contradicting > 0 {
        findings.push(Finding::new(
            Rule::Inconsistent,
            format!(
                "{} published cells contradict how the release records say the month's reports relate (a cell smaller than one it contains, two equal cells that differ, or a whole that is not the sum of its parts)",
                t.contradicting
            ),
        ));
    }
    if !t.small.is_empty() {
        findings.push(Finding::new(
            Rule::Disclosure,
            format!(
                "{} groups of people, each the difference of cells two of the month's reports published, differ by 1 to {} people, so the difference counts a small group; the first: {}",
                t.small.len(),
                threshold - 1,
                t.small.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ),
        ));
    }
    let strictest = Structure {
        threshold,
        width: reports.iter().map(|r| r.structure.width).max().unwrap_or(0),
        ..reports[0].structure.clone()
    };
    let (found, audited) = audit_relations(
        "the month's reports together",
        &t.joint,
        &strictest,
        &t.rels,
        true,
    );
    findings.extend(found);
    JointAudit {
        groups: t.groups,
        cells_audited: audited,
        findings,
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
                    Relation::Subset(parts, w) => {
                        Relation::Subset(parts.into_iter().map(|p| p + off).collect(), w + off)
                    }
                }),
        );
    }
    (joint, rels, offsets)
}

/// How findings name a position of a report: `gefluechtete in Ukraine / bestand`.
fn cell_name(p: &Position) -> String {
    format!(
        "{} in {}",
        label(&(p.0.clone(), p.1.clone())),
        position(&p.2, &p.3)
    )
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
