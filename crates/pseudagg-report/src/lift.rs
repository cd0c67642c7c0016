//! The final audit of a month's reports over their atoms (issue 19 §1).
//!
//! [`crate::joint`] relates the reports' cells by what it finds between them: equal, nested,
//! union and partition. An attacker knows more: at each gE, every cell of every report is a sum
//! of atoms (the people with one combination of every definition's population, category and
//! indicators), and no atom is negative. That system holds every linear relation between the
//! reports' cells, also the bounds two overlapping cells put on each other and unions of three or
//! more cells, but at 550,000 rows it has 60,000 more unknowns.
//!
//! So the atoms join only where a point needs them. Each interval is sought in the joint system;
//! the point that reaches an end is then *lifted*: at each gE where it moves a report's cell, a
//! small linear program asks whether non-negative atoms add up to the cells as moved. If they do
//! at every gE, the point is feasible in the attacker's whole system, and since that system is
//! narrower than the joint one, the end is exact. If not, the gE's atoms join the system (each of
//! its cells the sum of its atoms) and the end is sought again. The atoms used are every kind
//! found at any gE of the extract; an attacker may also think of combinations nobody has, so
//! this system is, if anything, narrower than the attacker's: it errs towards refusing.
//!
//! Every primary cell and small group must keep its interval (threshold and width), under the
//! insider model also with any other gE of its district known (with its atoms); every other
//! suppressed cell of a report must not be known exactly. The pattern is not changed here: a
//! cell that fails refuses the report.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use highs::{HighsModelStatus, Model, RowProblem};
use pseudagg_core::Progress;
use rayon::prelude::*;

use crate::audit::{Interval, accepted_intervals, by_component, shared_out};
use crate::joint::{AtomKey, Joint, Origin, positions, positions_of};
use crate::layout::{Level, ReportTable};
use crate::lp::{End, Nearest, instance};
use crate::suppress::{Params, Pattern, Unprotected, protect_watched};
use crate::table::{Kind, Sum, Table};

/// Numbers each [`Atoms`] (and each change of its kinds), for the lifting programs kept per
/// thread.
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// A gE's lifting program, kept by a thread between points: one column per kind of atom, one per
/// cell holding the cell's value (its bounds change from point to point), and rows `sum of the
/// cell's kinds - the cell's column = 0`. Each solve starts from the basis before.
struct LiftProgram {
    model: Option<Model>,
    /// Per cell with kinds, its column and the value its bounds hold now.
    cells: Vec<(usize, highs::Col, f64)>,
    /// Cells no kind is counted in: they must stay 0.
    empty: Vec<usize>,
}

/// At most this many lifting programs a thread (each holds a HiGHS instance of about a thousand
/// columns; 550,000 rows: all of them 520 MB at peak, 48 a thread 290 MB, about as fast): the
/// points of one part of the table move the gEs of one district.
const KEPT_PROGRAMS: usize = 48;

thread_local! {
    /// The lifting programs of this thread, by (generation of the atoms, gE area).
    static PROGRAMS: RefCell<HashMap<(u64, usize), LiftProgram>> = RefCell::new(HashMap::new());
}

/// Tolerance of the floating-point programs.
const EPS: f64 = 1e-6;

/// The atoms of the month's reports, as the lifting programs use them.
#[derive(Debug, Clone)]
pub struct Atoms<'a> {
    /// Which atoms these are (see [`GENERATION`]).
    generation: u64,
    tables: Vec<&'a ReportTable>,
    /// The tables whose cells the atoms must add up to (empty: all); see [`Ctx::apart`].
    kept: Vec<bool>,
    offsets: Vec<usize>,
    /// Where each table's positions start in the flattened positions.
    starts: Vec<usize>,
    /// Per flattened position, the kinds of atom its people are of.
    kinds_in: Vec<Vec<usize>>,
    /// Per kind, the positions that count it ((table, position)).
    positions_of: Vec<Vec<(usize, usize)>>,
    /// Per gE area, the true count of each kind there.
    counts: HashMap<usize, Vec<(usize, u64)>>,
    /// Per gE area, the kinds an attacker cannot rule out there, with their true counts (0 for
    /// kinds with nobody there); see [`Atoms::restrict`].
    open: HashMap<usize, Vec<(usize, u64)>>,
}

