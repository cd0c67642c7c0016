//! Findings and the verdict.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

/// The rule a finding breaks. The name is stable: CI jobs and the data-protection officer may
/// filter on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// A file the manifest lists is missing, or its size or SHA-256 differs.
    FileHash,
    /// A file in the output that the manifest does not list.
    UnlistedFile,
    /// The manifest lacks a required entry (key id, month, files).
    Manifest,
    /// A column that the manifest or the pipeline's allow-list does not permit.
    ColumnNotAllowed,
    /// A column named like, or declared as, identifier, personal, staff or free-text data.
    SensitiveColumn,
    /// A value shaped like a Kundennummer.
    Kundennummer,
    /// A value shaped like a BG-Nummer.
    BgNummer,
    /// A value shaped like an e-mail address.
    Email,
    /// A value shaped like a German phone number.
    Phone,
    /// A value shaped like an IBAN.
    Iban,
    /// A value outside its column's contract: not one of the schema's allowed values, not matching
    /// its pattern or type, not a band label of a generalised column; or a text column that has
    /// no contract at all, so that it could hold anything.
    ColumnValue,
    /// An output value equal to an identifier, personal, staff or free-text value of the input.
    InputValue,
    /// A pseudonym that is not 64 lower-case hex, empty, or not unique.
    PseudonymFormat,
    /// A pseudonym that does not recompute from any input row with the given key and month.
    PseudonymRecompute,
    /// A pseudonym that also appears in the other month's output.
    Linkable,
    /// A row under `rd=X` whose partition column is not X, or that is in another RD than its input row.
    Partition,
    /// A group of equal quasi-identifiers smaller than the declared k.
    KAnonymity,
    /// A published count of 1 or 2 (below the threshold), or a value and its flag that disagree.
    SmallCount,
    /// A suppressed cell that the published values narrow to a small count.
    Disclosure,
    /// More than one month, or a time dimension.
    TimeSeries,
    /// The CSV and the Parquet file of a scope disagree.
    Inconsistent,
    /// A recipient folder holds more than its tables and a manifest of hashes, month, definition
    /// and scope: audit data, intervals, a true value of a suppressed cell, or another file.
    RecipientFolder,
}

impl Rule {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FileHash => "file-hash",
            Self::UnlistedFile => "unlisted-file",
            Self::Manifest => "manifest",
            Self::ColumnNotAllowed => "column-not-allowed",
            Self::SensitiveColumn => "sensitive-column",
            Self::Kundennummer => "kundennummer",
            Self::BgNummer => "bg-nummer",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Iban => "iban",
            Self::ColumnValue => "column-value",
            Self::InputValue => "input-value",
            Self::PseudonymFormat => "pseudonym-format",
            Self::PseudonymRecompute => "pseudonym-recompute",
            Self::Linkable => "linkable",
            Self::Partition => "partition",
            Self::KAnonymity => "k-anonymity",
            Self::SmallCount => "small-count",
            Self::Disclosure => "disclosure",
            Self::TimeSeries => "time-series",
            Self::Inconsistent => "inconsistent",
            Self::RecipientFolder => "recipient-folder",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One violation: where, which rule, and what it means. Never the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    /// Relative to the verified folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based data row within the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub message: String,
}

impl Finding {
    #[must_use]
    pub fn new(rule: Rule, message: impl Into<String>) -> Self {
        Self {
            rule,
            file: None,
            row: None,
            column: None,
            message: message.into(),
        }
    }

    #[must_use]
    pub fn file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    #[must_use]
    pub fn row(mut self, row: u64) -> Self {
        self.row = Some(row);
        self
    }

    #[must_use]
    pub fn column(mut self, column: impl Into<String>) -> Self {
        self.column = Some(column.into());
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.rule)?;
        if let Some(file) = &self.file {
            write!(f, " {file}")?;
        }
        if let Some(row) = self.row {
            write!(f, " row {row}")?;
        }
        if let Some(column) = &self.column {
            write!(f, " column `{column}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// At most this many findings per rule are kept; the rest are counted.
const KEEP_PER_RULE: usize = 100;

/// The result of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub folder: String,
    pub kind: String,
    pub passed: bool,
    /// The checks that ran, in order.
    pub checks: Vec<String>,
    /// Findings per rule, in total (more than are listed when a rule fires very often).
    pub counts: BTreeMap<Rule, u64>,
    pub findings: Vec<Finding>,
    /// What was measured on the way, for the summary (numbers only).
    pub facts: BTreeMap<String, String>,
}

impl Verdict {
    #[must_use]
    pub fn new(dir: &Path, kind: &str) -> Self {
        Self {
            folder: dir.display().to_string(),
            kind: kind.to_owned(),
            passed: true,
            checks: Vec::new(),
            counts: BTreeMap::new(),
            findings: Vec::new(),
            facts: BTreeMap::new(),
        }
    }

    pub fn check(&mut self, name: &str) {
        self.checks.push(name.to_owned());
    }

    pub fn fact(&mut self, name: &str, value: &impl ToString) {
        self.facts.insert(name.to_owned(), value.to_string());
    }

    pub fn push(&mut self, finding: Finding) {
        let n = self.counts.entry(finding.rule).or_default();
        *n += 1;
        if *n as usize <= KEEP_PER_RULE {
            self.findings.push(finding);
        }
    }

    /// Takes in the findings of a part checked on its own (one file), as if they had been pushed
    /// here one by one: the first of each rule are kept, all are counted.
    pub(crate) fn absorb(&mut self, part: Verdict) {
        let mut kept: BTreeMap<Rule, u64> = BTreeMap::new();
        for finding in part.findings {
            *kept.entry(finding.rule).or_default() += 1;
            self.push(finding);
        }
        for (rule, n) in part.counts {
            let beyond = n - kept.get(&rule).copied().unwrap_or(0);
            if beyond > 0 {
                *self.counts.entry(rule).or_default() += beyond;
            }
        }
        self.facts.extend(part.facts);
    }

    #[must_use]
    pub fn has(&self, rule: Rule) -> bool {
        self.counts.contains_key(&rule)
    }

    pub(crate) fn finish(&mut self) {
        self.passed = self.counts.is_empty();
    }
}
