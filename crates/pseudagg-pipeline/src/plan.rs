use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema as ArrowSchema};
use pseudagg_core::{
    ColumnClass, ColumnSpec, ColumnType, Error, Location, Problem, Problems, Result, Schema,
    is_plain_identifier, parse_known,
};
use pseudagg_io::{arrow_field, parse_bool, parse_date, sha256_hex};

use crate::definition::PipelineDefinition;
use crate::transform::Banding;

/// The value a filter compares with, parsed for the column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FilterValue {
    Bool(bool),
    Str(String),
    Date(i32),
}

/// A checked pipeline, ready to run: what the user wrote, resolved against the input schema.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The definition as written.
    pub definition: PipelineDefinition,
    /// SHA-256 of the definition file, for the manifest.
    pub definition_sha256: String,
    /// The input schema, with the definition's extra columns.
    pub schema: Schema,
    pub(crate) filter: Option<(usize, FilterValue)>,
    pub(crate) pseudonymise: Vec<(usize, String)>,
    pub(crate) keep: Vec<usize>,
    pub(crate) generalise: Vec<(usize, String, Banding)>,
    pub(crate) output_schema: Arc<ArrowSchema>,
    pub(crate) partition_output_index: usize,
    pub(crate) partition_values: Vec<String>,
    /// Output indices of the quasi-identifiers, in the order they are given up, and `min-k`.
    pub(crate) k_anonymity: Option<(Vec<usize>, u32)>,
}

