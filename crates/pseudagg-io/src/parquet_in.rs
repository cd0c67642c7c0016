//! Parquet extracts: `Utf8` (or `LargeUtf8`, `Utf8View`, dictionary of those) for text, `Date32` for
//! dates, `Boolean` for booleans.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use arrow_array::{Array, ArrayRef, NullArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema as ArrowSchema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::basic::Encoding;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use pseudagg_core::{ColumnType, Error, Location, Problem, Problems, Result, Schema};
use rustc_hash::FxHashMap;

use crate::cell::ColumnCheck;
use crate::extract::{Chunk, Sealing, batch_of, match_columns, seal};
use crate::hashing::sha256_file;
use crate::text::TextArray;

/// Reads the file's row groups on the rayon pool, at most [`IN_FLIGHT`] ahead of the caller, each
/// decoded in the columns wanted only and checked there; the caller gets the batches in file order.
pub(crate) struct ParquetSource {
    path: PathBuf,
    pending: Receiver<Pending>,
    /// The row group being handed out, batch by batch as its task checks them.
    current: Option<Receiver<Decoded>>,
    /// The file's hash, taken on a thread of its own while the row groups are read.
    sha256: std::thread::JoinHandle<Result<String>>,
    size: u64,
    total_rows: u64,
    rows_read: Arc<AtomicU64>,
    /// The batches' schema.
    arrow: Arc<ArrowSchema>,
}

/// What the caller needs to check a batch, shared by the pool's tasks.
struct CheckContext {
    path: PathBuf,
    checks: Arc<Vec<ColumnCheck>>,
    arrow: Arc<ArrowSchema>,
    /// For each schema column: its position in the decoded (projected) batches, or `None` when
    /// it is not read.
    position: Vec<Option<usize>>,
    /// For each schema column: is it handed on once checked, or dropped (a `Null` column)?
    keep: Vec<bool>,
    /// For each schema column: is it handed on dictionary-encoded (a text column)?
    dictionary: Vec<bool>,
    max_problems: usize,
    sealing: Arc<Sealing>,
}

/// Row groups (or parts of one) decoded or being decoded ahead of the caller: one per core of a
/// small machine.
const IN_FLIGHT: usize = 2;

/// The most batches one reading task decodes: a larger row group is read by several tasks, each
/// selecting its rows (with the file's offset index, the pages before them are skipped unread). A
/// file written as one row group of a million rows is then read on every core too (4 batches of
/// the default 64 Ki rows: 256 Ki rows a task).
const PART_BATCHES: u64 = 4;

/// The rows of a row group that one reading task decodes.
#[derive(Debug, Clone, Copy)]
struct Part {
    group: usize,
    /// The first row of the part within its group, and its rows.
    offset: u64,
    rows: u64,
    /// Whether the part is the whole group (no selection needed).
    whole: bool,
    /// The part's first row in the file (1-based).
    first_row: u64,
}

enum Pending {
    /// A row group's checked batches, in order, each as soon as it is checked (so the caller
    /// frees a batch's memory while the group is still decoded, and the next batch reuses it).
    Group(Receiver<Decoded>),
}

/// What a row group's task sends: each checked batch (or the error that stops it), then `Done`.
/// A task that ends without `Done` failed unexpectedly.
enum Decoded {
    Chunk(Result<Chunk>),
    Done,
}

fn accepts(ty: ColumnType, data_type: &DataType) -> bool {
    match ty {
        ColumnType::Str => is_text(data_type),
        ColumnType::Date => matches!(data_type, DataType::Date32),
        ColumnType::Bool => matches!(data_type, DataType::Boolean),
    }
}

fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

fn wanted(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Str => "text (Utf8)",
        ColumnType::Date => "Date32",
        ColumnType::Bool => "Boolean",
    }
}

