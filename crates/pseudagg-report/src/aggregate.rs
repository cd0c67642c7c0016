//! Counting: one pass over the extract, one counter per (gE, category, indicator).

use std::collections::HashMap;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use pseudagg_core::{Location, Problem, Problems};

use crate::expr::eval::eval;
use crate::plan::ReportPlan;

/// A Jobcenter as the extract names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeInfo {
    pub nr: String,
    pub rd: String,
    pub name: String,
}

/// The counts per gE, before totals.
#[derive(Debug, Clone)]
pub struct Counts {
    pub ges: Vec<GeInfo>,
    /// Per gE: `categories x indicators` counters (categories without the total).
    pub values: Vec<Vec<u64>>,
    pub categories: usize,
    pub indicators: usize,
    pub rows_read: u64,
    pub rows_counted: u64,
}

/// Accumulates counts batch by batch.
#[derive(Debug)]
pub struct Counter<'a> {
    plan: &'a ReportPlan,
    month_end_days: i32,
    index: HashMap<String, usize>,
    counts: Counts,
    first_row_of: HashMap<usize, u64>,
    problems: Problems,
}

impl<'a> Counter<'a> {
    #[must_use]
    pub fn new(plan: &'a ReportPlan, month_end_days: i32) -> Self {
        let categories = plan.categories.len().max(1);
        Self {
            plan,
            month_end_days,
            index: HashMap::new(),
            counts: Counts {
                ges: Vec::new(),
                values: Vec::new(),
                categories,
                indicators: plan.indicators.len(),
                rows_read: 0,
                rows_counted: 0,
            },
            first_row_of: HashMap::new(),
            problems: Problems::default(),
        }
    }

    /// Counts one batch of validated rows.
    pub fn add(&mut self, batch: &RecordBatch) {
        let p = self.plan;
        let first_row = self.counts.rows_read + 1;
        self.counts.rows_read += batch.num_rows() as u64;
        let population = eval(&p.population, batch, self.month_end_days);
        let categories: Vec<Vec<bool>> = p
            .categories
            .iter()
            .map(|c| eval(c, batch, self.month_end_days))
            .collect();
        let indicators: Vec<Vec<bool>> = p
            .indicators
            .iter()
            .map(|e| eval(e, batch, self.month_end_days))
            .collect();
        let ge = batch.column(p.ge_column).as_string::<i32>();
        let rd = batch.column(p.rd_column).as_string::<i32>();
        let name = p.ge_name_column.map(|c| batch.column(c).as_string::<i32>());
        let dim_name = p
            .definition
            .dimension
            .as_ref()
            .map_or("", |d| d.name.as_str());
        for row in (0..batch.num_rows()).filter(|&i| population[i]) {
            let row_no = first_row + row as u64;
            let category = if categories.is_empty() {
                0
            } else {
                let mut hits = categories
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m[row])
                    .map(|(i, _)| i);
                match (hits.next(), hits.next()) {
                    (Some(c), None) => c,
                    (None, _) => {
                        self.problems.push(Problem::new(
                            Location { row: Some(row_no), ..Location::default() },
                            format!("is counted, but falls into no category of `{dim_name}`: the categories must cover the population"),
                        ));
                        continue;
                    }
                    (Some(_), Some(_)) => {
                        self.problems.push(Problem::new(
                            Location { row: Some(row_no), ..Location::default() },
                            format!("falls into more than one category of `{dim_name}`: categories must not overlap"),
                        ));
                        continue;
                    }
                }
            };
            let ge_nr = ge.value(row);
            let gi = if let Some(&i) = self.index.get(ge_nr) {
                i
            } else {
                let i = self.counts.ges.len();
                self.index.insert(ge_nr.to_owned(), i);
                self.first_row_of.insert(i, row_no);
                self.counts.ges.push(GeInfo {
                    nr: ge_nr.to_owned(),
                    rd: rd.value(row).to_owned(),
                    name: name.map_or_else(String::new, |n| n.value(row).to_owned()),
                });
                self.counts
                    .values
                    .push(vec![0; self.counts.categories * self.counts.indicators]);
                i
            };
            let info = &self.counts.ges[gi];
            // gE and RD numbers are organisational units, not personal data: naming them helps.
            if info.rd != rd.value(row) {
                self.problems.push(Problem::new(
                    Location { row: Some(row_no), ..Location::default() },
                    format!("puts gE {} under RD {}, but row {} puts it under RD {}; a gE belongs to one RD",
                        ge_nr, rd.value(row), self.first_row_of[&gi], info.rd),
                ));
                continue;
            }
            self.counts.rows_counted += 1;
            let cells = &mut self.counts.values[gi];
            for (k, mask) in indicators.iter().enumerate() {
                if mask[row] {
                    cells[category * self.counts.indicators + k] += 1;
                }
            }
        }
    }

    /// The counts, or every problem found.
    pub fn finish(self) -> Result<Counts, Problems> {
        if self.problems.is_empty() {
            Ok(self.counts)
        } else {
            Err(self.problems)
        }
    }
}
