//! The uniqueness check of an identifier column, without keeping its values.
//!
//! Each value becomes one 128-bit key: an 88-bit fingerprint of the value above its 40-bit row
//! number. The reading threads take a chunk's keys and group them by their top byte (a counting
//! sort); the caller only copies each group into one of 256 buckets (no hashing); at the end each
//! bucket is sorted on every core, and equal fingerprints sit side by side, the earliest row
//! first. That is 16 bytes a row, where a hash set of fingerprints and rows took 48
//! (a national extract's set alone was about 270 MB), and its inserts were the caller's work.
//!
//! Two different values share a fingerprint with a probability of about `n² / 2^89`: for 50
//! million rows, 4 in a trillion. Such a pair would be refused as a repeat, never let through.

use std::hash::{DefaultHasher, Hash, Hasher};

use arrow_array::{Array, StringArray};
use rayon::prelude::*;

/// Bits of a key that hold the row number.
const ROW_BITS: u32 = 40;
const ROW_MASK: u64 = (1 << ROW_BITS) - 1;
/// Buckets by a key's top byte.
const BUCKETS: usize = 256;

/// A 128-bit fingerprint of a value (SipHash with fixed keys, twice), for duplicate detection
/// without keeping the values.
pub(crate) fn fingerprint(value: &str) -> u128 {
    let mut a = DefaultHasher::new();
    value.hash(&mut a);
    let mut b = DefaultHasher::new();
    (0x5eed_u16, value).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

fn key(value: &str, row: u64) -> u128 {
    (fingerprint(value) << ROW_BITS) | u128::from(row & ROW_MASK)
}

/// The keys of one chunk of a column whose first row is `first_row` (nulls have none), grouped by
/// their top byte in ascending order (a counting sort: the order within a group is the rows').
pub(crate) fn chunk_keys(values: &StringArray, first_row: u64) -> Vec<u128> {
    let mut keys: Vec<u128> = Vec::with_capacity(values.len() - values.null_count());
    let mut count = [0usize; BUCKETS];
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let k = key(v, first_row + i as u64);
            count[top(k)] += 1;
            keys.push(k);
        }
    }
    let mut at = [0usize; BUCKETS];
    for b in 1..BUCKETS {
        at[b] = at[b - 1] + count[b - 1];
    }
    let mut grouped = vec![0u128; keys.len()];
    for k in keys {
        let slot = &mut at[top(k)];
        grouped[*slot] = k;
        *slot += 1;
    }
    grouped
}

/// A key's bucket: its top byte.
fn top(key: u128) -> usize {
    (key >> 120) as usize
}

/// The keys of one column so far, in buckets by their top byte.
#[derive(Debug)]
pub(crate) struct UniqueKeys {
    buckets: Vec<Vec<u128>>,
}

impl UniqueKeys {
    /// Room for about `rows` keys (spread evenly, as fingerprints are).
    pub(crate) fn with_capacity(rows: usize) -> Self {
        let mut keys = Self {
            buckets: vec![Vec::new(); BUCKETS],
        };
        keys.reserve(rows);
        keys
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buckets.iter().all(Vec::is_empty)
    }

    /// Room for about `rows` more keys.
    pub(crate) fn reserve(&mut self, rows: usize) {
        if rows == 0 {
            return;
        }
        let each = rows / BUCKETS + rows / BUCKETS / 16 + 64;
        for b in &mut self.buckets {
            b.reserve(each);
        }
    }

    /// Files one chunk's keys, grouped by their top byte ([`chunk_keys`]).
    pub(crate) fn add(&mut self, grouped: &[u128]) {
        let mut rest = grouped;
        while let Some(&first) = rest.first() {
            let bucket = top(first);
            let end = rest.partition_point(|&k| top(k) <= bucket);
            self.buckets[bucket].extend_from_slice(&rest[..end]);
            rest = &rest[end..];
        }
    }

    /// Every row whose value an earlier row holds, with the first row that holds it, in row
    /// order. Sorts the buckets on every core.
    pub(crate) fn repeats(self) -> Vec<(u64, u64)> {
        let mut found: Vec<(u64, u64)> = self
            .buckets
            .into_par_iter()
            .flat_map_iter(|mut bucket| {
                bucket.sort_unstable();
                let mut out = Vec::new();
                let mut first: Option<(u128, u64)> = None;
                for k in bucket {
                    let (print, row) = (k >> ROW_BITS, (k as u64) & ROW_MASK);
                    match first {
                        Some((p, earliest)) if p == print => out.push((row, earliest)),
                        _ => first = Some((print, row)),
                    }
                }
                out
            })
            .collect();
        found.sort_unstable();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(values: &[Option<&str>], first_row: u64) -> Vec<u128> {
        chunk_keys(&StringArray::from(values.to_vec()), first_row)
    }

    #[test]
    fn repeats_are_found_across_chunks_with_the_first_row_that_holds_the_value() {
        let mut keys = UniqueKeys::with_capacity(10);
        keys.add(&keys_of(&[Some("a"), Some("b"), None, Some("c")], 1));
        keys.add(&keys_of(&[Some("d"), Some("a"), Some("b")], 5));
        keys.add(&keys_of(&[None, Some("a"), Some("e")], 8));
        // "a" is in rows 1, 6 and 9; "b" in rows 2 and 7; nulls repeat nothing.
        assert_eq!(keys.repeats(), vec![(6, 1), (7, 2), (9, 1)]);
    }

    #[test]
    fn distinct_values_repeat_nothing_whatever_the_chunking() {
        let values: Vec<String> = (0..20_000).map(|i| format!("K{i:08}")).collect();
        let mut keys = UniqueKeys::with_capacity(0);
        for (c, chunk) in values.chunks(777).enumerate() {
            let array = StringArray::from_iter_values(chunk);
            keys.add(&chunk_keys(&array, 1 + (c * 777) as u64));
        }
        assert!(!keys.is_empty());
        assert!(keys.repeats().is_empty());
    }

    #[test]
    fn a_value_repeated_in_one_chunk_is_found() {
        let mut keys = UniqueKeys::with_capacity(4);
        keys.add(&keys_of(&[Some("x"), Some("y"), Some("x"), Some("x")], 100));
        assert_eq!(keys.repeats(), vec![(102, 100), (103, 100)]);
    }
}
