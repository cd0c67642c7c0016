use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

/// A Datenstand: one calendar month, written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// The month before.
    #[must_use]
    pub fn previous(self) -> Self {
        Self::of(self.first_day() - chrono::Days::new(1))
    }

    /// The month of `year` and `month` (1-12), if it is one.
    #[must_use]
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((1..=12).contains(&month) && (1900..=2999).contains(&year)).then_some(Self { year, month })
    }

    #[must_use]
    pub fn year(self) -> i32 {
        self.year
    }

    #[must_use]
    pub fn month(self) -> u32 {
        self.month
    }

    /// The first day of the month.
    #[must_use]
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a Month is always a valid date")
    }

    /// The last day of the month: the reference day for ages and look-back windows.
    #[must_use]
    pub fn last_day(self) -> NaiveDate {
        let next = if self.month == 12 {
            NaiveDate::from_ymd_opt(self.year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(self.year, self.month + 1, 1)
        };
        next.and_then(|d| d.pred_opt())
            .expect("a Month is always a valid date")
    }

    /// Parses the month of a run (`--month`). More than one month (a list or a range) is refused:
    /// every output covers exactly one month, and several would make a time series.
    pub fn parse_for_run(text: &str) -> crate::Result<Self> {
        let t = text.trim();
        // Several months: at least two parts that are each a month (`2025-03,2025-04`,
        // `2025-01..2025-03`, `2025-01-2025-03`). Anything else that is not a month is a format
        // error (`04/2025`, `2025-03-15`).
        let is_month = |p: &str| p.parse::<Self>().is_ok();
        let listed = t
            .split([',', ';', ' ', '/'])
            .flat_map(|p| p.split(".."))
            .filter(|p| is_month(p))
            .count();
        let dashes: Vec<&str> = t.split('-').collect();
        let dashed_range = dashes.len() == 4
            && is_month(&format!("{}-{}", dashes[0], dashes[1]))
            && is_month(&format!("{}-{}", dashes[2], dashes[3]));
        if listed >= 2 || dashed_range {
            return Err(crate::Error::Refused("--month names more than one month; each run covers exactly one month, and data of \
                 several months together would form a time series, which the opDs rules forbid: run once per month".to_string()));
        }
        t.parse().map_err(|e: ParseMonthError| {
            // `04/2025`, `04.2025`: the German way round.
            let hint = t
                .split_once(['/', '.'])
                .filter(|(m, y)| m.len() <= 2 && y.len() == 4)
                .and_then(|(m, y)| format!("{y}-{m:0>2}").parse::<Self>().ok())
                .map_or_else(String::new, |m| format!(" (did you mean {m}?)"));
            crate::Error::Usage(format!("--month: {e}{hint}"))
        })
    }

    /// The month that contains `date`.
    #[must_use]
    pub fn of(date: NaiveDate) -> Self {
        Self {
            year: date.year(),
            month: date.month(),
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The error of parsing a [`Month`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a month is written YYYY-MM, for example 2025-03")]
pub struct ParseMonthError;

impl FromStr for Month {
    type Err = ParseMonthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' || !b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit) {
            return Err(ParseMonthError);
        }
        let year = s[..4].parse().map_err(|_| ParseMonthError)?;
        let month = s[5..].parse().map_err(|_| ParseMonthError)?;
        Self::new(year, month).ok_or(ParseMonthError)
    }
}

/// Every folder of `month` under the output root `root`, in path order: `{root}/{name}/{month}`
/// and each request's `{root}/{report}/requests/{reference}/{month}`, where they are folders. The
/// report run finds the month's release records there, `verify --month` the month's outputs.
#[must_use]
pub fn month_folders(root: &std::path::Path, month: Month) -> Vec<std::path::PathBuf> {
    let dirs = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        v
    };
    let month = month.to_string();
    let mut out = Vec::new();
    for name in dirs(root) {
        out.push(name.join(&month));
        for request in dirs(&name.join("requests")) {
            out.push(request.join(&month));
        }
    }
    out.retain(|d| d.is_dir());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let m: Month = "2025-03".parse().unwrap();
        assert_eq!(m.to_string(), "2025-03");
        assert_eq!(m.first_day().to_string(), "2025-03-01");
    }

    #[test]
    fn last_day_handles_february_and_december() {
        assert_eq!(
            "2024-02".parse::<Month>().unwrap().last_day().to_string(),
            "2024-02-29"
        );
        assert_eq!(
            "2025-02".parse::<Month>().unwrap().last_day().to_string(),
            "2025-02-28"
        );
        assert_eq!(
            "2025-12".parse::<Month>().unwrap().last_day().to_string(),
            "2025-12-31"
        );
    }

    #[test]
    fn a_run_takes_one_month_only() {
        assert!("2025-03".parse::<Month>().is_ok());
        assert!(Month::parse_for_run("2025-03").is_ok());
        for several in [
            "2025-03,2025-04",
            "2025-01..2025-03",
            "2025-03 2025-04",
            "2025-03/2025-04",
            "2025-01-2025-03",
        ] {
            let err = Month::parse_for_run(several).unwrap_err();
            assert!(
                matches!(err, crate::Error::Refused(_)) && err.to_string().contains("time series"),
                "{several}"
            );
        }
        assert!(matches!(
            Month::parse_for_run("2025-3"),
            Err(crate::Error::Usage(_))
        ));
    }

    /// Issue 17: `04/2025` was refused as "more than one month"; it is one month written the
    /// other way round, and a day is not a month either.
    #[test]
    fn a_month_in_another_format_is_a_format_error_with_a_hint() {
        for (text, hint) in [
            ("04/2025", Some("2025-04")),
            ("4.2025", Some("2025-04")),
            ("2025-03-15", None),
            ("März 2025", None),
        ] {
            let err = Month::parse_for_run(text).unwrap_err();
            assert!(matches!(err, crate::Error::Usage(_)), "{text}: {err}");
            let message = err.to_string();
            assert!(!message.contains("time series"), "{text}: {message}");
            match hint {
                Some(m) => assert!(message.contains(&format!("did you mean {m}?")), "{message}"),
                None => assert!(!message.contains("did you mean"), "{message}"),
            }
        }
    }

    #[test]
    fn rejects_malformed_months() {
        for bad in [
            "2025-3",
            "2025-13",
            "2025-00",
            "25-03",
            "2025/03",
            "2025-03-01",
            "",
            "abcd-ef",
        ] {
            assert!(bad.parse::<Month>().is_err(), "{bad} was accepted");
        }
    }
}
