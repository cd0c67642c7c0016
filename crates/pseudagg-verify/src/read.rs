//! Reading Parquet files as text columns, with the parquet crate's own reader.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, Int32Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Encoding;
use parquet::file::metadata::ParquetMetaData;
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
            text.push(TextColumn::Plain(column.clone()));
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

/// A column of a batch as text: plain, or a dictionary's keys and values (a column the file stores
/// with a dictionary in every page is read as one, so that each distinct value is judged once).
pub(crate) enum TextColumn {
    Plain(StringArray),
    /// Every key is an index into `values` (checked when read).
    Dictionary {
        keys: Int32Array,
        values: StringArray,
    },
}

impl TextColumn {
    fn value(&self, row: usize) -> Option<&str> {
        match self {
            Self::Plain(a) => a.is_valid(row).then(|| a.value(row)),
            Self::Dictionary { keys, values } => {
                let k = keys.is_valid(row).then(|| keys.value(row))?;
                values
                    .is_valid(k as usize)
                    .then(|| values.value(k as usize))
            }
        }
    }

    fn key(&self, row: usize) -> Option<usize> {
        match self {
            Self::Plain(_) => None,
            Self::Dictionary { keys, .. } => keys.is_valid(row).then(|| keys.value(row) as usize),
        }
    }
}

/// A file's column names, its key-value metadata, and its batches as text.
pub(crate) struct TextFile {
    pub columns: Vec<String>,
    pub metadata: HashMap<String, String>,
    pub batches: Vec<Vec<TextColumn>>,
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
        self.batches[batch][column].value(row)
    }

    /// The row's key in its batch's dictionary of the column (rows with one key hold one value);
    /// `None` for a column read plain, or a null.
    pub fn key(&self, batch: usize, column: usize, row: usize) -> Option<usize> {
        self.batches[batch][column].key(row)
    }
}

pub(crate) fn read_parquet(path: &Path) -> Result<TextFile> {
    let bad = |e: &dyn std::fmt::Display| Error::Format {
        path: path.to_owned(),
        reason: format!("cannot be read as Parquet: {e}"),
    };
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?;
    // Text columns stored with a dictionary in every page are read as dictionaries.
    let flat = builder.parquet_schema().num_columns() == builder.schema().fields().len();
    let fields: Vec<arrow_schema::Field> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let f = f.as_ref().clone();
            if flat
                && f.data_type() == &DataType::Utf8
                && dictionary_pages_only(builder.metadata(), i)
            {
                f.with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::Utf8),
                ))
            } else {
                f
            }
        })
        .collect();
    let hint = std::sync::Arc::new(arrow_schema::Schema::new_with_metadata(
        fields,
        builder.schema().metadata().clone(),
    ));
    let options = ArrowReaderOptions::new().with_schema(hint);
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
        File::open(path).map_err(|e| Error::io("open", path, e))?,
        ArrowReaderMetadata::try_new(builder.metadata().clone(), options).map_err(|e| bad(&e))?,
    );
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
                if let Some(dict) = c.as_dictionary_opt::<Int32Type>()
                    && let Some(values) = dict.values().as_string_opt::<i32>()
                {
                    let keys = dict.keys().clone();
                    if keys
                        .iter()
                        .flatten()
                        .any(|k| usize::try_from(k).map_or(true, |k| k >= values.len()))
                    {
                        return Err(bad(&"a dictionary key beyond its dictionary"));
                    }
                    return Ok(TextColumn::Dictionary {
                        keys,
                        values: values.clone(),
                    });
                }
                let cast = arrow_cast::cast(c, &DataType::Utf8).map_err(|e| bad(&e))?;
                Ok(TextColumn::Plain(
                    cast.as_any()
                        .downcast_ref::<StringArray>()
                        .expect("cast to Utf8")
                        .clone(),
                ))
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

/// Whether every data page of the file's leaf column `column` is dictionary-encoded, in every row
/// group (a column whose dictionary fell back to plain pages would be hashed again as one).
fn dictionary_pages_only(metadata: &ParquetMetaData, column: usize) -> bool {
    metadata.row_groups().iter().all(|g| {
        g.columns().get(column).is_some_and(|c| {
            c.dictionary_page_offset().is_some()
                && c.page_encoding_stats_mask().is_some_and(|m| {
                    m.is_only(Encoding::PLAIN_DICTIONARY) || m.is_only(Encoding::RLE_DICTIONARY)
                })
        })
    })
}
