//! Checks of a report (layout 2: `OUT/<report>/<month>/{parquet,csv,xlsx}/recipient=<scope>/`, `all/`,
//! `manifests/`; layout 1: `{bund,rd=X,ge=N}/`), from the published files only.
//!
//! The interval audit is recomputed here from what each recipient sees: the cells of its scope and
//! the relations an attacker knows (gEs add up to their RD, RDs to the Bund when all are shown,
//! categories to their total, subsets no larger than their whole). For each suppressed cell two
//! linear programs give the smallest and largest value it can take, with every suppressed cell at
//! least 1. A cell that could be small (its lower end below the threshold) is disclosed when its
//! upper end is below the threshold too, or when its interval is narrower than the minimum width.

mod definition;
mod together;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use microlp::{ComparisonOp, OptimizationDirection, Problem};
use rayon::prelude::*;
use serde_json::Value;

use pseudagg_core::{Error, Result};

use crate::finding::{Finding, Rule, Verdict};
use crate::manifest::Manifest;
use crate::patterns::shapes_of;
use crate::read::{TextFile, read_parquet};

const EPS: f64 = 1e-6;

/// Column names that would make a table a time series.
const TIME_WORDS: [&str; 10] = [
    "datenstand",
    "monat",
    "jahr",
    "datum",
    "stichtag",
    "month",
    "year",
    "date",
    "zeit",
    "periode",
];

#[derive(Clone)]
struct Structure {
    /// Per dimension: its column, its categories and its total.
    dims: Vec<(String, Vec<String>, String)>,
    indicators: Vec<(String, Option<String>)>,
    /// Groups of indicators no person is counted in two of, with the indicator they are all
    /// subsets of: `(whole, members, exhaustive)`, the last `true` where the members hold every
    /// person of the whole (which is then their sum).
    exclusive: Vec<(String, Vec<String>, bool)>,
    /// `(part, whole)` beyond the indicators' own `subset_of`.
    implied_subsets: Vec<(String, String)>,
    /// `(position, part, whole)`: subsets that hold at one position only (its categories joined
    /// as the cell keys join them).
    position_subsets: Vec<(String, String, String)>,
    threshold: u64,
    width: u64,
}

fn structure(m: &Manifest, path: &Path) -> Result<Structure> {
    let bad = |what: &str| Error::Format {
        path: path.to_owned(),
        reason: format!("the report manifest has no {what}"),
    };
    let s = m.raw.get("structure").ok_or_else(|| bad("`structure`"))?;
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let sup = m
        .raw
        .get("suppression")
        .ok_or_else(|| bad("`suppression`"))?;
    let dims = match s.get("dimensions").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|d| {
                (
                    d.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    strings(d.get("categories")),
                    d.get("total")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                )
            })
            .collect(),
        // A manifest written before two dimensions could be declared: one, or none.
        None => match (
            s.get("dimension").and_then(Value::as_str),
            s.get("total").and_then(Value::as_str),
        ) {
            (Some(name), Some(total)) => vec![(
                name.to_owned(),
                strings(s.get("categories"))
                    .into_iter()
                    .filter(|c| c != total)
                    .collect(),
                total.to_owned(),
            )],
            _ => Vec::new(),
        },
    };
    let indicators: Vec<(String, Option<String>)> = s
        .get("indicators")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`structure.indicators`"))?
        .iter()
        .map(|i| {
            (
                i.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                i.get("subset_of")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            )
        })
        .collect();
    let exclusive = exclusive_groups(s, &indicators).ok_or_else(|| {
        bad("valid `structure.exclusive` (groups of two or more parts of one indicator)")
    })?;
    let implied_subsets = s
        .get("implied_subsets")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|pair| match strings(Some(pair)).as_slice() {
            [part, whole] => Some((part.clone(), whole.clone())),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("valid `structure.implied_subsets` (pairs of indicators)"))?;
    let position_subsets = position_subsets(s)
        .ok_or_else(|| bad("valid `structure.position_subsets` ({at, part, whole})"))?;
    Ok(Structure {
        dims,
        indicators,
        exclusive,
        implied_subsets,
        position_subsets,
        threshold: sup
            .get("threshold")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("`suppression.threshold`"))?,
        width: sup
            .get("min_interval_width")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("`suppression.min_interval_width`"))?,
    })
}

/// The manifest's subsets that hold at one position (`{at, part, whole}`), the position joined
/// as the cell keys join it; `None` when one is not such an entry.
fn position_subsets(s: &Value) -> Option<Vec<(String, String, String)>> {
    s.get("position_subsets")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|x| {
            let text = |k: &str| x.get(k).and_then(Value::as_str).map(str::to_owned);
            let at: Option<Vec<&str>> =
                x.get("at")?.as_array()?.iter().map(Value::as_str).collect();
            Some((at?.join(POSITION_SEPARATOR), text("part")?, text("whole")?))
        })
        .collect()
}

/// The manifest's groups of indicators no person is counted in two of (`{"whole", "parts"}`),
/// each part a part of the whole through the indicators' `subset_of`; `None` when a group is
/// not such a group.
fn exclusive_groups(
    s: &Value,
    indicators: &[(String, Option<String>)],
) -> Option<Vec<(String, Vec<String>, bool)>> {
    let whole_of = |m: &str| {
        indicators
            .iter()
            .find(|i| i.0 == m)
            .and_then(|i| i.1.clone())
    };
    // Whether `part` lies inside `whole` (through at most every indicator).
    let inside = |part: &str, whole: &str| {
        let mut at = whole_of(part);
        for _ in 0..indicators.len() {
            match at {
                Some(w) if w == whole => return true,
                Some(w) => at = whole_of(&w),
                None => return false,
            }
        }
        false
    };
    let mut out = Vec::new();
    for group in s
        .get("exclusive")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let whole = group.get("whole")?.as_str()?.to_owned();
        let parts: Vec<String> = group
            .get("parts")?
            .as_array()?
            .iter()
            .map(|m| m.as_str().map(str::to_owned))
            .collect::<Option<_>>()?;
        let exhaustive = match group.get("exhaustive") {
            None => false,
            Some(v) => v.as_bool()?,
        };
        if parts.len() < 2 || !parts.iter().all(|m| inside(m, &whole)) {
            return None;
        }
        out.push((whole, parts, exhaustive));
    }
    Some(out)
}

/// Joins a cell's categories of each dimension into the key's category.
const POSITION_SEPARATOR: &str = "\u{1f}";

/// (level, rd, ge_nr)
type Area = (String, String, String);
/// (area, category, indicator)
type CellKey = (Area, String, String);

