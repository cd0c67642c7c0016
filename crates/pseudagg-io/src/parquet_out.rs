//! Parquet outputs, written deterministically: the same rows give the same bytes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray, UInt32Array};
use arrow_ipc::reader::FileReader as IpcReader;
use arrow_ipc::writer::FileWriter as IpcWriter;
use arrow_schema::Schema as ArrowSchema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use pseudagg_core::{Error, Result};
use rayon::prelude::*;
use serde::Serialize;

use crate::hashing::sha256_file;

/// The writer settings of every Parquet output: zstd, and a fixed `created_by` so that re-runs give
/// identical bytes. `metadata` goes into the file's key-value metadata.
#[must_use]
pub fn writer_properties(metadata: &[(&str, String)]) -> WriterProperties {
    writer_properties_with(metadata, &[])
}

/// [`writer_properties`], with dictionary encoding off for `distinct` columns: columns whose values
/// are (nearly) all different, such as pseudonyms, where a dictionary is work for nothing.
#[must_use]
pub fn writer_properties_with(
    metadata: &[(&str, String)],
    distinct: &[String],
) -> WriterProperties {
    let mut builder = WriterProperties::builder();
    for column in distinct {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column.as_str()), false);
    }
    builder
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid zstd level"),
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

/// The folder of a pseudonymised dataset's Parquet files below its month folder
/// (`OUT/<pipeline>/<month>/parquet/rd=<RD>/part-*.parquet`): the month folder holds the manifest,
/// which a folder read of the data must not meet.
pub const DATA_FOLDER: &str = "parquet";

/// One written file, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// Relative to the output folder, `/`-separated.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    /// A report table's sum of published values, for a reader to check its read against (the
    /// steward's manifest only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_sum: Option<u64>,
}

struct Part {
    writer: ArrowWriter<File>,
    rel: String,
    rows: u64,
}

/// Writes batches into `folder/key=value/part-NNNNN.parquet` files below a root folder, the hive
/// way: the key is in the folder name only, never a column of the files, so that a reader that
/// takes it from the path (pyarrow, pandas, polars, DuckDB) meets no second `key` of another type.
pub struct PartitionedWriter {
    root: PathBuf,
    /// The data folder below the root (`parquet`), or empty.
    folder: String,
    key: String,
    /// The position of the key column in the batches, when they have it.
    key_column: Option<usize>,
    /// The schema of the files: the batches' without the key column.
    file_schema: Arc<ArrowSchema>,
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
        folder: &str,
        key: &str,
        schema: &ArrowSchema,
        properties: WriterProperties,
    ) -> Self {
        let key_column = schema.index_of(key).ok();
        let file_schema = match key_column {
            Some(i) => Arc::new(ArrowSchema::new_with_metadata(
                schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, f)| f.clone())
                    .collect::<Vec<_>>(),
                schema.metadata().clone(),
            )),
            None => Arc::new(schema.clone()),
        };
        Self {
            root: root.to_owned(),
            folder: folder.to_owned(),
            key: key.to_owned(),
            key_column,
            file_schema,
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
        let folder = if self.folder.is_empty() {
            format!("{}={value}", self.key)
        } else {
            format!("{}/{}={value}", self.folder, self.key)
        };
        let dir = self.root.join(&folder);
        fs::create_dir_all(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
        let name = format!("part-{index:05}.parquet");
        let path = dir.join(&name);
        let file = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        let writer = ArrowWriter::try_new(
            file,
            self.file_schema.clone(),
            Some(self.properties.clone()),
        )
        .map_err(|e| parquet_error(&path, &e))?;
        Ok(Part {
            writer,
            rel: format!("{folder}/{name}"),
            rows: 0,
        })
    }

    /// Makes sure the partition exists, even if no row ever goes into it.
    pub fn ensure_partition(&mut self, value: &str) -> Result<()> {
        self.part(value).map(|_| ())
    }

    /// Writes the rows of `batch` into the partitions that `batch`'s column `column` names.
    pub fn write(&mut self, batch: &RecordBatch, column: usize) -> Result<()> {
        for (value, slice) in split_by(batch, column, &self.key)? {
            self.write_to(&value, &slice)?;
        }
        Ok(())
    }

    fn write_to(&mut self, value: &str, batch: &RecordBatch) -> Result<()> {
        let batch = match self.key_column {
            Some(i) => {
                let mut b = batch.clone();
                b.remove_column(i);
                b
            }
            None => batch.clone(),
        };
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
            value_sum: None,
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

/// Splits a batch by the text values of column `column`, in value order; rows keep their order.
fn split_by(batch: &RecordBatch, column: usize, key: &str) -> Result<Vec<(String, RecordBatch)>> {
    let values = batch
        .column(column)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::Usage(format!("the partition column `{key}` is not text")))?;
    if values.null_count() > 0 {
        return Err(Error::Usage(format!(
            "the partition column `{key}` has an empty value"
        )));
    }
    let mut groups: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (i, v) in values.iter().enumerate() {
        groups
            .entry(v.unwrap_or_default())
            .or_default()
            .push(i as u32);
    }
    groups
        .into_iter()
        .map(|(value, rows)| {
            let slice = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))
                    .map_err(|e| Error::Usage(format!("cannot split rows by `{key}`: {e}")))?
            };
            Ok((value.to_owned(), slice))
        })
        .collect()
}

