//! Checks of a pseudonymised dataset (`OUT/<pipeline>/<month>/parquet/<key>=<value>/part-*.parquet`, or
//! `OUT/<pipeline>/<month>/<key>=<value>/part-*.parquet` as layout 1 wrote it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use pseudagg_core::{ColumnClass, ColumnType, Error, Month, Result, Schema};
use rayon::prelude::*;
use regex::Regex;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;

use crate::Options;
use crate::finding::{Finding, Rule, Verdict};
use crate::input::{self, InputFacts, Recompute, value_hash};
use crate::key;
use crate::linking;
use crate::manifest::{self, Manifest};
use crate::patterns::{name_like_words, shapes_of};
use crate::read::{TextFile, hive_keys, read_parquet_hive};

/// A column as the manifest declares it.
struct Declared {
    name: String,
    from: String,
    treatment: String,
}

fn declared_columns(m: &Manifest) -> Vec<Declared> {
    m.raw
        .get("columns")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| {
                    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    Declared {
                        name: s("name"),
                        from: s("from"),
                        treatment: s("treatment"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the values of an output column may be, from the input schema's contract of its source
/// column or, for a generalised column, the band labels. It does not depend on what the writer
/// says it did: a column declared "generalised" that holds free text fails, and so does a kept
/// column whose source the schema leaves free.
enum Contract {
    Values(HashSet<String>),
    Pattern(Regex),
    /// A text column without allowed values or pattern in the schema.
    Free,
}

impl Contract {
    fn of(d: &Declared, schema: &Schema) -> Option<Self> {
        match d.treatment.as_str() {
            "kept" => {
                let spec = schema.column(&d.from)?;
                Some(match spec.ty {
                    ColumnType::Bool => Self::Pattern(Regex::new("^(true|false)$").ok()?),
                    ColumnType::Date => {
                        Self::Pattern(Regex::new("^[0-9]{4}-[0-9]{2}-[0-9]{2}$").ok()?)
                    }
                    ColumnType::Str => match (&spec.values, &spec.pattern) {
                        (Some(v), _) => Self::Values(v.iter().cloned().collect()),
                        (None, Some(p)) => Self::Pattern(Regex::new(p).ok()?),
                        (None, None) => Self::Free,
                    },
                })
            }
            // The band labels of an age (`unter 15`, `15-19`, `65 und aelter`) or of days to the
            // month's end (`0-90 Tage`, `730 Tage und mehr`, `nach Monatsende`).
            "generalised" => Some(Self::Pattern(
                Regex::new(
                    "^(unter [0-9]{1,3}|[0-9]{1,3}-[0-9]{1,3}|[0-9]{1,3} und aelter|[0-9]{1,5}-[0-9]{1,5} Tage|[0-9]{1,5} Tage und mehr|nach Monatsende)$",
                )
                .ok()?,
            )),
            _ => None,
        }
    }

    fn allows(&self, value: &str) -> bool {
        match self {
            Self::Values(v) => v.contains(value),
            Self::Pattern(re) => re.is_match(value),
            Self::Free => true,
        }
    }
}

/// `parquet/rd=NRW/part-00000.parquet` (or `rd=NRW/part-00000.parquet`, the layout before the
/// data folder) -> (`rd`, `NRW`): the innermost `key=value` folder.
fn partition_of(path: &str) -> Option<(String, String)> {
    hive_keys(path).pop()
}

fn is_pseudonym(v: &str) -> bool {
    v.len() == 64
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn raw_pseudonym(v: &str) -> [u8; 32] {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(v, &mut raw).expect("checked as 64 hex characters");
    raw
}

/// What the check for a pseudonym seen twice keeps of it: its first 128 bits (16 bytes where 32
/// were kept: 140 MB less at 5 M rows). Two different pseudonyms that share them are taken for one
/// and reported, never passed: the check can only fail more, and for HMAC outputs that happens with
/// a chance of about one in 10^25 at 5 M rows.
fn seen_key(raw: &[u8; 32]) -> u128 {
    let mut half = [0u8; 16];
    half.copy_from_slice(&raw[..16]);
    u128::from_le_bytes(half)
}

#[allow(clippy::too_many_lines)] // the dataset rules, one after another
pub(crate) fn check(
    dir: &Path,
    m: &Manifest,
    options: &Options,
    verdict: &mut Verdict,
) -> Result<()> {
    let manifest_path = dir.join("manifest.json");
    let schema_name = m.str("input_schema").unwrap_or_default();
    let schema = Schema::builtin(schema_name).ok_or_else(|| Error::Format {
        path: manifest_path.clone(),
        reason: format!(
            "names the input schema `{schema_name}`, which this pseudagg does not know"
        ),
    })?;
    let month = m.month.clone().unwrap_or_default();
    let pipeline = m.str("pipeline").unwrap_or_default().to_owned();
    let key_id = m.str("key_id").unwrap_or_default();
    if key_id.len() != 16 {
        verdict.push(Finding::new(
            Rule::Manifest,
            "the manifest records no key id: nobody could tell which key made the pseudonyms",
        ));
    }

    // Columns: declared, publishable by their source's class, and nothing undeclared.
    verdict.check("columns");
    let declared = declared_columns(m);
    let mut pseudonym_columns = Vec::new();
    for d in &declared {
        let class = schema.column(&d.from).map(|c| c.class);
        let ok = match d.treatment.as_str() {
            "kept" => class.is_some_and(ColumnClass::may_be_published),
            "pseudonymised" => class == Some(ColumnClass::Identifier),
            "generalised" => class.is_some_and(|c| c != ColumnClass::Identifier),
            _ => false,
        };
        if !ok {
            verdict.push(
                Finding::new(
                    Rule::SensitiveColumn,
                    format!(
                        "declared as `{}` from `{}`, which its class does not allow (class {})",
                        d.treatment,
                        d.from,
                        class.map_or_else(|| "unknown".to_owned(), |c| c.to_string())
                    ),
                )
                .column(&d.name),
            );
        }
        if d.treatment == "pseudonymised" {
            pseudonym_columns.push(d.name.clone());
        }
    }
    let allowed: HashSet<&str> = declared.iter().map(|d| d.name.as_str()).collect();
    let mut contracts: HashMap<String, Contract> = HashMap::new();
    for d in &declared {
        if let Some(c) = Contract::of(d, &schema) {
            if matches!(c, Contract::Free) {
                verdict.push(
                    Finding::new(
                        Rule::ColumnValue,
                        format!(
                            "kept from `{}`, which the schema `{}` leaves free: it could hold anything a case worker typed, so it may not be published",
                            d.from, schema.name
                        ),
                    )
                    .column(&d.name),
                );
            }
            contracts.insert(d.name.clone(), c);
        }
    }

    // The input, when given: sensitive values, and pseudonyms to recompute.
    let partition_key = m
        .files
        .first()
        .and_then(|f| partition_of(&f.path))
        .map(|(k, _)| k);
    let period_key = match &options.key_file {
        Some(path) => {
            let (id, k) = key::load(path, &pipeline, &month)?;
            // With another key no pseudonym recomputes: every row would be a finding, and none
            // would say anything about the output. The check cannot be made (exit 2).
            if id != key_id {
                return Err(Error::Key(format!(
                    "could not check: the key {} (id {id}) is not the one that wrote this output \
                     (the manifest names key id {key_id}); give the key file of id {key_id}, or \
                     verify without --key-file",
                    path.display()
                )));
            }
            Some(k)
        }
        None => None,
    };
    let identifier = declared
        .iter()
        .find(|d| d.treatment == "pseudonymised")
        .map(|d| d.from.clone());
    let facts: Option<InputFacts> = match &options.input {
        Some(path) => {
            let recompute = match (&period_key, &identifier, &partition_key) {
                (Some(key), Some(identifier), Some(part)) => Some(Recompute {
                    identifier,
                    key,
                    partition_column: part,
                }),
                _ => None,
            };
            let f = input::read(
                path,
                &schema,
                options.input_windows_1252,
                recompute.as_ref(),
            )?;
            verdict.fact("input_rows", &f.rows);
            Some(f)
        }
        None => None,
    };

    // k-anonymity, as the manifest declares it.
    let k_decl = m.raw.get("k_anonymity").and_then(|k| {
        let qi: Vec<String> = k
            .get("quasi_identifiers")?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        Some((qi, k.get("min_k")?.as_u64()?))
    });

    // With another month: its manifest, and this month's rows bucketed in the one pass below.
    let other = match &options.against {
        Some(path) => {
            let om = manifest::load(path)?;
            if om.month.as_deref() == Some(month.as_str()) {
                return Err(Error::Usage(format!(
                    "{} is the same month ({month}); --against takes another month's output",
                    path.display()
                )));
            }
            let columns = linking::columns(m, &om, &schema);
            Some((path.as_path(), om, columns))
        }
        None => None,
    };
    let mut these_rows = linking::Buckets::new();

    verdict.check("values");
    if facts.is_some() {
        verdict.check("input-values");
    }
    verdict.check("pseudonyms");
    if period_key.is_some() {
        verdict.check("pseudonym-recompute");
    }
    verdict.check("partitions");
    // Each file is read and checked on its own, on every core; what spans files (pseudonyms seen
    // twice, months, groups of a partition, the rows to link) is merged in the manifest's order, so
    // the verdict is the same as one file after the other.
    let context = FileContext {
        dir,
        allowed: &allowed,
        schema: &schema,
        contracts: &contracts,
        pseudonym_columns: &pseudonym_columns,
        facts: facts.as_ref(),
        recompute: period_key.is_some(),
        qi: k_decl.as_ref().map(|(qi, _)| qi.as_slice()),
        linking: other.as_ref().map(|(_, _, columns)| columns.as_slice()),
    };
    // As many files at a time as there are threads, so that only their results wait to be merged.
    let checked = m
        .files
        .chunks(rayon::current_num_threads().max(1))
        .flat_map(|files| {
            let checked: Vec<Result<Option<FileChecked>>> = files
                .par_iter()
                .map(|entry| check_file(&context, &entry.path))
                .collect();
            files.iter().zip(checked)
        });
    let mut seen: FxHashSet<u128> = FxHashSet::default();
    let mut rows_total = 0u64;
    let mut months: HashSet<String> = HashSet::new();
    // The groups of a partition are counted until its last file is merged, then folded into its
    // sizes: only the partitions being read hold their groups (a key per combination of values, up
    // to one per row).
    let mut groups: BTreeMap<String, FxHashMap<Vec<u8>, u64>> = BTreeMap::new();
    let mut sizes: BTreeMap<String, GroupSizes> = BTreeMap::new();
    let min_k = k_decl.as_ref().map_or(0, |(_, k)| *k);
    let mut files_left: HashMap<String, usize> = HashMap::new();
    for entry in &m.files {
        if let Some((_, value)) = partition_of(&entry.path) {
            *files_left.entry(value).or_default() += 1;
        }
    }
    for (entry, file) in checked {
        let Some(file) = file? else {
            continue; // missing: reported by the manifest check
        };
        verdict.absorb(file.verdict);
        seen.reserve(file.pseudonyms.len());
        for (raw, row, c) in file.pseudonyms {
            if !seen.insert(raw) {
                verdict.push(
                    Finding::new(
                        Rule::PseudonymFormat,
                        "the same pseudonym is in an earlier row: one row per person",
                    )
                    .file(&entry.path)
                    .row(row)
                    .column(&pseudonym_columns[c as usize]),
                );
            }
        }
        months.extend(file.months);
        if let Some((value, counted)) = file.groups {
            let into = groups.entry(value.clone()).or_default();
            for (key, n) in counted {
                *into.entry(key).or_default() += n;
            }
            let left = files_left.get_mut(&value).map(|n| {
                *n = n.saturating_sub(1);
                *n
            });
            if left.is_none_or(|n| n == 0)
                && let Some(g) = groups.remove(&value)
            {
                sizes.entry(value).or_default().add(g.into_values(), min_k);
            }
        }
        for (key, mut rows) in file.linking {
            these_rows.entry(key).or_default().append(&mut rows);
        }
        rows_total += file.rows;
    }
    verdict.fact("rows", &rows_total);
    verdict.fact("pseudonyms", &seen.len());

    verdict.check("one-month");
    months.insert(month.clone());
    if months.len() > 1 {
        verdict.push(Finding::new(
            Rule::TimeSeries,
            format!(
                "the dataset holds {} months (in file metadata or the `datenstand` column); one output is one month",
                months.len()
            ),
        ));
    }

    if let Some((qi, k)) = &k_decl {
        verdict.check("k-anonymity");
        // A partition whose files the manifest does not list in full is folded here.
        for (part, g) in std::mem::take(&mut groups) {
            sizes.entry(part).or_default().add(g.into_values(), min_k);
        }
        let mut smallest = u64::MAX;
        let (mut below, mut total) = (0u64, 0u64);
        for (part, g) in &sizes {
            smallest = smallest.min(g.smallest);
            total += g.total;
            below += g.below;
            let part_min = if g.smallest == u64::MAX {
                0
            } else {
                g.smallest
            };
            if part_min > 0 && part_min < *k {
                verdict.push(Finding::new(
                    Rule::KAnonymity,
                    format!(
                        "in partition {part}, a group of {part_min} rows shares its quasi-identifiers ({}); the pipeline requires at least {k}",
                        qi.join(", ")
                    ),
                ));
            }
        }
        if total > 0 {
            verdict.fact("k_smallest_group", &smallest);
            verdict.fact(
                "k_share_below_min_k",
                &format!("{:.4}", below as f64 / total as f64),
            );
        }
    }

    if let Some((path, om, columns)) = &other {
        verdict.check("unlinkable");
        against(
            (path, om, columns),
            (&these_rows, dir, &month),
            &seen,
            options,
            verdict,
        )?;
    }
    Ok(())
}

/// What every file's check needs.
struct FileContext<'a> {
    dir: &'a Path,
    allowed: &'a HashSet<&'a str>,
    schema: &'a Schema,
    contracts: &'a HashMap<String, Contract>,
    pseudonym_columns: &'a [String],
    facts: Option<&'a InputFacts>,
    recompute: bool,
    /// The declared quasi-identifiers.
    qi: Option<&'a [String]>,
    /// The columns to link with another month.
    linking: Option<&'a [(String, linking::Kind)]>,
}

/// The sizes of a partition's groups of quasi-identifiers, once all its rows are counted.
#[derive(Debug, Clone, Copy)]
struct GroupSizes {
    smallest: u64,
    total: u64,
    /// Rows in groups below the required size.
    below: u64,
}

impl Default for GroupSizes {
    fn default() -> Self {
        Self {
            smallest: u64::MAX,
            total: 0,
            below: 0,
        }
    }
}

impl GroupSizes {
    fn add(&mut self, groups: impl Iterator<Item = u64>, min_k: u64) {
        for n in groups {
            self.smallest = self.smallest.min(n);
            self.total += n;
            if n < min_k {
                self.below += n;
            }
        }
    }
}

/// What one file gives: its own findings, and what is merged across files.
struct FileChecked {
    verdict: Verdict,
    /// ([`seen_key`] of the pseudonym, 1-based row, index into the pseudonym columns), in row
    /// order.
    pseudonyms: Vec<(u128, u64, u32)>,
    months: HashSet<String>,
    /// The partition's value and its groups of quasi-identifiers (see [`group_key`]).
    groups: Option<(String, FxHashMap<Vec<u8>, u64>)>,
    linking: linking::Buckets,
    rows: u64,
}

/// Reads and checks one file of the dataset; `None` when it is missing.
fn check_file(context: &FileContext<'_>, rel: &str) -> Result<Option<FileChecked>> {
    let path = context.dir.join(rel);
    if !path.is_file() {
        return Ok(None);
    }
    let file = read_parquet_hive(&path, rel)?;
    let mut out = FileChecked {
        verdict: Verdict::new(context.dir, "pseudonymised-dataset"),
        pseudonyms: Vec::new(),
        months: HashSet::new(),
        groups: None,
        linking: linking::Buckets::new(),
        rows: file.rows() as u64,
    };
    let verdict = &mut out.verdict;
    let partition = partition_of(rel);
    if partition.is_none() {
        verdict.push(
            Finding::new(
                Rule::Partition,
                "not inside a `key=value` partition folder: whose rows are these?",
            )
            .file(rel),
        );
    }
    if let Some(fm) = file.metadata.get("pseudagg.month") {
        out.months.insert(fm.clone());
    }
    for name in &file.columns {
        if !context.allowed.contains(name.as_str()) {
            verdict.push(
                Finding::new(
                    Rule::ColumnNotAllowed,
                    "a column the manifest does not declare",
                )
                .file(rel)
                .column(name),
            );
        }
        if let Some(spec) = context.schema.column(name)
            && spec.class.is_sensitive()
        {
            verdict.push(
                Finding::new(
                    Rule::SensitiveColumn,
                    format!("named like the input's {} column", spec.class),
                )
                .file(rel)
                .column(name),
            );
        }
    }
    if !file.metadata.contains_key("pseudagg.month") {
        verdict.push(
            Finding::new(
                Rule::Manifest,
                "the Parquet file does not name its month (metadata `pseudagg.month`): stripped or not written by pseudagg",
            )
            .file(rel),
        );
    }
    check_rows(&file, rel, partition.as_ref(), context, &mut out);
    if let (Some(qi), Some((_, value))) = (context.qi, &partition) {
        out.groups = Some((value.clone(), count_groups(&file, qi)));
        check_revealed(&file, rel, context.schema, qi, &mut out.verdict);
    }
    if let Some(columns) = context.linking {
        linking::add_rows(&file, columns, &mut out.linking);
    }
    Ok(Some(out))
}

/// What the value rules say about one value; the rules depend on the value and its column only,
/// so each distinct value of a column is judged once per file.
#[derive(Default)]
struct ValueJudgement {
    not_allowed: bool,
    shapes: Vec<(Rule, &'static str)>,
    input_value: bool,
}

fn judge(value: &str, contract: Option<&Contract>, facts: Option<&InputFacts>) -> ValueJudgement {
    ValueJudgement {
        not_allowed: contract.is_some_and(|c| !c.allows(value)),
        shapes: shapes_of(value).collect(),
        input_value: facts.is_some_and(|f| {
            let trimmed = value.trim();
            (trimmed.chars().count() >= 3 && f.sensitive.contains(&value_hash(trimmed)))
                || name_like_words(trimmed).any(|w| f.sensitive.contains(&value_hash(w)))
        }),
    }
}

/// The row rules, in one pass over the rows: findings in row order, then column order.
fn check_rows(
    file: &TextFile,
    rel: &str,
    partition: Option<&(String, String)>,
    context: &FileContext<'_>,
    out: &mut FileChecked,
) {
    let part_col = partition.and_then(|(k, _)| file.index(k));
    let datenstand = file.index("datenstand");
    let contract: Vec<Option<&Contract>> = file
        .columns
        .iter()
        .map(|c| context.contracts.get(c))
        .collect();
    let pseudonym_column: Vec<Option<usize>> = file
        .columns
        .iter()
        .map(|c| context.pseudonym_columns.iter().position(|p| p == c))
        .collect();
    // The judgements of the values seen, and per column the value's index in them.
    let mut judgements: Vec<ValueJudgement> = Vec::new();
    let mut judged: Vec<FxHashMap<&str, usize>> =
        file.columns.iter().map(|_| FxHashMap::default()).collect();
    // Per column read as a dictionary: for each key of the batch's dictionary, its value's
    // judgement and whether it is another partition's value; taken at the key's first row.
    let mut by_key: Vec<Vec<Option<(usize, bool)>>> = vec![Vec::new(); file.columns.len()];
    let mut keys_of_batch = usize::MAX;
    out.pseudonyms.reserve(file.rows());
    let verdict = &mut out.verdict;
    for (row, b, r) in file.row_positions() {
        if b != keys_of_batch {
            by_key.iter_mut().for_each(Vec::clear);
            keys_of_batch = b;
        }
        for (c, name) in file.columns.iter().enumerate() {
            let value = file.text(b, c, r);
            let at = |rule: Rule, message: String| Finding {
                rule,
                message,
                ..Finding::new(Rule::Manifest, "")
                    .file(rel)
                    .row(row)
                    .column(name)
            };
            if let Some(p) = pseudonym_column[c] {
                if let Some(seen) = check_pseudonym(value, partition, context, verdict, &at) {
                    out.pseudonyms.push((seen, row, p as u32));
                }
                continue;
            }
            let Some(v) = value else { continue };
            let key = file.key(b, c, r);
            let known = key.and_then(|k| by_key[c].get(k).copied().flatten());
            let (j, other_partition) = known.unwrap_or_else(|| {
                let other = Some(c) == part_col
                    && partition.is_some_and(|(_, expected)| v != expected.as_str());
                if Some(c) == datenstand && !out.months.contains(v) {
                    out.months.insert(v.to_owned());
                }
                let j = *judged[c].entry(v).or_insert_with(|| {
                    judgements.push(judge(v, contract[c], context.facts));
                    judgements.len() - 1
                });
                if let Some(k) = key {
                    if by_key[c].len() <= k {
                        by_key[c].resize(k + 1, None);
                    }
                    by_key[c][k] = Some((j, other));
                }
                (j, other)
            });
            if other_partition && let Some((key, expected)) = partition {
                verdict.push(at(
                    Rule::Partition,
                    format!("a row of another {key} in the folder {key}={expected}"),
                ));
            }
            let judgement = &judgements[j];
            if judgement.not_allowed {
                verdict.push(at(
                    Rule::ColumnValue,
                    "not a value its column may hold (the schema's allowed values or pattern, or a band label)".into(),
                ));
            }
            for (rule, what) in &judgement.shapes {
                verdict.push(at(*rule, format!("holds {what}")));
            }
            if judgement.input_value {
                verdict.push(at(
                    Rule::InputValue,
                    "holds a value of an identifier, personal, staff or free-text column of the input".into(),
                ));
            }
        }
    }
}

/// Checks a pseudonym cell: its form, and with
/// the input's facts, that it recomputes from an input row of its partition. Its key for the
/// repeat check when it is a pseudonym.
fn check_pseudonym(
    value: Option<&str>,
    partition: Option<&(String, String)>,
    context: &FileContext<'_>,
    verdict: &mut Verdict,
    at: &dyn Fn(Rule, String) -> Finding,
) -> Option<u128> {
    let Some(v) = value.filter(|v| is_pseudonym(v)) else {
        verdict.push(at(
            Rule::PseudonymFormat,
            "not a pseudonym (64 lower-case hex characters)".into(),
        ));
        return None;
    };
    let raw = raw_pseudonym(v);
    if context.recompute
        && let Some(f) = context.facts
    {
        match f.pseudonyms.get(&raw) {
            None => verdict.push(at(
                Rule::PseudonymRecompute,
                "recomputes from no input row with this key and month".into(),
            )),
            Some(p) => {
                if let Some((_, value)) = partition
                    && f.partitions.get(usize::from(p)) != Some(value)
                {
                    verdict.push(at(
                        Rule::Partition,
                        "its input row belongs to another partition".into(),
                    ));
                }
            }
        }
    }
    Some(seen_key(&raw))
}

/// A row's quasi-identifiers as one key: per column a 0 byte for a blank, or a 1 byte, the
/// value's length (4 bytes) and the value, so that no value can fake a boundary.
fn group_key(file: &TextFile, idx: &[Option<usize>], b: usize, r: usize, key: &mut Vec<u8>) {
    key.clear();
    for i in idx {
        match i.and_then(|i| file.text(b, i, r)) {
            None => key.push(0),
            Some(v) => {
                key.push(1);
                key.extend_from_slice(&u32::try_from(v.len()).unwrap_or(u32::MAX).to_le_bytes());
                key.extend_from_slice(v.as_bytes());
            }
        }
    }
}

fn count_groups(file: &TextFile, qi: &[String]) -> FxHashMap<Vec<u8>, u64> {
    let idx: Vec<Option<usize>> = qi.iter().map(|q| file.index(q)).collect();
    let mut groups: FxHashMap<Vec<u8>, u64> = FxHashMap::default();
    let mut key = Vec::new();
    for (_, b, r) in file.row_positions() {
        group_key(file, &idx, b, r, &mut key);
        if let Some(n) = groups.get_mut(key.as_slice()) {
            *n += 1;
        } else {
            groups.insert(key.clone(), 1);
        }
    }
    groups
}

/// A blanked quasi-identifier must not be given away by a column the schema says reveals it
/// (`ge_nr` reveals `agentur_nr`): where the one is empty, the other must be too.
fn check_revealed(
    file: &TextFile,
    rel: &str,
    schema: &Schema,
    qi: &[String],
    verdict: &mut Verdict,
) {
    for q in qi {
        let Some(qc) = file.index(q) else { continue };
        for spec in schema.columns.iter().filter(|c| c.reveals.contains(q)) {
            let Some(rc) = file.index(&spec.name) else {
                continue;
            };
            for (row, b, r) in file.row_positions() {
                if file.text(b, qc, r).is_none() && file.text(b, rc, r).is_some() {
                    verdict.push(
                        Finding::new(
                            Rule::KAnonymity,
                            format!(
                                "`{q}` is blanked, but `{}` is not, and it gives `{q}` away",
                                spec.name
                            ),
                        )
                        .file(rel)
                        .row(row)
                        .column(&spec.name),
                    );
                }
            }
        }
    }
}

/// No pseudonym of this month may appear in the other month's dataset.
fn against(
    (other, m, columns): (&Path, &Manifest, &[(String, linking::Kind)]),
    (these_rows, dir, month): (&linking::Buckets, &Path, &str),
    seen: &FxHashSet<u128>,
    options: &Options,
    verdict: &mut Verdict,
) -> Result<()> {
    let names: Vec<String> = declared_columns(m)
        .into_iter()
        .filter(|d| d.treatment == "pseudonymised")
        .map(|d| d.name)
        .collect();
    let mut shared = 0u64;
    let mut their_rows = linking::Buckets::new();
    for entry in &m.files {
        let file = read_parquet_hive(&other.join(&entry.path), &entry.path)?;
        linking::add_rows(&file, columns, &mut their_rows);
        let cols: Vec<usize> = names.iter().filter_map(|n| file.index(n)).collect();
        for (_, b, r) in file.row_positions() {
            for &c in &cols {
                if let Some(v) = file.text(b, c, r).filter(|v| is_pseudonym(v))
                    && seen.contains(&seen_key(&raw_pseudonym(v)))
                {
                    shared += 1;
                }
            }
        }
    }
    if shared > 0 {
        verdict.push(Finding::new(
            Rule::Linkable,
            format!(
                "{shared} pseudonyms also appear in {} ({}): the two months can be linked into a time series",
                other.display(),
                m.month.clone().unwrap_or_default()
            ),
        ));
    }
    verdict.fact("shared_pseudonyms", &shared);

    // The kept attributes: a record that matches exactly one of the other month's records links
    // the person's two records although the pseudonyms differ.
    let month_of = |text: &str, path: &Path| {
        text.parse::<Month>().map_err(|_| Error::Format {
            path: path.join("manifest.json"),
            reason: "names no month YYYY-MM".into(),
        })
    };
    let (linked, total) = linking::uniquely_linkable(
        (these_rows, month_of(month, dir)?),
        (
            &their_rows,
            month_of(m.month.as_deref().unwrap_or_default(), other)?,
        ),
        columns,
    );
    let limit = options.max_linkable.unwrap_or(crate::DEFAULT_MAX_LINKABLE);
    let share = if total == 0 {
        0.0
    } else {
        linked as f64 / total as f64
    };
    verdict.fact("linkable_records", &linked);
    verdict.fact("linkable_share", &format!("{share:.4}"));
    if share > limit {
        verdict.push(Finding::new(
            Rule::Linkable,
            format!(
                "{linked} of {total} records ({:.1} %) match exactly one record of {} ({}) on the kept attributes, more than the {:.1} % allowed: the months can be linked although the pseudonyms differ; add the linking columns to the k-anonymity's quasi-identifiers, or generalise them further",
                share * 100.0,
                other.display(),
                m.month.clone().unwrap_or_default(),
                limit * 100.0
            ),
        ));
    }
    Ok(())
}
