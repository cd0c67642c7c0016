//! The original extract, read again with the csv and parquet crates, for the checks that compare
//! an output with its input: no sensitive value may reappear, and every pseudonym must recompute.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use pseudagg_core::{ColumnClass, ColumnType, Error, Result, Schema};

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
    pub sensitive: HashSet<u64>,
    /// Pseudonym (raw bytes) -> index into `partitions`, when a key was given.
    pub pseudonyms: HashMap<[u8; 32], u16>,
    pub partitions: Vec<String>,
    pub rows: u64,
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
        publishable: HashSet::new(),
        header: Vec::new(),
        id_col: None,
        part_col: None,
        partition_index: HashMap::new(),
        recompute,
    };
    let is_parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    if is_parquet {
        let file = read_parquet(path)?;
        c.header(path, schema, &file.columns)?;
        for (_, b, r) in file.row_positions() {
            c.row((0..file.columns.len()).map(|i| file.text(b, i, r)));
        }
    } else {
        // Streamed record by record: the input may be larger than the memory verify may use.
        let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 20)
            .from_reader(file);
        let mut record = csv::ByteRecord::new();
        let mut first = true;
        while reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(path, &e))?
        {
            let line = record.position().map_or(0, csv::Position::line);
            let fields = record
                .iter()
                .map(|raw| {
                    if windows_1252 {
                        Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(raw).0)
                    } else {
                        std::str::from_utf8(raw).map(Cow::Borrowed).map_err(|_| Error::Format {
                            path: path.to_owned(),
                            reason: format!(
                                "is not UTF-8 near line {line}; pass --input-encoding windows-1252 if it is"
                            ),
                        })
                    }
                })
                .collect::<Result<Vec<Cow<'_, str>>>>()?;
            if first {
                first = false;
                let names: Vec<String> = fields.iter().map(|f| f.clone().into_owned()).collect();
                c.header(path, schema, &names)?;
            } else {
                c.row(fields.iter().map(|v| (!v.is_empty()).then_some(v.as_ref())));
            }
        }
    }
    let Collector {
        mut facts,
        publishable,
        ..
    } = c;
    facts.sensitive.retain(|h| !publishable.contains(h));
    Ok(facts)
}

struct Collector<'a> {
    facts: InputFacts,
    publishable: HashSet<u64>,
    header: Vec<(Option<ColumnClass>, Option<ColumnType>)>,
    id_col: Option<usize>,
    part_col: Option<usize>,
    partition_index: HashMap<String, u16>,
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

    fn row<'v>(&mut self, values: impl Iterator<Item = Option<&'v str>>) {
        let facts = &mut self.facts;
        facts.rows += 1;
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
                    facts.sensitive.insert(value_hash(v));
                }
                if class.is_none_or(|c| c == ColumnClass::FreeText) {
                    for w in name_like_words(v) {
                        facts.sensitive.insert(value_hash(w));
                    }
                }
            } else {
                self.publishable.insert(value_hash(v));
                for w in name_like_words(v) {
                    self.publishable.insert(value_hash(w));
                }
            }
        }
        if let (Some(r), Some(id), Some(part)) = (self.recompute, id, part) {
            let next = self.partition_index.len() as u16;
            let p = *self
                .partition_index
                .entry(part.to_owned())
                .or_insert_with(|| {
                    facts.partitions.push(part.to_owned());
                    next
                });
            let mut raw = [0u8; 32];
            hex::decode_to_slice(r.key.pseudonym(id), &mut raw).expect("hex of 32 bytes");
            facts.pseudonyms.insert(raw, p);
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
