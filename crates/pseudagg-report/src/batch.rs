//! Batch certificates: one linear program per district certifies many primary cells at once.
//!
//! A primary cell with true value `v` is protected when its feasible interval reaches the threshold
//! and is `width` wide. A feasible table in which the cell reaches `max(threshold, v + width)`
//! proves both (the true table is the other end), and one program can look for such a table for
//! every primary cell of a district together ([`Reach`]): it raises as many of them as it can,
//! moving as few other cells as it can, and each round drops the cells reached. The cells of other
//! districts are held at their true values, which can only narrow intervals: a cell certified here
//! is certified in the whole table. A cell not reached is not thereby unsafe; the audit of
//! [`crate::audit::certify`] decides it.
//!
//! The insider model: a certificate holds against every gE none of whose cells its table moves.
//! For each gE it moves, the same program looks again with that gE's cells held at their true
//! values, for all the cells that need it at once. The gEs still left are returned, for the insider
//! audit to decide.
//!
//! On the committed sample (1,043 primary cells over 400 gEs) this replaces about two thousand
//! neighbourhood programs by a few dozen rounds per district.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;

use crate::audit::{Component, Index, Interval, by_component, neighbourhood_system, shared_out};
use crate::lp::{Goal, Reach, Reached};
use crate::table::{NOBODY, Table};

/// What [`certify_batch`] found for a cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Batched {
    /// Protected: the interval the certificate shows, and the gEs of its district against which
    /// the certificate does not hold by itself.
    Certified(Interval, Vec<u32>),
    /// Not protected by its whole part of the table (the interval's upper end is its largest
    /// value there, below what protection needs).
    Unprotected(Interval),
    /// Not decided here.
    Undecided,
}

/// Certifies the `targets` (suppressed primary cells) district by district, then the cells left
/// over their whole connected part; [`Batched::Undecided`] for a cell neither decides.
pub fn certify_batch(
    table: &Table,
    suppressed: &[bool],
    targets: &[usize],
    limits: (u64, u64),
    insiders: bool,
) -> Result<Vec<Batched>, String> {
    certify_batch_in(table, suppressed, targets, limits, insiders, true)
}

/// [`certify_batch`]; without `whole_parts` only district by district, the cells left
/// [`Batched::Undecided`] (for a caller that decides them exactly anyway).
pub fn certify_batch_in(
    table: &Table,
    suppressed: &[bool],
    targets: &[usize],
    limits: (u64, u64),
    insiders: bool,
    whole_parts: bool,
) -> Result<Vec<Batched>, String> {
    let mut out = vec![Batched::Undecided; targets.len()];
    let started = std::time::Instant::now();
    if !table.district.is_empty() {
        let index = Index::new(table);
        let mut by_district: BTreeMap<u32, Vec<(usize, usize)>> = BTreeMap::new();
        for (i, &t) in targets.iter().enumerate() {
            let d = table.district[t];
            if d != NOBODY && suppressed[t] {
                by_district.entry(d).or_default().push((i, t));
            }
        }
        // The suppressed cells of each district, in cell order.
        let mut members: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (c, &d) in table.district.iter().enumerate() {
            if suppressed[c] && by_district.contains_key(&d) {
                members.entry(d).or_default().push(c);
            }
        }
        let found: Vec<Vec<(usize, Batched)>> = by_district
            .into_par_iter()
            .map(|(d, cells)| {
                let (comp, free) = district_system(table, &index, suppressed, &members[&d]);
                let goals: Vec<(usize, usize)> =
                    cells.iter().map(|&(i, t)| (i, free[&t])).collect();
                reach_in(table, &comp, &goals, limits, insiders, false)
            })
            .collect::<Result<_, String>>()?;
        for (i, b) in found.into_iter().flatten() {
            out[i] = b;
        }
    }
    let decided = out.iter().filter(|b| **b != Batched::Undecided).count();
    tracing::debug!(
        targets = targets.len(),
        decided,
        insiders,
        ms = started.elapsed().as_millis(),
        "batch certificates by district"
    );
    if !whole_parts {
        return Ok(out);
    }
    let started = std::time::Instant::now();
    // The rest over their whole part.
    let left: Vec<usize> = (0..targets.len())
        .filter(|&i| out[i] == Batched::Undecided)
        .collect();
    let cells: Vec<usize> = left.iter().map(|&i| targets[i]).collect();
    let (comps, by_comp) = by_component(table, suppressed, &cells)?;
    // A large part's cells are shared over the threads, each with an instance of its own.
    let chunks: Vec<(usize, Vec<(usize, usize)>)> = shared_out(by_comp, 16)
        .into_iter()
        .map(|(ci, goals)| (ci, goals.into_iter().map(|(j, v)| (left[j], v)).collect()))
        .collect();
    let found: Vec<Vec<(usize, Batched)>> = chunks
        .into_par_iter()
        .map(|(ci, goals)| reach_in(table, &comps[ci], &goals, limits, insiders, true))
        .collect::<Result<_, String>>()?;
    for (i, b) in found.into_iter().flatten() {
        out[i] = b;
    }
    tracing::debug!(
        cells = left.len(),
        insiders,
        ms = started.elapsed().as_millis(),
        "batch certificates over whole parts"
    );
    Ok(out)
}

