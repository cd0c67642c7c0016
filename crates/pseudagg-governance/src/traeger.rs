//! The Traeger register: which gEs each body that may ask for a report runs. The data steward
//! keeps it; a request names its Traeger by id, and its area is read from here, never from the
//! request, which comes from outside the agency.
//!
//! ```toml
//! [[traeger]]
//! id = "stadt-leipzig"
//! name = "Stadt Leipzig, kommunaler Träger des Jobcenters Leipzig"
//! ges = ["86101"]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pseudagg_core::{Error, Location, Problem, Result, parse_known};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The register as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct RegisterFile {
    /// One entry per Traeger.
    #[serde(default)]
    pub traeger: Vec<TraegerEntry>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct TraegerEntry {
    /// The id a request names in `requester-id`: letters, digits and `-_`.
    pub id: String,
    /// The body's name, for people.
    #[serde(default)]
    pub name: String,
    /// The gEs it runs (5-digit numbers): the only ones whose data it may receive.
    pub ges: Vec<String>,
}

/// A checked register, with the SHA-256 of its file for the protocol.
#[derive(Debug, Clone)]
pub struct TraegerRegister {
    path: PathBuf,
    sha256: String,
    areas: BTreeMap<String, BTreeSet<String>>,
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn is_ge(s: &str) -> bool {
    s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit())
}

impl TraegerRegister {
    /// Reads and checks a register: every problem at once (exit code 2).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        let text = String::from_utf8(bytes.clone()).map_err(|_| {
            Error::Refused(format!(
                "the Traeger register {} is not UTF-8 text",
                path.display()
            ))
        })?;
        let mut reg = Self::from_toml(&text, path)?;
        reg.sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(reg)
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let (file, mut problems) =
            parse_known::<RegisterFile>(text, "the Traeger register in the README");
        let file = file.unwrap_or_default();
        let mut areas: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (i, t) in file.traeger.iter().enumerate() {
            let at = |key: &str| Location::key(format!("traeger[{i}].{key}"));
            if !is_id(&t.id) {
                problems.push(Problem::new(
                    at("id"),
                    "is letters, digits, `-` and `_` (at most 64)",
                ));
            }
            if t.ges.is_empty() {
                problems.push(Problem::new(at("ges"), "names no gE"));
            }
            if t.ges.iter().any(|g| !is_ge(g)) {
                problems.push(Problem::new(at("ges"), "a gE is a 5-digit number"));
            }
            if areas
                .insert(t.id.clone(), t.ges.iter().cloned().collect())
                .is_some()
            {
                problems.push(Problem::new(
                    at("id"),
                    "is given twice: one entry per Traeger",
                ));
            }
        }
        if file.traeger.is_empty() && problems.is_empty() {
            problems.push(Problem::new(
                Location::key("traeger"),
                "is missing: the register lists no Traeger",
            ));
        }
        if !problems.is_empty() {
            return Err(Error::Definition {
                file: path.to_owned(),
                problems,
            });
        }
        Ok(Self {
            path: path.to_owned(),
            sha256: String::new(),
            areas,
        })
    }

    /// The gEs the Traeger `id` runs, or `None` when the register does not know it.
    #[must_use]
    pub fn area(&self, id: &str) -> Option<&BTreeSet<String>> {
        self.areas.get(id)
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 of the register's file (empty when it was not read from a file).
    #[must_use]
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_register_gives_each_traeger_its_area() {
        let r = TraegerRegister::from_toml(
            "[[traeger]]\nid = \"stadt-koeln\"\nname = \"Stadt Köln\"\nges = [\"31501\", \"31502\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let area = r.area("stadt-koeln").unwrap();
        assert!(area.contains("31501") && area.contains("31502") && area.len() == 2);
        assert!(r.area("stadt-bonn").is_none());
    }

    #[test]
    fn a_bad_register_lists_every_problem() {
        let e = TraegerRegister::from_toml(
            "[[traeger]]\nid = \"a/b\"\nges = [\"315\"]\n[[traeger]]\nid = \"x\"\nges = []\n[[traeger]]\nid = \"x\"\nges = [\"31501\"]\n",
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        for part in [
            "`traeger[1].id`",
            "`traeger[1].ges`: a gE is a 5-digit number",
            "`traeger[2].ges`: names no gE",
            "`traeger[3].id`: is given twice",
        ] {
            assert!(e.contains(part), "{part} in {e}");
        }
        let e = TraegerRegister::from_toml("", Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lists no Traeger"), "{e}");
    }
}
