use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An aggregated report (Sonderaufbereitung), as written in `pipelines/*.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct ReportDefinition {
    /// The report's name: lower-case letters, digits and hyphens. Outputs go to `OUT/{name}/{month}/`.
    pub name: String,
    /// The title printed above the tables.
    pub title: String,
    /// What the report is for.
    #[serde(default)]
    pub description: String,
    /// The input schema, for example `opds-person`.
    pub input_schema: String,
    /// Which rows are counted at all (an expression; see the README's expression language).
    pub population: String,
    /// The population in words, for the notes of the workbooks (e.g. "Erwerbsfähige
    /// Leistungsberechtigte mit ukrainischer Staatsangehörigkeit oder der eines der acht
    /// Hauptasylherkunftsländer"). Without it the notes show the expression.
    #[serde(default)]
    pub population_text: Option<String>,
    /// The org column naming the regional directorate.
    #[serde(default = "default_rd")]
    pub rd_column: String,
    /// The org column naming the Jobcenter (gE).
    #[serde(default = "default_ge")]
    pub ge_column: String,
    /// The org column with the Jobcenter's name, shown in the workbooks.
    #[serde(default)]
    pub ge_name_column: Option<String>,
    /// Small-cell suppression.
    #[serde(default)]
    pub suppression: Suppression,
    /// The breakdowns of each indicator, each with its total; optional. One `[dimension]` table,
    /// or up to two `[[dimension]]` tables, crossed (e.g. origin by sex: every combination of
    /// their categories, with each dimension's total).
    #[serde(default)]
    #[schemars(with = "Option<DimensionsSchema>")]
    pub dimension: Dimensions,
    /// The counts reported, in output order.
    pub indicators: Vec<Indicator>,
}

fn default_rd() -> String {
    "rd".to_owned()
}

fn default_ge() -> String {
    "ge_nr".to_owned()
}

/// Suppression settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct Suppression {
    /// Counts from 1 to `threshold - 1` are suppressed (primary suppression); 0 is published.
    #[serde(default = "default_threshold")]
    pub threshold: u64,
    /// The audit demands that the feasible interval of each primary cell is at least this wide.
    #[serde(default = "default_width")]
    pub min_interval_width: u64,
    /// Levels (`rd`, `bund`) whose cells must stay published unless they are small themselves, for
    /// example because the ministry needs the federal values. If protection would need one of
    /// them, the run fails instead.
    #[serde(default)]
    pub never_suppress: Vec<String>,
    /// Attacker model (b), the insider: besides everything published for the month (model a,
    /// always on), a gE knows its own true counts and sees its RD's table (the RDs present their
    /// tables to their gEs). With `true` (the default), every other gE's small cells of the
    /// district stay protected against it. Recorded in the manifest.
    #[serde(default = "default_insider")]
    pub insider: bool,
}

impl Default for Suppression {
    fn default() -> Self {
        Self {
            threshold: default_threshold(),
            min_interval_width: default_width(),
            never_suppress: Vec::new(),
            insider: default_insider(),
        }
    }
}

fn default_insider() -> bool {
    true
}

fn default_threshold() -> u64 {
    3
}

fn default_width() -> u64 {
    2
}

/// The dimensions of a report, in the order of the definition (none, one or two).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Dimensions(pub Vec<Dimension>);

impl Dimensions {
    /// The dimensions, in order.
    #[must_use]
    pub fn all(&self) -> &[Dimension] {
        &self.0
    }
}

/// Reads one `[dimension]` table, or a list of `[[dimension]]` tables.
impl<'de> Deserialize<'de> for Dimensions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> serde::de::Visitor<'de> for OneOrMany {
            type Value = Dimensions;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [dimension] table, or up to two [[dimension]] tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Dimensions, A::Error> {
                Dimension::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|d| Dimensions(vec![d]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Dimensions, A::Error> {
                Vec::<Dimension>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(Dimensions)
            }
        }
        d.deserialize_any(OneOrMany)
    }
}

/// The shape of `dimension` in the JSON Schema: one table or a list.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only its schema is used
enum DimensionsSchema {
    One(Dimension),
    Several(Vec<Dimension>),
}

/// A breakdown: categories that split the population, and their total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct Dimension {
    /// The column name of the dimension in the outputs, for example `herkunft`.
    pub name: String,
    /// Its heading for people in the workbooks, for example `Herkunft`.
    #[serde(default)]
    pub label: Option<String>,
    /// The label of the total over all categories, for example `Insgesamt`.
    pub total: String,
    /// The categories; every row of the population must fall into exactly one.
    pub categories: Vec<Category>,
}

/// One category of a dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct Category {
    /// The machine name in the long outputs (Parquet, CSV), for example `Asylherkunftslaender`.
    pub name: String,
    /// Which rows belong to it (an expression).
    pub when: String,
    /// The heading for people in the workbooks, for example `Asylherkunftsländer` (default: the
    /// name).
    #[serde(default)]
    pub label: Option<String>,
    /// What it holds, in words, for the workbooks' notes (e.g. the eight countries).
    #[serde(default)]
    pub note: Option<String>,
}

/// One count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct Indicator {
    /// The indicator's name in the long outputs: lower-case letters, digits and `_`.
    pub name: String,
    /// The heading in the workbooks.
    pub label: String,
    /// Which rows it counts (an expression); `true` counts the whole population.
    pub when: String,
    /// Another indicator this one is a part of. Its rows are counted among that indicator's rows
    /// only, so the relation holds by construction, and the disclosure audit uses it.
    #[serde(default)]
    pub subset_of: Option<String>,
    /// Indicators no person is counted in together with this one, where the expressions do not
    /// show it themselves (those that do, such as `x is null` beside a comparison of `x`, are
    /// found without it). Both must be parts of one indicator (`subset-of`, directly or through
    /// others): the audit then knows that their cells add up to no more than that indicator's,
    /// as an attacker who reads the definition does. A row counted in both stops the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::ReportDefinition;

    /// `schemas/report.schema.json` is generated from these structs. Run with `PSEUDAGG_BLESS=1`
    /// to rewrite it after a change.
    #[test]
    fn committed_json_schema_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schemas/report.schema.json"
        );
        let fresh =
            serde_json::to_string_pretty(&schemars::schema_for!(ReportDefinition)).unwrap() + "\n";
        pseudagg_core::check_generated_file(path, &fresh).unwrap();
    }
}
