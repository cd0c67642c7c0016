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
//! - From the atoms, the positions of all the reports fall into classes of equal people (the
//!   same atoms at every gE), and three relations between classes are found
//!   ([`find_relations`]); each holds at every gE and so, by the sums, at every RD and the Bund:
//!   - **equal**: two reports' cells count the same people (`gefluechtete`'s Ukraine and
//!     `gefluechtete-geschlecht`'s Ukraine over every gender): `x = y` joins the system, so one
//!     report's published cell is known to show the other's suppressed one;
//!   - **nested**: one cell counts everyone another counts, and more: `x = y + group`; a group of
//!     1 to `threshold - 1` people is protected like a primary cell, under every attacker model,
//!     and a larger one joins as the bound `y <= x`;
//!   - **union**: one cell counts exactly the people either of two others counts (women or
//!     Ukrainians), so `x + y - z` counts the people in both (Ukrainian women): `z = x + (z - x)`
//!     and `y = (z - x) + both`, and a small `both` is protected;
//!   - **partition**: one cell counts exactly the people of three or more others, which share
//!     nobody (everyone, beside a report each of women, men and diverse people): `z = x1 + x2 +
//!     ...`, so the cells published show the one suppressed.
//!
//!   Relations among the cells of one table are that table's own (its sums and subsets); where
//!   classes meet in one table, the difference is left to it.
//! - The atoms themselves are not in the audit's system. With them it would hold every linear
//!   relation between the reports' cells (also the bounds two overlapping cells put on each
//!   other, and unions of three or more cells that overlap), but at 550,000 rows that is 60,000
//!   more unknowns and minutes per audit round.
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

/// The release record's version: 2 added the containments, 3 the equalities and unions, 4 the
/// partitions.
pub const RELEASE_VERSION: u32 = 4;

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
    /// Where a cell of one of the month's reports counts the same people as a cell of another
    /// at every gE (release version 3), `outer` and `inner` alike.
    #[serde(default)]
    pub equal: Vec<Nesting>,
    /// Where a cell of one of the month's reports counts exactly the people that two cells of
    /// the others count (release version 3): their sum less it counts the people in both.
    #[serde(default)]
    pub unions: Vec<UnionRecord>,
    /// Where a cell of one of the month's reports counts exactly the people of three or more
    /// cells of the others, which share nobody (release version 4): it is their sum.
    #[serde(default)]
    pub partitions: Vec<UnionRecord>,
}

/// A union as a release records it: `union` counts exactly the people that either of the two
/// `parts` counts, at every gE.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnionRecord {
    pub union: ReleasedPosition,
    pub parts: Vec<ReleasedPosition>,
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
            release_version: RELEASE_VERSION,
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
            equal: Vec::new(),
            unions: Vec::new(),
            partitions: Vec::new(),
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
    /// The people both cell `x` and cell `y` count (each `(table, cell)`), where a cell of
    /// another report counts everyone either counts.
    Both {
        x: (usize, usize),
        y: (usize, usize),
    },
    /// The people report table `table`'s cell `whole` counts in none of its exclusive parts
    /// (see [`crate::layout::ReportTable::add_exclusions`]).
    Rest { table: usize, whole: usize },
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
    /// How the reports' cells relate, as found from the atoms.
    pub relations: Relations,
}

/// The relations between the month's reports as a release records them.
#[derive(Debug, Clone, Default)]
pub struct Records {
    pub equal: Vec<Nesting>,
    pub nested: Vec<Nesting>,
    pub unions: Vec<UnionRecord>,
    pub partitions: Vec<UnionRecord>,
}

impl Records {
    /// The relations `release` recorded.
    #[must_use]
    pub fn of(release: &Release) -> Self {
        Self {
            equal: release.equal.clone(),
            nested: release.nested.clone(),
            unions: release.unions.clone(),
            partitions: release.partitions.clone(),
        }
    }

    /// Puts them into `release`.
    pub fn record(self, release: &mut Release) {
        release.equal = self.equal;
        release.nested = self.nested;
        release.unions = self.unions;
        release.partitions = self.partitions;
    }
}