impl<'a> Atoms<'a> {
    /// `ge_area[g]` is the area of the gE the counters number `g`.
    #[must_use]
    pub fn new(
        tables: &[&'a ReportTable],
        offsets: &[usize],
        atoms: &[(AtomKey, u64)],
        ge_area: &[usize],
    ) -> Self {
        let mut starts = Vec::with_capacity(tables.len());
        let mut total = 0;
        for rt in tables {
            starts.push(total);
            total += positions(rt);
        }
        let mut kinds_in = vec![Vec::new(); total];
        let mut kind_of: BTreeMap<&[(u16, u64)], usize> = BTreeMap::new();
        let mut positions_of_kind: Vec<Vec<(usize, usize)>> = Vec::new();
        let mut counts: HashMap<usize, Vec<(usize, u64)>> = HashMap::new();
        for ((ge, key), n) in atoms {
            let k = if let Some(&k) = kind_of.get(key.as_slice()) {
                k
            } else {
                let k = kind_of.len();
                let mut at = Vec::new();
                for (t, rt) in tables.iter().enumerate() {
                    for p in positions_of(rt, key[t]) {
                        kinds_in[starts[t] + p].push(k);
                        at.push((t, p));
                    }
                }
                if at.is_empty() {
                    // In no cell: nothing to lift.
                    continue;
                }
                kind_of.insert(key, k);
                positions_of_kind.push(at);
                k
            };
            counts
                .entry(ge_area[*ge as usize])
                .or_default()
                .push((k, *n));
        }
        Self {
            generation: next_generation(),
            tables: tables.to_vec(),
            kept: Vec::new(),
            offsets: offsets.to_vec(),
            starts,
            kinds_in,
            positions_of: positions_of_kind,
            counts,
            open: HashMap::new(),
        }
    }

    /// Finds, for each gE, the kinds of atom an attacker cannot rule out there: every kind found
    /// at some gE of the extract (one no gE has is not thought of), except those counted in a
    /// cell of that gE published as 0. (An attacker may think of combinations nobody in the
    /// extract has; leaving them out errs towards narrower intervals, so towards refusing.)
    pub fn restrict(&mut self, table: &Table) {
        let areas: Vec<usize> = (0..self.tables[0].areas.len())
            .filter(|&a| self.tables[0].areas[a].level == Level::Ge)
            .collect();
        let open: Vec<(usize, Vec<(usize, u64)>)> = areas
            .par_iter()
            .map(|&a| {
                let mut count: HashMap<usize, u64> = HashMap::new();
                for &(k, n) in self.counts.get(&a).map_or(&[][..], Vec::as_slice) {
                    count.insert(k, n);
                }
                let kinds = (0..self.positions_of.len())
                    .filter(|&k| {
                        self.positions_of[k].iter().all(|&(t, p)| {
                            let c = self.cell(t, a, p);
                            table.values[c] > 0 || table.starts_suppressed(c)
                        })
                    })
                    .map(|k| (k, count.get(&k).copied().unwrap_or(0)))
                    .collect();
                (a, kinds)
            })
            .collect();
        self.open = open.into_iter().collect();
        self.generation = next_generation();
        tracing::debug!(
            kinds = self.positions_of.len(),
            largest = self.open.values().map(Vec::len).max().unwrap_or(0),
            mean = self.open.values().map(Vec::len).sum::<usize>() / self.open.len().max(1),
            "audit over the atoms: the kinds of atom each gE may have"
        );
    }

    /// The joint table's cell of table `t`, position `p` at `area`.
    fn cell(&self, t: usize, area: usize, p: usize) -> usize {
        self.offsets[t] + area * positions(self.tables[t]) + p
    }

    /// Each position's cell at `area`, with the kinds it sums.
    fn cells_at(&self, area: usize) -> impl Iterator<Item = (usize, &[usize])> + '_ {
        let kept = |t: usize| self.kept.get(t).copied().unwrap_or(true);
        self.tables
            .iter()
            .enumerate()
            .filter(move |&(t, _)| kept(t))
            .flat_map(move |(t, rt)| {
                (0..positions(rt)).map(move |p| {
                    (
                        self.cell(t, area, p),
                        self.kinds_in[self.starts[t] + p].as_slice(),
                    )
                })
            })
    }

    /// The kinds of atom an attacker cannot rule out at `area`, and their true counts.
    fn present(&self, area: usize) -> &[(usize, u64)] {
        self.open.get(&area).map_or(&[][..], Vec::as_slice)
    }

    /// Do non-negative atoms of `area` add up to its cells' values (`value(cell)`)?
    fn lifts(&self, area: usize, value: impl Fn(usize) -> f64) -> bool {
        PROGRAMS.with(|programs| {
            let mut programs = programs.borrow_mut();
            // A thread works for one set of atoms at a time: the programs of another go.
            let key = (self.generation, area);
            if programs
                .keys()
                .next()
                .is_some_and(|k| k.0 != self.generation)
                || (programs.len() >= KEPT_PROGRAMS && !programs.contains_key(&key))
            {
                programs.clear();
            }
            let program = programs
                .entry(key)
                .or_insert_with(|| self.program(area, &value));
            if program.empty.iter().any(|&c| value(c).abs() > EPS) {
                return false;
            }
            let Some(mut model) = program.model.take() else {
                return false;
            };
            for (cell, col, held) in &mut program.cells {
                let v = value(*cell);
                if (v - *held).abs() > 0.0 {
                    model.change_column_bounds(*col, v..=v);
                    *held = v;
                }
            }
            let Ok(solved) = model.try_solve() else {
                return false;
            };
            let ok = matches!(
                solved.status(),
                HighsModelStatus::Optimal | HighsModelStatus::ModelEmpty
            );
            program.model = Some(Model::from(solved));
            ok
        })
    }

    /// `area`'s lifting program, its cells held at `value`.
    fn program(&self, area: usize, value: impl Fn(usize) -> f64) -> LiftProgram {
        let mut pb = RowProblem::default();
        let cols: HashMap<usize, highs::Col> = self
            .present(area)
            .iter()
            .map(|&(k, _)| (k, pb.add_column(0.0, 0.0..)))
            .collect();
        let mut cells = Vec::new();
        let mut empty = Vec::new();
        for (cell, kinds) in self.cells_at(area) {
            let mut terms: Vec<(highs::Col, f64)> = kinds
                .iter()
                .filter_map(|k| cols.get(k).map(|&c| (c, 1.0)))
                .collect();
            if terms.is_empty() {
                empty.push(cell);
                continue;
            }
            let v = value(cell);
            let held = pb.add_column(0.0, v..=v);
            terms.push((held, -1.0));
            pb.add_row(0.0..=0.0, &terms);
            cells.push((cell, held, v));
        }
        // Small and sparse, and solved again and again from the last basis: presolve would
        // cost more than the solve (perf: it was most of the audit's time).
        LiftProgram {
            model: Some(instance(pb, false)),
            cells,
            empty,
        }
    }

