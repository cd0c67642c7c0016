//! k-anonymity by local suppression: within each partition, every combination of quasi-identifier
//! values is shared by at least `k` rows; where it is not, values are blanked.
//!
//! The run counts the combinations while it streams (one entry per distinct combination, not per
//! row), [`decide`] works out which values each combination loses, and [`blank`] applies that to
//! the rows as they are written from the spill (so nothing is encoded twice). No value is ever
//! logged or put in the manifest: the manifest gets counts only.
//!
//! Each column's values are numbered once per partition, as they are first met, so a combination is
//! a short row of numbers, kept back to back in one flat arena and found through a hash table of
//! indices (no allocation per combination). [`decide`] renumbers the values in value order first:
//! comparisons, and so the tie order of the last step, are those of the texts. The hash is a
//! fixed-seed fast one (`FxHash`): the keys are numbers and the extract's own short values, and
//! the hash is never seen outside.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use hashbrown::HashTable;
use pseudagg_core::{Error, Result};
use rayon::prelude::*;
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::manifest::PartitionRisk;

/// Rows of `width` numbers, back to back, found by content through a hash table of row indices.
#[derive(Debug, Default, Clone)]
struct Arena {
    width: usize,
    numbers: Vec<u32>,
    table: HashTable<u32>,
}

fn hash_of(row: &[u32]) -> u64 {
    FxBuildHasher.hash_one(row)
}

impl Arena {
    fn new(width: usize) -> Self {
        Self {
            width,
            ..Self::default()
        }
    }

    fn len(&self) -> usize {
        self.numbers.len() / self.width.max(1)
    }

    fn row(&self, i: u32) -> &[u32] {
        let start = i as usize * self.width;
        &self.numbers[start..start + self.width]
    }

    fn find(&self, row: &[u32]) -> Option<u32> {
        let numbers = &self.numbers;
        let width = self.width;
        self.table
            .find(hash_of(row), |&i| {
                &numbers[i as usize * width..(i as usize + 1) * width] == row
            })
            .copied()
    }

    /// Indexes row `i` (already in `numbers`) under its content.
    fn index(&mut self, i: u32) {
        let (numbers, width) = (&self.numbers, self.width);
        let slice = |i: u32| &numbers[i as usize * width..(i as usize + 1) * width];
        self.table
            .insert_unique(hash_of(slice(i)), i, |&j| hash_of(slice(j)));
    }

    /// Appends a row that is not there yet; returns its index.
    fn push(&mut self, row: &[u32]) -> u32 {
        let i = u32::try_from(self.len()).expect("fewer than 2^32 combinations");
        self.numbers.extend_from_slice(row);
        self.index(i);
        i
    }

    /// Takes row `i` out of the index (its numbers stay).
    fn unindex(&mut self, i: u32) {
        let (numbers, width) = (&self.numbers, self.width);
        let hash = hash_of(&numbers[i as usize * width..(i as usize + 1) * width]);
        if let Ok(entry) = self.table.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
    }

    /// Re-indexes every row, after their numbers changed.
    fn reindex(&mut self) {
        self.table.clear();
        self.table.reserve(self.len(), |_| 0);
        for i in 0..self.len() as u32 {
            self.index(i);
        }
    }
}

/// One partition's combinations.
#[derive(Debug, Default)]
struct Groups {
    /// Per quasi-identifier: value -> number from 1 (0 is a blank).
    values: Vec<FxHashMap<Box<str>, u32>>,
    /// The distinct combinations; a combination's index is its place here.
    combos: Arena,
    /// Rows per combination, by index.
    rows: Vec<u64>,
}

impl Groups {
    fn new(n_qi: usize) -> Self {
        Self {
            values: vec![FxHashMap::default(); n_qi],
            combos: Arena::new(n_qi),
            rows: Vec::new(),
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
        if let Some(i) = self.combos.find(ids) {
            self.rows[i as usize] += 1;
        } else {
            self.combos.push(ids);
            self.rows.push(1);
        }
    }

    /// The index of a row's combination, if the row was counted.
    fn find<'a>(
        &self,
        row: impl Iterator<Item = Option<&'a str>>,
        ids: &mut Vec<u32>,
    ) -> Option<u32> {
        ids.clear();
        for (q, v) in row.enumerate() {
            ids.push(match v {
                None => 0,
                Some(v) => *self.values[q].get(v)?,
            });
        }
        self.combos.find(ids)
    }

