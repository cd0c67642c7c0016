//! Parquet outputs, written deterministically: the same rows give the same bytes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray, UInt32Array};
use arrow_schema::Schema as ArrowSchema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use pseudagg_core::{Error, Result};
use serde::Serialize;

use crate::hashing::sha256_file;

/// The writer settings of every Parquet output: zstd, and a fixed `created_by` so that re-runs give
/// identical bytes. `metadata` goes into the file's key-value metadata.
#[must_use]
pub fn writer_properties(metadata: &[(&str, String)]) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_created_by(format!("pseudagg {}", pseudagg_core::TOOL_VERSION))
        .set_key_value_metadata(Some(
            metadata
                .iter()
                .map(|(k, v)| KeyValue::new((*k).to_owned(), v.clone()))
                .collect(),
        ))
        .build()
}

/// One written file, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// Relative to the output folder, `/`-separated.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

struct Part {
    writer: ArrowWriter<File>,
    rel: String,
    rows: u64,
}

/// Writes batches into `key=value/part-NNNNN.parquet` files below a root folder.
pub struct PartitionedWriter {
    root: PathBuf,
    key: String,
    schema: Arc<ArrowSchema>,
    properties: WriterProperties,
    max_rows_per_file: u64,
    open: BTreeMap<String, (Part, u32)>,
    done: Vec<FileInfo>,
}

impl std::fmt::Debug for PartitionedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedWriter")
            .field("root", &self.root)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn is_safe_partition(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl PartitionedWriter {
    #[must_use]
    pub fn new(
        root: &Path,
        key: &str,
        schema: Arc<ArrowSchema>,
        properties: WriterProperties,
    ) -> Self {
        Self {
            root: root.to_owned(),
            key: key.to_owned(),
            schema,
            properties,
            max_rows_per_file: 4_000_000,
            open: BTreeMap::new(),
            done: Vec::new(),
        }
    }

    /// Starts a new part file after this many rows.
    #[must_use]
    pub fn with_max_rows_per_file(mut self, rows: u64) -> Self {
        self.max_rows_per_file = rows.max(1);
        self
    }

    fn part(&mut self, value: &str) -> Result<&mut (Part, u32)> {
        if !self.open.contains_key(value) {
            if !is_safe_partition(value) {
                return Err(Error::Usage(format!(
                    "a value of the partition column `{}` is not usable as a folder name",
                    self.key
                )));
            }
            let part = self.open_part(value, 0)?;
            self.open.insert(value.to_owned(), (part, 0));
        }
        Ok(self.open.get_mut(value).expect("inserted above"))
    }

    fn open_part(&self, value: &str, index: u32) -> Result<Part> {
        let dir = self.root.join(format!("{}={value}", self.key));
        fs::create_dir_all(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
        let name = format!("part-{index:05}.parquet");
        let path = dir.join(&name);
        let file = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(self.properties.clone()))
            .map_err(|e| parquet_error(&path, &e))?;
        Ok(Part {
            writer,
            rel: format!("{}={value}/{name}", self.key),
            rows: 0,
        })
    }

    /// Makes sure the partition exists, even if no row ever goes into it.
    pub fn ensure_partition(&mut self, value: &str) -> Result<()> {
        self.part(value).map(|_| ())
    }

    /// Writes the rows of `batch` into the partitions that `batch`'s column `column` names.
    pub fn write(&mut self, batch: &RecordBatch, column: usize) -> Result<()> {
        let values = batch
            .column(column)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| {
                Error::Usage(format!("the partition column `{}` is not text", self.key))
            })?;
        if values.null_count() > 0 {
            return Err(Error::Usage(format!(
                "the partition column `{}` has an empty value",
                self.key
            )));
        }
        let mut groups: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (i, v) in values.iter().enumerate() {
            groups
                .entry(v.unwrap_or_default())
                .or_default()
                .push(i as u32);
        }
        for (value, rows) in groups {
            let slice = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows)).map_err(
                    |e| Error::Usage(format!("cannot split rows by `{}`: {e}", self.key)),
                )?
            };
            self.write_to(value, &slice)?;
        }
        Ok(())
    }

    fn write_to(&mut self, value: &str, batch: &RecordBatch) -> Result<()> {
        let max = self.max_rows_per_file;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let (part, _) = self.part(value)?;
            let room = (max - part.rows.min(max)) as usize;
            if room == 0 {
                self.roll(value)?;
                continue;
            }
            let take = room.min(batch.num_rows() - offset);
            let dir = self.root.clone();
            let (part, _) = self.part(value)?;
            part.writer
                .write(&batch.slice(offset, take))
                .map_err(|e| parquet_error(&dir.join(&part.rel), &e))?;
            part.rows += take as u64;
            offset += take;
        }
        Ok(())
    }

    fn roll(&mut self, value: &str) -> Result<()> {
        let (old, index) = self.open.remove(value).expect("rolled part is open");
        let next = self.open_part(value, index + 1)?;
        self.open.insert(value.to_owned(), (next, index + 1));
        let info = self.close(old)?;
        self.done.push(info);
        Ok(())
    }

    fn close(&self, part: Part) -> Result<FileInfo> {
        let path = self.root.join(&part.rel);
        let file = part
            .writer
            .into_inner()
            .map_err(|e| parquet_error(&path, &e))?;
        file.sync_all().map_err(|e| Error::io("sync", &path, e))?;
        let bytes = file
            .metadata()
            .map_err(|e| Error::io("inspect", &path, e))?
            .len();
        Ok(FileInfo {
            path: part.rel,
            rows: part.rows,
            bytes,
            sha256: sha256_file(&path)?,
        })
    }

    /// Closes every file and lists them, sorted by path.
    pub fn finish(mut self) -> Result<Vec<FileInfo>> {
        let open = std::mem::take(&mut self.open);
        for (_, (part, _)) in open {
            let info = self.close(part)?;
            self.done.push(info);
        }
        self.done.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(self.done)
    }
}

fn parquet_error(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::Format {
        path: path.to_owned(),
        reason: format!("writing Parquet failed: {e}"),
    }
}