    /// `table` with the atoms of `areas` as cells of their own (never published, at least 0,
    /// owned by their gE) and each cell of those areas the sum of its atoms.
    #[must_use]
    pub fn with_atoms(&self, table: &Table, areas: &BTreeSet<usize>) -> Table {
        let mut t = table.clone();
        for &a in areas {
            let first = self.cell(0, a, 0);
            let (owner, district) = (t.owner[first], t.district[first]);
            let mut cell_of: HashMap<usize, usize> = HashMap::new();
            for &(k, n) in self.present(a) {
                cell_of.insert(k, t.len());
                t.values.push(n);
                t.rank.push(0);
                t.owner.push(owner);
                t.district.push(district);
                t.keep_published.push(true);
                t.kind.push(Kind::Atom);
                t.preset.push(false);
            }
            for (cell, kinds) in self.cells_at(a) {
                let parts: Vec<usize> = kinds
                    .iter()
                    .filter_map(|k| cell_of.get(k).copied())
                    .collect();
                if !parts.is_empty() {
                    t.sums.push(Sum { total: cell, parts });
                }
            }
        }
        t
    }
}

/// What the final audit found.
#[derive(Debug, Default)]
pub struct Lifted {
    /// Cells that do not keep their protection in the whole system, with their intervals there.
    pub unprotected: Vec<(usize, Interval)>,
    /// Cells of the released reports that are narrowed as far without this report (by their
    /// own reports' relations): not this report's doing, so they do not refuse it.
    pub inherited: Vec<usize>,
    /// The gEs whose atoms joined the system.
    pub ges_with_atoms: usize,
    /// The gEs whose atoms the protection needs, where cells are unprotected: those that joined
    /// the system, and those of the unprotected cells.
    pub widen: BTreeSet<usize>,
    /// How often the points were sought (once, and once more per widening).
    pub passes: usize,
    /// The cells audited, the points found and lifted, and the cells decided by their whole
    /// part's linear programs (where no near point shows them safe).
    pub cells: usize,
    pub points: usize,
    pub exact: usize,
}

/// How far a target's value must move, and which way.
#[derive(Debug, Clone, Copy)]
struct Goal {
    cell: usize,
    primary: bool,
}

/// What the points of a pass showed about one target.
enum Shown {
    /// Safe, against every insider asked.
    Safe,
    /// A point did not lift at a gE without atoms in the system: ask again, with them.
    Widen,
    /// No near point shows it safe (from outside, or against an insider): the linear programs
    /// of its whole part decide.
    Exact(Option<u32>),
}

/// Audits the pattern `suppressed` of `joint` over the atoms, those of the gEs `with_atoms` in
/// the system from the start; see the module's text.
///
/// Each target is first shown safe by points near the true counts (the fewest people moved,
/// so they touch few gEs): for a primary cell one that lifts it to the threshold and the width,
/// for any other suppressed cell one that moves it by a whole person. Under the insider model
/// each gE of the district whose cells the point moves is held at its true counts and a point is
/// sought again (a point that holds a gE's cells serves against it). A point that does not lift
/// adds the atoms of the gEs where it fails, and the target is asked again. A target no near
/// point shows safe gets its exact interval from its whole part's linear programs, the points
/// of which are lifted too.
pub fn audit(
    joint: &Joint,
    atoms: &Atoms<'_>,
    suppressed: &[bool],
    limits: (u64, u64),
    insider: bool,
    with_atoms: &BTreeSet<usize>,
) -> Result<Lifted, String> {
    let table = &joint.table;
    let n = table.len();
    let (threshold, _) = limits;
    let goals: Vec<Goal> = (0..n)
        .filter(|&c| {
            suppressed[c]
                && match table.kind_of(c) {
                    Kind::Published => true,
                    Kind::Group => table.is_primary(c, threshold),
                    Kind::Atom => false,
                }
        })
        .map(|cell| Goal {
            cell,
            primary: table.is_primary(cell, threshold),
        })
        .collect();
    let mut district_of: HashMap<u32, u32> = HashMap::new();
    for x in 0..n {
        if let Some(o) = table.owner_of(x) {
            district_of.entry(o).or_insert(table.district[x]);
        }
    }
    let ctx = Ctx {
        joint,
        atoms,
        limits,
        insider,
        district_of,
    };
    let mut out = Lifted {
        cells: goals.len(),
        ..Lifted::default()
    };
    let mut active: BTreeSet<usize> = with_atoms.clone();
    let mut pending: Vec<Goal> = goals;
    let mut exact: Vec<(usize, Option<u32>)> = Vec::new();
    while !pending.is_empty() {
        out.passes += 1;
        let started = std::time::Instant::now();
        let wide = atoms.with_atoms(table, &active);
        let mut known = suppressed.to_vec();
        known.resize(wide.len(), true);
        let failed: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());
        let points = std::sync::atomic::AtomicUsize::new(0);
        let cells: Vec<usize> = pending.iter().map(|g| g.cell).collect();
        let (comps, by_comp) = by_component(&wide, &known, &cells)?;
        let shown: Vec<Vec<(usize, Shown)>> = shared_out(by_comp, 8)
            .into_par_iter()
            .map(|(ci, members)| {
                ctx.show(
                    &wide,
                    &comps[ci],
                    &members,
                    &pending,
                    &active,
                    (&failed, &points),
                )
            })
            .collect::<Result<_, String>>()?;
        out.points += points.into_inner();
        let failed = failed.into_inner().map_err(|_| "a thread failed")?;
        let new: Vec<usize> = failed.difference(&active).copied().collect();
        let mut again = Vec::new();
        for (i, shown) in shown.into_iter().flatten() {
            match shown {
                Shown::Safe => {}
                Shown::Widen if !new.is_empty() => again.push(pending[i]),
                // Nothing to widen (cannot happen: a point that does not lift names its gE).
                Shown::Widen => exact.push((pending[i].cell, None)),
                Shown::Exact(h) => exact.push((pending[i].cell, h)),
            }
        }
        tracing::info!(
            pass = out.passes,
            asked = pending.len(),
            again = again.len(),
            exact = exact.len(),
            ges_with_atoms = active.len(),
            ges_added = new.len(),
            ms = started.elapsed().as_millis() as u64,
            "audit over the atoms: a pass"
        );
        active.extend(new);
        pending = again;
    }
    out.exact = exact.len();
    let narrowed = ctx.decide_exactly(table, suppressed, &exact, &mut active, &mut out.passes)?;
    attribute(&ctx, suppressed, narrowed, &mut out)?;
    out.ges_with_atoms = active.len();
    if !out.unprotected.is_empty() {
        out.widen = widen(&ctx, active, &out.unprotected);
    }
    Ok(out)
}