/// The published table of one scope.
#[derive(Default, Clone)]
struct ScopeTable {
    keys: Vec<CellKey>,
    /// `None`: suppressed.
    values: Vec<Option<u64>>,
    index: HashMap<CellKey, usize>,
    /// Cells that are not published cells but the people one report's cell counts beyond
    /// another's (the month's reports together), with how findings name them. Such a group may
    /// be empty; a suppressed cell is at least 1.
    groups: HashMap<usize, String>,
    /// Cells a relation between two of the month's reports holds (groups included): the parts
    /// of the joint system the month's reports are audited together in.
    linked: HashSet<usize>,
}

impl ScopeTable {
    /// The smallest value a cell can have: a suppressed cell is at least 1 (zeros are published),
    /// a group of people may be empty.
    fn floor(&self, cell: usize) -> f64 {
        if self.groups.contains_key(&cell) {
            0.0
        } else {
            1.0
        }
    }
}

#[allow(clippy::too_many_lines)] // the report rules, one after another
pub(crate) fn check(
    dir: &Path,
    m: &Manifest,
    verdict: &mut Verdict,
    progress: Option<pseudagg_core::Progress<'_>>,
) -> Result<()> {
    let mut s = structure(m, &dir.join("manifest.json"))?;
    definition::confirm(dir, m, &mut s, verdict)?;
    let month = m.month.clone().unwrap_or_default();
    let report = m.str("report").unwrap_or_default().to_owned();
    let scopes: Vec<String> = m
        .raw
        .get("scopes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // Layout 1: a folder per recipient (`rd=NRW/`) with all formats and its `_manifest.json`;
    // layout 2: a folder per format with `recipient=rd-NRW/` below it (pseudagg-report's output).
    let layout = Layout::of(m);
    let rd_count = scopes
        .iter()
        .filter(|x| x.starts_with("rd=") || x.starts_with("rd-"))
        .count();
    verdict.fact("scopes", &scopes.len());
    verdict.check("columns");
    verdict.check("values");
    verdict.check("one-month");
    verdict.check("csv-matches-parquet");
    verdict.check("interval-audit");
    let mut months: HashSet<String> = HashSet::from([month.clone()]);
    let mut expected = vec!["level", "rd", "ge_nr", "ge_name"];
    for (d, _, _) in &s.dims {
        expected.push(d);
        if TIME_WORDS.contains(&d.as_str()) {
            verdict.push(Finding::new(
                Rule::TimeSeries,
                format!("the dimension `{d}` is a time dimension"),
            ));
        }
    }
    expected.extend(["indicator", "value", "suppressed"]);
    let categories = s
        .dims
        .iter()
        .flat_map(|(_, cats, total)| cats.iter().chain([total]));
    for c in categories.chain(s.indicators.iter().map(|i| &i.0)) {
        if looks_like_a_period(c) {
            verdict.push(Finding::new(
                Rule::TimeSeries,
                "a category or indicator is named like a month or year",
            ));
        }
    }
    let listed: HashSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();

    verdict.check("recipient-folder");
    let stem = format!("{report}-{month}");
    if layout == Layout::Formats {
        check_format_folders(dir, &scopes, verdict)?;
    }
    let mut tables = Vec::new();
    for scope in &scopes {
        match layout {
            Layout::Folders => check_recipient_folder(dir, scope, &report, &month, m, verdict)?,
            Layout::Formats => check_recipient(dir, scope, &report, &month, m, verdict),
        }
        let pq = layout.table(scope, &stem, "parquet");
        if !listed.contains(pq.as_str()) || !dir.join(&pq).is_file() {
            verdict.push(Finding::new(Rule::Manifest, "the scope has no Parquet table").file(&pq));
            continue;
        }
        let file = read_parquet(&dir.join(&pq))?;
        if let Some(fm) = file.metadata.get("pseudagg.month") {
            months.insert(fm.clone());
        }
        for c in &file.columns {
            if !expected.contains(&c.as_str()) {
                let rule = if TIME_WORDS.contains(&c.as_str()) {
                    Rule::TimeSeries
                } else {
                    Rule::ColumnNotAllowed
                };
                verdict.push(
                    Finding::new(rule, "a column a report table does not have")
                        .file(&pq)
                        .column(c),
                );
            }
        }
        let table = read_table(&file, &pq, &s, verdict);
        check_counts(m, &pq, &table, verdict);
        let csv = layout.table(scope, &stem, "csv");
        if listed.contains(csv.as_str()) && dir.join(&csv).is_file() {
            compare_csv(&dir.join(&csv), &csv, &file, verdict)?;
        }
        let xlsx = layout.table(scope, &stem, "xlsx");
        if listed.contains(xlsx.as_str()) && dir.join(&xlsx).is_file() {
            compare_xlsx(&dir.join(&xlsx), &xlsx, &table, verdict);
        }
        tables.push((layout.label(scope), table));
    }
    if months.len() > 1 {
        verdict.push(Finding::new(
            Rule::TimeSeries,
            format!(
                "the report holds {} months; one report is one Datenstand",
                months.len()
            ),
        ));
    }

    // Whoever sees several scopes (the Zentrale, or recipients who share) sees their union.
    let mut union = ScopeTable::default();
    for (_, t) in &tables {
        for (key, v) in t.keys.iter().zip(&t.values) {
            if !union.index.contains_key(key) {
                union.index.insert(key.clone(), union.keys.len());
                union.keys.push(key.clone());
                union.values.push(*v);
            }
        }
    }
    if layout == Layout::Formats {
        check_all_cells(dir, m, &stem, &listed, &union, &s, verdict)?;
    }
    let own = (layout == Layout::Formats).then(|| union.clone());
    tables.push(("all scopes together".to_owned(), union));
    let audited_scopes =
        pseudagg_core::Ticker::start(progress, "audit: scopes bounded", tables.len() as u64);
    let results: Vec<(String, Vec<Finding>, usize)> = tables
        .par_iter()
        .map(|(scope, table)| {
            let (findings, suppressed) = audit(scope, table, &s, rd_count);
            audited_scopes.add(1);
            (scope.clone(), findings, suppressed)
        })
        .collect();
    let mut audited = 0;
    for (_, findings, suppressed) in results {
        audited += suppressed;
        for f in findings {
            verdict.push(f);
        }
    }
    verdict.fact("suppressed_cells_audited", &audited);
    if let Some(own) = own {
        together::check(dir, m, (own, s), rd_count, verdict)?;
    }
    Ok(())
}

/// Where a report's files are, by the manifest's `manifest_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Version 1: `<scope>/<report>-<month>.{parquet,csv,xlsx}` and `<scope>/_manifest.json`.
    Folders,
    /// Version 2: `<format>/recipient=<scope>/<report>-<month>.<format>`,
    /// `manifests/<scope>.json`, and `all/<report>-<month>.{parquet,csv}`.
    Formats,
}

impl Layout {
    fn of(m: &Manifest) -> Self {
        match m.raw.get("manifest_version").and_then(Value::as_u64) {
            Some(1) => Self::Folders,
            _ => Self::Formats,
        }
    }