impl Joint {
    /// The relations as a release records them; `names[t]` is table `t`'s (report, request).
    #[must_use]
    pub fn records(&self, tables: &[&ReportTable], names: &[(String, Option<String>)]) -> Records {
        let at = |(t, p): Pos| {
            let rt = tables[t];
            let n_ind = rt.indicators.len();
            ReleasedPosition {
                report: names[t].0.clone(),
                request: names[t].1.clone(),
                categories: rt.coordinates[p / n_ind].clone(),
                indicator: rt.indicators[p % n_ind].clone(),
            }
        };
        let pairs = |v: &[(Pos, Pos)]| {
            let mut out: Vec<Nesting> = v
                .iter()
                .map(|&(x, y)| Nesting {
                    outer: at(x),
                    inner: at(y),
                })
                .collect();
            out.sort();
            out.dedup();
            out
        };
        let unions = |v: &[(Pos, Vec<Pos>)]| {
            let mut out: Vec<UnionRecord> = v
                .iter()
                .map(|(z, parts)| UnionRecord {
                    union: at(*z),
                    parts: parts.iter().map(|&p| at(p)).collect(),
                })
                .collect();
            out.sort();
            out.dedup();
            out
        };
        let two: Vec<(Pos, Vec<Pos>)> = self
            .relations
            .unions
            .iter()
            .map(|&(z, x, y)| (z, vec![x, y]))
            .collect();
        Records {
            equal: pairs(&self.relations.equal),
            nested: pairs(&self.relations.nested),
            unions: unions(&two),
            partitions: unions(&self.relations.partitions),
        }
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
    threshold: u64,
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
    let relations = find_relations(tables, atoms);
    let mut groups = 0;
    let mut made: HashMap<(usize, usize), usize> = HashMap::new();
    let per_area = |t: usize| positions(tables[t]);
    let cell = |(t, p): (usize, usize), a: usize| offsets[t] + a * per_area(t) + p;
    let areas = tables[0].areas.len();
    // Equal cells of two reports: one is the other.
    for &(x, y) in &relations.equal {
        for a in 0..areas {
            jt.sums.push(Sum {
                total: cell(x, a),
                parts: vec![cell(y, a)],
            });
        }
    }
    // Containments: what the outer cell counts beyond the inner one. A small group is a cell of
    // its own, protected like a primary one. Any other is known to the attacker only as at least
    // 0, so it joins as `inner <= outer`, a subset relation without a cell: the same bound on
    // both cells (with it, a released cell can cap a suppressed one of the new report, or lift
    // its floor), at no cost in unknowns. `verify` keeps every group as a cell; the two systems
    // are the same.
    for &(x, y) in &relations.nested {
        for a in 0..areas {
            let (cx, cy) = (cell(x, a), cell(y, a));
            if (1..threshold).contains(&(jt.values[cx] - jt.values[cy])) {
                groups += 1;
                add_group(
                    &mut jt,
                    &mut origin,
                    &mut made,
                    (cx, cy),
                    (x, y, a, per_area),
                );
            } else {
                jt.subsets.push((cy, cx));
            }
        }
    }
    // Unions: z counts everyone x or y counts, so x + y - z people are counted by both, at every
    // area: z = x + (z - x) and y = (z - x) + both.
    for &(z, x, y) in &relations.unions {
        for a in 0..areas {
            let (cz, cx, cy) = (cell(z, a), cell(x, a), cell(y, a));
            let beyond = match made.get(&(cz, cx)) {
                Some(&g) => g,
                None => add_group(
                    &mut jt,
                    &mut origin,
                    &mut made,
                    (cz, cx),
                    (z, x, a, per_area),
                ),
            };
            let both = jt.values[cx] + jt.values[cy] - jt.values[cz];
            if (1..threshold).contains(&both) {
                groups += 1;
            }
            // y = (z - x) + both
            let named = Origin::Both {
                x: (x.0, a * per_area(x.0) + x.1),
                y: (y.0, a * per_area(y.0) + y.1),
            };
            push_group(&mut jt, &mut origin, (named, both, cx), (cy, beyond));
        }
    }
    // Partitions: z is the sum of its parts, at every area.
    for (z, parts) in &relations.partitions {
        for a in 0..areas {
            jt.sums.push(Sum {
                total: cell(*z, a),
                parts: parts.iter().map(|&x| cell(x, a)).collect(),
            });
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
        relations,
    })
}

/// The positions (category, indicator) of a report table, flattened.
pub(crate) fn positions(rt: &ReportTable) -> usize {
    rt.categories.len() * rt.indicators.len()
}

/// A cell position of one of the joint's report tables: (table, category * indicators +
/// indicator).
pub type Pos = (usize, usize);

/// How the cells of the month's reports relate, found from the atoms. Each relation holds at
/// every gE, and so, the cells being sums of the gEs', at every RD and the Bund. Relations
/// between the cells of one table are that table's own (its sums and subsets); these are the
/// ones by which a cell of one report can be set against cells of another.
#[derive(Debug, Default, Clone)]
pub struct Relations {
    /// `(x, y)`: x and y count the same people, so one shows the other.
    pub equal: Vec<(Pos, Pos)>,
    /// `(x, y)`: x counts everyone y counts, and more somewhere, so `x - y` counts a group.
    pub nested: Vec<(Pos, Pos)>,
    /// `(z, x, y)`: z counts exactly the people x or y counts, neither containing the other, so
    /// `x + y - z` counts the people in both.
    pub unions: Vec<(Pos, Pos, Pos)>,
    /// `(z, parts)`: z counts exactly the people of three or more parts that share nobody, so
    /// it is their sum.
    pub partitions: Vec<(Pos, Vec<Pos>)>,
}

/// Positions that count the same people at every gE.
struct Class {
    /// Its atoms, as bits.
    atoms: Vec<u64>,
    /// In table then position order; the first stands for the class.
    members: Vec<Pos>,
    /// The tables it has a member in, ascending.
    tables: Vec<usize>,
}

impl Class {
    fn rep(&self) -> Pos {
        self.members[0]
    }

