//! k-anonymity by local suppression: within each partition, every combination of quasi-identifier
//! values is shared by at least `k` rows; where it is not, values are blanked.
//!
//! The run counts the combinations while it streams (one map entry per distinct combination, not per
//! row), [`decide`] works out which values each combination loses, and the partitions that lose any
//! are rewritten once from the staged files. No value is ever logged or put in the manifest: the
//! manifest gets counts only.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchReader, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use pseudagg_core::{Error, Result};
use pseudagg_io::{FileInfo, sha256_file};

use crate::manifest::PartitionRisk;

/// A combination of quasi-identifier values, `None` for an empty cell.
type Tuple = Vec<Option<String>>;

/// Counts the combinations per partition. Keys are length-prefixed, so no value can fake a boundary.
#[derive(Debug, Default)]
pub(crate) struct GroupCounter {
    qi: Vec<usize>,
    partition: usize,
    counts: BTreeMap<String, HashMap<String, u64>>,
}

/// The QI columns of a batch as text (dates as ISO dates).
fn text_columns(batch: &RecordBatch, qi: &[usize]) -> Result<Vec<StringArray>> {
    qi.iter()
        .map(|&i| {
            let cast = arrow_cast::cast(batch.column(i), &arrow_schema::DataType::Utf8)
                .map_err(|e| internal(&e))?;
            Ok(cast
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8")
                .clone())
        })
        .collect()
}

fn key_into(buf: &mut String, columns: &[StringArray], row: usize) {
    buf.clear();
    for c in columns {
        if c.is_null(row) {
            buf.push('-');
        } else {
            let v = c.value(row);
            let _ = write!(buf, "+{}:{v}", v.len());
        }
    }
}

fn decode(key: &str) -> Tuple {
    let mut out = Vec::new();
    let mut rest = key;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('-') {
            out.push(None);
            rest = r;
        } else {
            let r = &rest[1..];
            let colon = r.find(':').expect("length prefix");
            let len: usize = r[..colon].parse().expect("length");
            out.push(Some(r[colon + 1..colon + 1 + len].to_owned()));
            rest = &r[colon + 1 + len..];
        }
    }
    out
}

impl GroupCounter {
    pub(crate) fn new(qi: Vec<usize>, partition: usize) -> Self {
        Self {
            qi,
            partition,
            counts: BTreeMap::new(),
        }
    }

    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns = text_columns(batch, &self.qi)?;
        let parts = batch
            .column(self.partition)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("partition column is text");
        let mut key = String::new();
        for row in 0..batch.num_rows() {
            key_into(&mut key, &columns, row);
            let part = parts.value(row);
            let map = match self.counts.get_mut(part) {
                Some(m) => m,
                None => self.counts.entry(part.to_owned()).or_default(),
            };
            match map.get_mut(key.as_str()) {
                Some(n) => *n += 1,
                None => {
                    map.insert(key.clone(), 1);
                }
            }
        }
        Ok(())
    }
}

/// Which quasi-identifiers each combination loses: bit `q` set = blank the `q`-th.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub blank: BTreeMap<String, HashMap<String, u32>>,
    pub risk: BTreeMap<String, PartitionRisk>,
}

/// A partition too small to be k-anonymous however much is blanked: (partition, rows).
#[derive(Debug)]
pub(crate) struct TooSmall(pub Vec<(String, u64)>);

