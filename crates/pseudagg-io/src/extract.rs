use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::Schema as ArrowSchema;
use pseudagg_core::{ColumnClass, Error, Location, Month, Problem, Problems, Result, Schema};

use crate::cell::{ColumnCheck, arrow_schema};
use crate::csv_in::CsvSource;
use crate::parquet_in::ParquetSource;
use crate::unique::{UniqueKeys, chunk_keys};

/// The character encoding of a CSV extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8, with or without byte-order mark.
    #[default]
    Utf8,
    /// Windows-1252 (the BA data warehouse's legacy export).
    Windows1252,
}

impl FromStr for Encoding {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(Self::Utf8),
            "windows-1252" | "cp1252" => Ok(Self::Windows1252),
            _ => Err("the encoding is utf-8 or windows-1252".to_owned()),
        }
    }
}

/// The file format of an extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractFormat {
    Csv,
    Parquet,
}

impl ExtractFormat {
    /// The format a file's name says: `.csv` (or `.txt`) or `.parquet`.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv" | "txt") => Ok(Self::Csv),
            Some("parquet" | "pq") => Ok(Self::Parquet),
            _ => Err(Error::Usage(format!(
                "cannot tell the format of {} from its name: name it *.csv or *.parquet",
                path.display()
            ))),
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }
}

/// How to read an extract.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The month the run is for; every row's Datenstand must be this month.
    pub month: Month,
    /// CSV only.
    pub encoding: Encoding,
    /// Rows per batch.
    pub batch_rows: usize,
    /// How many problems are listed before the rest are only counted.
    pub max_problems: usize,
    /// The schema columns (by index) the caller needs; `None`: all. A Parquet extract is then
    /// read only in these columns and the month and uniqueness columns, each checked cell by cell
    /// as always; the other columns are checked by name and type in the file's schema only, and
    /// come as null columns of type `Null` (see [`ExtractReader::arrow_schema`]). A CSV extract's
    /// other columns are checked by name in its header, and each record's number of fields.
    pub columns: Option<Vec<usize>>,
    /// With `columns`: check the other columns cell by cell all the same, as strictly as the
    /// read ones, but do not keep them (they still come as `Null` columns). A CSV's cells are
    /// checked as they are split; a Parquet extract is then decoded in every column, and the
    /// others are dropped as soon as their cells are checked.
    pub check_unread: bool,
    /// With `columns`: a Parquet extract's text columns among them that the file stores with a
    /// dictionary in every page come as `Dictionary(Int32, Utf8)` arrays, each distinct value
    /// checked once and no value copied per row. The others, the unique columns, the Datenstand
    /// and every column of a CSV extract come as `Utf8`: read text through [`crate::TextArray`].
    pub dictionaries: bool,
    /// Work done on each valid chunk on the reading threads, its result handed out with the
    /// batch ([`ExtractReader::next_worked`]).
    pub work: Option<ChunkWork>,
}

/// Work on each valid chunk of rows, done on the reading threads (the rayon pool) as soon as the
/// chunk is checked: counting a report's cells, say, so that the caller only merges. It gets the
/// batch and the number of its first row (1 for the file's first data row). A chunk with a
/// problem is not worked on: the reader hands out no batch after a problem.
#[derive(Clone)]
pub struct ChunkWork(Arc<WorkFn>);

/// The result of a [`ChunkWork`] on one chunk, before the caller names its type.
type Worked = Box<dyn Any + Send>;
type WorkFn = dyn Fn(&RecordBatch, u64) -> Worked + Send + Sync;

impl ChunkWork {
    pub fn new<T: Send + 'static>(
        work: impl Fn(&RecordBatch, u64) -> T + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(move |batch, first_row| {
            Box::new(work(batch, first_row)) as Worked
        }))
    }
}

impl std::fmt::Debug for ChunkWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkWork")
    }
}

impl ReadOptions {
    #[must_use]
    pub fn new(month: Month) -> Self {
        Self {
            month,
            encoding: Encoding::Utf8,
            batch_rows: 64 * 1024,
            max_problems: Problems::DEFAULT_LIMIT,
            columns: None,
            check_unread: false,
            dictionaries: false,
            work: None,
        }
    }
}

/// The input of a run as manifests record it: file name (not the path), format, hash and size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputNote {
    pub file: String,
    pub format: String,
    pub sha256: String,
    pub bytes: u64,
}