    /// How findings name a scope: its folder (`rd=NRW`, `recipient=rd-NRW`).
    fn label(self, scope: &str) -> String {
        match self {
            Self::Folders => scope.to_owned(),
            Self::Formats => format!("recipient={scope}"),
        }
    }

    fn table(self, scope: &str, stem: &str, format: &str) -> String {
        match self {
            Self::Folders => format!("{scope}/{stem}.{format}"),
            Self::Formats => format!("{format}/recipient={scope}/{stem}.{format}"),
        }
    }
}

/// The formats of the recipients' tables, each a folder of its own in layout 2.
const FORMATS: [&str; 3] = ["parquet", "csv", "xlsx"];

/// Layout 2: each format's folder holds a `recipient=<scope>` folder for each scope of the
/// manifest and nothing else, and each of those only the scope's table in that format: a folder
/// read by a client meets one format, and every recipient's files are what it may see.
fn check_format_folders(dir: &Path, scopes: &[String], verdict: &mut Verdict) -> Result<()> {
    let finding = |what: &str| Finding::new(Rule::RecipientFolder, what.to_owned());
    for format in FORMATS {
        let folder = dir.join(format);
        let Ok(entries) = std::fs::read_dir(&folder) else {
            verdict.push(finding("the report has no folder for this format").file(format));
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &folder, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let known = name
                .strip_prefix("recipient=")
                .is_some_and(|scope| scopes.iter().any(|x| x == scope));
            if !(is_dir && known) {
                verdict.push(
                    finding("a format's folder may hold only the `recipient=` folders of the manifest's scopes; this is none of them")
                        .file(format!("{format}/{name}")),
                );
                continue;
            }
            let scope_dir = entry.path();
            let entries =
                std::fs::read_dir(&scope_dir).map_err(|e| Error::io("list", &scope_dir, e))?;
            for inner in entries {
                let inner = inner.map_err(|e| Error::io("list", &scope_dir, e))?;
                let file = inner.file_name().to_string_lossy().into_owned();
                let ok = inner.file_type().is_ok_and(|t| t.is_file())
                    && Path::new(&file).extension().is_some_and(|e| e == format);
                if !ok {
                    verdict.push(
                        finding(&format!(
                            "a recipient's {format} folder may hold only its {format} table"
                        ))
                        .file(format!("{format}/{name}/{file}")),
                    );
                }
            }
        }
    }
    Ok(())
}

/// The rows and the sum of published values that the steward's manifest gives a table, for a
/// reader to check its read against, are the table's.
fn check_counts(m: &Manifest, rel: &str, table: &ScopeTable, verdict: &mut Verdict) {
    let Some(entry) = m.files.iter().find(|f| f.path == rel) else {
        return;
    };
    let sum: u64 = table.values.iter().flatten().sum();
    let rows = table.keys.len() as u64;
    if entry.rows.is_some_and(|r| r != rows) || entry.value_sum.is_some_and(|v| v != sum) {
        verdict.push(
            Finding::new(
                Rule::Inconsistent,
                "the manifest's rows or sum of published values differ from the table's",
            )
            .file(rel),
        );
    }
}

/// Layout 2: the steward's file holds every cell that some recipient sees, once, with the value
/// the recipients see; its CSV says the same.
fn check_all_cells(
    dir: &Path,
    m: &Manifest,
    stem: &str,
    listed: &HashSet<&str>,
    union: &ScopeTable,
    s: &Structure,
    verdict: &mut Verdict,
) -> Result<()> {
    verdict.check("all-cells");
    let pq = format!("all/{stem}.parquet");
    if !listed.contains(pq.as_str()) || !dir.join(&pq).is_file() {
        verdict.push(
            Finding::new(
                Rule::Inconsistent,
                "the report has no file of every published cell",
            )
            .file(&pq),
        );
        return Ok(());
    }
    let file = read_parquet(&dir.join(&pq))?;
    let all = read_table(&file, &pq, s, verdict);
    check_counts(m, &pq, &all, verdict);
    if all.index.len() != all.keys.len() {
        verdict.push(
            Finding::new(
                Rule::Inconsistent,
                format!(
                    "{} cells appear more than once; the file holds each published cell once",
                    all.keys.len() - all.index.len()
                ),
            )
            .file(&pq),
        );
    }
    let differ = union
        .keys
        .iter()
        .zip(&union.values)
        .filter(|(k, v)| all.index.get(*k).is_none_or(|&i| all.values[i] != **v))
        .count();
    let extra = all
        .keys
        .iter()
        .filter(|k| !union.index.contains_key(*k))
        .count();
    if differ > 0 || extra > 0 {
        verdict.push(
            Finding::new(
                Rule::Inconsistent,
                format!(
                    "differs from the recipients' tables: {differ} of their cells missing or with another value, {extra} cells no recipient sees"
                ),
            )
            .file(&pq),
        );
    }
    let csv = format!("all/{stem}.csv");
    if listed.contains(csv.as_str()) && dir.join(&csv).is_file() {
        compare_csv(&dir.join(&csv), &csv, &file, verdict)?;
    }
    Ok(())
}

/// Layout 2: the recipient's own manifest, `manifests/<scope>.json`, holds only hashes, month,
/// definition and scope, and lists the scope's tables with the hashes of the report's manifest.
fn check_recipient(
    dir: &Path,
    scope: &str,
    report: &str,
    month: &str,
    m: &Manifest,
    verdict: &mut Verdict,
) {
    let stem = format!("{report}-{month}");
    let tables: Vec<String> = FORMATS
        .iter()
        .map(|f| Layout::Formats.table(scope, &stem, f))
        .collect();
    let rel = format!("manifests/{scope}.json");
    check_scope_manifest(
        dir,
        scope,
        &rel,
        &tables,
        report,
        month,
        m,
        verdict,
        ToOwned::to_owned,
    );
}

/// The name of a recipient folder's own manifest (layout 1).
const SCOPE_MANIFEST: &str = "_manifest.json";

/// The only keys a recipient's manifest may hold: hashes, month, definition and scope.
const SCOPE_MANIFEST_KEYS: [&str; 9] = [
    "manifest_version",
    "kind",
    "tool",
    "report",
    "report_sha256",
    "month",
    "scope",
    "request",
    "files",
];

/// The keys of a file entry in a recipient's manifest.
const SCOPE_FILE_KEYS: [&str; 4] = ["path", "rows", "bytes", "sha256"];

