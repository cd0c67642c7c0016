//! The interval audit: for each suppressed cell, the smallest and largest value it can take given
//! everything published. Two linear programs per cell (minimise, maximise) over the suppressed cells
//! of its connected part of the table, with every suppressed cell at least 1 (zeros are published,
//! so a suppressed cell is known to be positive; a group of people that is never published, at
//! least 0) and every additive and subset relation.
//!
//! The linear relaxation is what tau-ARGUS's audit computes too; an attacker restricted to integers
//! cannot do better than its bounds rounded inwards.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;

use crate::lp::{End, Lp, Nearest, Op as ComparisonOp, RowRef};
use crate::table::Table;

/// The feasible interval of a suppressed cell. `upper` is `None` when unbounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub lower: f64,
    pub upper: Option<f64>,
}

impl Interval {
    /// Does the interval hide the cell: its upper end reaches `threshold` and it is `width` wide?
    #[must_use]
    pub fn protects(&self, threshold: u64, width: u64) -> bool {
        match self.upper {
            None => true,
            Some(hi) => {
                hi + Self::EPS >= threshold as f64 && hi - self.lower + Self::EPS >= width as f64
            }
        }
    }

    /// Tolerance of the floating-point linear programs.
    const EPS: f64 = 1e-6;
}

struct Constraint {
    terms: Vec<(usize, f64)>,
    op: ComparisonOp,
    rhs: f64,
}

/// `terms op rhs` over table cells, before they are numbered per component.
type Relation = (Vec<(usize, f64)>, ComparisonOp, f64);

/// The linear system over the suppressed cells of one connected part.
pub(crate) struct Component {
    pub(crate) vars: Vec<usize>,
    constraints: Vec<Constraint>,
}

impl Component {
    /// The least value of each variable (see [`Table::floor`]).
    pub(crate) fn floors(&self, table: &Table) -> Vec<f64> {
        self.vars.iter().map(|&c| table.floor(c)).collect()
    }

    /// Its variables by the gE that owns their cell (see [`Table::owner_of`]).
    pub(crate) fn by_owner(&self, table: &Table) -> HashMap<u32, Vec<usize>> {
        let mut of_owner: HashMap<u32, Vec<usize>> = HashMap::new();
        for (v, &c) in self.vars.iter().enumerate() {
            if let Some(o) = table.owner_of(c) {
                of_owner.entry(o).or_default().push(v);
            }
        }
        of_owner
    }

