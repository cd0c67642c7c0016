//! Primary and secondary suppression.
//!
//! Primary: every count from 1 to `threshold - 1`. Secondary, repeated until the audit is satisfied:
//! (1) a relation with exactly one suppressed cell would give it away, so one more of its cells is
//! suppressed; (2) for each primary cell the audit still narrows too far, one more cell of a
//! relation it takes part in is suppressed. Candidates are positive published cells; the choice
//! prefers inner cells (low rank) over totals, then small values, then the lower index, so the same
//! table always gives the same pattern.

use crate::audit::{Index, Interval, certify, certify_exact, intervals};
use crate::table::Table;

/// Suppression settings.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub threshold: u64,
    pub min_width: u64,
}

/// The pattern and its audit.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub suppressed: Vec<bool>,
    pub primary: Vec<bool>,
    /// An interval for every suppressed cell, by cell: for a secondary cell its feasible interval,
    /// for a primary cell the interval that proved it protected (its feasible interval contains it).
    pub audit: Vec<(usize, Interval)>,
    pub rounds: usize,
}

/// Why no safe pattern was found.
#[derive(Debug, Clone)]
pub struct Unprotected {
    /// Primary cells still narrowed too far, with their intervals.
    pub cells: Vec<(usize, Interval)>,
    pub reason: String,
}

/// Ranks from which a cell is a top-level total (the Bund in a report).
const TOP_RANK: u8 = 4;

/// Suppresses until every primary cell is protected, or says which cannot be.
#[allow(clippy::too_many_lines)] // the rounds of one algorithm, in order
pub fn protect(table: &Table, params: Params) -> Result<Pattern, Unprotected> {
    let primary: Vec<bool> = table
        .values
        .iter()
        .map(|&v| v > 0 && v < params.threshold)
        .collect();
    let mut suppressed = primary.clone();
    let index = Index::new(table);
    let primaries: Vec<usize> = (0..table.len()).filter(|&c| primary[c]).collect();
    let better = |a: usize, b: usize| {
        (table.rank[a], table.values[a], a) < (table.rank[b], table.values[b], b)
    };
    let fail = |reason: String| Unprotected {
        cells: vec![],
        reason,
    };
    // The whole connected part decides: (interval, protected) per cell.
    let decide_exactly = |suppressed: &[bool], cells: &[usize]| {
        certify_exact(table, suppressed, cells, params.threshold, params.min_width).map_err(fail)
    };
    // A cell once shown safe stays safe: more suppression only widens intervals.
    let mut safe: Vec<Option<Interval>> = vec![None; table.len()];
    // Cells the audit has failed in two rounds: they most likely fail again. (After one failure
    // most cells of thin tables pass with their new neighbour, cheaply, in a small neighbourhood.)
    let mut failures = vec![0_u32; table.len()];
    let mut likely_unsafe = vec![false; table.len()];
    let mut rounds = 0;
    loop {
        rounds += 1;
        // (1) No relation may hold a single suppressed cell.
        let mut changed = true;
        while changed {
            changed = false;
            for s in &table.sums {
                let cells = s.parts.iter().copied().chain([s.total]);
                if cells.clone().filter(|&c| suppressed[c]).count() == 1 {
                    let pick = cells
                        .filter(|&c| !suppressed[c] && table.may_suppress(c))
                        .reduce(|a, b| if better(a, b) { a } else { b });
                    if let Some(c) = pick {
                        suppressed[c] = true;
                        changed = true;
                    }
                }
            }
        }
        tracing::debug!(
            round = rounds,
            suppressed = suppressed.iter().filter(|&&x| x).count(),
            "after the relation rule"
        );
        // (2) The audit of the primary cells not yet shown safe.
        let open: Vec<usize> = primaries
            .iter()
            .copied()
            .filter(|&c| safe[c].is_none())
            .collect();
        let results = certify(
            table,
            &suppressed,
            &open,
            &likely_unsafe,
            params.threshold,
            params.min_width,
        )
        .map_err(fail)?;
        let mut failing = Vec::new();
        for (&c, (iv, ok)) in open.iter().zip(results) {
            if ok {
                safe[c] = Some(iv);
            } else {
                failures[c] += 1;
                likely_unsafe[c] = failures[c] >= 2;
                failing.push((c, iv));
            }
        }
        tracing::debug!(
            round = rounds,
            audited = open.len(),
            failing = failing.len(),
            "audit round"
        );
        if failing.is_empty() {
            let secondary: Vec<usize> = (0..table.len())
                .filter(|&c| suppressed[c] && !primary[c])
                .collect();
            // A secondary cell's interval is its feasible interval over its whole connected part,
            // never one with its neighbours held at their true values (that would record the
            // true value itself).
            let feasible = intervals(table, &suppressed, &secondary).map_err(fail)?;
            let mut audit: Vec<(usize, Interval)> = secondary.into_iter().zip(feasible).collect();
            for &c in &primaries {
                audit.push((c, safe[c].expect("every primary cell is safe")));
            }
            audit.sort_by_key(|a| a.0);
            return Ok(Pattern {
                suppressed,
                primary,
                audit,
                rounds,
            });
        }
        // Cells the neighbourhoods could not show safe get one more suppressed neighbour; where no
        // neighbour is left, the whole connected part of the table decides (exact, and costly).
        let mut added = false;
        let mut no_candidate = Vec::new();
        // Suppressing a top-level total costs every recipient: first ask the exact audit whether
        // the cell is protected already (its neighbourhoods may just not show it).
        let mut costly = Vec::new();
        for &(cell, iv) in &failing {
            match nearest_candidate(table, &index, &suppressed, cell) {
                Some(c) if table.rank[c] >= TOP_RANK => costly.push((cell, c)),
                Some(c) => {
                    suppressed[c] = true;
                    added = true;
                }
                None => no_candidate.push((cell, iv)),
            }
        }
        if !costly.is_empty() {
            let cells: Vec<usize> = costly.iter().map(|c| c.0).collect();
            let exact = decide_exactly(&suppressed, &cells)?;
            for ((cell, candidate), (iv, ok)) in costly.into_iter().zip(exact) {
                if ok {
                    safe[cell] = Some(iv);
                } else if !suppressed[candidate] {
                    suppressed[candidate] = true;
                    added = true;
                }
            }
        }
        if !added && !no_candidate.is_empty() {
            let cells: Vec<usize> = no_candidate.iter().map(|c| c.0).collect();
            let exact = decide_exactly(&suppressed, &cells)?;
            let mut still = Vec::new();
            for (c, (iv, ok)) in cells.into_iter().zip(exact) {
                if ok {
                    safe[c] = Some(iv);
                } else {
                    still.push((c, iv));
                }
            }
            if !still.is_empty() {
                return Err(Unprotected {
                    cells: still,
                    reason: "no further cell can be suppressed to protect them".to_owned(),
                });
            }
        }
    }
}

