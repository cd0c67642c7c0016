//! Primary and secondary suppression.
//!
//! Primary: every count from 1 to `threshold - 1`. Secondary, repeated until the audit is satisfied:
//! (1) a relation with exactly one suppressed cell would give it away, so one more of its cells is
//! suppressed; (2) for each primary cell the audit still narrows too far, one more cell of a
//! relation it takes part in is suppressed. Candidates are positive published cells; the choice
//! prefers inner cells (low rank) over totals, then small values, then the lower index, so the same
//! table always gives the same pattern.

use std::collections::{BTreeMap, HashSet};

use pseudagg_core::{Progress, Ticker};
use rayon::prelude::*;

use crate::audit::{Index, Interval, certify, certify_exact, insiders_to_check, intervals};
use crate::batch::{Batched, certify_batch, certify_batch_in};
use crate::cover::{Audited, Limits, cover_audited};
use crate::table::{Kind, Table};

/// Suppression settings.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub threshold: u64,
    pub min_width: u64,
    /// Attacker model (b): also protect against a gE that knows its own counts.
    pub insider: bool,
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
    /// Secondary cells every safe pattern needs at least (see [`crate::cover`]); `None` when the
    /// covering program did not run.
    pub lower_bound: Option<usize>,
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

/// After how many failed audits a cell is checked against the most suppression allowed.
const STUCK_AFTER: u32 = 3;

/// Suppresses until every primary cell is protected, or says which cannot be.
pub fn protect(table: &Table, params: Params) -> Result<Pattern, Unprotected> {
    protect_watched(table, params, None)
}