/// Why [`protect_together`] gave no pattern.
#[derive(Debug)]
pub enum Refusal {
    /// The engine found no safe pattern (with the atoms that had joined the table).
    Engine(Unprotected),
    /// Cells the reports narrow together that no further suppression hides.
    Narrowed(Lifted),
    /// A linear program failed.
    Failed(String),
}

/// Protects `joint` and audits the pattern over the atoms of `atoms`; where the reports narrow
/// a cell together, the atoms of the gEs concerned join the table and the pattern is sought
/// again, until the audit passes (the pattern, over the joint table's cells, and the last audit)
/// or nothing more can join.
pub fn protect_together(
    joint: &Joint,
    atoms: &Atoms<'_>,
    params: Params,
    progress: Option<Progress<'_>>,
) -> Result<(Pattern, Lifted), Refusal> {
    let n = joint.table.len();
    let mut with_atoms: BTreeSet<usize> = BTreeSet::new();
    loop {
        let table = atoms.with_atoms(&joint.table, &with_atoms);
        let mut pattern = protect_watched(&table, params, progress).map_err(Refusal::Engine)?;
        pattern.suppressed.truncate(n);
        pattern.primary.truncate(n);
        pattern.audit.retain(|&(c, _)| c < n);
        let _s = tracing::info_span!("lift", ges_with_atoms = with_atoms.len()).entered();
        let lifted = audit(
            joint,
            atoms,
            &pattern.suppressed,
            (params.threshold, params.min_width),
            params.insider,
            &with_atoms,
        )
        .map_err(Refusal::Failed)?;
        tracing::info!(
            cells = lifted.cells,
            points = lifted.points,
            exact = lifted.exact,
            ges_with_atoms = lifted.ges_with_atoms,
            passes = lifted.passes,
            unprotected = lifted.unprotected.len(),
            "audited over the atoms"
        );
        if lifted.unprotected.is_empty() {
            return Ok((pattern, lifted));
        }
        let before = with_atoms.len();
        with_atoms.extend(&lifted.widen);
        if with_atoms.len() == before {
            return Err(Refusal::Narrowed(lifted));
        }
        tracing::info!(
            narrowed = lifted.unprotected.len(),
            ges_with_atoms = with_atoms.len(),
            "the atoms of the gEs concerned join the table; protecting again"
        );
    }
}

/// Sorts the `narrowed` cells (with the insider each was narrowed against) into those the
/// reports narrow together (`out.unprotected`) and those narrowed as far by their own reports
/// (`out.inherited`).
fn attribute(
    ctx: &Ctx<'_, '_>,
    suppressed: &[bool],
    narrowed: Vec<(usize, Option<u32>, Interval)>,
    out: &mut Lifted,
) -> Result<(), String> {
    let atoms = ctx.atoms;
    // A cell narrowed as far by its own reports: by the new one alone (for its cells), or by
    // the released ones without it (for theirs). What one person can be counted in together
    // within a report, beyond the subsets its definition declares, is that report's own
    // business: the single-report audit protects what the definitions declare. Only a cell
    // that the reports narrow further together refuses (or changes) this report.
    let tables = atoms.tables.len();
    let new_alone: Vec<bool> = (0..tables).map(|t| t == 0).collect();
    let released_alone: Vec<bool> = (0..tables).map(|t| t != 0).collect();
    let mut baseline: HashMap<(usize, Option<u32>), Interval> = HashMap::new();
    for kept in [new_alone, released_alone] {
        let asked: Vec<(usize, Option<u32>)> = narrowed
            .iter()
            .filter(|&&(c, _, _)| ctx.tables_of(c).iter().all(|&t| kept[t]))
            .map(|&(c, h, _)| (c, h))
            .collect();
        if asked.is_empty() {
            continue;
        }
        let (before, known) = ctx.apart(suppressed, &kept);
        let apart_atoms = Atoms {
            generation: next_generation(),
            kept: kept.clone(),
            ..atoms.clone()
        };
        let apart = Ctx {
            atoms: &apart_atoms,
            district_of: ctx.district_of.clone(),
            ..*ctx
        };
        let mut none = BTreeSet::new();
        for (c, h, iv) in
            apart.decide_exactly(&before, &known, &asked, &mut none, &mut out.passes)?
        {
            baseline.insert((c, h), iv);
        }
    }
    for (c, h, iv) in narrowed {
        let same = baseline.get(&(c, h)).is_some_and(|b| {
            (b.lower - iv.lower).abs() <= EPS
                && match (b.upper, iv.upper) {
                    (Some(x), Some(y)) => (x - y).abs() <= EPS,
                    (None, None) => true,
                    _ => false,
                }
        });
        if same {
            out.inherited.push(c);
        } else {
            out.unprotected.push((c, iv));
        }
    }
    out.inherited.sort_unstable();
    out.inherited.dedup();
    out.unprotected.sort_by_key(|&(c, _)| c);
    out.unprotected.dedup_by_key(|&mut (c, _)| c);
    Ok(())
}

