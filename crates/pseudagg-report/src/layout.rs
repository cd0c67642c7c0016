//! The report's table: gE, RD and Bund rows, categories with their total, indicators; and the
//! relations between them that the suppression must respect.

use std::collections::BTreeMap;

use crate::aggregate::{Counts, GeInfo};
use crate::plan::ReportPlan;
use crate::table::{Kind, Sum, Table};

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
    /// Position labels: with one dimension its categories, the total last; with two, every
    /// combination (`Ukraine / weiblich`), the last dimension varying fastest, each total after
    /// its categories; one empty label without a dimension.
    pub categories: Vec<String>,
    /// The dimensions' names (the columns of the long outputs).
    pub dimensions: Vec<String>,
    /// Per position, its category of each dimension (a total's name for a total).
    pub coordinates: Vec<Vec<String>>,
    /// Per combination of categories (as the counters number them), the positions that count
    /// its people: its own and every total over it.
    pub positions_of: Vec<Vec<usize>>,
    pub indicators: Vec<String>,
    /// Groups of indicators no person is counted in two of, under the indicator each group is
    /// a subset of: `(parent, members)` (see [`ReportTable::add_exclusions`]).
    pub exclusive: Vec<(usize, Vec<usize>)>,
    /// For each group of `exclusive`: whether its members hold every person of their parent,
    /// so that the parent is their sum (empty: none does).
    pub exhaustive: Vec<bool>,
    pub table: Table,
}

impl ReportTable {
    /// The index of the cell of an area, category and indicator.
    #[must_use]
    pub fn cell(&self, area: usize, category: usize, indicator: usize) -> usize {
        (area * self.categories.len() + category) * self.indicators.len() + indicator
    }

    /// Adds to `table`, which holds this report's cells from `offset` on, what its exclusive
    /// indicators tell an attacker: at every area and position, a group's cells add up to no
    /// more than their parent's. Each becomes `parent = members + rest`, `rest` a new cell of
    /// the people of the parent in none of them: never published and not protected itself
    /// ([`Kind::Atom`]), known to the gE that owns the parent. A group that holds every person
    /// of its parent ([`Self::exhaustive`]) has no rest: `parent = members`, even with one
    /// member left (the others published zeros). The published table is unchanged.
    /// Returns, for each cell added in order, the cell of this table it is the rest of.
    ///
    /// # Errors
    /// When the counts break a relation (a row counted in two exclusive indicators: the
    /// counting refuses those first, so this is a guard).
    pub fn add_exclusions(&self, table: &mut Table, offset: usize) -> Result<Vec<usize>, String> {
        let mut wholes = Vec::new();
        if self.exclusive.is_empty() {
            return Ok(wholes);
        }
        if table.kind.is_empty() {
            table.kind = vec![Kind::Published; table.len()];
        }
        for a in 0..self.areas.len() {
            for c in 0..self.categories.len() {
                for (g, (parent, members)) in self.exclusive.iter().enumerate() {
                    let covering = self.exhaustive.get(g).copied().unwrap_or(false);
                    let whole = offset + self.cell(a, c, *parent);
                    // A published 0 is known exactly and adds nothing; with at most one part
                    // left, the relation says no more than its subset relation (part <= whole).
                    let parts: Vec<usize> = members
                        .iter()
                        .map(|&k| offset + self.cell(a, c, k))
                        .filter(|&p| table.values[p] > 0 || table.kind_of(p) != Kind::Published)
                        .collect();
                    if parts.len() < 2 && !covering {
                        continue;
                    }
                    let inside: u64 = parts.iter().map(|&p| table.values[p]).sum();
                    let names = || {
                        members
                            .iter()
                            .map(|&k| self.indicators[k].as_str())
                            .collect::<Vec<_>>()
                            .join("`, `")
                    };
                    if covering {
                        if inside != table.values[whole] {
                            return Err(format!(
                                "the cells of `{}` do not add up to `{}`, although its expressions put every person of it in one of them",
                                names(),
                                self.indicators[*parent]
                            ));
                        }
                        if !parts.is_empty() {
                            table.sums.push(Sum {
                                total: whole,
                                parts,
                            });
                        }
                        continue;
                    }
                    let rest = table.values[whole].checked_sub(inside).ok_or_else(|| {
                        format!(
                            "the cells of `{}` add up to more than `{}`, whose subsets they are, although no person may be counted in two of them",
                            names(),
                            self.indicators[*parent]
                        )
                    })?;
                    let cell = table.len();
                    table.values.push(rest);
                    table.rank.push(0);
                    table.kind.push(Kind::Atom);
                    if !table.owner.is_empty() {
                        table.owner.push(table.owner[whole]);
                    }
                    if !table.district.is_empty() {
                        table.district.push(table.district[whole]);
                    }
                    if !table.keep_published.is_empty() {
                        table.keep_published.push(false);
                    }
                    if !table.preset.is_empty() {
                        table.preset.push(false);
                    }
                    wholes.push(whole - offset);
                    let mut parts = parts;
                    parts.push(cell);
                    table.sums.push(Sum {
                        total: whole,
                        parts,
                    });
                }
            }
        }
        debug_assert!(table.is_consistent());
        Ok(wholes)
    }