/// The system of one district: its suppressed cells `own`, and the suppressed cells outside every
/// district (the federal ones) that share a relation with them, free; every other cell at its true
/// value. With the variable of each free cell.
fn district_system(
    table: &Table,
    index: &Index,
    suppressed: &[bool],
    own: &[usize],
) -> (Component, HashMap<usize, usize>) {
    let mut free: HashMap<usize, usize> = HashMap::new();
    for &c in own {
        free.insert(c, free.len());
    }
    let mut outside = BTreeSet::new();
    let mut around = Vec::new();
    for &c in own {
        around.clear();
        index.neighbours(table, c, &mut around);
        outside.extend(
            around
                .iter()
                .copied()
                .filter(|&n| suppressed[n] && table.district[n] == NOBODY),
        );
    }
    for c in outside {
        free.insert(c, free.len());
    }
    (neighbourhood_system(table, index, &free), free)
}

/// Certificates within the system `comp` for `cells` (position in the targets, variable). With
/// `whole`, `comp` is the cells' whole connected part, and a cell whose upper goal is not reached
/// is unprotected.
fn reach_in(
    table: &Table,
    comp: &Component,
    cells: &[(usize, usize)],
    limits: (u64, u64),
    insiders: bool,
    whole: bool,
) -> Result<Vec<(usize, Batched)>, String> {
    let truth: Vec<f64> = comp.vars.iter().map(|&c| table.values[c] as f64).collect();
    let floors = comp.floors(table);
    // The goals, and for each cell the indices of its goals.
    let mut goals: Vec<Goal> = Vec::new();
    let mut of_cell: Vec<Vec<usize>> = Vec::new();
    for &(_, v) in cells {
        let mut mine = Vec::new();
        for (end, value) in crate::cuts::goals(truth[v], floors[v], limits) {
            mine.push(goals.len());
            goals.push((v, end, value));
        }
        of_cell.push(mine);
    }
    let mut reach = Reach::new(&comp.rows(), &truth, &floors, &goals);
    let all: Vec<usize> = (0..goals.len()).collect();
    let first = reach.reach(&all, &[])?;
    let certified = |r: &Reached, i: usize| of_cell[i].iter().all(|&k| r.by_goal[k].is_some());
    // Per insider, the cells whose certificate moves one of its cells.
    let mut need: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    if insiders {
        for (i, &(_, v)) in cells.iter().enumerate() {
            if !certified(&first, i) {
                continue;
            }
            let target = comp.vars[v];
            let (own_ge, district) = (table.owner_of(target), table.district.get(target));
            let mut moved = BTreeSet::new();
            for &k in &of_cell[i] {
                let p = &first.points[first.by_goal[k].expect("reached")];
                moved.extend(
                    moved_cells(comp, &truth, p)
                        .filter(|&c| table.district.get(c) == district)
                        .filter_map(|c| table.owner_of(c))
                        .filter(|&o| Some(o) != own_ge),
                );
            }
            for h in moved {
                need.entry(h).or_default().push(i);
            }
        }
    }
    let mut uncovered = insiders_apart(table, comp, &truth, &mut reach, &of_cell, need)?;
    Ok(cells
        .iter()
        .enumerate()
        .map(|(i, &(pos, v))| {
            let value_at = |k: usize| first.by_goal[k].map(|p| first.points[p][v]);
            let up = value_at(of_cell[i][0]);
            let outcome = if certified(&first, i) {
                let low = of_cell[i]
                    .get(1)
                    .and_then(|&k| value_at(k))
                    .unwrap_or(truth[v]);
                let iv = Interval {
                    lower: low.min(truth[v]),
                    upper: up,
                };
                Batched::Certified(iv, std::mem::take(&mut uncovered[i]))
            } else if whole && up.is_none() {
                // Its largest value in the whole part stays below the goal.
                let best = first.best[of_cell[i][0]].unwrap_or(truth[v]).max(truth[v]);
                Batched::Unprotected(Interval {
                    lower: floors[v],
                    upper: Some(best),
                })
            } else {
                Batched::Undecided
            };
            (pos, outcome)
        })
        .collect())
}