/// The gEs whose atoms the protection needs where cells are `unprotected`: those that joined
/// the audit's system (`active`), and those of the cells themselves.
fn widen(
    ctx: &Ctx<'_, '_>,
    mut active: BTreeSet<usize>,
    unprotected: &[(usize, Interval)],
) -> BTreeSet<usize> {
    for &(c, _) in unprotected {
        let cells = match ctx.joint.origin[c] {
            Origin::Cell { table, cell } => vec![(table, cell)],
            Origin::Group { x, y } | Origin::Both { x, y } => vec![x, y],
            Origin::Rest { table, whole } => vec![(table, whole)],
        };
        for (t, cell) in cells {
            let a = cell / positions(ctx.atoms.tables[t]);
            if ctx.atoms.tables[0].areas[a].level == Level::Ge {
                active.insert(a);
            }
        }
    }
    active
}

struct Ctx<'a, 'b> {
    joint: &'a Joint,
    atoms: &'a Atoms<'b>,
    limits: (u64, u64),
    insider: bool,
    district_of: HashMap<u32, u32>,
}

impl Ctx<'_, '_> {
    /// The report tables whose people joint cell `c` counts.
    fn tables_of(&self, c: usize) -> Vec<usize> {
        match self.joint.origin[c] {
            Origin::Cell { table, .. } | Origin::Rest { table, .. } => vec![table],
            Origin::Group { x, y } | Origin::Both { x, y } => vec![x.0, y.0],
        }
    }

    /// The joint table with only the tables `kept`: the other cells, and the groups they take
    /// part in, never published and in no relation; with the pattern's other cells.
    fn apart(&self, suppressed: &[bool], kept: &[bool]) -> (Table, Vec<bool>) {
        let mut t = self.joint.table.clone();
        let mut known = suppressed.to_vec();
        let gone: Vec<bool> = (0..t.len())
            .map(|c| self.tables_of(c).iter().any(|&x| !kept[x]))
            .collect();
        for c in (0..t.len()).filter(|&c| gone[c]) {
            t.kind[c] = Kind::Atom;
            known[c] = true;
        }
        t.sums
            .retain(|s| !gone[s.total] && s.parts.iter().all(|&p| !gone[p]));
        t.subsets.retain(|&(a, b)| !gone[a] && !gone[b]);
        (t, known)
    }

    /// The value a target must reach from its true count (up), or, for a cell that is not
    /// primary, down to, when it cannot move up.
    fn reach(&self, goal: Goal, table: &Table) -> (f64, f64) {
        let (threshold, width) = self.limits;
        let v = table.values[goal.cell] as f64;
        if goal.primary {
            ((threshold as f64).max(v + width as f64), f64::NAN)
        } else {
            (v + 1.0, v - 1.0)
        }
    }

    /// The gE areas (without atoms in the system) at which `point` moves a report's cell, each
    /// with the cells moved.
    fn moved_areas(
        &self,
        vars: &[usize],
        point: &[f64],
        active: &BTreeSet<usize>,
    ) -> BTreeMap<usize, HashMap<usize, f64>> {
        let table = &self.joint.table;
        let n = table.len();
        let mut shifted: BTreeMap<usize, HashMap<usize, f64>> = BTreeMap::new();
        for (&c, &x) in vars.iter().zip(point) {
            if c >= n || (x - table.values[c] as f64).abs() <= EPS {
                continue;
            }
            if let Origin::Cell { table: t, cell } = self.joint.origin[c] {
                let a = cell / positions(self.atoms.tables[t]);
                if self.atoms.tables[0].areas[a].level == Level::Ge && !active.contains(&a) {
                    shifted.entry(a).or_default().insert(c, x);
                }
            }
        }
        shifted
    }

    /// Does `point` lift at every gE it moves? The gEs where it does not go to `failed`.
    fn lifts(
        &self,
        vars: &[usize],
        point: &[f64],
        active: &BTreeSet<usize>,
        failed: &Mutex<BTreeSet<usize>>,
    ) -> bool {
        let table = &self.joint.table;
        let mut all = true;
        for (a, moved) in self.moved_areas(vars, point, active) {
            let ok = self.atoms.lifts(a, |c| {
                moved.get(&c).copied().unwrap_or(table.values[c] as f64)
            });
            if !ok {
                failed.lock().expect("no thread panics").insert(a);
                all = false;
            }
        }
        all
    }

