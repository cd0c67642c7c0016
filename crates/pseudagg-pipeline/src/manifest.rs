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
    /// The re-identification control, when the pipeline declares one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k_anonymity: Option<KAnonymityNote>,
    pub files: Vec<FileInfo>,
}

/// What the k-anonymity step did, per partition: counts only.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct KAnonymityNote {
    pub quasi_identifiers: Vec<String>,
    pub min_k: u32,
    pub partitions: BTreeMap<String, PartitionRisk>,
}

impl KAnonymityNote {
    /// Rows with a blanked quasi-identifier, and values blanked, over all partitions.
    #[must_use]
    pub fn blanked(&self) -> (u64, u64) {
        self.partitions.values().fold((0, 0), |(r, v), p| {
            (r + p.rows_blanked, v + p.values_blanked)
        })
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PartitionRisk {
    /// Rows in the smallest group of equal quasi-identifiers, after blanking (0: no rows).
    pub smallest_group: u64,
    /// Rows with at least one quasi-identifier blanked.
    pub rows_blanked: u64,
    /// Quasi-identifier values blanked.
    pub values_blanked: u64,
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
