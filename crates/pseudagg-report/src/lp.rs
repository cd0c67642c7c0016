//! The linear programs of the audit, on HiGHS.
//!
//! One HiGHS instance holds one linear system (a component of the table, or a neighbourhood of a
//! cell); each bound of a cell only changes the objective and the sense and re-solves from the
//! last basis, which after the first solve usually takes a handful of simplex iterations. microlp,
//! the solver before, had to rebuild and solve every program from scratch.

use highs::{HighsModelStatus, Model, RowProblem, Sense};

/// `terms op rhs`: the relations of a linear system over its variables `0..n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Le,
    Ge,
}

/// Which end of a cell's interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Lower,
    Upper,
}

/// A linear system whose variables are suppressed counts (each at least its floor: 1 for a
/// published table's cell, 0 for one never published), ready to bound one variable after another.
pub(crate) struct Lp {
    model: Option<Model>,
    /// The system, kept to build a fresh instance when a warm start ends undecided.
    rows: Vec<Row>,
    floors: Vec<f64>,
    cols: Vec<highs::Col>,
    /// The variable whose cost is 1 now.
    objective: Option<usize>,
    /// A variable held at most at a value (see [`Lp::cap`]).
    capped: Option<(usize, f64)>,
}

impl std::fmt::Debug for Lp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lp")
            .field("vars", &self.cols.len())
            .field("objective", &self.objective)
            .finish_non_exhaustive()
    }
}

impl Lp {
    /// One variable per floor, variable `v` in `[floors[v], ∞)`, under `rows`.
    pub fn new<'a>(
        floors: Vec<f64>,
        rows: impl IntoIterator<Item = (&'a [(usize, f64)], Op, f64)>,
    ) -> Self {
        let rows: Vec<Row> = rows
            .into_iter()
            .map(|(t, o, r)| (t.to_vec(), o, r))
            .collect();
        let (mut model, cols) = Self::build(&floors, &rows, None, false);
        // Each bound changes only the objective: the last optimal basis stays feasible, and
        // primal simplex goes on from it (committed sample: the secondary cells' intervals
        // 2.1 s -> 0.6 s, the same intervals).
        model.set_option("simplex_strategy", 4);
        Self {
            model: Some(model),
            rows,
            floors,
            cols,
            objective: None,
            capped: None,
        }
    }

    /// Holds variable `var` at most at `cap`, or, with `None`, frees it again (one variable at a
    /// time): a capped maximum is bounded, and its point shows the cap reached.
    pub fn cap(&mut self, var: usize, cap: Option<f64>) {
        let floor = self.floors[var];
        if let Some(model) = self.model.as_mut() {
            match cap {
                Some(c) => model.change_column_bounds(self.cols[var], floor..=c.max(floor)),
                None => model.change_column_bounds(self.cols[var], floor..),
            }
        }
        self.capped = cap.map(|c| (var, c.max(floor)));
    }

    /// A HiGHS instance for the system, with `objective` (if any) at cost 1.
    fn build(
        floors: &[f64],
        rows: &[Row],
        objective: Option<usize>,
        presolve: bool,
    ) -> (Model, Vec<highs::Col>) {
        let mut pb = RowProblem::default();
        let cols: Vec<highs::Col> = floors
            .iter()
            .enumerate()
            .map(|(v, &floor)| pb.add_column(if objective == Some(v) { 1.0 } else { 0.0 }, floor..))
            .collect();
        for (terms, op, rhs) in rows {
            let terms: Vec<(highs::Col, f64)> = terms.iter().map(|&(v, c)| (cols[v], c)).collect();
            add_row(&mut pb, &terms, *op, *rhs);
        }
        (instance(pb, presolve), cols)
    }

