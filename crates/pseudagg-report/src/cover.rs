//! The covering program: a secondary pattern chosen as a whole, by a 0/1 integer program on HiGHS,
//! before the audit looks at single cells.
//!
//! Every safe pattern satisfies one necessary condition per relation: a relation (a total and its
//! parts) that holds a suppressed cell holds another one, or the published cells give the first
//! away. Under the insider model a primary cell needs more: a gE that knows its own counts removes
//! its own cell from every relation, so a relation holding a primary cell of another gE must hold,
//! besides it, a suppressed cell no single other gE knows (a total, or the primary's own gE's
//! cell), or two cells of two other gEs.
//!
//! The program picks the cheapest set of cells that meets every such condition. The audit then
//! checks the pattern, and each primary cell it leaves unprotected (from outside, then against
//! each insider) adds a cut read from the duals of its linear program ([`crate::cuts`]); the
//! program chooses again, until the audit finds nothing or a round limit is reached. What the
//! audit still finds after that is repaired cell by cell ([`crate::suppress`]).
//! The same conditions and cuts with every cell at cost 1 give a lower bound on the secondary
//! cells of any safe pattern: the optimum of their linear relaxation, rounded up. Every condition
//! and every cut holds for every safe pattern, so the bound is one.
//!
//! The search stops at a node limit, never at a time limit: the same table gives the same pattern
//! on every machine.

use std::collections::{BTreeSet, HashMap, HashSet};

use highs::{HighsModelStatus, HighsSolutionStatus, RowProblem, Sense};

use crate::audit::Interval;
use crate::cuts::Pair;
use crate::table::{Sum, Table};

/// What the covering program found.
#[derive(Debug, Clone)]
pub struct Cover {
    /// Cells to suppress besides the primary and the preset ones.
    pub chosen: Vec<usize>,
    /// Secondary cells every safe pattern needs at least (the count program's linear relaxation,
    /// rounded up).
    pub lower_bound: usize,
    /// Primary cells the loop's audits showed protected under a pattern that the chosen one holds
    /// (from outside, and against every gE their certificate moves), each with the interval that
    /// shows it: more suppression only widens intervals, so they need no audit again.
    pub proven: Vec<(usize, Interval)>,
}

/// What the audit of a chosen pattern found.
#[derive(Debug, Default)]
pub struct Audited {
    /// The (primary cell, insider) pairs it leaves to the cuts' exact programs: those it shows
    /// unprotected, those it does not decide, and those its certificates do not cover.
    pub open: Vec<Pair>,
    /// The cells it certified, each with the interval the certificate shows and the gEs against
    /// which the certificate does not hold by itself.
    pub certified: Vec<(usize, Interval, Vec<u32>)>,
}

/// No safe pattern exists: the necessary conditions cannot all be met, whatever is chosen (each
/// holds for every safe pattern, see the module's text).
#[derive(Debug, Default)]
pub struct Impossible {
    /// The cells a relation of their own cannot hide even with every cell that may be suppressed
    /// suppressed, each with an interval the attacker narrows it to at least (the relation's
    /// bound). Empty when only the conditions together cannot be met (the program is infeasible).
    pub cells: Vec<(usize, Interval)>,
}

/// What the loop's audits showed of the primary cells, under patterns each of which the next one
/// holds (when a round drops a cell, all of it is forgotten).
#[derive(Debug, Default)]
struct Evidence {
    /// The last certificate of each cell that holds against the insiders it does not name.
    certified: HashMap<usize, (Interval, Vec<u32>)>,
    /// Cells the exact programs showed protected from outside.
    outside: HashMap<usize, Interval>,
    /// (cell, insider) pairs the exact programs showed protected.
    insiders: HashSet<(usize, u32)>,
}

impl Evidence {
    /// The cells shown protected, in cell order; with `insider`, only those whose certificate
    /// holds against every gE of theirs, or with each gE it does not hold against shown apart.
    /// A cell no gE owns is protected from outside only (attacker model (b) is about the other
    /// gEs' cells).
    fn proven(&self, table: &Table, insider: bool) -> Vec<(usize, Interval)> {
        let mut out: Vec<(usize, Interval)> = if insider {
            self.certified
                .iter()
                .filter(|&(&c, (_, moved))| {
                    table.owner_of(c).is_none()
                        || moved.iter().all(|&h| self.insiders.contains(&(c, h)))
                })
                .map(|(&c, &(iv, _))| (c, iv))
                .collect()
        } else {
            let mut all: HashMap<usize, Interval> = self.outside.clone();
            all.extend(self.certified.iter().map(|(&c, &(iv, _))| (c, iv)));
            all.into_iter().collect()
        };
        out.sort_by_key(|p| p.0);
        out
    }
}

/// Branch-and-bound nodes each program may use: enough for the report tables (the root and a few
/// hundred nodes close them), and a deterministic stop for any other.
const NODE_LIMIT: i32 = 2_000;

/// The relative gap at which a pattern's program stops: within 1 % of the cheapest pattern that
/// meets its conditions. The programs with cuts take seconds each on national tables to close
/// the last fraction of a percent.
const MIP_GAP: f64 = 0.01;

/// A guard against a pathological table only; the node limit is what stops the search. Hitting
/// it is logged, since the pattern may then depend on the machine's speed.
const TIME_GUARD_SECONDS: f64 = 120.0;

/// A variable of the program: a cell (chosen or not) or a helper (the largest share of one
/// relation that a single insider knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Var {
    Cell(usize),
    Helper(usize),
}

/// One condition: `sum(coef * var) >= rhs`.
#[derive(Debug, Clone)]
struct Condition {
    terms: Vec<(Var, f64)>,
    rhs: f64,
}

/// The settings the conditions depend on.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub threshold: u64,
    pub min_width: u64,
    pub insider: bool,
}

/// Solves the covering program for the table, given its primary cells; `None` when there is
/// nothing to choose or the solver finds no pattern (the cell-by-cell rules then decide alone),
/// [`Impossible`] when no pattern is safe.
pub fn cover(table: &Table, primary: &[bool], limits: Limits) -> Result<Option<Cover>, Impossible> {
    cover_audited(table, primary, limits, |_, _, _| Ok(Audited::default()))
}

/// Rounds of cuts from the audit at most: each round is one audit of the pattern and one program;
/// a table whose pattern still fails after them is repaired cell by cell ([`crate::suppress`]).
/// The crossed table at 550,000 rows needs 16: 6 from outside, 7 with the insiders, 3 for the
/// insiders of the cells protected from outside late.
const CUT_ROUNDS: usize = 16;