    /// Does it count everyone `other` counts?
    fn contains(&self, other: &Class) -> bool {
        other
            .atoms
            .iter()
            .zip(&self.atoms)
            .all(|(o, s)| o & !s == 0)
    }
}

/// Do the classes have a member in one table, so that what relates them is that table's own
/// business?
fn one_table(classes: &[&Class]) -> bool {
    classes[0].tables.iter().any(|t| {
        classes[1..]
            .iter()
            .all(|c| c.tables.binary_search(t).is_ok())
    })
}

/// Finds the equalities, containments and unions between the cells of `tables`, from the atoms:
/// a position's people at a gE are the people of the atoms whose classification falls in it.
/// Positions empty at every gE are left out (a zero is published and known).
#[must_use]
pub fn find_relations(tables: &[&ReportTable], atoms: &[(AtomKey, u64)]) -> Relations {
    let words = atoms.len().div_ceil(64);
    let mut sets: Vec<Vec<Vec<u64>>> = tables
        .iter()
        .map(|rt| vec![vec![0_u64; words]; positions(rt)])
        .collect();
    for (i, ((_, key), _)) in atoms.iter().enumerate() {
        for (t, rt) in tables.iter().enumerate() {
            for p in positions_of(rt, key[t]) {
                sets[t][p][i / 64] |= 1 << (i % 64);
            }
        }
    }
    let mut classes: Vec<Class> = Vec::new();
    let mut by_atoms: HashMap<Vec<u64>, usize> = HashMap::new();
    for (t, per_table) in sets.into_iter().enumerate() {
        for (p, set) in per_table.into_iter().enumerate() {
            if set.iter().all(|&w| w == 0) {
                continue;
            }
            let k = *by_atoms.entry(set.clone()).or_insert_with(|| {
                classes.push(Class {
                    atoms: set,
                    members: Vec::new(),
                    tables: Vec::new(),
                });
                classes.len() - 1
            });
            classes[k].members.push((t, p));
            if classes[k].tables.last() != Some(&t) {
                classes[k].tables.push(t);
            }
        }
    }
    let mut out = Relations::default();
    for c in &classes {
        let rep = c.rep();
        for &m in &c.members[1..] {
            // Tied to a member of another table: the first of the class, or, in the first's
            // table, the first member outside it.
            let other = if m.0 == rep.0 {
                c.members.iter().find(|o| o.0 != m.0)
            } else {
                Some(&rep)
            };
            if let Some(&o) = other {
                out.equal.push((o, m));
            }
        }
    }
    let inside: Vec<Vec<usize>> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (0..classes.len())
                .filter(|&j| j != i && c.contains(&classes[j]))
                .collect()
        })
        .collect();
    for (i, c) in classes.iter().enumerate() {
        for &j in &inside[i] {
            if !one_table(&[c, &classes[j]]) {
                out.nested.push((c.rep(), classes[j].rep()));
            }
        }
        for (k, &x) in inside[i].iter().enumerate() {
            for &y in &inside[i][k + 1..] {
                let (cx, cy) = (&classes[x], &classes[y]);
                if cx.contains(cy) || cy.contains(cx) || one_table(&[c, cx, cy]) {
                    continue;
                }
                let covers = c
                    .atoms
                    .iter()
                    .zip(cx.atoms.iter().zip(&cy.atoms))
                    .all(|(z, (a, b))| a | b == *z);
                if covers {
                    out.unions.push((c.rep(), cx.rep(), cy.rep()));
                }
            }
        }
        if let Some(parts) = partition(&classes, i, &inside[i]) {
            out.partitions.push((c.rep(), parts));
        }
    }
    out.equal.sort_unstable();
    out.nested.sort_unstable();
    out.unions.sort_unstable();
    out.partitions.sort_unstable();
    out
}