pub(crate) fn decide(
    counter: &GroupCounter,
    k: u64,
    partitions: impl IntoIterator<Item = String>,
) -> std::result::Result<Decision, TooSmall> {
    let mut decision = Decision::default();
    let mut too_small = Vec::new();
    for p in partitions {
        decision.risk.entry(p).or_default();
    }
    for (part, counts) in &counter.counts {
        let n_qi = counter.qi.len();
        let total: u64 = counts.values().sum();
        if total < k {
            too_small.push((part.clone(), total));
            continue;
        }
        let mut current: HashMap<&str, Tuple> = counts
            .keys()
            .map(|key| (key.as_str(), decode(key)))
            .collect();
        let mut groups: BTreeMap<Tuple, u64> = BTreeMap::new();
        for (key, n) in counts {
            *groups.entry(current[key.as_str()].clone()).or_default() += n;
        }
        for q in 0..n_qi {
            let moved: HashMap<Tuple, Tuple> = groups
                .iter()
                .filter(|(t, n)| **n < k && t[q].is_some())
                .map(|(t, _)| {
                    let mut t2 = t.clone();
                    t2[q] = None;
                    (t.clone(), t2)
                })
                .collect();
            for (from, to) in &moved {
                let n = groups.remove(from).expect("group exists");
                *groups.entry(to.clone()).or_default() += n;
            }
            for t in current.values_mut() {
                if let Some(to) = moved.get(t) {
                    t.clone_from(to);
                }
            }
        }
        // Only the all-blank group can still be too small: let whole smallest groups join it.
        let blank: Tuple = vec![None; n_qi];
        let mut blank_rows = groups.get(&blank).copied().unwrap_or(0);
        if blank_rows > 0 && blank_rows < k {
            let mut others: Vec<(u64, Tuple)> = groups
                .iter()
                .filter(|(t, _)| **t != blank)
                .map(|(t, n)| (*n, t.clone()))
                .collect();
            others.sort();
            let mut joined = Vec::new();
            for (n, t) in others {
                if blank_rows >= k {
                    break;
                }
                blank_rows += n;
                joined.push(t);
            }
            for t in current.values_mut() {
                if joined.contains(t) {
                    t.clone_from(&blank);
                }
            }
            for t in &joined {
                groups.remove(t);
            }
            groups.insert(blank.clone(), blank_rows);
        }

        let mut masks = HashMap::new();
        let mut risk = PartitionRisk {
            smallest_group: groups.values().copied().min().unwrap_or(0),
            ..PartitionRisk::default()
        };
        for (key, now) in &current {
            let before = decode(key);
            let mask = (0..n_qi)
                .filter(|&q| before[q].is_some() && now[q].is_none())
                .fold(0u32, |m, q| m | (1 << q));
            if mask != 0 {
                let n = counts[*key];
                risk.rows_blanked += n;
                risk.values_blanked += n * u64::from(mask.count_ones());
                masks.insert((*key).to_owned(), mask);
            }
        }
        debug_assert!(risk.smallest_group >= k);
        decision.risk.insert(part.clone(), risk);
        if !masks.is_empty() {
            decision.blank.insert(part.clone(), masks);
        }
    }
    if too_small.is_empty() {
        Ok(decision)
    } else {
        Err(TooSmall(too_small))
    }
}

/// Rewrites the files of the partitions that lose values, in place, and updates their entries.
pub(crate) fn apply(
    root: &Path,
    partition_key: &str,
    qi: &[usize],
    decision: &Decision,
    files: &mut [FileInfo],
    properties: &WriterProperties,
) -> Result<()> {
    for (part, masks) in &decision.blank {
        let prefix = format!("{partition_key}={part}/");
        for info in files.iter_mut().filter(|f| f.path.starts_with(&prefix)) {
            let path = root.join(&info.path);
            let tmp = path.with_extension("parquet.blanking");
            rewrite(&path, &tmp, qi, masks, properties)?;
            fs::rename(&tmp, &path).map_err(|e| Error::io("replace", &path, e))?;
            info.bytes = fs::metadata(&path)
                .map_err(|e| Error::io("inspect", &path, e))?
                .len();
            info.sha256 = sha256_file(&path)?;
        }
    }
    Ok(())
}

fn rewrite(
    path: &Path,
    tmp: &Path,
    qi: &[usize],
    masks: &HashMap<String, u32>,
    properties: &WriterProperties,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| internal(&e))?
        .build()
        .map_err(|e| internal(&e))?;
    let schema = reader.schema();
    let out = File::create(tmp).map_err(|e| Error::io("create", tmp, e))?;
    let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(properties.clone()))
        .map_err(|e| internal(&e))?;
    let mut key = String::new();
    for batch in reader {
        let batch = batch.map_err(|e| internal(&e))?;
        let text = text_columns(&batch, qi)?;
        let row_masks: Vec<u32> = (0..batch.num_rows())
            .map(|row| {
                key_into(&mut key, &text, row);
                masks.get(key.as_str()).copied().unwrap_or(0)
            })
            .collect();
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (q, &i) in qi.iter().enumerate() {
            let blank: BooleanArray = row_masks.iter().map(|m| Some(m & (1 << q) != 0)).collect();
            columns[i] =
                arrow_select::nullif::nullif(&columns[i], &blank).map_err(|e| internal(&e))?;
        }
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| internal(&e))?;
        writer.write(&batch).map_err(|e| internal(&e))?;
    }
    let file = writer.into_inner().map_err(|e| internal(&e))?;
    file.sync_all().map_err(|e| Error::io("sync", tmp, e))
}

