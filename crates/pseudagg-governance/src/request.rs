//! A Traeger's request for an aggregated report (seed 000): complete, for aggregated data of one
//! month, within the requester's own area, or refused with every problem at once.
//!
//! ```toml
//! reference = "JC-31501-2025-004"
//! requester = "Stadt Köln, kommunaler Träger des Jobcenters Köln"
//! requester-id = "stadt-koeln"       # its entry in the steward's Traeger register: its area
//! purpose = "Steuerung der Integrationskurse"
//! legal-basis = "§ 44b Abs. 3 SGB II i.V.m. § 6 Abs. 1 Nr. 2 SGB II"
//! use-of-data = "Abstimmung des Kursangebots mit dem BAMF"
//! data = "aggregated"
//! alternative-sources = "Statistik der BA: Geflüchtete nach Kreisen"
//! alternative-sources-result = "nicht auf gE-Ebene und nicht nach Integrationskurs"
//! month = "2025-03"
//! scope = ["31501"]
//!
//! [data-protection-review]
//! date = "2025-04-02"
//! reviewer = "Datenschutzbeauftragte des Jobcenters Köln"
//! ```

use std::path::Path;

use pseudagg_core::{Error, Location, Month, Problem, Problems, Result, parse_known};

use crate::TraegerRegister;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The request as written. Every field is optional here so that all missing ones are listed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct RequestFile {
    /// The file reference (Aktenzeichen) of the request; it goes into the manifest and protocol.
    pub reference: Option<String>,
    /// Who asks: the body behind the gE.
    pub requester: Option<String>,
    /// The requesting body's id in the steward's Traeger register, which gives its area (the
    /// gEs it runs, the only ones it may receive data of).
    pub requester_id: Option<String>,
    /// The gEs the requesting body says it runs. Optional and never trusted: the area is the
    /// register's, and a gE listed here outside it refuses the request.
    pub requester_ges: Option<Vec<String>>,
    /// What the data is for.
    pub purpose: Option<String>,
    /// The legal basis, e.g. § 44b Abs. 3 SGB II i.V.m. § 6 Abs. 1 Nr. 2 SGB II.
    pub legal_basis: Option<String>,
    /// The concrete use of the data.
    pub use_of_data: Option<String>,
    /// `aggregated`: the only kind of data a Traeger receives.
    pub data: Option<String>,
    /// Which alternative sources (statistics) were checked.
    pub alternative_sources: Option<String>,
    /// What that check found, and why they do not suffice.
    pub alternative_sources_result: Option<String>,
    /// The data-protection review that preceded the programming of the report.
    pub data_protection_review: Option<Review>,
    /// The single month, `YYYY-MM`.
    #[schemars(with = "Option<String>")]
    pub month: Option<toml::Value>,
    /// The gEs the report is for.
    pub scope: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct Review {
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
    pub reviewer: Option<String>,
}

/// A complete, admissible request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub reference: String,
    pub requester: String,
    pub month: Month,
    pub scope: Vec<String>,
}