    /// The smallest or largest value of `var`, and a point that reaches it; `None` when unbounded.
    pub fn bound(&mut self, var: usize, end: End) -> Result<Option<(f64, Vec<f64>)>, String> {
        let sense = match end {
            End::Lower => Sense::Minimise,
            End::Upper => Sense::Maximise,
        };
        let mut model = self
            .model
            .take()
            .ok_or("the linear program failed before")?;
        if self.objective != Some(var) {
            if let Some(old) = self.objective {
                model.change_column_cost(self.cols[old], 0.0);
            }
            model.change_column_cost(self.cols[var], 1.0);
            self.objective = Some(var);
        }
        model.set_sense(sense);
        let mut solved = model
            .try_solve()
            .map_err(|e| format!("the linear program failed: {e:?}"))?;
        if !matches!(
            solved.status(),
            HighsModelStatus::Optimal
                | HighsModelStatus::Unbounded
                | HighsModelStatus::UnboundedOrInfeasible
                | HighsModelStatus::ModelEmpty
        ) {
            // A warm start that ends undecided (HiGHS says `Unknown`, rarely, on degenerate
            // systems) is solved again from scratch, with presolve.
            let (mut fresh, cols) = Self::build(&self.floors, &self.rows, Some(var), true);
            if let Some((v, c)) = self.capped {
                fresh.change_column_bounds(cols[v], self.floors[v]..=c);
            }
            self.cols = cols;
            fresh.set_sense(sense);
            solved = fresh
                .try_solve()
                .map_err(|e| format!("the linear program failed: {e:?}"))?;
        }
        let answer = match solved.status() {
            HighsModelStatus::Optimal => {
                let point = solved.get_solution().columns().to_vec();
                Some((point[var], point))
            }
            HighsModelStatus::Unbounded | HighsModelStatus::UnboundedOrInfeasible
                if end == End::Upper =>
            {
                None
            }
            HighsModelStatus::ModelEmpty => Some((self.floors[var], self.floors.clone())),
            other => {
                return Err(format!(
                    "the linear program ended with status {other:?}; the table contradicts itself"
                ));
            }
        };
        self.model = Some(Model::from(solved));
        Ok(answer)
    }
}

/// Points of a linear system nearest to its true solution `truth` (each variable at least its floor):
/// minimise `sum(weight[v] * |x[v] - truth[v]|)` with one variable pushed to reach a value. The L1
/// distance makes a point move few variables, along a short cycle of the table, rather than every
/// variable to a vertex. One HiGHS instance serves many targets: each only changes bounds and
/// costs, and starts from the basis before.
pub(crate) struct Nearest {
    model: Option<Model>,
    /// `x = truth + up - down`, `up >= 0`, `0 <= down <= truth - floor`.
    up: Vec<highs::Col>,
    down: Vec<highs::Col>,
    truth: Vec<f64>,
    floors: Vec<f64>,
    weight: Vec<f64>,
}