    /// The points of one part for its `members` ((position in `goals`, variable)).
    fn show(
        &self,
        wide: &Table,
        comp: &crate::audit::Component,
        members: &[(usize, usize)],
        goals: &[Goal],
        active: &BTreeSet<usize>,
        (failed, points): (&Mutex<BTreeSet<usize>>, &std::sync::atomic::AtomicUsize),
    ) -> Result<Vec<(usize, Shown)>, String> {
        let truth: Vec<f64> = comp.vars.iter().map(|&c| wide.values[c] as f64).collect();
        // Moving a gE's own cell costs 1 per person; a total or an atom, which only follows the
        // cells, little.
        let weight: Vec<f64> = comp
            .vars
            .iter()
            .map(|&c| {
                if wide.owner_of(c).is_some() && wide.kind_of(c) != Kind::Atom {
                    1.0
                } else {
                    1e-3
                }
            })
            .collect();
        let of_owner = comp.by_owner(wide);
        let floors = comp.floors(wide);
        let mut nearest = Nearest::new(&comp.rows(), &truth, &weight, &floors);
        let none = Vec::new();
        let mut out = Vec::with_capacity(members.len());
        for &(i, v) in members {
            let goal = goals[i];
            let (up, down) = self.reach(goal, wide);
            // A point that shows the target safe with gE `h` (if any) held, lifted.
            let mut search = |h: Option<u32>| -> Result<Result<Option<BTreeSet<u32>>, ()>, String> {
                let held = h.and_then(|h| of_owner.get(&h)).unwrap_or(&none);
                let mut point = nearest.point(v, (End::Upper, up), &[], held)?;
                if point.is_none() && !goal.primary && down >= floors[v] - EPS {
                    point = nearest.point(v, (End::Lower, down), &[], held)?;
                }
                let Some(point) = point else {
                    return Ok(Ok(None));
                };
                points.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if !self.lifts(&comp.vars, &point, active, failed) {
                    return Ok(Err(()));
                }
                Ok(Ok(Some(
                    comp.vars
                        .iter()
                        .zip(&point)
                        .zip(&truth)
                        .filter(|&((_, x), t)| (x - t).abs() > EPS)
                        .filter_map(|((&c, _), _)| wide.owner_of(c))
                        .collect(),
                )))
            };
            let shown = match search(None)? {
                Err(()) => Shown::Widen,
                Ok(None) => Shown::Exact(None),
                Ok(Some(moved)) if !(self.insider && goal.primary) => {
                    let _ = moved;
                    Shown::Safe
                }
                Ok(Some(moved)) => {
                    let own = wide.owner_of(goal.cell);
                    let district = wide.district.get(goal.cell).copied();
                    let mut uncovered: BTreeSet<u32> = moved
                        .into_iter()
                        .filter(|&h| {
                            Some(h) != own && self.district_of.get(&h).copied() == district
                        })
                        .collect();
                    let mut shown = Shown::Safe;
                    while let Some(h) = uncovered.pop_first() {
                        match search(Some(h))? {
                            Err(()) => {
                                shown = Shown::Widen;
                                break;
                            }
                            Ok(None) => {
                                shown = Shown::Exact(Some(h));
                                break;
                            }
                            Ok(Some(moved)) => uncovered.retain(|g| moved.contains(g)),
                        }
                    }
                    shown
                }
            };
            out.push((i, shown));
        }
        Ok(out)
    }

    /// The exact intervals of the cells no near point showed safe (each with the insider it
    /// failed against, if any), over their whole parts, lifted; the cells they leave unprotected.
    fn decide_exactly(
        &self,
        table: &Table,
        suppressed: &[bool],
        asked: &[(usize, Option<u32>)],
        active: &mut BTreeSet<usize>,
        passes: &mut usize,
    ) -> Result<Vec<(usize, Option<u32>, Interval)>, String> {
        let n = table.len();
        let (threshold, width) = self.limits;
        let reach = |c: usize, lower: f64| {
            if table.is_primary(c, threshold) {
                (threshold as f64).max(lower + width as f64)
            } else {
                (lower - EPS).ceil() + 1.0
            }
        };
        let mut by_insider: BTreeMap<Option<u32>, Vec<usize>> = BTreeMap::new();
        for &(c, h) in asked {
            by_insider.entry(h).or_default().push(c);
        }
        let mut unprotected = Vec::new();
        // Each insider's cells (and those asked from outside) side by side; a round ends when
        // all are decided or need more atoms.
        let mut groups: Vec<(Option<u32>, Vec<usize>)> = by_insider.into_iter().collect();
        while !groups.is_empty() {
            *passes += 1;
            let wide = self.atoms.with_atoms(table, active);
            let now: &BTreeSet<usize> = active;
            let rounds: Vec<Found> = groups
                .par_iter()
                .map(|(h, pending)| {
                    let known: Vec<bool> = (0..wide.len())
                        .map(|c| {
                            (c >= n || suppressed[c]) && (h.is_none() || wide.owner_of(c) != *h)
                        })
                        .collect();
                    let failed: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());
                    let accept =
                        |vars: &[usize], point: &[f64]| self.lifts(vars, point, now, &failed);
                    let cap = |j: usize, lower: f64| reach(pending[j], lower);
                    let found = accepted_intervals(&wide, &known, pending, &cap, &accept)?;
                    let failed = failed.into_inner().map_err(|_| "a thread failed")?;
                    Ok((*h, pending.iter().copied().zip(found).collect(), failed))
                })
                .collect::<Result<_, String>>()?;
            let new: BTreeSet<usize> = rounds
                .iter()
                .flat_map(|r| r.2.iter().copied())
                .filter(|a| !active.contains(a))
                .collect();
            let asked: usize = groups.iter().map(|g| g.1.len()).sum();
            let mut next = Vec::new();
            for (h, found, _) in rounds {
                let mut again = Vec::new();
                for (c, iv) in found {
                    match iv {
                        Some(iv) if iv.upper.is_some_and(|hi| hi + EPS >= reach(c, iv.lower)) => {}
                        Some(iv) => unprotected.push((c, h, iv)),
                        None if new.is_empty() => unprotected.push((c, h, unknown())),
                        None => again.push(c),
                    }
                }
                if !again.is_empty() {
                    next.push((h, again));
                }
            }
            tracing::info!(
                asked,
                insiders = groups.len(),
                again = next.iter().map(|g| g.1.len()).sum::<usize>(),
                ges_added = new.len(),
                "audit over the atoms: whole parts decide"
            );
            active.extend(new);
            groups = next;
        }
        unprotected.sort_by_key(|&(c, h, _)| (c, h));
        Ok(unprotected)
    }
}

