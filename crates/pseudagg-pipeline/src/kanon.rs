//! k-anonymity by local suppression: within each partition, every combination of quasi-identifier
//! values is shared by at least `k` rows; where it is not, values are blanked.
//!
//! The run counts the combinations while it streams (one entry per distinct combination, not per
//! row), [`decide`] works out which values each combination loses, and [`blank`] applies that to
//! the rows as they are written from the spill (so nothing is encoded twice). No value is ever
//! logged or put in the manifest: the manifest gets counts only.
//!
//! Each column's values are numbered once per partition, as they are first met, so a combination is
//! a short row of numbers. [`decide`] renumbers them in value order first: comparisons, and so the
//! tie order of the last step, are those of the texts. The maps use a fixed-seed fast hash (`FxHash`):
//! the keys are numbers and the extract's own short values, and the hash is never seen outside.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use pseudagg_core::{Error, Result};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::manifest::PartitionRisk;

/// A combination: each value as a number, 0 for a blank.
type Ids = Box<[u32]>;

/// One partition's combinations.
#[derive(Debug, Default)]
struct Groups {
    /// Per quasi-identifier: value -> number from 1, in the order first met.
    values: Vec<FxHashMap<Box<str>, u32>>,
    /// Combination (numbers as met) -> its index.
    index: FxHashMap<Ids, u32>,
    /// Rows per combination, by index.
    rows: Vec<u64>,
}

impl Groups {
    fn new(n_qi: usize) -> Self {
        Self {
            values: vec![FxHashMap::default(); n_qi],
            ..Self::default()
        }
    }

    /// Counts one row; `ids` is scratch space.
    fn add<'a>(&mut self, row: impl Iterator<Item = Option<&'a str>>, ids: &mut Vec<u32>) {
        ids.clear();
        for (q, v) in row.enumerate() {
            ids.push(v.map_or(0, |v| {
                let map = &mut self.values[q];
                if let Some(&id) = map.get(v) {
                    id
                } else {
                    let id = u32::try_from(map.len() + 1).expect("fewer than 2^32 values");
                    map.insert(v.into(), id);
                    id
                }
            }));
        }
        if let Some(&i) = self.index.get(ids.as_slice()) {
            self.rows[i as usize] += 1;
        } else {
            let i = u32::try_from(self.rows.len()).expect("fewer than 2^32 combinations");
            self.index.insert(ids.as_slice().into(), i);
            self.rows.push(1);
        }
    }

    /// The index of a row's combination, if the row was counted.
    fn find<'a>(&self, row: impl Iterator<Item = Option<&'a str>>, ids: &mut Vec<u32>) -> Option<u32> {
        ids.clear();
        for (q, v) in row.enumerate() {
            ids.push(match v {
                None => 0,
                Some(v) => *self.values[q].get(v)?,
            });
        }
        self.index.get(ids.as_slice()).copied()
    }

    /// The combinations by index, each value renumbered in value order (0 still a blank).
    fn in_value_order(&self) -> Vec<Ids> {
        let ranks: Vec<Vec<u32>> = self
            .values
            .iter()
            .map(|map| {
                let mut sorted: Vec<(&str, u32)> = map.iter().map(|(v, &id)| (&**v, id)).collect();
                sorted.sort_unstable();
                let mut rank = vec![0; sorted.len() + 1];
                for (r, (_, id)) in sorted.iter().enumerate() {
                    rank[*id as usize] = r as u32 + 1;
                }
                rank
            })
            .collect();
        let mut out: Vec<Ids> = vec![Ids::default(); self.rows.len()];
        for (ids, &i) in &self.index {
            out[i as usize] = ids
                .iter()
                .zip(&ranks)
                .map(|(&id, rank)| rank[id as usize])
                .collect();
        }
        out
    }
}

/// Counts the combinations per partition.
#[derive(Debug, Default)]
pub(crate) struct GroupCounter {
    qi: Vec<usize>,
    partition: usize,
    groups: BTreeMap<String, Groups>,
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

fn row_values(columns: &[StringArray], row: usize) -> impl Iterator<Item = Option<&str>> {
    columns
        .iter()
        .map(move |c| (!c.is_null(row)).then(|| c.value(row)))
}

impl GroupCounter {
    pub(crate) fn new(qi: Vec<usize>, partition: usize) -> Self {
        Self {
            qi,
            partition,
            groups: BTreeMap::new(),
        }
    }

    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns = text_columns(batch, &self.qi)?;
        let parts = batch
            .column(self.partition)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("partition column is text");
        let mut ids = Vec::with_capacity(self.qi.len());
        for row in 0..batch.num_rows() {
            self.partition_mut(parts.value(row))
                .add(row_values(&columns, row), &mut ids);
        }
        Ok(())
    }