impl Nearest {
    pub fn new(rows: &[RowRef<'_>], truth: &[f64], weight: &[f64], floors: &[f64]) -> Self {
        let n = truth.len();
        let mut pb = RowProblem::default();
        let up: Vec<highs::Col> = (0..n).map(|v| pb.add_column(weight[v], 0.0..)).collect();
        let down: Vec<highs::Col> = (0..n)
            .map(|v| pb.add_column(weight[v], 0.0..=room(truth[v], floors[v])))
            .collect();
        add_moves(&mut pb, rows, truth, &up, &down);
        Self {
            model: Some(instance(pb, false)),
            up,
            down,
            truth: truth.to_vec(),
            floors: floors.to_vec(),
            weight: weight.to_vec(),
        }
    }

    /// The nearest point whose variable `target` reaches `reach` (at least it, or with
    /// [`End::Lower`] at most), with the variables `cheap` weighted 1/1000 and those of `fixed`
    /// held at their true values; `None` when there is none.
    pub fn point(
        &mut self,
        target: usize,
        reach: (End, f64),
        cheap: &[usize],
        fixed: &[usize],
    ) -> Result<Option<Vec<f64>>, String> {
        let mut model = self
            .model
            .take()
            .ok_or("the linear program failed before")?;
        let (up, down) = (self.up[target], self.down[target]);
        match reach.0 {
            End::Upper => {
                model.change_column_bounds(up, (reach.1 - self.truth[target]).max(0.0)..);
                model.change_column_bounds(down, 0.0..=0.0);
            }
            End::Lower => {
                model.change_column_bounds(up, 0.0..=0.0);
                let least = (self.truth[target] - reach.1).max(0.0);
                let room = room(self.truth[target], self.floors[target]);
                model.change_column_bounds(down, least..=room.max(least));
            }
        }
        for &v in cheap {
            model.change_column_cost(self.up[v], 1e-3);
            model.change_column_cost(self.down[v], 1e-3);
        }
        for &v in fixed {
            model.change_column_bounds(self.up[v], 0.0..=0.0);
            model.change_column_bounds(self.down[v], 0.0..=0.0);
        }
        let solved = model
            .try_solve()
            .map_err(|e| format!("the linear program failed: {e:?}"))?;
        let answer = match solved.status() {
            HighsModelStatus::Optimal => {
                let cols = solved.get_solution().columns().to_vec();
                let n = self.truth.len();
                Some(
                    (0..n)
                        .map(|v| self.truth[v] + cols[v] - cols[n + v])
                        .collect(),
                )
            }
            _ => None,
        };
        let mut model = Model::from(solved);
        for &v in fixed.iter().chain([&target]) {
            model.change_column_bounds(self.up[v], 0.0..);
            model.change_column_bounds(self.down[v], 0.0..=room(self.truth[v], self.floors[v]));
        }
        for &v in cheap {
            model.change_column_cost(self.up[v], self.weight[v]);
            model.change_column_cost(self.down[v], self.weight[v]);
        }
        self.model = Some(model);
        Ok(answer)
    }
}

/// Many goals at once: points of a linear system (each variable at least its floor) that move
/// variables to goals (up to at least a value, or down to at most one), found by one program for
/// many goals. It maximises the capped moves towards the goals still open, less a small cost per
/// unit moved (`|x - truth|`), so that its points move few variables; a goal is reached where its
/// move is whole. Each round drops the goals reached and solves again from the last basis; when a
/// round reaches none, the goals left are taken one at a time, and a goal not reached on its own
/// is not reached by any point of the system (its best value is returned).
pub(crate) struct Reach {
    model: Option<Model>,
    up: Vec<highs::Col>,
    down: Vec<highs::Col>,
    /// The capped move of each goal towards it.
    toward: Vec<highs::Col>,
    goals: Vec<Goal>,
    truth: Vec<f64>,
    floors: Vec<f64>,
}

/// A variable, which end, and the value to reach.
pub(crate) type Goal = (usize, End, f64);

/// What [`Reach::reach`] found.
pub(crate) struct Reached {
    /// For each goal reached, the point that reached it (an index into `points`).
    pub by_goal: Vec<Option<usize>>,
    pub points: Vec<Vec<f64>>,
    /// For a goal taken on its own and not reached, the best value its variable takes.
    pub best: Vec<Option<f64>>,
}

/// The cost per unit a point moves a variable, against 1 per unit a goal moves towards its value.
const MOVE_COST: f64 = 1e-4;

impl Reach {
    /// `goals` each beyond its variable's true value.
    pub fn new(rows: &[RowRef<'_>], truth: &[f64], floors: &[f64], goals: &[Goal]) -> Self {
        let n = truth.len();
        let mut pb = RowProblem::default();
        let up: Vec<highs::Col> = (0..n).map(|_| pb.add_column(-MOVE_COST, 0.0..)).collect();
        let down: Vec<highs::Col> = (0..n)
            .map(|v| pb.add_column(-MOVE_COST, 0.0..=room(truth[v], floors[v])))
            .collect();
        let toward: Vec<highs::Col> = goals
            .iter()
            .map(|&(v, end, goal)| {
                let gap = match end {
                    End::Upper => goal - truth[v],
                    End::Lower => truth[v] - goal,
                };
                pb.add_column(0.0, ..=gap.max(0.0))
            })
            .collect();
        add_moves(&mut pb, rows, truth, &up, &down);
        // toward <= up - down (or down - up)
        for (k, &(v, end, _)) in goals.iter().enumerate() {
            let sign = if end == End::Upper { 1.0 } else { -1.0 };
            pb.add_row(..=0.0, [(toward[k], 1.0), (up[v], -sign), (down[v], sign)]);
        }
        let mut model = pb.optimise(Sense::Maximise);
        single_threaded_quiet(&mut model);
        model.set_option("presolve", "off");
        Self {
            model: Some(model),
            up,
            down,
            toward,
            goals: goals.to_vec(),
            truth: truth.to_vec(),
            floors: floors.to_vec(),
        }
    }

    fn is_reached(&self, k: usize, point: &[f64]) -> bool {
        let (v, end, goal) = self.goals[k];
        match end {
            End::Upper => point[v] + 1e-6 >= goal,
            End::Lower => point[v] - 1e-6 <= goal,
        }
    }

    /// Rounds over the goals `open` (indices into the goals) with the variables `fixed` held at
    /// their true values.
    pub fn reach(&mut self, open: &[usize], fixed: &[usize]) -> Result<Reached, String> {
        let mut model = self
            .model
            .take()
            .ok_or("the linear program failed before")?;
        for &v in fixed {
            model.change_column_bounds(self.up[v], 0.0..=0.0);
            model.change_column_bounds(self.down[v], 0.0..=0.0);
        }
        let mut out = Reached {
            by_goal: vec![None; self.goals.len()],
            points: Vec::new(),
            best: vec![None; self.goals.len()],
        };
        let mut active: Vec<usize> = open.to_vec();
        for &k in &active {
            model.change_column_cost(self.toward[k], 1.0);
        }
        let mut single: Option<usize> = None;
        while !active.is_empty() {
            let solved = model
                .try_solve()
                .map_err(|e| format!("the linear program failed: {e:?}"))?;
            let point = (solved.status() == HighsModelStatus::Optimal).then(|| {
                let cols = solved.get_solution().columns().to_vec();
                let n = self.truth.len();
                (0..n)
                    .map(|v| self.truth[v] + cols[v] - cols[n + v])
                    .collect::<Vec<f64>>()
            });
            model = Model::from(solved);
            let (now, still): (Vec<usize>, Vec<usize>) = active
                .iter()
                .partition(|&&k| point.as_ref().is_some_and(|p| self.is_reached(k, p)));
            if let Some(k) = single
                && !now.contains(&k)
            {
                out.best[k] = point.as_ref().map(|p| p[self.goals[k].0]);
            }
            let stalled = now.is_empty() && single.is_none();
            if let Some(point) = point.filter(|_| !now.is_empty()) {
                for &k in &now {
                    out.by_goal[k] = Some(out.points.len());
                    model.change_column_cost(self.toward[k], 0.0);
                }
                out.points.push(point);
            }
            active = still;
            if stalled {
                // From now on one goal at a time, in order.
                for &k in &active {
                    model.change_column_cost(self.toward[k], 0.0);
                }
            } else if let Some(k) = single.filter(|k| active.contains(k)) {
                // Not reached on its own: no point reaches it.
                model.change_column_cost(self.toward[k], 0.0);
                active.retain(|&a| a != k);
            }
            if stalled || single.is_some() {
                let Some(&next) = active.first() else { break };
                model.change_column_cost(self.toward[next], 1.0);
                single = Some(next);
            }
        }
        for &v in fixed {
            model.change_column_bounds(self.up[v], 0.0..);
            model.change_column_bounds(self.down[v], 0.0..=room(self.truth[v], self.floors[v]));
        }
        self.model = Some(model);
        Ok(out)
    }
}

/// The system's rows over the moves from the true values: `x = truth + up - down`.
fn add_moves(
    pb: &mut RowProblem,
    rows: &[RowRef<'_>],
    truth: &[f64],
    up: &[highs::Col],
    down: &[highs::Col],
) {
    for &(terms, op, rhs) in rows {
        let at_truth: f64 = terms.iter().map(|&(v, c)| c * truth[v]).sum();
        let row: Vec<(highs::Col, f64)> = terms
            .iter()
            .flat_map(|&(v, c)| [(up[v], c), (down[v], -c)])
            .collect();
        add_row(pb, &row, op, rhs - at_truth);
    }
}

/// How far a variable at `truth` may go down and stay at least `floor`.
fn room(truth: f64, floor: f64) -> f64 {
    (truth - floor).max(0.0)
}

/// Adds `terms op rhs` to the problem.
fn add_row(pb: &mut RowProblem, terms: &[(highs::Col, f64)], op: Op, rhs: f64) {
    match op {
        Op::Eq => pb.add_row(rhs..=rhs, terms),
        Op::Le => pb.add_row(..=rhs, terms),
        Op::Ge => pb.add_row(rhs.., terms),
    }
}

/// A quiet HiGHS instance of the problem, minimising.
pub(crate) fn instance(pb: RowProblem, presolve: bool) -> Model {
    let mut model = pb.optimise(Sense::Minimise);
    single_threaded_quiet(&mut model);
    // Presolve would rebuild the reduced program on every solve and lose the basis that the
    // next objective starts from; the systems are small and sparse without it.
    if !presolve {
        model.set_option("presolve", "off");
    }
    model
}

/// Options every small program of the engine shares: no output, one thread, no extra checks.
pub(crate) fn single_threaded_quiet(model: &mut Model) {
    model.make_quiet();
    // The audit runs many systems side by side on rayon's threads; each solve stays on one.
    model.set_option("threads", 1);
    // Before it keeps a factorisation, HiGHS by default solves a test system with it to
    // measure its error (`HEkk::factorSolveError`, 5 % of the committed sample's report). The
    // programs are small and well scaled, every bound is checked against the true values
    // afterwards, and a tolerance of zero or less skips that test.
    model.set_option("rebuild_refactor_solution_error_tolerance", -1.0);
}

/// One relation of a system: `terms op rhs`.
type Row = (Vec<(usize, f64)>, Op, f64);

/// A borrowed [`Row`].
pub(crate) type RowRef<'a> = (&'a [(usize, f64)], Op, f64);

#[cfg(test)]
mod tests {
    use super::*;

