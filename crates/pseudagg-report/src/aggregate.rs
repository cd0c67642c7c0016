//! Counting: one pass over the extract, one counter per (gE, category, indicator).

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use arrow_array::RecordBatch;
use pseudagg_core::{Location, Problem, Problems};
use pseudagg_io::TextArray;

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
    /// A row's gE disagreed with an earlier row's (RD or name), or is outside the register.
    ge_problem: bool,
}

/// One chunk of rows counted on a reading thread, apart from every other chunk: its gEs are
/// numbered in the order the chunk names them. [`Counter::merge`] adds it to the report's counts.
#[derive(Debug)]
pub struct Partial {
    counts: Counts,
    first_row_of: HashMap<usize, u64>,
    problems: Problems,
    ge_problem: bool,
    classes: Vec<Option<RowClass>>,
}

impl Partial {
    /// Counts `batch`, whose first row is `first_row`, for `plan` (see [`Counter::add_classified`]
    /// for `classify`).
    #[must_use]
    pub fn count(
        plan: &ReportPlan,
        month_end_days: i32,
        batch: &RecordBatch,
        first_row: u64,
        classify: bool,
    ) -> Self {
        let mut c = Counter::new(plan, month_end_days);
        c.counts.rows_read = first_row - 1;
        let classes = c.count(batch, classify);
        Self {
            counts: c.counts,
            first_row_of: c.first_row_of,
            problems: c.problems,
            ge_problem: c.ge_problem,
            classes,
        }
    }
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
            ge_problem: false,
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

    /// Adds `partial`, the count of `batch` on a reading thread ([`Partial::count`]), and says
    /// where each row was counted as [`Self::add_classified`] does (with `classify`; else the list
    /// is empty). The batches come in file order. Where the chunk's gEs disagree with those
    /// counted before (their RD or name, or the register), the batch is counted again here row by
    /// row, so that each row's problem is named as a count on one thread names it.
    pub fn merge(
        &mut self,
        partial: Partial,
        batch: &RecordBatch,
        classify: bool,
    ) -> Vec<Option<RowClass>> {
        debug_assert_eq!(
            partial.counts.rows_read,
            self.counts.rows_read + batch.num_rows() as u64,
            "chunks merge in file order"
        );
        // Each of the chunk's gEs: the report's index, or `None` for a gE not seen before.
        let mut known: Vec<Option<usize>> = Vec::with_capacity(partial.counts.ges.len());
        let agrees = !partial.ge_problem
            && partial.counts.ges.iter().all(|g| {
                let gi = self.index.get(&g.nr).copied();
                known.push(gi);
                gi.map_or(!self.registered, |gi| {
                    let info = &self.counts.ges[gi];
                    info.rd == g.rd && (self.registered || info.name == g.name)
                })
            });
        if !agrees {
            return self.count(batch, classify);
        }
        let Partial {
            counts,
            first_row_of,
            problems,
            classes,
            ..
        } = partial;
        let mut global = Vec::with_capacity(known.len());
        for (local, (ge, values)) in counts.ges.into_iter().zip(counts.values).enumerate() {
            let gi = known[local].unwrap_or_else(|| {
                let gi = self.counts.ges.len();
                self.index.insert(ge.nr.clone(), gi);
                self.first_row_of.insert(gi, first_row_of[&local]);
                self.counts.ges.push(ge);
                self.counts.values.push(vec![0; values.len()]);
                gi
            });
            for (total, v) in self.counts.values[gi].iter_mut().zip(values) {
                *total += v;
            }
            global.push(gi);
        }
        self.counts.rows_read = counts.rows_read;
        self.counts.rows_counted += counts.rows_counted;
        self.problems.append(problems);
        classes
            .into_iter()
            .map(|c| {
                c.map(|c| RowClass {
                    ge: global[c.ge as usize] as u32,
                    ..c
                })
            })
            .collect()
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
            for &(i, j) in &p.declared_exclusive {
                if bits & (1 << i) != 0 && bits & (1 << j) != 0 {
                    let name = |k: usize| p.definition.indicators[k].name.as_str();
                    self.problems.push(Problem::new(
                        Location { row: Some(row_no), ..Location::default() },
                        format!(
                            "is counted in both `{}` and `{}`, which the definition declares exclusive (`excludes`): the audit would assume what is not true; correct the definition or the extract",
                            name(i),
                            name(j)
                        ),
                    ));
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
        let text = |c: usize| {
            TextArray::of(batch.column(c).as_ref()).expect("the gE columns are read as text")
        };
        let (ge, rd) = (text(p.ge_column), text(p.rd_column));
        let name = p.ge_name_column.map(text);
        // Dictionary-encoded columns (Parquet): a row whose gE, RD and name keys are those of a
        // row already accepted in this batch is that row's gE, without comparing text.
        let mut accepted: FxHashMap<(usize, usize, Option<usize>), usize> = FxHashMap::default();
        let keys = |row: usize| {
            Some((ge.key(row)?, rd.key(row)?, name.and_then(|n| n.key(row))))
                .filter(|(_, _, n)| name.is_none() || n.is_some())
        };
        let mut gi_of_row = vec![usize::MAX; batch.num_rows()];
        for (row, slot) in gi_of_row.iter_mut().enumerate() {
            let row_keys = keys(row);
            if let Some(&gi) = row_keys.and_then(|k| accepted.get(&k)) {
                *slot = gi;
                continue;
            }
            let row_no = first_row + row as u64;
            let ge_nr = ge.value(row).unwrap_or_default();
            let rd_value = rd.value(row).unwrap_or_default();
            let name_value = name.and_then(|n| n.value(row)).unwrap_or_default();
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
                    rd: rd_value.to_owned(),
                    name: name_value.to_owned(),
                });
                self.counts
                    .values
                    .push(vec![0; self.counts.categories * self.counts.indicators]);
                i
            };
            let info = &self.counts.ges[gi];
            // gE and RD numbers are organisational units, not personal data: naming them helps.
            if info.rd != rd_value && self.registered {
                self.problems.push(Problem::new(
                    Location { row: Some(row_no), ..Location::default() },
                    format!("puts gE {} under RD {}, but the gE register puts it under RD {}; correct the register or the extract",
                        ge_nr, rd_value, info.rd),
                ));
                continue;
            }
            if info.rd != rd_value {
                self.problems.push(Problem::new(
                    Location { row: Some(row_no), ..Location::default() },
                    format!("puts gE {} under RD {}, but row {} puts it under RD {}; a gE belongs to one RD",
                        ge_nr, rd_value, self.first_row_of[&gi], info.rd),
                ));
                continue;
            }
            // One gE, one name: otherwise one of them would be picked silently. The names are
            // not shown (the column could hold anything), only where they differ.
            if let (Some(_), Some(col)) = (name, p.definition.ge_name_column.as_deref())
                && !self.registered
                && info.name != name_value
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
            if let Some(k) = row_keys {
                accepted.insert(k, gi);
            }
        }
        self.ge_problem |= gi_of_row.contains(&usize::MAX);
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use arrow_array::{Array, ArrayRef, DictionaryArray, StringArray};
    use arrow_schema::{Field, Schema};
    use pseudagg_io::{ExtractReader, ReadOptions, parse_date};