/// A recipient folder is handed on as it is: it may hold its three tables and its own manifest,
/// and that manifest only hashes, month, definition and scope. Audit data, intervals, counts of
/// the extract or any other file there would reach the recipient.
fn check_recipient_folder(
    dir: &Path,
    scope: &str,
    report: &str,
    month: &str,
    m: &Manifest,
    verdict: &mut Verdict,
) -> Result<()> {
    let folder = dir.join(scope);
    let finding = |what: &str| Finding::new(Rule::RecipientFolder, what.to_owned());
    let Ok(entries) = std::fs::read_dir(&folder) else {
        verdict.push(finding("the recipient folder is missing").file(scope));
        return Ok(());
    };
    let tables: Vec<String> = ["parquet", "csv", "xlsx"]
        .iter()
        .map(|ext| format!("{report}-{month}.{ext}"))
        .collect();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", &folder, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || !(tables.contains(&name) || name == SCOPE_MANIFEST) {
            verdict.push(
                finding(
                    "a recipient folder may hold only its tables and its manifest; this is neither",
                )
                .file(format!("{scope}/{name}")),
            );
        }
    }
    let rel = format!("{scope}/{SCOPE_MANIFEST}");
    check_scope_manifest(
        dir,
        scope,
        &rel,
        &tables,
        report,
        month,
        m,
        verdict,
        |name| format!("{scope}/{name}"),
    );
    Ok(())
}

/// A recipient's own manifest at `rel`: only the allowed keys, the report's scope, month and
/// definition, and `tables` (as its `files` name them) with the hashes that the report's manifest
/// gives their full paths (`full`).
#[allow(clippy::too_many_arguments)] // the manifest's facts, each checked
fn check_scope_manifest(
    dir: &Path,
    scope: &str,
    rel: &str,
    tables: &[String],
    report: &str,
    month: &str,
    m: &Manifest,
    verdict: &mut Verdict,
    full: impl Fn(&str) -> String,
) {
    let finding = |what: &str| Finding::new(Rule::RecipientFolder, what.to_owned());
    let path = dir.join(rel);
    let Ok(bytes) = std::fs::read(&path) else {
        verdict.push(finding("the recipient folder has no manifest of its own").file(rel));
        return;
    };
    let Ok(own) = serde_json::from_slice::<Value>(&bytes) else {
        verdict.push(finding("the recipient's manifest is not JSON").file(rel));
        return;
    };
    let Some(obj) = own.as_object() else {
        verdict.push(finding("the recipient's manifest is not a JSON object").file(rel));
        return;
    };
    for key in obj.keys() {
        if !SCOPE_MANIFEST_KEYS.contains(&key.as_str()) {
            verdict.push(
                finding(&format!(
                    "the recipient's manifest holds `{key}`: a recipient may see only hashes, month, definition and scope"
                ))
                .file(rel),
            );
        }
    }
    let expect = |key: &str, want: &str, verdict: &mut Verdict| {
        if obj.get(key).and_then(Value::as_str) != Some(want) {
            verdict.push(
                finding(&format!(
                    "the recipient's manifest has no `{key}` or one that differs from the report's"
                ))
                .file(rel),
            );
        }
    };
    expect("scope", scope, verdict);
    expect("month", month, verdict);
    expect("report", report, verdict);
    expect(
        "report_sha256",
        m.str("report_sha256").unwrap_or_default(),
        verdict,
    );
    let files = obj.get("files").and_then(Value::as_array);
    let mut listed = 0;
    for f in files.into_iter().flatten() {
        let extra = f
            .as_object()
            .map(|o| o.keys().any(|k| !SCOPE_FILE_KEYS.contains(&k.as_str())));
        let name = f.get("path").and_then(Value::as_str).unwrap_or_default();
        let sha = f.get("sha256").and_then(Value::as_str).unwrap_or_default();
        if extra != Some(false) || !tables.iter().any(|t| t == name) {
            verdict.push(
                finding("the recipient's manifest lists an entry that is not one of its tables")
                    .file(rel),
            );
            continue;
        }
        listed += 1;
        // The scope's files are listed in the report's manifest too, with the same hash.
        let full = full(name);
        if !m.files.iter().any(|e| e.path == full && e.sha256 == sha) {
            verdict.push(
                finding(
                    "the recipient's manifest names a hash that the report's manifest does not",
                )
                .file(&full),
            );
        }
    }
    if listed == 0 {
        verdict.push(finding("the recipient's manifest lists none of its tables").file(rel));
    }
}

fn looks_like_a_period(name: &str) -> bool {
    let b = name.as_bytes();
    (b.len() >= 7 && b[..4].iter().all(u8::is_ascii_digit) && (b[4] == b'-' || b[4] == b'/'))
        || ["januar", "februar", "maerz", "märz", "april", "quartal"]
            .iter()
            .any(|m| name.to_lowercase().starts_with(m))
}

fn read_table(file: &TextFile, rel: &str, s: &Structure, verdict: &mut Verdict) -> ScopeTable {
    let col = |n: &str| file.index(n);
    let (level, rd, ge, ind, value, sup) = (
        col("level"),
        col("rd"),
        col("ge_nr"),
        col("indicator"),
        col("value"),
        col("suppressed"),
    );
    let dims: Vec<Option<usize>> = s.dims.iter().map(|(d, _, _)| col(d)).collect();
    let mut t = ScopeTable::default();
    for (row, b, r) in file.row_positions() {
        let get = |c: Option<usize>| c.and_then(|c| file.text(b, c, r)).unwrap_or("");
        for (c, name) in file.columns.iter().enumerate() {
            if let Some(v) = file.text(b, c, r) {
                for (rule, what) in shapes_of(v) {
                    verdict.push(
                        Finding::new(rule, format!("holds {what}"))
                            .file(rel)
                            .row(row)
                            .column(name),
                    );
                }
            }
        }
        let published = value
            .and_then(|c| file.text(b, c, r))
            .map(str::parse::<u64>);
        let flagged = get(sup) == "true";
        let v = match (published.clone(), flagged) {
            (Some(Ok(v)), false) => {
                if v > 0 && v < s.threshold {
                    verdict.push(
                        Finding::new(
                            Rule::SmallCount,
                            format!(
                                "a published count below the threshold {} (and not 0)",
                                s.threshold
                            ),
                        )
                        .file(rel)
                        .row(row)
                        .column("value"),
                    );
                }
                Some(v)
            }
            (None, true) => None,
            (Some(Ok(_)), true) | (None, false) | (Some(Err(_)), _) => {
                verdict.push(
                    Finding::new(
                        Rule::SmallCount,
                        "value and `suppressed` disagree (a suppressed cell shows a value, or a published one none)",
                    )
                    .file(rel)
                    .row(row)
                    .column("value"),
                );
                // Treat it as published when a value is there: that is what a reader sees.
                published.and_then(std::result::Result::ok)
            }
        };
        let lvl = get(level).to_ascii_lowercase();
        if !["ge", "rd", "bund"].contains(&lvl.as_str()) {
            verdict.push(
                Finding::new(Rule::ColumnNotAllowed, "the level is none of ge, rd, bund")
                    .file(rel)
                    .row(row)
                    .column("level"),
            );
        }
        let key: CellKey = (
            (lvl, get(rd).to_owned(), get(ge).to_owned()),
            dims.iter()
                .map(|&d| get(d))
                .collect::<Vec<&str>>()
                .join(POSITION_SEPARATOR),
            get(ind).to_owned(),
        );
        t.index.insert(key.clone(), t.keys.len());
        t.keys.push(key);
        t.values.push(v);
    }
    t
}

