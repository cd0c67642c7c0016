//! Cuts for the covering program, read from the duals of the audit's linear programs.
//!
//! When the audit finds a primary cell that a pattern does not protect (its largest feasible value
//! stays below the threshold, or its least one above what the width needs), the linear program
//! that showed it has a dual solution. The dual is feasible for the program of *every* pattern:
//! only the cells' bounds change with the pattern, a published cell held at its true value and a
//! suppressed one free above its floor. Its objective at a pattern `x` is therefore an upper bound
//! on what the cell can reach under `x`, and it is linear in `x`:
//!
//! `reach(x) <= const + sum over suppressible cells j of w_j * x_j`
//!
//! with `w_j` infinite where the cell's reduced cost says that raising it helps, and
//! `(a_j - floor_j) * beta_j` where lowering it does. So every safe pattern satisfies
//! `sum min(w_j, rhs) * x_j >= rhs` with `rhs = goal - const`, and the current pattern does not.
//! These are the capacity inequalities of Fischetti and Salazar's exact model of cell suppression
//! (Math. Programming 84, 1999): added to the covering program, they lead it towards a pattern the
//! audit accepts, and its bound stays a lower bound on any safe pattern.

use std::collections::{BTreeMap, HashMap};

use highs::{HighsModelStatus, Model, RowProblem, Sense};
use rayon::prelude::*;

use crate::audit::{Index, Interval};
use crate::lp::End;
use crate::table::Table;

/// A primary cell to protect, with the gE that knows its own counts (none from outside).
pub(crate) type Pair = (usize, Option<u32>);

/// `sum coef * x_cell >= rhs` over suppressible cells, met by every safe pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cut {
    pub terms: Vec<(usize, f64)>,
    pub rhs: f64,
}

/// Reduced costs below this are zero.
const TOL: f64 = 1e-9;

/// The goals that certify a primary cell with true value `v` and least value `floor` (the batch
/// certificates and the cuts share them): a feasible table in which it reaches
/// `up = max(threshold, floor + width)`, and, unless its true value is at most `up - width`
/// already, one in which it falls to that. Together they show an interval that reaches the
/// threshold and is `width` wide.
pub(crate) fn goals(v: f64, floor: f64, (threshold, width): (u64, u64)) -> Vec<(End, f64)> {
    let up = (threshold as f64).max(floor + width as f64);
    let low = up - width as f64;
    let mut goals = vec![(End::Upper, up)];
    if v > low {
        goals.push((End::Lower, low));
    }
    goals
}

/// Cells per program: a part's targets are taken in chunks of this many, each chunk with a
/// program of its own, so that the threads share a large part. Fixed, so that the cuts (which
/// follow the basis each solve starts from) do not depend on the number of threads.
const CHUNK: usize = 24;

/// At most this many chunks per part: each chunk builds the part's program and solves it once
/// from scratch, and on a large part that first solve costs more than the chunk's warm ones
/// (550,000 rows, herkunft x geschlecht: 2,108 pairs in a part of 10,312 columns; the first
/// round's cut programs 39-64 s in chunks of 24 pairs, 30.5 s in 8 chunks, 27 s in 4). Also
/// fixed, and enough to share a part between 8 threads.
const CHUNKS_PER_PART: usize = 8;

/// What the exact programs of [`cuts`] showed.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// One cut per goal a target misses, with the target it is for.
    pub cuts: Vec<(Pair, Cut)>,
    /// The targets that reach every goal, each with the interval its programs show: the exact
    /// least and largest values over its part (the least its true value when the width needs no
    /// lower goal). More suppression only widens it, so it proves the target protected under
    /// every pattern that holds this one.
    pub protected: Vec<(Pair, Interval)>,
}