    use super::*;

    fn plan() -> ReportPlan {
        ReportPlan::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../pipelines/gefluechtete.toml"
        )))
        .unwrap()
    }

    fn month_end() -> i32 {
        parse_date("2025-03-31").unwrap()
    }

    /// The committed sample in batches of `rows`.
    fn batches(plan: &ReportPlan, rows: usize) -> Vec<RecordBatch> {
        let sample = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/opds-person-2025-03.csv"
        );
        let mut read = ReadOptions::new("2025-03".parse().unwrap());
        read.batch_rows = rows;
        let mut reader = ExtractReader::open(Path::new(sample), &plan.schema, read).unwrap();
        let mut out = Vec::new();
        while let Some(b) = reader.next_batch().unwrap() {
            out.push(b);
        }
        out
    }

    /// Counted on one thread, batch by batch.
    fn in_one(
        plan: &ReportPlan,
        batches: &[RecordBatch],
    ) -> (Result<Counts, Problems>, Vec<RowClass>) {
        let mut c = Counter::new(plan, month_end());
        let classes = batches
            .iter()
            .flat_map(|b| c.add_classified(b))
            .flatten()
            .collect();
        (c.finish(), classes)
    }

    /// Counted chunk by chunk apart, then merged.
    fn merged(
        plan: &ReportPlan,
        batches: &[RecordBatch],
    ) -> (Result<Counts, Problems>, Vec<RowClass>) {
        let mut c = Counter::new(plan, month_end());
        let mut first_row = 1;
        let mut classes = Vec::new();
        for b in batches {
            let partial = Partial::count(plan, month_end(), b, first_row, true);
            classes.extend(c.merge(partial, b, true).into_iter().flatten());
            first_row += b.num_rows() as u64;
        }
        (c.finish(), classes)
    }

    fn same_counts(a: &Counts, b: &Counts) {
        assert_eq!(a.ges, b.ges);
        assert_eq!(a.values, b.values);
        assert_eq!((a.rows_read, a.rows_counted), (b.rows_read, b.rows_counted));
    }

    /// A declared exclusion that the extract breaks stops the count, naming the rows; one it
    /// keeps counts as before.
    #[test]
    fn a_declared_exclusion_is_checked_on_every_row() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../pipelines/gefluechtete.toml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let declare = |line: &str, other: &str| {
            let with = text.replace(line, &format!("{line}\nexcludes = [\"{other}\"]"));
            assert_ne!(with, text);
            ReportPlan::from_toml(&with, Path::new(path)).unwrap()
        };
        // Course participants with a cooperation plan exist: the declaration is false.
        let wrong = declare(
            "when = \"massnahme = 'Berufssprachkurs'\"",
            "kooperationsplan",
        );
        let (counted, _) = in_one(&wrong, &batches(&wrong, 500));
        let problems = counted.unwrap_err().to_string();
        assert!(
            problems.contains("both `berufssprachkurs` and `kooperationsplan`")
                && problems.contains("row"),
            "{problems}"
        );
        // Nobody is employed both ways (which the expressions show too): the counts are as
        // without the declaration.
        let right = declare("when = \"beschaeftigung = 'sv_pflichtig'\"", "geringfuegig");
        assert!(right.exclusive.iter().any(|(_, g)| g.len() >= 2));
        let (counted, _) = in_one(&right, &batches(&right, 500));
        let (plain, _) = in_one(&plan(), &batches(&plan(), 500));
        let (counted, plain) = (counted.unwrap(), plain.unwrap());
        assert_eq!(counted.values, plain.values);
    }

    #[test]
    fn chunks_counted_apart_and_merged_count_as_one_pass() {
        let plan = plan();
        let (whole, whole_classes) = in_one(&plan, &batches(&plan, 1 << 16));
        let whole = whole.unwrap();
        assert!(whole.rows_counted > 0 && whole.ges.len() > 100);
        for rows in [1, 7, 150, 1999] {
            let (counts, classes) = merged(&plan, &batches(&plan, rows));
            same_counts(&counts.unwrap(), &whole);
            assert_eq!(classes, whole_classes, "batches of {rows}");
        }
    }

    /// The batches with every text column the report reads dictionary-encoded, as a Parquet
    /// extract is read; each batch's dictionaries in another order (values sorted backwards).
    fn as_dictionaries(plan: &ReportPlan, batches: &[RecordBatch]) -> Vec<RecordBatch> {
        let read = plan.columns_read();
        batches
            .iter()
            .map(|b| {
                let mut fields: Vec<Field> = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect();
                let mut columns: Vec<ArrayRef> = b.columns().to_vec();
                for &c in &read {
                    let Some(text) = columns[c].as_string_opt::<i32>() else {
                        continue;
                    };
                    let mut values: Vec<&str> = text.iter().flatten().collect();
                    values.sort_unstable_by(|a, b| b.cmp(a));
                    values.dedup();
                    let keys: Vec<Option<i32>> = text
                        .iter()
                        .map(|v| v.map(|v| values.iter().position(|w| *w == v).unwrap() as i32))
                        .collect();
                    let dict = DictionaryArray::<Int32Type>::try_new(
                        keys.into(),
                        Arc::new(StringArray::from(values)),
                    )
                    .unwrap();
                    fields[c] = fields[c].clone().with_data_type(dict.data_type().clone());
                    columns[c] = Arc::new(dict);
                }
                RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
            })
            .collect()
    }

    #[test]
    fn dictionary_encoded_columns_count_as_plain_ones() {
        let definition = plan();
        for rows in [150, 1 << 16] {
            let as_read = batches(&definition, rows);
            let (whole, whole_classes) = in_one(&definition, &as_read);
            let (dict, dict_classes) = in_one(&definition, &as_dictionaries(&definition, &as_read));
            same_counts(&dict.unwrap(), &whole.unwrap());
            assert_eq!(dict_classes, whole_classes);
        }
        // A gE under another RD is named alike, row by row, from dictionaries too.
        let moved = with_rd_moved(&definition, 150, 1499);
        let (Err(from_plain), _) = in_one(&definition, &moved) else {
            panic!("the moved gE was not found");
        };
        let (Err(dict), _) = merged(&definition, &as_dictionaries(&definition, &moved)) else {
            panic!("the moved gE was not found in dictionaries");
        };
        assert_eq!(dict.items(), from_plain.items());
    }

    /// Batches of `rows` where `row` (0-based in the file) names another RD for its gE.
    fn with_rd_moved(plan: &ReportPlan, rows: usize, row: usize) -> Vec<RecordBatch> {
        let mut left = row;
        batches(plan, rows)
            .into_iter()
            .map(|b| {
                if left >= b.num_rows() {
                    left -= b.num_rows();
                    return b;
                }
                let rd = b.column(plan.rd_column).as_string::<i32>();
                let moved: StringArray = (0..b.num_rows())
                    .map(|i| Some(if i == left { "ZZ" } else { rd.value(i) }))
                    .collect();
                left = usize::MAX;
                let mut columns: Vec<ArrayRef> = b.columns().to_vec();
                columns[plan.rd_column] = Arc::new(moved);
                RecordBatch::try_new(b.schema(), columns).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_ge_under_two_rds_in_different_chunks_is_named_as_in_one_pass() {
        let plan = plan();
        // Row 1,500 of the file moves its gE; the gE's first row is earlier, in another chunk.
        let (Err(whole), _) = in_one(&plan, &with_rd_moved(&plan, 1 << 16, 1499)) else {
            panic!("the moved gE was not found in one pass");
        };
        assert_eq!(whole.total(), 1);
        let problem = &whole.items()[0];
        assert_eq!(problem.location.row, Some(1500));
        assert!(
            problem.message.contains("under RD ZZ"),
            "{}",
            problem.message
        );
        for rows in [1, 100, 1499, 1500] {
            let (Err(found), _) = merged(&plan, &with_rd_moved(&plan, rows, 1499)) else {
                panic!("batches of {rows}: the moved gE was not found");
            };
            assert_eq!(found.items(), whole.items(), "batches of {rows}");
        }
    }
}