fn compare_csv(path: &Path, rel: &str, parquet: &TextFile, verdict: &mut Verdict) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|_| Error::Format {
            path: path.to_owned(),
            reason: "has no readable header".into(),
        })?
        .iter()
        .map(str::to_owned)
        .collect();
    if header != parquet.columns {
        verdict.push(
            Finding::new(
                Rule::Inconsistent,
                "the CSV's columns differ from the Parquet table's",
            )
            .file(rel),
        );
        return Ok(());
    }
    let mut rows = parquet.row_positions();
    for (i, record) in reader.records().enumerate() {
        let row = i as u64 + 1;
        let Ok(record) = record else {
            verdict.push(
                Finding::new(Rule::Inconsistent, "unreadable CSV row")
                    .file(rel)
                    .row(row),
            );
            continue;
        };
        for (c, v) in record.iter().enumerate() {
            for (rule, what) in shapes_of(v) {
                verdict.push(
                    Finding::new(rule, format!("holds {what}"))
                        .file(rel)
                        .row(row)
                        .column(&header[c]),
                );
            }
        }
        let Some((_, b, r)) = rows.next() else {
            verdict.push(
                Finding::new(Rule::Inconsistent, "more rows than the Parquet table")
                    .file(rel)
                    .row(row),
            );
            break;
        };
        for (c, name) in header.iter().enumerate() {
            let p = parquet.text(b, c, r).unwrap_or("");
            let got = record.get(c).unwrap_or("");
            let expected = match name.as_str() {
                "value" if p.is_empty() => "*".to_owned(),
                "value" => p.to_owned(),
                "suppressed" => {
                    if p == "true" {
                        "J".to_owned()
                    } else {
                        "N".to_owned()
                    }
                }
                // A text that a spreadsheet would evaluate must be neutralised with a leading `'`.
                _ if p.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{p}"),
                _ => p.to_owned(),
            };
            if got.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                verdict.push(
                    Finding::new(
                        Rule::Inconsistent,
                        "a text cell a spreadsheet would evaluate as a formula (it needs a leading `'`)",
                    )
                    .file(rel)
                    .row(row)
                    .column(name),
                );
            } else if got != expected {
                verdict.push(
                    Finding::new(Rule::Inconsistent, "differs from the Parquet table")
                        .file(rel)
                        .row(row)
                        .column(name),
                );
            }
        }
    }
    if rows.next().is_some() {
        verdict
            .push(Finding::new(Rule::Inconsistent, "fewer rows than the Parquet table").file(rel));
    }
    Ok(())
}

/// The workbook is laid out for people (one row per area, a column per cell), so it is compared
/// with the Parquet table by what it shows, whatever the layout: as many `*` as suppressed cells,
/// as many `-` as zeros, and the same numbers. A true value of a suppressed cell in the workbook
/// changes the first count and the numbers.
fn compare_xlsx(path: &Path, rel: &str, table: &ScopeTable, verdict: &mut Verdict) {
    use calamine::{Data, Reader as _};
    let unreadable = || Finding::new(Rule::Inconsistent, "the workbook cannot be read").file(rel);
    let Ok(mut wb) = calamine::open_workbook_auto(path) else {
        verdict.push(unreadable());
        return;
    };
    let (mut stars, mut dashes, mut numbers) = (0usize, 0usize, Vec::new());
    for name in wb.sheet_names() {
        let Ok(range) = wb.worksheet_range(&name) else {
            verdict.push(unreadable());
            return;
        };
        for cell in range.used_cells() {
            match cell.2 {
                Data::String(s) if s == "*" => stars += 1,
                Data::String(s) if s == "-" => dashes += 1,
                Data::Float(f) => numbers.push(f.round() as u64),
                Data::Int(i) => numbers.push(*i as u64),
                _ => {}
            }
        }
    }
    let suppressed = table.values.iter().filter(|v| v.is_none()).count();
    let zeros = table.values.iter().filter(|v| **v == Some(0)).count();
    let mut published: Vec<u64> = table
        .values
        .iter()
        .flatten()
        .copied()
        .filter(|&v| v > 0)
        .collect();
    published.sort_unstable();
    numbers.sort_unstable();
    if stars != suppressed {
        verdict.push(
            Finding::new(
                Rule::RecipientFolder,
                format!(
                    "the workbook shows {stars} suppressed cell(s) where the table has {suppressed}: a suppressed cell may show its value"
                ),
            )
            .file(rel),
        );
    }
    if dashes != zeros || numbers != published {
        verdict.push(
            Finding::new(
                Rule::Inconsistent,
                "the workbook's values differ from the Parquet table's",
            )
            .file(rel),
        );
    }
}

/// `total = sum(parts)` or `sum(parts) <= whole` (a subset, or indicators no person is
/// counted in two of), over cell indices.
enum Relation {
    Sum(usize, Vec<usize>),
    Subset(Vec<usize>, usize),
}