/// For each cell (by its goals, `of_cell`), the gEs of `need` against which its certificate does
/// not hold: per gE, the cells whose first certificate moved its cells are sought again with
/// them held at their true values.
fn insiders_apart(
    table: &Table,
    comp: &Component,
    truth: &[f64],
    reach: &mut Reach,
    of_cell: &[Vec<usize>],
    need: BTreeMap<u32, Vec<usize>>,
) -> Result<Vec<Vec<u32>>, String> {
    let mut uncovered: Vec<Vec<u32>> = vec![Vec::new(); of_cell.len()];
    let goals = of_cell.iter().map(Vec::len).sum();
    let certified = |r: &Reached, i: usize| of_cell[i].iter().all(|&k| r.by_goal[k].is_some());
    // The points the insiders' programs find, each with the gEs whose cells it moves, and per goal
    // the points that reach it: a point that moves none of gE `h`'s cells is feasible with them
    // held at their true values, so a goal it reaches needs no program of `h`'s own (a cell whose
    // first certificate moved several gEs is often covered for the later ones by the point found
    // for the first).
    let mut moves: Vec<BTreeSet<u32>> = Vec::new();
    let mut reaching: Vec<Vec<usize>> = vec![Vec::new(); goals];
    for (h, mine) in need {
        let known = |k: usize| reaching[k].iter().any(|&p| !moves[p].contains(&h));
        let open_cells: Vec<usize> = mine
            .into_iter()
            .filter(|&i| !of_cell[i].iter().all(|&k| known(k)))
            .collect();
        if open_cells.is_empty() {
            continue;
        }
        let fixed: Vec<usize> = comp
            .vars
            .iter()
            .enumerate()
            .filter(|&(_, &c)| table.owner_of(c) == Some(h))
            .map(|(v, _)| v)
            .collect();
        let open: Vec<usize> = open_cells
            .iter()
            .flat_map(|&i| of_cell[i].iter().copied())
            .collect();
        let again = reach.reach(&open, &fixed)?;
        let first_point = moves.len();
        for p in &again.points {
            moves.push(
                moved_cells(comp, truth, p)
                    .filter_map(|c| table.owner_of(c))
                    .collect(),
            );
        }
        for (k, at) in again.by_goal.iter().enumerate() {
            if let Some(at) = at {
                reaching[k].push(first_point + at);
            }
        }
        for i in open_cells {
            if !certified(&again, i) {
                uncovered[i].push(h);
            }
        }
    }
    Ok(uncovered)
}

