//! k-anonymity by local suppression: within each partition, every combination of quasi-identifier
//! values is shared by at least `k` rows; where it is not, values are blanked.
//!
//! The run counts the combinations while it streams (one map entry per distinct combination, not per
//! row), [`decide`] works out which values each combination loses, and [`blank`] applies that to
//! the rows as they are written from the spill (so nothing is encoded twice). No value is ever logged or put in the manifest: the
//! manifest gets counts only.

use std::collections::{BTreeMap, HashMap};

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use pseudagg_core::{Error, Result};
use rayon::prelude::*;

use crate::manifest::PartitionRisk;

/// A combination of quasi-identifier values, `None` for an empty cell.
type Tuple = Vec<Option<String>>;

/// A combination with each value as its number in the column's sorted values, 0 for a blank.
type Ids = Box<[u32]>;

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
            buf.push('+');
            push_decimal(buf, v.len());
            buf.push(':');
            buf.push_str(v);
        }
    }
}

/// `write!(buf, "{n}")` without the formatting machinery: this runs for every row.
fn push_decimal(buf: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.push_str(std::str::from_utf8(&digits[i..]).expect("ASCII digits"));
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
    let n_qi = counter.qi.len();
    // Partitions are independent; the largest ones hold most of the combinations.
    let decided: Vec<_> = counter
        .counts
        .par_iter()
        .map(|(part, counts)| (part, decide_partition(counts, n_qi, k)))
        .collect();
    for (part, result) in decided {
        match result {
            Err(total) => too_small.push((part.clone(), total)),
            Ok((masks, risk)) => {
                decision.risk.insert(part.clone(), risk);
                if !masks.is_empty() {
                    decision.blank.insert(part.clone(), masks);
                }
            }
        }
    }
    if too_small.is_empty() {
        Ok(decision)
    } else {
        Err(TooSmall(too_small))
    }
}

/// One partition's decision: the masks per combination and the resulting risk figures, or the
/// partition's row count if it is smaller than `k` in all.
fn decide_partition(
    counts: &HashMap<String, u64>,
    n_qi: usize,
    k: u64,
) -> std::result::Result<(HashMap<String, u32>, PartitionRisk), u64> {
    let total: u64 = counts.values().sum();
    if total < k {
        return Err(total);
    }
    // Each column's values as numbers in value order (0 for a blank), so that a combination is a
    // short row of numbers that hashes and compares cheaply, and orders as its texts do.
    let decoded: Vec<(&str, Tuple)> = counts
        .keys()
        .map(|key| (key.as_str(), decode(key)))
        .collect();
    let mut values: Vec<Vec<&str>> = vec![Vec::new(); n_qi];
    for (_, t) in &decoded {
        for (q, v) in t.iter().enumerate() {
            if let Some(v) = v {
                values[q].push(v.as_str());
            }
        }
    }
    for v in &mut values {
        v.sort_unstable();
        v.dedup();
    }
    let ids = |t: &Tuple| -> Ids {
        t.iter()
            .enumerate()
            .map(|(q, v)| {
                v.as_deref().map_or(0, |v| {
                    1 + values[q].binary_search(&v).expect("a value of the column") as u32
                })
            })
            .collect()
    };
    let before: HashMap<&str, Ids> = decoded.iter().map(|(key, t)| (*key, ids(t))).collect();
    let mut current = before.clone();
    let mut groups: HashMap<Ids, u64> = HashMap::new();
    for (key, n) in counts {
        *groups.entry(current[key.as_str()].clone()).or_default() += n;
    }
    for q in 0..n_qi {
        let moved: HashMap<Ids, Ids> = groups
            .iter()
            .filter(|(t, n)| **n < k && t[q] != 0)
            .map(|(t, _)| {
                let mut t2 = t.clone();
                t2[q] = 0;
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
    let blank: Ids = vec![0; n_qi].into();
    let mut blank_rows = groups.get(&blank).copied().unwrap_or(0);
    if blank_rows > 0 && blank_rows < k {
        let mut others: Vec<(u64, Ids)> = groups
            .iter()
            .filter(|(t, _)| **t != blank)
            .map(|(t, n)| (*n, t.clone()))
            .collect();
        others.sort();
        let mut joined = std::collections::HashSet::new();
        for (n, t) in others {
            if blank_rows >= k {
                break;
            }
            blank_rows += n;
            joined.insert(t);
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
        let was = &before[key];
        let mask = (0..n_qi)
            .filter(|&q| was[q] != 0 && now[q] == 0)
            .fold(0u32, |m, q| m | (1 << q));
        if mask != 0 {
            let n = counts[*key];
            risk.rows_blanked += n;
            risk.values_blanked += n * u64::from(mask.count_ones());
            masks.insert((*key).to_owned(), mask);
        }
    }
    debug_assert!(risk.smallest_group >= k);
    Ok((masks, risk))
}

/// Blanks the quasi-identifiers of one batch of a partition as `masks` (the partition's entry of
/// [`Decision::blank`]) says.
pub(crate) fn blank(
    batch: &RecordBatch,
    qi: &[usize],
    masks: &HashMap<String, u32>,
) -> Result<RecordBatch> {
    let text = text_columns(batch, qi)?;
    let mut key = String::new();
    let row_masks: Vec<u32> = (0..batch.num_rows())
        .map(|row| {
            key_into(&mut key, &text, row);
            masks.get(key.as_str()).copied().unwrap_or(0)
        })
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (q, &i) in qi.iter().enumerate() {
        if row_masks.iter().all(|m| m & (1 << q) == 0) {
            continue;
        }
        let blank: BooleanArray = row_masks.iter().map(|m| Some(m & (1 << q) != 0)).collect();
        columns[i] = arrow_select::nullif::nullif(&columns[i], &blank).map_err(|e| internal(&e))?;
    }
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| internal(&e))
}

fn internal(e: &dyn std::fmt::Display) -> Error {
    Error::Format {
        path: "<k-anonymity>".into(),
        reason: format!("internal error while blanking quasi-identifiers: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

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
    #[allow(clippy::many_single_char_names)] // four columns, a to d
    fn keys_round_trip_even_with_separators_in_values() {
        let t: Tuple = vec![
            Some("a:+3-".into()),
            None,
            Some(String::new()),
            Some("x".repeat(1234)),
        ];
        let a = StringArray::from(vec![Some("a:+3-")]);
        let d = StringArray::from(vec![Some("x".repeat(1234))]);
        let b = StringArray::from(vec![None::<&str>]);
        let c = StringArray::from(vec![Some("")]);
        let mut key = String::new();
        key_into(&mut key, &[a, b, c, d], 0);
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
