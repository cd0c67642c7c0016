//! Every report of a month protected together (issue 19 §1).
//!
//! Two definitions of one month can be differenced: a cell of one that contains a cell of the
//! other shows, by subtraction, how many people it counts beyond it (21 - 20: one diverse person
//! at Jobcenter 28101). So each report output keeps, beside its steward's manifest, a release
//! record ([`Release`], `release.json`): its definition, the extract it counted and every cell it
//! published. A new report of a month with released reports is protected together with them:
//!
//! - One pass over the extract counts the new definition and every released one, and the atoms:
//!   per gE, the people with one combination of every definition's population, category and
//!   indicators.
//! - Where one report's cell contains another's at every gE (by the atoms: every atom of the one
//!   is an atom of the other), what it counts beyond it is a group of people: `x = y + group`
//!   joins the audit's system, and a group of 1 to `threshold - 1` people is protected like a
//!   primary cell, under every attacker model of the definition.
//! - The atoms themselves are not in the audit's system. With them it would hold every linear
//!   relation between the reports' cells (also the bounds two overlapping cells put on each
//!   other), but at 550,000 rows that is 60,000 more unknowns and minutes per audit round; the
//!   containments are the relations by which one definition's cells are differenced from
//!   another's.
//! - The released cells are fixed: published ones stay published, suppressed ones suppressed. Only
//!   the new report's cells may be suppressed; if that cannot protect every cell, the report is
//!   refused, naming the released reports it conflicts with.
//! - A regenerated report starts from its released pattern, so the same extract and definitions
//!   give the same cells again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pseudagg_core::{Error, Month, Result};
use serde::{Deserialize, Serialize};

use crate::aggregate::RowClass;
use crate::layout::{Area, Level, ReportTable};
use crate::table::{Kind, Sum, Table};

/// The release record's file name, beside the steward's manifest.
pub const RELEASE_FILE: &str = "release.json";

/// What one report output released: enough to count its cells again and to hold them fixed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub release_version: u32,
    pub report: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    pub month: String,
    pub definition_sha256: String,
    /// The definition as it was run (TOML).
    pub definition: String,
    pub input_sha256: String,
    pub threshold: u64,
    pub min_interval_width: u64,
    pub categories: Vec<String>,
    pub indicators: Vec<String>,
    /// Every area a recipient received, its cells in category-then-indicator order, `null`
    /// where suppressed.
    pub areas: Vec<ReleasedArea>,
    /// Where a cell of one of the month's reports contains a cell of another at every gE, as
    /// this run found it from the extract (release version 2): what `pseudagg verify` re-checks
    /// the month's reports together with. Empty for a month's first report.
    #[serde(default)]
    pub nested: Vec<Nesting>,
}

/// A position of one of the month's reports: `outer` counts everyone `inner` counts, at every gE
/// (and so at every RD and the Bund), and more somewhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Nesting {
    pub outer: ReleasedPosition,
    pub inner: ReleasedPosition,
}

