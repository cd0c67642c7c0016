//! Reading definition files (pipelines, reports): TOML into a serde struct, with every unknown key
//! reported as a problem instead of stopping at the first.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::{Location, Problem, Problems};

/// Parses a definition. Returns the value (if the TOML has the right shape) and the problems found
/// so far: invalid TOML, a wrong type, and every key the struct does not know, named by its path.
/// `schema_hint` tells the user where the known keys are listed.
#[must_use]
pub fn parse_definition<T: DeserializeOwned>(
    text: &str,
    schema_hint: &str,
) -> (Option<T>, Problems) {
    parse_with(text, schema_hint, &BTreeSet::new())
}

/// [`parse_definition`] for a type with a JSON Schema: an unknown key also names the nearest
/// known key of the definition when one is close ("did you mean `min-k`?").
#[must_use]
pub fn parse_known<T: DeserializeOwned + JsonSchema>(
    text: &str,
    schema_hint: &str,
) -> (Option<T>, Problems) {
    parse_with(text, schema_hint, &known_keys::<T>())
}

/// Every key name the type's schema knows, at any depth.
fn known_keys<T: JsonSchema>() -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Object(props)) = m.get("properties") {
                    out.extend(props.keys().cloned());
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let schema = schemars::schema_for!(T);
    let mut out = BTreeSet::new();
    walk(schema.as_value(), &mut out);
    out
}

/// The known key nearest to the last segment of `path`, when it is close enough to be a typo.
fn nearest_key<'k>(path: &str, known: &'k BTreeSet<String>) -> Option<&'k str> {
    let last = path.rsplit('.').next().unwrap_or(path);
    let last = last.split('[').next().unwrap_or(last);
    let limit = (last.chars().count() / 4).max(2);
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(last, k), k.as_str()))
        .filter(|&(d, _)| d > 0 && d <= limit)
        .min()
        .map(|(_, k)| k)
}

fn parse_with<T: DeserializeOwned>(
    text: &str,
    schema_hint: &str,
    known: &BTreeSet<String>,
) -> (Option<T>, Problems) {
    let mut problems = Problems::default();
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let e: toml::de::Error = e;
            // Line and column count from 1, as an editor shows them.
            let at = e.span().map_or_else(String::new, |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(" at line {line}, column {column}")
            });
            problems.push(Problem::new(
                Location::default(),
                format!("is not valid TOML{at}: {}", e.message()),
            ));
            return (None, problems);
        }
    };
    let mut unknown = Vec::new();
    let value = match serde_ignored::deserialize(toml::Value::Table(table), |key| {
        // serde_ignored writes `?` for an Option between keys; users write none.
        unknown.push(list_indices(&key.to_string().replace(".?", "")));
    }) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(Problem::new(Location::default(), e.to_string()));
            None
        }
    };
    for key in unknown {
        let message = match nearest_key(&key, known) {
            Some(near) => format!("is not a known key; did you mean `{near}`? (see {schema_hint})"),
            None => format!("is not a known key (see {schema_hint})"),
        };
        problems.push(Problem::new(Location::key(key), message));
    }
    (value, problems)
}

/// serde_ignored writes a list index as a path segment (`report.0.input`); a definition's key
/// paths write it in brackets (`report[0].input`).
fn list_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('.').enumerate() {
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if i > 0 {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

#[cfg(test)]
mod toml_error_tests {
    #[test]
    fn an_unknown_key_in_a_list_is_named_by_its_entry_counting_from_one() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Step {
            input: String,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Config {
            report: Vec<Step>,
        }
        let (v, problems): (Option<Config>, _) = super::parse_definition(
            "[[report]]\ninput = \"a\"\n[[report]]\ninput = \"b\"\ninptu = \"c\"\n",
            "the schema",
        );
        assert!(v.is_some());
        let text = problems.to_string();
        assert!(
            text.contains("at `report[2].inptu`: is not a known key"),
            "{text}"
        );
    }

    /// Issue 17 §2: an unknown key suggests the nearest known one.
    #[test]
    fn an_unknown_key_suggests_the_nearest_known_one() {
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "kebab-case")]
        #[allow(dead_code)]
        struct KAnon {
            min_k: u32,
        }
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "kebab-case")]
        #[allow(dead_code)]
        struct Def {
            quasi_identifiers: Option<Vec<String>>,
            k_anonymity: Option<KAnon>,
        }
        let (_, problems): (Option<Def>, _) = super::parse_known(
            "quasi-identifier = []\n[k-anonymity]\nmin-k = 3\nmink = 2\ncolour = 1\n",
            "the schema",
        );
        let text = problems.to_string();
        assert!(
            text.contains(
                "`quasi-identifier`: is not a known key; did you mean `quasi-identifiers`?"
            ),
            "{text}"
        );
        assert!(
            text.contains("`k-anonymity.mink`: is not a known key; did you mean `min-k`?"),
            "{text}"
        );
        assert!(
            text.contains("`k-anonymity.colour`: is not a known key (see the schema)"),
            "{text}"
        );
    }

    #[test]
    fn a_toml_syntax_error_names_line_and_column() {
        let (v, problems): (Option<toml::Table>, _) =
            super::parse_definition("name = \"x\"\nkeep = [\"rd\", \"a\"\n", "the schema");
        assert!(v.is_none());
        let text = problems.to_string();
        assert!(
            text.contains("is not valid TOML at line 2, column"),
            "{text}"
        );
    }
}

/// Compares a generated file (such as a JSON Schema) with the committed one; with the environment
/// variable `PSEUDAGG_BLESS` set, rewrites it first. For tests that keep generated files current.
pub fn check_generated_file(path: &str, fresh: &str) -> Result<(), String> {
    if std::env::var_os("PSEUDAGG_BLESS").is_some() {
        std::fs::write(path, fresh).map_err(|e| e.to_string())?;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == fresh {
        Ok(())
    } else {
        Err(format!(
            "{path} is stale: run the tests with PSEUDAGG_BLESS=1 and commit it"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Def {
        name: String,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
    }

    #[test]
    fn every_unknown_key_is_reported() {
        let (value, problems) =
            parse_definition::<Def>("name = 'x'\ncolour = 1\n[inner]\na = 1\nb = 2\n", "x.json");
        assert!(value.is_some());
        let text = problems.to_string();
        assert_eq!(problems.total(), 2, "{text}");
        assert!(
            text.contains("at `colour`") && text.contains("at `inner.b`"),
            "{text}"
        );
    }

    #[test]
    fn invalid_toml_and_wrong_types_are_problems() {
        let (value, problems) = parse_definition::<Def>("name = ", "x.json");
        assert!(value.is_none() && problems.to_string().contains("not valid TOML"));
        let (value, problems) = parse_definition::<Def>("name = 3", "x.json");
        assert!(value.is_none() && problems.total() == 1);
    }
}
