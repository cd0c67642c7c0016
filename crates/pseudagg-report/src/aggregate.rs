//! Counting: one pass over the extract, one counter per (gE, category, indicator).

use std::collections::HashMap;

use rustc_hash::FxHashMap;

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

/// Where a row was counted (see [`Counter::add_classified`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowClass {
    pub ge: u32,
    pub category: u16,
    /// Bit `k`: the row counts for indicator `k` (a definition has at most 64).
    pub indicators: u64,
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
    index: FxHashMap<String, usize>,
    counts: Counts,
    first_row_of: HashMap<usize, u64>,
    /// The gEs come from a register: a gE of the extract outside it is an error.
    registered: bool,
    problems: Problems,
}

/// Reads a gE register: a CSV `ge_nr;rd;ge_name` with that header, UTF-8, one gE a line. Every gE
/// of it is in the report's grid, with the register's name. Problems name the line and column.
pub fn read_register(path: &std::path::Path) -> pseudagg_core::Result<Vec<GeInfo>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| pseudagg_core::Error::io("read the gE register", path, e))?;
    let mut problems = Problems::default();
    let mut out: Vec<GeInfo> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut lines = text.trim_start_matches('\u{feff}').lines().enumerate();
    let header = lines.next().map(|(_, h)| h.trim_end_matches('\r'));
    if header != Some("ge_nr;rd;ge_name") {
        problems.push(Problem::new(
            Location {
                line: Some(1),
                ..Location::default()
            },
            "the header must be `ge_nr;rd;ge_name`",
        ));
    }
    for (i, line) in lines {
        let line_no = i as u64 + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let at = |column: &str| Location {
            line: Some(line_no),
            column: Some(column.to_owned()),
            ..Location::default()
        };
        let fields: Vec<&str> = line.split(';').collect();
        if fields.len() != 3 {
            problems.push(Problem::new(
                Location {
                    line: Some(line_no),
                    ..Location::default()
                },
                format!(
                    "has {} fields; a register line is `ge_nr;rd;ge_name`",
                    fields.len()
                ),
            ));
            continue;
        }
        let (nr, rd, name) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        if !(nr.len() == 5 && nr.bytes().all(|b| b.is_ascii_digit())) {
            problems.push(Problem::new(at("ge_nr"), "a gE number is 5 digits"));
            continue;
        }
        if !crate::output::is_folder_code(rd) {
            problems.push(Problem::new(
                at("rd"),
                "an RD is a code of letters, digits, `-` and `_`",
            ));
            continue;
        }
        if crate::output::starts_like_a_formula(name) {
            problems.push(Problem::new(
                at("ge_name"),
                "starts like a spreadsheet formula (`=`, `+`, `-`, `@`, tab, CR)",
            ));
            continue;
        }
        if let Some(first) = seen.insert(nr.to_owned(), line_no) {
            problems.push(Problem::new(
                at("ge_nr"),
                format!("gE {nr} is listed on line {first} already"),
            ));
            continue;
        }
        out.push(GeInfo {
            nr: nr.to_owned(),
            rd: rd.to_owned(),
            name: name.to_owned(),
        });
    }
    if out.is_empty() && problems.is_empty() {
        problems.push(Problem::new(
            Location::default(),
            "the register lists no gE",
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(pseudagg_core::Error::Definition {
            file: path.to_owned(),
            problems,
        })
    }
}

impl<'a> Counter<'a> {
    #[must_use]
    pub fn new(plan: &'a ReportPlan, month_end_days: i32) -> Self {
        let categories = plan.combinations();
        Self {
            plan,
            month_end_days,
            index: FxHashMap::default(),
            counts: Counts {
                ges: Vec::new(),
                values: Vec::new(),
                categories,
                indicators: plan.indicators.len(),
                rows_read: 0,
                rows_counted: 0,
            },
            first_row_of: HashMap::new(),
            registered: false,
            problems: Problems::default(),
        }
    }

    /// A counter whose gEs are those of a register (see [`read_register`]).
    #[must_use]
    pub fn with_register(plan: &'a ReportPlan, month_end_days: i32, ges: Vec<GeInfo>) -> Self {
        let mut c = Self::new(plan, month_end_days);
        for g in ges {
            c.index.insert(g.nr.clone(), c.counts.ges.len());
            c.counts
                .values
                .push(vec![0; c.counts.categories * c.counts.indicators]);
            c.counts.ges.push(g);
        }
        c.registered = true;
        c
    }

    /// Counts one batch of validated rows.
    pub fn add(&mut self, batch: &RecordBatch) {
        self.count(batch, false);
    }

    /// Counts one batch and says, for each row, where it was counted: its gE (index in the
    /// counts), its category and its indicators (bit `k` for indicator `k`); `None` for a row
    /// outside the population or refused. Reports protected together build their atoms from it.
    pub fn add_classified(&mut self, batch: &RecordBatch) -> Vec<Option<RowClass>> {
        self.count(batch, true)
    }

    /// Counts one batch; with `classify`, also says where each row was counted (else the list is
    /// empty: a national extract's 5.5 M rows need no classes when one report is counted).
    fn count(&mut self, batch: &RecordBatch, classify: bool) -> Vec<Option<RowClass>> {
        let mut classes = if classify {
            vec![None; batch.num_rows()]
        } else {
            Vec::new()
        };
        let p = self.plan;
        let first_row = self.counts.rows_read + 1;
        self.counts.rows_read += batch.num_rows() as u64;
        let population = eval(&p.population, batch, self.month_end_days);
        let categories: Vec<Vec<Vec<bool>>> = p
            .categories
            .iter()
            .map(|d| {
                d.iter()
                    .map(|c| eval(c, batch, self.month_end_days))
                    .collect()
            })
            .collect();
        let indicators: Vec<Vec<bool>> = p
            .indicators
            .iter()
            .map(|e| eval(e, batch, self.month_end_days))
            .collect();
        let dims = p.definition.dimension.all();
        let gi_of_row = self.ges_of_rows(batch, first_row);
        for row in (0..batch.num_rows()).filter(|&i| population[i]) {
            let row_no = first_row + row as u64;
            let gi = gi_of_row[row];
            if gi == usize::MAX {
                continue;
            }
            // The combination of the row's categories, the last dimension varying fastest.
            let mut category = 0;
            let mut refused = false;
            for (d, masks) in categories.iter().enumerate() {
                let mut hits = masks
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m[row])
                    .map(|(i, _)| i);
                let dim_name = dims[d].name.as_str();
                match (hits.next(), hits.next()) {
                    (Some(c), None) => category = category * masks.len() + c,
                    (None, _) => {
                        self.problems.push(Problem::new(
                            Location { row: Some(row_no), ..Location::default() },
                            format!("is counted, but falls into no category of `{dim_name}`: the categories must cover the population"),
                        ));
                        refused = true;
                        break;
                    }
                    (Some(_), Some(_)) => {
                        self.problems.push(Problem::new(
                            Location { row: Some(row_no), ..Location::default() },
                            format!("falls into more than one category of `{dim_name}`: categories must not overlap"),
                        ));
                        refused = true;
                        break;
                    }
                }
            }
            if refused {
                continue;
            }
            self.counts.rows_counted += 1;
            let cells = &mut self.counts.values[gi];
            let mut bits = 0_u64;
            for (k, mask) in indicators.iter().enumerate() {
                if mask[row] {
                    cells[category * self.counts.indicators + k] += 1;
                    bits |= 1 << (k % 64);
                }
            }
            if classify {
                classes[row] = Some(RowClass {
                    ge: gi as u32,
                    category: category as u16,
                    indicators: bits,
                });
            }
        }
        classes
    }

    /// The gE of each row (its index in the counts), registering gEs not seen before; `usize::MAX`
    /// for a row whose gE is refused (a problem is recorded).
    fn ges_of_rows(&mut self, batch: &RecordBatch, first_row: u64) -> Vec<usize> {
        // Every gE of the extract is in the grid, whether or not anybody of it is in the
        // population: a gE with nobody counted gets its row of zeros.
        let p = self.plan;
        let ge = batch.column(p.ge_column).as_string::<i32>();
        let rd = batch.column(p.rd_column).as_string::<i32>();
        let name = p.ge_name_column.map(|c| batch.column(c).as_string::<i32>());
        let mut gi_of_row = vec![usize::MAX; batch.num_rows()];
        for (row, slot) in gi_of_row.iter_mut().enumerate() {
            let row_no = first_row + row as u64;
            let ge_nr = ge.value(row);
            let gi = if let Some(&i) = self.index.get(ge_nr) {
                i
            } else if self.registered {
                self.problems.push(Problem::new(
                    Location { row: Some(row_no), ..Location::default() },
                    format!("has gE {ge_nr}, which the gE register does not list: add it to the register, or correct the extract"),
                ));
                continue;
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
            if info.rd != rd.value(row) && self.registered {
                self.problems.push(Problem::new(
                    Location { row: Some(row_no), ..Location::default() },
                    format!("puts gE {} under RD {}, but the gE register puts it under RD {}; correct the register or the extract",
                        ge_nr, rd.value(row), info.rd),
                ));
                continue;
            }
            if info.rd != rd.value(row) {
                self.problems.push(Problem::new(
                    Location { row: Some(row_no), ..Location::default() },
                    format!("puts gE {} under RD {}, but row {} puts it under RD {}; a gE belongs to one RD",
                        ge_nr, rd.value(row), self.first_row_of[&gi], info.rd),
                ));
                continue;
            }
            // One gE, one name: otherwise one of them would be picked silently. The names are
            // not shown (the column could hold anything), only where they differ.
            if let (Some(n), Some(col)) = (name, p.definition.ge_name_column.as_deref())
                && !self.registered
                && info.name != n.value(row)
            {
                self.problems.push(Problem::new(
                    Location {
                        row: Some(row_no),
                        column: Some(col.to_owned()),
                        ..Location::default()
                    },
                    format!(
                        "names gE {ge_nr} differently from row {}; a gE has one name in an extract",
                        self.first_row_of[&gi]
                    ),
                ));
                continue;
            }
            *slot = gi;
        }
        gi_of_row
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