/// The partition of class `i` by the other reports' cells, if there is one: the largest classes
/// inside it of the other reports (inside no other such class; its own table's cells inside it
/// are that table's business), when three or more of them share nobody and cover it. (Two are a
/// union; parts that overlap are not modelled, see the module's text.)
fn partition(classes: &[Class], i: usize, inside: &[usize]) -> Option<Vec<Pos>> {
    let c = &classes[i];
    let others: Vec<usize> = inside
        .iter()
        .copied()
        .filter(|&j| {
            classes[j]
                .tables
                .iter()
                .all(|t| c.tables.binary_search(t).is_err())
        })
        .collect();
    let largest: Vec<usize> = others
        .iter()
        .copied()
        .filter(|&j| {
            !others
                .iter()
                .any(|&k| k != j && classes[k].contains(&classes[j]))
        })
        .collect();
    if largest.len() < 3 {
        return None;
    }
    let mut covered = vec![0_u64; c.atoms.len()];
    let mut disjoint = true;
    for &j in &largest {
        for (w, &a) in covered.iter_mut().zip(&classes[j].atoms) {
            disjoint &= *w & a == 0;
            *w |= a;
        }
    }
    let mut all: Vec<&Class> = vec![c];
    all.extend(largest.iter().map(|&j| &classes[j]));
    if !disjoint || covered != c.atoms || one_table(&all) {
        return None;
    }
    let mut parts: Vec<Pos> = largest.iter().map(|&j| classes[j].rep()).collect();
    parts.sort_unstable();
    Some(parts)
}

/// The positions of `rt` whose people include an atom classified `key` there.
pub(crate) fn positions_of(rt: &ReportTable, key: (u16, u64)) -> impl Iterator<Item = usize> + '_ {
    let n_ind = rt.indicators.len();
    let cats: &[usize] = if key == OUTSIDE {
        &[]
    } else {
        &rt.positions_of[key.0 as usize]
    };
    (0..n_ind)
        .filter(move |&k| key.1 & (1 << k) != 0)
        .flat_map(move |k| cats.iter().map(move |&c| c * n_ind + k))
}

/// Adds the group `outer - inner` of the cells given (`x = y + group`) and returns it; `at`
/// names the positions and area for messages.
fn add_group(
    table: &mut Table,
    origin: &mut Vec<Origin>,
    made: &mut HashMap<(usize, usize), usize>,
    (cx, cy): (usize, usize),
    (outer, inner, area, per_area): (Pos, Pos, usize, impl Fn(usize) -> usize),
) -> usize {
    let named = Origin::Group {
        x: (outer.0, area * per_area(outer.0) + outer.1),
        y: (inner.0, area * per_area(inner.0) + inner.1),
    };
    let value = table.values[cx] - table.values[cy];
    let g = push_group(table, origin, (named, value, cx), (cx, cy));
    made.insert((cx, cy), g);
    g
}