/// Rows held per partition until they are final, then written as Parquet.
///
/// While the input streams in, each partition's rows go to an uncompressed Arrow IPC file in a
/// `.spill` folder of the (staging) root: a plain copy, far cheaper than encoding Parquet twice.
/// [`finish`](Self::finish) reads each spill file back once, lets the caller change the rows (the
/// k-anonymity step blanks values it could only choose after seeing every row), and writes the
/// partition's Parquet files, partitions in parallel. Memory stays bounded by the batch size.
pub struct PartitionSpill {
    root: PathBuf,
    folder: String,
    dir: PathBuf,
    key: String,
    schema: Arc<ArrowSchema>,
    open: BTreeMap<String, IpcWriter<BufWriter<File>>>,
}

impl std::fmt::Debug for PartitionSpill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionSpill")
            .field("root", &self.root)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl PartitionSpill {
    /// Starts spilling below `root` (which must exist), for Parquet files in its `folder`.
    pub fn new(root: &Path, folder: &str, key: &str, schema: Arc<ArrowSchema>) -> Result<Self> {
        let dir = root.join(".spill");
        fs::create_dir_all(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
        Ok(Self {
            root: root.to_owned(),
            folder: folder.to_owned(),
            dir,
            key: key.to_owned(),
            schema,
            open: BTreeMap::new(),
        })
    }

    fn spill_path(&self, value: &str) -> PathBuf {
        self.dir.join(format!("{value}.arrow"))
    }

    fn writer(&mut self, value: &str) -> Result<&mut IpcWriter<BufWriter<File>>> {
        if !self.open.contains_key(value) {
            if !is_safe_partition(value) {
                return Err(Error::Usage(format!(
                    "a value of the partition column `{}` is not usable as a folder name",
                    self.key
                )));
            }
            let path = self.spill_path(value);
            let file = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
            let writer = IpcWriter::try_new(BufWriter::with_capacity(1 << 20, file), &self.schema)
                .map_err(|e| parquet_error(&path, &e))?;
            self.open.insert(value.to_owned(), writer);
        }
        Ok(self.open.get_mut(value).expect("inserted above"))
    }

    /// Makes sure the partition exists, even if no row ever goes into it.
    pub fn ensure_partition(&mut self, value: &str) -> Result<()> {
        self.writer(value).map(|_| ())
    }

    /// Holds the rows of `batch` for the partitions its column `column` names.
    pub fn write(&mut self, batch: &RecordBatch, column: usize) -> Result<()> {
        for (value, slice) in split_by(batch, column, &self.key)? {
            let path = self.spill_path(&value);
            self.writer(&value)?
                .write(&slice)
                .map_err(|e| parquet_error(&path, &e))?;
        }
        Ok(())
    }

    /// Writes every partition's Parquet files (`folder/key=value/part-NNNNN.parquet`, at most
    /// `max_rows_per_file` rows each) from the held rows, each batch passed through `rewrite`
    /// first; removes the spill files and lists the written files, sorted by path.
    pub fn finish<F>(
        self,
        properties: &WriterProperties,
        max_rows_per_file: u64,
        rewrite: F,
    ) -> Result<Vec<FileInfo>>
    where
        F: Fn(&str, RecordBatch) -> Result<RecordBatch> + Sync,
    {
        let mut spilled = Vec::with_capacity(self.open.len());
        for (value, mut writer) in self.open {
            let path = self.dir.join(format!("{value}.arrow"));
            writer.finish().map_err(|e| parquet_error(&path, &e))?;
            writer
                .into_inner()
                .map_err(|e| parquet_error(&path, &e))?
                .into_inner()
                .map_err(|e| Error::io("write", &path, e.into_error()))?;
            spilled.push((value, path));
        }
        let (root, folder, key, schema) = (&self.root, &self.folder, &self.key, &self.schema);
        let written: Vec<Result<Vec<FileInfo>>> = spilled
            .par_iter()
            .map(|(value, path)| {
                let mut writer =
                    PartitionedWriter::new(root, folder, key, schema, properties.clone())
                        .with_max_rows_per_file(max_rows_per_file);
                writer.ensure_partition(value)?;
                let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
                let reader = IpcReader::try_new(BufReader::with_capacity(1 << 20, file), None)
                    .map_err(|e| parquet_error(path, &e))?;
                for batch in reader {
                    let batch = batch.map_err(|e| parquet_error(path, &e))?;
                    writer.write_to(value, &rewrite(value, batch)?)?;
                }
                let files = writer.finish()?;
                fs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
                Ok(files)
            })
            .collect();
        let mut files = Vec::new();
        for w in written {
            files.extend(w?);
        }
        fs::remove_dir(&self.dir).map_err(|e| Error::io("remove", &self.dir, e))?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

fn parquet_error(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::Format {
        path: path.to_owned(),
        reason: format!("writing Parquet failed: {e}"),
    }
}