impl ParquetSource {
    /// Reads the footer only and matches the file's schema to the input schema: names and types.
    pub(crate) fn header(
        path: &Path,
        schema: &Schema,
        max_problems: usize,
    ) -> Result<(ParquetRecordBatchReaderBuilder<File>, u64, Vec<usize>)> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("inspect", path, e))?
            .len();
        let format_error = |reason: String| Error::Format {
            path: path.to_owned(),
            reason,
        };
        // The offset index (where it exists) lets a task that reads a part of a row group skip
        // the pages before it.
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
            file,
            ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional),
        )
        .map_err(|e| {
            format_error(format!(
                "it is not a readable Parquet file (truncated or damaged?): {}",
                sanitise(&e.to_string())
            ))
        })?;
        let file_schema = builder.schema().clone();
        let names: Vec<String> = file_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mapping = match_columns(&names, schema).map_err(|problems| Error::Input {
            file: path.to_owned(),
            schema: schema.name.clone(),
            problems,
        })?;
        let mut problems = Problems::with_limit(max_problems);
        for (spec, &fi) in schema.columns.iter().zip(&mapping) {
            let found = file_schema.field(fi).data_type();
            if !accepts(spec.ty, found) {
                problems.push(Problem::new(
                    Location::column(spec.name.clone()),
                    format!(
                        "has the Parquet type {found}, but the schema wants {}",
                        wanted(spec.ty)
                    ),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Input {
                file: path.to_owned(),
                schema: schema.name.clone(),
                problems,
            });
        }
        Ok((builder, size, mapping))
    }

    #[allow(clippy::too_many_arguments)] // the reader's settings, each passed on as it is
    pub(crate) fn open(
        path: &Path,
        schema: &Schema,
        checks: Arc<Vec<ColumnCheck>>,
        arrow: &ArrowSchema,
        sealing: Arc<Sealing>,
        (read, keep, dictionary): (&[bool], &[bool], &[bool]),
        batch_rows: usize,
        max_problems: usize,
    ) -> Result<Self> {
        let (builder, size, mapping) = Self::header(path, schema, max_problems)?;
        let metadata = builder.metadata().clone();
        let total_rows = metadata.file_metadata().num_rows().max(0) as u64;
        // The file's columns to decode, in file order, and where each schema column lands.
        let mut wanted: Vec<usize> = mapping
            .iter()
            .zip(read)
            .filter_map(|(&fi, &r)| r.then_some(fi))
            .collect();
        wanted.sort_unstable();
        let position = mapping
            .iter()
            .zip(read)
            .map(|(fi, &r)| r.then(|| wanted.binary_search(fi).expect("a wanted column")))
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
        let (hint, arrow, dictionary) =
            decoded_schemas(&builder, &metadata, &mapping, arrow, dictionary);
        let reader_metadata = ArrowReaderMetadata::try_new(
            metadata.clone(),
            ArrowReaderOptions::new().with_schema(hint),
        )
        .map_err(|e| Error::Format {
            path: path.to_owned(),
            reason: sanitise(&e.to_string()),
        })?;
        drop(builder);
        let sha256 = {
            let file = path.to_owned();
            std::thread::Builder::new()
                .name("pseudagg-sha256".to_owned())
                .spawn(move || sha256_file(&file))
                .map_err(|e| Error::io("start a hashing thread for", path, e))?
        };
        let batches_schema = arrow.clone();
        let context = Arc::new(CheckContext {
            path: path.to_owned(),
            checks,
            arrow,
            position,
            keep: keep.to_vec(),
            dictionary,
            max_problems,
            sealing,
        });
        let parts = parts_of(&metadata, batch_rows);
        let rows_read = Arc::new(AtomicU64::new(0));
        let (sender, pending) = sync_channel(IN_FLIGHT);
        let counter = rows_read.clone();
        let decode = Decode {
            path: path.to_owned(),
            metadata: reader_metadata,
            mask,
            batch_rows,
        };
        std::thread::Builder::new()
            .name("pseudagg-parquet".to_owned())
            .spawn(move || read_ahead(&Arc::new(decode), &parts, &context, &sender, &counter))
            .map_err(|e| Error::io("start a reading thread for", path, e))?;
        Ok(Self {
            path: path.to_owned(),
            pending,
            current: None,
            sha256,
            size,
            total_rows,
            rows_read,
            arrow: batches_schema,
        })
    }

    /// The schema of the batches handed out.
    pub(crate) fn arrow_schema(&self) -> Arc<ArrowSchema> {
        self.arrow.clone()
    }

    /// The rows the footer promises.
    pub(crate) fn total_rows(&self) -> u64 {
        self.total_rows
    }

    pub(crate) fn progress(&self) -> (u64, u64) {
        let done = (self.size * self.rows_read.load(Ordering::Relaxed))
            .checked_div(self.total_rows)
            .unwrap_or(self.size);
        (done, self.size)
    }

    pub(crate) fn next_chunk(&mut self, first_row: u64) -> Result<Option<Chunk>> {
        loop {
            if let Some(group) = &self.current {
                match group.recv() {
                    Ok(Decoded::Chunk(chunk)) => return chunk.map(Some),
                    Ok(Decoded::Done) => self.current = None,
                    Err(_) => {
                        return Err(Error::Format {
                            path: self.path.clone(),
                            reason:
                                "checking a batch of rows failed unexpectedly (a bug in pseudagg)"
                                    .to_owned(),
                        });
                    }
                }
                continue;
            }
            let Ok(Pending::Group(group)) = self.pending.recv() else {
                if first_row == 1 {
                    return Err(Error::Format {
                        path: self.path.clone(),
                        reason: "the file holds no rows".to_owned(),
                    });
                }
                return Ok(None);
            };
            self.current = Some(group);
        }
    }

    /// The file's hash and size.
    pub(crate) fn finish(self) -> Result<(String, u64)> {
        let sha256 = self.sha256.join().map_err(|_| Error::Format {
            path: self.path.clone(),
            reason: "hashing the file failed unexpectedly (a bug in pseudagg)".to_owned(),
        })??;
        Ok((sha256, self.size))
    }
}