/// One cut per goal that `targets` (suppressed primary cells, each with the gE that knows its own
/// counts, if any) miss under the pattern `suppressed`, with the target it is for; `free` are the
/// cells the covering program chooses. A target without a cut is protected under the pattern, or
/// undecided (its program ended without an optimum, or its duals gave no sound cut); the targets
/// shown protected are named with their intervals.
pub(crate) fn cuts(
    table: &Table,
    suppressed: &[bool],
    free: &[bool],
    targets: &[Pair],
    limits: (u64, u64),
) -> Result<Found, String> {
    let index = Index::new(table);
    let mut pairs: Vec<Pair> = targets.to_vec();
    pairs.sort_unstable();
    pairs.dedup();
    let cells: Vec<usize> = pairs.iter().map(|p| p.0).collect();
    // Each part's pairs, by insider: one program per chunk, the insider changed by bounds.
    let mut chunks: Vec<(std::sync::Arc<Vec<usize>>, Vec<Pair>)> = Vec::new();
    for (members, mut in_part) in parts_of(table, &index, suppressed, &cells) {
        in_part.sort_unstable();
        in_part.dedup();
        let mut mine: Vec<Pair> = pairs
            .iter()
            .copied()
            .filter(|p| in_part.binary_search(&p.0).is_ok())
            .collect();
        mine.sort_unstable_by_key(|&(c, h)| (h, c));
        let members = std::sync::Arc::new(members);
        for chunk in mine.chunks(CHUNK.max(mine.len().div_ceil(CHUNKS_PER_PART))) {
            chunks.push((members.clone(), chunk.to_vec()));
        }
    }
    let found: Vec<Found> = chunks
        .into_par_iter()
        .map(|(members, chunk)| {
            let mut system = System::new(table, &index, &|c| suppressed[c], &members);
            let mut out = Found::default();
            for (t, h) in chunk {
                system.know(table, suppressed, h);
                // The insider's own cells are known to it: published, in effect, and no help
                // to the target, chosen or not.
                let knows = |c: usize| h.is_some() && table.owner_of(c) == h;
                let hidden = |c: usize| suppressed[c] && !knows(c);
                let free = |c: usize| free[c] && !knows(c);
                let v = table.values[t] as f64;
                // The interval the goals reached show; `None` once one is missed or undecided.
                let mut shown = Some(Interval {
                    lower: v,
                    upper: Some(v),
                });
                for (end, goal) in goals(v, table.floor(t), limits) {
                    match system.cut(table, &hidden, &free, t, end, goal)? {
                        Outcome::Reached(value) => {
                            if let Some(iv) = shown.as_mut() {
                                match (end, value) {
                                    (End::Upper, v) => iv.upper = v,
                                    (End::Lower, Some(v)) => iv.lower = iv.lower.min(v),
                                    // No least value: the true value stays the lower end.
                                    (End::Lower, None) => {}
                                }
                            }
                        }
                        Outcome::Cut(cut) => {
                            shown = None;
                            out.cuts.push(((t, h), cut));
                        }
                        Outcome::Open => shown = None,
                    }
                }
                if let Some(iv) = shown.filter(|iv| iv.protects(limits.0, limits.1)) {
                    out.protected.push(((t, h), iv));
                }
            }
            Ok(out)
        })
        .collect::<Result<_, String>>()?;
    let mut all = Found::default();
    for f in found {
        all.cuts.extend(f.cuts);
        all.protected.extend(f.protected);
    }
    Ok(all)
}

/// What one goal's exact program showed.
enum Outcome {
    /// The goal is reached: the optimum (the largest value, or the least), `None` when unbounded.
    Reached(Option<f64>),
    /// The goal is missed, and the duals give this cut.
    Cut(Cut),
    /// Missed without a sound cut, or no optimum: left to the rounds after.
    Open,
}

/// The connected parts of the suppressed cells that hold a target: (the part's suppressed cells,
/// its targets), in the order of their first cell.
fn parts_of(
    table: &Table,
    index: &Index,
    suppressed: &[bool],
    targets: &[usize],
) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut part: HashMap<usize, usize> = HashMap::new();
    let mut parts: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    let mut around = Vec::new();
    for &t in targets {
        if !suppressed[t] {
            continue;
        }
        if let Some(&p) = part.get(&t) {
            parts[p].1.push(t);
            continue;
        }
        let p = parts.len();
        let mut members = vec![t];
        part.insert(t, p);
        let mut next = 0;
        while next < members.len() {
            around.clear();
            index.neighbours(table, members[next], &mut around);
            for &c in &around {
                if suppressed[c] && !part.contains_key(&c) {
                    part.insert(c, p);
                    members.push(c);
                }
            }
            next += 1;
        }
        members.sort_unstable();
        parts.push((members, vec![t]));
    }
    parts
}