/// A cell position of a released report: its category of each dimension and its indicator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReleasedPosition {
    pub report: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Per dimension of that report, the category (a total's name for a total).
    pub categories: Vec<String>,
    pub indicator: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleasedArea {
    /// `bund`, `rd=<RD>` or `ge=<nr>`.
    pub area: String,
    pub values: Vec<Option<u64>>,
}

/// The key of an area in a release: `bund`, `rd=<RD>`, `ge=<nr>`.
#[must_use]
pub fn area_key(a: &Area) -> String {
    match a.level {
        Level::Bund => "bund".to_owned(),
        Level::Rd => format!("rd={}", a.rd.as_deref().unwrap_or("")),
        Level::Ge => format!("ge={}", a.ge.as_ref().map_or("", |g| g.nr.as_str())),
    }
}

impl Release {
    /// The release of `rt` with the pattern `suppressed`, showing the `shown` areas.
    #[must_use]
    pub fn of(rt: &ReportTable, suppressed: &[bool], shown: &[usize], head: ReleaseHead) -> Self {
        let per_area = rt.categories.len() * rt.indicators.len();
        let mut shown = shown.to_vec();
        shown.sort_unstable();
        shown.dedup();
        Self {
            release_version: 2,
            report: head.report,
            request: head.request,
            month: head.month.to_string(),
            definition_sha256: head.definition_sha256,
            definition: head.definition,
            input_sha256: head.input_sha256,
            threshold: head.threshold,
            min_interval_width: head.min_interval_width,
            categories: rt.categories.clone(),
            indicators: rt.indicators.clone(),
            areas: shown
                .into_iter()
                .map(|a| ReleasedArea {
                    area: area_key(&rt.areas[a]),
                    values: (a * per_area..(a + 1) * per_area)
                        .map(|c| (!suppressed[c]).then_some(rt.table.values[c]))
                        .collect(),
                })
                .collect(),
            nested: Vec::new(),
        }
    }

    /// The report and month it names, for messages: `gefluechtete` or `gefluechtete (request R)`.
    #[must_use]
    pub fn label(&self) -> String {
        match &self.request {
            None => self.report.clone(),
            Some(r) => format!("{} (request {r})", self.report),
        }
    }
}

/// What a [`Release`] says besides its cells.
#[derive(Debug, Clone)]
pub struct ReleaseHead {
    pub report: String,
    pub request: Option<String>,
    pub month: Month,
    pub definition_sha256: String,
    pub definition: String,
    pub input_sha256: String,
    pub threshold: u64,
    pub min_interval_width: u64,
}

/// Each area of `rt` by its [`area_key`].
fn areas_by_key(rt: &ReportTable) -> HashMap<String, usize> {
    rt.areas
        .iter()
        .enumerate()
        .map(|(a, x)| (area_key(x), a))
        .collect()
}

/// The pattern a release shows, on the cells of `rt` (a table of the same definition): suppressed
/// where the release has `null`; cells of areas it did not show are not suppressed.
#[must_use]
pub fn pattern_of(release: &Release, rt: &ReportTable) -> Vec<bool> {
    let per_area = rt.categories.len() * rt.indicators.len();
    let by_key = areas_by_key(rt);
    let mut out = vec![false; rt.table.len()];
    for ra in &release.areas {
        if let Some(&a) = by_key.get(&ra.area) {
            for (j, v) in ra.values.iter().enumerate().take(per_area) {
                out[a * per_area + j] = v.is_none();
            }
        }
    }
    out
}

/// A release found in an output root, and the output folder it belongs to.
#[derive(Debug, Clone)]
pub struct Released {
    pub output: PathBuf,
    pub release: Release,
}

/// Every release of `month` under the output root `out`: `{out}/{report}/{month}/release.json`
/// and `{out}/{report}/requests/{reference}/{month}/release.json`, in path order. A release record
/// that cannot be read stops the run: without it, the month's reports cannot be protected together.
pub fn find_releases(out: &Path, month: Month) -> Result<Vec<Released>> {
    let files = pseudagg_core::month_folders(out, month)
        .into_iter()
        .map(|d| d.join(RELEASE_FILE));
    let month = month.to_string();
    let mut out_list = Vec::new();
    for file in files.into_iter().filter(|f| f.is_file()) {
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io("read", &file, e))?;
        let release: Release = serde_json::from_str(&text).map_err(|e| {
            Error::Refused(format!(
                "the release record {} cannot be read ({e}); the month's reports are protected together, so no report of the month is written until it is restored from backup (or its output removed with it)",
                file.display()
            ))
        })?;
        if release.month != month {
            return Err(Error::Refused(format!(
                "the release record {} is for {}, not {month}; restore it from backup",
                file.display(),
                release.month
            )));
        }
        let output = file.parent().expect("a file has a folder").to_owned();
        out_list.push(Released { output, release });
    }
    Ok(out_list)
}

/// Builds the atoms while the extract is counted: per gE, the number of rows with each
/// combination of every report's classification.
#[derive(Debug, Default)]
pub struct AtomCounter {
    atoms: HashMap<AtomKey, u64>,
}