/// The best cell to suppress next for `cell`: a positive published cell of the nearest ring of
/// relations around it (at most four relations away) that has one, preferring inner cells (low
/// rank) over totals, then small values. A farther cell rarely helps; when none is left the exact
/// audit decides.
fn nearest_candidate(
    table: &Table,
    index: &Index,
    suppressed: &[bool],
    cell: usize,
) -> Option<usize> {
    let mut seen = vec![false; table.len()];
    seen[cell] = true;
    let mut frontier = vec![cell];
    let mut around = Vec::new();
    let mut best: Option<(usize, u8, u64, usize)> = None;
    for hop in 1..=4 {
        let mut next = Vec::new();
        for &c in &frontier {
            around.clear();
            index.neighbours(table, c, &mut around);
            for &n in &around {
                if !seen[n] {
                    seen[n] = true;
                    next.push(n);
                    if !suppressed[n] && table.may_suppress(n) {
                        let key = (hop, table.rank[n], table.values[n], n);
                        if best.is_none_or(|b| key < b) {
                            best = Some(key);
                        }
                    }
                }
            }
        }
        if best.is_some() || next.is_empty() {
            break;
        }
        frontier = next;
    }
    best.map(|b| b.3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::intervals;
    use crate::table::Sum;

    /// RD(51) = gE1(1) + gE2(50): primary suppression alone publishes 51 and 50, so gE1 = 1 exactly.
    fn rd_table() -> Table {
        Table {
            values: vec![51, 1, 50],
            rank: vec![2, 0, 0],
            sums: vec![Sum {
                total: 0,
                parts: vec![1, 2],
            }],
            subsets: vec![],
            keep_published: vec![],
        }
    }

    #[test]
    fn primary_suppression_alone_is_disclosed_and_secondary_stops_it() {
        let table = rd_table();
        let primary_only = vec![false, true, false];
        let iv = intervals(&table, &primary_only, &[1]).unwrap();
        assert_eq!(
            (iv[0].lower, iv[0].upper),
            (1.0, Some(1.0)),
            "gE1 is computed from the published cells"
        );

        let pattern = protect(
            &table,
            Params {
                threshold: 3,
                min_width: 2,
            },
        )
        .unwrap();
        assert_eq!(
            pattern.suppressed,
            vec![false, true, true],
            "gE2 (an inner cell) is suppressed, not the RD"
        );
        let (_, iv) = pattern.audit.iter().find(|(c, _)| *c == 1).unwrap();
        assert!(iv.protects(3, 2), "{iv:?}");
    }

    #[test]
    fn a_cell_that_must_stay_published_can_make_protection_fail() {
        let mut table = rd_table();
        // Only gE2 may be suppressed: it suffices.
        table.keep_published = vec![true, false, false];
        assert!(
            protect(
                &table,
                Params {
                    threshold: 3,
                    min_width: 2
                }
            )
            .is_ok()
        );
        // Neither gE2 nor the RD may be: gE1 stays exactly computable, and protection fails.
        table.keep_published = vec![true, false, true];
        let err = protect(
            &table,
            Params {
                threshold: 3,
                min_width: 2,
            },
        )
        .unwrap_err();
        assert_eq!(err.cells.len(), 1);
        assert_eq!(err.cells[0].0, 1);
        assert_eq!(err.cells[0].1.upper, Some(1.0));
    }

    #[test]
    fn two_small_parts_of_a_small_total_need_the_total_too() {
        // T(3) = a(1) + b(2) + c(0): a and b primary; a + b = 3 gives a in [1, 2].
        let table = Table {
            values: vec![3, 1, 2, 0],
            rank: vec![2, 0, 0, 0],
            sums: vec![Sum {
                total: 0,
                parts: vec![1, 2, 3],
            }],
            subsets: vec![],
            keep_published: vec![],
        };
        let pattern = protect(
            &table,
            Params {
                threshold: 3,
                min_width: 2,
            },
        );
        // The total is the only other positive cell; suppressing it leaves a unbounded above.
        let pattern = pattern.unwrap();
        assert!(pattern.suppressed[0]);
        assert!(!pattern.suppressed[3], "a zero is never suppressed");
    }
}