/// The audit's program over one part: every relation that holds one of its suppressed cells, with
/// a column per suppressed cell of those relations. A published cell is held at its true value,
/// so it is no column: its value is moved into the bounds of its rows. (On the committed sample
/// that leaves about 1,300 of 10,000 columns, and HiGHS's work per solve follows the columns.)
/// Its reduced cost, which the cut needs, is read from the rows' duals.
struct System {
    model: Option<Model>,
    /// Column of each suppressed cell.
    col: BTreeMap<usize, usize>,
    cols: Vec<highs::Col>,
    /// Every cell of the relations, in cell order, with its (row, coefficient) entries.
    entries: Vec<(usize, Vec<(usize, f64)>)>,
    /// The rows from this one on are subset relations, `part - whole <= 0`; those before are sums.
    first_subset: usize,
    /// The column whose cost is not 0 now.
    objective: Option<usize>,
    /// The insider whose cells are held at their true values now.
    insider: Option<u32>,
}

impl System {
    fn new(
        table: &Table,
        index: &Index,
        suppressed: &impl Fn(usize) -> bool,
        members: &[usize],
    ) -> Self {
        let mut sums: Vec<usize> = Vec::new();
        let mut subsets: Vec<usize> = Vec::new();
        for &c in members {
            sums.extend(index.sums_of(c));
            subsets.extend(index.subsets_of(c));
        }
        sums.sort_unstable();
        sums.dedup();
        subsets.sort_unstable();
        subsets.dedup();
        // The rows as (cell, coefficient) terms: each sum `parts - total = 0`, each subset
        // `part - whole <= 0`.
        let mut rows: Vec<Vec<(usize, f64)>> = Vec::with_capacity(sums.len() + subsets.len());
        for &s in &sums {
            let sum = &table.sums[s];
            let mut terms: Vec<(usize, f64)> = sum.parts.iter().map(|&p| (p, 1.0)).collect();
            terms.push((sum.total, -1.0));
            rows.push(terms);
        }
        for &r in &subsets {
            let (a, b) = table.subsets[r];
            rows.push(vec![(a, 1.0), (b, -1.0)]);
        }
        let mut by_cell: BTreeMap<usize, Vec<(usize, f64)>> = BTreeMap::new();
        for (r, terms) in rows.iter().enumerate() {
            for &(c, k) in terms {
                by_cell.entry(c).or_default().push((r, k));
            }
        }
        let mut pb = RowProblem::default();
        let mut col = BTreeMap::new();
        let mut cols = Vec::with_capacity(members.len());
        for &c in by_cell.keys() {
            if suppressed(c) {
                col.insert(c, cols.len());
                cols.push(pb.add_column(0.0, table.floor(c)..));
            }
        }
        for (r, terms) in rows.iter().enumerate() {
            let known: f64 = terms
                .iter()
                .filter(|(c, _)| !col.contains_key(c))
                .map(|&(c, k)| k * table.values[c] as f64)
                .sum();
            let row: Vec<(highs::Col, f64)> = terms
                .iter()
                .filter_map(|&(c, k)| col.get(&c).map(|&j| (cols[j], k)))
                .collect();
            if r < sums.len() {
                pb.add_row(-known..=-known, row);
            } else {
                pb.add_row(..=-known, row);
            }
        }
        let mut model = pb.optimise(Sense::Maximise);
        crate::lp::single_threaded_quiet(&mut model);
        model.set_option("presolve", "off");
        // A new objective over the last optimal basis: primal simplex goes on from it.
        model.set_option("simplex_strategy", 4);
        Self {
            model: Some(model),
            col,
            cols,
            entries: by_cell.into_iter().collect(),
            first_subset: sums.len(),
            objective: None,
            insider: None,
        }
    }

    /// Holds the suppressed cells of gE `h` at their true values (it knows them), and frees
    /// those of the gE held before.
    fn know(&mut self, table: &Table, suppressed: &[bool], h: Option<u32>) {
        if self.insider == h {
            return;
        }
        let Some(model) = self.model.as_mut() else {
            return;
        };
        for (&c, &j) in &self.col {
            let owner = table.owner_of(c);
            if !suppressed[c] || owner.is_none() {
                continue;
            }
            if owner == self.insider {
                model.change_column_bounds(self.cols[j], table.floor(c)..);
            }
            if owner == h {
                let a = table.values[c] as f64;
                model.change_column_bounds(self.cols[j], a..=a);
            }
        }
        self.insider = h;
    }