/// What a row group's task needs to decode it: the file, its parsed footer and the columns.
struct Decode {
    path: PathBuf,
    metadata: ArrowReaderMetadata,
    mask: ProjectionMask,
    batch_rows: usize,
}

impl Decode {
    /// Decodes row group `group` (whose first row is `first_row`) and checks its batches, handing
    /// each to `out` (and its rows to `rows_read`) as soon as it is checked.
    fn part(
        &self,
        context: &CheckContext,
        part: Part,
        out: &Sender<Decoded>,
        rows_read: &AtomicU64,
    ) -> Result<()> {
        let damaged = |e: &dyn std::fmt::Display| Error::Format {
            path: self.path.clone(),
            reason: format!(
                "a data page cannot be decoded (damaged file?): {}",
                sanitise(&e.to_string())
            ),
        };
        let file = File::open(&self.path).map_err(|e| Error::io("open", &self.path, e))?;
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_projection(self.mask.clone())
                .with_row_groups(vec![part.group])
                .with_batch_size(self.batch_rows);
        if !part.whole {
            builder = builder.with_row_selection(RowSelection::from(vec![
                RowSelector::skip(part.offset as usize),
                RowSelector::select(part.rows as usize),
            ]));
        }
        let reader = builder.build().map_err(|e| damaged(&e))?;
        let mut first = part.first_row;
        for batch in reader {
            let batch = batch.map_err(|e| damaged(&e))?;
            let rows = batch.num_rows() as u64;
            let chunk = check_batch(context, &batch, first)?;
            rows_read.fetch_add(rows, Ordering::Relaxed);
            if out.send(Decoded::Chunk(Ok(chunk))).is_err() {
                // The caller stopped reading.
                return Ok(());
            }
            first += rows;
        }
        Ok(())
    }
}

/// The reading thread: hands each row group to the pool, in order, at most [`IN_FLIGHT`] ahead.
fn read_ahead(
    decode: &Arc<Decode>,
    parts: &[Part],
    context: &Arc<CheckContext>,
    pending: &SyncSender<Pending>,
    rows_read: &Arc<AtomicU64>,
) {
    for &part in parts {
        let (sender, receiver) = channel();
        if pending.send(Pending::Group(receiver)).is_err() {
            return;
        }
        let (decode, context, counter) =
            (Arc::clone(decode), Arc::clone(context), rows_read.clone());
        rayon::spawn(move || {
            let end = match decode.part(&context, part, &sender, &counter) {
                Ok(()) => Decoded::Done,
                Err(e) => Decoded::Chunk(Err(e)),
            };
            let _ = sender.send(end);
        });
    }
}

/// Distinct values of a column per batch whose check is remembered.
const MEMO_MAX: usize = 512;

