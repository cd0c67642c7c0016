use std::collections::BTreeMap;

use pseudagg_io::FileInfo;
pub use pseudagg_io::InputNote;
use serde::Serialize;

/// `manifest.json` of a pseudonymised dataset. It holds counts, hashes and names of columns, never
/// a value from the data, and no timestamp, so that a re-run gives identical bytes (the run
/// protocol records when it ran).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub kind: &'static str,
    pub tool: String,
    pub pipeline: String,
    pub pipeline_sha256: String,
    pub input_schema: String,
    pub month: String,
    pub key_id: String,
    /// How the pseudonyms were derived, so that the data owner can recompute them.
    pub pseudonym_derivation: String,
    pub input: InputNote,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Rows read and written per partition value (per RD).
    pub partitions: BTreeMap<String, PartitionCounts>,
    pub columns: Vec<ColumnNote>,
    pub files: Vec<FileInfo>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PartitionCounts {
    pub rows_in: u64,
    pub rows_out: u64,
}

/// One output column and where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnNote {
    pub name: String,
    pub from: String,
    /// `kept`, `pseudonymised` or `generalised`.
    pub treatment: &'static str,
    pub class: String,
}