/// Adds a group of `value` people, in the place (rank, owner, district) of cell `like`, with
/// the relation `total = part + group`; returns it.
fn push_group(
    t: &mut Table,
    origin: &mut Vec<Origin>,
    (named, value, like): (Origin, u64, usize),
    (total, part): (usize, usize),
) -> usize {
    let g = t.values.len();
    origin.push(named);
    t.sums.push(Sum {
        total,
        parts: vec![part, g],
    });
    t.values.push(value);
    t.rank.push(t.rank[like]);
    t.owner.push(t.owner[like]);
    t.district.push(t.district[like]);
    t.keep_published.push(false);
    t.kind.push(Kind::Group);
    t.preset.push(false);
    g
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A table of one cell per gE (no dimension, one indicator): everyone in its population.
    fn one_cell() -> ReportTable {
        ReportTable {
            exclusive: Vec::new(),
            exhaustive: Vec::new(),
            areas: Vec::new(),
            categories: vec![String::new()],
            dimensions: Vec::new(),
            coordinates: vec![Vec::new()],
            positions_of: vec![vec![0]],
            indicators: vec!["n".into()],
            table: Table::default(),
        }
    }

    /// An atom at gE 0: per table, in its population or not.
    fn atom(inside: &[bool]) -> (AtomKey, u64) {
        let key = inside
            .iter()
            .map(|&i| if i { (0, 1) } else { OUTSIDE })
            .collect();
        ((0, key), 1)
    }

    #[test]
    fn equal_nested_and_union_cells_are_found_from_the_atoms() {
        // Tables: 0 women, 1 Ukrainians, 2 women or Ukrainians, 3 women again (another
        // definition), 4 Ukrainian women.
        let t = one_cell();
        let tables = [&t, &t, &t, &t, &t];
        let atoms = [
            atom(&[true, false, true, true, false]),
            atom(&[false, true, true, false, false]),
            atom(&[true, true, true, true, true]),
        ];
        let r = find_relations(&tables, &atoms);
        assert_eq!(r.equal, vec![((0, 0), (3, 0))]);
        // 2 contains 0 (and 3), 1 and 4; 0 and 1 contain 4.
        assert_eq!(
            r.nested,
            vec![
                ((0, 0), (4, 0)),
                ((1, 0), (4, 0)),
                ((2, 0), (0, 0)),
                ((2, 0), (1, 0)),
                ((2, 0), (4, 0)),
            ]
        );
        assert_eq!(r.unions, vec![((2, 0), (0, 0), (1, 0))]);
    }

    /// A table of one cell, the Bund's, with `value` people.
    fn bund_cell(value: u64) -> ReportTable {
        let mut t = one_cell();
        t.areas = vec![Area {
            level: Level::Bund,
            rd: None,
            ge: None,
        }];
        t.table.values = vec![value];
        t.table.rank = vec![0];
        t.table.owner = vec![crate::table::NOBODY];
        t.table.district = vec![crate::table::NOBODY];
        t
    }

    /// The head of a test release: report `alt` of 2025-03, threshold 3, width 1.
    pub(crate) fn release_head() -> ReleaseHead {
        ReleaseHead {
            report: "alt".into(),
            request: None,
            month: "2025-03".parse().unwrap(),
            definition_sha256: String::new(),
            definition: String::new(),
            input_sha256: String::new(),
            threshold: 3,
            min_interval_width: 1,
        }
    }

    /// The released table `released` (one Bund cell, published) and a new report whose cell is
    /// inside it, `inside` people of its `released`.
    fn new_inside_released(inside: u64, released: u64) -> Joint {
        let (new, old) = (bund_cell(inside), bund_cell(released));
        let release = Release::of(&old, &[false], &[0], release_head());
        let atoms = [
            ((0, vec![(0, 1), (0, 1)]), inside),
            ((0, vec![OUTSIDE, (0, 1)]), released - inside),
        ];
        build(&[&new, &old], &[&release], &atoms, None, 3).unwrap()
    }

    #[test]
    fn a_released_cell_bounds_the_new_cell_it_contains_whatever_their_difference() {
        // 20 people beyond: no group to protect, but the released 30 still caps the new cell.
        let j = new_inside_released(10, 30);
        assert_eq!(j.relations.nested, vec![((1, 0), (0, 0))]);
        assert_eq!(j.groups, 0);
        assert_eq!(j.table.len(), 2, "no group cell");
        let iv = crate::audit::intervals(&j.table, &[true, false], &[0], None).unwrap();
        assert_eq!(iv[0].upper, Some(30.0), "{iv:?}");
        // 2 people beyond: a group of its own, protected, and the same cap.
        let j = new_inside_released(10, 12);
        assert_eq!(j.groups, 1);
        assert_eq!(j.table.len(), 3);
        assert_eq!(j.table.kind_of(2), Kind::Group);
        let iv = crate::audit::intervals(&j.table, &[true, false, true], &[0], None).unwrap();
        assert_eq!(iv[0].upper, Some(12.0), "{iv:?}");
    }

    #[test]
    fn three_parts_that_share_nobody_and_make_a_whole_are_a_partition() {
        // Tables: 0 everyone, 1 women, 2 men, 3 diverse people, 4 women or men.
        let t = one_cell();
        let tables = [&t, &t, &t, &t, &t];
        let atoms = [
            atom(&[true, true, false, false, true]),
            atom(&[true, false, true, false, true]),
            atom(&[true, false, false, true, false]),
        ];
        let r = find_relations(&tables, &atoms);
        // The largest parts of everyone are "women or men" and "diverse": a union of two (and
        // "women or men" the union of women and men).
        assert_eq!(
            r.unions,
            vec![((0, 0), (3, 0), (4, 0)), ((4, 0), (1, 0), (2, 0))]
        );
        assert!(r.partitions.is_empty());
        // Without "women or men": women, men and diverse make everyone.
        let atoms: Vec<_> = atoms
            .iter()
            .map(|((ge, key), n)| ((*ge, key[..4].to_vec()), *n))
            .collect();
        let r = find_relations(&tables[..4], &atoms);
        assert_eq!(r.partitions, vec![((0, 0), vec![(1, 0), (2, 0), (3, 0)])]);
        assert!(r.unions.is_empty(), "{:?}", r.unions);
        // The whole's own table has a second indicator, a part of the first (everyone
        // counselled: the women and one man): still the same partition of the first.
        let two = ReportTable {
            exclusive: Vec::new(),
            exhaustive: Vec::new(),
            indicators: vec!["n".into(), "beraten".into()],
            ..one_cell()
        };
        let tables = [&two, &t, &t, &t];
        let atoms = [
            ((0, vec![(0, 0b11), (0, 1), OUTSIDE, OUTSIDE]), 1),
            ((0, vec![(0, 0b11), OUTSIDE, (0, 1), OUTSIDE]), 1),
            ((0, vec![(0, 0b01), OUTSIDE, (0, 1), OUTSIDE]), 1),
            ((0, vec![(0, 0b01), OUTSIDE, OUTSIDE, (0, 1)]), 1),
        ];
        let r = find_relations(&tables, &atoms);
        assert_eq!(r.partitions, vec![((0, 0), vec![(1, 0), (2, 0), (3, 0)])]);
        // Parts that overlap (women, men, and everyone under 25) are no partition.
        let atoms = [
            atom(&[true, true, false, true]),
            atom(&[true, false, true, true]),
            atom(&[true, true, false, false]),
            atom(&[true, false, true, false]),
            atom(&[true, false, false, true]),
        ];
        let r = find_relations(&tables[..4], &atoms);
        assert!(r.partitions.is_empty(), "{:?}", r.partitions);
    }

    #[test]
    fn relations_within_one_table_are_left_to_it() {
        // One table with two categories and their total; another report counts the first
        // category alone. The total is the union of the categories in the first table itself.
        let two = ReportTable {
            exclusive: Vec::new(),
            exhaustive: Vec::new(),
            areas: Vec::new(),
            categories: vec!["a".into(), "b".into(), "gesamt".into()],
            dimensions: vec!["d".into()],
            coordinates: vec![vec!["a".into()], vec!["b".into()], vec!["gesamt".into()]],
            positions_of: vec![vec![0, 2], vec![1, 2]],
            indicators: vec!["n".into()],
            table: Table::default(),
        };
        let t = one_cell();
        let tables = [&two, &t];
        let atoms = [
            ((0, vec![(0, 1), (0, 1)]), 1),
            ((0, vec![(1, 1), OUTSIDE]), 1),
        ];
        let r = find_relations(&tables, &atoms);
        // The other report's cell is category a: equal to it, and inside the total, which the
        // table's own sum already relates to its categories.
        assert_eq!(r.equal, vec![((0, 0), (1, 0))]);
        assert!(r.nested.is_empty(), "{:?}", r.nested);
        assert!(r.unions.is_empty(), "{:?}", r.unions);
    }
}