impl Plan {
    /// The input columns (by index) the output is made of: pseudonymised, kept and generalised.
    pub(crate) fn output_inputs(&self) -> impl Iterator<Item = usize> + '_ {
        self.pseudonymise
            .iter()
            .map(|(c, _)| *c)
            .chain(self.keep.iter().copied())
            .chain(self.generalise.iter().map(|(c, _, _)| *c))
    }

    /// The input columns (by index) a run reads: the filter's, the partition's, and those the
    /// output is made of.
    #[must_use]
    pub fn read_columns(&self) -> Vec<usize> {
        let mut columns: Vec<usize> = self
            .filter
            .iter()
            .map(|(c, _)| *c)
            .chain(self.output_inputs())
            .chain(self.schema.index_of(&self.definition.partition_by))
            .collect();
        columns.sort_unstable();
        columns.dedup();
        columns
    }

    /// Reads and checks a definition file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Self::from_toml(&text, path)
    }

    /// Parses and checks a definition; `path` names it in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let fail = |problems: Problems| Error::Definition {
            file: path.to_owned(),
            problems,
        };
        let (definition, problems) =
            parse_known::<PipelineDefinition>(text, "schemas/pipeline.schema.json");
        let Some(definition) = definition else {
            return Err(fail(problems));
        };
        match Self::check(definition, text, problems) {
            Ok(plan) => Ok(plan),
            Err(problems) => Err(fail(problems)),
        }
    }

    #[allow(clippy::too_many_lines)] // one list of rules, read top to bottom
    fn check(
        definition: PipelineDefinition,
        text: &str,
        mut problems: Problems,
    ) -> std::result::Result<Self, Problems> {
        let d = &definition;
        let mut push =
            |key: &str, message: String| problems.push(Problem::new(Location::key(key), message));

        let name_ok = d.name.len() <= 32
            && d.name.starts_with(|c: char| c.is_ascii_lowercase())
            && d.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            push(
                "name",
                "must be 1 to 32 lower-case letters, digits or hyphens, starting with a letter"
                    .into(),
            );
        }

        let Some(base) = Schema::builtin(&d.input_schema) else {
            let known: Vec<_> = Schema::builtin_names().collect();
            push(
                "input-schema",
                format!("is not a known schema; known are: {}", known.join(", ")),
            );
            return Err(problems);
        };
        let mut extra = Vec::new();
        for (name, class) in &d.extra_columns {
            let key = format!("extra-columns.{name}");
            if !is_plain_identifier(name) {
                push(
                    &key,
                    "a column name is lower-case ASCII letters, digits and `_`".into(),
                );
            } else if base.column(name).is_some() {
                push(
                    &key,
                    format!(
                        "`{name}` is already a column of `{}`; map only columns the schema does not know",
                        base.name
                    ),
                );
            } else {
                extra.push(ColumnSpec::extra(name, *class));
            }
        }
        let schema = base.with_extra_columns(extra);
        let column =
            |key: &str, name: &str, problems: &mut Problems| -> Option<(usize, ColumnSpec)> {
                if let Some(i) = schema.index_of(name) {
                    Some((i, schema.columns[i].clone()))
                } else {
                    problems.push(Problem::new(
                        Location::key(key),
                        schema.unknown_column(name),
                    ));
                    None
                }
            };

        let mut outputs: HashSet<String> = HashSet::new();
        let mut claim = |key: &str, name: &str, problems: &mut Problems| {
            if !is_plain_identifier(name) {
                problems.push(Problem::new(
                    Location::key(key),
                    "an output column name is lower-case ASCII letters, digits and `_`",
                ));
            } else if !outputs.insert(name.to_owned()) {
                problems.push(Problem::new(
                    Location::key(key),
                    format!("the output already has a column `{name}`"),
                ));
            }
        };

        let mut filter = None;
        if let Some(f) = &d.filter
            && let Some((i, spec)) = column("filter.column", &f.column, &mut problems)
        {
            if !matches!(
                spec.class,
                ColumnClass::Flag | ColumnClass::Attribute | ColumnClass::Org
            ) {
                problems.push(Problem::new(
                    Location::key("filter.column"),
                    format!(
                        "`{}` is {} data (class {}); filter on a flag, attribute or org column",
                        spec.name, spec.class, spec.class
                    ),
                ));
            }
            let value = match spec.ty {
                ColumnType::Bool => parse_bool(&f.equals).map(FilterValue::Bool),
                ColumnType::Date => parse_date(&f.equals).map(FilterValue::Date),
                ColumnType::Str => Some(FilterValue::Str(f.equals.clone())),
            };
            match value {
                Some(v) => filter = Some((i, v)),
                None => problems.push(Problem::new(
                    Location::key("filter.equals"),
                    format!(
                        "is not a {} value (write J or N for a flag, TT.MM.JJJJ for a date)",
                        spec.ty
                    ),
                )),
            }
        }

        let mut fields = Vec::new();
        let mut pseudonymise = Vec::new();
        for (n, p) in d.pseudonymise.iter().enumerate() {
            let key = format!("pseudonymise[{n}]");
            if let Some((i, spec)) = column(&format!("{key}.column"), &p.column, &mut problems) {
                if spec.class != ColumnClass::Identifier || spec.ty != ColumnType::Str {
                    problems.push(Problem::new(
                        Location::key(format!("{key}.column")),
                        format!(
                            "`{}` is class {} ({}); only text identifiers are pseudonymised",
                            spec.name, spec.class, spec.ty
                        ),
                    ));
                }
                pseudonymise.push((i, p.output.clone()));
            }
            claim(&format!("{key}.as"), &p.output, &mut problems);
            fields.push(Field::new(&p.output, DataType::Utf8, false));
        }

        let mut keep = Vec::new();
        let mut partition_output_index = None;
        let mut partition_values = Vec::new();
        for (n, name) in d.keep.iter().enumerate() {
            let key = format!("keep[{n}]");
            let Some((i, spec)) = column(&key, name, &mut problems) else {
                continue;
            };
            if !spec.class.may_be_published() {
                let why = match spec.class {
                    ColumnClass::Identifier => format!(
                        "`{name}` is an identifier and may not be kept; pseudonymise it instead"
                    ),
                    ColumnClass::Personal => format!(
                        "`{name}` is personal data and may not be kept; drop it, or generalise it"
                    ),
                    ColumnClass::Staff => {
                        format!("`{name}` is personal data of staff and may not be kept; drop it")
                    }
                    ColumnClass::FreeText => format!(
                        "`{name}` is free text that may name anyone and may not be kept; drop it"
                    ),
                    _ => format!(
                        "`{name}` is a selection flag: it is used to filter and then dropped"
                    ),
                };
                problems.push(Problem::new(Location::key(&key), why));
                continue;
            }
            claim(&key, name, &mut problems);
            if *name == d.partition_by {
                partition_output_index = Some(fields.len());
                partition_values = spec.values.clone().unwrap_or_default();
            }
            fields.push(arrow_field(&spec));
            keep.push(i);
        }

        let mut generalise = Vec::new();
        for (n, g) in d.generalise.iter().enumerate() {
            let key = format!("generalise[{n}]");
            if let Some((i, spec)) = column(&format!("{key}.column"), &g.column, &mut problems) {
                if spec.ty != ColumnType::Date {
                    problems.push(Problem::new(
                        Location::key(format!("{key}.column")),
                        format!(
                            "`{}` is {}, but a band is computed from a date",
                            spec.name, spec.ty
                        ),
                    ));
                }
                if spec.class == ColumnClass::Identifier {
                    problems.push(Problem::new(
                        Location::key(format!("{key}.column")),
                        "an identifier is pseudonymised or dropped, not generalised",
                    ));
                }
                match (&g.age_band, &g.days_band) {
                    (Some(b), None) => {
                        if b.width == 0
                            || b.highest <= b.lowest
                            || (b.highest - b.lowest) % b.width != 0
                            || b.highest > 150
                        {
                            problems.push(Problem::new(
                                Location::key(format!("{key}.age-band")),
                                "needs width > 0, lowest < highest <= 150, and highest - lowest a multiple of width",
                            ));
                        }
                        generalise.push((i, g.output.clone(), Banding::Age(b.clone())));
                    }
                    (None, Some(b)) => {
                        if b.from.first() != Some(&0)
                            || b.from.windows(2).any(|w| w[0] >= w[1])
                            || b.from.last().is_some_and(|&l| l > 36_500)
                        {
                            problems.push(Problem::new(
                                Location::key(format!("{key}.days-band.from")),
                                "needs rising whole days from 0, at most 36500, for example [0, 91, 365]",
                            ));
                        }
                        generalise.push((i, g.output.clone(), Banding::Days(b.clone())));
                    }
                    _ => problems.push(Problem::new(
                        Location::key(&key),
                        "needs exactly one of `age-band` (a birth date) and `days-band` (an event date)",
                    )),
                }
            }
            claim(&format!("{key}.as"), &g.output, &mut problems);
            fields.push(Field::new(&g.output, DataType::Utf8, true));
        }

        match (partition_output_index, schema.column(&d.partition_by)) {
            (_, None) => problems.push(Problem::new(
                Location::key("partition-by"),
                schema.unknown_column(&d.partition_by),
            )),
            (None, Some(_)) => problems.push(Problem::new(
                Location::key("partition-by"),
                format!("`{}` must also be listed in `keep`", d.partition_by),
            )),
            (Some(_), Some(spec))
                if spec.class != ColumnClass::Org
                    || spec.nullable
                    || spec.ty != ColumnType::Str =>
            {
                problems.push(Problem::new(
                    Location::key("partition-by"),
                    format!("`{}` is not a non-empty org column; partition by the recipient's unit, such as `rd`", spec.name),
                ));
            }
            _ => {}
        }
        let mut k_anonymity = None;
        if let Some(k) = &d.k_anonymity {
            let mut qi = Vec::new();
            for (n, name) in k.quasi_identifiers.iter().enumerate() {
                let key = format!("k-anonymity.quasi-identifiers[{n}]");
                match fields.iter().position(|f| f.name() == name) {
                    None => push_problem(
                        &mut problems,
                        &key,
                        format!("`{name}` is not an output column"),
                    ),
                    Some(i) if d.pseudonymise.iter().any(|p| &p.output == name) => {
                        let _ = i;
                        push_problem(
                            &mut problems,
                            &key,
                            "a pseudonym is unique per person and is no quasi-identifier".into(),
                        );
                    }
                    Some(_) if *name == d.partition_by => push_problem(
                        &mut problems,
                        &key,
                        "the partition column is the same in every row of a dataset".into(),
                    ),
                    Some(i) if qi.contains(&i) => {
                        push_problem(&mut problems, &key, "is listed twice".into());
                    }
                    Some(i) => qi.push(i),
                }
            }
            if k.quasi_identifiers.is_empty() {
                push_problem(
                    &mut problems,
                    "k-anonymity.quasi-identifiers",
                    "names no column".into(),
                );
            }
            if !(2..=100).contains(&k.min_k) {
                push_problem(
                    &mut problems,
                    "k-anonymity.min-k",
                    "must be 2 to 100".into(),
                );
            }
            // A blanked value is an empty cell, so these columns must allow one.
            for &i in &qi {
                let f = fields[i].clone();
                fields[i] = f.with_nullable(true);
            }
            k_anonymity = Some((qi, k.min_k));
        }

        check_linking_columns(d, &schema, &mut problems);
        check_free_text_columns(d, &schema, &mut problems);

        if d.pseudonymise.is_empty() && d.keep.is_empty() {
            problems.push(Problem::new(
                Location::default(),
                "the pipeline keeps no column",
            ));
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            definition_sha256: sha256_hex(text.as_bytes()),
            schema,
            filter,
            pseudonymise,
            keep,
            generalise,
            output_schema: Arc::new(ArrowSchema::new(fields)),
            partition_output_index: partition_output_index.expect("checked above"),
            partition_values,
            k_anonymity,
            definition,
        })
    }

    /// The Arrow schema of the output.
    #[must_use]
    pub fn output_schema(&self) -> Arc<ArrowSchema> {
        self.output_schema.clone()
    }
}

