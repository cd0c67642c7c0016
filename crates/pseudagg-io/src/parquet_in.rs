//! Parquet extracts: `Utf8` (or `LargeUtf8`, `Utf8View`, dictionary of those) for text, `Date32` for
//! dates, `Boolean` for booleans.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema as ArrowSchema};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use pseudagg_core::{ColumnType, Error, Location, Problem, Problems, Result, Schema};

use crate::cell::ColumnCheck;
use crate::extract::{Chunk, batch_of, match_columns, unique_fingerprints};
use crate::hashing::sha256_file;

/// Reads in a thread of its own, one batch ahead of the caller at most [`IN_FLIGHT`]; each batch is
/// checked on the rayon pool. The caller gets the batches in file order.
pub(crate) struct ParquetSource {
    path: PathBuf,
    pending: Receiver<Pending>,
    sha256: String,
    size: u64,
    total_rows: u64,
    rows_read: Arc<AtomicU64>,
}

/// What the caller needs to check a batch, shared by the pool's tasks.
struct CheckContext {
    path: PathBuf,
    checks: Arc<Vec<ColumnCheck>>,
    arrow: Arc<ArrowSchema>,
    mapping: Vec<usize>,
    max_problems: usize,
    /// Schema columns whose values must be unique.
    unique: Vec<usize>,
}

/// Checked batches that may wait for the caller.
const IN_FLIGHT: usize = 3;

enum Pending {
    Chunk(Receiver<Result<Chunk>>),
    Failed(Error),
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
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
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

    pub(crate) fn open(
        path: &Path,
        schema: &Schema,
        checks: Arc<Vec<ColumnCheck>>,
        arrow: Arc<ArrowSchema>,
        batch_rows: usize,
        max_problems: usize,
    ) -> Result<Self> {
        let format_error = |reason: String| Error::Format {
            path: path.to_owned(),
            reason,
        };
        let (builder, size, mapping) = Self::header(path, schema, max_problems)?;
        let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let reader = builder
            .with_batch_size(batch_rows)
            .build()
            .map_err(|e| format_error(sanitise(&e.to_string())))?;
        let sha256 = sha256_file(path)?;
        let context = Arc::new(CheckContext {
            path: path.to_owned(),
            checks,
            arrow,
            mapping,
            max_problems,
            unique: schema
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.unique)
                .map(|(i, _)| i)
                .collect(),
        });
        let rows_read = Arc::new(AtomicU64::new(0));
        let (sender, pending) = sync_channel(IN_FLIGHT);
        let counter = rows_read.clone();
        std::thread::Builder::new()
            .name("pseudagg-parquet".to_owned())
            .spawn(move || read_ahead(reader, &context, &sender, &counter))
            .map_err(|e| Error::io("start a reading thread for", path, e))?;
        Ok(Self {
            path: path.to_owned(),
            pending,
            sha256,
            size,
            total_rows,
            rows_read,
        })
    }

    pub(crate) fn progress(&self) -> (u64, u64) {
        let done = (self.size * self.rows_read.load(Ordering::Relaxed))
            .checked_div(self.total_rows)
            .unwrap_or(self.size);
        (done, self.size)
    }

    pub(crate) fn next_chunk(&mut self, first_row: u64) -> Result<Option<Chunk>> {
        let Ok(next) = self.pending.recv() else {
            if first_row == 1 {
                return Err(Error::Format {
                    path: self.path.clone(),
                    reason: "the file holds no rows".to_owned(),
                });
            }
            return Ok(None);
        };
        match next {
            Pending::Failed(e) => Err(e),
            Pending::Chunk(chunk) => chunk.recv().unwrap_or_else(|_| {
                Err(Error::Format {
                    path: self.path.clone(),
                    reason: "checking a batch of rows failed unexpectedly (a bug in pseudagg)"
                        .to_owned(),
                })
            }),
        }
        .map(Some)
    }

    pub(crate) fn finish(self) -> (String, u64) {
        (self.sha256, self.size)
    }
}

/// The reading thread: decodes batches and hands each to the pool to be checked.
fn read_ahead(
    reader: ParquetRecordBatchReader,
    context: &Arc<CheckContext>,
    pending: &SyncSender<Pending>,
    rows_read: &AtomicU64,
) {
    let mut first_row = 1u64;
    for batch in reader {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                let _ = pending.send(Pending::Failed(Error::Format {
                    path: context.path.clone(),
                    reason: format!(
                        "a data page cannot be decoded (damaged file?): {}",
                        sanitise(&e.to_string())
                    ),
                }));
                return;
            }
        };
        let rows = batch.num_rows() as u64;
        let (sender, receiver) = sync_channel(1);
        if pending.send(Pending::Chunk(receiver)).is_err() {
            return;
        }
        rows_read.fetch_add(rows, Ordering::Relaxed);
        let context = Arc::clone(context);
        rayon::spawn(move || {
            let _ = sender.send(check_batch(&context, &batch, first_row));
        });
        first_row += rows;
    }
}

/// Checks one batch's cells against the schema, column by column.
fn check_batch(context: &CheckContext, batch: &RecordBatch, first_row: u64) -> Result<Chunk> {
    let checks: Vec<ColumnCheck> = context.checks.iter().cloned().collect();
    let mut problems = Vec::new();
    let mut hidden = 0;
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(checks.len());
    for (check, &fi) in checks.iter().zip(&context.mapping) {
        let mut column = batch.column(fi).clone();
        if check.spec.ty == ColumnType::Str && column.data_type() != &DataType::Utf8 {
            column = arrow_cast::cast(&column, &DataType::Utf8).map_err(|_| Error::Format {
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
        if let Some(strings) = column.as_any().downcast_ref::<StringArray>() {
            for (i, v) in strings.iter().enumerate() {
                match v {
                    Some("") if !check.spec.nullable => report(i, check.null_message()),
                    Some(v) if !v.is_empty() => {
                        if let Err(message) = check.check_str(v) {
                            report(i, message);
                        }
                    }
                    _ => {}
                }
            }
        }
        arrays.push(column);
    }
    problems.sort_by_key(|p| p.location.row);
    let fingerprints = unique_fingerprints(&arrays, &context.unique);
    let batch = batch_of(&context.arrow, arrays, !problems.is_empty());
    Ok(Chunk {
        batch,
        problems,
        hidden,
        fingerprints: Some(fingerprints),
        raw_bytes: None,
    })
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