    /// The constraints as rows for the solver.
    pub(crate) fn rows(&self) -> Vec<RowRef<'_>> {
        self.constraints
            .iter()
            .map(|c| (c.terms.as_slice(), c.op, c.rhs))
            .collect()
    }
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Splits the suppressed cells into independent linear systems.
fn components(
    table: &Table,
    suppressed: &[bool],
) -> (Vec<Component>, HashMap<usize, (usize, usize)>) {
    let n = table.len();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut relations: Vec<Relation> = Vec::new();
    let link = |cells: &[usize], parent: &mut Vec<usize>| {
        let mut it = cells.iter().filter(|&&c| suppressed[c]);
        if let Some(&first) = it.next() {
            for &c in it {
                let (a, b) = (find(parent, first), find(parent, c));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    };
    for s in &table.sums {
        let mut cells = s.parts.clone();
        cells.push(s.total);
        if !cells.iter().any(|&c| suppressed[c]) {
            continue;
        }
        link(&cells, &mut parent);
        // parts - total = 0, published cells moved to the right-hand side.
        let mut terms = Vec::new();
        let mut rhs = 0.0;
        for &p in &s.parts {
            if suppressed[p] {
                terms.push((p, 1.0));
            } else {
                rhs -= table.values[p] as f64;
            }
        }
        if suppressed[s.total] {
            terms.push((s.total, -1.0));
        } else {
            rhs += table.values[s.total] as f64;
        }
        relations.push((terms, ComparisonOp::Eq, rhs));
    }
    for &(part, whole) in &table.subsets {
        match (suppressed[part], suppressed[whole]) {
            (false, false) => {}
            (true, true) => {
                link(&[part, whole], &mut parent);
                relations.push((vec![(part, 1.0), (whole, -1.0)], ComparisonOp::Le, 0.0));
            }
            (true, false) => relations.push((
                vec![(part, 1.0)],
                ComparisonOp::Le,
                table.values[whole] as f64,
            )),
            (false, true) => relations.push((
                vec![(whole, 1.0)],
                ComparisonOp::Ge,
                table.values[part] as f64,
            )),
        }
    }
    let mut by_root: HashMap<usize, usize> = HashMap::new();
    let mut comps: Vec<Component> = Vec::new();
    let mut where_: HashMap<usize, (usize, usize)> = HashMap::new();
    for cell in (0..n).filter(|&c| suppressed[c]) {
        let root = find(&mut parent, cell);
        let ci = *by_root.entry(root).or_insert_with(|| {
            comps.push(Component {
                vars: Vec::new(),
                constraints: Vec::new(),
            });
            comps.len() - 1
        });
        where_.insert(cell, (ci, comps[ci].vars.len()));
        comps[ci].vars.push(cell);
    }
    for (terms, op, rhs) in relations {
        let ci = where_[&terms[0].0].0;
        let terms = terms
            .into_iter()
            .map(|(cell, coef)| (where_[&cell].1, coef))
            .collect();
        comps[ci].constraints.push(Constraint { terms, op, rhs });
    }
    (comps, where_)
}

/// The component's system as a linear program, every variable at least its cell's floor.
fn lp_of(table: &Table, comp: &Component) -> Lp {
    Lp::new(
        comp.floors(table),
        comp.constraints
            .iter()
            .map(|c| (c.terms.as_slice(), c.op, c.rhs)),
    )
}

/// Both ends of variable `v`'s interval.
fn interval_of(lp: &mut Lp, v: usize) -> Result<Interval, String> {
    let lower = lp
        .bound(v, End::Lower)?
        .ok_or("a suppressed cell has no lower bound")?
        .0;
    let upper = lp.bound(v, End::Upper)?.map(|x| x.0);
    Ok(Interval { lower, upper })
}

/// Marks the variables a point holds at their least value, their floor.
fn mark_floors(at_floor: &mut [bool], point: &[f64], floors: &[f64]) {
    for ((m, &x), &f) in at_floor.iter_mut().zip(point).zip(floors) {
        *m |= x <= f + Interval::EPS;
    }
}

/// Relations of each cell: indices into the table's sums and subsets.
#[derive(Debug)]
pub struct Index {
    sums: Vec<Vec<usize>>,
    subsets: Vec<Vec<usize>>,
}

impl Index {
    #[must_use]
    pub fn new(table: &Table) -> Self {
        let mut subsets = vec![Vec::new(); table.len()];
        for (i, &(a, b)) in table.subsets.iter().enumerate() {
            subsets[a].push(i);
            subsets[b].push(i);
        }
        Self {
            sums: table.sums_of_cells(),
            subsets,
        }
    }

    /// The sums the cell takes part in (as part or total).
    pub(crate) fn sums_of(&self, cell: usize) -> &[usize] {
        &self.sums[cell]
    }

    /// The subset relations the cell takes part in.
    pub(crate) fn subsets_of(&self, cell: usize) -> &[usize] {
        &self.subsets[cell]
    }

    pub(crate) fn neighbours(&self, table: &Table, cell: usize, out: &mut Vec<usize>) {
        for &s in &self.sums[cell] {
            out.extend(
                table.sums[s]
                    .parts
                    .iter()
                    .copied()
                    .chain([table.sums[s].total]),
            );
        }
        for &r in &self.subsets[cell] {
            let (a, b) = table.subsets[r];
            out.extend([a, b]);
        }
    }
}

/// The suppressed cells within some number of relations of a target, grown one ring at a time.
struct Neighbourhood {
    /// Cell to its variable number; the target is variable 0.
    free: HashMap<usize, usize>,
    frontier: Vec<usize>,
    hops: usize,
}

impl Neighbourhood {
    fn new(target: usize) -> Self {
        Self {
            free: HashMap::from([(target, 0)]),
            frontier: vec![target],
            hops: 0,
        }
    }

    /// Grows to `hops` relations around the target.
    fn grow(&mut self, table: &Table, index: &Index, suppressed: &[bool], hops: usize) {
        let mut around = Vec::new();
        while self.hops < hops && !self.frontier.is_empty() {
            let mut next = Vec::new();
            for &c in &self.frontier {
                around.clear();
                index.neighbours(table, c, &mut around);
                for &n in &around {
                    if suppressed[n] && !self.free.contains_key(&n) {
                        self.free.insert(n, self.free.len());
                        next.push(n);
                    }
                }
            }
            self.frontier = next;
            self.hops += 1;
        }
    }

    /// No further ring adds a cell: the neighbourhood is the target's whole connected part.
    fn is_closed(&self) -> bool {
        self.frontier.is_empty()
    }
}

/// An interval from a linear program over the suppressed cells within `hops` relations of `target`,
/// every other suppressed cell held at its true value. Holding cells fixed can only narrow the
/// interval, so the true feasible interval contains the one returned: if this one protects the
/// cell, so does the truth.
fn local_interval(
    table: &Table,
    index: &Index,
    suppressed: &[bool],
    target: usize,
    hops: usize,
) -> Result<Interval, String> {
    let mut around = Neighbourhood::new(target);
    around.grow(table, index, suppressed, hops);
    let comp = neighbourhood_system(table, index, &around.free);
    interval_of(&mut lp_of(table, &comp), 0)
}

/// The linear system over the cells of `free` (variable 0 is the target), every suppressed cell
/// outside `free` held at its true value.
pub(crate) fn neighbourhood_system(
    table: &Table,
    index: &Index,
    free: &HashMap<usize, usize>,
) -> Component {
    let value = |c: usize| table.values[c] as f64;
    let mut comp = Component {
        vars: vec![0; free.len()],
        constraints: Vec::new(),
    };
    for (&cell, &v) in free {
        comp.vars[v] = cell;
    }
    let mut seen_sums = std::collections::HashSet::new();
    let mut seen_subsets = std::collections::HashSet::new();
    for &cell in &comp.vars {
        for &s in &index.sums[cell] {
            if !seen_sums.insert(s) {
                continue;
            }
            let sum = &table.sums[s];
            let mut terms = Vec::new();
            let mut rhs = 0.0;
            for &p in &sum.parts {
                match free.get(&p) {
                    Some(&v) => terms.push((v, 1.0)),
                    None => rhs -= value(p),
                }
            }
            match free.get(&sum.total) {
                Some(&v) => terms.push((v, -1.0)),
                None => rhs += value(sum.total),
            }
            comp.constraints.push(Constraint {
                terms,
                op: ComparisonOp::Eq,
                rhs,
            });
        }
        for &r in &index.subsets[cell] {
            if !seen_subsets.insert(r) {
                continue;
            }
            let (a, b) = table.subsets[r];
            let c = match (free.get(&a), free.get(&b)) {
                (Some(&x), Some(&y)) => Constraint {
                    terms: vec![(x, 1.0), (y, -1.0)],
                    op: ComparisonOp::Le,
                    rhs: 0.0,
                },
                (Some(&x), None) => Constraint {
                    terms: vec![(x, 1.0)],
                    op: ComparisonOp::Le,
                    rhs: value(b),
                },
                (None, Some(&y)) => Constraint {
                    terms: vec![(y, 1.0)],
                    op: ComparisonOp::Ge,
                    rhs: value(a),
                },
                (None, None) => continue,
            };
            comp.constraints.push(c);
        }
    }
    comp
}

/// The interval of the target (variable 0) of `comp`, or, when its upper end already stays below
/// `threshold`, the point `[upper, upper]`: that lies inside the interval too (so inside the true
/// one) and does not protect the cell either, and it saves the second linear program.
fn interval_unless_too_low(
    table: &Table,
    comp: &Component,
    threshold: u64,
) -> Result<Interval, String> {
    let mut lp = lp_of(table, comp);
    let upper = lp.bound(0, End::Upper)?.map(|x| x.0);
    if let Some(hi) = upper
        && hi + Interval::EPS < threshold as f64
    {
        return Ok(Interval {
            lower: hi,
            upper: Some(hi),
        });
    }
    let lower = lp
        .bound(0, End::Lower)?
        .ok_or("a suppressed cell has no lower bound")?
        .0;
    Ok(Interval { lower, upper })
}

/// What [`certify`] found for a cell: its interval, whether it protects, and the gEs of its
/// district (other than its own) against which the certificate does not hold by itself, because
/// every pair of points found moves one of their cells (empty when not protected). Against any
/// other gE the certificate holds: the gE's own counts are the true ones in some certifying points,
/// so knowing them narrows nothing the certificate shows.
pub type Certified = (Interval, bool, Vec<u32>);

/// The primary cells' certificates stop at `threshold - 1 + width`: a cell whose upper end reaches
/// it is protected whatever its true value (at most `threshold - 1`), and the cap, the same for
/// every cell, says nothing of that value. Capped, an upper end is never unbounded, so it always
/// comes with a point.
fn certificate_cap(threshold: u64, width: u64) -> f64 {
    (threshold.saturating_sub(1) + width) as f64
}

/// The gEs of the target's district that a certificate for the interval `iv` of its target
/// (variable 0 of `comp`) does not hold against by itself (see [`Certified`]).
///
/// The certifying points are the feasible tables nearest to the true one (in cells of other gEs)
/// that reach the interval's ends; when the upper end alone spans the width above the true value,
/// the true table is the other point and only the upper one is needed. A gE none of whose cells the
/// points move is covered. For each gE left, points with its cells held at their true values are
/// sought: where found, it is covered, and so is every gE those points leave alone. A gE for which
/// none are found within `comp` is returned, for the insider audit to decide on a wider system.
fn uncovered_insiders(
    table: &Table,
    target: usize,
    tiers: &dyn Fn(usize) -> Option<Component>,
    iv: Interval,
    (threshold, width): (u64, u64),
) -> Result<Vec<u32>, String> {
    let own = table.owner_of(target);
    let district = table.district.get(target).copied();
    let insider_of = |c: usize| {
        table
            .owner_of(c)
            .filter(|&o| Some(o) != own && table.district.get(c).copied() == district)
    };
    let ends = certifying_ends(table, target, iv, (threshold, width));
    // The systems, smallest first, built when first needed; a tier no larger than the one before
    // it is the same system and is skipped.
    let mut built: Vec<Component> = Vec::new();
    let mut next_tier = 0;
    let mut search = |fixed: Option<u32>| -> Result<Option<BTreeSet<u32>>, String> {
        let mut i = 0;
        loop {
            while i >= built.len() {
                let Some(c) = tiers(next_tier) else {
                    break;
                };
                next_tier += 1;
                if built.last().is_none_or(|l| l.vars.len() < c.vars.len()) {
                    built.push(c);
                }
            }
            let Some(comp) = built.get(i) else {
                return Ok(None);
            };
            if let Some(moved) = moved_insiders(table, comp, &ends, fixed, &insider_of)? {
                return Ok(Some(moved));
            }
            i += 1;
        }
    };
    let first = search(None)?;
    if first.is_none() {
        // Rounding kept the points from being found: every insider of the widest system (the
        // search built every tier) is checked.
        let all: BTreeSet<u32> = built
            .last()
            .map(|c| c.vars.iter().filter_map(|&x| insider_of(x)).collect())
            .unwrap_or_default();
        return Ok(all.into_iter().collect());
    }
    cover(first, |h| search(Some(h)))
}

/// The ends a certificate's nearest points must reach for `target` with interval `iv`: the least
/// that protects, the true value (the true table is a point) and an upper end at the threshold and
/// the width above it; else both ends of the interval.
fn certifying_ends(
    table: &Table,
    target: usize,
    iv: Interval,
    (threshold, width): (u64, u64),
) -> Vec<(End, f64)> {
    let hi = iv.upper.unwrap_or(f64::INFINITY);
    let truth = table.values[target] as f64;
    let enough = (threshold as f64).max(truth + width as f64);
    if hi + Interval::EPS >= enough {
        vec![(End::Upper, enough - NEAREST_ROOM)]
    } else {
        vec![
            (End::Upper, hi - NEAREST_ROOM),
            (End::Lower, iv.lower + NEAREST_ROOM),
        ]
    }
}

/// The insiders left uncovered, from the insiders the first points move (`first`, found) and
/// `search(h)`: the insiders that points with gE `h`'s cells held fixed move, `None` when there are
/// no such points. Each gE found is covered, with every gE its points leave alone.
fn cover(
    first: Option<BTreeSet<u32>>,
    mut search: impl FnMut(u32) -> Result<Option<BTreeSet<u32>>, String>,
) -> Result<Vec<u32>, String> {
    let mut uncovered = first.unwrap_or_default();
    let mut left = Vec::new();
    while let Some(h) = uncovered.pop_first() {
        match search(h)? {
            Some(moved) => uncovered.retain(|g| moved.contains(g)),
            None => left.push(h),
        }
    }
    Ok(left)
}

/// [`uncovered_insiders`] for primary cells shown safe by their whole part of the table (with the
/// intervals given): the nearest points are sought in that part, one HiGHS instance per part and
/// thread serving all its cells. In the order of `cells`.
pub fn insiders_to_check(
    table: &Table,
    suppressed: &[bool],
    cells: &[(usize, Interval)],
    (threshold, width): (u64, u64),
) -> Result<Vec<Vec<u32>>, String> {
    let targets: Vec<usize> = cells.iter().map(|c| c.0).collect();
    let (comps, by_comp) = by_component(table, suppressed, &targets)?;
    let found: Vec<Vec<(usize, Vec<u32>)>> = shared_out(by_comp, 8)
        .into_par_iter()
        .map(|(ci, members)| {
            let comp = &comps[ci];
            let truth: Vec<f64> = comp.vars.iter().map(|&c| table.values[c] as f64).collect();
            let weight: Vec<f64> = comp
                .vars
                .iter()
                .map(|&c| {
                    if table.owner_of(c).is_some() {
                        1.0
                    } else {
                        1e-3
                    }
                })
                .collect();
            let of_owner = comp.by_owner(table);
            let mut nearest = Nearest::new(&comp.rows(), &truth, &weight, &comp.floors(table));
            members
                .into_iter()
                .map(|(i, v)| {
                    let (target, iv) = cells[i];
                    let own = table.owner_of(target);
                    let district = table.district.get(target).copied();
                    let insider_of = |c: usize| {
                        table.owner_of(c).filter(|&o| {
                            Some(o) != own && table.district.get(c).copied() == district
                        })
                    };
                    let ends = certifying_ends(table, target, iv, (threshold, width));
                    let none = Vec::new();
                    let cheap = own.and_then(|o| of_owner.get(&o)).unwrap_or(&none);
                    let mut search = |fixed: Option<u32>| -> Result<Option<BTreeSet<u32>>, String> {
                        let held = fixed.and_then(|h| of_owner.get(&h)).unwrap_or(&none);
                        let ask = Ask {
                            target: v,
                            ends: &ends,
                            cheap,
                            held,
                        };
                        nearest_moves(&mut nearest, &ask, &truth, &comp.vars, &insider_of)
                    };
                    let first = search(None)?;
                    let left = if first.is_none() {
                        // Rounding kept the points from being found: every insider of the part.
                        let all: BTreeSet<u32> =
                            comp.vars.iter().filter_map(|&c| insider_of(c)).collect();
                        all.into_iter().collect()
                    } else {
                        cover(first, |h| search(Some(h)))?
                    };
                    Ok((i, left))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .collect::<Result<_, String>>()?;
    let mut out = vec![Vec::new(); cells.len()];
    for (i, left) in found.into_iter().flatten() {
        out[i] = left;
    }
    Ok(out)
}

/// [`neighbourhood_system`] with the target's upper end capped at `cap`.
fn capped_system(
    table: &Table,
    index: &Index,
    free: &HashMap<usize, usize>,
    cap: f64,
) -> Component {
    let mut comp = neighbourhood_system(table, index, free);
    comp.constraints.push(Constraint {
        terms: vec![(0, 1.0)],
        op: ComparisonOp::Le,
        rhs: cap,
    });
    comp
}

/// Rounding room for the ends the nearest points must reach.
const NEAREST_ROOM: f64 = 1e-7;

/// The insiders (`insider_of`) whose cells the points of `comp` nearest to the true table that
/// reach `ends` move, with the cells of gE `fixed` held at their true values; `None` when there
/// are no such points.
fn moved_insiders(
    table: &Table,
    comp: &Component,
    ends: &[(End, f64)],
    fixed: Option<u32>,
    insider_of: &dyn Fn(usize) -> Option<u32>,
) -> Result<Option<BTreeSet<u32>>, String> {
    let own = table.owner_of(comp.vars[0]);
    let truth: Vec<f64> = comp.vars.iter().map(|&c| table.values[c] as f64).collect();
    let weight: Vec<f64> = comp
        .vars
        .iter()
        .map(|&c| match table.owner_of(c) {
            Some(o) if Some(o) != own => 1.0,
            _ => 1e-3,
        })
        .collect();
    let held: Vec<usize> = (0..comp.vars.len())
        .filter(|&v| fixed.is_some() && table.owner_of(comp.vars[v]) == fixed)
        .collect();
    let mut nearest = Nearest::new(&comp.rows(), &truth, &weight, &comp.floors(table));
    let ask = Ask {
        target: 0,
        ends,
        cheap: &[],
        held: &held,
    };
    nearest_moves(&mut nearest, &ask, &truth, &comp.vars, insider_of)
}

/// What [`nearest_moves`] asks of a [`Nearest`]: points whose variable `target` reaches each of
/// `ends`, the variables `cheap` weighted little and those of `held` at their true values.
struct Ask<'a> {
    target: usize,
    ends: &'a [(End, f64)],
    cheap: &'a [usize],
    held: &'a [usize],
}

/// The insiders (`insider_of`, by table cell; `cells` maps the variables to cells) whose cells the
/// nearest points for `ask` move; `None` when there are no such points.
fn nearest_moves(
    nearest: &mut Nearest,
    ask: &Ask<'_>,
    truth: &[f64],
    cells: &[usize],
    insider_of: &dyn Fn(usize) -> Option<u32>,
) -> Result<Option<BTreeSet<u32>>, String> {
    let mut moved = BTreeSet::new();
    for &end in ask.ends {
        let Some(p) = nearest.point(ask.target, end, ask.cheap, ask.held)? else {
            return Ok(None);
        };
        moved.extend(
            p.iter()
                .zip(truth)
                .zip(cells)
                .filter(|((x, t), _)| (*x - *t).abs() > Interval::EPS)
                .filter_map(|(_, &c)| insider_of(c)),
        );
    }
    Ok(Some(moved))
}

/// Audits `targets`: for each, an interval that its true feasible interval contains, from
/// neighbourhoods of 1, 2, 3, 5 and 8 relations around it, stopping at the first that protects.
/// Returns (interval, protected, the cells its certificate moves). The upper end is capped at
/// `threshold - 1 + width` (see [`certificate_cap`]). A cell whose neighbourhoods do not show
/// protection counts as unprotected, even if the whole table might protect it: the audit errs
/// towards suppressing more, never towards publishing a narrowable cell.
///
/// Freeing more cells only widens an interval, so a cell is protected at some neighbourhood exactly
/// when it is at the widest. For a cell in `likely_unsafe` (it failed the round before) the widest
/// is tried first, and only when it protects are the smaller ones tried, for the narrowest
/// certificate: the answers are the same, with fewer linear programs. With `insiders`, each
/// certificate also names the gEs it does not hold against by itself.
pub fn certify(
    table: &Table,
    suppressed: &[bool],
    targets: &[usize],
    likely_unsafe: &[bool],
    (threshold, width): (u64, u64),
    insiders: bool,
) -> Result<Vec<Certified>, String> {
    const HOPS: [usize; 5] = [1, 2, 3, 5, 8];
    let index = Index::new(table);
    let cap = certificate_cap(threshold, width);
    let system = |free: &HashMap<usize, usize>| capped_system(table, &index, free, cap);
    targets
        .par_iter()
        .map(|&t| {
            if likely_unsafe[t] {
                let mut around = Neighbourhood::new(t);
                around.grow(table, &index, suppressed, HOPS[HOPS.len() - 1]);
                let iv = interval_unless_too_low(table, &system(&around.free), threshold)?;
                if !iv.protects(threshold, width) {
                    return Ok((iv, false, Vec::new()));
                }
            }
            let mut around = Neighbourhood::new(t);
            let mut last: Option<(usize, Interval)> = None;
            for hops in HOPS {
                around.grow(table, &index, suppressed, hops);
                // The same cells give the same linear program: no need to solve it again.
                if last.is_some_and(|(size, _)| size == around.free.len()) {
                    break;
                }
                let comp = system(&around.free);
                let iv = interval_unless_too_low(table, &comp, threshold)?;
                if iv.protects(threshold, width) {
                    let uncovered = if insiders {
                        // The certifying system first, then wider ones.
                        let tiers = |i: usize| match i {
                            0 => Some(system(&around.free)),
                            1 | 2 => {
                                let mut wide = Neighbourhood::new(t);
                                let hops = if i == 1 {
                                    HOPS[HOPS.len() - 1]
                                } else {
                                    usize::MAX
                                };
                                wide.grow(table, &index, suppressed, hops);
                                Some(system(&wide.free))
                            }
                            _ => None,
                        };
                        uncovered_insiders(table, t, &tiers, iv, (threshold, width))?
                    } else {
                        Vec::new()
                    };
                    return Ok((iv, true, uncovered));
                }
                last = Some((around.free.len(), iv));
                if around.is_closed() {
                    break;
                }
            }
            Ok((last.expect("at least one try").1, false, Vec::new()))
        })
        .collect()
}

/// Intervals the true feasible intervals contain, from each cell's neighbourhood: cheap bounds for
/// reporting every suppressed cell.
pub fn inner_intervals(
    table: &Table,
    suppressed: &[bool],
    targets: &[usize],
) -> Result<Vec<Interval>, String> {
    let index = Index::new(table);
    targets
        .par_iter()
        .map(|&t| local_interval(table, &index, suppressed, t, 1))
        .collect()
}

/// The cells of each part in chunks for the threads, each chunk at least `least` cells (a chunk
/// builds its own HiGHS instance): (part, its cells as (position in the targets, variable)).
pub(crate) fn shared_out(
    by_comp: BTreeMap<usize, Vec<(usize, usize)>>,
    least: usize,
) -> Vec<(usize, Vec<(usize, usize)>)> {
    let threads = rayon::current_num_threads().max(1);
    by_comp
        .into_iter()
        .flat_map(|(ci, cells)| {
            let per = cells.len().div_ceil(threads).max(least);
            cells
                .chunks(per)
                .map(|c| (ci, c.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The table's parts, and the `targets` grouped by part: (position in `targets`, variable).
pub(crate) type ByPart = (Vec<Component>, BTreeMap<usize, Vec<(usize, usize)>>);

pub(crate) fn by_component(
    table: &Table,
    suppressed: &[bool],
    targets: &[usize],
) -> Result<ByPart, String> {
    let (comps, where_) = components(table, suppressed);
    let mut by_comp: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for (i, cell) in targets.iter().enumerate() {
        let &(ci, v) = where_
            .get(cell)
            .ok_or("an audited cell is not suppressed")?;
        by_comp.entry(ci).or_default().push((i, v));
    }
    Ok((comps, by_comp))
}

/// Decides for each of `targets` (suppressed cells) whether its whole connected part of the table
/// protects it: (interval, protected), in the order of `targets`.
///
/// Every optimum found is a feasible point of its part, and the values a cell takes over such
/// points lie inside its true interval. So a cell whose values over the points found so far already
/// span a protecting interval needs no linear program of its own; that interval is recorded. Any
/// other cell gets its exact interval from two linear programs (solved side by side), whose optima
/// join the points. The cells of one part are taken one after the other in the order given, so
/// the answers do not depend on threads. (Solving several cells at once shares fewer points: on
/// the committed opDs sample, a batch of two needed 28 % more linear programs, one of eight 95 %.)
pub fn certify_exact(
    table: &Table,
    suppressed: &[bool],
    targets: &[usize],
    threshold: u64,
    width: u64,
) -> Result<Vec<(Interval, bool)>, String> {
    let (comps, by_comp) = by_component(table, suppressed, targets)?;
    let decided: Vec<Vec<(usize, Interval, bool)>> = by_comp
        .into_par_iter()
        .map(|(ci, cells)| certify_in_component(table, &comps[ci], &cells, threshold, width))
        .collect::<Result<_, String>>()?;
    let mut results = vec![None; targets.len()];
    for (i, iv, ok) in decided.into_iter().flatten() {
        results[i] = Some((iv, ok));
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every target is decided"))
        .collect())
}

/// [`certify_exact`] within one part: `cells` are (position in the targets, variable).
fn certify_in_component(
    table: &Table,
    comp: &Component,
    cells: &[(usize, usize)],
    threshold: u64,
    width: u64,
) -> Result<Vec<(usize, Interval, bool)>, String> {
    let mut points: Vec<Vec<f64>> = Vec::new();
    let mut out = Vec::with_capacity(cells.len());
    // One instance for the part: each cell's two programs start from the last basis.
    let mut lp = lp_of(table, comp);
    for &(i, v) in cells {
        if let Some(seen) = span(&points, v)
            && seen.protects(threshold, width)
        {
            out.push((i, seen, true));
            continue;
        }
        let upper = lp.bound(v, End::Upper);
        let lower = lp.bound(v, End::Lower);
        let (lower, low_point) = lower?.ok_or("a suppressed cell has no lower bound")?;
        let upper = upper?.map(|(hi, point)| {
            points.push(point);
            hi
        });
        points.push(low_point);
        let iv = Interval { lower, upper };
        out.push((i, iv, iv.protects(threshold, width)));
    }
    Ok(out)
}

/// Decides each of `targets` over its whole part of the table, as [`certify_exact`] does, from
/// the optima `accept` takes: it is given the part's cells and an optimum's values of them.
///
/// A target's lower end is found first; then its upper end, capped at `cap(i, lower)` (`i` its
/// position in `targets`): an upper end that reaches the cap is enough, and a cap keeps the
/// program bounded, so every end comes with a point. A target one of whose optima `accept`
/// refuses gets `None` (the caller widens the system and asks again). A target whose values over
/// the accepted points found so far already reach `lower <= ..`, cap apart, needs no program.
pub(crate) fn accepted_intervals(
    table: &Table,
    suppressed: &[bool],
    targets: &[usize],
    cap: &(dyn Fn(usize, f64) -> f64 + Sync),
    accept: &(dyn Fn(&[usize], &[f64]) -> bool + Sync),
) -> Result<Vec<Option<Interval>>, String> {
    let (comps, by_comp) = by_component(table, suppressed, targets)?;
    let found: Vec<Vec<(usize, Option<Interval>)>> = shared_out(by_comp, 64)
        .into_par_iter()
        .map(|(ci, cells)| {
            let comp = &comps[ci];
            let floors = comp.floors(table);
            let mut lp = lp_of(table, comp);
            let mut points: Vec<Vec<f64>> = Vec::new();
            let mut out = Vec::with_capacity(cells.len());
            for (i, v) in cells {
                if let Some(seen) = span(&points, v)
                    && seen.lower <= floors[v] + Interval::EPS
                    && seen
                        .upper
                        .is_some_and(|hi| hi + Interval::EPS >= cap(i, seen.lower))
                {
                    out.push((i, Some(seen)));
                    continue;
                }
                let (lower, point) = lp
                    .bound(v, End::Lower)?
                    .ok_or("a suppressed cell has no lower bound")?;
                let mut ok = accept(&comp.vars, &point);
                if ok {
                    points.push(point);
                }
                let limit = cap(i, lower);
                lp.cap(v, Some(limit));
                let upper = lp.bound(v, End::Upper);
                lp.cap(v, None);
                match upper? {
                    Some((hi, point)) => {
                        if accept(&comp.vars, &point) {
                            points.push(point);
                        } else {
                            ok = false;
                        }
                        out.push((
                            i,
                            ok.then_some(Interval {
                                lower,
                                upper: Some(hi),
                            }),
                        ));
                    }
                    // Capped, the program is bounded: only a lost instance gets here.
                    None => out.push((i, None)),
                }
            }
            Ok(out)
        })
        .collect::<Result<_, String>>()?;
    let mut out = vec![None; targets.len()];
    for (i, iv) in found.into_iter().flatten() {
        out[i] = iv;
    }
    Ok(out)
}

/// The smallest interval holding the values of variable `v` over `points`, if there are any.
fn span(points: &[Vec<f64>], v: usize) -> Option<Interval> {
    let (lower, upper) = points
        .iter()
        .map(|p| p[v])
        .fold(None, |acc: Option<(f64, f64)>, x| match acc {
            None => Some((x, x)),
            Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
        })?;
    Some(Interval {
        lower,
        upper: Some(upper),
    })
}

/// The feasible intervals of the `targets` (suppressed cells), in their order: two linear programs
/// per cell over its whole connected part, one HiGHS instance per part (parts side by side).
pub fn intervals(
    table: &Table,
    suppressed: &[bool],
    targets: &[usize],
    done: Option<&pseudagg_core::Ticker<'_>>,
) -> Result<Vec<Interval>, String> {
    let (comps, by_comp) = by_component(table, suppressed, targets)?;
    tracing::info!(
        parts = by_comp.len(),
        largest = by_comp
            .keys()
            .map(|&c| comps[c].vars.len())
            .max()
            .unwrap_or(0),
        rows = by_comp
            .keys()
            .map(|&c| comps[c].constraints.len())
            .max()
            .unwrap_or(0),
        targets = targets.len(),
        "suppression: feasible intervals of the secondary cells next"
    );
    // A large part's cells are shared out over the threads, each with an instance of its own.
    let found: Vec<Vec<(usize, Interval)>> = shared_out(by_comp, 64)
        .into_par_iter()
        .map(|(ci, cells)| {
            let mut lp = lp_of(table, &comps[ci]);
            // Every suppressed cell is at least its floor: a cell at its floor in some optimum
            // found has the floor as its lower end, and needs no program of its own for it.
            let floors = comps[ci].floors(table);
            let mut at_one = vec![false; comps[ci].vars.len()];
            cells
                .into_iter()
                .map(|(i, v)| {
                    let upper = lp.bound(v, End::Upper)?.map(|(hi, point)| {
                        mark_floors(&mut at_one, &point, &floors);
                        hi
                    });
                    let lower = if at_one[v] {
                        floors[v]
                    } else {
                        let (lo, point) = lp
                            .bound(v, End::Lower)?
                            .ok_or("a suppressed cell has no lower bound")?;
                        mark_floors(&mut at_one, &point, &floors);
                        lo
                    };
                    if let Some(t) = done {
                        t.add(1);
                    }
                    Ok((i, Interval { lower, upper }))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .collect::<Result<_, String>>()?;
    let mut out = vec![None; targets.len()];
    for (i, iv) in found.into_iter().flatten() {
        out[i] = Some(iv);
    }
    Ok(out
        .into_iter()
        .map(|x| x.expect("every target is bounded"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Sum;

    /// total(10) = a(1) + b(9): with only `a` suppressed it is exactly 1.
    #[test]
    fn a_lone_suppressed_part_is_exact() {
        let table = Table {
            values: vec![10, 1, 9],
            rank: vec![1, 0, 0],
            sums: vec![Sum {
                total: 0,
                parts: vec![1, 2],
            }],
            subsets: vec![],
            keep_published: vec![],
            owner: vec![],
            district: vec![],
            ..Table::default()
        };
        let iv = intervals(&table, &[false, true, false], &[1], None).unwrap();
        assert!((iv[0].lower - 1.0).abs() < 1e-9);
        assert!((iv[0].upper.unwrap() - 1.0).abs() < 1e-9);
        assert!(!iv[0].protects(3, 2));
        // With b suppressed too, a lies anywhere in [1, 9].
        let iv = intervals(&table, &[false, true, true], &[1], None).unwrap();
        assert!((iv[0].upper.unwrap() - 9.0).abs() < 1e-9);
        assert!(iv[0].protects(3, 2));
    }

    #[test]
    fn subsets_narrow_intervals() {
        // part <= whole(2, published) and part >= 1: part in [1, 2].
        let table = Table {
            values: vec![1, 2],
            rank: vec![0, 0],
            sums: vec![],
            subsets: vec![(0, 1)],
            keep_published: vec![],
            owner: vec![],
            district: vec![],
            ..Table::default()
        };
        let iv = intervals(&table, &[true, false], &[0], None).unwrap();
        assert_eq!(iv[0].upper, Some(2.0));
        assert!(!iv[0].protects(3, 2));
    }

    /// RD = g1 + g2 + g3 with the RD published and the three gEs suppressed (owners 1, 2, 3).
    fn district(values: [u64; 4]) -> Table {
        Table {
            values: values.to_vec(),
            rank: vec![2, 0, 0, 0],
            sums: vec![Sum {
                total: 0,
                parts: vec![1, 2, 3],
            }],
            subsets: vec![],
            keep_published: vec![],
            owner: vec![crate::table::NOBODY, 1, 2, 3],
            district: vec![0; 4],
            ..Table::default()
        }
    }

    /// The certificate names exactly the gEs it does not hold against: with g1 = 1, g2 = 5,
    /// g3 = 2 and the RD (8) published, g2 knows g1 + g3 = 3, so g1 lies in [1, 2] for it; g3
    /// knows g1 + g2 = 6, and g1 in [1, 5] stays protected.
    #[test]
    fn a_certificate_names_the_insiders_it_does_not_hold_against() {
        let suppressed = [false, true, true, true];
        let run = |values| {
            let table = district(values);
            certify(&table, &suppressed, &[1], &[false; 4], (3, 2), true).unwrap()
        };
        let (iv, ok, uncovered) = run([8, 1, 5, 2]).remove(0);
        assert!(ok, "{iv:?}");
        assert_eq!(uncovered, vec![2]);
        // With g3 = 5 (RD 11), neither g2 nor g3 narrows g1: nobody is left to check.
        let (_, ok, uncovered) = run([11, 1, 5, 5]).remove(0);
        assert!(ok);
        assert!(uncovered.is_empty(), "{uncovered:?}");
        // Without the insider model nobody is named.
        let table = district([8, 1, 5, 2]);
        let plain = certify(&table, &suppressed, &[1], &[false; 4], (3, 2), false).unwrap();
        assert!(plain[0].2.is_empty());
    }
}
