//! The original extract, read again with the csv and parquet crates, for the checks that compare
//! an output with its input: no sensitive value may reappear, and every pseudonym must recompute.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use pseudagg_core::{ColumnClass, ColumnType, Error, Result, Schema};
use rayon::prelude::*;
use rustc_hash::FxHashSet;

use crate::key::PeriodKey;
use crate::patterns::name_like_words;
use crate::read::read_parquet;

/// A fixed 64-bit hash of a value: the sets hold hashes, not values, so that millions of rows fit
/// and no value is kept in memory longer than one row.
pub(crate) fn value_hash(value: &str) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Values shorter than this are not compared (a house number `7` says nothing by itself).
const MIN_LEN: usize = 3;

/// What the checks need from the input.
#[derive(Debug, Default)]
pub(crate) struct InputFacts {
    /// Hashes of identifier, personal, staff and free-text values, and of name-like words of
    /// free text, that never occur in a publishable column.
    pub sensitive: Hashes,
    /// Pseudonym (raw bytes) -> index into `partitions`, when a key was given.
    pub pseudonyms: Pseudonyms,
    pub partitions: Vec<String>,
    pub rows: u64,
}

/// A set of value hashes, sorted: 8 bytes a value where a hash set held 9 to 18 (at 5 M rows
/// 9.1 M values, and twice as many bytes while the set grew).
#[derive(Debug, Default)]
pub(crate) struct Hashes(Vec<u64>);

impl Hashes {
    /// From the hashes of each chunk of rows, each chunk sorted and without repeats (each freed
    /// as it is copied).
    fn build(chunks: Vec<Vec<u64>>) -> Self {
        let mut all = concat(chunks);
        all.par_sort_unstable();
        all.dedup();
        all.shrink_to_fit();
        Self(all)
    }

    pub(crate) fn contains(&self, h: &u64) -> bool {
        self.0.binary_search(h).is_ok()
    }
}

/// The recomputed pseudonyms, each with the index of its row's partition: one flat array sorted
/// by pseudonym, looked up by binary search. At 5 M rows that is 170 MB, where a hash map held
/// 294 MB (and half as much again while it grew).
#[derive(Debug, Default)]
pub(crate) struct Pseudonyms {
    sorted: Vec<([u8; 32], u16)>,
}

/// The partition of a pseudonym whose input rows lie in different partitions (the input holds a
/// person twice, which `pseudonymise` refuses).
const AMBIGUOUS: u16 = u16::MAX;

impl Pseudonyms {
    /// From the pseudonyms in chunks of rows.
    fn build(chunks: Vec<Vec<([u8; 32], u16)>>) -> Self {
        let mut sorted = concat(chunks);
        sorted.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // A pseudonym recomputed from rows of different partitions belongs to none of them.
        sorted.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same && later.1 != kept.1 {
                kept.1 = AMBIGUOUS;
            }
            same
        });
        Self { sorted }
    }

    /// The partition index of `raw`'s input row, or [`AMBIGUOUS`].
    pub(crate) fn get(&self, raw: &[u8; 32]) -> Option<u16> {
        self.sorted
            .binary_search_by(|e| e.0.cmp(raw))
            .ok()
            .map(|i| self.sorted[i].1)
    }
}

/// The chunks as one vector, each chunk freed as it is copied (so at most one chunk more than the
/// result is held).
fn concat<T>(chunks: Vec<Vec<T>>) -> Vec<T> {
    let mut all = Vec::with_capacity(chunks.iter().map(Vec::len).sum());
    for chunk in chunks {
        all.extend(chunk);
    }
    all
}

/// How to recompute pseudonyms: which input column, with which key, and which input column holds
/// the partition.
pub(crate) struct Recompute<'a> {
    pub identifier: &'a str,
    pub key: &'a PeriodKey,
    pub partition_column: &'a str,
}