fn internal(e: &dyn std::fmt::Display) -> Error {
    Error::Format {
        path: "<k-anonymity>".into(),
        reason: format!("internal error while blanking quasi-identifiers: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(rows: &[(&str, &[Option<&str>])]) -> GroupCounter {
        let mut c = GroupCounter::new(vec![0, 1], 2);
        for (part, t) in rows {
            let mut key = String::new();
            for v in *t {
                match v {
                    None => key.push('-'),
                    Some(v) => {
                        let _ = write!(key, "+{}:{v}", v.len());
                    }
                }
            }
            *c.counts
                .entry((*part).to_owned())
                .or_default()
                .entry(key)
                .or_default() += 1;
        }
        c
    }

    #[test]
    fn keys_round_trip_even_with_separators_in_values() {
        let t: Tuple = vec![Some("a:+3-".into()), None, Some(String::new())];
        let a = StringArray::from(vec![Some("a:+3-")]);
        let b = StringArray::from(vec![None::<&str>]);
        let c = StringArray::from(vec![Some("")]);
        let mut key = String::new();
        key_into(&mut key, &[a, b, c], 0);
        assert_eq!(decode(&key), t);
    }

    #[test]
    fn small_groups_lose_the_first_quasi_identifier_first() {
        let mut rows: Vec<(&str, &[Option<&str>])> = Vec::new();
        rows.extend(std::iter::repeat_n(
            ("A", &[Some("DEU"), Some("30-34")][..]),
            5,
        ));
        rows.push(("A", &[Some("ERI"), Some("30-34")]));
        rows.push(("A", &[Some("SOM"), Some("30-34")]));
        rows.push(("A", &[Some("PAK"), Some("30-34")]));
        let d = decide(&counter(&rows), 3, ["A".to_owned()]).unwrap();
        let risk = d.risk["A"];
        // The three rare nationalities become one group of three with the same age band.
        assert_eq!(risk.rows_blanked, 3);
        assert_eq!(risk.values_blanked, 3);
        assert_eq!(risk.smallest_group, 3);
        assert!(d.blank["A"].values().all(|&m| m == 0b01));
    }

    #[test]
    fn an_all_blank_group_too_small_takes_in_whole_smallest_groups() {
        let mut rows: Vec<(&str, &[Option<&str>])> = Vec::new();
        rows.extend(std::iter::repeat_n(
            ("A", &[Some("DEU"), Some("30-34")][..]),
            4,
        ));
        rows.extend(std::iter::repeat_n(
            ("A", &[Some("DEU"), Some("40-44")][..]),
            3,
        ));
        rows.push(("A", &[Some("ERI"), Some("20-24")]));
        let d = decide(&counter(&rows), 3, ["A".to_owned()]).unwrap();
        let risk = d.risk["A"];
        // The lone row is blanked entirely and the smallest group (3 rows) joins it.
        assert_eq!(risk.rows_blanked, 4);
        assert!(risk.smallest_group >= 3);
        assert_eq!(d.blank["A"].len(), 2);
    }

    #[test]
    fn a_partition_below_k_is_refused_and_others_are_independent() {
        let mut rows: Vec<(&str, &[Option<&str>])> = Vec::new();
        rows.extend(std::iter::repeat_n(
            ("A", &[Some("DEU"), Some("30-34")][..]),
            3,
        ));
        rows.extend(std::iter::repeat_n(
            ("B", &[Some("DEU"), Some("30-34")][..]),
            2,
        ));
        let TooSmall(small) =
            decide(&counter(&rows), 3, ["A".to_owned(), "B".to_owned()]).unwrap_err();
        assert_eq!(small, vec![("B".to_owned(), 2)]);
    }

    #[test]
    fn groups_at_k_are_left_alone() {
        let mut rows: Vec<(&str, &[Option<&str>])> = Vec::new();
        rows.extend(std::iter::repeat_n(
            ("A", &[Some("DEU"), Some("30-34")][..]),
            3,
        ));
        rows.extend(std::iter::repeat_n(
            ("A", &[Some("UKR"), Some("30-34")][..]),
            3,
        ));
        let d = decide(&counter(&rows), 3, ["A".to_owned()]).unwrap();
        assert!(d.blank.is_empty());
        assert_eq!(d.risk["A"].smallest_group, 3);
    }
}