/// A kept text column must be an enumeration or follow a pattern: a column that takes any text
/// publishes whatever a case worker typed into it, a name or a phone number included, and neither
/// the input check nor `verify` could tell it from a category.
fn check_free_text_columns(d: &PipelineDefinition, schema: &Schema, problems: &mut Problems) {
    for (n, name) in d.keep.iter().enumerate() {
        let Some(spec) = schema.column(name) else {
            continue;
        };
        // Sensitive classes are refused as such, with their own message.
        if d.extra_columns.contains_key(name) && spec.class.may_be_published() {
            push_problem(
                problems,
                &format!("keep[{n}]"),
                format!(
                    "`{name}` is an extra column: it may be filtered on or dropped, not published, because nothing says which values it may hold and `verify` checks every published column against the schema `{}`; add it to schemas/{}.toml with its allowed values or a pattern, or drop it",
                    schema.name, schema.name
                ),
            );
        } else if spec.class.may_be_published()
            && spec.ty == ColumnType::Str
            && spec.values.is_none()
            && spec.pattern.is_none()
        {
            push_problem(
                problems,
                &format!("keep[{n}]"),
                format!(
                    "`{name}` takes any text: whatever was typed into it, a name or a phone number, would be published; its allowed values or a pattern belong in the schema `{}` (schemas/{}.toml), or drop it",
                    schema.name, schema.name
                ),
            );
        }
    }
}

