//! Parquet extracts: `Utf8` (or `LargeUtf8`, `Utf8View`, dictionary of those) for text, `Date32` for
//! dates, `Boolean` for booleans.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::{DataType, Schema as ArrowSchema};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use pseudagg_core::{ColumnType, Error, Location, Problem, Problems, Result, Schema};

use crate::cell::ColumnCheck;
use crate::extract::{Chunk, batch_of, match_columns};
use crate::hashing::sha256_file;

pub(crate) struct ParquetSource {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    mapping: Vec<usize>,
    sha256: String,
    size: u64,
    total_rows: u64,
    rows_read: u64,
    max_problems: usize,
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
    pub(crate) fn open(
        path: &Path,
        schema: &Schema,
        batch_rows: usize,
        max_problems: usize,
    ) -> Result<Self> {
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
        let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let reader = builder
            .with_batch_size(batch_rows)
            .build()
            .map_err(|e| format_error(sanitise(&e.to_string())))?;
        Ok(Self {
            path: path.to_owned(),
            reader,
            mapping,
            sha256: sha256_file(path)?,
            size,
            total_rows,
            rows_read: 0,
            max_problems,
        })
    }

    pub(crate) fn progress(&self) -> (u64, u64) {
        let done = (self.size * self.rows_read)
            .checked_div(self.total_rows)
            .unwrap_or(self.size);
        (done, self.size)
    }

    pub(crate) fn next_chunk(
        &mut self,
        checks: &[ColumnCheck],
        arrow: &Arc<ArrowSchema>,
        first_row: u64,
    ) -> Result<Option<Chunk>> {
        let Some(batch) = self.reader.next() else {
            if first_row == 1 {
                return Err(Error::Format {
                    path: self.path.clone(),
                    reason: "the file holds no rows".to_owned(),
                });
            }
            return Ok(None);
        };
        let batch = batch.map_err(|e| Error::Format {
            path: self.path.clone(),
            reason: format!(
                "a data page cannot be decoded (damaged file?): {}",
                sanitise(&e.to_string())
            ),
        })?;
        self.rows_read += batch.num_rows() as u64;
        let mut problems = Vec::new();
        let mut hidden = 0;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(checks.len());
        for (check, &fi) in checks.iter().zip(&self.mapping) {
            let mut column = batch.column(fi).clone();
            if check.spec.ty == ColumnType::Str && column.data_type() != &DataType::Utf8 {
                column = arrow_cast::cast(&column, &DataType::Utf8).map_err(|_| Error::Format {
                    path: self.path.clone(),
                    reason: format!("column `{}` cannot be read as text", check.spec.name),
                })?;
            }
            let mut found = 0;
            let mut report = |i: usize, message: String| {
                if found < self.max_problems {
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
        let batch = batch_of(arrow, arrays, !problems.is_empty());
        Ok(Some(Chunk {
            batch,
            problems,
            hidden,
        }))
    }

    pub(crate) fn finish(self) -> (String, u64) {
        (self.sha256, self.size)
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