fn relations(t: &ScopeTable, s: &Structure, rd_count: usize) -> Vec<Relation> {
    let mut areas: Vec<&Area> = t.keys.iter().map(|k| &k.0).collect();
    areas.sort();
    areas.dedup();
    // Every position: each dimension at a category or its total, joined as in the cell keys.
    let mut coords: Vec<Vec<&str>> = vec![Vec::new()];
    for (_, dcats, total) in &s.dims {
        coords = coords
            .into_iter()
            .flat_map(|prefix| {
                dcats.iter().chain([total]).map(move |c| {
                    let mut p = prefix.clone();
                    p.push(c.as_str());
                    p
                })
            })
            .collect();
    }
    let cats: Vec<String> = coords.iter().map(|c| c.join(POSITION_SEPARATOR)).collect();
    let cell = |a: &Area, c: &str, i: &str| {
        t.index
            .get(&(a.clone(), c.to_owned(), i.to_owned()))
            .copied()
    };
    let mut out = Vec::new();
    let rds: Vec<&Area> = areas.iter().copied().filter(|a| a.0 == "rd").collect();
    let bund: Option<&Area> = areas.iter().copied().find(|a| a.0 == "bund");
    for c in &cats {
        for (ind, _) in &s.indicators {
            for rd in &rds {
                let parts: Option<Vec<usize>> = areas
                    .iter()
                    .filter(|a| a.0 == "ge" && a.1 == rd.1)
                    .map(|a| cell(a, c, ind))
                    .collect();
                if let (Some(total), Some(parts)) = (cell(rd, c, ind), parts)
                    && !parts.is_empty()
                {
                    out.push(Relation::Sum(total, parts));
                }
            }
            if let Some(b) = bund
                && rds.len() == rd_count
                && rd_count > 0
            {
                let parts: Option<Vec<usize>> = rds.iter().map(|a| cell(a, c, ind)).collect();
                if let (Some(total), Some(parts)) = (cell(b, c, ind), parts) {
                    out.push(Relation::Sum(total, parts));
                }
            }
        }
    }
    for a in &areas {
        for (ind, sup) in &s.indicators {
            // Each dimension's categories add up to its total, at every position of the others.
            for (d, (_, dcats, total)) in s.dims.iter().enumerate() {
                for at in coords.iter().filter(|c| c[d] == total.as_str()) {
                    let key = |c: &str| {
                        let mut p = at.clone();
                        p[d] = c;
                        p.join(POSITION_SEPARATOR)
                    };
                    let parts: Option<Vec<usize>> =
                        dcats.iter().map(|c| cell(a, &key(c), ind)).collect();
                    if let (Some(t), Some(parts)) = (cell(a, &key(total), ind), parts) {
                        out.push(Relation::Sum(t, parts));
                    }
                }
            }
            if let Some(sup) = sup {
                for c in &cats {
                    if let (Some(p), Some(w)) = (cell(a, c, ind), cell(a, c, sup)) {
                        out.push(Relation::Subset(vec![p], w));
                    }
                }
            }
        }
        for (part, whole) in &s.implied_subsets {
            for c in &cats {
                if let (Some(p), Some(w)) = (cell(a, c, part), cell(a, c, whole)) {
                    out.push(Relation::Subset(vec![p], w));
                }
            }
        }
        for (c, part, whole) in &s.position_subsets {
            if let (Some(p), Some(w)) = (cell(a, c, part), cell(a, c, whole)) {
                out.push(Relation::Subset(vec![p], w));
            }
        }
        // Indicators no person is counted in two of add up to no more than their whole, and to
        // the whole itself where they hold every person of it.
        for (whole, members, exhaustive) in &s.exclusive {
            for c in &cats {
                let parts: Option<Vec<usize>> = members.iter().map(|m| cell(a, c, m)).collect();
                if let (Some(parts), Some(w)) = (parts, cell(a, c, whole)) {
                    out.push(if *exhaustive {
                        Relation::Sum(w, parts)
                    } else {
                        Relation::Subset(parts, w)
                    });
                }
            }
        }
    }
    out
}

