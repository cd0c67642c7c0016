//! `pseudagg verify`: proves, independently of the code that wrote an output, that it leaks nothing.
//!
//! This crate reads outputs with the `arrow` and `parquet` crates only. It shares no code with the
//! writers: not the pipeline, not the report, not the I/O crate. From `pseudagg-core` it takes only
//! the error type, the month and the input schemas (the contract that says which input column is
//! personal). A bug in a writer therefore cannot hide itself by being repeated here.
//!
//! A pseudonymised dataset is checked for: manifest integrity (every file listed, hashed, nothing
//! unlisted), columns (only publishable ones, none of class identifier/personal/staff/free-text),
//! each value within its column's contract (the schema's allowed values, pattern or type; band
//! labels for a generalised column), values (no Kundennummer, BG-Nummer, e-mail address, phone number or IBAN anywhere; with the
//! input, no personal value or name from a note), pseudonyms (64 lower-case hex, one per row; with
//! the input and key, each recomputes), unlinkability against another month, partitions, and
//! k-anonymity over the declared quasi-identifiers.
//!
//! A report is checked for: manifest integrity, published values (0 or at least the threshold, or
//! suppressed), the interval audit recomputed from the published table of each scope, one month and
//! no time dimension, and the same values in CSV and Parquet.
//!
//! Findings name the file, the row, the column and the rule, never the offending value.

mod dataset;
mod finding;
mod input;
mod key;
mod linking;
mod manifest;
mod patterns;
mod read;
mod report;

use std::path::{Path, PathBuf};

pub use finding::{Finding, Rule, Verdict};
use pseudagg_core::{Error, Result};

/// What to verify against.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The original extract, for value and pseudonym checks.
    pub input: Option<PathBuf>,
    /// Read `input` as windows-1252 instead of UTF-8 (CSV only).
    pub input_windows_1252: bool,
    /// The key file, to recompute pseudonyms (needs `input`).
    pub key_file: Option<PathBuf>,
    /// The output of another month: no pseudonym may appear in both, and at most
    /// `max_linkable` of the records may match exactly one record of it on the kept attributes.
    pub against: Option<PathBuf>,
    /// The largest share of records that may link one-to-one to the other month (default 5 %).
    pub max_linkable: Option<f64>,
}

/// The share of records that may link one-to-one to another month's, unless configured.
pub const DEFAULT_MAX_LINKABLE: f64 = 0.05;

/// Verifies the output folder `dir` (a dataset `OUT/vkb/2025-03` or a report
/// `OUT/gefluechtete/2025-03`). Findings are violations (exit 1); `Err` means the check could not
/// be made (exit 2).
pub fn verify(dir: &Path, options: &Options) -> Result<Verdict> {
    verify_watched(dir, options, None)
}

/// [`verify`], telling `progress` how many of a report's scopes are audited.
pub fn verify_watched(
    dir: &Path,
    options: &Options,
    progress: Option<pseudagg_core::Progress<'_>>,
) -> Result<Verdict> {
    if options.key_file.is_some() && options.input.is_none() {
        return Err(Error::Usage(
            "--key-file recomputes pseudonyms from the input rows; give --input too".into(),
        ));
    }
    let manifest = manifest::load(dir)?;
    let mut verdict = Verdict::new(dir, &manifest.kind);
    if let Some(m) = &manifest.month {
        verdict.fact("month", m);
    }
    let unusable = manifest::check_files(dir, &manifest, &mut verdict)?;
    // Changed or missing files are reported above; the content checks look at the others.
    let mut usable = manifest.clone();
    usable.files.retain(|f| !unusable.contains(&f.path));
    match manifest.kind.as_str() {
        "pseudonymised-dataset" => dataset::check(dir, &usable, options, &mut verdict)?,
        "report" => report::check(dir, &usable, &mut verdict, progress)?,
        other => {
            return Err(Error::Usage(format!(
                "{}: `kind` is `{other}`; pseudagg verify knows `pseudonymised-dataset` and `report`",
                dir.join("manifest.json").display()
            )));
        }
    }
    verdict.finish();
    Ok(verdict)
}