/// An atom: a gE (numbered as the counters do) and, per report, the category and indicators of
/// its people ([`OUTSIDE`] where they are not in that report's population).
pub type AtomKey = (u32, Vec<(u16, u64)>);

/// A row outside a report's population.
const OUTSIDE: (u16, u64) = (u16::MAX, 0);

impl AtomCounter {
    /// Adds one batch, given each report's classification of its rows (see
    /// [`crate::Counter::add_classified`]); the gEs are numbered alike in every report.
    pub fn add(&mut self, classes: &[Vec<Option<RowClass>>]) {
        let rows = classes.first().map_or(0, Vec::len);
        for row in 0..rows {
            let mut ge = None;
            let key: Vec<(u16, u64)> = classes
                .iter()
                .map(|c| match c[row] {
                    Some(rc) => {
                        ge = Some(rc.ge);
                        (rc.category, rc.indicators)
                    }
                    None => OUTSIDE,
                })
                .collect();
            if let Some(ge) = ge {
                *self.atoms.entry((ge, key)).or_default() += 1;
            }
        }
    }

    /// The atoms, sorted (so the same extract in any row order gives the same table).
    #[must_use]
    pub fn finish(self) -> Vec<(AtomKey, u64)> {
        let mut v: Vec<_> = self.atoms.into_iter().collect();
        v.sort_unstable();
        v
    }
}

/// Where a cell of the joint table comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Cell `cell` of report table `table` (0: the new report).
    Cell { table: usize, cell: usize },
    /// What cell `x` counts beyond cell `y` (each `(table, cell)`).
    Group {
        x: (usize, usize),
        y: (usize, usize),
    },
}

/// The table of the new report (`tables[0]`) and the released ones, protected together.
#[derive(Debug)]
pub struct Joint {
    pub table: Table,
    pub origin: Vec<Origin>,
    /// Where each report table's cells start.
    pub offsets: Vec<usize>,
    pub atoms: usize,
    pub groups: usize,
    /// Every containment found: ((table, position) outer, (table, position) inner), a position
    /// being `category * indicators + indicator`.
    pub nested: Vec<((usize, usize), (usize, usize))>,
}