fn unsolvable(scope: &str) -> Finding {
    Finding::new(
        Rule::Disclosure,
        "the interval of a suppressed cell could not be computed (the published values contradict each other): treated as disclosed",
    )
    .file(format!("{scope}/"))
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// A linear relation over a component's local variables: `terms op rhs`.
type Linear = (Vec<(usize, f64)>, ComparisonOp, f64);

/// The suppressed cells of a table as independent linear systems.
struct System {
    /// Cell of each variable.
    vars: Vec<usize>,
    /// Variables of each component.
    comps: Vec<Vec<usize>>,
    /// Relations of each component, over local numbers (positions in `comps[k]`).
    constraints: Vec<Vec<Linear>>,
}

/// A relation's two sides: `sum(parts) op whole` (`=` for a sum, `<=` for a subset).
fn sides(r: &Relation) -> (&[usize], usize, ComparisonOp) {
    match r {
        Relation::Sum(total, parts) => (parts, *total, ComparisonOp::Eq),
        Relation::Subset(parts, whole) => (parts, *whole, ComparisonOp::Le),
    }
}

fn relation_terms(r: &Relation) -> (Vec<(usize, f64)>, ComparisonOp) {
    let (parts, whole, op) = sides(r);
    (
        parts
            .iter()
            .map(|&p| (p, 1.0))
            .chain([(whole, -1.0)])
            .collect(),
        op,
    )
}

fn system(table: &ScopeTable, rels: &[Relation]) -> System {
    let vars: Vec<usize> = (0..table.values.len())
        .filter(|&i| table.values[i].is_none())
        .collect();
    let var_of: HashMap<usize, usize> = vars.iter().enumerate().map(|(v, &c)| (c, v)).collect();
    let mut parent: Vec<usize> = (0..vars.len()).collect();
    for r in rels {
        let linked: Vec<usize> = relation_terms(r)
            .0
            .iter()
            .filter_map(|(c, _)| var_of.get(c).copied())
            .collect();
        for pair in linked.windows(2) {
            let (x, y) = (find(&mut parent, pair[0]), find(&mut parent, pair[1]));
            parent[x] = y;
        }
    }
    let mut by_root: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for v in 0..vars.len() {
        let root = find(&mut parent, v);
        by_root.entry(root).or_default().push(v);
    }
    let comps: Vec<Vec<usize>> = by_root.into_values().collect();
    let mut place = vec![(0, 0); vars.len()];
    for (k, members) in comps.iter().enumerate() {
        for (i, &v) in members.iter().enumerate() {
            place[v] = (k, i);
        }
    }
    let mut constraints: Vec<Vec<Linear>> = vec![Vec::new(); comps.len()];
    for r in rels {
        let (terms, op) = relation_terms(r);
        let mut rhs = 0.0;
        let mut lin = Vec::new();
        let mut comp = None;
        for (cell, coef) in terms {
            if let Some(v) = table.values[cell] {
                rhs -= coef * v as f64;
            } else {
                let (k, i) = place[var_of[&cell]];
                comp = Some(k);
                lin.push((i, coef));
            }
        }
        if let Some(k) = comp {
            constraints[k].push((lin, op, rhs));
        }
    }
    System {
        vars,
        comps,
        constraints,
    }
}

/// Published values must satisfy the relations, or the table contradicts itself.
fn contradicts(table: &ScopeTable, rels: &[Relation]) -> bool {
    rels.iter().any(|r| {
        let (parts, whole, op) = sides(r);
        match (
            parts.iter().map(|p| table.values[*p]).sum::<Option<u64>>(),
            table.values[whole],
        ) {
            (Some(x), Some(y)) if matches!(op, ComparisonOp::Eq) => x != y,
            (Some(x), Some(y)) => x > y,
            _ => false,
        }
    })
}

/// The audit of one scope: findings, and how many suppressed cells it looked at.
fn audit(scope: &str, table: &ScopeTable, s: &Structure, rd_count: usize) -> (Vec<Finding>, usize) {
    let rels = relations(table, s, rd_count);
    audit_relations(scope, table, s, &rels, false)
}

/// The audit of `table` under `rels`; with `linked_only`, of the parts that hold a relation
/// between two of the month's reports (the rest is each report's own audit).
fn audit_relations(
    scope: &str,
    table: &ScopeTable,
    s: &Structure,
    rels: &[Relation],
    linked_only: bool,
) -> (Vec<Finding>, usize) {
    let mut findings = Vec::new();
    if contradicts(table, rels) {
        findings.push(
            Finding::new(Rule::Inconsistent, "published values do not add up")
                .file(format!("{scope}/")),
        );
    }
    let sys = system(table, rels);
    // A large part's cells are shared out over the threads (each keeps its own points), so that
    // the union of every scope, one large part on thin data, does not run on one thread alone.
    let threads = rayon::current_num_threads().max(1);
    let work: Vec<(usize, std::ops::Range<usize>)> = sys
        .comps
        .iter()
        .enumerate()
        .filter(|(_, members)| {
            !linked_only || members.iter().any(|&v| table.linked.contains(&sys.vars[v]))
        })
        .flat_map(|(k, members)| {
            let n = members.len();
            let per = n.div_ceil(threads).max(64);
            (0..n)
                .step_by(per)
                .map(move |start| (k, start..(start + per).min(n)))
        })
        .collect();
    let audited = work.iter().map(|(_, r)| r.len()).sum();
    let mut found: Vec<Finding> = work
        .into_par_iter()
        .flat_map_iter(|(k, targets)| audit_component(scope, table, s, &sys, k, targets))
        .collect();
    // One line per part that could not be solved, whichever share found it.
    found.dedup_by(|a, b| {
        a.message == b.message && a.file == b.file && a.message.contains("could not be computed")
    });
    findings.extend(found);
    (findings, audited)
}

/// Programs over all of a share's targets at once, each with its own signs, before any target's
/// own programs (committed sample, the union of every scope: none 13.8 s, 1 round 12.9 s, 3 rounds
/// 10.4 s, 6 rounds 8.9 s, 8 to 16 rounds about 8.8 s).
const ROUNDS_TOGETHER: u32 = 8;

/// The sign of variable `i`'s cost in round `round` of the programs over all targets: a fixed
/// mix, so that two cells that share a relation are pushed apart (one up, one down) in some
/// round, as each one's own programs would push them.
fn mixed_sign(i: usize, round: u32) -> f64 {
    let h = (i as u64 ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    if (h >> (17 + round)) & 1 == 0 {
        1.0
    } else {
        -1.0
    }
}

/// A point that maximises (or minimises) the objective `cost` over a part (its variables at
/// least `floors`, under `constraints`), its values added to what each variable is `seen` to
/// take: the optimum, `None` when unbounded, `Err` when not solved.
fn solve_part(
    dir: OptimizationDirection,
    cost: &dyn Fn(usize) -> f64,
    floors: &[f64],
    constraints: &[Linear],
    seen: &mut [(f64, f64)],
) -> std::result::Result<Option<f64>, ()> {
    let mut p = Problem::new(dir);
    let xs: Vec<_> = floors
        .iter()
        .enumerate()
        .map(|(i, &floor)| p.add_var(cost(i), (floor, f64::INFINITY)))
        .collect();
    for (terms, op, rhs) in constraints {
        let terms: Vec<_> = terms.iter().map(|&(i, c)| (xs[i], c)).collect();
        p.add_constraint(terms.as_slice(), *op, *rhs);
    }
    match p.solve() {
        Ok(o) => {
            let sol = o.solution().ok_or(())?;
            for (i, &x) in xs.iter().enumerate() {
                let v = sol.var_value(x);
                seen[i] = (seen[i].0.min(v), seen[i].1.max(v));
            }
            Ok(Some(sol.objective()))
        }
        Err(microlp::Error::Unbounded) => Ok(None),
        Err(_) => Err(()),
    }
}

/// Bounds every variable of component `k` and reports those a small count is not hidden in.
#[allow(clippy::many_single_char_names)] // the usual names of a linear program
fn audit_component(
    scope: &str,
    table: &ScopeTable,
    s: &Structure,
    sys: &System,
    k: usize,
    targets: std::ops::Range<usize>,
) -> Vec<Finding> {
    let members = &sys.comps[k];
    let constraints = &sys.constraints;
    let cell_of = |target: usize| sys.vars[members[target]];
    let t = table;
    let th = s.threshold as f64;
    let width = s.width as f64;
    {
        {
            let n = members.len();
            // Every solution is a point the attacker cannot rule out: the values it gives each
            // cell widen that cell's known interval, and a cell whose known interval already
            // reaches the threshold and is wide enough needs no program of its own.
            let mut seen: Vec<(f64, f64)> = vec![(f64::INFINITY, f64::NEG_INFINITY); n];
            let mut out = Vec::new();
            let floors: Vec<f64> = (0..n).map(|i| t.floor(cell_of(i))).collect();
            let solve_for = |dir, cost: &dyn Fn(usize) -> f64, seen: &mut [(f64, f64)]| {
                solve_part(dir, cost, &floors, &constraints[k], seen)
            };
            // First every target of this share at once, as high and then as low as they go
            // together: each solution is a point the attacker cannot rule out, so on a thin table
            // it shows most cells protected without a program of their own. (Unbounded or not
            // solved: nothing is seen, and each cell gets its own programs as before.)
            // They cost 2 programs a round, and each target needs at most 2 of its own: with
            // fewer targets than rounds they cannot save any.
            if targets.len() > ROUNDS_TOGETHER as usize {
                for round in 0..ROUNDS_TOGETHER {
                    let together = |i: usize| {
                        if targets.contains(&i) {
                            mixed_sign(i, round)
                        } else {
                            0.0
                        }
                    };
                    let _ = solve_for(OptimizationDirection::Maximize, &together, &mut seen);
                    let _ = solve_for(OptimizationDirection::Minimize, &together, &mut seen);
                }
            }
            for target in targets.clone() {
                let group = t.groups.get(&cell_of(target));
                // A group that may be empty pins nobody; otherwise it is protected as a cell is.
                let protected = |seen: &[(f64, f64)]| {
                    let (lo, hi) = seen[target];
                    (group.is_some() && lo < 1.0 - EPS)
                        || (hi >= th - EPS && hi - lo >= width - EPS)
                };
                if protected(&seen) {
                    continue;
                }
                let alone = |i: usize| if i == target { 1.0 } else { 0.0 };
                let solve = |dir, seen: &mut [(f64, f64)]| solve_for(dir, &alone, seen);
                let Ok(upper) = solve(OptimizationDirection::Maximize, &mut seen) else {
                    out.push(unsolvable(scope));
                    break;
                };
                if upper.is_none() || protected(&seen) {
                    continue;
                }
                let Ok(Some(lower)) = solve(OptimizationDirection::Minimize, &mut seen) else {
                    out.push(unsolvable(scope));
                    break;
                };
                let hi = upper.expect("bounded");
                let could_be_small = lower < th - EPS;
                let pinned = hi < th - EPS || hi - lower < width - EPS;
                if let Some(name) = group {
                    if lower >= 1.0 - EPS && could_be_small && pinned {
                        out.push(
                            Finding::new(
                                Rule::Disclosure,
                                format!(
                                    "{name}: the reports' published values narrow that group to 1 to {} people, so a small group is not hidden",
                                    s.threshold - 1
                                ),
                            )
                            .file(format!("{scope}/")),
                        );
                    }
                } else if could_be_small && pinned || hi - lower < EPS {
                    let (area, cat, ind) = &t.keys[cell_of(target)];
                    let place = format!(
                        "{} / {}{ind}",
                        match area.0.as_str() {
                            "ge" => format!("gE {}", area.2),
                            "rd" => format!("RD {}", area.1),
                            _ => "Bund".to_owned(),
                        },
                        if cat.is_empty() {
                            String::new()
                        } else {
                            format!("{} / ", cat.replace(POSITION_SEPARATOR, " / "))
                        }
                    );
                    let text = if could_be_small && pinned {
                        format!(
                            "the published values narrow the suppressed cell {place} to below {} or to an interval narrower than {}: a small count is not hidden (the interval itself is not shown: it would tell the count)",
                            s.threshold, s.width,
                        )
                    } else {
                        // A secondary cell of no small count: not itself a small count, but no
                        // suppressed cell may be computed from the published ones.
                        format!(
                            "the published values give the suppressed cell {place} exactly: a suppressed cell must not follow from the published ones (its count is not shown here)"
                        )
                    };
                    out.push(Finding::new(Rule::Disclosure, text).file(format!("{scope}/")));
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RD of three gEs, `elb` with two parts no person is in both of: `nie` (never advised)
    /// and `neu` (advised lately). The first gE has 3 people, 1 and 2 of them in the parts, both
    /// suppressed; so is the second gE's pair, which the RD's published parts need.
    fn scope() -> ScopeTable {
        scope_of(&[
            ("g0", [Some(3), None, None]),
            ("g1", [Some(10), None, None]),
            ("g2", [Some(12), Some(5), Some(6)]),
            ("R", [Some(25), Some(10), Some(13)]),
        ])
    }

    /// The cells `elb`, `nie`, `neu` of gEs and their RD `R`; `None` for a suppressed cell.
    fn scope_of(rows: &[(&str, [Option<u64>; 3])]) -> ScopeTable {
        let mut t = ScopeTable::default();
        for &(area, values) in rows {
            // (level, RD, gE number)
            let place = if area == "R" {
                ("rd".to_owned(), "R".to_owned(), String::new())
            } else {
                ("ge".to_owned(), "R".to_owned(), area.to_owned())
            };
            for (ind, v) in ["elb", "nie", "neu"].into_iter().zip(values) {
                let key = (place.clone(), String::new(), ind.to_owned());
                t.index.insert(key.clone(), t.keys.len());
                t.keys.push(key);
                t.values.push(v);
            }
        }
        t
    }

    fn structure(exclusive: bool) -> Structure {
        Structure {
            dims: Vec::new(),
            indicators: vec![
                ("elb".into(), None),
                ("nie".into(), Some("elb".into())),
                ("neu".into(), Some("elb".into())),
            ],
            exclusive: if exclusive {
                vec![("elb".into(), vec!["nie".into(), "neu".into()], false)]
            } else {
                Vec::new()
            },
            implied_subsets: Vec::new(),
            position_subsets: Vec::new(),
            threshold: 3,
            width: 2,
        }
    }

    /// Without the exclusion the first gE's `nie` lies in [1, 3]; with it, `nie + neu <= 3`
    /// and `neu >= 1` leave [1, 2]: disclosed.
    #[test]
    fn exclusive_indicators_narrow_their_cells_in_the_audit() {
        let t = scope();
        let disclosed = |exclusive: bool| {
            let (findings, audited) = audit("rd-R", &t, &structure(exclusive), 1);
            assert_eq!(audited, 4);
            findings
                .iter()
                .filter(|f| f.rule == Rule::Disclosure)
                .count()
        };
        assert_eq!(disclosed(false), 0);
        assert!(disclosed(true) >= 1);
    }

    /// A suppressed cell the published ones give exactly is a finding even when its count is
    /// not small: `elb` 8 = `nie` + `neu` 5 with the group exhaustive leaves `nie` at 3 exactly;
    /// as a bound it lies in [1, 3], which protects it.
    #[test]
    fn a_suppressed_cell_given_exactly_is_disclosed_whatever_its_count() {
        let t = scope_of(&[
            ("g0", [Some(8), None, Some(5)]),
            ("g1", [Some(9), None, Some(4)]),
            ("R", [Some(17), None, Some(9)]),
        ]);
        let exact = |exhaustive: bool| {
            let mut s = structure(true);
            s.exclusive[0].2 = exhaustive;
            let (findings, audited) = audit("rd-R", &t, &s, 1);
            assert_eq!(audited, 3);
            findings
                .iter()
                .filter(|f| f.rule == Rule::Disclosure && f.message.contains("exactly"))
                .count()
        };
        assert_eq!(exact(false), 0);
        assert_eq!(exact(true), 3);
    }

    /// A group whose members hold every person of its whole (`kooperationsplan` and `not
    /// kooperationsplan`) is an equality at every area, not a bound.
    #[test]
    fn an_exhaustive_group_is_a_sum_at_every_area() {
        let t = scope();
        let count = |exhaustive: bool| {
            let mut s = structure(true);
            s.exclusive[0].2 = exhaustive;
            let relations = relations(&t, &s, 1);
            let sums = relations
                .iter()
                .filter(|r| matches!(r, Relation::Sum(_, parts) if parts.len() == 2))
                .count();
            (sums, relations.len())
        };
        let (bounded, all) = count(false);
        let (summed, all_too) = count(true);
        // Three gEs and the RD: four sums where there were four bounds.
        assert_eq!(all, all_too);
        assert_eq!(summed, bounded + 4);
        // The manifest's flag is read; anything but a boolean is refused.
        let indicators = structure(true).indicators;
        let group = |flag: &str| {
            let v: Value = serde_json::from_str(&format!(
                r#"{{"exclusive": [{{"whole": "elb", "parts": ["nie", "neu"]{flag}}}]}}"#
            ))
            .unwrap();
            exclusive_groups(&v, &indicators).map(|g| g[0].2)
        };
        assert_eq!(group(""), Some(false));
        assert_eq!(group(r#", "exhaustive": true"#), Some(true));
        assert_eq!(group(r#", "exhaustive": "ja""#), None);
    }
}