/// [`protect`], telling `progress` the audit's phases: the primary cells shown safe, the insider
/// pairs checked, the secondary cells bounded.
#[allow(clippy::too_many_lines)] // the rounds of one algorithm, in order
pub fn protect_watched(
    table: &Table,
    params: Params,
    progress: Option<Progress<'_>>,
) -> Result<Pattern, Unprotected> {
    let primary: Vec<bool> = (0..table.len())
        .map(|c| table.is_primary(c, params.threshold))
        .collect();
    let mut suppressed: Vec<bool> = (0..table.len())
        .map(|c| primary[c] || table.starts_suppressed(c))
        .collect();
    // The covering program chooses the pattern as a whole; the rounds below audit it and repair
    // what a relation-by-relation condition cannot see (intervals too narrow, subsets).
    let targets: Vec<usize> = (0..table.len()).filter(|&c| primary[c]).collect();
    let insiders = params.insider && !table.owner.is_empty();
    let covered = cover_audited(
        table,
        &primary,
        Limits {
            threshold: params.threshold,
            min_width: params.min_width,
            insider: params.insider,
        },
        // The primary cells a chosen pattern leaves unprotected: from outside (model (a)), and
        // once asked, against the insiders its certificates do not hold against.
        |pattern, with_insiders, only| {
            let targets = only.unwrap_or(&targets);
            unprotected_pairs(table, pattern, targets, params, insiders && with_insiders)
        },
    )
    .map_err(|impossible| Unprotected {
        reason: if impossible.cells.is_empty() {
            "no pattern meets the conditions that every safe pattern meets (the covering program is infeasible)".to_owned()
        } else {
            "a relation they take part in cannot hide them even with every cell that may be suppressed suppressed".to_owned()
        },
        cells: impossible.cells,
    })?;
    // A cell once shown safe stays safe: more suppression only widens intervals.
    let mut safe: Vec<Option<Interval>> = vec![None; table.len()];
    if let Some(c) = &covered {
        for &cell in &c.chosen {
            suppressed[cell] = true;
        }
        // The cells the covering program's audits showed safe under its pattern, against every
        // insider too: the rounds below need not find their certificates again (committed sample:
        // 984 of 1,043 primary cells, the report 9.3 s -> 7.4 s).
        for &(cell, iv) in &c.proven {
            safe[cell] = Some(iv);
        }
    }
    let lower_bound = covered.as_ref().map(|c| c.lower_bound);
    let index = Index::new(table);
    let primaries: Vec<usize> = (0..table.len()).filter(|&c| primary[c]).collect();
    let fail = |reason: String| Unprotected {
        cells: vec![],
        reason,
    };
    // The whole connected part decides: (interval, protected) per cell.
    let decide_exactly = |suppressed: &[bool], cells: &[usize]| {
        certify_exact(table, suppressed, cells, params.threshold, params.min_width).map_err(fail)
    };
    // The gEs against which the certificate that showed it safe does not hold by itself: only
    // these are audited again as insiders.
    let mut to_check: Vec<Vec<u32>> = vec![Vec::new(); table.len()];
    let limits = (params.threshold, params.min_width);
    // (primary cell, insider gE) pairs shown safe under the insider model.
    let mut insider_safe: HashSet<(usize, u32)> = HashSet::new();
    // Cells the audit has failed in two rounds: they most likely fail again. (After one failure
    // most cells of thin tables pass with their new neighbour, cheaply, in a small neighbourhood.)
    let mut failures = vec![0_u32; table.len()];
    // In the first round, with only the relation rule's partners suppressed, most primary cells of
    // a thin table fail (844 of 1,043 on the committed sample): the widest neighbourhood goes
    // first for every cell.
    // After the covering program most pass (727 of 1,043 there): the small neighbourhoods first.
    let mut likely_unsafe = vec![lower_bound.is_none(); table.len()];
    let audited = Ticker::start(
        progress,
        "suppression: primary cells shown safe",
        primaries.len() as u64,
    );
    let proven = primaries.iter().filter(|&&c| safe[c].is_some()).count();
    audited.add(proven as u64);
    tracing::debug!(
        proven,
        primary = primaries.len(),
        "primary cells the covering program's audits showed safe"
    );
    let mut rounds = 0;
    loop {
        rounds += 1;
        // (1) No relation may hold a single suppressed cell.
        relation_rule(table, &mut suppressed, params.threshold);
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
        let open_before = open.len();
        // Most cells are certified together, district by district; the rest one by one.
        let batched = certify_batch(table, &suppressed, &open, limits, insiders).map_err(fail)?;
        let mut failing = Vec::new();
        let mut undecided = Vec::new();
        for (&c, b) in open.iter().zip(batched) {
            match b {
                Batched::Certified(iv, uncovered) => {
                    safe[c] = Some(iv);
                    to_check[c] = uncovered;
                }
                Batched::Unprotected(iv) => {
                    failures[c] += 1;
                    failing.push((c, iv));
                }
                Batched::Undecided => undecided.push(c),
            }
        }
        tracing::debug!(
            round = rounds,
            certified = open.len() - failing.len() - undecided.len(),
            unprotected = failing.len(),
            "suppression: certificates over districts and parts"
        );
        let open = undecided;
        let results = certify(
            table,
            &suppressed,
            &open,
            &likely_unsafe,
            (params.threshold, params.min_width),
            insiders,
        )
        .map_err(fail)?;
        for (&c, (iv, ok, uncovered)) in open.iter().zip(results) {
            if ok {
                safe[c] = Some(iv);
                to_check[c] = uncovered;
            } else {
                failures[c] += 1;
                likely_unsafe[c] = failures[c] >= 2;
                failing.push((c, iv));
            }
        }
        audited.add((open_before - failing.len()) as u64);
        // A line per phase: off a terminal, the steward sees the seconds-long audit move on.
        tracing::info!(
            round = rounds,
            audited = open.len(),
            failing = failing.len(),
            "suppression: audit round of the primary cells done"
        );
        if failing.is_empty() {
            // (b) The insider: a gE that knows its own counts, against every other gE's primary
            // cells of its district.
            match insider_round(
                table,
                &index,
                &mut suppressed,
                &primaries,
                &to_check,
                &mut insider_safe,
                params,
                progress,
            )? {
                InsiderRound::Safe => {}
                InsiderRound::Added => continue,
            }
            let secondary: Vec<usize> = (0..table.len())
                .filter(|&c| suppressed[c] && !primary[c] && table.kind_of(c) == Kind::Published)
                .collect();
            // A secondary cell's interval is its feasible interval over its whole connected part,
            // never one with its neighbours held at their true values (that would record the
            // true value itself).
            let bounded = Ticker::start(
                progress,
                "suppression: secondary cells bounded",
                secondary.len() as u64,
            );
            let feasible =
                intervals(table, &suppressed, &secondary, Some(&bounded)).map_err(fail)?;
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
                lower_bound,
            });
        }
        // A cell that keeps failing where cells must stay published (a joint report's released
        // cells) may be one that no pattern protects: it is audited once with every cell that
        // may be suppressed suppressed. More suppression only widens intervals, so a cell that
        // fails there fails under every pattern, and the run stops now instead of adding one
        // neighbour a round until none is left (the `geschlecht != 'd'` variant beside the
        // shipped reports at 550,000 rows: over 75 rounds, minutes).
        let stuck: Vec<usize> = failing
            .iter()
            .map(|f| f.0)
            .filter(|&c| failures[c] == STUCK_AFTER)
            .collect();
        if !stuck.is_empty() && table.keep_published.iter().any(|&k| k) {
            let most: Vec<bool> = (0..table.len())
                .map(|c| suppressed[c] || table.may_suppress(c))
                .collect();
            let exact = decide_exactly(&most, &stuck)?;
            let hopeless: Vec<(usize, Interval)> = stuck
                .iter()
                .zip(exact)
                .filter(|(_, (_, ok))| !ok)
                .map(|(&c, (iv, _))| (c, iv))
                .collect();
            tracing::debug!(
                round = rounds,
                stuck = stuck.len(),
                hopeless = hopeless.len(),
                "cells that keep failing, audited with every cell that may be suppressed suppressed"
            );
            if !hopeless.is_empty() {
                return Err(Unprotected {
                    cells: hopeless,
                    reason: "they are not protected even with every cell that may be suppressed suppressed".to_owned(),
                });
            }
        }
        // Cells the neighbourhoods could not show safe get one more suppressed neighbour; where no
        // neighbour is left, the whole connected part of the table decides (exact, and costly).
        let mut added = false;
        let mut no_candidate = Vec::new();
        // Suppressing a top-level total costs every recipient: first ask the exact audit whether
        // the cell is protected already (its neighbourhoods may just not show it).
        let mut costly = Vec::new();
        for &(cell, iv) in &failing {
            match nearest_candidate(table, &index, &suppressed, cell, None) {
                Some(c) if table.rank[c] >= TOP_RANK => costly.push((cell, c)),
                Some(c) => {
                    suppressed[c] = true;
                    added = true;
                }
                None => no_candidate.push((cell, iv)),
            }
        }
        // Cells the exact audit showed safe: their insiders are found after this round's additions
        // (more suppression only widens what a certificate shows).
        let mut proved: Vec<(usize, Interval)> = Vec::new();
        if !costly.is_empty() {
            let cells: Vec<usize> = costly.iter().map(|c| c.0).collect();
            let exact = decide_exactly(&suppressed, &cells)?;
            for ((cell, candidate), (iv, ok)) in costly.into_iter().zip(exact) {
                if ok {
                    safe[cell] = Some(iv);
                    proved.push((cell, iv));
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
                    proved.push((c, iv));
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
        tracing::debug!(
            round = rounds,
            decided_exactly = proved.len(),
            "exact audit of the cells without a cheaper candidate"
        );
        if insiders && !proved.is_empty() {
            let found = insiders_to_check(table, &suppressed, &proved, limits).map_err(fail)?;
            for ((c, _), uncovered) in proved.into_iter().zip(found) {
                to_check[c] = uncovered;
            }
        }
    }
}

/// The audit of a pattern for the covering program's cuts: the cells certified, with their
/// certificates; and the (primary cell, insider) pairs left open: the cells not certified from
/// outside, and with `insiders` each certified cell with every gE its certificate does not hold
/// against. Only a batch decides here; the cuts' own programs decide every pair left open.
fn unprotected_pairs(
    table: &Table,
    pattern: &[bool],
    targets: &[usize],
    params: Params,
    insiders: bool,
) -> Result<Audited, String> {
    let limits = (params.threshold, params.min_width);
    // From outside, a cell no district certifies goes to the cuts' programs as it is: they decide
    // it exactly over its whole part, as the batch would (committed sample: each of the first
    // rounds 2.1 s -> 1.25 s, the cuts included). The insiders' round needs the whole part's
    // certificates: they name the gEs to check the cells against.
    let found = certify_batch_in(table, pattern, targets, limits, insiders, insiders)?;
    let mut out = Audited::default();
    let mut by_insider: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (&c, b) in targets.iter().zip(found) {
        match b {
            Batched::Certified(iv, uncovered) => {
                for &h in &uncovered {
                    by_insider.entry(h).or_default().push(c);
                }
                out.certified.push((c, iv, uncovered));
            }
            _ => out.open.push((c, None)),
        }
    }
    // The cuts' exact programs decide these pairs: a batch per insider would leave most of them
    // to those programs anyway (988 of 1,085 on the committed sample).
    let pairs = by_insider
        .into_iter()
        .flat_map(|(h, cells)| cells.into_iter().map(move |c| (c, Some(h))));
    out.open.extend(pairs);
    Ok(out)
}

/// Rule (1): no relation may hold a single suppressed cell (unless it may be known: an atom, or
/// a group of people that is not small); one more of its cells is suppressed, an inner one (low rank) before a total, then a
/// small one, then the lower index.
fn relation_rule(table: &Table, suppressed: &mut [bool], threshold: u64) {
    let better = |a: usize, b: usize| {
        (table.rank[a], table.values[a], a) < (table.rank[b], table.values[b], b)
    };
    let mut changed = true;
    while changed {
        changed = false;
        for s in &table.sums {
            let cells = s.parts.iter().copied().chain([s.total]);
            let mut hidden = cells.clone().filter(|&c| suppressed[c]);
            if let (Some(only), None) = (hidden.next(), hidden.next())
                && !table.may_be_known(only, threshold)
            {
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
}

/// The suppressed cells that gE `h` does not know (its own it does).
fn unknown_to(table: &Table, suppressed: &[bool], h: u32) -> Vec<bool> {
    suppressed
        .iter()
        .enumerate()
        .map(|(i, &s)| s && table.owner_of(i) != Some(h))
        .collect()
}

/// What the insider audit did.
enum InsiderRound {
    /// Every primary cell is protected against every single insider.
    Safe,
    /// Cells were suppressed: audit again.
    Added,
}

/// The insider model (b): for each primary cell of a gE, and each other gE of its district that
/// owns a cell the certificate that proved the cell safe moves, audits the cell again
/// with that gE's cells known (held at their true values). A cell narrowed too far gets one more
/// suppressed neighbour that the insider does not know; where none is left, the whole connected
/// part decides, and if it does not protect the cell, protection fails.
#[allow(clippy::too_many_arguments)] // the state of the rounds
fn insider_round(
    table: &Table,
    index: &Index,
    suppressed: &mut [bool],
    primaries: &[usize],
    to_check: &[Vec<u32>],
    insider_safe: &mut HashSet<(usize, u32)>,
    params: Params,
    progress: Option<Progress<'_>>,
) -> Result<InsiderRound, Unprotected> {
    if table.owner.is_empty() || !params.insider {
        return Ok(InsiderRound::Safe);
    }
    let fail = |reason: String| Unprotected {
        cells: vec![],
        reason,
    };
    let mut by_insider: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for &c in primaries {
        if table.owner_of(c).is_none() {
            continue;
        }
        for &h in to_check[c]
            .iter()
            .filter(|&&h| !insider_safe.contains(&(c, h)))
        {
            by_insider.entry(h).or_default().push(c);
        }
    }
    let no_hint = vec![false; table.len()];
    let mut failing: Vec<(usize, u32)> = Vec::new();
    // Each insider on its own: its cells known (published, in effect), the cells it must not
    // narrow certified together first, the rest one by one.
    let limits = (params.threshold, params.min_width);
    let checked = Ticker::start(
        progress,
        "suppression: insider pairs checked",
        by_insider.values().map(Vec::len).sum::<usize>() as u64,
    );
    let decided: Vec<Vec<(usize, u32, bool)>> = by_insider
        .par_iter()
        .map(|(&h, targets)| {
            let known = unknown_to(table, suppressed, h);
            let batched = certify_batch(table, &known, targets, limits, false)?;
            let mut out = Vec::with_capacity(targets.len());
            let mut rest = Vec::new();
            for (&c, b) in targets.iter().zip(batched) {
                match b {
                    Batched::Certified(..) => out.push((c, h, true)),
                    Batched::Unprotected(_) => out.push((c, h, false)),
                    Batched::Undecided => rest.push(c),
                }
            }
            if !rest.is_empty() {
                let results = certify(table, &known, &rest, &no_hint, limits, false)?;
                for (&c, (_, ok, _)) in rest.iter().zip(results) {
                    out.push((c, h, ok));
                }
            }
            checked.add(targets.len() as u64);
            Ok(out)
        })
        .collect::<Result<_, String>>()
        .map_err(fail)?;
    for (c, h, ok) in decided.into_iter().flatten() {
        if ok {
            insider_safe.insert((c, h));
        } else {
            failing.push((c, h));
        }
    }
    tracing::info!(
        insiders = by_insider.len(),
        checked = by_insider.values().map(Vec::len).sum::<usize>(),
        failing = failing.len(),
        "suppression: insider audit done"
    );
    if failing.is_empty() {
        return Ok(InsiderRound::Safe);
    }
    let mut added = false;
    let mut still = Vec::new();
    for &(c, h) in &failing {
        match nearest_candidate(table, index, suppressed, c, Some(h)) {
            Some(n) => {
                suppressed[n] = true;
                added = true;
            }
            None => still.push((c, h)),
        }
    }
    if added {
        return Ok(InsiderRound::Added);
    }
    // No neighbour left: the whole part decides, with the insider's cells known.
    let mut unprotected = Vec::new();
    for (c, h) in still {
        let known = unknown_to(table, suppressed, h);
        let exact =
            certify_exact(table, &known, &[c], params.threshold, params.min_width).map_err(fail)?;
        if exact[0].1 {
            insider_safe.insert((c, h));
        } else {
            unprotected.push((c, exact[0].0));
        }
    }
    if unprotected.is_empty() {
        Ok(InsiderRound::Safe)
    } else {
        Err(Unprotected {
            cells: unprotected,
            reason: "a gE that knows its own counts could narrow them, and no further cell can be suppressed".to_owned(),
        })
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
    insider: Option<u32>,
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
                    // A cell the insider knows hides nothing from it.
                    if !suppressed[n]
                        && table.may_suppress(n)
                        && (insider.is_none() || table.owner_of(n) != insider)
                    {
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
            owner: vec![],
            district: vec![],
            ..Table::default()
        }
    }

    #[test]
    fn primary_suppression_alone_is_disclosed_and_secondary_stops_it() {
        let table = rd_table();
        let primary_only = vec![false, true, false];
        let iv = intervals(&table, &primary_only, &[1], None).unwrap();
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
                insider: true,
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
                    min_width: 2,
                    insider: true,
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
                insider: true,
            },
        )
        .unwrap_err();
        assert_eq!(err.cells.len(), 1);
        assert_eq!(err.cells[0].0, 1);
        assert_eq!(err.cells[0].1.upper, Some(1.0));
    }

    /// Issue 14: a gE that knows its own counts and sees its district's table. RD(13) = g1(1) +
    /// g2(12): against outsiders, suppressing g1 and g2 suffices (g1 in [1, 12]); but g2 knows its
    /// 12, so to it g1 = 13 - 12 = 1.
    #[test]
    fn an_insider_that_knows_its_own_counts_is_audited_too() {
        let mut table = Table {
            values: vec![13, 1, 12],
            rank: vec![2, 0, 0],
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
        let params = Params {
            threshold: 3,
            min_width: 2,
            insider: true,
        };
        let outsider_only = protect(&table, params).unwrap();
        assert_eq!(outsider_only.suppressed, vec![false, true, true]);
        let known_to_g2 = vec![false, true, false];
        let iv = intervals(&table, &known_to_g2, &[1], None).unwrap()[0];
        assert_eq!(
            (iv.lower, iv.upper),
            (1.0, Some(1.0)),
            "the old pattern is disclosed to g2"
        );

        table.owner = vec![crate::table::NOBODY, 1, 2];
        table.district = vec![0; 3];
        let pattern = protect(&table, params).unwrap();
        // The RD total hides g1 from g2 (and from everyone: g1 = RD - 12 is unbounded above);
        // g2 need not be suppressed besides.
        assert_eq!(
            pattern.suppressed,
            vec![true, true, false],
            "the RD total hides g1 from g2"
        );
        assert_eq!(pattern.lower_bound, Some(1));
        // Against every single insider, every other gE's primary cell is protected.
        for insider in 1..=2u32 {
            let known: Vec<bool> = pattern
                .suppressed
                .iter()
                .enumerate()
                .map(|(i, &s)| s && table.owner[i] != insider)
                .collect();
            for c in (1..3).filter(|&c| pattern.primary[c] && table.owner[c] != insider) {
                let iv = intervals(&table, &known, &[c], None).unwrap()[0];
                assert!(iv.protects(3, 2), "cell {c} against gE {insider}: {iv:?}");
            }
        }
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
            owner: vec![],
            district: vec![],
            ..Table::default()
        };
        let pattern = protect(
            &table,
            Params {
                threshold: 3,
                min_width: 2,
                insider: true,
            },
        );
        // The total is the only other positive cell; suppressing it leaves a unbounded above.
        let pattern = pattern.unwrap();
        assert!(pattern.suppressed[0]);
        assert!(!pattern.suppressed[3], "a zero is never suppressed");
    }
}
