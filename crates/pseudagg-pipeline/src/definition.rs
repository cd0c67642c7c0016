use std::collections::BTreeMap;

use pseudagg_core::ColumnClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pseudonymisation pipeline, as written in `pipelines/*.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct PipelineDefinition {
    /// The pipeline's name and the purpose in the pseudonym derivation (`pseudagg:v1:{name}:{month}`):
    /// lower-case letters, digits and hyphens. Outputs go to `OUT/{name}/{month}/`.
    pub name: String,
    /// What the pipeline is for, in a sentence.
    #[serde(default)]
    pub description: String,
    /// The input schema the extract must match, for example `verbis-vkb`.
    pub input_schema: String,
    /// Columns the extract may have beyond the schema, each mapped explicitly to a class. They are
    /// read as nullable text. An unmapped unknown column stops the run.
    #[serde(default)]
    pub extra_columns: BTreeMap<String, ColumnClass>,
    /// Which rows are kept; without a filter every row is kept.
    #[serde(default)]
    pub filter: Option<Filter>,
    /// Identifiers replaced by a keyed pseudonym.
    #[serde(default)]
    pub pseudonymise: Vec<Pseudonymise>,
    /// Personal fields replaced by a coarser value.
    #[serde(default)]
    pub generalise: Vec<Generalise>,
    /// The columns that are kept as they are, in output order; only classes org, attribute and meta.
    /// Every column not named here, in `pseudonymise` or in `generalise` is dropped.
    pub keep: Vec<String>,
    /// The kept org column that splits the output into one dataset per value (`rd`): each
    /// recipient's folder holds only its own rows.
    pub partition_by: String,
    /// Re-identification control: within each partition's dataset, every combination of the
    /// quasi-identifiers is shared by at least `min-k` rows; values are blanked until it is.
    #[serde(default)]
    pub k_anonymity: Option<KAnonymity>,
}

/// k-anonymity of each partition's dataset over the columns an outsider could know of a person.
///
/// Where a combination of the quasi-identifiers is shared by fewer than `min-k` rows of a partition,
/// the first quasi-identifier of those rows is blanked (set empty); where that is not enough, the
/// second too, and so on. Rows that are still in too small a group when every quasi-identifier is
/// blank join, whole group by whole group, the smallest other groups until the blank group is large
/// enough. A partition with fewer than `min-k` rows in all stops the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct KAnonymity {
    /// Output columns, in the order they are given up (the first is blanked first).
    pub quasi_identifiers: Vec<String>,
    /// The smallest group size allowed, 2 to 100.
    pub min_k: u32,
}

/// Keeps the rows whose `column` equals `equals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct Filter {
    /// A flag column, for example `vkb_kennzeichen`.
    pub column: String,
    /// The value as the CSV writes it (`J` or `N` for a flag).
    pub equals: String,
}

/// Replaces an identifier by its keyed pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct Pseudonymise {
    /// An identifier column, for example `kundennummer`.
    pub column: String,
    /// The name of the pseudonym column in the output.
    #[serde(rename = "as")]
    pub output: String,
}

/// Replaces a date by a coarser value: exactly one of `age-band` and `days-band`.
///
/// An exact date is a quasi-identifier that stays the same from month to month, so it would link a
/// person's records of two months although their pseudonyms differ. Banded, relative to the report
/// month, it gives the reviewer the duration and no calendar day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct Generalise {
    /// A date column, for example `geburtsdatum`.
    pub column: String,
    /// The name of the generalised column in the output.
    #[serde(rename = "as")]
    pub output: String,
    /// Age on the last day of the report month, in bands of years (for a birth date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_band: Option<AgeBand>,
    /// Days from the date to the last day of the report month, in bands (for an event date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_band: Option<DaysBand>,
}

/// Days from a date to the last day of the report month, in bands that start at `from`:
/// `from = [0, 91, 365]` gives `0-90 Tage`, `91-364 Tage` and `365 Tage und mehr`. A date after
/// the month's end gives `nach Monatsende`; an empty date stays empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct DaysBand {
    /// The first day of each band, rising, starting with 0; the last band is open-ended.
    pub from: Vec<u32>,
}

/// Age on the last day of the report month, in bands: `unter {lowest}`, `{a}-{a+width-1}`, ...,
/// `{highest} und aelter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(deny_unknown_fields)]
pub struct AgeBand {
    /// Years per band.
    pub width: u32,
    /// Every younger age falls into one band `unter {lowest}`.
    pub lowest: u32,
    /// Every older age falls into one band `{highest} und aelter`; `highest - lowest` is a multiple
    /// of `width`.
    pub highest: u32,
}

#[cfg(test)]
mod tests {
    use super::PipelineDefinition;

    /// `schemas/pipeline.schema.json` is generated from these structs; editors use it to check
    /// definitions. Run with `PSEUDAGG_BLESS=1` to rewrite it after a change.
    #[test]
    fn committed_json_schema_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schemas/pipeline.schema.json"
        );
        let fresh = serde_json::to_string_pretty(&schemars::schema_for!(PipelineDefinition))
            .unwrap()
            + "\n";
        pseudagg_core::check_generated_file(path, &fresh).unwrap();
    }
}