/// Checks one batch's cells against the schema, column by column.
fn check_batch(context: &CheckContext, batch: &RecordBatch, first_row: u64) -> Result<Chunk> {
    let checks: Vec<ColumnCheck> = context.checks.iter().cloned().collect();
    let mut problems = Vec::new();
    let mut hidden = 0;
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(checks.len());
    for (((check, &at), &keep), &dictionary) in checks
        .iter()
        .zip(&context.position)
        .zip(&context.keep)
        .zip(&context.dictionary)
    {
        let Some(at) = at else {
            // Not read: checked by name and type in the file's schema only.
            arrays.push(Arc::new(NullArray::new(batch.num_rows())) as ArrayRef);
            continue;
        };
        let mut column = batch.column(at).clone();
        let text = if dictionary {
            crate::dictionary_text()
        } else {
            DataType::Utf8
        };
        if check.spec.ty == ColumnType::Str && column.data_type() != &text {
            column = arrow_cast::cast(&column, &text).map_err(|_| Error::Format {
                path: context.path.clone(),
                reason: format!("column `{}` cannot be read as text", check.spec.name),
            })?;
        }
        let mut found = 0;
        let mut report = |i: usize, message: String| {
            if found < context.max_problems {
                found += 1;
                let at = Location::cell(first_row + i as u64, None, check.spec.name.clone());
                problems.push(Problem::new(at, message));
            } else {
                hidden += 1;
            }
        };
        if !check.spec.nullable && column.null_count() > 0 {
            for i in (0..column.len()).filter(|&i| column.is_null(i)) {
                report(i, check.null_message());
            }
        }
        match TextArray::of(column.as_ref()) {
            Some(TextArray::Plain(strings)) => check_plain(check, strings, &mut report),
            Some(TextArray::Dictionary { keys, values }) => {
                if keys
                    .iter()
                    .flatten()
                    .any(|k| usize::try_from(k).map_or(true, |k| k >= values.len()))
                {
                    return Err(Error::Format {
                        path: context.path.clone(),
                        reason: format!(
                            "column `{}` holds a dictionary key beyond its dictionary (damaged file?)",
                            check.spec.name
                        ),
                    });
                }
                check_dictionary(check, keys, values, &mut report);
            }
            None => {}
        }
        arrays.push(if keep {
            column
        } else {
            Arc::new(NullArray::new(batch.num_rows())) as ArrayRef
        });
    }
    problems.sort_by_key(|p| p.location.row);
    let batch = batch_of(&context.arrow, arrays, !problems.is_empty());
    Ok(seal(
        &context.sealing,
        batch,
        first_row,
        (problems, hidden),
        None,
    ))
}

