//! Cross-month linkability of a pseudonymised dataset on the attributes it keeps.
//!
//! The pseudonyms of two months differ, but a person's kept attributes mostly stay the same. A
//! record of one month that is compatible with exactly one record of the other month links the
//! person's two records as surely as a shared pseudonym would. This module counts such records.
//!
//! Two records are compatible when, column by column:
//! - a categorical column holds the same value (an empty cell is a value of its own: no measure);
//! - a quasi-identifier is the same or blanked in either (a blank may hide any value);
//! - a band of days to the month's end (`91-181 Tage`) overlaps the other once shifted by the
//!   days between the two months' ends, since the same event is that much further back;
//! - an age band overlaps the other, allowing for the birthdays between the two months.
//!
//! Rows are compared only within the same partition (RD) and the same categorical values, so the
//! pairwise step stays within small buckets; each record stops at its second match.

use std::collections::HashMap;

use pseudagg_core::{ColumnClass, Month, Schema};

use crate::manifest::Manifest;
use crate::read::TextFile;

/// An interval of a band label, in days to the month's end or in years of age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Band {
    Days(i64, i64),
    Years(i64, i64),
}

const OPEN: i64 = 1_000_000;

impl Band {
    fn parse(label: &str) -> Option<Self> {
        let num = |s: &str| s.trim().parse::<i64>().ok();
        if label == "nach Monatsende" {
            return Some(Self::Days(-OPEN, -1));
        }
        if let Some(n) = label.strip_suffix(" Tage und mehr") {
            return Some(Self::Days(num(n)?, OPEN));
        }
        if let Some(range) = label.strip_suffix(" Tage") {
            let (a, b) = range.split_once('-')?;
            return Some(Self::Days(num(a)?, num(b)?));
        }
        if let Some(n) = label.strip_prefix("unter ") {
            return Some(Self::Years(0, num(n)? - 1));
        }
        if let Some(n) = label.strip_suffix(" und aelter") {
            return Some(Self::Years(num(n)?, OPEN));
        }
        let (a, b) = label.split_once('-')?;
        Some(Self::Years(num(a)?, num(b)?))
    }

    /// Could a person in band `self` in the earlier month be in band `later` in the later month,
    /// `days` days further on?
    fn compatible(self, later: Self, days: i64) -> bool {
        let overlaps = |lo: i64, hi: i64, lo2: i64, hi2: i64| lo <= hi2 && lo2 <= hi;
        match (self, later) {
            (Self::Days(lo, hi), Self::Days(lo2, hi2)) => {
                let shift = |v: i64| if v.abs() >= OPEN { v } else { v + days };
                overlaps(shift(lo), shift(hi), lo2, hi2)
            }
            (Self::Years(lo, hi), Self::Years(lo2, hi2)) => {
                let years = (days + 364).div_euclid(365);
                overlaps(lo, hi.saturating_add(years.max(0)), lo2, hi2)
            }
            _ => false,
        }
    }
}

/// How a column takes part in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Equal values, an empty cell a value of its own; part of the bucket key.
    Exact,
    /// Equal values, or blank in either.
    Blankable,
    /// A band; `true`: blank in either matches (a quasi-identifier).
    Band(bool),
}

/// The columns compared: every declared column but the pseudonyms and meta data (the month).
fn layout(m: &Manifest, schema: &Schema) -> Vec<(String, Kind)> {
    let qi: Vec<String> = m
        .raw
        .get("k_anonymity")
        .and_then(|k| k.get("quasi_identifiers"))
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for c in m
        .raw
        .get("columns")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| c.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
        let (name, from, treatment) = (s("name"), s("from"), s("treatment"));
        if treatment == "pseudonymised"
            || schema
                .column(from)
                .is_some_and(|spec| spec.class == ColumnClass::Meta)
        {
            continue;
        }
        let blankable = qi.iter().any(|q| q == name);
        let kind = match (treatment, blankable) {
            ("generalised", b) => Kind::Band(b),
            (_, true) => Kind::Blankable,
            (_, false) => Kind::Exact,
        };
        out.push((name.to_owned(), kind));
    }
    out
}

type Row = Vec<Option<String>>;

/// A dataset's rows, bucketed by their exact columns, the rest of each row in the bucket.
pub(crate) type Buckets = HashMap<Row, Vec<Row>>;

/// The columns compared between `this` month's dataset and `other`'s: every declared column of
/// both but the pseudonyms and meta data; a column only one month has cannot tell records apart.
pub(crate) fn columns(this: &Manifest, other: &Manifest, schema: &Schema) -> Vec<(String, Kind)> {
    let in_other: Vec<String> = layout(other, schema).into_iter().map(|(n, _)| n).collect();
    layout(this, schema)
        .into_iter()
        .filter(|(n, _)| in_other.contains(n))
        .collect()
}

