//! The random review sample (seeds 001 and 003): the Zentrale draws, per RD and month, at least
//! `per_rd` cases from the pseudonymised datasets (all of them where fewer exist), uniformly at
//! random and reproducibly from a seed. The sample holds pseudonyms and RD only.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use arrow_array::{Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pseudagg_core::{Error, Result};
use rand::SeedableRng;
use rand::seq::index::sample;
use serde_json::Value;

/// One drawn case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Drawn {
    pub partition: String,
    pub pseudonym: String,
}

/// The draw, with what it was drawn from.
#[derive(Debug, Clone)]
pub struct ReviewSample {
    pub month: String,
    pub pipeline: String,
    /// Cases available and drawn, per partition.
    pub counts: BTreeMap<String, (usize, usize)>,
    pub drawn: Vec<Drawn>,
}

impl ReviewSample {
    /// The sample as a `;`-separated CSV: `rd;pseudonym`.
    #[must_use]
    pub fn to_csv(&self, partition_key: &str) -> String {
        let mut out = format!("{partition_key};pseudonym\n");
        for d in &self.drawn {
            out.push_str(&d.partition);
            out.push(';');
            out.push_str(&d.pseudonym);
            out.push('\n');
        }
        out
    }
}

/// Draws `per_rd` cases of each partition of the dataset in `dir` (for example `OUT/vkb/2025-03`).
pub fn draw(dir: &Path, per_rd: usize, seed: u64) -> Result<(ReviewSample, String)> {
    if per_rd == 0 {
        return Err(Error::Usage("--per-rd must be at least 1".into()));
    }
    let manifest_path = dir.join("manifest.json");
    let bytes = std::fs::read(&manifest_path).map_err(|e| Error::io("read", &manifest_path, e))?;
    let m: Value = serde_json::from_slice(&bytes).map_err(|_| Error::Format {
        path: manifest_path.clone(),
        reason: "is not a manifest; give the folder of one month of a pseudonymised dataset".into(),
    })?;
    if m["kind"] != "pseudonymised-dataset" {
        return Err(Error::Usage(format!(
            "{} is not a pseudonymised dataset; the review sample is drawn from one, such as OUT/vkb/2025-03",
            dir.display()
        )));
    }
    let pseudonym = m["columns"]
        .as_array()
        .and_then(|cols| cols.iter().find(|c| c["treatment"] == "pseudonymised"))
        .and_then(|c| c["name"].as_str())
        .ok_or_else(|| Error::Format {
            path: manifest_path.clone(),
            reason: "declares no pseudonymised column".into(),
        })?
        .to_owned();
    let mut by_partition: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut partition_key = String::from("partition");
    for part in m["partitions"].as_object().into_iter().flatten() {
        by_partition.entry(part.0.clone()).or_default();
    }
    for f in m["files"].as_array().into_iter().flatten() {
        let rel = f["path"].as_str().unwrap_or_default();
        // The innermost `key=value` folder: `parquet/rd=NRW/part-00000.parquet` (or
        // `rd=NRW/part-00000.parquet`, the layout before the data folder).
        let Some((key, value)) = rel
            .rsplit('/')
            .skip(1)
            .find_map(|segment| segment.split_once('='))
        else {
            continue;
        };
        key.clone_into(&mut partition_key);
        let path = dir.join(rel);
        let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let unreadable = |e: parquet::errors::ParquetError| Error::Format {
            path: path.clone(),
            reason: format!("cannot be read as Parquet: {e}"),
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(unreadable)?
            .build()
            .map_err(unreadable)?;
        let list = by_partition.entry(value.to_owned()).or_default();
        for batch in reader {
            let batch = batch.map_err(|e| Error::Format {
                path: path.clone(),
                reason: format!("cannot be read as Parquet: {e}"),
            })?;
            let col = batch
                .column_by_name(&pseudonym)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                .ok_or_else(|| Error::Format {
                    path: path.clone(),
                    reason: format!("has no text column `{pseudonym}`"),
                })?;
            list.extend(
                (0..col.len())
                    .filter(|&i| col.is_valid(i))
                    .map(|i| col.value(i).to_owned()),
            );
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut counts = BTreeMap::new();
    let mut drawn = Vec::new();
    for (partition, mut cases) in by_partition {
        // Sorted first, so that the draw depends on the seed and the cases, not on file order.
        cases.sort_unstable();
        let k = per_rd.min(cases.len());
        let mut picked: Vec<usize> = sample(&mut rng, cases.len(), k).into_vec();
        picked.sort_unstable();
        counts.insert(partition.clone(), (cases.len(), k));
        drawn.extend(picked.into_iter().map(|i| Drawn {
            partition: partition.clone(),
            pseudonym: cases[i].clone(),
        }));
    }
    Ok((
        ReviewSample {
            month: m["month"].as_str().unwrap_or_default().to_owned(),
            pipeline: m["pipeline"].as_str().unwrap_or_default().to_owned(),
            counts,
            drawn,
        },
        partition_key,
    ))
}
