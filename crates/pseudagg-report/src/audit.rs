//! The interval audit: for each suppressed cell, the smallest and largest value it can take given
//! everything published. Two linear programs per cell (minimise, maximise) over the suppressed cells
//! of its connected part of the table, with every suppressed cell at least 1 (zeros are published,
//! so a suppressed cell is known to be positive) and every additive and subset relation.
//!
//! The linear relaxation is what tau-ARGUS's audit computes too; an attacker restricted to integers
//! cannot do better than its bounds rounded inwards.

use std::collections::HashMap;

use microlp::{ComparisonOp, OptimizationDirection, Problem};
use rayon::prelude::*;

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
        const EPS: f64 = 1e-6;
        match self.upper {
            None => true,
            Some(hi) => hi + EPS >= threshold as f64 && hi - self.lower + EPS >= width as f64,
        }
    }
}

struct Constraint {
    terms: Vec<(usize, f64)>,
    op: ComparisonOp,
    rhs: f64,
}

/// The linear system over the suppressed cells of one connected part.
struct Component {
    vars: Vec<usize>,
    constraints: Vec<Constraint>,
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Splits the suppressed cells into independent linear systems.
fn components(table: &Table, suppressed: &[bool]) -> (Vec<Component>, HashMap<usize, (usize, usize)>) {
    let n = table.len();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut relations: Vec<(Vec<(usize, f64)>, ComparisonOp, f64)> = Vec::new();
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
            if suppressed[p] { terms.push((p, 1.0)) } else { rhs -= table.values[p] as f64 }
        }
        if suppressed[s.total] { terms.push((s.total, -1.0)) } else { rhs += table.values[s.total] as f64 }
        relations.push((terms, ComparisonOp::Eq, rhs));
    }
    for &(part, whole) in &table.subsets {
        match (suppressed[part], suppressed[whole]) {
            (false, false) => continue,
            (true, true) => {
                link(&[part, whole], &mut parent);
                relations.push((vec![(part, 1.0), (whole, -1.0)], ComparisonOp::Le, 0.0));
            }
            (true, false) => relations.push((vec![(part, 1.0)], ComparisonOp::Le, table.values[whole] as f64)),
            (false, true) => relations.push((vec![(whole, 1.0)], ComparisonOp::Ge, table.values[part] as f64)),
        }
    }
    let mut by_root: HashMap<usize, usize> = HashMap::new();
    let mut comps: Vec<Component> = Vec::new();
    let mut where_: HashMap<usize, (usize, usize)> = HashMap::new();
    for cell in (0..n).filter(|&c| suppressed[c]) {
        let root = find(&mut parent, cell);
        let ci = *by_root.entry(root).or_insert_with(|| {
            comps.push(Component { vars: Vec::new(), constraints: Vec::new() });
            comps.len() - 1
        });
        where_.insert(cell, (ci, comps[ci].vars.len()));
        comps[ci].vars.push(cell);
    }
    for (terms, op, rhs) in relations {
        let ci = where_[&terms[0].0].0;
        let terms = terms.into_iter().map(|(cell, coef)| (where_[&cell].1, coef)).collect();
        comps[ci].constraints.push(Constraint { terms, op, rhs });
    }
    (comps, where_)
}

fn solve(comp: &Component, target: usize, direction: OptimizationDirection) -> Result<Option<f64>, String> {
    let mut problem = Problem::new(direction);
    let vars: Vec<_> = (0..comp.vars.len())
        .map(|i| problem.add_var(if i == target { 1.0 } else { 0.0 }, (1.0, f64::INFINITY)))
        .collect();
    for c in &comp.constraints {
        let terms: Vec<_> = c.terms.iter().map(|&(v, coef)| (vars[v], coef)).collect();
        problem.add_constraint(terms.as_slice(), c.op, c.rhs);
    }
    match problem.solve() {
        Ok(outcome) => match outcome.solution() {
            Some(s) => Ok(Some(s.objective())),
            None => Err("the linear program was interrupted".to_owned()),
        },
        Err(microlp::Error::Unbounded) => Ok(None),
        Err(e) => Err(format!("the linear program failed: {e:?}")),
    }
}

/// The feasible intervals of the `targets` (suppressed cells), in their order.
pub fn intervals(table: &Table, suppressed: &[bool], targets: &[usize]) -> Result<Vec<Interval>, String> {
    let (comps, where_) = components(table, suppressed);
    targets
        .par_iter()
        .map(|&cell| {
            let &(ci, v) = where_.get(&cell).ok_or("an audited cell is not suppressed")?;
            let comp = &comps[ci];
            let lower = solve(comp, v, OptimizationDirection::Minimize)?
                .ok_or("a suppressed cell has no lower bound")?;
            let upper = solve(comp, v, OptimizationDirection::Maximize)?;
            Ok(Interval { lower, upper })
        })
        .collect()
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
            sums: vec![Sum { total: 0, parts: vec![1, 2] }],
            subsets: vec![],
        };
        let iv = intervals(&table, &[false, true, false], &[1]).unwrap();
        assert!((iv[0].lower - 1.0).abs() < 1e-9);
        assert!((iv[0].upper.unwrap() - 1.0).abs() < 1e-9);
        assert!(!iv[0].protects(3, 2));
        // With b suppressed too, a lies anywhere in [1, 9].
        let iv = intervals(&table, &[false, true, true], &[1]).unwrap();
        assert!((iv[0].upper.unwrap() - 9.0).abs() < 1e-9);
        assert!(iv[0].protects(3, 2));
    }

    #[test]
    fn subsets_narrow_intervals() {
        // part <= whole(2, published) and part >= 1: part in [1, 2].
        let table = Table { values: vec![1, 2], rank: vec![0, 0], sums: vec![], subsets: vec![(0, 1)] };
        let iv = intervals(&table, &[true, false], &[0]).unwrap();
        assert_eq!(iv[0].upper, Some(2.0));
        assert!(!iv[0].protects(3, 2));
    }
}