impl InputNote {
    #[must_use]
    pub fn new(path: &Path, summary: &ReadSummary) -> Self {
        Self {
            file: path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            format: summary.format.as_str().to_owned(),
            sha256: summary.sha256.clone(),
            bytes: summary.bytes,
        }
    }
}

/// What was read, once reading ended without problems.
#[derive(Debug, Clone)]
pub struct ReadSummary {
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    pub format: ExtractFormat,
}

/// A chunk of rows from a source: typed columns and the problems of single cells, with what the
/// reading thread took of it for the caller ([`seal`]).
pub(crate) struct Chunk {
    pub(crate) batch: RecordBatch,
    pub(crate) problems: Vec<Problem>,
    /// Problems found beyond the per-column limit, only counted.
    pub(crate) hidden: usize,
    /// For each unique column (in schema order), its keys grouped by bucket ([`chunk_keys`]).
    pub(crate) unique_keys: Vec<Vec<u128>>,
    /// Each month the Datenstand column names, with the first row that names it, in row order.
    pub(crate) months: Vec<(String, u64)>,
    /// The result of the reader's [`ChunkWork`], for a chunk without problems.
    pub(crate) work: Option<Worked>,
    /// The bytes of the file the chunk came from, where the source knows it.
    pub(crate) raw_bytes: Option<u64>,
}

/// What the reading threads take of each chunk they checked, shared by a source's tasks.
pub(crate) struct Sealing {
    /// Schema columns whose values must be unique.
    unique: Vec<usize>,
    month_column: Option<usize>,
    work: Option<ChunkWork>,
}

/// Completes a checked chunk on the reading thread: the uniqueness keys, the months named, and
/// the caller's work when the chunk has no problem.
pub(crate) fn seal(
    sealing: &Sealing,
    batch: RecordBatch,
    first_row: u64,
    (problems, hidden): (Vec<Problem>, usize),
    raw_bytes: Option<u64>,
) -> Chunk {
    let unique_keys = sealing
        .unique
        .iter()
        .map(|&ci| {
            batch
                .column(ci)
                .as_any()
                .downcast_ref::<StringArray>()
                .map(|values| chunk_keys(values, first_row))
                .unwrap_or_default()
        })
        .collect();
    let mut months: Vec<(String, u64)> = Vec::new();
    if let Some(values) = sealing
        .month_column
        .and_then(|ci| batch.column(ci).as_any().downcast_ref::<StringArray>())
    {
        // A value repeated from the row before changes nothing: nearly every row repeats it.
        let mut last: Option<&str> = None;
        for (i, v) in values.iter().enumerate() {
            let Some(v) = v else { continue };
            if last == Some(v) {
                continue;
            }
            last = Some(v);
            if !months.iter().any(|(m, _)| m == v) && v.parse::<Month>().is_ok() {
                months.push((v.to_owned(), first_row + i as u64));
            }
        }
    }
    let work = match &sealing.work {
        Some(work) if problems.is_empty() => Some((work.0)(&batch, first_row)),
        _ => None,
    };
    Chunk {
        batch,
        problems,
        hidden,
        unique_keys,
        months,
        work,
        raw_bytes,
    }
}

enum Source {
    Csv(Box<CsvSource>),
    Parquet(Box<ParquetSource>),
}

/// Reads an extract in validated batches. See the crate documentation.
pub struct ExtractReader {
    path: PathBuf,
    schema_name: String,
    arrow: Arc<ArrowSchema>,
    checks: Arc<Vec<ColumnCheck>>,
    source: Source,
    options: ReadOptions,
    problems: Problems,
    rows: u64,
    months_seen: BTreeMap<String, u64>,
    /// For each unique column: the column and its keys so far.
    unique: Vec<(usize, UniqueKeys)>,
    finished: bool,
}

impl std::fmt::Debug for ExtractReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractReader")
            .field("path", &self.path)
            .field("schema", &self.schema_name)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// Checks an extract's header row (or Parquet schema) against `schema`, reading nothing beyond it:
/// for a pre-flight, before any data row is read.
pub fn check_header(path: &Path, schema: &Schema, encoding: Encoding) -> Result<()> {
    match ExtractFormat::from_path(path)? {
        ExtractFormat::Csv => CsvSource::header(path, schema, encoding).map(drop),
        ExtractFormat::Parquet => {
            ParquetSource::header(path, schema, Problems::DEFAULT_LIMIT).map(drop)
        }
    }
}