    /// Builds the table: gEs sorted by RD and number, then the RDs, then the Bund.
    #[must_use]
    #[allow(clippy::too_many_lines)] // areas, values, relations and ranks of one table
    pub fn build(plan: &ReportPlan, counts: &Counts) -> Self {
        let has_dim = !plan.categories.is_empty();
        let sizes = plan.dimension_sizes();
        let n_cat = plan.category_count();
        let coordinates = plan.position_coordinates();
        // A position's index in each dimension (its total: the dimension's size).
        let coords_of = |pos: usize| -> Vec<usize> {
            let mut rest = pos;
            let mut out = vec![0; sizes.len()];
            for d in (0..sizes.len()).rev() {
                out[d] = rest % (sizes[d] + 1);
                rest /= sizes[d] + 1;
            }
            out
        };
        let position_at = |coords: &[usize]| -> usize {
            coords
                .iter()
                .zip(&sizes)
                .fold(0, |acc, (&c, &n)| acc * (n + 1) + c)
        };
        // The positions counting each combination: each dimension at its category or its total.
        let positions_of: Vec<Vec<usize>> = (0..plan.combinations())
            .map(|combo| {
                let mut rest = combo;
                let mut own = vec![0; sizes.len()];
                for d in (0..sizes.len()).rev() {
                    own[d] = rest % sizes[d];
                    rest /= sizes[d];
                }
                (0..n_cat)
                    .filter(|&p| {
                        coords_of(p)
                            .iter()
                            .zip(&own)
                            .zip(&sizes)
                            .all(|((&c, &o), &n)| c == o || c == n)
                    })
                    .collect()
            })
            .collect();
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
            dimensions: plan
                .definition
                .dimension
                .all()
                .iter()
                .map(|d| d.name.clone())
                .collect(),
            coordinates,
            positions_of,
            indicators: plan
                .definition
                .indicators
                .iter()
                .map(|i| i.name.clone())
                .collect(),
            exclusive: plan.exclusive.clone(),
            exhaustive: plan.exhaustive.clone(),
            table: Table {
                values: vec![0; areas.len() * n_cat * n_ind],
                rank: vec![0; areas.len() * n_cat * n_ind],
                ..Table::default()
            },
            areas,
        };
        // A gE's cell of a position counts every combination the position holds.
        for (a, &g) in order.iter().enumerate() {
            for (combo, positions) in rt.positions_of.iter().enumerate() {
                for k in 0..n_ind {
                    let v = counts.values[g][combo * n_ind + k];
                    for &p in positions {
                        let cell = rt.cell(a, p, k);
                        rt.table.values[cell] += v;
                    }
                }
            }
        }
        let mut sums = Vec::new();
        // gE -> RD -> Bund, for every position (the totals too) and indicator.
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
        // The RD and Bund values, in that order (the Bund sums the RDs).
        for s in &sums {
            rt.table.values[s.total] = s.parts.iter().map(|&p| rt.table.values[p]).sum();
        }
        // Each dimension's categories -> its total, for every area, indicator and position of
        // the other dimensions.
        for (d, &n) in sizes.iter().enumerate() {
            for p in (0..n_cat).filter(|&p| coords_of(p)[d] == n) {
                let parts: Vec<usize> = (0..n)
                    .map(|c| {
                        let mut at = coords_of(p);
                        at[d] = c;
                        position_at(&at)
                    })
                    .collect();
                for a in 0..rt.areas.len() {
                    for k in 0..n_ind {
                        sums.push(Sum {
                            total: rt.cell(a, p, k),
                            parts: parts.iter().map(|&q| rt.cell(a, q, k)).collect(),
                        });
                    }
                }
            }
        }
        let mut subsets = Vec::new();
        for a in 0..rt.areas.len() {
            for c in 0..n_cat {
                for (k, sup) in plan.subset_of.iter().enumerate() {
                    if let Some(j) = sup {
                        subsets.push((rt.cell(a, c, k), rt.cell(a, c, *j)));
                    }
                }
                for &(k, j) in plan.implied_subsets.iter().chain(&plan.position_subsets[c]) {
                    subsets.push((rt.cell(a, c, k), rt.cell(a, c, j)));
                }
                for k in 0..n_ind {
                    let level_rank = match rt.areas[a].level {
                        Level::Ge => 0,
                        Level::Rd => 2,
                        Level::Bund => 4,
                    };
                    let cell = rt.cell(a, c, k);
                    // A total of some dimension ranks above the cells it sums.
                    let is_total = coords_of(c).iter().zip(&sizes).any(|(&x, &n)| x == n);
                    rt.table.rank[cell] = level_rank + u8::from(has_dim && is_total);
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
        // Two indicators each inside the other at a position count the same people there (an
        // indicator `elb` in a population of `elb`): a sum of one part, so that the relation rule
        // and the covering program keep them suppressed together, as any reader could equate
        // them.
        let pairs: std::collections::HashSet<(usize, usize)> = subsets.iter().copied().collect();
        let mut equal = std::collections::HashSet::new();
        for &(part, whole) in &subsets {
            if part < whole && pairs.contains(&(whole, part)) && equal.insert((part, whole)) {
                sums.push(Sum {
                    total: whole,
                    parts: vec![part],
                });
            }
        }
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
    pub(crate) fn plan_for(n_cat: usize, n_ind: usize) -> ReportPlan {
        plan_with(&[n_cat], n_ind)
    }

    /// [`plan_for`] with a dimension of `sizes[d]` categories for each `d` (none where 0): one
    /// `[dimension]` table, or `[[dimension]]` tables for two.
    #[allow(clippy::format_push_string)] // test text, built for reading
    pub(crate) fn plan_with(sizes: &[usize], n_ind: usize) -> ReportPlan {
        let mut text = String::from(
            "name = \"t\"\ntitle = \"T\"\ninput-schema = \"opds-person\"\npopulation = \"elb\"\nge-name-column = \"ge_name\"\n",
        );
        let sizes: Vec<usize> = sizes.iter().copied().filter(|&n| n > 0).collect();
        for (d, &n) in sizes.iter().enumerate() {
            let head = if sizes.len() > 1 {
                "[[dimension]]"
            } else {
                "[dimension]"
            };
            text.push_str(&format!(
                "{head}\nname = \"d{d}\"\ntotal = \"Alle\"\ncategories = ["
            ));
            for c in 0..n {
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

    /// gE `i` numbered `10000 + i`, in RD `R<rds_of_ges[i]>`.
    pub(crate) fn ges_for(rds_of_ges: &[usize]) -> Vec<GeInfo> {
        rds_of_ges
            .iter()
            .enumerate()
            .map(|(i, r)| GeInfo {
                nr: format!("{:05}", 10000 + i),
                rd: format!("R{r}"),
                name: format!("G{i}"),
            })
            .collect()
    }

    /// Counts for a random hierarchy: `ges[i]` is the RD of gE i; values decrease along the
    /// indicator chain so the subset relations hold.
    pub(crate) fn counts_for(plan: &ReportPlan, rds_of_ges: &[usize], raw: &[u64]) -> Counts {
        let n_cat = plan.combinations();
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
            ges: ges_for(rds_of_ges),
            values,
            categories: n_cat,
            indicators: n_ind,
            rows_read: 0,
            rows_counted: 0,
        }
    }

    /// "Never advised" and "advised in the last 13 weeks" are both parts of `elb`, and no person
    /// is in both. A gE with 3 people, 1 never advised and 2 advised lately: the two cells add
    /// up to at most 3, so with both suppressed and `elb` published each lies in [1, 2].
    #[test]
    fn exclusive_indicators_are_protected_as_an_attacker_reads_them() {
        let text = "name = \"t\"\ntitle = \"T\"\ninput-schema = \"opds-person\"\npopulation = \"elb\"\nge-name-column = \"ge_name\"\n\
            [[indicators]]\nname = \"elb\"\nlabel = \"E\"\nwhen = \"true\"\n\
            [[indicators]]\nname = \"nie\"\nlabel = \"N\"\nwhen = \"letztes_beratungsgespraech is null\"\nsubset-of = \"elb\"\n\
            [[indicators]]\nname = \"neu\"\nlabel = \"B\"\nwhen = \"letztes_beratungsgespraech > month_end - 13 weeks\"\nsubset-of = \"elb\"\n";
        let plan = ReportPlan::from_toml(text, std::path::Path::new("t.toml")).unwrap();
        assert_eq!(plan.exclusive, vec![(0, vec![1, 2])]);
        let counts = Counts {
            ges: ges_for(&[0, 0, 0]),
            values: vec![vec![3, 1, 2], vec![10, 4, 5], vec![12, 5, 6]],
            categories: 1,
            indicators: 3,
            rows_read: 0,
            rows_counted: 0,
        };
        let rt = ReportTable::build(&plan, &counts);
        let mut wide = rt.table.clone();
        rt.add_exclusions(&mut wide, 0).unwrap();
        let n = rt.table.len();
        // One `rest` cell per area (3 gEs, the RD, the Bund), 0 at the first gE.
        assert_eq!(wide.len(), n + 5);
        assert_eq!(wide.values[n], 0);
        // Where a part is a published 0, the rest is its subset relation: no cell is added.
        let mut thinner = counts.clone();
        thinner.values[2][1] = 0;
        let thin = ReportTable::build(&plan, &thinner);
        let mut thin_wide = thin.table.clone();
        thin.add_exclusions(&mut thin_wide, 0).unwrap();
        assert_eq!(thin_wide.len(), n + 4);
        let params = Params {
            threshold: 3,
            min_width: 2,
            insider: false,
        };
        let primary = [rt.cell(0, 0, 1), rt.cell(0, 0, 2)];
        // The intervals of the first gE's two cells in the attacker's system.
        let shown = |suppressed: &[bool]| {
            let mut s = suppressed[..n].to_vec();
            s.resize(wide.len(), true);
            crate::audit::intervals(&wide, &s, &primary, None).unwrap()
        };
        // The pattern protected without knowing it leaves both in [1, 2].
        let blind = protect(&rt.table, params).unwrap();
        let before = shown(&blind.suppressed);
        assert!(
            before
                .iter()
                .all(|iv| iv.upper.is_some_and(|u| u < 3.0 - 1e-9)),
            "{before:?}"
        );
        // Protected with it, each reaches 3 and is 2 wide.
        let seen = protect(&wide, params).unwrap();
        for iv in shown(&seen.suppressed) {
            let upper = iv.upper.unwrap_or(f64::INFINITY);
            assert!(
                upper >= 3.0 - 1e-9 && upper - iv.lower >= 2.0 - 1e-9,
                "{iv:?}"
            );
        }
        // A declared exclusion between indicators of different wholes is refused.
        let bad = text.replace("subset-of = \"elb\"\n\n", "").replace(
            "name = \"neu\"\nlabel = \"B\"\nwhen = \"letztes_beratungsgespraech > month_end - 13 weeks\"\nsubset-of = \"elb\"\n",
            "name = \"neu\"\nlabel = \"B\"\nwhen = \"massnahme is null\"\nexcludes = [\"nie\"]\n",
        );
        let err = ReportPlan::from_toml(&bad, std::path::Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("excludes") && err.contains("not both parts of one indicator"),
            "{err}"
        );
    }

    /// `kooperationsplan` and `not kooperationsplan` under `true`: no person is in both, and
    /// everyone is in one, so a reader of the definition knows `bestand = mit + ohne` at every
    /// gE. A gE of 5 people, 1 with a plan: a pattern protected without that sum leaves `ohne`
    /// (4) and `bestand` published beside the suppressed 1, which their difference gives away.
    #[test]
    fn complementary_indicators_add_up_to_their_whole_in_the_audit() {
        let text = "name = \"t\"\ntitle = \"T\"\ninput-schema = \"opds-person\"\npopulation = \"elb\"\nge-name-column = \"ge_name\"\n\
            [[indicators]]\nname = \"bestand\"\nlabel = \"B\"\nwhen = \"true\"\n\
            [[indicators]]\nname = \"mit\"\nlabel = \"M\"\nwhen = \"kooperationsplan\"\nsubset-of = \"bestand\"\n\
            [[indicators]]\nname = \"ohne\"\nlabel = \"O\"\nwhen = \"not kooperationsplan\"\nsubset-of = \"bestand\"\n";
        let plan = ReportPlan::from_toml(text, std::path::Path::new("t.toml")).unwrap();
        assert_eq!(plan.exclusive, vec![(0, vec![1, 2])]);
        assert_eq!(plan.exhaustive, vec![true]);
        let counts = Counts {
            ges: ges_for(&[0, 0, 0]),
            values: vec![vec![5, 1, 4], vec![10, 4, 6], vec![12, 5, 7]],
            categories: 1,
            indicators: 3,
            rows_read: 0,
            rows_counted: 0,
        };
        let rt = ReportTable::build(&plan, &counts);
        let mut wide = rt.table.clone();
        rt.add_exclusions(&mut wide, 0).unwrap();
        let n = rt.table.len();
        // No rest cell: one sum `bestand = mit + ohne` per area (3 gEs, the RD, the Bund).
        assert_eq!(wide.len(), n);
        assert_eq!(wide.sums.len(), rt.table.sums.len() + 5);
        assert!(wide.is_consistent());
        // Counts that break the sum are refused (a guard: the expressions cannot).
        let mut broken = rt.table.clone();
        broken.values[rt.cell(0, 0, 0)] += 1;
        let broken_rt = ReportTable {
            table: broken.clone(),
            ..rt.clone()
        };
        assert!(broken_rt.add_exclusions(&mut broken, 0).is_err());
        let params = Params {
            threshold: 3,
            min_width: 2,
            insider: false,
        };
        let target = rt.cell(0, 0, 1);
        let shown = |suppressed: &[bool]| {
            crate::audit::intervals(&wide, suppressed, &[target], None).unwrap()[0]
        };
        // Protected without the sum: the first gE's `mit` is exactly 1 to a reader of both.
        let blind = protect(&rt.table, params).unwrap();
        assert!(blind.suppressed[target]);
        let before = shown(&blind.suppressed);
        assert!(before.upper.is_some_and(|u| u < 3.0 - 1e-9), "{before:?}");
        // Protected with it, it reaches 3 and is 2 wide.
        let seen = protect(&wide, params).unwrap();
        let iv = shown(&seen.suppressed);
        let upper = iv.upper.unwrap_or(f64::INFINITY);
        assert!(
            upper >= 3.0 - 1e-9 && upper - iv.lower >= 2.0 - 1e-9,
            "{iv:?}"
        );
        // With one member a published 0, the whole is the other member.
        let mut none = counts.clone();
        none.values[0] = vec![4, 0, 4];
        let rt0 = ReportTable::build(&plan, &none);
        let mut wide0 = rt0.table.clone();
        rt0.add_exclusions(&mut wide0, 0).unwrap();
        assert!(wide0.sums.contains(&Sum {
            total: rt0.cell(0, 0, 0),
            parts: vec![rt0.cell(0, 0, 2)],
        }));
    }

    /// What the population and the categories tell a reader of the definition: in a population
    /// of `elb`, an indicator `elb` counts everyone (`bestand`); at the position Ukraine,
    /// `staatsangehoerigkeit = 'UKR'` counts everyone too. Equal cells are suppressed together:
    /// one published beside the other suppressed would show its count.
    #[test]
    fn the_population_and_the_categories_make_cells_equal() {
        let text = "name = \"t\"\ntitle = \"T\"\ninput-schema = \"opds-person\"\n\
            population = \"elb and staatsangehoerigkeit in ('UKR', 'SYR')\"\nge-name-column = \"ge_name\"\n\
            [dimension]\nname = \"herkunft\"\ntotal = \"Insgesamt\"\ncategories = [\n\
            { name = \"Ukraine\", when = \"staatsangehoerigkeit = 'UKR'\" },\n\
            { name = \"Syrien\", when = \"staatsangehoerigkeit = 'SYR'\" },\n]\n\
            [[indicators]]\nname = \"bestand\"\nlabel = \"B\"\nwhen = \"true\"\n\
            [[indicators]]\nname = \"ukr\"\nlabel = \"U\"\nwhen = \"staatsangehoerigkeit = 'UKR'\"\nsubset-of = \"bestand\"\n\
            [[indicators]]\nname = \"elb\"\nlabel = \"E\"\nwhen = \"elb\"\nsubset-of = \"bestand\"\n";
        let plan = ReportPlan::from_toml(text, std::path::Path::new("t.toml")).unwrap();
        assert!(
            plan.implied_subsets.contains(&(0, 2)),
            "{:?}",
            plan.implied_subsets
        );
        assert!(!plan.implied_subsets.contains(&(0, 1)));
        // Positions: Ukraine, Syrien, Insgesamt.
        assert!(plan.position_subsets[0].contains(&(0, 1)));
        assert!(!plan.position_subsets[1].contains(&(0, 1)));
        assert!(!plan.position_subsets[2].contains(&(0, 1)));
        // At Syrien nobody is in `ukr`: its cells there are zeros, inside nothing in particular.
        assert!(plan.position_subsets[1].iter().all(|&(k, _)| k != 1));
        // Per gE: Ukraine (bestand, ukr, elb), then Syrien; eight gEs in two RDs, counts from a
        // fixed sequence, several tables.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % 9
        };
        for _ in 0..6 {
            let values = (0..8)
                .map(|_| {
                    let (u, s) = (next(), next());
                    vec![u, u, u, s, 0, s]
                })
                .collect();
            let counts = Counts {
                ges: ges_for(&[0, 0, 0, 0, 1, 1, 1, 1]),
                values,
                categories: 2,
                indicators: 3,
                rows_read: 0,
                rows_counted: 0,
            };
            equal_cells_stay_together(&plan, &counts);
        }
    }

    fn equal_cells_stay_together(plan: &ReportPlan, counts: &Counts) {
        let rt = ReportTable::build(plan, counts);
        let equal = |a: usize, c: usize| {
            let mut out = vec![(rt.cell(a, c, 0), rt.cell(a, c, 2))];
            if c == 0 {
                out.push((rt.cell(a, c, 0), rt.cell(a, c, 1)));
            }
            out
        };
        for a in 0..rt.areas.len() {
            for c in 0..3 {
                for (x, y) in equal(a, c) {
                    assert!(
                        rt.table.sums.contains(&Sum {
                            total: y,
                            parts: vec![x]
                        }),
                        "area {a}, position {c}"
                    );
                }
            }
        }
        for insider in [false, true] {
            let params = Params {
                threshold: 3,
                min_width: 2,
                insider,
            };
            let pattern = protect(&rt.table, params).unwrap();
            let s = &pattern.suppressed;
            assert!(s.iter().any(|&x| x));
            for a in 0..rt.areas.len() {
                for c in 0..3 {
                    for (x, y) in equal(a, c) {
                        assert_eq!(s[x], s[y], "area {a}, position {c}, insider {insider}");
                    }
                }
            }
        }
    }

    /// Parts of parts: courses are measures, and nobody in a measure is without one. Both
    /// `massnahme` indicators exclude `ohne`, each group under `elb`; a group inside one part
    /// of a whole is that part's alone.
    #[test]
    fn exclusion_reaches_parts_of_parts() {
        let plan = |extra: &str| {
            let text = format!(
                "name = \"t\"\ntitle = \"T\"\ninput-schema = \"opds-person\"\npopulation = \"elb\"\n\
                 [[indicators]]\nname = \"elb\"\nlabel = \"E\"\nwhen = \"true\"\n\
                 [[indicators]]\nname = \"mm\"\nlabel = \"M\"\nwhen = \"massnahme is not null\"\nsubset-of = \"elb\"\n\
                 [[indicators]]\nname = \"bsk\"\nlabel = \"B\"\nwhen = \"massnahme = 'Berufssprachkurs'\"\nsubset-of = \"mm\"\n\
                 [[indicators]]\nname = \"ohne\"\nlabel = \"O\"\nwhen = \"massnahme is null\"\nsubset-of = \"elb\"\n{extra}"
            );
            ReportPlan::from_toml(&text, std::path::Path::new("t.toml")).unwrap()
        };
        assert_eq!(plan("").exclusive, vec![(0, vec![1, 3]), (0, vec![2, 3])]);
        // Declared between two parts of `mm`: a group of `mm`'s, and with `ohne` one of `elb`'s.
        let with = plan(
            "[[indicators]]\nname = \"andere\"\nlabel = \"A\"\nwhen = \"elb\"\nsubset-of = \"mm\"\nexcludes = [\"bsk\"]\n",
        );
        assert_eq!(
            with.exclusive,
            vec![(0, vec![1, 3]), (0, vec![2, 3, 4]), (1, vec![2, 4])]
        );
    }

    /// Courses are measures, though the definition puts both directly under `elb`: the
    /// expressions say so, and the table holds `courses <= measures` at every area.
    #[test]
    fn subsets_the_expressions_imply_join_the_table() {
        let text = "name = \"t\"\ntitle = \"T\"\ninput-schema = \"opds-person\"\npopulation = \"elb\"\n\
            [[indicators]]\nname = \"elb\"\nlabel = \"E\"\nwhen = \"true\"\n\
            [[indicators]]\nname = \"mm\"\nlabel = \"M\"\nwhen = \"massnahme is not null\"\nsubset-of = \"elb\"\n\
            [[indicators]]\nname = \"bsk\"\nlabel = \"B\"\nwhen = \"massnahme = 'Berufssprachkurs'\"\nsubset-of = \"elb\"\n";
        let plan = ReportPlan::from_toml(text, std::path::Path::new("t.toml")).unwrap();
        assert_eq!(plan.implied_subsets, vec![(2, 1)]);
        let counts = Counts {
            ges: ges_for(&[0, 1]),
            values: vec![vec![9, 4, 2], vec![7, 3, 3]],
            categories: 1,
            indicators: 3,
            rows_read: 0,
            rows_counted: 0,
        };
        let rt = ReportTable::build(&plan, &counts);
        for a in 0..rt.areas.len() {
            assert!(
                rt.table
                    .subsets
                    .contains(&(rt.cell(a, 0, 2), rt.cell(a, 0, 1)))
            );
        }
        assert!(rt.table.is_consistent());
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

    /// Two dimensions crossed: every total of one dimension sums its categories at every
    /// category of the other and at its total, in every area.
    #[test]
    fn two_dimensions_add_up_both_ways() {
        let plan = plan_with(&[2, 3], 1);
        assert_eq!(plan.category_count(), 12);
        let counts = counts_for(&plan, &[0, 1], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let rt = ReportTable::build(&plan, &counts);
        assert!(rt.table.is_consistent());
        assert_eq!(rt.dimensions, vec!["d0", "d1"]);
        assert_eq!(rt.coordinates[4], vec!["c1", "c0"]);
        assert_eq!(rt.categories[11], "Alle / Alle");
        let v = |a: usize, p: usize| rt.table.values[rt.cell(a, p, 0)];
        // gE 0 counts 1..6 in (c0, c0), (c0, c1), (c0, c2), (c1, c0), (c1, c1), (c1, c2).
        assert_eq!(v(0, 3), 1 + 2 + 3, "c0 / Alle");
        assert_eq!(v(0, 8), 1 + 4, "Alle / c0");
        assert_eq!(v(0, 11), 21, "Alle / Alle");
        // 2 x 3 cells, 3 + 4 margins: (2 + 3 + 1) sums of each area, 1 for every total position
        // of each dimension.
        let per_area = rt.table.sums.iter().filter(|s| s.total / 12 == 0).count();
        assert_eq!(per_area, 4 + 3);
        let bund = rt.areas.len() - 1;
        assert_eq!(v(bund, 11), 21 + (7..=12).sum::<u64>());
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

    fn hierarchy() -> impl Strategy<Value = (Vec<usize>, usize, Vec<usize>, Vec<u64>)> {
        (
            prop_oneof![3 => (0usize..=3).prop_map(|n| vec![n]), 1 => (1usize..=2, 1usize..=2).prop_map(|(a, b)| vec![a, b])],
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
        fn no_primary_cell_is_disclosed((sizes, n_ind, rds, raw) in hierarchy()) {
            let plan = plan_with(&sizes, n_ind);
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
