//! The report's table: gE, RD and Bund rows, categories with their total, indicators; and the
//! relations between them that the suppression must respect.

use std::collections::BTreeMap;

use crate::aggregate::{Counts, GeInfo};
use crate::plan::ReportPlan;
use crate::table::{Sum, Table};

/// The level of a row of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ge,
    Rd,
    Bund,
}

impl Level {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ge => "ge",
            Self::Rd => "rd",
            Self::Bund => "bund",
        }
    }
}

/// One row of the report: a gE, an RD (sum of its gEs) or the Bund (sum of all).
#[derive(Debug, Clone)]
pub struct Area {
    pub level: Level,
    pub rd: Option<String>,
    pub ge: Option<GeInfo>,
}

/// The full table before it is split by recipient.
#[derive(Debug, Clone)]
pub struct ReportTable {
    pub areas: Vec<Area>,
    /// Category labels, the total last (one empty label without a dimension).
    pub categories: Vec<String>,
    pub indicators: Vec<String>,
    pub table: Table,
}

impl ReportTable {
    /// The index of the cell of an area, category and indicator.
    #[must_use]
    pub fn cell(&self, area: usize, category: usize, indicator: usize) -> usize {
        (area * self.categories.len() + category) * self.indicators.len() + indicator
    }

    /// Builds the table: gEs sorted by RD and number, then the RDs, then the Bund.
    #[must_use]
    #[allow(clippy::too_many_lines)] // areas, values, relations and ranks of one table
    pub fn build(plan: &ReportPlan, counts: &Counts) -> Self {
        let has_dim = !plan.categories.is_empty();
        let n_cat = plan.category_count();
        let n_ind = plan.indicators.len();
        let mut order: Vec<usize> = (0..counts.ges.len()).collect();
        order.sort_by(|&a, &b| {
            (&counts.ges[a].rd, &counts.ges[a].nr).cmp(&(&counts.ges[b].rd, &counts.ges[b].nr))
        });
        let mut by_rd: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut areas = Vec::new();
        for &g in &order {
            by_rd
                .entry(counts.ges[g].rd.clone())
                .or_default()
                .push(areas.len());
            areas.push(Area {
                level: Level::Ge,
                rd: Some(counts.ges[g].rd.clone()),
                ge: Some(counts.ges[g].clone()),
            });
        }
        let rd_start = areas.len();
        for rd in by_rd.keys() {
            areas.push(Area {
                level: Level::Rd,
                rd: Some(rd.clone()),
                ge: None,
            });
        }
        let bund = areas.len();
        areas.push(Area {
            level: Level::Bund,
            rd: None,
            ge: None,
        });

        let mut rt = Self {
            categories: plan.category_labels(),
            indicators: plan
                .definition
                .indicators
                .iter()
                .map(|i| i.name.clone())
                .collect(),
            table: Table {
                values: vec![0; areas.len() * n_cat * n_ind],
                rank: vec![0; areas.len() * n_cat * n_ind],
                ..Table::default()
            },
            areas,
        };
        let real_cats = if has_dim { n_cat - 1 } else { 1 };
        for (a, &g) in order.iter().enumerate() {
            for c in 0..real_cats {
                for k in 0..n_ind {
                    let cell = rt.cell(a, c, k);
                    rt.table.values[cell] = counts.values[g][c * n_ind + k];
                }
            }
        }
        let mut sums = Vec::new();
        // gE -> RD -> Bund, for every category (the total too) and indicator.
        for c in 0..n_cat {
            for k in 0..n_ind {
                for (r, members) in by_rd.values().enumerate() {
                    sums.push(Sum {
                        total: rt.cell(rd_start + r, c, k),
                        parts: members.iter().map(|&a| rt.cell(a, c, k)).collect(),
                    });
                }
                sums.push(Sum {
                    total: rt.cell(bund, c, k),
                    parts: (0..by_rd.len())
                        .map(|r| rt.cell(rd_start + r, c, k))
                        .collect(),
                });
            }
        }
        // Categories -> total, for every area and indicator.
        if has_dim {
            for a in 0..rt.areas.len() {
                for k in 0..n_ind {
                    sums.push(Sum {
                        total: rt.cell(a, n_cat - 1, k),
                        parts: (0..n_cat - 1).map(|c| rt.cell(a, c, k)).collect(),
                    });
                }
            }
        }
        // Fill totals bottom-up: category totals of gEs, then RDs and the Bund.
        let (cat_sums, level_sums): (Vec<&Sum>, Vec<&Sum>) = sums.iter().partition(|s| {
            let area = s.total / (n_cat * n_ind);
            has_dim && (s.total / n_ind) % n_cat == n_cat - 1 && rt.areas[area].level == Level::Ge
        });
        for s in cat_sums
            .iter()
            .chain(
                level_sums
                    .iter()
                    .filter(|s| rt.areas[s.total / (n_cat * n_ind)].level == Level::Rd),
            )
            .chain(
                level_sums
                    .iter()
                    .filter(|s| rt.areas[s.total / (n_cat * n_ind)].level == Level::Bund),
            )
        {
            rt.table.values[s.total] = s.parts.iter().map(|&p| rt.table.values[p]).sum();
        }
        let mut subsets = Vec::new();
        for a in 0..rt.areas.len() {
            for c in 0..n_cat {
                for (k, sup) in plan.subset_of.iter().enumerate() {
                    if let Some(j) = sup {
                        subsets.push((rt.cell(a, c, k), rt.cell(a, c, *j)));
                    }
                }
                for k in 0..n_ind {
                    let level_rank = match rt.areas[a].level {
                        Level::Ge => 0,
                        Level::Rd => 2,
                        Level::Bund => 4,
                    };
                    let cell = rt.cell(a, c, k);
                    rt.table.rank[cell] = level_rank + u8::from(has_dim && c == n_cat - 1);
                }
            }
        }
        let never = &plan.definition.suppression.never_suppress;
        rt.table.keep_published = (0..rt.table.len())
            .map(|cell| {
                never
                    .iter()
                    .any(|l| l == rt.areas[cell / (n_cat * n_ind)].level.as_str())
            })
            .collect();
        // The insider: every gE knows its own cells, and sees its district's table.
        let rd_index: BTreeMap<&str, u32> = by_rd
            .keys()
            .enumerate()
            .map(|(i, rd)| (rd.as_str(), i as u32))
            .collect();
        let per_area = n_cat * n_ind;
        rt.table.owner = (0..rt.table.len())
            .map(|cell| {
                let a = cell / per_area;
                if rt.areas[a].level == Level::Ge {
                    a as u32
                } else {
                    crate::table::NOBODY
                }
            })
            .collect();
        rt.table.district = (0..rt.table.len())
            .map(|cell| {
                let area = &rt.areas[cell / per_area];
                area.rd
                    .as_deref()
                    .and_then(|r| rd_index.get(r).copied())
                    .unwrap_or(crate::table::NOBODY)
            })
            .collect();
        rt.table.sums = sums;
        rt.table.subsets = subsets;
        debug_assert!(rt.table.is_consistent());
        rt
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::suppress::{Params, protect};
    use proptest::prelude::*;

    /// A plan with `n_cat` categories (0: no dimension) and a chain of `n_ind` indicators, each a
    /// subset of the one before.
    #[allow(clippy::format_push_string)] // test text, built for reading
    pub(crate) fn plan_for(n_cat: usize, n_ind: usize) -> ReportPlan {
        let mut text = String::from(
            "name = \"t\"\ntitle = \"T\"\ninput-schema = \"opds-person\"\npopulation = \"elb\"\nge-name-column = \"ge_name\"\n",
        );
        if n_cat > 0 {
            text.push_str("[dimension]\nname = \"d\"\ntotal = \"Alle\"\ncategories = [");
            for c in 0..n_cat {
                text.push_str(&format!("{{ name = \"c{c}\", when = \"true\" }},"));
            }
            text.push_str("]\n");
        }
        for k in 0..n_ind {
            text.push_str(&format!(
                "[[indicators]]\nname = \"i{k}\"\nlabel = \"I{k}\"\nwhen = \"true\"\n"
            ));
            if k > 0 {
                text.push_str(&format!("subset-of = \"i{}\"\n", k - 1));
            }
        }
        ReportPlan::from_toml(&text, std::path::Path::new("t.toml")).unwrap()
    }

    /// Counts for a random hierarchy: `ges[i]` is the RD of gE i; values decrease along the
    /// indicator chain so the subset relations hold.
    pub(crate) fn counts_for(plan: &ReportPlan, rds_of_ges: &[usize], raw: &[u64]) -> Counts {
        let n_cat = plan.categories.len().max(1);
        let n_ind = plan.indicators.len();
        let mut values = Vec::new();
        let mut it = raw.iter().cycle();
        for _ in rds_of_ges {
            let mut v = vec![0; n_cat * n_ind];
            for c in 0..n_cat {
                let mut prev = u64::MAX;
                for k in 0..n_ind {
                    let x = (*it.next().unwrap()).min(prev);
                    v[c * n_ind + k] = x;
                    prev = x;
                }
            }
            values.push(v);
        }
        Counts {
            ges: rds_of_ges
                .iter()
                .enumerate()
                .map(|(i, r)| GeInfo {
                    nr: format!("{:05}", 10000 + i),
                    rd: format!("R{r}"),
                    name: format!("G{i}"),
                })
                .collect(),
            values,
            categories: n_cat,
            indicators: n_ind,
            rows_read: 0,
            rows_counted: 0,
        }
    }

    #[test]
    fn totals_add_up() {
        let plan = plan_for(2, 2);
        let counts = counts_for(&plan, &[0, 0, 1], &[5, 3, 1, 0, 7, 7, 2, 1, 4, 4, 9, 2]);
        let rt = ReportTable::build(&plan, &counts);
        assert!(rt.table.is_consistent());
        assert_eq!(rt.areas.len(), 3 + 2 + 1);
        let bund = rt.areas.len() - 1;
        let total: u64 = counts.values.iter().map(|v| v[0] + v[2]).sum();
        assert_eq!(rt.table.values[rt.cell(bund, 2, 0)], total);
    }

    /// The interval of `cell` from one linear program over the whole table, written here
    /// independently of the audit's per-component systems.
    fn whole_table_interval(t: &Table, suppressed: &[bool], cell: usize) -> (f64, Option<f64>) {
        use microlp::{ComparisonOp, OptimizationDirection, Problem};
        let solve = |dir| {
            let mut p = Problem::new(dir);
            let vars: Vec<_> = (0..t.len())
                .map(|c| {
                    let obj = if c == cell { 1.0 } else { 0.0 };
                    let v = t.values[c] as f64;
                    if suppressed[c] {
                        p.add_var(obj, (1.0, f64::INFINITY))
                    } else {
                        p.add_var(obj, (v, v))
                    }
                })
                .collect();
            for s in &t.sums {
                let mut terms: Vec<_> = s.parts.iter().map(|&c| (vars[c], 1.0)).collect();
                terms.push((vars[s.total], -1.0));
                p.add_constraint(terms.as_slice(), ComparisonOp::Eq, 0.0);
            }
            for &(a, b) in &t.subsets {
                p.add_constraint(
                    [(vars[a], 1.0), (vars[b], -1.0)].as_slice(),
                    ComparisonOp::Le,
                    0.0,
                );
            }
            match p.solve() {
                Ok(o) => Some(o.solution().unwrap().objective()),
                Err(microlp::Error::Unbounded) => None,
                Err(e) => panic!("{e:?}"),
            }
        };
        (
            solve(OptimizationDirection::Minimize).unwrap(),
            solve(OptimizationDirection::Maximize),
        )
    }

    fn hierarchy() -> impl Strategy<Value = (usize, usize, Vec<usize>, Vec<u64>)> {
        (
            0usize..=3,
            1usize..=3,
            prop::collection::vec(0usize..3, 1..=7),
            prop::collection::vec(
                prop_oneof![3 => 0u64..=3, 2 => 0u64..=12, 1 => 0u64..=200],
                4..=40,
            ),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// After suppression no primary cell can be narrowed below protection, whatever the hierarchy,
        /// categories and small counts; checked with intervals over the whole table at once (not per
        /// component, as the suppression computes them).
        #[test]
        fn no_primary_cell_is_disclosed((n_cat, n_ind, rds, raw) in hierarchy()) {
            let plan = plan_for(n_cat, n_ind);
            let rt = ReportTable::build(&plan, &counts_for(&plan, &rds, &raw));
            let params = Params { threshold: 3, min_width: 2, insider: true };
            let pattern = protect(&rt.table, params).unwrap();
            let t = &rt.table;
            for c in 0..t.len() {
                if (1..3).contains(&t.values[c]) { prop_assert!(pattern.suppressed[c], "a small count is published"); }
                if t.values[c] == 0 { prop_assert!(!pattern.suppressed[c], "a zero is suppressed"); }
            }
            for s in &t.sums {
                let n = s.parts.iter().chain([&s.total]).filter(|&&c| pattern.suppressed[c]).count();
                prop_assert!(n != 1, "a relation holds a single suppressed cell");
            }
            let primary: Vec<usize> = (0..t.len()).filter(|&c| pattern.primary[c]).collect();
            for &c in &primary {
                let (lo, hi) = whole_table_interval(t, &pattern.suppressed, c);
                let iv = crate::audit::Interval { lower: lo, upper: hi };
                prop_assert!(iv.protects(3, 2), "cell {c} narrowed to {iv:?}");
            }
            // (b) The insider: every gE knows its own cells; every other gE's primary cell of its
            // district is still protected (the insider's cells held at their true values).
            for insider in 0..rt.areas.len() {
                if rt.areas[insider].level != Level::Ge {
                    continue;
                }
                let per_area = t.len() / rt.areas.len();
                let rd = &rt.areas[insider].rd;
                let known: Vec<bool> = (0..t.len())
                    .map(|c| pattern.suppressed[c] && c / per_area != insider)
                    .collect();
                for &c in &primary {
                    let a = &rt.areas[c / per_area];
                    if c / per_area == insider || a.level != Level::Ge || &a.rd != rd {
                        continue;
                    }
                    let (lo, hi) = whole_table_interval(t, &known, c);
                    let iv = crate::audit::Interval { lower: lo, upper: hi };
                    prop_assert!(iv.protects(3, 2), "cell {c} narrowed to {iv:?} by the gE of area {insider}");
                }
            }
            // Same input, same pattern.
            let again = protect(&rt.table, params).unwrap();
            prop_assert_eq!(again.suppressed, pattern.suppressed);
        }
    }
}