/// The schema to decode the file with (text columns wanted as dictionaries, and stored as
/// such, as dictionaries: the row groups' dictionary pages are kept and each row is a key), the
/// schema of the batches handed out (`arrow`, with a column the file stores plain handed on
/// plain), and which schema columns are decoded as dictionaries.
fn decoded_schemas(
    builder: &ParquetRecordBatchReaderBuilder<File>,
    metadata: &ParquetMetaData,
    mapping: &[usize],
    arrow: &ArrowSchema,
    dictionary: &[bool],
) -> (Arc<ArrowSchema>, Arc<ArrowSchema>, Vec<bool>) {
    let file_schema = builder.schema().clone();
    let mut fields: Vec<arrow_schema::Field> = file_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let dictionary: Vec<bool> = mapping
        .iter()
        .zip(dictionary)
        .map(|(&fi, &d)| {
            d && is_text(fields[fi].data_type()) && all_dictionary_encoded(metadata, fi)
        })
        .collect();
    for (&fi, _) in mapping.iter().zip(&dictionary).filter(|(_, d)| **d) {
        let f = fields[fi].clone().with_data_type(crate::dictionary_text());
        fields[fi] = f;
    }
    let handed_out = Arc::new(ArrowSchema::new(
        arrow
            .fields()
            .iter()
            .zip(&dictionary)
            .map(|(f, &d)| {
                if !d && f.data_type() == &crate::dictionary_text() {
                    f.as_ref().clone().with_data_type(DataType::Utf8)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
    ));
    let hint = Arc::new(ArrowSchema::new_with_metadata(
        fields,
        file_schema.metadata().clone(),
    ));
    (hint, handed_out, dictionary)
}

/// The reading tasks' parts of the file, in file order: each row group, or for a row group
/// larger than [`PART_BATCHES`] batches, its runs of that many whole batches (so the batches are
/// the same as one task's, whatever the parts).
fn parts_of(metadata: &ParquetMetaData, batch_rows: usize) -> Vec<Part> {
    let each = PART_BATCHES * batch_rows.max(1) as u64;
    let mut parts: Vec<Part> = Vec::new();
    let mut first_row = 1u64;
    for (group, g) in metadata.row_groups().iter().enumerate() {
        let rows = g.num_rows().max(0) as u64;
        let whole = rows <= each;
        let mut offset = 0;
        while offset < rows || (rows == 0 && offset == 0) {
            let n = each.min(rows - offset);
            parts.push(Part {
                group,
                offset,
                rows: n,
                whole,
                first_row: first_row + offset,
            });
            offset += n.max(1);
        }
        first_row += rows;
    }
    parts
}

/// Whether every data page of the file's column `column` is dictionary-encoded, in every row
/// group (the writer's page statistics say so). A column whose dictionary grew too large and
/// fell back to plain pages is read plain: as a dictionary, every value would be hashed again.
fn all_dictionary_encoded(metadata: &ParquetMetaData, column: usize) -> bool {
    metadata.row_groups().iter().all(|g| {
        g.columns().get(column).is_some_and(|c| {
            c.dictionary_page_offset().is_some()
                && c.page_encoding_stats_mask().is_some_and(|m| {
                    m.is_only(Encoding::PLAIN_DICTIONARY) || m.is_only(Encoding::RLE_DICTIONARY)
                })
        })
    })
}

/// Checks a plain text column's cells. Most columns repeat a few values (categories, gE numbers):
/// each distinct value of the batch is checked once. A column with more than `MEMO_MAX` distinct
/// values checks the rest cell by cell. A value that fails is checked again in each cell, for the
/// cell's own message.
fn check_plain(check: &ColumnCheck, strings: &StringArray, report: &mut impl FnMut(usize, String)) {
    let mut memo: FxHashMap<&str, bool> = FxHashMap::default();
    let mut memo_on = true;
    for (i, v) in strings.iter().enumerate() {
        match v {
            Some("") if !check.spec.nullable => report(i, check.null_message()),
            Some(v) if !v.is_empty() => {
                let known = if memo_on { memo.get(v).copied() } else { None };
                let ok = known.unwrap_or_else(|| {
                    let ok = check.check_str(v).is_ok();
                    if memo_on {
                        memo.insert(v, ok);
                        memo_on = memo.len() < MEMO_MAX;
                    }
                    ok
                });
                if !ok && let Err(message) = check.check_str(v) {
                    report(i, message);
                }
            }
            _ => {}
        }
    }
}

/// Checks a dictionary-encoded text column: each value of the dictionary once, and each row whose
/// key names a value that fails gets the value's message, as a plain column's cell would.
fn check_dictionary(
    check: &ColumnCheck,
    keys: &arrow_array::Int32Array,
    values: &StringArray,
    report: &mut impl FnMut(usize, String),
) {
    let verdicts: Vec<Option<String>> = values
        .iter()
        .map(|v| match v {
            Some("") if !check.spec.nullable => Some(check.null_message()),
            Some(v) if !v.is_empty() => check.check_str(v).err(),
            _ => None,
        })
        .collect();
    if verdicts.iter().all(Option::is_none) {
        return;
    }
    for (i, k) in keys.iter().enumerate() {
        if let Some(Some(message)) = k.map(|k| &verdicts[k as usize]) {
            report(i, message.clone());
        }
    }
}

/// Parquet's own messages describe structure, but cut them short and drop quoted parts in case a
/// decoder quotes bytes it could not read.
fn sanitise(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in message.chars().take(200) {
        match c {
            '"' | '\'' | '`' => {
                quoted = !quoted;
                if quoted {
                    out.push_str("<…>");
                }
            }
            _ if !quoted => out.push(c),
            _ => {}
        }
    }
    out
}