pub(crate) fn read(
    path: &Path,
    schema: &Schema,
    windows_1252: bool,
    recompute: Option<&Recompute<'_>>,
) -> Result<InputFacts> {
    let mut c = Collector {
        facts: InputFacts::default(),
        publishable: FxHashSet::default(),
        header: Vec::new(),
        id_col: None,
        part_col: None,
        partition_index: HashMap::new(),
        sensitive: Vec::new(),
        pseudonyms: Vec::new(),
        recompute,
    };
    let is_parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    if is_parquet {
        let file = read_parquet(path)?;
        c.header(path, schema, &file.columns)?;
        let rows: Vec<(usize, usize)> = file.row_positions().map(|(_, b, r)| (b, r)).collect();
        let seen: Vec<Seen> = rows
            .par_chunks(CHUNK_ROWS)
            .map(|chunk| {
                let mut seen = Seen::default();
                for &(b, r) in chunk {
                    c.see(
                        &mut seen,
                        (0..file.columns.len()).map(|i| file.text(b, i, r)),
                    );
                }
                seen.finished()
            })
            .collect();
        for s in seen {
            c.take(s);
        }
    } else {
        // Streamed in chunks of records: one chunk is looked at on the pool while the next is
        // read, so memory stays bounded whatever the size of the input.
        let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 20)
            .from_reader(file);
        let mut header = csv::ByteRecord::new();
        if reader
            .read_byte_record(&mut header)
            .map_err(|e| csv_error(path, &e))?
        {
            let names = header
                .iter()
                .map(|raw| decode(path, raw, windows_1252, 1).map(Cow::into_owned))
                .collect::<Result<Vec<String>>>()?;
            c.header(path, schema, &names)?;
            let mut chunk = read_chunk(&mut reader, path)?;
            while !chunk.is_empty() {
                let (next, seen) = rayon::join(
                    || read_chunk(&mut reader, path),
                    || {
                        chunk
                            .par_chunks(CHUNK_ROWS / 8)
                            .map(|records| {
                                let mut seen = Seen::default();
                                for record in records {
                                    let line = record.position().map_or(0, csv::Position::line);
                                    let fields = record
                                        .iter()
                                        .map(|raw| decode(path, raw, windows_1252, line))
                                        .collect::<Result<Vec<Cow<'_, str>>>>()?;
                                    c.see(
                                        &mut seen,
                                        fields
                                            .iter()
                                            .map(|v| (!v.is_empty()).then_some(v.as_ref())),
                                    );
                                }
                                Ok(seen.finished())
                            })
                            .collect::<Result<Vec<Seen>>>()
                    },
                );
                for s in seen? {
                    c.take(s);
                }
                chunk = next?;
            }
        }
    }
    let Collector {
        mut facts,
        publishable,
        sensitive,
        pseudonyms,
        ..
    } = c;
    let mut sensitive = Hashes::build(sensitive);
    sensitive.0.retain(|h| !publishable.contains(h));
    facts.sensitive = sensitive;
    drop(publishable);
    facts.pseudonyms = Pseudonyms::build(pseudonyms);
    Ok(facts)
}

/// Records looked at together.
const CHUNK_ROWS: usize = 65_536;

fn read_chunk(
    reader: &mut csv::Reader<std::fs::File>,
    path: &Path,
) -> Result<Vec<csv::ByteRecord>> {
    let mut records = Vec::with_capacity(CHUNK_ROWS);
    let mut record = csv::ByteRecord::new();
    while records.len() < CHUNK_ROWS
        && reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(path, &e))?
    {
        records.push(std::mem::take(&mut record));
    }
    Ok(records)
}

fn decode<'r>(path: &Path, raw: &'r [u8], windows_1252: bool, line: u64) -> Result<Cow<'r, str>> {
    if windows_1252 {
        Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(raw).0)
    } else {
        std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| Error::Format {
                path: path.to_owned(),
                reason: format!(
                    "is not UTF-8 near line {line}; pass --input-encoding windows-1252 if it is"
                ),
            })
    }
}

/// What some rows of the input hold, before it is merged into the facts (in file order).
#[derive(Default)]
struct Seen {
    rows: u64,
    sensitive: Vec<u64>,
    publishable: Vec<u64>,
    /// (raw pseudonym, the row's partition value), when pseudonyms are recomputed.
    pseudonyms: Vec<([u8; 32], String)>,
}

impl Seen {
    /// Sorts the hashes and drops repeats, on the thread that saw them.
    fn finished(mut self) -> Self {
        for hashes in [&mut self.sensitive, &mut self.publishable] {
            hashes.sort_unstable();
            hashes.dedup();
            hashes.shrink_to_fit();
        }
        self
    }
}

struct Collector<'a> {
    facts: InputFacts,
    publishable: FxHashSet<u64>,
    header: Vec<(Option<ColumnClass>, Option<ColumnType>)>,
    id_col: Option<usize>,
    part_col: Option<usize>,
    partition_index: HashMap<String, u16>,
    /// The sensitive values' hashes, chunk by chunk, each sorted and without repeats.
    sensitive: Vec<Vec<u64>>,
    /// The pseudonyms with their partitions, chunk by chunk in file order.
    pseudonyms: Vec<Vec<([u8; 32], u16)>>,
    recompute: Option<&'a Recompute<'a>>,
}