/// Adds a file's rows to `buckets`.
pub(crate) fn add_rows(file: &TextFile, columns: &[(String, Kind)], buckets: &mut Buckets) {
    let idx: Vec<Option<usize>> = columns.iter().map(|(n, _)| file.index(n)).collect();
    for (_, b, r) in file.row_positions() {
        let mut key = Vec::new();
        let mut rest = Vec::new();
        for ((_, kind), i) in columns.iter().zip(&idx) {
            let v = i.and_then(|i| file.text(b, i, r)).map(str::to_owned);
            if *kind == Kind::Exact {
                key.push(v);
            } else {
                rest.push(v);
            }
        }
        buckets.entry(key).or_default().push(rest);
    }
}

/// Records of `a` (the dataset being verified, of month `month_a`) that are compatible with
/// exactly one record of `b` (another month's dataset), and the number of records of `a`.
pub(crate) fn uniquely_linkable(
    (a, month_a): (&Buckets, Month),
    (b, month_b): (&Buckets, Month),
    columns: &[(String, Kind)],
) -> (u64, u64) {
    let loose: Vec<Kind> = columns
        .iter()
        .map(|(_, k)| *k)
        .filter(|k| *k != Kind::Exact)
        .collect();
    // The earlier month's record is the one whose events lie less far back.
    let (early_is_a, days) = {
        let d = (month_b.last_day() - month_a.last_day()).num_days();
        (d >= 0, d.abs())
    };
    let cell = |kind: Kind, u: &Option<String>, v: &Option<String>| match (u, v) {
        (None, None) => true,
        // A blanked quasi-identifier may hide any value; an empty band is a value of its own.
        (None, Some(_)) | (Some(_), None) => matches!(kind, Kind::Blankable | Kind::Band(true)),
        (Some(u), Some(v)) => match (kind, Band::parse(u), Band::parse(v)) {
            (Kind::Band(_), Some(bu), Some(bv)) => {
                if early_is_a {
                    bu.compatible(bv, days)
                } else {
                    bv.compatible(bu, days)
                }
            }
            _ => u == v,
        },
    };
    let compatible = |x: &Row, y: &Row| {
        loose
            .iter()
            .zip(x.iter().zip(y))
            .all(|(kind, (u, v))| cell(*kind, u, v))
    };
    let mut linked = 0u64;
    let mut total = 0u64;
    for (key, rows) in a {
        let others = b.get(key).map_or(&[][..], Vec::as_slice);
        for x in rows {
            total += 1;
            let mut matches = 0;
            for y in others {
                if compatible(x, y) {
                    matches += 1;
                    if matches > 1 {
                        break;
                    }
                }
            }
            if matches == 1 {
                linked += 1;
            }
        }
    }
    (linked, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_labels_parse_to_their_intervals() {
        assert_eq!(Band::parse("0-90 Tage"), Some(Band::Days(0, 90)));
        assert_eq!(
            Band::parse("730 Tage und mehr"),
            Some(Band::Days(730, OPEN))
        );
        assert_eq!(Band::parse("nach Monatsende"), Some(Band::Days(-OPEN, -1)));
        assert_eq!(Band::parse("unter 15"), Some(Band::Years(0, 14)));
        assert_eq!(Band::parse("35-39"), Some(Band::Years(35, 39)));
        assert_eq!(Band::parse("65 und aelter"), Some(Band::Years(65, OPEN)));
        assert_eq!(Band::parse("Marktprofil"), None);
    }

    #[test]
    fn a_band_a_month_later_is_shifted_by_the_days_between() {
        // 80-90 days back at the end of March is 110-120 days back at the end of April.
        let march = Band::Days(0, 90);
        assert!(march.compatible(Band::Days(91, 181), 30));
        assert!(
            march.compatible(Band::Days(0, 90), 30),
            "0-60 stays in 0-90"
        );
        assert!(!Band::Days(91, 181).compatible(Band::Days(0, 90), 30));
        assert!(Band::Days(-OPEN, -1).compatible(Band::Days(0, 90), 30));
        assert!(!Band::Days(730, OPEN).compatible(Band::Days(0, 90), 30));
        // A birthday may fall between the months: 35-39 may become 40-44, never 30-34.
        assert!(Band::Years(35, 39).compatible(Band::Years(40, 44), 30));
        assert!(!Band::Years(35, 39).compatible(Band::Years(30, 34), 30));
        assert!(!Band::Years(35, 39).compatible(Band::Years(45, 49), 30));
    }
}