    /// Whether target `t` reaches `goal` at `end`, and the cut it gives when it does not.
    fn cut(
        &mut self,
        table: &Table,
        suppressed: &impl Fn(usize) -> bool,
        free: &impl Fn(usize) -> bool,
        t: usize,
        end: End,
        goal: f64,
    ) -> Result<Outcome, String> {
        let mut model = self
            .model
            .take()
            .ok_or("the audit's program failed before")?;
        let target = self.col[&t];
        if let Some(old) = self.objective {
            model.change_column_cost(self.cols[old], 0.0);
        }
        // Always maximised: the largest value, or the least as the largest of its negative.
        let (sign, need) = match end {
            End::Upper => (1.0, goal),
            End::Lower => (-1.0, -goal),
        };
        model.change_column_cost(self.cols[target], sign);
        self.objective = Some(target);
        let solved = model
            .try_solve()
            .map_err(|e| format!("the audit's program failed: {e:?}"))?;
        let status = solved.status();
        // Cell numbers and statuses only: an optimum would bound a suppressed count.
        tracing::trace!(target = t, ?end, ?status, "cut program");
        let answer = match status {
            HighsModelStatus::Optimal => {
                let reached = solved.objective_value();
                if reached >= need - 1e-7 {
                    Outcome::Reached(Some(sign * reached))
                } else {
                    let solution = solved.get_solution();
                    self.read_cut(
                        table,
                        suppressed,
                        free,
                        (solution.dual_columns(), solution.dual_rows()),
                        reached,
                        need,
                    )
                    .map_or(Outcome::Open, Outcome::Cut)
                }
            }
            HighsModelStatus::Unbounded => Outcome::Reached(None),
            // Anything else: no cut, the rounds decide.
            _ => Outcome::Open,
        };
        self.model = Some(Model::from(solved));
        Ok(answer)
    }