/// Rounds of cuts under attacker model (a) alone at most: after them the insiders join the audit
/// even where a few pairs still fail from outside (they stay in it). A crossed table at 550,000
/// rows added 11 cuts a round from outside for seven rounds and never reached the insiders'
/// rounds; the repair after the loop then suppressed about 4,800 more cells for them, one
/// neighbour at a time.
const OUTSIDE_ROUNDS: usize = 6;

/// Rounds in which the program may drop cells it chose before.
const FREE_ROUNDS: usize = 1;

/// [`cover`], with the audit in the loop: `unprotected(pattern, insiders, only)` names the primary
/// cells a pattern (the suppressed cells) leaves unprotected (of `only`, where given), each with
/// the gE whose knowledge of its own counts narrows it (none under attacker model (a)); it is
/// asked for the insiders once the pattern protects every cell from outside, or after
/// [`OUTSIDE_ROUNDS`]. Each gives cuts read from its linear program ([`crate::cuts`]) and the
/// program chooses again, until the audit finds none or after [`CUT_ROUNDS`]. The cuts hold for
/// every safe pattern, so the lower bound stays one.
///
/// The conditions and cuts hold for every safe pattern, so when they cannot be met no pattern is
/// safe: a cell whose own relation cannot hide it however much else is suppressed, or a program
/// the solver proves infeasible before any condition of this pattern's own (those that keep a
/// chosen cell chosen) joins. Then [`Impossible`] says so at once, instead of rounds of single
/// cells that cannot succeed (a crossed table beside a released report that publishes its sums:
/// minutes per round at 550,000 rows).
#[allow(clippy::too_many_lines)] // the rounds of one loop, in order
pub fn cover_audited(
    table: &Table,
    primary: &[bool],
    limits: Limits,
    mut unprotected: impl FnMut(&[bool], bool, Option<&[usize]>) -> Result<Audited, String>,
) -> Result<Option<Cover>, Impossible> {
    let fixed: Vec<bool> = (0..table.len())
        .map(|c| primary[c] || table.starts_suppressed(c))
        .collect();
    let mut free: Vec<bool> = (0..table.len())
        .map(|c| !fixed[c] && table.may_suppress(c))
        .collect();
    let insider = limits.insider && !table.owner.is_empty();
    // A free cell that a relation of its own would leave alone, once chosen, is published in
    // every safe pattern: it leaves the program, and the cells that counted on it may then be
    // hopeless. Until no more leave (a few passes over the relations, milliseconds).
    let program = loop {
        let mut program = Program {
            table,
            primary,
            fixed: &fixed,
            free: &free,
            conditions: Vec::new(),
            helpers: 0,
            hopeless: HashMap::new(),
            unusable: Vec::new(),
        };
        for s in &table.sums {
            program.relation(s, limits, insider);
        }
        if program.unusable.is_empty() || !program.hopeless.is_empty() {
            break program;
        }
        let unusable = std::mem::take(&mut program.unusable);
        drop(program);
        for c in unusable {
            free[c] = false;
        }
    };
    if !program.hopeless.is_empty() {
        let mut cells: Vec<(usize, Interval)> = program.hopeless.into_iter().collect();
        cells.sort_unstable_by_key(|c| c.0);
        tracing::info!(
            cells = cells.len(),
            "suppression: cells that no pattern protects"
        );
        return Err(Impossible { cells });
    }
    let (mut conditions, helpers) = (program.conditions, program.helpers);
    if conditions.is_empty() {
        return Ok(None);
    }
    // Cheap cells first: small ones (many small cells before one large one), inner before totals.
    let weight = |v: Var| match v {
        Var::Cell(c) => {
            1.0 + 0.2 * ((1 + table.values[c]) as f64).ln() + 0.1 * f64::from(table.rank[c])
        }
        Var::Helper(_) => 0.0,
    };
    let count = |v: Var| match v {
        Var::Cell(_) => 1.0,
        Var::Helper(_) => 0.0,
    };
    // Most conditions hold with nothing chosen (a free cell needs a partner only once it is
    // chosen): they join the program only when a solution breaks them.
    // On a dense table (few primary cells, a national extract) that keeps the program small: a
    // few cheap rounds instead of one program over every relation (5.5 M rows: 5 s -> 1.3 s). On
    // a thin one most conditions come in anyway, each round a program of its own: there the
    // whole program is solved at once (see `solve_lazily`).
    let mut active: Vec<bool> = conditions.iter().map(|c| c.rhs > 0.0).collect();
    if active.iter().filter(|&&a| a).count() * LAZY_START_SHARE > conditions.len() {
        active.fill(true);
    }
    // Infeasible with only conditions that hold for every safe pattern: none is safe.
    let settled = |failed: Failed, own_conditions: bool| match failed {
        Failed::Infeasible if !own_conditions => {
            tracing::info!("suppression: the covering program is infeasible; no pattern is safe");
            Err(Impossible::default())
        }
        _ => Ok(None),
    };
    let (mut pattern, mut active, mut rounds) =
        match solve_lazily(&conditions, active, weight, false, None) {
            Ok(solved) => solved,
            Err(failed) => return settled(failed, false),
        };
    let mut cut_rounds = 0;
    let mut cuts_added = 0;
    // Attacker model (a) first, its cuts fewer and cheaper to find; then the insiders, every pair
    // once. In the first FREE_ROUNDS rounds the program may drop cells it chose, so the whole
    // pattern is audited; after them (and from the insiders' first round) it only adds cells
    // (each chosen cell stays chosen), so a pair once protected stays protected and each round
    // looks again only at the pairs that failed the last.
    let mut with_insiders = false;
    let mut pending: Option<Vec<(usize, Option<u32>)>> = None;
    // The cells cut from outside once the insiders had joined: their insiders are asked once
    // they are protected from outside.
    let mut late: BTreeSet<usize> = BTreeSet::new();
    // The cells the next full audit asks about (every primary cell when `None`).
    let mut only: Option<Vec<usize>> = None;
    // The conditions that keep a chosen cell chosen hold for this pattern only, not for every
    // safe one: the lower bound is solved without them.
    let mut keeps: Vec<bool> = vec![false; conditions.len()];
    let limits_pair = (limits.threshold, limits.min_width);
    let mut kept = vec![false; table.len()];
    let mut evidence = Evidence::default();
    // The pattern the evidence was last added under.
    let mut audited: Option<Vec<bool>> = None;
    let pattern_of = |pattern: &Solution| {
        let mut suppressed = fixed.clone();
        for (&v, &x) in pattern.iter() {
            if let Var::Cell(c) = v
                && x > 0.5
            {
                suppressed[c] = true;
            }
        }
        suppressed
    };
    while cut_rounds < CUT_ROUNDS {
        cut_rounds += 1;
        let suppressed = pattern_of(&pattern);
        if audited.as_ref().is_some_and(|a| !holds(&suppressed, a)) {
            evidence = Evidence::default();
        }
        audited = Some(suppressed.clone());
        let started = std::time::Instant::now();
        let found = match &pending {
            Some(pairs) => Ok(pairs.clone()),
            None => unprotected(&suppressed, with_insiders, only.take().as_deref()).map(|audit| {
                // Certificates name the gEs they do not hold against only when asked for the
                // insiders; under attacker model (a) there are none to name.
                if with_insiders || !insider {
                    for (c, iv, moved) in audit.certified {
                        evidence.certified.insert(c, (iv, moved));
                    }
                }
                audit.open
            }),
        };
        let cuts = match found.and_then(|pairs| {
            tracing::debug!(
                pairs = pairs.len(),
                ms = started.elapsed().as_millis(),
                "suppression: pairs to cut found"
            );
            crate::cuts::cuts(table, &suppressed, &free, &pairs, limits_pair)
        }) {
            Ok(found) => {
                for ((c, h), iv) in found.protected {
                    match h {
                        None => {
                            evidence.outside.insert(c, iv);
                        }
                        Some(h) => {
                            evidence.insiders.insert((c, h));
                        }
                    }
                }
                found.cuts
            }
            Err(e) => {
                tracing::warn!(error = %e, "suppression: the audit of a chosen pattern failed; the rounds decide");
                break;
            }
        };
        // A line per round: on a large crossed table a round takes tens of seconds (550,000
        // rows, herkunft x geschlecht: 12 rounds in 8 minutes), and the steward sees it move on.
        tracing::info!(
            round = cut_rounds,
            insiders = with_insiders,
            cuts = cuts.len(),
            ms = started.elapsed().as_millis(),
            "suppression: covering program, cuts from the audit"
        );
        if cuts.is_empty() {
            if with_insiders && !late.is_empty() {
                // Cells that were protected from outside only after the insiders joined: the
                // audit named no insider for them yet (it asks for a cell's insiders only once it
                // is protected from outside). Their insiders next, in the rounds left.
                only = Some(std::mem::take(&mut late).into_iter().collect());
                pending = None;
                continue;
            }
            if with_insiders || !insider {
                break;
            }
            // Every cell is protected from outside: now the insiders, all pairs once.
            with_insiders = true;
            pending = None;
            continue;
        }
        if with_insiders || cut_rounds > FREE_ROUNDS {
            // From here on the program only adds cells. (In cell order: the order of the rows
            // decides between equally cheap patterns, and the solution's map has none.)
            let mut chosen: Vec<usize> = pattern
                .iter()
                .filter_map(|(&v, &x)| match v {
                    Var::Cell(c) if x > 0.5 && !kept[c] => Some(c),
                    _ => None,
                })
                .collect();
            chosen.sort_unstable();
            for c in chosen {
                kept[c] = true;
                conditions.push(Condition {
                    terms: vec![(Var::Cell(c), 1.0)],
                    rhs: 1.0,
                });
                active.push(true);
                keeps.push(true);
            }
            let mut pairs: Vec<(usize, Option<u32>)> = cuts.iter().map(|c| c.0).collect();
            pairs.dedup();
            pending = Some(pairs);
        }
        if insider && !with_insiders && cut_rounds >= OUTSIDE_ROUNDS {
            // The pairs left from outside stay in the audit, which now asks for the insiders too.
            with_insiders = true;
            pending = None;
        }
        if with_insiders {
            late.extend(cuts.iter().filter(|c| c.0.1.is_none()).map(|c| c.0.0));
        }
        cuts_added += cuts.len();
        for (_, cut) in cuts {
            conditions.push(Condition {
                terms: cut
                    .terms
                    .into_iter()
                    .map(|(c, k)| (Var::Cell(c), k))
                    .collect(),
                rhs: cut.rhs,
            });
            active.push(true);
            keeps.push(false);
        }
        // The last program's dual bound stays a bound: this one only has more conditions.
        let start = Some((&pattern.values, pattern.bound));
        let (p, a, r) = match solve_lazily(&conditions, active, weight, false, start) {
            Ok(solved) => solved,
            Err(failed) => return settled(failed, keeps.iter().any(|&k| k)),
        };
        (pattern, active, rounds) = (p, a, rounds + r);
    }
    let (valid, valid_active): (Vec<Condition>, Vec<bool>) = conditions
        .iter()
        .zip(&active)
        .zip(&keeps)
        .filter(|(_, keep)| !**keep)
        .map(|((c, &a), _)| (c.clone(), a))
        .unzip();
    // The bound is the optimum of the count program's linear relaxation, rounded up. The integer
    // program's dual bound was at most 3 cells higher on the benchmark tables (228 vs 225 on the
    // committed sample, 577 vs 574 at 200,000 rows) and cost up to 9 s at 500,000 rows, against
    // 0.2 s for the relaxation.
    let Ok((bound_point, _, bound_rounds)) = solve_lazily(&valid, valid_active, count, true, None)
    else {
        return Ok(None);
    };
    let mut chosen: Vec<usize> = pattern
        .iter()
        .filter_map(|(&v, &x)| match v {
            Var::Cell(c) if x > 0.5 => Some(c),
            _ => None,
        })
        .collect();
    chosen.sort_unstable();
    let bound = bound_point.bound;
    // The evidence holds for the chosen pattern if it holds every pattern it was found under.
    let chosen_pattern = pattern_of(&pattern);
    let proven = if audited.is_some_and(|a| holds(&chosen_pattern, &a)) {
        evidence.proven(table, insider)
    } else {
        Vec::new()
    };
    debug_assert!(
        helpers
            >= pattern
                .keys()
                .filter(|v| matches!(v, Var::Helper(_)))
                .count()
    );
    let lower_bound = (bound - 1e-6).ceil().max(0.0) as usize;
    tracing::info!(
        variables = pattern.len(),
        conditions = conditions.len(),
        chosen = chosen.len(),
        lower_bound,
        rounds,
        bound_rounds,
        cut_rounds,
        cuts_added,
        proven = proven.len(),
        "suppression: covering program solved"
    );
    Ok(Some(Cover {
        chosen,
        lower_bound,
        proven,
    }))
}

