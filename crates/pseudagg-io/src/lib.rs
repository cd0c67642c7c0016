//! Reading extracts against their schema, and writing outputs atomically.
//!
//! An [`ExtractReader`] reads a CSV or Parquet extract in batches of Arrow arrays, in the schema's
//! column order and types (`Utf8`, or dictionaries of it when asked for; `Date32`, `Boolean`). Every cell is validated as it is read: type,
//! nullability, pattern, allowed values, uniqueness and the Datenstand. Reading goes on past a bad row
//! so that the user learns every problem (up to a limit) in one run; once a problem is found no
//! further batch is handed out, and the reader ends with [`pseudagg_core::Error::Input`]. A
//! repeated identifier and a second month are found when the last batch is read: publish nothing
//! before the reader has said the file is read.
//!
//! Outputs go into a [`StagingDir`] beside the target and are moved into place in one rename only
//! when everything succeeded; a [`PartitionedWriter`] writes Parquet files per partition.

mod cell;
mod csv_in;
mod extract;
mod hashing;
mod output;
mod parquet_in;
mod parquet_out;
mod text;
mod unique;

pub use cell::{arrow_field, arrow_schema, parse_bool, parse_date, text_column_to_array};
pub use extract::{
    ChunkWork, Encoding, ExtractFormat, ExtractReader, InputNote, ReadOptions, ReadSummary,
    check_header,
};
pub use hashing::{sha256_file, sha256_hex};
pub use output::{OutputLock, PublishHook, StagingDir, check_replaceable};
pub use parquet_out::{
    DATA_FOLDER, FileInfo, PartitionSpill, PartitionedWriter, writer_properties,
    writer_properties_with,
};
pub use text::{TextArray, dictionary_text};