    fn partition_mut(&mut self, part: &str) -> &mut Groups {
        if !self.groups.contains_key(part) {
            self.groups
                .insert(part.to_owned(), Groups::new(self.qi.len()));
        }
        self.groups.get_mut(part).expect("inserted above")
    }
}

/// Which quasi-identifiers each combination loses: bit `q` set = blank the `q`-th.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    /// Per partition with anything to blank: the mask of each combination, by its index.
    pub blank: BTreeMap<String, Vec<u32>>,
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
    // Partitions are independent; the largest ones hold most of the combinations.
    let decided: Vec<_> = counter
        .groups
        .par_iter()
        .map(|(part, groups)| (part, decide_partition(groups, k)))
        .collect();
    for (part, result) in decided {
        match result {
            Err(total) => too_small.push((part.clone(), total)),
            Ok((masks, risk)) => {
                decision.risk.insert(part.clone(), risk);
                if masks.iter().any(|&m| m != 0) {
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

/// One partition's decision: the mask of each combination and the resulting risk figures, or the
/// partition's row count if it is smaller than `k` in all.
///
/// Round `q` blanks the `q`-th value of every group still smaller than `k`, and the group joins
/// the one it now equals. Each combination starts as a group of its own (a slot); a group that
/// joins another points to it, so a combination's final group is found by following the pointers.
fn decide_partition(
    counted: &Groups,
    k: u64,
) -> std::result::Result<(Vec<u32>, PartitionRisk), u64> {
    let total: u64 = counted.rows.iter().sum();
    if total < k {
        return Err(total);
    }
    let n_qi = counted.values.len();
    let before = counted.in_value_order();
    // Group -> (rows, slot); a slot's pointer leads to the slot of the group it joined.
    let mut groups: FxHashMap<Ids, (u64, u32)> = before
        .iter()
        .zip(&counted.rows)
        .enumerate()
        .map(|(c, (ids, &n))| (ids.clone(), (n, c as u32)))
        .collect();
    let mut joined: Vec<u32> = (0..before.len() as u32).collect();
    for q in 0..n_qi {
        let moving: Vec<Ids> = groups
            .iter()
            .filter(|(t, (n, _))| *n < k && t[q] != 0)
            .map(|(t, _)| t.clone())
            .collect();
        // A group that moves has its `q`-th value, a group it moves to has none: the moves of a
        // round never meet each other's sources, so their order does not matter.
        for from in moving {
            let (n, slot) = groups.remove(&from).expect("group exists");
            let mut to = from;
            to[q] = 0;
            match groups.entry(to) {
                Entry::Occupied(mut e) => {
                    e.get_mut().0 += n;
                    joined[slot as usize] = e.get().1;
                }
                Entry::Vacant(e) => {
                    e.insert((n, slot));
                }
            }
        }
    }
    // Only the all-blank group can still be too small: let whole smallest groups join it.
    let blank: Ids = vec![0; n_qi].into();
    if let Some(&(blank_rows, blank_slot)) = groups.get(&blank)
        && blank_rows < k
    {
        let mut others: Vec<(u64, &Ids, u32)> = groups
            .iter()
            .filter(|(t, _)| **t != blank)
            .map(|(t, (n, slot))| (*n, t, *slot))
            .collect();
        others.sort_unstable();
        let mut rows = blank_rows;
        let mut taken = Vec::new();
        for (n, t, slot) in others {
            if rows >= k {
                break;
            }
            rows += n;
            joined[slot as usize] = blank_slot;
            taken.push(t.clone());
        }
        for t in &taken {
            groups.remove(t);
        }
        groups.insert(blank.clone(), (rows, blank_slot));
    }

    let mut now: Vec<Option<&Ids>> = vec![None; before.len()];
    for (t, (_, slot)) in &groups {
        now[*slot as usize] = Some(t);
    }
    let mut risk = PartitionRisk {
        smallest_group: groups.values().map(|(n, _)| *n).min().unwrap_or(0),
        ..PartitionRisk::default()
    };
    let masks: Vec<u32> = before
        .iter()
        .enumerate()
        .map(|(c, was)| {
            let mut slot = c as u32;
            while joined[slot as usize] != slot {
                slot = joined[slot as usize];
            }
            let now = now[slot as usize].expect("a final group has a slot");
            let mask = (0..n_qi)
                .filter(|&q| was[q] != 0 && now[q] == 0)
                .fold(0u32, |m, q| m | (1 << q));
            if mask != 0 {
                let n = counted.rows[c];
                risk.rows_blanked += n;
                risk.values_blanked += n * u64::from(mask.count_ones());
            }
            mask
        })
        .collect();
    debug_assert!(risk.smallest_group >= k);
    Ok((masks, risk))
}

/// Blanks the quasi-identifiers of one batch of a partition as `masks` (the partition's entry of
/// [`Decision::blank`]) says.
pub(crate) fn blank(
    batch: &RecordBatch,
    counter: &GroupCounter,
    partition: &str,
    masks: &[u32],
) -> Result<RecordBatch> {
    let qi = &counter.qi;
    let groups = counter
        .groups
        .get(partition)
        .ok_or_else(|| internal(&"a partition without counted rows"))?;
    let text = text_columns(batch, qi)?;
    let mut ids = Vec::with_capacity(qi.len());
    let row_masks: Vec<u32> = (0..batch.num_rows())
        .map(|row| {
            groups
                .find(row_values(&text, row), &mut ids)
                .map(|c| masks[c as usize])
                .ok_or_else(|| internal(&"a row that was not counted"))
        })
        .collect::<Result<_>>()?;
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
    use super::*;

    fn counter(rows: &[(&str, &[Option<&str>])]) -> GroupCounter {
        let mut c = GroupCounter::new(vec![0, 1], 2);
        let mut ids = Vec::new();
        for (part, t) in rows {
            c.partition_mut(part).add(t.iter().copied(), &mut ids);
        }
        c
    }

    #[test]
    fn an_empty_value_is_not_a_blank_and_every_row_finds_its_combination() {
        let mut g = Groups::new(2);
        let mut ids = Vec::new();
        g.add([Some(""), None].into_iter(), &mut ids);
        g.add([None, Some("")].into_iter(), &mut ids);
        g.add([Some(""), None].into_iter(), &mut ids);
        assert_eq!(g.rows, vec![2, 1]);
        assert_eq!(g.find([Some(""), None].into_iter(), &mut ids), Some(0));
        assert_eq!(g.find([None, Some("")].into_iter(), &mut ids), Some(1));
        assert_eq!(g.find([None, None].into_iter(), &mut ids), None);
        assert_eq!(g.find([Some("x"), None].into_iter(), &mut ids), None);
    }

    #[test]
    fn values_are_renumbered_in_value_order() {
        let mut g = Groups::new(1);
        let mut ids = Vec::new();
        for v in ["UKR", "DEU", "SYR", "DEU"] {
            g.add([Some(v)].into_iter(), &mut ids);
        }
        g.add([None].into_iter(), &mut ids);
        let order: Vec<u32> = g.in_value_order().iter().map(|t| t[0]).collect();
        // Met as UKR, DEU, SYR, blank; sorted DEU < SYR < UKR.
        assert_eq!(order, vec![3, 1, 2, 0]);
    }

    #[test]
    fn blank_nulls_exactly_the_decided_values_of_each_row() {
        use std::sync::Arc;

        use arrow_schema::{DataType, Field, Schema};
        let nat = ["DEU", "DEU", "DEU", "ERI", "SOM", "PAK", "DEU"];
        let age = ["30-34", "30-34", "30-34", "30-34", "30-34", "30-34", "30-34"];
        let schema = Arc::new(Schema::new(vec![
            Field::new("nat", DataType::Utf8, true),
            Field::new("age", DataType::Utf8, true),
            Field::new("rd", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(nat.to_vec())),
                Arc::new(StringArray::from(age.to_vec())),
                Arc::new(StringArray::from(vec!["A"; 7])),
            ],
        )
        .unwrap();
        let mut c = GroupCounter::new(vec![0, 1], 2);
        c.add(&batch).unwrap();
        let d = decide(&c, 3, ["A".to_owned()]).unwrap();
        let out = blank(&batch, &c, "A", &d.blank["A"]).unwrap();
        let nat_out = out.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let blanked: Vec<bool> = (0..7).map(|r| nat_out.is_null(r)).collect();
        assert_eq!(blanked, [false, false, false, true, true, true, false]);
        assert_eq!(out.column(1).null_count(), 0);
        assert_eq!(d.risk["A"].rows_blanked, 3);
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
        assert!(d.blank["A"].iter().all(|&m| m == 0 || m == 0b01));
        assert_eq!(d.blank["A"].iter().filter(|&&m| m == 0b01).count(), 3);
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
        assert_eq!(d.blank["A"].iter().filter(|&&m| m != 0).count(), 2);
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