/// One insider's (or the outside's) cells decided in a round, and the gEs whose atoms failed.
type Found = (Option<u32>, Vec<(usize, Option<Interval>)>, BTreeSet<usize>);

/// An interval not found (the programs failed): the cell counts as unprotected.
fn unknown() -> Interval {
    Interval {
        lower: 0.0,
        upper: Some(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Counts;
    use crate::audit::intervals;
    use crate::joint::tests::release_head;
    use crate::joint::{Release, build};
    use crate::layout::tests::{ges_for, plan_with};
    use crate::suppress::{Params, protect};
    use proptest::prelude::*;

    /// Three reports, each of two categories and two indicators (everyone, and a subset): a
    /// kind of atom is, per report, its category and whether the subset counts it (0 to 3), or
    /// outside its population (4); never outside all three.
    fn kinds() -> Vec<[u16; 3]> {
        (0..125)
            .map(|k| [k % 5, k / 5 % 5, k / 25])
            .filter(|k| k != &[4, 4, 4])
            .collect()
    }

    /// A report's counts from the atoms (`people[g][k]`: people of kind `kinds()[k]` at gE g).
    fn counts(people: &[Vec<u64>], rds: &[usize], table: usize) -> Counts {
        let values = people
            .iter()
            .map(|at| {
                let mut v = vec![0; 4];
                for (k, kind) in kinds().iter().enumerate() {
                    let s = kind[table] as usize;
                    if s < 4 {
                        v[s / 2 * 2] += at[k];
                        if s % 2 == 1 {
                            v[s / 2 * 2 + 1] += at[k];
                        }
                    }
                }
                v
            })
            .collect();
        Counts {
            ges: ges_for(rds),
            values,
            categories: 2,
            indicators: 2,
            rows_read: 0,
            rows_counted: 0,
        }
    }

    /// The suppressed cells of `joint` narrowed (below protection, or known exactly) in the
    /// system with every gE's atoms.
    fn narrowed_with_every_atom(
        joint: &Joint,
        view: &Atoms<'_>,
        ge_area: &[usize],
        suppressed: &[bool],
    ) -> Vec<usize> {
        let n = joint.table.len();
        let every: BTreeSet<usize> = ge_area.iter().copied().collect();
        let wide = view.with_atoms(&joint.table, &every);
        let mut known = suppressed.to_vec();
        known.resize(wide.len(), true);
        let targets: Vec<usize> = (0..n)
            .filter(|&c| {
                suppressed[c]
                    && match joint.table.kind_of(c) {
                        Kind::Published => true,
                        Kind::Group => joint.table.is_primary(c, 3),
                        Kind::Atom => false,
                    }
            })
            .collect();
        let ivs = intervals(&wide, &known, &targets, None).unwrap();
        let mut narrowed: Vec<usize> = targets
            .iter()
            .zip(&ivs)
            .filter(|&(&c, iv)| {
                let need = if joint.table.is_primary(c, 3) {
                    3f64.max(iv.lower + 1.0)
                } else {
                    (iv.lower - EPS).ceil() + 1.0
                };
                !iv.upper.is_none_or(|hi| hi + EPS >= need)
            })
            .map(|(&c, _)| c)
            .collect();
        narrowed.sort_unstable();
        narrowed
    }

    fn people() -> impl Strategy<Value = (Vec<usize>, Vec<Vec<u64>>)> {
        (2usize..=5).prop_flat_map(|n| {
            (
                prop::collection::vec(0usize..2, n),
                prop::collection::vec(
                    prop::collection::vec(
                        prop_oneof![40 => Just(0u64), 3 => 1u64..=2, 1 => 3u64..=8],
                        124,
                    ),
                    n,
                ),
            )
        })
    }

    /// What one case of three reports (see [`kinds`]) gives: the cells that the joint table's own
    /// pattern leaves narrowed over the atoms (the lazy audit's and the full system's), and the
    /// pattern protected over the atoms with its audit and what the full system narrows under it.
    struct Case {
        found: Vec<usize>,
        narrowed_alone: Vec<usize>,
        alone: Vec<bool>,
        together: Option<(Vec<bool>, Lifted, Vec<usize>)>,
    }

    /// The [`Case`] of gEs in `rds` with `people` (see [`counts`]); `None` where a released
    /// report or the joint table has no safe pattern.
    fn case(rds: &[usize], people: &[Vec<u64>]) -> Option<Case> {
        let plan = plan_with(&[2], 2);
        let reports: Vec<ReportTable> = (0..3)
            .map(|t| ReportTable::build(&plan, &counts(people, rds, t)))
            .collect();
        let params = Params {
            threshold: 3,
            min_width: 1,
            insider: false,
        };
        let mut releases = Vec::new();
        for old in &reports[1..] {
            let released = protect(&old.table, params).ok()?;
            let all: Vec<usize> = (0..old.areas.len()).collect();
            releases.push(Release::of(old, &released.suppressed, &all, release_head()));
        }
        let key = |s: u16| {
            if s < 4 {
                (s / 2, 1 | u64::from(s % 2) << 1)
            } else {
                (u16::MAX, 0)
            }
        };
        let mut atoms: Vec<(AtomKey, u64)> = people
            .iter()
            .enumerate()
            .flat_map(|(g, at)| {
                kinds()
                    .into_iter()
                    .zip(at.clone())
                    .filter(|&(_, n)| n > 0)
                    .map(move |(kind, n)| ((g as u32, kind.iter().map(|&c| key(c)).collect()), n))
            })
            .collect();
        atoms.sort_unstable();
        let tables: Vec<&ReportTable> = reports.iter().collect();
        let released: Vec<&Release> = releases.iter().collect();
        let joint = build(&tables, &released, &atoms, None, 3).ok()?;
        let pattern = protect(&joint.table, params).ok()?;
        let new = &reports[0];
        let ge_area: Vec<usize> = (0..rds.len())
            .map(|g| {
                let nr = format!("{:05}", 10000 + g);
                new.areas
                    .iter()
                    .position(|a| a.ge.as_ref().is_some_and(|x| x.nr == nr))
                    .unwrap()
            })
            .collect();
        let mut view = Atoms::new(&tables, &joint.offsets, &atoms, &ge_area);
        view.restrict(&joint.table);
        let n = joint.table.len();
        let suppressed = &pattern.suppressed[..n];
        let lifted = audit(&joint, &view, suppressed, (3, 1), false, &BTreeSet::new()).unwrap();
        let mut found: Vec<usize> = lifted
            .unprotected
            .iter()
            .map(|u| u.0)
            .chain(lifted.inherited.iter().copied())
            .collect();
        found.sort_unstable();
        let together =
            protect_together(&joint, &view, params, None)
                .ok()
                .map(|(together, lifted)| {
                    let narrowed =
                        narrowed_with_every_atom(&joint, &view, &ge_area, &together.suppressed);
                    (together.suppressed, lifted, narrowed)
                });
        Some(Case {
            found,
            narrowed_alone: narrowed_with_every_atom(&joint, &view, &ge_area, suppressed),
            alone: suppressed.to_vec(),
            together,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// The lazy audit (atoms only where a point does not lift) finds exactly the cells that
        /// the whole system over every gE's atoms finds narrowed: three reports whose categories
        /// and indicators overlap at random, two released, the first protected beside them.
        /// (About one case in five has narrowed cells; with the lifting switched off, none of
        /// them is found: the joint system alone misses them.) Then, protected over the atoms
        /// ([`protect_together`]), the pattern leaves narrowed in that system only cells their
        /// own report narrows alone (in 128 cases about 15 patterns were sought again with
        /// atoms, 2 reports refused).
        #[test]
        fn lifting_points_finds_what_every_atom_in_the_system_finds((rds, people) in people()) {
            let Some(case) = case(&rds, &people) else { return Ok(()) };
            prop_assert_eq!(case.found, case.narrowed_alone);
            // Protected over the atoms: whatever the full system narrows, the report alone does.
            if let Some((_, lifted, narrowed)) = case.together {
                prop_assert!(lifted.unprotected.is_empty());
                prop_assert_eq!(lifted.inherited, narrowed);
            }
        }
    }

    /// People of each kind at each gE, from (kind, count) pairs.
    fn sparse(at: &[&[(usize, u64)]]) -> Vec<Vec<u64>> {
        at.iter()
            .map(|pairs| {
                let mut v = vec![0; 124];
                for &(k, n) in *pairs {
                    v[k] = n;
                }
                v
            })
            .collect()
    }

    /// The path the proptest above takes only now and then, on fixed cases (found by a seeded
    /// search over the same kind of data): the joint table's own pattern leaves a cell narrowed
    /// that only the atoms show, so the gEs' atoms join the table, the report is protected
    /// again, and the new pattern leaves nothing narrowed that its own report does not.
    #[test]
    fn a_cell_only_the_atoms_narrow_is_protected_again_with_them() {
        #[rustfmt::skip]
        let cases: [(Vec<usize>, Vec<Vec<u64>>); 2] = [
            (vec![0, 0], sparse(&[
                &[(11, 3), (13, 1), (21, 2), (25, 2), (29, 5), (38, 2), (53, 1), (55, 1), (61, 2), (70, 1), (76, 8), (90, 1), (95, 8), (109, 1)],
                &[(13, 2), (24, 3), (30, 2), (38, 6), (45, 2), (53, 2), (66, 1), (98, 2), (109, 7), (122, 1)],
            ])),
            (vec![1, 0], sparse(&[
                &[(27, 2), (57, 1), (65, 1), (71, 2), (79, 1), (93, 1), (97, 2), (98, 2), (112, 1), (113, 8), (122, 2)],
                &[(8, 8), (27, 1), (48, 2), (60, 6), (68, 8), (72, 2), (78, 7), (94, 1), (98, 4), (101, 2), (117, 5)],
            ])),
        ];
        for (rds, people) in cases {
            let case = case(&rds, &people).expect("every report has a safe pattern");
            assert!(
                !case.narrowed_alone.is_empty(),
                "the joint table's own pattern leaves cells narrowed over the atoms"
            );
            assert_eq!(case.found, case.narrowed_alone, "the lazy audit finds them");
            let (suppressed, lifted, narrowed) =
                case.together.expect("protected once the atoms joined");
            assert!(lifted.ges_with_atoms > 0, "the gEs' atoms joined the table");
            assert!(lifted.unprotected.is_empty());
            assert_eq!(lifted.inherited, narrowed);
            assert!(
                case.narrowed_alone.iter().any(|c| !narrowed.contains(c)),
                "a cell narrowed before is protected now"
            );
            assert_ne!(suppressed, case.alone, "the pattern changed");
        }
    }
}
