use std::fmt;

use serde::{Deserialize, Serialize};

/// The type of a column, as the extract holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColumnType {
    /// Text; Parquet `Utf8`.
    Str,
    /// A calendar day; CSV `TT.MM.JJJJ` or `JJJJ-MM-TT`, Parquet `Date32`.
    Date,
    /// CSV `J` / `N`, Parquet `Boolean`.
    Bool,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Str => "str",
            Self::Date => "date",
            Self::Bool => "bool",
        })
    }
}

/// What a column is, for data protection. The class decides what may happen to it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ColumnClass {
    /// Directly identifies a person: pseudonymised or dropped.
    Identifier,
    /// Personal data of the customer: dropped or generalised.
    Personal,
    /// Personal data of employees: dropped.
    Staff,
    /// Notes typed by staff, may contain anything: dropped.
    FreeText,
    /// Organisational unit (RD, agency, gE): kept.
    Org,
    /// Case attribute needed for evaluation or reporting: kept.
    Attribute,
    /// Selection flag: used to filter, then dropped.
    Flag,
    /// The Datenstand: checked and kept.
    Meta,
}

impl ColumnClass {
    /// May a value of this class appear in an output as it is?
    #[must_use]
    pub fn may_be_published(self) -> bool {
        matches!(self, Self::Org | Self::Attribute | Self::Meta)
    }

    /// Is this class about a person (customer or staff), so that its values must never be
    /// shown in a log, a message or an output?
    #[must_use]
    pub fn is_sensitive(self) -> bool {
        matches!(
            self,
            Self::Identifier | Self::Personal | Self::Staff | Self::FreeText
        )
    }
}

impl fmt::Display for ColumnClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Identifier => "identifier",
            Self::Personal => "personal",
            Self::Staff => "staff",
            Self::FreeText => "free-text",
            Self::Org => "org",
            Self::Attribute => "attribute",
            Self::Flag => "flag",
            Self::Meta => "meta",
        })
    }
}

/// One column of an input schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ColumnSpec {
    /// Lower-case ASCII name, as in the extract's header.
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub class: ColumnClass,
    /// May the value be empty (CSV) or null (Parquet)?
    #[serde(default)]
    pub nullable: bool,
    /// A regular expression every non-null value must match in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The only values allowed, if the column is an enumeration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// No two rows may hold the same value (one row per customer).
    #[serde(default)]
    pub unique: bool,
    /// Columns whose value this column's value gives away (a functional dependency): `ge_nr`
    /// reveals `agentur_nr`, whose number is its first three digits. Blanking a revealed column
    /// helps only if the revealing one is blanked with it, so k-anonymity treats both as one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reveals: Vec<String>,
    /// What the column holds.
    #[serde(default)]
    pub description: String,
}

impl ColumnSpec {
    /// A nullable text column of the given class, for columns a pipeline maps explicitly.
    #[must_use]
    pub fn extra(name: &str, class: ColumnClass) -> Self {
        Self {
            name: name.to_owned(),
            ty: ColumnType::Str,
            class,
            nullable: true,
            pattern: None,
            values: None,
            unique: false,
            reveals: Vec::new(),
            description: "extra column mapped by the pipeline".to_owned(),
        }
    }
}

/// An input schema: the contract of one extract kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Schema {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub columns: Vec<ColumnSpec>,
}

const BUILTIN: &[(&str, &str)] = &[
    (
        "verbis-vkb",
        include_str!("../../../schemas/verbis-vkb.toml"),
    ),
    (
        "opds-person",
        include_str!("../../../schemas/opds-person.toml"),
    ),
];

