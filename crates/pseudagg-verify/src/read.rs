//! Reading Parquet files as text columns, with the parquet crate's own reader.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pseudagg_core::{Error, Result};

/// The `key=value` folders of a path relative to an output (`parquet/rd=NRW/part-00000.parquet`
/// -> `[(rd, NRW)]`), outermost first.
pub(crate) fn hive_keys(rel: &str) -> Vec<(String, String)> {
    let mut segments: Vec<&str> = rel.split('/').collect();
    segments.pop();
    segments
        .into_iter()
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Reads a Parquet file of a dataset as every client reads it with hive partitioning: a
/// `key=value` folder of its path that the file has no column for becomes a text column of that
/// value. (A column that the file has is left as it is, to be checked against its folder.)
pub(crate) fn read_parquet_hive(path: &Path, rel: &str) -> Result<TextFile> {
    let mut file = read_parquet(path)?;
    for (key, value) in hive_keys(rel) {
        if file.index(&key).is_some() {
            continue;
        }
        file.columns.push(key.clone());
        for (text, raw) in file.batches.iter_mut().zip(file.raw.iter_mut()) {
            let column = StringArray::from(vec![value.as_str(); raw.num_rows()]);
            text.push(column.clone());
            let mut fields: Vec<arrow_schema::FieldRef> =
                raw.schema().fields().iter().cloned().collect();
            fields.push(std::sync::Arc::new(arrow_schema::Field::new(
                &key,
                DataType::Utf8,
                false,
            )));
            let mut columns = raw.columns().to_vec();
            columns.push(std::sync::Arc::new(column));
            *raw = RecordBatch::try_new(
                std::sync::Arc::new(arrow_schema::Schema::new(fields)),
                columns,
            )
            .map_err(|e| Error::Format {
                path: path.to_owned(),
                reason: format!("cannot add its folder's `{key}`: {e}"),
            })?;
        }
    }
    Ok(file)
}

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