/// The cells of `comp` that the point `p` moves from their true values.
fn moved_cells<'a>(
    comp: &'a Component,
    truth: &'a [f64],
    p: &'a [f64],
) -> impl Iterator<Item = usize> + 'a {
    comp.vars
        .iter()
        .enumerate()
        .filter(|&(w, _)| (p[w] - truth[w]).abs() > 1e-6)
        .map(|(_, &c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Sum;

    /// RD = g1 + g2 + g3 (owners 1, 2, 3), all in district 0, the RD published.
    fn district(values: [u64; 4]) -> Table {
        Table {
            values: values.to_vec(),
            rank: vec![2, 0, 0, 0],
            sums: vec![Sum {
                total: 0,
                parts: vec![1, 2, 3],
            }],
            owner: vec![NOBODY, 1, 2, 3],
            district: vec![0; 4],
            ..Table::default()
        }
    }

    #[test]
    fn a_lone_suppressed_part_is_unprotected_and_a_pair_is_certified() {
        // RD 56 = 1 + 50 + 5: with g1 alone suppressed it is exactly 1.
        let table = district([56, 1, 50, 5]);
        let alone = certify_batch(&table, &[false, true, false, false], &[1], (3, 2), false);
        assert!(
            matches!(&alone.unwrap()[0], Batched::Unprotected(iv) if iv.upper == Some(1.0)),
            "g1 is computed from the published cells"
        );
        // With g3 suppressed too, g1 lies in [1, 5]: the certificate reaches 3.
        let pair = certify_batch(&table, &[false, true, false, true], &[1], (3, 2), false);
        match &pair.unwrap()[0] {
            Batched::Certified(iv, uncovered) => {
                assert!(
                    iv.upper.unwrap() >= 3.0 - 1e-9 && iv.lower <= 1.0 + 1e-9,
                    "{iv:?}"
                );
                assert!(uncovered.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    /// A cell of true value 2 needs a table where it is 3 or more and one where it is 1.
    #[test]
    fn a_cell_of_two_needs_both_ends() {
        // RD 8 = 2 + 5 + 1 with g1 and g2 suppressed: g1 in [1, 6].
        let table = district([8, 2, 5, 1]);
        let found = certify_batch(&table, &[false, true, true, false], &[1], (3, 2), false);
        match &found.unwrap()[0] {
            Batched::Certified(iv, _) => {
                assert!(
                    iv.lower <= 1.0 + 1e-9 && iv.upper.unwrap() >= 3.0 - 1e-9,
                    "{iv:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        // RD 6 = 2 + 3 + 1 with g1 and g3 suppressed: g1 + g3 = 3, so g1 lies in [1, 2].
        let table = district([6, 2, 3, 1]);
        let found = certify_batch(&table, &[false, true, false, true], &[1], (3, 2), false);
        assert!(matches!(&found.unwrap()[0], Batched::Unprotected(_)));
    }

    /// With g1 = 1, g2 = 5, g3 = 2 and the RD (8) published, every certificate for g1 moves g2 or
    /// g3. g2 knows its 5, so g1 + g3 = 3 and g1 lies in [1, 2]: the certificate does not hold
    /// against g2. g3 knows its 2, so g1 + g2 = 6 and g1 in [1, 5]: it holds against g3.
    #[test]
    fn a_certificate_names_the_insiders_it_does_not_hold_against() {
        let table = district([8, 1, 5, 2]);
        let found = certify_batch(&table, &[false, true, true, true], &[1], (3, 2), true);
        match &found.unwrap()[0] {
            Batched::Certified(_, uncovered) => assert_eq!(uncovered, &vec![2]),
            other => panic!("{other:?}"),
        }
    }
}