impl ExtractReader {
    /// Opens an extract and checks its header (or Parquet schema) against `schema`.
    pub fn open(path: &Path, schema: &Schema, options: ReadOptions) -> Result<Self> {
        let format = ExtractFormat::from_path(path)?;
        let checks: Arc<Vec<ColumnCheck>> =
            Arc::new(schema.columns.iter().map(ColumnCheck::new).collect());
        let month_column = schema
            .columns
            .iter()
            .position(|c| c.class == ColumnClass::Meta && c.name == "datenstand");
        // The columns kept: the caller's, and those the month and uniqueness checks need. A
        // Parquet extract is decoded in the others too when they are to be checked
        // (`check_unread`); they are dropped once checked.
        let keep: Vec<bool> = match &options.columns {
            Some(wanted) => schema
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| wanted.contains(&i) || c.unique || Some(i) == month_column)
                .collect(),
            _ => vec![true; schema.columns.len()],
        };
        let decoded = if options.check_unread {
            vec![true; schema.columns.len()]
        } else {
            keep.clone()
        };
        // The text columns a Parquet extract may hand on as dictionaries (`dictionaries`), and
        // those decoded only to be checked (`check_unread`): each distinct value is then checked
        // once. The source keeps a column plain where the file stores it without a dictionary.
        let dictionary: Vec<bool> = schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let wanted = options.columns.as_ref().is_some_and(|w| w.contains(&i));
                format == ExtractFormat::Parquet
                    && c.ty == pseudagg_core::ColumnType::Str
                    && !c.unique
                    && Some(i) != month_column
                    && ((options.dictionaries && wanted) || (options.check_unread && !keep[i]))
            })
            .collect();
        let arrow = projected_schema(&arrow_schema(schema), &keep, &dictionary);
        let unique_columns: Vec<usize> = schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.unique)
            .map(|(i, _)| i)
            .collect();
        let sealing = Arc::new(Sealing {
            unique: unique_columns.clone(),
            month_column,
            work: options.work.clone(),
        });
        let source = match format {
            ExtractFormat::Csv => Source::Csv(Box::new(CsvSource::open(
                path,
                schema,
                checks.clone(),
                arrow.clone(),
                sealing.clone(),
                &keep,
                options.check_unread,
                options.encoding,
                options.batch_rows,
                options.max_problems,
            )?)),
            ExtractFormat::Parquet => Source::Parquet(Box::new(ParquetSource::open(
                path,
                schema,
                checks.clone(),
                &arrow,
                sealing,
                (&decoded, &keep, &dictionary),
                options.batch_rows,
                options.max_problems,
            )?)),
        };
        // The batches' schema as the source hands them out.
        let arrow = match &source {
            Source::Parquet(p) => p.arrow_schema(),
            Source::Csv(_) => arrow,
        };
        // A Parquet footer gives the row count: the sets are made once at their size, instead of
        // growing (and briefly doubling) a dozen times on a national extract. (A CSV's are sized
        // from its first chunk, in `check_unique`.)
        let rows = match &source {
            Source::Parquet(p) => usize::try_from(p.total_rows()).unwrap_or(0).min(50_000_000),
            Source::Csv(_) => 0,
        };
        let unique = unique_columns
            .into_iter()
            .map(|i| (i, UniqueKeys::with_capacity(rows)))
            .collect();
        Ok(Self {
            path: path.to_owned(),
            schema_name: schema.name.clone(),
            arrow,
            checks,
            source,
            problems: Problems::with_limit(options.max_problems),
            options,
            rows: 0,
            months_seen: BTreeMap::new(),
            unique,
            finished: false,
        })
    }

    /// The Arrow schema of the batches: the input schema's columns, in its order; a column not
    /// read (see [`ReadOptions::columns`]) has the type `Null`.
    #[must_use]
    pub fn arrow_schema(&self) -> Arc<ArrowSchema> {
        self.arrow.clone()
    }

    /// Bytes read so far and the file's size, for a progress bar.
    #[must_use]
    pub fn progress(&self) -> (u64, u64) {
        match &self.source {
            Source::Csv(s) => s.progress(),
            Source::Parquet(s) => s.progress(),
        }
    }

    /// The next batch of valid rows; `Ok(None)` at the end of a valid file. Once a problem is found
    /// the reader reads on to collect more (up to the limit) and then returns them all as an error.
    /// Some problems (a repeated identifier, a second month) are only known at the end: act on
    /// the batches, but publish nothing before this has returned `Ok(None)`.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        Ok(self.next_chunk()?.map(|(batch, _)| batch))
    }

    /// The next batch of valid rows with the result of [`ReadOptions::work`] on it, as
    /// [`Self::next_batch`].
    ///
    /// # Panics
    /// When the reader was opened without work, or with work of another result type.
    pub fn next_worked<T: 'static>(&mut self) -> Result<Option<(RecordBatch, T)>> {
        Ok(self.next_chunk()?.map(|(batch, work)| {
            let work = work.expect("the reader was opened with work");
            (
                batch,
                *work.downcast::<T>().expect("the work's result type"),
            )
        }))
    }

    fn next_chunk(&mut self) -> Result<Option<(RecordBatch, Option<Worked>)>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let first_row = self.rows + 1;
            let chunk = match &mut self.source {
                Source::Csv(s) => s.next_chunk(first_row)?,
                Source::Parquet(s) => s.next_chunk(first_row)?,
            };
            let Some(Chunk {
                batch,
                problems,
                hidden,
                unique_keys,
                months,
                work,
                raw_bytes,
            }) = chunk
            else {
                self.finished = true;
                self.check_months_at_end();
                self.check_unique_at_end();
                return if self.problems.is_empty() {
                    Ok(None)
                } else {
                    Err(self.input_error())
                };
            };
            self.rows += batch.num_rows() as u64;
            for p in problems {
                self.problems.push(p);
            }
            self.problems.count_unlisted(hidden);
            self.check_months(&months);
            self.add_unique(&unique_keys, raw_bytes, batch.num_rows());
            if self.problems.is_empty() {
                return Ok(Some((batch, work)));
            }
            // After the first problem no batch is handed out; reading goes on to count them all.
        }
    }

    /// Ends reading: the row count and the hash of the whole file.
    pub fn finish(self) -> Result<ReadSummary> {
        let (sha256, bytes, format) = match self.source {
            Source::Csv(s) => {
                let (sha, bytes) = s.finish();
                (sha, bytes, ExtractFormat::Csv)
            }
            Source::Parquet(s) => {
                let (sha, bytes) = s.finish()?;
                (sha, bytes, ExtractFormat::Parquet)
            }
        };
        Ok(ReadSummary {
            rows: self.rows,
            bytes,
            sha256,
            format,
        })
    }

    fn input_error(&mut self) -> Error {
        let checks = self.checks.clone();
        let mut problems = std::mem::take(&mut self.problems);
        problems.sort_by_row(|name| {
            checks
                .iter()
                .position(|c| c.spec.name == name)
                .unwrap_or(usize::MAX)
        });
        Error::Input {
            file: self.path.clone(),
            schema: self.schema_name.clone(),
            problems,
        }
    }

    fn check_months(&mut self, months: &[(String, u64)]) {
        let wanted = self.options.month.to_string();
        for (v, row) in months {
            if !self.months_seen.contains_key(v) {
                self.months_seen.insert(v.clone(), *row);
                if *v != wanted {
                    // A month is not personal data; naming it tells the steward what to fix.
                    self.problems.push(Problem::new(
                        Location::cell(*row, None, "datenstand"),
                        format!(
                            "holds the Datenstand {v}, but the run is for {wanted}; \
                             use the extract of {wanted} or run with --month {v}"
                        ),
                    ));
                }
            }
        }
    }

    fn check_months_at_end(&mut self) {
        if self.months_seen.len() > 1 {
            let months: Vec<&str> = self.months_seen.keys().map(String::as_str).collect();
            self.problems.push(Problem::new(
                Location::column("datenstand"),
                format!(
                    "the file holds {} different months ({}); an extract describes exactly one month, \
                     and combining months into a time series is not allowed: split the file by month",
                    months.len(),
                    months.join(", ")
                ),
            ));
        }
    }

    /// Files a chunk's uniqueness keys; repeats are found at the end.
    fn add_unique(&mut self, keys: &[Vec<u128>], raw_bytes: Option<u64>, rows: usize) {
        if let (Some(bytes), Some((_, seen))) = (raw_bytes, self.unique.first())
            && seen.is_empty()
            && rows > 0
        {
            // One guess of the row count from the first chunk, so the buckets do not grow (and
            // briefly double) a dozen times on a national extract.
            let (_, total) = self.progress();
            let per_row = (bytes as f64 / rows as f64).max(1.0);
            let estimate = ((total as f64 / per_row) * 1.05).min(50e6) as usize;
            for (_, seen) in &mut self.unique {
                seen.reserve(estimate);
            }
        }
        for ((_, seen), keys) in self.unique.iter_mut().zip(keys) {
            seen.add(keys);
        }
    }

    fn check_unique_at_end(&mut self) {
        for (ci, seen) in std::mem::take(&mut self.unique) {
            let name = &self.checks[ci].spec.name;
            for (row, earlier) in seen.repeats() {
                self.problems.push(Problem::new(
                    Location::cell(row, None, name.clone()),
                    format!(
                        "repeats the value of row {earlier}; each row is one person, \
                         so `{name}` must be unique: remove the duplicate row"
                    ),
                ));
            }
        }
    }
}