fn text(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// A file reference that is safe as one folder name: letters, digits and `-_.`, not `.` or `..`,
/// not starting with `.` (no hidden folder), at most 100 characters.
#[must_use]
pub fn is_safe_reference(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 100
        && !r.starts_with('.')
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Request {
    /// Reads and checks a request for `month`. An incomplete or inadmissible request is refused
    /// ([`Error::Refused`], exit code 2) with every problem listed.
    /// The requester's area (the gEs it may receive) is the one `register` gives its
    /// `requester-id`, never what the request says of itself.
    pub fn load(path: &Path, month: Month, register: &TraegerRegister) -> Result<Self> {
        let content = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Self::from_toml(&content, path, month, register)
    }

    #[allow(clippy::too_many_lines)] // one rule after another, all reported together
    pub fn from_toml(
        content: &str,
        path: &Path,
        month: Month,
        register: &TraegerRegister,
    ) -> Result<Self> {
        let (file, mut problems) =
            parse_known::<RequestFile>(content, "the request fields in the README");
        let file = file.unwrap_or_default();
        let missing = |problems: &mut Problems, key: &str, what: &str| {
            problems.push(Problem::new(
                Location::key(key),
                format!("is missing or empty: {what}"),
            ));
        };
        let required = [
            (
                "reference",
                file.reference.as_ref(),
                "the file reference of the request",
            ),
            ("requester", file.requester.as_ref(), "who asks"),
            ("purpose", file.purpose.as_ref(), "what the data is for"),
            (
                "legal-basis",
                file.legal_basis.as_ref(),
                "the legal basis (§ 44b Abs. 3 SGB II i.V.m. § 6 Abs. 1 Nr. 2 SGB II)",
            ),
            (
                "use-of-data",
                file.use_of_data.as_ref(),
                "the concrete use of the data",
            ),
            ("data", file.data.as_ref(), "the kind of data, `aggregated`"),
            (
                "alternative-sources",
                file.alternative_sources.as_ref(),
                "which alternative sources (statistics) were checked",
            ),
            (
                "alternative-sources-result",
                file.alternative_sources_result.as_ref(),
                "what the check of the alternative sources found",
            ),
        ];
        for (key, value, what) in required {
            if text(value).is_none() {
                missing(&mut problems, key, what);
            }
        }
        // The reference names the request's output folder: a request comes from outside the
        // agency, so it must never steer where files go.
        if let Some(r) = text(file.reference.as_ref())
            && !is_safe_reference(r)
        {
            problems.push(Problem::new(
                Location::key("reference"),
                "may hold only letters, digits and `-`, `_`, `.` (at most 100), and is not `.` or `..`: it names the request's output folder",
            ));
        }
        let review = file.data_protection_review.clone().unwrap_or_default();
        match text(review.date.as_ref()) {
            None => missing(
                &mut problems,
                "data-protection-review.date",
                "the date of the data-protection review",
            ),
            Some(d) if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() => {
                problems.push(Problem::new(
                    Location::key("data-protection-review.date"),
                    "is not a date YYYY-MM-DD",
                ));
            }
            Some(_) => {}
        }
        if text(review.reviewer.as_ref()).is_none() {
            missing(
                &mut problems,
                "data-protection-review.reviewer",
                "who reviewed it",
            );
        }
        // The area comes from the steward's register, never from the request itself.
        let area: Vec<String> = match text(file.requester_id.as_ref()) {
            None => {
                missing(
                    &mut problems,
                    "requester-id",
                    "the requesting body's id in the Traeger register, which gives its area",
                );
                Vec::new()
            }
            Some(id) => {
                if let Some(area) = register.area(id) {
                    area.iter().cloned().collect()
                } else {
                    problems.push(Problem::new(
                        Location::key("requester-id"),
                        format!(
                            "is not in the Traeger register {}: the steward registers a Traeger and its gEs before it may ask",
                            register.path().display()
                        ),
                    ));
                    Vec::new()
                }
            }
        };
        let claimed: Vec<String> = file.requester_ges.clone().unwrap_or_default();
        if !area.is_empty() {
            let beyond = claimed.iter().filter(|g| !area.contains(g)).count();
            if beyond > 0 {
                problems.push(Problem::new(
                    Location::key("requester-ges"),
                    format!(
                        "claims {beyond} gE(s) that the Traeger register does not give this requester; the area is the register's"
                    ),
                ));
            }
        }
        let scope: Vec<String> = file.scope.clone().unwrap_or_default();
        if scope.iter().all(|g| g.trim().is_empty()) {
            missing(&mut problems, "scope", "the gEs the report is for");
        }
        for g in claimed.iter().chain(&scope) {
            if !(g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())) {
                problems.push(Problem::new(
                    Location::key("scope"),
                    "a gE is a 5-digit number",
                ));
                break;
            }
        }

        // What is never given out, even on a complete request.
        if let Some(kind) = text(file.data.as_ref())
            && kind != "aggregated"
        {
            problems.push(Problem::new(
                Location::key("data"),
                "only aggregated data is given to a Traeger; individual data is refused",
            ));
        }
        let outside: Vec<&String> = scope.iter().filter(|g| !area.contains(g)).collect();
        if !outside.is_empty() && !area.is_empty() {
            problems.push(Problem::new(
                Location::key("scope"),
                format!(
                    "{} gE(s) lie outside the requester's area in the Traeger register ({}): a Traeger receives data of its own gEs only",
                    outside.len(),
                    outside.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let requested_month = match &file.month {
            None => {
                missing(
                    &mut problems,
                    "month",
                    "the single month (YYYY-MM) of the data",
                );
                None
            }
            Some(toml::Value::String(m)) => {
                let parsed = Month::parse_for_run(m).ok();
                if parsed.is_none() {
                    problems.push(Problem::new(
                        Location::key("month"),
                        "names several months or no month: one request is one month (no time series)",
                    ));
                }
                parsed
            }
            Some(_) => {
                problems.push(Problem::new(
                    Location::key("month"),
                    "is a list or a number: one request is one month, written YYYY-MM (no time series)",
                ));
                None
            }
        };
        if let Some(m) = requested_month
            && m != month
        {
            problems.push(Problem::new(
                Location::key("month"),
                format!("is {m}, but the report is for {month}"),
            ));
        }
        if !problems.is_empty() {
            return Err(refusal(path, &problems));
        }
        Ok(Self {
            reference: text(file.reference.as_ref()).expect("checked").to_owned(),
            requester: text(file.requester.as_ref()).expect("checked").to_owned(),
            month,
            scope,
        })
    }
}

fn refusal(path: &Path, problems: &Problems) -> Error {
    Error::Refused(format!(
        "{} cannot be answered ({} problem{}); nothing was written:\n{problems}",
        path.display(),
        problems.total(),
        if problems.total() == 1 { "" } else { "s" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
reference = "JC-31501-2025-004"
requester = "Stadt Köln"
requester-id = "stadt-koeln"
purpose = "Steuerung der Integrationskurse"
legal-basis = "§ 44b Abs. 3 SGB II i.V.m. § 6 Abs. 1 Nr. 2 SGB II"
use-of-data = "Abstimmung des Kursangebots"
data = "aggregated"
alternative-sources = "Statistik der BA"
alternative-sources-result = "nicht auf gE-Ebene"
month = "2025-03"
scope = ["31501"]

[data-protection-review]
date = "2025-04-02"
reviewer = "DSB"
"#;

    fn march() -> Month {
        Month::new(2025, 3).unwrap()
    }

    fn register() -> TraegerRegister {
        TraegerRegister::from_toml(
            "[[traeger]]\nid = \"stadt-koeln\"\nges = [\"31501\", \"31502\"]\n\
             [[traeger]]\nid = \"stadt-bonn\"\nges = [\"05314\"]\n",
            Path::new("traeger.toml"),
        )
        .unwrap()
    }

    fn refused(text: &str) -> String {
        Request::from_toml(text, Path::new("r.toml"), march(), &register())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_complete_request_is_accepted() {
        let r = Request::from_toml(GOOD, Path::new("r.toml"), march(), &register()).unwrap();
        assert_eq!(r.reference, "JC-31501-2025-004");
        assert_eq!(r.scope, ["31501"]);
    }

    /// Issue 17: a request's reference was joined into the output path unchecked.
    #[test]
    fn a_reference_that_would_leave_its_folder_is_refused() {
        for hostile in [
            "..",
            ".",
            "../../../../tmp/x",
            "a/b",
            ".hidden",
            "x\\y",
            "a b",
            "ü",
        ] {
            let e = refused(&GOOD.replace("JC-31501-2025-004", hostile));
            assert!(e.contains("`reference`"), "{hostile}: {e}");
            assert!(
                !e.contains("tmp/x") && !e.contains(".hidden"),
                "not echoed: {e}"
            );
        }
        assert!(is_safe_reference("JC-31501-2025-004"));
        assert!(is_safe_reference("az_7.2025"));
    }

    #[test]
    fn every_missing_or_empty_field_is_listed_at_once() {
        let mut text = String::new();
        for line in GOOD.lines() {
            // Drop purpose and the reviewer; empty the legal basis.
            if line.starts_with("purpose") || line.starts_with("reviewer") {
                continue;
            }
            if line.starts_with("legal-basis") {
                text.push_str("legal-basis = \"  \"\n");
                continue;
            }
            text.push_str(line);
            text.push('\n');
        }
        let e = refused(&text);
        assert!(e.contains("3 problems"), "{e}");
        for key in [
            "`purpose`",
            "`legal-basis`",
            "`data-protection-review.reviewer`",
        ] {
            assert!(e.contains(key), "{key} in {e}");
        }
        // An empty file lists everything.
        let e = refused("");
        assert!(e.contains("13 problems"), "{e}");
    }

    /// Issue 17 §5: the area was taken from the request itself, so a requester could name any gE.
    #[test]
    fn the_area_is_the_registers_not_the_requests() {
        // Claiming another body's gE as its own does not widen the area.
        let claims = GOOD
            .replace(
                "requester-id = \"stadt-koeln\"",
                "requester-id = \"stadt-koeln\"\nrequester-ges = [\"31501\", \"05314\"]",
            )
            .replace("scope = [\"31501\"]", "scope = [\"05314\"]");
        let e = refused(&claims);
        assert!(e.contains("`requester-ges`: claims 1 gE(s)"), "{e}");
        assert!(
            e.contains("outside the requester's area in the Traeger register (05314)"),
            "{e}"
        );
        // A requester the steward never registered is refused.
        let e = refused(&GOOD.replace("stadt-koeln", "stadt-x"));
        assert!(
            e.contains("`requester-id`: is not in the Traeger register traeger.toml"),
            "{e}"
        );
        // Its own registered gEs are fine, also without `requester-ges`.
        let r = Request::from_toml(
            &GOOD.replace("scope = [\"31501\"]", "scope = [\"31501\", \"31502\"]"),
            Path::new("r.toml"),
            march(),
            &register(),
        )
        .unwrap();
        assert_eq!(r.scope, ["31501", "31502"]);
    }

    #[test]
    fn individual_data_several_months_and_other_areas_are_refused() {
        let e = refused(&GOOD.replace("data = \"aggregated\"", "data = \"individual\""));
        assert!(e.contains("individual data is refused"), "{e}");
        let e = refused(&GOOD.replace("month = \"2025-03\"", "month = [\"2025-02\", \"2025-03\"]"));
        assert!(e.contains("one request is one month"), "{e}");
        let e = refused(&GOOD.replace("month = \"2025-03\"", "month = \"2025-01..2025-03\""));
        assert!(e.contains("one request is one month"), "{e}");
        let e = refused(&GOOD.replace("scope = [\"31501\"]", "scope = [\"31501\", \"05315\"]"));
        assert!(
            e.contains("outside the requester's area in the Traeger register (05315)"),
            "{e}"
        );
        let e = refused(&GOOD.replace("month = \"2025-03\"", "month = \"2025-04\""));
        assert!(e.contains("but the report is for 2025-03"), "{e}");
        let e = refused(&format!("{GOOD}\nextra = 1\n"));
        assert!(e.contains("extra`: is not a known key"), "{e}");
    }
}