/// Columns that would undo the pseudonyms' month binding or the blanking: an exact date kept as it
/// is, and a column that reveals a quasi-identifier without being one before it.
fn check_linking_columns(d: &PipelineDefinition, schema: &Schema, problems: &mut Problems) {
    let qi: &[String] = d
        .k_anonymity
        .as_ref()
        .map_or(&[], |k| k.quasi_identifiers.as_slice());
    for (n, name) in d.keep.iter().enumerate() {
        let Some(spec) = schema.column(name) else {
            continue;
        };
        if spec.ty == ColumnType::Date && !qi.contains(name) {
            push_problem(
                problems,
                &format!("keep[{n}]"),
                format!(
                    "`{name}` is an exact date: it stays the same from month to month and links a person's records of two months although their pseudonyms differ; generalise it with a `days-band` (see pipelines/vkb.toml), or name it in `k-anonymity.quasi-identifiers`"
                ),
            );
        }
    }
    for (p, q) in qi.iter().enumerate() {
        for (n, name) in d.keep.iter().enumerate() {
            let Some(spec) = schema.column(name) else {
                continue;
            };
            if !spec.reveals.contains(q) {
                continue;
            }
            let before = qi[..p].contains(name);
            if !before {
                push_problem(
                    problems,
                    &format!("keep[{n}]"),
                    format!(
                        "`{name}` gives away the quasi-identifier `{q}` (the schema `{}` says `{name}` reveals it), so blanking `{q}` alone would not hide it; list `{name}` among the quasi-identifiers before `{q}`, or drop it",
                        schema.name
                    ),
                );
            }
        }
    }
}