impl Schema {
    /// The names of the schemas compiled into pseudagg.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(name, _)| *name)
    }

    /// A schema compiled into pseudagg, by name.
    #[must_use]
    pub fn builtin(name: &str) -> Option<Self> {
        BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, text)| {
            Self::from_toml(text)
                .unwrap_or_else(|e| panic!("built-in schema {name} is broken: {e}"))
        })
    }

    /// Parses and checks a schema.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let schema: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        schema.check()?;
        Ok(schema)
    }

    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for c in &self.columns {
            if !crate::is_plain_identifier(&c.name) {
                return Err(format!("column name `{}` is not lower-case ASCII", c.name));
            }
            if !seen.insert(&c.name) {
                return Err(format!("column `{}` is declared twice", c.name));
            }
            if let Some(p) = &c.pattern {
                regex::Regex::new(p)
                    .map_err(|e| format!("column `{}`: bad pattern: {e}", c.name))?;
                if c.ty != ColumnType::Str {
                    return Err(format!("column `{}`: a pattern needs type str", c.name));
                }
            }
        }
        for c in &self.columns {
            for r in &c.reveals {
                if r == &c.name || self.column(r).is_none() {
                    return Err(format!(
                        "column `{}`: reveals `{r}`, which is not another column of the schema",
                        c.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The column called `name`.
    #[must_use]
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The position of the column called `name`.
    #[must_use]
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The message for a column name the schema does not know, with the nearest known name when
    /// one is close ("did you mean `staatsangehoerigkeit`?"). Column names are no data.
    #[must_use]
    pub fn unknown_column(&self, name: &str) -> String {
        let nearest = self
            .columns
            .iter()
            .map(|c| (strsim::damerau_levenshtein(name, &c.name), &c.name))
            .min();
        let limit = (name.chars().count() / 4).max(2);
        match nearest {
            Some((d, near)) if d <= limit => format!(
                "`{name}` is not a column of the schema `{}`; did you mean `{near}`?",
                self.name
            ),
            _ => format!("`{name}` is not a column of the schema `{}`", self.name),
        }
    }

    /// The schema with further columns that a pipeline maps to a class explicitly.
    #[must_use]
    pub fn with_extra_columns(mut self, extra: impl IntoIterator<Item = ColumnSpec>) -> Self {
        self.columns.extend(extra);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_column_suggests_the_nearest() {
        let s = Schema::builtin("verbis-vkb").unwrap();
        assert_eq!(
            s.unknown_column("staatsangehorigkeit"),
            "`staatsangehorigkeit` is not a column of the schema `verbis-vkb`; did you mean `staatsangehoerigkeit`?"
        );
        assert!(
            s.unknown_column("gender").ends_with("`verbis-vkb`"),
            "nothing near"
        );
    }

    #[test]
    fn builtin_schemas_load() {
        for name in Schema::builtin_names() {
            let schema = Schema::builtin(name).expect("listed schema loads");
            assert_eq!(schema.name, name);
            assert!(schema.column("datenstand").is_some());
            assert_eq!(
                schema.column("datenstand").unwrap().class,
                ColumnClass::Meta
            );
        }
    }

    #[test]
    fn every_sensitive_column_of_the_contract_is_classed_so() {
        let vkb = Schema::builtin("verbis-vkb").unwrap();
        for name in [
            "kundennummer",
            "vorname",
            "nachname",
            "geburtsdatum",
            "strasse",
            "hausnummer",
            "plz",
            "ort",
            "telefon",
            "email",
            "team_nr",
            "fachkraft_id",
            "fachkraft_name",
            "teamleitung_id",
            "teamleitung_name",
            "vermerk",
        ] {
            assert!(vkb.column(name).unwrap().class.is_sensitive(), "{name}");
        }
        let opds = Schema::builtin("opds-person").unwrap();
        for name in [
            "kundennummer",
            "bg_nummer",
            "vorname",
            "nachname",
            "fachkraft_name",
        ] {
            assert!(opds.column(name).unwrap().class.is_sensitive(), "{name}");
        }
    }

    #[test]
    fn rejects_unknown_keys_and_duplicate_columns() {
        let unknown = "name='x'\n[[columns]]\nname='a'\ntype='str'\nclass='org'\ncolour='red'\n";
        assert!(Schema::from_toml(unknown).is_err());
        let twice = "name='x'\n[[columns]]\nname='a'\ntype='str'\nclass='org'\n[[columns]]\nname='a'\ntype='str'\nclass='org'\n";
        assert!(Schema::from_toml(twice).unwrap_err().contains("twice"));
    }
}
