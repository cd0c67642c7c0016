//! Reading Parquet files as text columns, with the parquet crate's own reader.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pseudagg_core::{Error, Result};

/// A file's column names, its key-value metadata, and its batches as text.
pub(crate) struct TextFile {
    pub columns: Vec<String>,
    pub metadata: HashMap<String, String>,
    pub batches: Vec<Vec<StringArray>>,
    /// The original batches, for typed reads.
    pub raw: Vec<RecordBatch>,
}

impl TextFile {
    pub fn rows(&self) -> usize {
        self.raw.iter().map(RecordBatch::num_rows).sum()
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// (1-based row, batch, row in batch) for every row.
    pub fn row_positions(&self) -> impl Iterator<Item = (u64, usize, usize)> + '_ {
        let mut n = 0u64;
        self.raw.iter().enumerate().flat_map(move |(b, batch)| {
            let start = n;
            n += batch.num_rows() as u64;
            (0..batch.num_rows()).map(move |r| (start + r as u64 + 1, b, r))
        })
    }

    pub fn text(&self, batch: usize, column: usize, row: usize) -> Option<&str> {
        let a = &self.batches[batch][column];
        a.is_valid(row).then(|| a.value(row))
    }
}

pub(crate) fn read_parquet(path: &Path) -> Result<TextFile> {
    let bad = |e: &dyn std::fmt::Display| Error::Format {
        path: path.to_owned(),
        reason: format!("cannot be read as Parquet: {e}"),
    };
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?;
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|e| (e.key.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let columns = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let reader = builder.build().map_err(|e| bad(&e))?;
    let mut raw = Vec::new();
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let text = batch
            .columns()
            .iter()
            .map(|c| {
                let cast = arrow_cast::cast(c, &DataType::Utf8).map_err(|e| bad(&e))?;
                Ok(cast
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to Utf8")
                    .clone())
            })
            .collect::<Result<Vec<_>>>()?;
        batches.push(text);
        raw.push(batch);
    }
    Ok(TextFile {
        columns,
        metadata,
        batches,
        raw,
    })
}