fn push_problem(problems: &mut Problems, key: &str, message: String) {
    problems.push(Problem::new(Location::key(key), message));
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = include_str!("../../../pipelines/vkb.toml");

    /// `text` with its quasi-identifiers replaced by `list` (a TOML array).
    fn with_qi(text: &str, list: &str) -> String {
        let start = text.find("quasi-identifiers = [").unwrap();
        let end = start + text[start..].find(']').unwrap() + 1;
        format!(
            "{}quasi-identifiers = {list}{}",
            &text[..start],
            &text[end..]
        )
    }

    const QI_FIVE: &str =
        r#"["staatsangehoerigkeit", "altersgruppe", "geschlecht", "ge_nr", "agentur_nr"]"#;

    fn problems_of(text: &str) -> String {
        Plan::from_toml(text, Path::new("p.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn quasi_identifiers_must_be_plain_output_columns() {
        let text = with_qi(
            GOOD,
            r#"["pseudonym", "rd", "vorname", "geschlecht", "geschlecht"]"#,
        )
        .replace("min-k = 3", "min-k = 1");
        let p = problems_of(&text);
        for expected in [
            "quasi-identifiers[1]`: a pseudonym is unique",
            "quasi-identifiers[2]`: the partition column",
            "quasi-identifiers[3]`: `vorname` is not an output column",
            "quasi-identifiers[5]`: is listed twice",
            "min-k`: must be 2 to 100",
        ] {
            assert!(p.contains(expected), "{expected} missing in {p}");
        }
        // Blanked values are empty cells: the shipped pipeline's quasi-identifiers allow them.
        let plan = Plan::from_toml(GOOD, Path::new("vkb.toml")).unwrap();
        let schema = plan.output_schema();
        assert!(schema.field_with_name("geschlecht").unwrap().is_nullable());
        assert!(!schema.field_with_name("rd").unwrap().is_nullable());
    }

    #[test]
    fn an_exact_date_is_generalised_or_a_quasi_identifier() {
        // Kept as it is, a calendar day links a person's records of two months.
        let text = with_qi(GOOD, QI_FIVE).replace("keep = [", "keep = [\"zugang_datum\", ");
        let text = text.replace(
            "[[generalise]]\ncolumn = \"zugang_datum\"\nas = \"dauer_seit_zugang\"\ndays-band = { from = [0, 91, 182, 365, 730] }\n",
            "",
        );
        let err = problems_of(&text);
        assert!(
            err.contains("keep[1]`: `zugang_datum` is an exact date"),
            "{err}"
        );
        // Named as a quasi-identifier, it may stay (k-anonymity blanks it where it singles out).
        let text = text.replace(
            "quasi-identifiers = [",
            r#"quasi-identifiers = ["zugang_datum", "#,
        );
        Plan::from_toml(&text, Path::new("p.toml")).unwrap();
    }

    #[test]
    fn a_column_that_reveals_a_quasi_identifier_must_be_one_before_it() {
        // ge_nr's first three digits are the agency: blanking agentur_nr alone hides nothing.
        let good = with_qi(GOOD, QI_FIVE);
        let dropped = good.replace(r#""ge_nr", "agentur_nr"]"#, r#""agentur_nr"]"#);
        let err = problems_of(&dropped);
        assert!(
            err.contains("keep[3]`: `ge_nr` gives away the quasi-identifier `agentur_nr`"),
            "{err}"
        );
        let after = good.replace(r#""ge_nr", "agentur_nr"]"#, r#""agentur_nr", "ge_nr"]"#);
        assert!(problems_of(&after).contains("before `agentur_nr`"));
        // Without agentur_nr among the quasi-identifiers, ge_nr is no problem of this kind.
        let none = good.replace(r#", "ge_nr", "agentur_nr"]"#, "]");
        Plan::from_toml(&none, Path::new("p.toml")).unwrap();
    }

    #[test]
    fn a_generalisation_names_exactly_one_band() {
        let both = GOOD.replace(
            "days-band = { from = [0, 14] }",
            "days-band = { from = [0, 14] }\nage-band = { width = 5, lowest = 15, highest = 65 }",
        );
        assert!(problems_of(&both).contains("needs exactly one of `age-band`"));
        let bad = GOOD.replace("from = [0, 14]", "from = [3, 2]");
        assert!(problems_of(&bad).contains("days-band.from`: needs rising whole days from 0"));
    }

    #[test]
    fn shipped_vkb_pipeline_is_valid() {
        let plan = Plan::from_toml(GOOD, Path::new("vkb.toml")).unwrap();
        assert_eq!(plan.definition.name, "vkb");
        let names: Vec<_> = plan
            .output_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("pseudonym"));
        assert!(names.contains(&"altersgruppe".to_owned()));
        // No calendar day of an event is published, only durations.
        for f in plan.output_schema().fields() {
            assert_ne!(f.data_type(), &DataType::Date32, "{} is a date", f.name());
        }
        for name in &names {
            if let Some(spec) = plan.schema.column(name) {
                assert!(spec.class.may_be_published(), "{name} would be published");
            }
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = GOOD
            .replace("keep = [", "keep = [\"vorname\", \"fachkraft_name\", \"vermerk\", \"kundennummer\", \"nonsense\", ")
            .replace("name = \"vkb\"", "name = \"VKB!\"\ncolour = \"blue\"");
        let err = problems_of(&text);
        for expected in [
            "`vorname` is personal data",
            "`fachkraft_name` is personal data of staff",
            "`vermerk` is free text",
            "`kundennummer` is an identifier",
            "`nonsense` is not a column",
            "at `name`",
            "at `colour`: is not a known key",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert!(err.contains("(7 problems)"), "{err}");
    }

    #[test]
    fn pseudonymising_a_non_identifier_is_refused() {
        let text = GOOD.replace("column = \"kundennummer\"", "column = \"vorname\"");
        assert!(problems_of(&text).contains("only text identifiers are pseudonymised"));
    }

    #[test]
    fn flag_may_not_be_kept_and_filter_value_must_fit() {
        let text = GOOD
            .replace("keep = [", "keep = [\"vkb_kennzeichen\", ")
            .replace("equals = \"J\"", "equals = \"yes\"");
        let err = problems_of(&text);
        assert!(err.contains("selection flag"), "{err}");
        assert!(err.contains("at `filter.equals`"), "{err}");
    }

    #[test]
    fn unknown_schema_and_bad_age_band() {
        let err = problems_of(
            &GOOD.replace("input-schema = \"verbis-vkb\"", "input-schema = \"verbis\""),
        );
        assert!(err.contains("verbis-vkb, opds-person"), "{err}");
        let err = problems_of(&GOOD.replace("width = 5", "width = 7"));
        assert!(err.contains("age-band"), "{err}");
    }

    #[test]
    fn extra_columns_are_mapped_and_then_obey_their_class() {
        let text = GOOD.replace(
            "keep = [",
            "[extra-columns]\nbemerkung_intern = \"free-text\"\nregion_code = \"org\"\n\nkeep = [",
        );
        // TOML tables end at the next table header, so move keep before it.
        let plan = Plan::from_toml(&reorder_keep_first(&text), Path::new("p.toml")).unwrap();
        assert!(plan.schema.column("bemerkung_intern").is_some());
        let leaky = reorder_keep_first(&text.replace("keep = [", "keep = [\"bemerkung_intern\", "));
        assert!(problems_of(&leaky).contains("`bemerkung_intern` is free text"));
    }

    /// Issue 18 §6: a kept text column that takes any text would publish what a case worker typed
    /// into it. It must be an enumeration or follow a pattern in the schema; an extra column,
    /// which has neither, may not be kept at all.
    #[test]
    fn a_kept_column_that_takes_any_text_is_refused() {
        let text = reorder_keep_first(&GOOD.replace(
            "keep = [",
            "[extra-columns]\nregion_code = \"org\"\n\nkeep = [\"region_code\", ",
        ));
        let p = problems_of(&text);
        assert!(
            p.contains("keep[1]`: `region_code` is an extra column: it may be filtered on or dropped, not published"),
            "{p}"
        );
        // A schema column without values or pattern: the opDs schema's `massnahme`.
        let opds = GOOD.replace(
            "input-schema = \"verbis-vkb\"",
            "input-schema = \"opds-person\"",
        );
        let p = problems_of(&opds);
        assert!(
            p.contains("`massnahme` takes any text")
                && p.contains("belong in the schema `opds-person` (schemas/opds-person.toml)"),
            "{p}"
        );
        // The shipped pipeline keeps only enumerated or patterned text columns.
        Plan::from_toml(GOOD, Path::new("vkb.toml")).unwrap();
    }

    /// Moves the `keep` array to the top of a definition, so it is not read as part of a table.
    fn reorder_keep_first(text: &str) -> String {
        let start = text.find("keep = [").unwrap();
        let end = start + text[start..].find(']').unwrap() + 1;
        let keep = &text[start..end];
        format!("{keep}\n{}{}", &text[..start], &text[end..])
    }
}