    /// The cut from the reduced costs `dual` (of the columns) and the row duals `rows` of an
    /// optimum `reached` below `need`.
    fn read_cut(
        &self,
        table: &Table,
        suppressed: &impl Fn(usize) -> bool,
        free: &impl Fn(usize) -> bool,
        (dual, rows): (&[f64], &[f64]),
        reached: f64,
        need: f64,
    ) -> Option<Cut> {
        // A subset relation's slack (`whole - part`) has no upper bound: the dual is sound only
        // if raising it would not help, its reduced cost (the negated row dual) at most 0.
        if rows[self.first_subset..].iter().any(|&y| -y > TOL) {
            tracing::trace!("a slack's reduced cost is positive");
            return None;
        }
        let mut constant = 0.0;
        let mut now = 0.0;
        let mut weights: Vec<(usize, f64)> = Vec::new();
        for (c, entries) in &self.entries {
            let c = *c;
            // A published cell's reduced cost is its cost (0) less its column times the row
            // duals, as HiGHS gives a column's.
            let d = match self.col.get(&c) {
                Some(&j) => dual[j],
                None => -entries.iter().map(|&(r, k)| k * rows[r]).sum::<f64>(),
            };
            let d = if d.abs() < TOL { 0.0 } else { d };
            let a = table.values[c] as f64;
            let floor = table.floor(c);
            if free(c) {
                constant += a * d;
                let w = if d > 0.0 {
                    f64::INFINITY
                } else {
                    (a - floor) * -d
                };
                if w > TOL {
                    weights.push((c, w));
                    if suppressed(c) {
                        now += w;
                    }
                }
            } else if suppressed(c) {
                if d > 0.0 {
                    tracing::trace!(
                        cell = c,
                        d,
                        "a fixed hidden cell's reduced cost is positive"
                    );
                    return None;
                }
                constant += floor * d;
            } else {
                constant += a * d;
            }
        }
        // The dual's objective at this pattern is the optimum: else the signs were misread.
        if (constant + now - reached).abs() > 1e-6 * (1.0 + reached.abs()) {
            tracing::debug!("a cut's duals do not match its optimum");
            return None;
        }
        let rhs = need - constant - 1e-7;
        if rhs <= 0.0 || weights.is_empty() {
            tracing::trace!(weights = weights.len(), "no cut: nothing to choose");
            return None;
        }
        Some(Cut {
            terms: weights.into_iter().map(|(c, w)| (c, w.min(rhs))).collect(),
            rhs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Sum;

    #[allow(clippy::many_single_char_names)] // the four cells of the grid
    /// A 2 x 2 table with row, column and grand totals: cells 0..4 inner (row-major), 4, 5 row
    /// totals, 6, 7 column totals, 8 the grand total.
    fn two_by_two(values: [u64; 4]) -> Table {
        let [a, b, c, d] = values;
        let mut t = Table {
            values: vec![a, b, c, d, a + b, c + d, a + c, b + d, a + b + c + d],
            rank: vec![0, 0, 0, 0, 1, 1, 1, 1, 2],
            ..Table::default()
        };
        // Rows, columns, and the grand total both ways.
        let sums = [
            (4, [0, 1]),
            (5, [2, 3]),
            (6, [0, 2]),
            (7, [1, 3]),
            (8, [4, 5]),
            (8, [6, 7]),
        ];
        t.sums = sums
            .into_iter()
            .map(|(total, parts)| Sum {
                total,
                parts: parts.to_vec(),
            })
            .collect();
        t
    }

    #[test]
    fn a_cell_hidden_with_its_row_partner_only_gets_a_cut_the_rectangle_meets() {
        // Cell 0 (value 1) and its row partner 1 suppressed: the published columns hold both.
        let t = two_by_two([1, 10, 10, 10]);
        let mut suppressed = vec![false; t.len()];
        suppressed[0] = true;
        suppressed[1] = true;
        let free: Vec<bool> = (0..t.len()).map(|c| c != 0).collect();
        let found = cuts(&t, &suppressed, &free, &[(0, None)], (3, 2)).unwrap();
        assert!(found.protected.is_empty(), "{found:?}");
        let cuts = found.cuts;
        assert_eq!(cuts.len(), 1, "{cuts:?}");
        let ((target, insider), cut) = &cuts[0];
        assert_eq!((*target, *insider), (0, None));
        let cells: Vec<usize> = cut.terms.iter().map(|t| t.0).collect();
        assert!(!cells.contains(&0) && !cells.contains(&1), "{cut:?}");
        let lhs = |x: &[usize]| -> f64 {
            cut.terms
                .iter()
                .filter(|t| x.contains(&t.0))
                .map(|t| t.1)
                .sum()
        };
        // The current pattern breaks it; the 2 x 2 rectangle, the smallest safe pattern, meets it.
        assert!(lhs(&[1]) < cut.rhs);
        assert!(lhs(&[1, 2, 3]) >= cut.rhs);
        // Each single cell of the other row or a column total is not safe, and none is asked as
        // more than it can give: every coefficient at most the right-hand side.
        assert!(cut.terms.iter().all(|t| t.1 <= cut.rhs));
    }

    #[test]
    fn a_protected_cell_gives_no_cut() {
        let t = two_by_two([1, 10, 10, 10]);
        let mut suppressed = vec![false; t.len()];
        for c in [0, 1, 2, 3] {
            suppressed[c] = true;
        }
        let free: Vec<bool> = (0..t.len()).map(|c| c != 0).collect();
        let found = cuts(&t, &suppressed, &free, &[(0, None)], (3, 2)).unwrap();
        assert!(found.cuts.is_empty(), "{found:?}");
        // Its interval is the exact one: the rectangle's cells move together, cell 0 from its
        // true value 1 (no lower goal: 1 is already `width` below the threshold) up to 10, where
        // its row and column partners (11 - cell 0) reach their floor 1.
        assert_eq!(found.protected.len(), 1, "{found:?}");
        let ((target, insider), iv) = found.protected[0];
        assert_eq!((target, insider), (0, None));
        assert!((iv.lower - 1.0).abs() < 1e-6, "{iv:?}");
        assert_eq!(iv.upper.map(f64::round), Some(10.0), "{iv:?}");
    }
}