    type Rows = Vec<(Vec<(usize, f64)>, Op, f64)>;

    #[test]
    fn bounds_one_variable_after_another_from_the_same_instance() {
        // x + y = 10, x <= 4, each at least 1: x in [1, 4], y in [6, 9].
        let rows: Rows = vec![
            (vec![(0, 1.0), (1, 1.0)], Op::Eq, 10.0),
            (vec![(0, 1.0)], Op::Le, 4.0),
        ];
        let mut lp = Lp::new(
            vec![1.0; 2],
            rows.iter().map(|(t, o, r)| (t.as_slice(), *o, *r)),
        );
        let b = |lp: &mut Lp, v, e| lp.bound(v, e).unwrap().map(|x| x.0);
        assert_eq!(b(&mut lp, 0, End::Lower), Some(1.0));
        assert_eq!(b(&mut lp, 0, End::Upper), Some(4.0));
        assert_eq!(b(&mut lp, 1, End::Lower), Some(6.0));
        assert_eq!(b(&mut lp, 1, End::Upper), Some(9.0));
        // A point reaching an optimum satisfies the system.
        let (_, p) = lp.bound(1, End::Upper).unwrap().unwrap();
        assert!((p[0] + p[1] - 10.0).abs() < 1e-9);
    }

    #[test]
    fn an_unbounded_upper_end_is_none() {
        // x - y = 0: both can grow without end.
        let rows: Rows = vec![(vec![(0, 1.0), (1, -1.0)], Op::Eq, 0.0)];
        let mut lp = Lp::new(
            vec![1.0; 2],
            rows.iter().map(|(t, o, r)| (t.as_slice(), *o, *r)),
        );
        assert!(lp.bound(0, End::Upper).unwrap().is_none());
        assert_eq!(lp.bound(0, End::Lower).unwrap().map(|x| x.0), Some(1.0));
    }
}