impl Collector<'_> {
    fn header(&mut self, path: &Path, schema: &Schema, names: &[String]) -> Result<()> {
        self.header = names
            .iter()
            .map(|n| {
                let spec = schema.column(n);
                (spec.map(|s| s.class), spec.map(|s| s.ty))
            })
            .collect();
        if let Some(r) = self.recompute {
            self.id_col = names.iter().position(|n| n == r.identifier);
            self.part_col = names.iter().position(|n| n == r.partition_column);
            if self.id_col.is_none() || self.part_col.is_none() {
                return Err(Error::Usage(format!(
                    "{}: the input has no column `{}` or `{}` to recompute pseudonyms from",
                    path.display(),
                    r.identifier,
                    r.partition_column
                )));
            }
        }
        Ok(())
    }

    /// Looks at one row (on any thread).
    fn see<'v>(&self, seen: &mut Seen, values: impl Iterator<Item = Option<&'v str>>) {
        seen.rows += 1;
        let (mut id, mut part) = (None, None);
        for (i, v) in values.enumerate() {
            let Some(v) = v else { continue };
            if Some(i) == self.id_col {
                id = Some(v);
            }
            if Some(i) == self.part_col {
                part = Some(v);
            }
            let v = v.trim();
            let (class, ty) = self.header.get(i).copied().unwrap_or((None, None));
            // An unknown column counts as sensitive: fail closed.
            if class.is_none_or(ColumnClass::is_sensitive) {
                if ty.is_none_or(|t| t == ColumnType::Str) && v.chars().count() >= MIN_LEN {
                    seen.sensitive.push(value_hash(v));
                }
                if class.is_none_or(|c| c == ColumnClass::FreeText) {
                    for w in name_like_words(v) {
                        seen.sensitive.push(value_hash(w));
                    }
                }
            } else {
                seen.publishable.push(value_hash(v));
                for w in name_like_words(v) {
                    seen.publishable.push(value_hash(w));
                }
            }
        }
        if let (Some(r), Some(id), Some(part)) = (self.recompute, id, part) {
            seen.pseudonyms
                .push((r.key.raw_pseudonym(id), part.to_owned()));
        }
    }

    /// Merges what some rows hold, in file order.
    fn take(&mut self, seen: Seen) {
        let facts = &mut self.facts;
        facts.rows += seen.rows;
        if !seen.sensitive.is_empty() {
            self.sensitive.push(seen.sensitive);
        }
        self.publishable.extend(seen.publishable);
        let mut chunk = Vec::with_capacity(seen.pseudonyms.len());
        for (raw, part) in seen.pseudonyms {
            let next = self.partition_index.len() as u16;
            let p = *self.partition_index.entry(part).or_insert_with_key(|part| {
                facts.partitions.push(part.clone());
                next
            });
            chunk.push((raw, p));
        }
        if !chunk.is_empty() {
            self.pseudonyms.push(chunk);
        }
    }
}

fn csv_error(path: &Path, e: &csv::Error) -> Error {
    let line = e.position().map_or(0, csv::Position::line);
    Error::Format {
        path: path.to_owned(),
        reason: format!("is not a readable `;`-separated CSV (near line {line})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(b: u8) -> [u8; 32] {
        let mut r = [0u8; 32];
        r[0] = b;
        r[31] = b.wrapping_mul(7);
        r
    }

    #[test]
    fn every_pseudonym_is_found_with_its_partition_and_a_person_in_two_is_in_none() {
        // In file order over three chunks: 9 twice in partition 1, 4 in partitions 0 and 2.
        let chunks = vec![
            vec![(raw(9), 1), (raw(4), 0)],
            vec![(raw(200), 2), (raw(9), 1)],
            vec![(raw(4), 2), (raw(17), 0)],
        ];
        let p = Pseudonyms::build(chunks);
        assert_eq!(p.get(&raw(9)), Some(1));
        assert_eq!(p.get(&raw(200)), Some(2));
        assert_eq!(p.get(&raw(17)), Some(0));
        assert_eq!(p.get(&raw(4)), Some(AMBIGUOUS));
        assert_eq!(p.get(&raw(5)), None);
        // The last byte counts as much as the first.
        let mut near = raw(9);
        near[31] ^= 1;
        assert_eq!(p.get(&near), None);
        assert_eq!(p.sorted.len(), 4);
    }
}