/// The batches' schema when only the `read` columns are read (the others are `Null` columns),
/// and the `dictionary` ones come dictionary-encoded.
fn projected_schema(
    arrow: &Arc<ArrowSchema>,
    read: &[bool],
    dictionary: &[bool],
) -> Arc<ArrowSchema> {
    if read.iter().all(|&r| r) && !dictionary.contains(&true) {
        return arrow.clone();
    }
    Arc::new(ArrowSchema::new(
        arrow
            .fields()
            .iter()
            .zip(read.iter().zip(dictionary))
            .map(|(f, (&r, &d))| match (r, d) {
                (false, _) => {
                    arrow_schema::Field::new(f.name(), arrow_schema::DataType::Null, true)
                }
                (true, true) => f.as_ref().clone().with_data_type(crate::dictionary_text()),
                (true, false) => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ))
}

/// Assembles a chunk's batch. A chunk with problems may hold nulls in non-nullable columns (where
/// a cell was bad); it is only checked further, never written, so its schema is relaxed.
pub(crate) fn batch_of(
    arrow: &Arc<ArrowSchema>,
    arrays: Vec<arrow_array::ArrayRef>,
    has_problems: bool,
) -> RecordBatch {
    let schema = if has_problems {
        Arc::new(ArrowSchema::new(
            arrow
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ))
    } else {
        arrow.clone()
    };
    RecordBatch::try_new(schema, arrays)
        .expect("columns are built to the schema's types and length")
}

/// Matches a file's column names to the schema: every schema column must be there once, and no
/// other column may be. Names are echoed only when they look like column names.
pub(crate) fn match_columns(
    names: &[String],
    schema: &Schema,
) -> std::result::Result<Vec<usize>, Problems> {
    let mut problems = Problems::default();
    let shown = |i: usize, name: &str| {
        if pseudagg_core::is_plain_identifier(name) {
            format!("column {} `{name}`", i + 1)
        } else {
            format!(
                "column {} (its name is not shown: it is not a lower-case column name)",
                i + 1
            )
        }
    };
    if !names.is_empty() && names.iter().all(|n| schema.column(n).is_none()) {
        problems.push(Problem::new(
            Location::default(),
            format!(
                "none of the file's {} column names belongs to the schema `{}`: the file has no header row, \
                 uses another separator than `;`, or is another kind of extract",
                names.len(),
                schema.name
            ),
        ));
        return Err(problems);
    }
    let mut first_at: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(first) = first_at.get(name.as_str()) {
            problems.push(Problem::new(
                Location::default(),
                format!(
                    "{} repeats the name of column {}; every column name may occur once",
                    shown(i, name),
                    first + 1
                ),
            ));
            continue;
        }
        first_at.insert(name, i);
        if schema.column(name).is_none() {
            problems.push(Problem::new(
                Location::default(),
                format!(
                    "{} is not part of the schema `{}`; an unknown column could hold personal data, so it is \
                     refused: remove it from the extract, or map it to a class in the pipeline's `extra-columns`",
                    shown(i, name),
                    schema.name
                ),
            ));
        }
    }
    let mut mapping = Vec::with_capacity(schema.columns.len());
    for col in &schema.columns {
        if let Some(&i) = first_at.get(col.name.as_str()) {
            mapping.push(i);
        } else {
            problems.push(Problem::new(
                Location::column(col.name.clone()),
                format!(
                    "is missing; the schema `{}` requires it ({})",
                    schema.name, col.description
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(mapping)
    } else {
        Err(problems)
    }
}