    /// Renumbers every column's values in value order (0 stays a blank), in the dictionaries and
    /// the combinations alike; indices of combinations do not change.
    fn renumber_in_value_order(&mut self) {
        let ranks: Vec<Vec<u32>> = self
            .values
            .iter_mut()
            .map(|map| {
                let mut sorted: Vec<(&str, u32)> = map.iter().map(|(v, &id)| (&**v, id)).collect();
                sorted.sort_unstable();
                let mut rank = vec![0; sorted.len() + 1];
                for (r, (_, id)) in sorted.iter().enumerate() {
                    rank[*id as usize] = r as u32 + 1;
                }
                for id in map.values_mut() {
                    *id = rank[*id as usize];
                }
                rank
            })
            .collect();
        let width = self.combos.width;
        for (i, id) in self.combos.numbers.iter_mut().enumerate() {
            *id = ranks[i % width][*id as usize];
        }
        self.combos.reindex();
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

/// Decides the blanks of every partition. The counter's values are renumbered in value order on
/// the way (see [`Groups::renumber_in_value_order`]); [`blank`] works with either numbering.
pub(crate) fn decide(
    counter: &mut GroupCounter,
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
        .par_iter_mut()
        .map(|(part, groups)| {
            groups.renumber_in_value_order();
            (part, decide_partition(groups, k))
        })
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
/// partition's row count if it is smaller than `k` in all. The values must be in value order.
///
/// Round `q` blanks the `q`-th value of every group still smaller than `k`, and the group joins
/// the one it now equals. Each combination starts as a group of its own; a group that joins
/// another points to it, so a combination's final group is found by following the pointers.
fn decide_partition(
    counted: &Groups,
    k: u64,
) -> std::result::Result<(Vec<u32>, PartitionRisk), u64> {
    let total: u64 = counted.rows.iter().sum();
    if total < k {
        return Err(total);
    }
    let n_qi = counted.values.len();
    let before = &counted.combos;
    // The groups: their numbers (changed in place as values are blanked), rows, and pointers.
    let mut groups = before.clone();
    let mut rows = counted.rows.clone();
    let mut joined: Vec<u32> = (0..rows.len() as u32).collect();
    let mut moving = Vec::new();
    for q in 0..n_qi {
        moving.clear();
        moving.extend(
            (0..rows.len() as u32).filter(|&g| {
                joined[g as usize] == g && rows[g as usize] < k && groups.row(g)[q] != 0
            }),
        );
        // A group that moves has its `q`-th value, a group it moves to has none: the moves of a
        // round never meet each other's sources, so their order does not matter.
        for &g in &moving {
            groups.unindex(g);
            groups.numbers[g as usize * n_qi + q] = 0;
            match groups.find(groups.row(g)) {
                Some(to) => {
                    rows[to as usize] += rows[g as usize];
                    rows[g as usize] = 0;
                    joined[g as usize] = to;
                }
                None => groups.index(g),
            }
        }
    }
    let alive = |joined: &[u32], g: u32| joined[g as usize] == g;
    // Only the all-blank group can still be too small: let whole smallest groups join it, the
    // smallest first, ties in value order. At most `k` of them are needed (each holds a row).
    let blank = vec![0; n_qi];
    if let Some(b) = groups.find(&blank)
        && rows[b as usize] < k
    {
        let mut others: Vec<u32> = (0..rows.len() as u32)
            .filter(|&g| alive(&joined, g) && g != b)
            .collect();
        let order = |x: &u32, y: &u32| {
            (rows[*x as usize], groups.row(*x)).cmp(&(rows[*y as usize], groups.row(*y)))
        };
        let needed = usize::try_from(k).unwrap_or(usize::MAX).min(others.len());
        if needed > 0 && needed < others.len() {
            others.select_nth_unstable_by(needed - 1, order);
            others.truncate(needed);
        }
        others.sort_unstable_by(order);
        for g in others {
            if rows[b as usize] >= k {
                break;
            }
            rows[b as usize] += rows[g as usize];
            rows[g as usize] = 0;
            joined[g as usize] = b;
        }
    }

    let mut risk = PartitionRisk {
        smallest_group: (0..rows.len() as u32)
            .filter(|&g| alive(&joined, g))
            .map(|g| rows[g as usize])
            .min()
            .unwrap_or(0),
        ..PartitionRisk::default()
    };
    let masks: Vec<u32> = (0..rows.len() as u32)
        .map(|c| {
            let mut g = c;
            while !alive(&joined, g) {
                g = joined[g as usize];
            }
            let (was, now) = (before.row(c), groups.row(g));
            let mask = (0..n_qi)
                .filter(|&q| was[q] != 0 && now[q] == 0)
                .fold(0u32, |m, q| m | (1 << q));
            if mask != 0 {
                let n = counted.rows[c as usize];
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
        g.renumber_in_value_order();
        let order: Vec<u32> = (0..4).map(|c| g.combos.row(c)[0]).collect();
        // Met as UKR, DEU, SYR, blank; sorted DEU < SYR < UKR.
        assert_eq!(order, vec![3, 1, 2, 0]);
    }

    #[test]
    fn blank_nulls_exactly_the_decided_values_of_each_row() {
        use std::sync::Arc;

        use arrow_schema::{DataType, Field, Schema};
        let nat = ["DEU", "DEU", "DEU", "ERI", "SOM", "PAK", "DEU"];
        let age = [
            "30-34", "30-34", "30-34", "30-34", "30-34", "30-34", "30-34",
        ];
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
        let d = decide(&mut c, 3, ["A".to_owned()]).unwrap();
        let out = blank(&batch, &c, "A", &d.blank["A"]).unwrap();
        let nat_out = out
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
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
        let d = decide(&mut counter(&rows), 3, ["A".to_owned()]).unwrap();
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
        let d = decide(&mut counter(&rows), 3, ["A".to_owned()]).unwrap();
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
            decide(&mut counter(&rows), 3, ["A".to_owned(), "B".to_owned()]).unwrap_err();
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
        let d = decide(&mut counter(&rows), 3, ["A".to_owned()]).unwrap();
        assert!(d.blank.is_empty());
        assert_eq!(d.risk["A"].smallest_group, 3);
    }
}