impl Joint {
    /// The containments as a release records them; `names[t]` is table `t`'s (report, request).
    #[must_use]
    pub fn nestings(
        &self,
        tables: &[&ReportTable],
        names: &[(String, Option<String>)],
    ) -> Vec<Nesting> {
        let at = |(t, p): (usize, usize)| {
            let rt = tables[t];
            let n_ind = rt.indicators.len();
            ReleasedPosition {
                report: names[t].0.clone(),
                request: names[t].1.clone(),
                categories: rt.coordinates[p / n_ind].clone(),
                indicator: rt.indicators[p % n_ind].clone(),
            }
        };
        let mut out: Vec<Nesting> = self
            .nested
            .iter()
            .map(|&(x, y)| Nesting {
                outer: at(x),
                inner: at(y),
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Builds the joint table. `tables[0]` is the new report, `tables[i]` for `i >= 1` the table of
/// `released[i - 1]` counted again from the same extract; `start` is the pattern the new report starts from (its release
/// when it is regenerated). A released cell whose count differs from what was released is an
/// error: the extract is not the one that release counted.
#[allow(clippy::too_many_lines)] // the tables, the released cells, the groups: one table
pub fn build(
    tables: &[&ReportTable],
    released: &[&Release],
    atoms: &[(AtomKey, u64)],
    start: Option<&[bool]>,
    (definition_sha256, threshold): (&str, u64),
) -> Result<Joint> {
    let mut jt = Table::default();
    let mut origin = Vec::new();
    let mut offsets = Vec::new();
    for (i, rt) in tables.iter().enumerate() {
        let same_grid = rt.areas.len() == tables[0].areas.len()
            && rt
                .areas
                .iter()
                .zip(&tables[0].areas)
                .all(|(a, b)| area_key(a) == area_key(b));
        if !same_grid {
            return Err(Error::Refused(format!(
                "the released report {} has other gEs or RDs than this run (another gE register?); run every report of a month with the same register",
                released[i - 1].label()
            )));
        }
        let off = jt.values.len();
        offsets.push(off);
        let cells = rt.table.len();
        let per_area = rt.categories.len() * rt.indicators.len();
        jt.values.extend(&rt.table.values);
        jt.rank.extend(&rt.table.rank);
        jt.owner.extend(&rt.table.owner);
        jt.district.extend(&rt.table.district);
        jt.sums.extend(rt.table.sums.iter().map(|s| Sum {
            total: s.total + off,
            parts: s.parts.iter().map(|p| p + off).collect(),
        }));
        jt.subsets
            .extend(rt.table.subsets.iter().map(|&(a, b)| (a + off, b + off)));
        origin.extend((0..cells).map(|cell| Origin::Cell { table: i, cell }));
        if i == 0 {
            jt.keep_published.extend(
                (0..cells).map(|c| rt.table.keep_published.get(c).copied().unwrap_or(false)),
            );
            jt.kind.extend(std::iter::repeat_n(Kind::Published, cells));
            jt.preset
                .extend((0..cells).map(|c| start.is_some_and(|s| s[c])));
            continue;
        }
        let release = released[i - 1];
        if release.categories != rt.categories || release.indicators != rt.indicators {
            return Err(Error::Refused(format!(
                "the release record of {} does not match its own definition; restore it from backup",
                release.label()
            )));
        }
        let by_key = areas_by_key(rt);
        let mut kind = vec![Kind::Atom; cells];
        let mut preset = vec![false; cells];
        for ra in &release.areas {
            let Some(&a) = by_key.get(&ra.area) else {
                return Err(Error::Refused(format!(
                    "the released report {} shows {}, which this report's grid does not have: it was counted with the gE register (--ge-register) or from another extract; give this report the same register and extract",
                    release.label(),
                    ra.area
                )));
            };
            if ra.values.len() != per_area {
                return Err(Error::Refused(format!(
                    "the release record of {} is damaged; restore it from backup",
                    release.label()
                )));
            }
            for (j, v) in ra.values.iter().enumerate() {
                let c = a * per_area + j;
                kind[c] = Kind::Published;
                match v {
                    None => preset[c] = true,
                    Some(v) if *v == rt.table.values[c] => {}
                    Some(_) => {
                        return Err(Error::Refused(format!(
                            "the released report {} published other counts than this extract gives; it was counted from another extract, and two extracts of one month cannot be published side by side",
                            release.label()
                        )));
                    }
                }
            }
        }
        jt.keep_published.extend(std::iter::repeat_n(true, cells));
        jt.kind.extend(kind);
        jt.preset.extend(preset);
    }

    let n_atoms = atoms.len();
    // Groups: where a cell of one report contains a cell of another at every gE, what it
    // counts beyond it.
    let mut groups = 0;
    let mut nested = Vec::new();
    // Two tables of one definition (a request beside its report) differ only as a table differs
    // from itself: by other cells of it, which its own relations already hold.
    let sha = |i: usize| {
        if i == 0 {
            definition_sha256
        } else {
            released[i - 1].definition_sha256.as_str()
        }
    };
    for x in 0..tables.len() {
        for y in (0..tables.len()).filter(|&y| y != x && sha(y) != sha(x)) {
            for (px, py) in nested_positions(tables, x, y, atoms) {
                nested.push(((x, px), (y, py)));
                groups += add_group(
                    &mut jt,
                    &mut origin,
                    tables,
                    &offsets,
                    (x, px),
                    (y, py),
                    threshold,
                );
            }
        }
    }
    if !jt.is_consistent() {
        return Err(Error::Refused(
            "the reports of the month do not add up over the same extract (a bug); nothing was written"
                .into(),
        ));
    }
    Ok(Joint {
        table: jt,
        origin,
        offsets,
        atoms: n_atoms,
        groups,
        nested,
    })
}

/// The positions (category, indicator) of a report table, flattened.
fn positions(rt: &ReportTable) -> usize {
    rt.categories.len() * rt.indicators.len()
}

/// A small bit set over positions.
fn set_of(rt: &ReportTable, key: (u16, u64)) -> Vec<u64> {
    let n = positions(rt);
    let mut set = vec![0_u64; n.div_ceil(64)];
    if key == OUTSIDE {
        return set;
    }
    let n_ind = rt.indicators.len();
    for k in (0..n_ind).filter(|&k| key.1 & (1 << k) != 0) {
        for &c in &rt.positions_of[key.0 as usize] {
            let p = c * n_ind + k;
            set[p / 64] |= 1 << (p % 64);
        }
    }
    set
}

fn has(set: &[u64], p: usize) -> bool {
    set[p / 64] & (1 << (p % 64)) != 0
}

/// The pairs (position of `x`, position of `y`) where `x`'s cell contains `y`'s at every gE (by
/// the atoms), `y`'s is not empty everywhere and the two differ somewhere.
fn nested_positions(
    tables: &[&ReportTable],
    x: usize,
    y: usize,
    atoms: &[(AtomKey, u64)],
) -> Vec<(usize, usize)> {
    let (nx, ny) = (positions(tables[x]), positions(tables[y]));
    // not_within[q]: the positions of x some atom of y's position q lies outside.
    let mut not_within = vec![vec![0_u64; nx.div_ceil(64)]; ny];
    let mut y_used = vec![false; ny];
    for ((_, key), _) in atoms {
        let sy = set_of(tables[y], key[y]);
        if sy.iter().all(|&w| w == 0) {
            continue;
        }
        let sx = set_of(tables[x], key[x]);
        for (q, used) in y_used.iter_mut().enumerate() {
            if has(&sy, q) {
                *used = true;
                for (w, &inside) in not_within[q].iter_mut().zip(&sx) {
                    *w |= !inside;
                }
            }
        }
    }
    let (rx, ry) = (tables[x], tables[y]);
    let mut out = Vec::new();
    for q in (0..ny).filter(|&q| y_used[q]) {
        for p in (0..nx).filter(|&p| !has(&not_within[q], p)) {
            // Equal everywhere: the difference is zero, nothing to protect.
            let differs = (0..rx.areas.len())
                .any(|a| rx.table.values[a * nx + p] != ry.table.values[a * ny + q]);
            if differs {
                out.push((p, q));
            }
        }
    }
    out
}

/// Adds, for every area, the group `x - y` of the positions given, with `x = y + group`.
fn add_group(
    t: &mut Table,
    origin: &mut Vec<Origin>,
    tables: &[&ReportTable],
    offsets: &[usize],
    (x, px): (usize, usize),
    (y, py): (usize, usize),
    threshold: u64,
) -> usize {
    let (rx, ry) = (tables[x], tables[y]);
    let (nx, ny) = (positions(rx), positions(ry));
    let mut added = 0;
    for a in 0..rx.areas.len() {
        let cx = offsets[x] + a * nx + px;
        let cy = offsets[y] + a * ny + py;
        // A group that is not small needs no protection, and its relation follows from the
        // atoms (gE) and the sums (RD, Bund): it is left out.
        if !(1..threshold).contains(&(t.values[cx] - t.values[cy])) {
            continue;
        }
        added += 1;
        let g = t.values.len();
        t.values.push(t.values[cx] - t.values[cy]);
        t.rank.push(t.rank[cx]);
        t.owner.push(t.owner[cx]);
        t.district.push(t.district[cx]);
        t.keep_published.push(false);
        t.kind.push(Kind::Group);
        t.preset.push(false);
        origin.push(Origin::Group {
            x: (x, a * nx + px),
            y: (y, a * ny + py),
        });
        t.sums.push(Sum {
            total: cx,
            parts: vec![cy, g],
        });
    }
    added
}