/// Does pattern `a` suppress every cell that `b` does?
fn holds(a: &[bool], b: &[bool]) -> bool {
    a.iter().zip(b).all(|(&x, &y)| x || !y)
}

/// The conditions being collected.
struct Program<'a> {
    table: &'a Table,
    primary: &'a [bool],
    fixed: &'a [bool],
    free: &'a [bool],
    conditions: Vec<Condition>,
    helpers: usize,
    /// Fixed cells with a condition that cannot be met, each with the interval its relation
    /// narrows it to at least.
    hopeless: HashMap<usize, Interval>,
    /// Free cells with a condition that cannot be met: no safe pattern suppresses them.
    unusable: Vec<usize>,
}

impl Program<'_> {
    fn hidden(&self, c: usize) -> bool {
        self.fixed[c] || self.free[c]
    }

    /// The conditions one relation sets.
    fn relation(&mut self, s: &Sum, limits: Limits, insider: bool) {
        let table = self.table;
        let cells: Vec<usize> = s.parts.iter().copied().chain([s.total]).collect();
        if !cells.iter().any(|&c| self.hidden(c)) {
            return;
        }
        // The insider conditions hold as written where each gE owns at most one cell of the
        // relation (true of every report relation); elsewhere only the outsider's are set.
        let mut owned: HashMap<u32, usize> = HashMap::new();
        for &c in &cells {
            if let Some(o) = table.owner_of(c) {
                *owned.entry(o).or_default() += 1;
            }
        }
        let insider = insider && owned.values().all(|&n| n == 1);
        for &c in &cells {
            // An atom may be known, and a group of people that is not small; a cell that is
            // neither chosen nor suppressed needs nothing.
            if !self.hidden(c) || table.may_be_known(c, limits.threshold) {
                continue;
            }
            let by_insider = insider && self.primary[c] && table.owner_of(c).is_some();
            // (1) Not alone: another hidden cell, and under the insider model one that no other
            // single gE knows, or two of two other gEs.
            let alone = |d: usize| -> f64 {
                let other_ge =
                    table.owner_of(d).is_some() && table.owner_of(d) != table.owner_of(c);
                if by_insider && !other_ge { 2.0 } else { 1.0 }
            };
            let need = if by_insider { 2.0 } else { 1.0 };
            self.push(c, &cells, need, alone, None, None);
            // (2) Room to move: a primary part must be able to rise to the threshold and span the
            // width. In this relation alone that needs the total hidden, or other hidden parts
            // that can fall as far (each down to its floor); the other relations only narrow
            // it further, so the condition is necessary.
            if self.primary[c] && c != s.total {
                let v = table.values[c] as f64;
                let rise =
                    (limits.threshold as f64).max(table.floor(c) + limits.min_width as f64) - v;
                if rise <= 0.0 {
                    continue;
                }
                let room = |d: usize| -> f64 {
                    if d == s.total {
                        rise
                    } else {
                        (table.values[d] as f64 - table.floor(d)).clamp(0.0, rise)
                    }
                };
                let insiders: Vec<usize> = if by_insider {
                    cells
                        .iter()
                        .copied()
                        .filter(|&d| {
                            d != c
                                && self.hidden(d)
                                && room(d) > 0.0
                                && table.owner_of(d).is_some()
                                && table.owner_of(d) != table.owner_of(c)
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                self.push(c, &cells, rise, room, Some(&insiders), Some(v));
            }
        }
    }

    /// `sum over the other hidden cells d of coef(d) * x_d >= need * x_c`, with fixed cells moved
    /// to the right. With `insiders`, minus the largest share a single one of those cells' gEs
    /// knows: a helper `z >= coef(d) * x_d` for each, and `sum - z >= need * x_c`. `rises_from`
    /// is the cell's value when the condition is its room to rise (`None`: not to be alone); a
    /// fixed cell whose condition cannot be met is hopeless.
    fn push(
        &mut self,
        c: usize,
        cells: &[usize],
        need: f64,
        coef: impl Fn(usize) -> f64,
        insiders: Option<&[usize]>,
        rises_from: Option<f64>,
    ) {
        let others: Vec<usize> = cells
            .iter()
            .copied()
            .filter(|&d| d != c && self.hidden(d) && coef(d) > 0.0)
            .collect();
        let given: f64 = others
            .iter()
            .filter(|&&d| self.fixed[d])
            .map(|&d| coef(d))
            .sum();
        let mut terms: Vec<(Var, f64)> = others
            .iter()
            .filter(|&&d| self.free[d])
            .map(|&d| (Var::Cell(d), coef(d)))
            .collect();
        let reach = given + terms.iter().map(|t| t.1).sum::<f64>();
        let insiders = insiders.unwrap_or(&[]);
        // The left side is least with nothing chosen (each chosen cell adds at least what the
        // helper grows by) and largest with everything chosen.
        let known_fixed = insiders
            .iter()
            .filter(|&&d| self.fixed[d])
            .map(|&d| coef(d))
            .fold(0.0, f64::max);
        let most_known = insiders.iter().map(|&d| coef(d)).fold(0.0, f64::max);
        if given - known_fixed >= need {
            return;
        }
        if self.fixed[c] {
            if reach - most_known < need {
                // Never met, whatever is chosen: with its relation's other cells all suppressed,
                // the cell still cannot rise far enough, or stays alone (to an insider).
                let shown = rises_from.map_or_else(
                    || {
                        let v = self.table.values[c] as f64;
                        Interval {
                            lower: v,
                            upper: Some(v),
                        }
                    },
                    |v| Interval {
                        lower: self.table.floor(c),
                        upper: Some(v + (reach - most_known).max(0.0)),
                    },
                );
                self.hopeless.entry(c).or_insert(shown);
                return;
            }
        } else {
            if reach - most_known < need {
                self.unusable.push(c);
            }
            terms.push((Var::Cell(c), -need));
        }
        let rhs = if self.fixed[c] { need - given } else { -given };
        if insiders.is_empty() {
            self.conditions.push(Condition { terms, rhs });
            return;
        }
        let z = Var::Helper(self.helpers);
        self.helpers += 1;
        for &d in insiders {
            let row = if self.fixed[d] {
                Condition {
                    terms: vec![(z, 1.0)],
                    rhs: coef(d),
                }
            } else {
                Condition {
                    terms: vec![(z, 1.0), (Var::Cell(d), -coef(d))],
                    rhs: 0.0,
                }
            };
            self.conditions.push(row);
        }
        terms.push((z, -1.0));
        self.conditions.push(Condition { terms, rhs });
    }
}

/// Conditions join lazily only while fewer than one in this many are in the program at the start
/// ...
const LAZY_START_SHARE: usize = 10;

/// ... and while the program has at most this many variables: a round is cheap only while the
/// program is small (generated 500,000 rows: 74 rounds of about 3,000 variables took 32 s, the
/// whole program at once 8 s); beyond it all conditions join at once.
const LAZY_MAX_VARIABLES: usize = 1_000;

/// A solution of the covering program: each variable's value (a variable of no condition in the
/// program is 0) and the solver's dual bound.
struct Solution {
    values: HashMap<Var, f64>,
    bound: f64,
}

impl std::ops::Deref for Solution {
    type Target = HashMap<Var, f64>;

    fn deref(&self) -> &Self::Target {
        &self.values
    }
}

/// Minimises `sum(weight * x)` under the `active` conditions, and adds every other condition
/// that the solution breaks until it breaks none (all of them once the program is large): then the solution is one of the whole program
/// (it meets every condition and no cheaper one meets even the active ones), and each round's
/// dual bound a lower bound of the whole program's optimum (fewer conditions can only lower it).
/// Returns the solution, the conditions it ended with, and the number of rounds.
fn solve_lazily(
    conditions: &[Condition],
    mut active: Vec<bool>,
    weight: impl Fn(Var) -> f64 + Copy,
    relax: bool,
    start: Option<(&HashMap<Var, f64>, f64)>,
) -> Result<(Solution, Vec<bool>, usize), Failed> {
    let mut last: Option<HashMap<Var, f64>> = start.map(|s| s.0.clone());
    // A lower bound on the program's optimum: each round's conditions include the last one's.
    let mut known_bound: Option<f64> = start.map(|s| s.1);
    let mut rounds = 0;
    // A condition not in the program can break only if its right side is above 0 or one of its
    // negative terms is positive (every variable is at least 0): each round looks at the
    // conditions of the variables the solution made positive, not at every condition (5.5 M
    // rows: 17,471 conditions of up to 400 terms, about 13 ms a round, 160 rounds).
    let mut set_by: HashMap<Var, Vec<usize>> = HashMap::new();
    let mut above_zero = Vec::new();
    for (i, c) in conditions.iter().enumerate() {
        if c.rhs > 0.0 {
            above_zero.push(i);
        }
        for &(v, k) in &c.terms {
            if k < 0.0 {
                set_by.entry(v).or_default().push(i);
            }
        }
    }
    loop {
        rounds += 1;
        let program: Vec<&Condition> = conditions
            .iter()
            .zip(&active)
            .filter_map(|(c, &a)| a.then_some(c))
            .collect();
        let mut vars: Vec<Var> = program
            .iter()
            .flat_map(|c| c.terms.iter().map(|t| t.0))
            .collect();
        vars.sort_unstable();
        vars.dedup();
        let (point, bound) = if program.is_empty() {
            (Vec::new(), 0.0)
        } else {
            solve(&vars, &program, weight, relax, last.as_ref(), known_bound)?
        };
        known_bound = Some(known_bound.map_or(bound, |b| b.max(bound)));
        let values: HashMap<Var, f64> = vars.into_iter().zip(point).collect();
        let mut may_break: Vec<usize> = values
            .iter()
            .filter(|&(_, &x)| x > 0.0)
            .filter_map(|(v, _)| set_by.get(v))
            .flatten()
            .chain(&above_zero)
            .copied()
            .filter(|&i| !active[i])
            .collect();
        may_break.sort_unstable();
        may_break.dedup();
        let mut broken = false;
        for i in may_break {
            let c = &conditions[i];
            let lhs: f64 = c
                .terms
                .iter()
                .map(|(v, k)| k * values.get(v).copied().unwrap_or(0.0))
                .sum();
            if lhs < c.rhs - 1e-6 {
                active[i] = true;
                broken = true;
            }
        }
        if !broken {
            return Ok((Solution { values, bound }, active, rounds));
        }
        if values.len() > LAZY_MAX_VARIABLES {
            active.fill(true);
        }
        last = Some(values);
    }
}

/// Why the solver gave no pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    /// Proved infeasible: no 0/1 point meets the conditions.
    Infeasible,
    /// No point found within the limits, or the solver failed.
    NoSolution,
}

/// Minimises `sum(weight * x)` over 0/1 `x` under the conditions: the point and the dual bound.
fn solve(
    vars: &[Var],
    conditions: &[&Condition],
    weight: impl Fn(Var) -> f64,
    relax: bool,
    start: Option<&HashMap<Var, f64>>,
    known_bound: Option<f64>,
) -> Result<(Vec<f64>, f64), Failed> {
    let mut pb = RowProblem::default();
    let cols: HashMap<Var, highs::Col> = vars
        .iter()
        .map(|&v| {
            let col = match v {
                Var::Cell(_) => pb.add_integer_column(weight(v), 0.0..=1.0),
                Var::Helper(_) => pb.add_column(weight(v), 0.0..),
            };
            (v, col)
        })
        .collect();
    for cond in conditions {
        let terms: Vec<(highs::Col, f64)> =
            cond.terms.iter().map(|&(c, k)| (cols[&c], k)).collect();
        pb.add_row(cond.rhs.., terms);
    }
    let mut model = pb.optimise(Sense::Minimise);
    crate::lp::single_threaded_quiet(&mut model);
    if !relax
        && let Some(start) = start
        && let Some(point) = repaired(vars, conditions, &weight, start)
    {
        // A pattern that meets every condition and is already within the gap of a bound on the
        // optimum is what the search would stop at (0.5 M rows: the insiders' last rounds each
        // add one cut, and each program took about 1 s to confirm the repaired start).
        let cost: f64 = vars.iter().zip(&point).map(|(&v, x)| weight(v) * x).sum();
        if let Some(bound) = known_bound
            && cost - bound <= MIP_GAP * cost.abs()
        {
            tracing::debug!(
                vars = vars.len(),
                rows = conditions.len(),
                "covering program round: the repaired start is within the gap"
            );
            return Ok((point, bound));
        }
        // Else the search starts with it as its incumbent.
        let _ = model.try_set_solution(Some(&point), None, None, None);
    } else if !relax {
        // Without an incumbent, HiGHS's feasibility jump heuristic searches from nothing before
        // the root's linear program: at 550,000 rows it spent 1.3 s of the first full program's
        // 2.0 s to find a pattern 3.5x the optimum's cost, which the root then found at once.
        // From a repaired start (the later programs) it is what finds the pattern within the gap,
        // so it stays on there.
        model.set_option("mip_heuristic_run_feasibility_jump", false);
    }
    model.set_option("mip_max_nodes", NODE_LIMIT);
    if relax {
        model.set_option("solve_relaxation", true);
    }
    model.set_option("time_limit", TIME_GUARD_SECONDS);
    let t0 = std::time::Instant::now();
    model.set_option("mip_rel_gap", MIP_GAP);
    let solved = model.try_solve().map_err(|_| Failed::NoSolution)?;
    let status = solved.status();
    tracing::debug!(
        ms = t0.elapsed().as_millis(),
        vars = vars.len(),
        rows = conditions.len(),
        ?status,
        "covering program round"
    );
    if status == HighsModelStatus::ReachedTimeLimit {
        tracing::warn!(
            "the covering program reached its time guard: this table's pattern may differ between runs"
        );
    }
    let stopped = matches!(
        status,
        HighsModelStatus::Optimal
            | HighsModelStatus::ReachedTimeLimit
            | HighsModelStatus::ReachedIterationLimit
            | HighsModelStatus::ReachedSolutionLimit
    );
    if status == HighsModelStatus::Infeasible {
        return Err(Failed::Infeasible);
    }
    if !stopped || solved.primal_solution_status() != HighsSolutionStatus::Feasible {
        return Err(Failed::NoSolution);
    }
    let bound = if relax {
        solved.objective_value()
    } else {
        solved
            .double_info_value(c"mip_dual_bound")
            .map_err(|_| Failed::NoSolution)?
    };
    let point = solved.get_solution().columns().to_vec();
    if point.len() != vars.len() {
        return Err(Failed::NoSolution);
    }
    Ok((point, bound))
}

/// The last solution `start`, on `vars`, with cells added until it meets every condition: each
/// broken condition gets its cheapest free cell (per unit it adds) that is not chosen yet, and each
/// helper is as large as its conditions need. A chosen cell may break conditions of its own; they
/// are met in the next pass. `None` when a condition cannot be met that way.
fn repaired(
    vars: &[Var],
    conditions: &[&Condition],
    weight: &impl Fn(Var) -> f64,
    start: &HashMap<Var, f64>,
) -> Option<Vec<f64>> {
    let mut x: HashMap<Var, f64> = vars
        .iter()
        .map(|&v| {
            let value = start.get(&v).copied().unwrap_or(0.0);
            (
                v,
                if matches!(v, Var::Cell(_)) {
                    value.round()
                } else {
                    0.0
                },
            )
        })
        .collect();
    let lhs = |x: &HashMap<Var, f64>, c: &Condition| -> f64 {
        c.terms.iter().map(|(v, k)| k * x[v]).sum()
    };
    for _ in 0..=vars.len() {
        // Helpers: as small as their own conditions allow (they only ever lower the others).
        let mut helper: HashMap<Var, f64> = HashMap::new();
        for c in conditions {
            if let [(z @ Var::Helper(_), k)] = c.terms.as_slice() {
                let need = c.rhs / k;
                let h = helper.entry(*z).or_insert(0.0);
                *h = h.max(need);
            } else if let [(z @ Var::Helper(_), 1.0), (d @ Var::Cell(_), k)] = c.terms.as_slice() {
                let need = -k * x[d] + c.rhs;
                let h = helper.entry(*z).or_insert(0.0);
                *h = h.max(need);
            }
        }
        for (z, h) in helper {
            x.insert(z, h);
        }
        let mut changed = false;
        for c in conditions {
            if lhs(&x, c) >= c.rhs - 1e-6 {
                continue;
            }
            let best = c
                .terms
                .iter()
                .filter(|&&(v, k)| k > 0.0 && matches!(v, Var::Cell(_)) && x[&v] < 0.5)
                .min_by(|a, b| (weight(a.0) / a.1).total_cmp(&(weight(b.0) / b.1)))?;
            x.insert(best.0, 1.0);
            changed = true;
        }
        if !changed {
            return Some(vars.iter().map(|v| x[v]).collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::NOBODY;

    const LIMITS_OUT: Limits = Limits {
        threshold: 3,
        min_width: 2,
        insider: false,
    };
    const LIMITS_IN: Limits = Limits {
        insider: true,
        ..LIMITS_OUT
    };

    /// RD(60) = g1(1) + g2(9) + g3(50): g1 is primary.
    fn rd(owners: bool) -> Table {
        Table {
            values: vec![60, 1, 9, 50],
            rank: vec![2, 0, 0, 0],
            sums: vec![Sum {
                total: 0,
                parts: vec![1, 2, 3],
            }],
            owner: if owners {
                vec![NOBODY, 1, 2, 3]
            } else {
                vec![]
            },
            district: if owners { vec![0; 4] } else { vec![] },
            ..Table::default()
        }
    }

    #[test]
    fn a_cell_its_relation_cannot_hide_makes_the_table_impossible_at_once() {
        let primary = [false, true, false, false];
        // The RD and g3 must stay published: g2 (9) can fall to 1, so g1 can rise to 9, which
        // protects it.
        let mut t = rd(false);
        t.keep_published = vec![true, false, false, true];
        assert!(cover(&t, &primary, LIMITS_OUT).unwrap().is_some());
        // g2 too: g1 stays alone, known exactly.
        t.keep_published = vec![true, false, true, true];
        let impossible = cover(&t, &primary, LIMITS_OUT).unwrap_err();
        assert_eq!(
            impossible.cells,
            vec![(
                1,
                Interval {
                    lower: 1.0,
                    upper: Some(1.0)
                }
            )]
        );
        // g2 is 2 instead of 9 and may be suppressed: g1 can rise by 1 only, to 2 < 3.
        let mut t = rd(false);
        t.values = vec![53, 1, 2, 50];
        t.keep_published = vec![true, false, false, true];
        let primary = [false, true, true, false];
        let impossible = cover(&t, &primary, LIMITS_OUT).unwrap_err();
        assert_eq!(
            impossible.cells,
            vec![
                (
                    1,
                    Interval {
                        lower: 1.0,
                        upper: Some(2.0)
                    }
                ),
                (
                    2,
                    Interval {
                        lower: 1.0,
                        upper: Some(2.0)
                    }
                )
            ]
        );
        // Without the cells kept published, the RD's total hides them.
        t.keep_published.clear();
        assert!(cover(&t, &primary, LIMITS_OUT).unwrap().is_some());
    }

    #[test]
    fn a_repaired_start_meets_every_condition_with_the_cheapest_cells() {
        let cond = |terms: &[(Var, f64)], rhs: f64| Condition {
            terms: terms.to_vec(),
            rhs,
        };
        let (x0, x1, x2, x3, z) = (
            Var::Cell(0),
            Var::Cell(1),
            Var::Cell(2),
            Var::Cell(3),
            Var::Helper(0),
        );
        // A cut forces cell 0; cell 0 then needs cell 1 or 2; the insider condition needs more
        // than the largest share one insider knows (cell 3 alone is not enough).
        let conditions = [
            cond(&[(x0, 1.0)], 1.0),
            cond(&[(x1, 1.0), (x2, 1.0), (x0, -1.0)], 0.0),
            cond(&[(z, 1.0), (x3, -2.0)], 0.0),
            cond(&[(x2, 2.0), (x3, 2.0), (z, -1.0), (x0, -2.0)], 0.0),
        ];
        let refs: Vec<&Condition> = conditions.iter().collect();
        let vars = [x0, x1, x2, x3, z];
        let weight = |v: Var| match v {
            Var::Cell(c) => 1.0 + c as f64,
            Var::Helper(_) => 0.0,
        };
        let start = HashMap::from([(x3, 1.0)]);
        let point = repaired(&vars, &refs, &weight, &start).expect("repairable");
        let at: HashMap<Var, f64> = vars.iter().copied().zip(point.iter().copied()).collect();
        for c in &conditions {
            let lhs: f64 = c.terms.iter().map(|(v, k)| k * at[v]).sum();
            assert!(lhs >= c.rhs - 1e-9, "{c:?} broken by {at:?}");
        }
        assert!(at[&x0] > 0.5);
        assert!(
            at[&x2] > 0.5,
            "cell 2 is the only partner the insider condition accepts"
        );
        assert!(at[&x3] > 0.5, "the start's cell stays");
        // A condition no cell can meet: no start.
        let stuck = [cond(&[(x0, 1.0)], 1.0), cond(&[(x0, -1.0)], 0.0)];
        let refs: Vec<&Condition> = stuck.iter().collect();
        assert!(repaired(&[x0], &refs, &weight, &HashMap::new()).is_none());
    }

    #[test]
    fn the_cheapest_partner_covers_a_primary_cell() {
        let t = rd(false);
        let primary = [false, true, false, false];
        let c = cover(&t, &primary, LIMITS_OUT).unwrap().unwrap();
        assert_eq!(
            c.chosen,
            vec![2],
            "the small gE, not the RD or the large gE"
        );
        assert_eq!(c.lower_bound, 1);
    }

    #[test]
    fn under_the_insider_model_one_partner_of_another_ge_is_not_enough() {
        let t = rd(true);
        let primary = [false, true, false, false];
        let c = cover(&t, &primary, LIMITS_IN).unwrap().unwrap();
        // g2 alone would do for an outsider, but g2 knows its 9 and computes g1: the RD total
        // (cheaper here than the two other gEs together) hides g1 from every single gE.
        assert_eq!(c.chosen, vec![0]);
        assert_eq!(c.lower_bound, 1, "one RD total would do");
    }

    #[test]
    fn a_chosen_cell_needs_a_partner_too() {
        // T(10) = a(1) + b(4) + c(5), and b = b1(2) + b2(2): a primary, b1 and b2 primary.
        let t = Table {
            values: vec![10, 1, 4, 5, 2, 2],
            rank: vec![2, 1, 1, 1, 0, 0],
            sums: vec![
                Sum {
                    total: 0,
                    parts: vec![1, 2, 3],
                },
                Sum {
                    total: 2,
                    parts: vec![4, 5],
                },
            ],
            ..Table::default()
        };
        let primary = [false, true, false, false, true, true];
        let c = cover(&t, &primary, LIMITS_OUT).unwrap().unwrap();
        // Every relation with a suppressed cell has two: {a, b} in the first covers both.
        for s in &t.sums {
            let cells: Vec<usize> = s.parts.iter().copied().chain([s.total]).collect();
            let hidden = cells
                .iter()
                .filter(|&&x| primary[x] || c.chosen.contains(&x))
                .count();
            assert!(hidden != 1, "{:?} leaves one cell of {cells:?}", c.chosen);
        }
        assert_eq!(c.chosen, vec![2], "b alone covers a, and b1 + b2 = b");
    }

    #[test]
    fn a_certificate_proves_a_cell_against_insiders_only_with_each_ge_it_moves_shown_apart() {
        let t = rd(true);
        let iv = Interval {
            lower: 1.0,
            upper: Some(4.0),
        };
        let cells = |p: Vec<(usize, Interval)>| p.into_iter().map(|p| p.0).collect::<Vec<_>>();
        let mut e = Evidence::default();
        // g1's cell, certified by a table that moves g2's and g3's cells; the RD's cell, which no
        // gE owns, by one that moves g2's.
        e.certified.insert(1, (iv, vec![2, 3]));
        e.certified.insert(0, (iv, vec![2]));
        e.outside.insert(2, iv);
        assert_eq!(cells(e.proven(&t, true)), vec![0]);
        e.insiders.insert((1, 2));
        assert_eq!(cells(e.proven(&t, true)), vec![0]);
        e.insiders.insert((1, 3));
        assert_eq!(cells(e.proven(&t, true)), vec![0, 1]);
        // From outside only, what the exact programs showed counts as well.
        assert_eq!(cells(e.proven(&t, false)), vec![0, 1, 2]);
        // Evidence carries over to a pattern only if it suppresses every cell it did.
        assert!(holds(&[true, true, false], &[true, false, false]));
        assert!(!holds(&[true, false, true], &[true, true, false]));
    }

    /// RD = g1 + g2 per category, and total = c1 + c2 per area: 9 cells, values of the gEs given.
    fn grid(g: [[u64; 2]; 2]) -> Table {
        let cell = |a: usize, c: usize| a * 3 + c;
        let mut values = vec![0; 9];
        for a in 0..2 {
            for c in 0..2 {
                values[cell(a, c)] = g[a][c];
            }
        }
        for c in 0..2 {
            values[cell(2, c)] = g[0][c] + g[1][c];
        }
        for a in 0..3 {
            values[cell(a, 2)] = values[cell(a, 0)] + values[cell(a, 1)];
        }
        let mut sums = Vec::new();
        for c in 0..3 {
            sums.push(Sum {
                total: cell(2, c),
                parts: vec![cell(0, c), cell(1, c)],
            });
        }
        for a in 0..3 {
            sums.push(Sum {
                total: cell(a, 2),
                parts: vec![cell(a, 0), cell(a, 1)],
            });
        }
        let rank = (0..9)
            .map(|i| 2 * u8::from(i / 3 == 2) + u8::from(i % 3 == 2))
            .collect();
        Table {
            values,
            rank,
            sums,
            ..Table::default()
        }
    }

    /// [`grid`], with the cells whose bit is set in `keep` kept published.
    fn kept_grid(g: [[u64; 2]; 2], keep: u16) -> Table {
        let mut t = grid(g);
        t.keep_published = (0..t.len()).map(|c| keep & (1 << c) != 0).collect();
        t
    }

    /// Every pattern: the primary cells and each subset of the `free` ones.
    fn every_pattern<'a>(
        primary: &'a [bool],
        free: &'a [usize],
    ) -> impl Iterator<Item = Vec<bool>> + 'a {
        (0u32..(1 << free.len())).map(move |mask| {
            let mut s = primary.to_vec();
            for (i, &x) in free.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    s[x] = true;
                }
            }
            s
        })
    }

    /// Is the pattern safe: every primary cell protected, no secondary cell exactly known?
    fn safe(t: &Table, suppressed: &[bool], primary: &[bool]) -> bool {
        let hidden: Vec<usize> = (0..t.len()).filter(|&c| suppressed[c]).collect();
        let ivs = crate::audit::intervals(t, suppressed, &hidden, None).unwrap();
        hidden.iter().zip(ivs).all(|(&c, iv)| {
            if primary[c] {
                iv.protects(3, 2)
            } else {
                iv.upper.is_none_or(|u| u - iv.lower > 1e-6)
            }
        })
    }

    /// Does the pattern protect every primary cell of the other gE against gE `h`, which knows
    /// its own cells?
    fn safe_against(t: &Table, suppressed: &[bool], primary: &[bool], h: u32) -> bool {
        let unknown: Vec<bool> = (0..t.len())
            .map(|c| suppressed[c] && t.owner_of(c) != Some(h))
            .collect();
        let targets: Vec<usize> = (0..t.len())
            .filter(|&c| primary[c] && unknown[c] && t.owner_of(c).is_some())
            .collect();
        let ivs = crate::audit::intervals(t, &unknown, &targets, None).unwrap();
        ivs.iter().all(|iv| iv.protects(3, 2))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The bound, with the audit's cuts, is a real lower bound: no safe pattern, found by
        /// trying every one, has fewer secondary cells. And the pattern `protect` builds from the cover is safe and no
        /// smaller than the bound. With cells that must stay published (`keep`, one bit per
        /// cell), a table the program calls impossible has no safe pattern at all.
        #[test]
        fn the_bound_is_below_every_safe_pattern(
            g in proptest::array::uniform2(proptest::array::uniform2(0u64..7)),
            keep in proptest::prop_oneof![proptest::strategy::Just(0u16), 0u16..512],
        ) {
            let t = kept_grid(g, keep);
            let primary: Vec<bool> = (0..t.len()).map(|c| t.is_primary(c, 3)).collect();
            proptest::prop_assume!(primary.iter().any(|&p| p));
            let free: Vec<usize> = (0..t.len()).filter(|&x| !primary[x] && t.may_suppress(x)).collect();
            let least = every_pattern(&primary, &free)
                .filter(|s| safe(&t, s, &primary))
                .map(|s| s.iter().zip(&primary).filter(|&(&x, &p)| x && !p).count())
                .min();
            // With cuts from an exact audit of each chosen pattern: the cuts hold for every safe
            // pattern, so the bound must stay below them all.
            let cells: Vec<usize> = (0..t.len()).filter(|&x| primary[x]).collect();
            let covered = cover_audited(&t, &primary, LIMITS_OUT, |s, _, _| {
                let exact = crate::audit::certify_exact(&t, s, &cells, 3, 2)?;
                let open = cells.iter().zip(exact).filter(|(_, e)| !e.1).map(|(&x, _)| (x, None)).collect();
                Ok(Audited { open, certified: Vec::new() })
            });
            let c = match covered {
                Err(impossible) => {
                    proptest::prop_assert!(least.is_none(), "called impossible, yet a pattern with {least:?} secondary cells is safe");
                    // Each cell named is narrowed at least as far as said, with every cell that
                    // may be suppressed suppressed.
                    let most: Vec<bool> = (0..t.len()).map(|x| primary[x] || t.may_suppress(x)).collect();
                    for (x, iv) in impossible.cells {
                        proptest::prop_assert!(!iv.protects(3, 2));
                        let f = crate::audit::intervals(&t, &most, &[x], None).unwrap()[0];
                        proptest::prop_assert!(f.lower >= iv.lower - 1e-6 && iv.upper.is_some_and(|u| f.upper.is_some_and(|v| v <= u + 1e-6)), "cell {x}: {f:?} outside {iv:?}");
                    }
                    return Ok(());
                }
                Ok(None) => return Ok(()),
                Ok(Some(c)) => c,
            };
            // What the loop's exact programs showed protected is protected under the chosen
            // pattern, by an interval within the cell's feasible one.
            let mut chosen = primary.clone();
            for &x in &c.chosen {
                chosen[x] = true;
            }
            let shown: Vec<usize> = c.proven.iter().map(|p| p.0).collect();
            let feasible = crate::audit::intervals(&t, &chosen, &shown, None).unwrap();
            for (&(x, iv), f) in c.proven.iter().zip(feasible) {
                proptest::prop_assert!(iv.protects(3, 2), "cell {x}: {iv:?}");
                proptest::prop_assert!(iv.lower >= f.lower - 1e-6, "cell {x}: {iv:?} outside {f:?}");
                proptest::prop_assert!(f.upper.is_none_or(|u| iv.upper.is_some_and(|v| v <= u + 1e-6)), "cell {x}: {iv:?} outside {f:?}");
            }
            if let Some(least) = least {
                proptest::prop_assert!(c.lower_bound <= least, "bound {} above the least safe pattern {least}", c.lower_bound);
                let p = crate::suppress::protect(&t, crate::suppress::Params { threshold: 3, min_width: 2, insider: false }).unwrap();
                proptest::prop_assert!(safe(&t, &p.suppressed, &primary));
                let secondary = (0..t.len()).filter(|&x| p.suppressed[x] && !primary[x]).count();
                proptest::prop_assert!(secondary >= c.lower_bound);
            }
        }

        /// Under the insider model too (each gE knows its own cells), a table the program calls
        /// impossible has no pattern that protects every primary cell from outside and against
        /// the other gE.
        #[test]
        fn an_impossible_table_has_no_safe_pattern_against_insiders(
            g in proptest::array::uniform2(proptest::array::uniform2(0u64..7)),
            keep in proptest::prop_oneof![proptest::strategy::Just(0u16), 0u16..512],
        ) {
            let mut t = kept_grid(g, keep);
            t.owner = (0..t.len())
                .map(|c| if c / 3 == 2 { NOBODY } else { (c / 3) as u32 })
                .collect();
            t.district = vec![0; t.len()];
            let primary: Vec<bool> = (0..t.len()).map(|c| t.is_primary(c, 3)).collect();
            proptest::prop_assume!(primary.iter().any(|&p| p));
            let Err(impossible) = cover(&t, &primary, LIMITS_IN) else {
                return Ok(());
            };
            let free: Vec<usize> = (0..t.len()).filter(|&x| !primary[x] && t.may_suppress(x)).collect();
            for s in every_pattern(&primary, &free) {
                let safe_all = safe(&t, &s, &primary) && (0..2).all(|h| safe_against(&t, &s, &primary, h));
                proptest::prop_assert!(!safe_all, "called impossible ({:?}), yet {s:?} is safe", impossible.cells);
            }
        }
    }
}
