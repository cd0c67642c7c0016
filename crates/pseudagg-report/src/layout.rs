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
    pub fn build(plan: &ReportPlan, counts: &Counts) -> Self {
        let has_dim = !plan.categories.is_empty();
        let n_cat = plan.category_count();
        let n_ind = plan.indicators.len();
        let mut order: Vec<usize> = (0..counts.ges.len()).collect();
        order.sort_by(|&a, &b| (&counts.ges[a].rd, &counts.ges[a].nr).cmp(&(&counts.ges[b].rd, &counts.ges[b].nr)));
        let mut by_rd: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut areas = Vec::new();
        for &g in &order {
            by_rd.entry(counts.ges[g].rd.clone()).or_default().push(areas.len());
            areas.push(Area { level: Level::Ge, rd: Some(counts.ges[g].rd.clone()), ge: Some(counts.ges[g].clone()) });
        }
        let rd_start = areas.len();
        for rd in by_rd.keys() {
            areas.push(Area { level: Level::Rd, rd: Some(rd.clone()), ge: None });
        }
        let bund = areas.len();
        areas.push(Area { level: Level::Bund, rd: None, ge: None });

        let mut rt = Self {
            categories: plan.category_labels(),
            indicators: plan.definition.indicators.iter().map(|i| i.name.clone()).collect(),
            table: Table { values: vec![0; areas.len() * n_cat * n_ind], rank: vec![0; areas.len() * n_cat * n_ind], ..Table::default() },
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
                    sums.push(Sum { total: rt.cell(rd_start + r, c, k), parts: members.iter().map(|&a| rt.cell(a, c, k)).collect() });
                }
                sums.push(Sum { total: rt.cell(bund, c, k), parts: (0..by_rd.len()).map(|r| rt.cell(rd_start + r, c, k)).collect() });
            }
        }
        // Categories -> total, for every area and indicator.
        if has_dim {
            for a in 0..rt.areas.len() {
                for k in 0..n_ind {
                    sums.push(Sum { total: rt.cell(a, n_cat - 1, k), parts: (0..n_cat - 1).map(|c| rt.cell(a, c, k)).collect() });
                }
            }
        }
        // Fill totals bottom-up: category totals of gEs, then RDs and the Bund.
        let (cat_sums, level_sums): (Vec<&Sum>, Vec<&Sum>) = sums.iter().partition(|s| {
            let area = s.total / (n_cat * n_ind);
            has_dim && (s.total / n_ind) % n_cat == n_cat - 1 && rt.areas[area].level == Level::Ge
        });
        for s in cat_sums.iter().chain(level_sums.iter().filter(|s| rt.areas[s.total / (n_cat * n_ind)].level == Level::Rd))
            .chain(level_sums.iter().filter(|s| rt.areas[s.total / (n_cat * n_ind)].level == Level::Bund))
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
        rt.table.sums = sums;
        rt.table.subsets = subsets;
        debug_assert!(rt.table.is_consistent());
        rt
    }
}
