//! One cell at a time: parsing text into typed values and checking them against a column's spec.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{BooleanBuilder, Date32Builder, StringBuilder};
use arrow_schema::{DataType, Field, Schema as ArrowSchema};
use chrono::NaiveDate;
use pseudagg_core::{ColumnSpec, ColumnType, Schema};
use regex::Regex;

/// The Arrow field of a column: `Utf8`, `Date32` or `Boolean`.
#[must_use]
pub fn arrow_field(spec: &ColumnSpec) -> Field {
    let ty = match spec.ty {
        ColumnType::Str => DataType::Utf8,
        ColumnType::Date => DataType::Date32,
        ColumnType::Bool => DataType::Boolean,
    };
    Field::new(&spec.name, ty, spec.nullable)
}

/// The Arrow schema of an input schema, in its column order.
#[must_use]
pub fn arrow_schema(schema: &Schema) -> Arc<ArrowSchema> {
    Arc::new(ArrowSchema::new(
        schema.columns.iter().map(arrow_field).collect::<Vec<_>>(),
    ))
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// Parses `TT.MM.JJJJ` or `JJJJ-MM-TT` into days since 1970-01-01. Days that do not exist
/// (31.02.2025) are refused.
#[must_use]
pub fn parse_date(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    let num = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (day, month, year) = match b.len() {
        10 if b[2] == b'.' && b[5] == b'.' => (num(&b[..2])?, num(&b[3..5])?, num(&b[6..])?),
        10 if b[4] == b'-' && b[7] == b'-' => (num(&b[8..])?, num(&b[5..7])?, num(&b[..4])?),
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    Some((date - EPOCH).num_days() as i32)
}

/// Parses `J` / `N`.
#[must_use]
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "J" => Some(true),
        "N" => Some(false),
        _ => None,
    }
}

/// A column's checks, compiled once. A clone shares the compiled pattern but has its own match
/// cache, so each decoding task clones the checks it uses rather than contend for one cache.
#[derive(Debug, Clone)]
pub(crate) struct ColumnCheck {
    pub(crate) spec: ColumnSpec,
    regex: Option<Regex>,
    values: Option<AllowedValues>,
}

/// The allowed values of a column: a short list is searched in place, a long one hashed.
#[derive(Debug, Clone)]
enum AllowedValues {
    Few(Vec<String>),
    Many(HashSet<String>),
}

impl AllowedValues {
    fn new(values: &[String]) -> Self {
        if values.len() <= 16 {
            Self::Few(values.to_vec())
        } else {
            Self::Many(values.iter().cloned().collect())
        }
    }

    fn contains(&self, value: &str) -> bool {
        match self {
            Self::Few(v) => v.iter().any(|a| a == value),
            Self::Many(v) => v.contains(value),
        }
    }
}

const NOT_A_DATE: &str = "is not a date: write TT.MM.JJJJ or JJJJ-MM-TT, and the day must exist";
const NOT_A_BOOL: &str = "is neither J nor N";

impl ColumnCheck {
    pub(crate) fn new(spec: &ColumnSpec) -> Self {
        Self {
            spec: spec.clone(),
            regex: spec
                .pattern
                .as_deref()
                .map(|p| Regex::new(p).expect("schema patterns are checked when loaded")),
            values: spec.values.as_deref().map(AllowedValues::new),
        }
    }

    /// Checks a non-null text value against pattern and value list; the message never holds it.
    pub(crate) fn check_str(&self, value: &str) -> Result<(), String> {
        // The same limit for every reader: the CSV reader refuses such a field while it splits the
        // row; a Parquet cell comes here whole.
        if value.len() > crate::csv_in::MAX_FIELD_BYTES {
            return Err(format!(
                "is {} bytes long, more than the {} a field may hold",
                value.len(),
                crate::csv_in::MAX_FIELD_BYTES
            ));
        }
        if value.contains('\0') {
            return Err("contains a NUL byte; the extract is damaged or not text".to_owned());
        }
        if let Some(re) = &self.regex
            && !re.is_match(value)
        {
            let what = if self.spec.description.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.spec.description)
            };
            return Err(format!(
                "does not match the pattern {}{what}",
                self.spec.pattern.as_deref().unwrap_or_default()
            ));
        }
        if let Some(values) = &self.values
            && !values.contains(value)
        {
            let allowed = self.spec.values.as_deref().unwrap_or_default().join(", ");
            return Err(format!("is not one of the allowed values: {allowed}"));
        }
        Ok(())
    }

    /// Checks a cell as [`TextColumn::append`] does, without keeping it: for the columns a run
    /// drops, which must be as valid as the ones it keeps.
    pub(crate) fn check_cell(&self, text: Option<&str>) -> Result<(), String> {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return if self.spec.nullable {
                Ok(())
            } else {
                Err(self.null_message())
            };
        };
        match self.spec.ty {
            ColumnType::Str => self.check_str(text),
            ColumnType::Date => parse_date(text.trim())
                .map(drop)
                .ok_or_else(|| NOT_A_DATE.to_owned()),
            ColumnType::Bool => parse_bool(text.trim())
                .map(drop)
                .ok_or_else(|| NOT_A_BOOL.to_owned()),
        }
    }

    pub(crate) fn null_message(&self) -> String {
        format!(
            "is empty, but `{}` may not be empty; fill it in the source system or remove the row",
            self.spec.name
        )
    }
}

/// Builds one typed Arrow column from text cells, checking every cell.
pub(crate) enum TextColumn {
    Str(StringBuilder),
    Date(Date32Builder),
    Bool(BooleanBuilder),
}

impl TextColumn {
    pub(crate) fn new(ty: ColumnType, capacity: usize) -> Self {
        match ty {
            ColumnType::Str => Self::Str(StringBuilder::with_capacity(capacity, capacity * 16)),
            ColumnType::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            ColumnType::Bool => Self::Bool(BooleanBuilder::with_capacity(capacity)),
        }
    }

    /// Appends one cell; on a problem appends a null and returns the message.
    pub(crate) fn append(&mut self, check: &ColumnCheck, text: Option<&str>) -> Result<(), String> {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            self.append_null();
            return if check.spec.nullable {
                Ok(())
            } else {
                Err(check.null_message())
            };
        };
        match self {
            Self::Str(b) => match check.check_str(text) {
                Ok(()) => {
                    b.append_value(text);
                    Ok(())
                }
                Err(e) => {
                    b.append_null();
                    Err(e)
                }
            },
            Self::Date(b) => {
                if let Some(d) = parse_date(text.trim()) {
                    b.append_value(d);
                    Ok(())
                } else {
                    b.append_null();
                    Err(NOT_A_DATE.to_owned())
                }
            }
            Self::Bool(b) => {
                if let Some(v) = parse_bool(text.trim()) {
                    b.append_value(v);
                    Ok(())
                } else {
                    b.append_null();
                    Err(NOT_A_BOOL.to_owned())
                }
            }
        }
    }

    /// Appends a text cell already checked (a value that passed in another cell of the chunk).
    pub(crate) fn append_checked_str(&mut self, text: &str) {
        match self {
            Self::Str(b) => b.append_value(text),
            _ => unreachable!("only text columns take checked text"),
        }
    }

    pub(crate) fn append_null(&mut self) {
        match self {
            Self::Str(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Bool(b) => b.append_null(),
        }
    }

    pub(crate) fn finish(self) -> ArrayRef {
        match self {
            Self::Str(mut b) => Arc::new(b.finish()),
            Self::Date(mut b) => Arc::new(b.finish()),
            Self::Bool(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Converts text cells (as a CSV holds them) into a typed, checked Arrow column. The error names
/// the first bad row (0-based) without its value.
pub fn text_column_to_array(spec: &ColumnSpec, cells: &[Option<&str>]) -> Result<ArrayRef, String> {
    let check = ColumnCheck::new(spec);
    let mut column = TextColumn::new(spec.ty, cells.len());
    for (i, cell) in cells.iter().enumerate() {
        column
            .append(&check, *cell)
            .map_err(|e| format!("row {}, column `{}`: {e}", i + 1, spec.name))?;
    }
    Ok(column.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_both_forms() {
        assert_eq!(parse_date("01.01.1970"), Some(0));
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("31.03.2025"), parse_date("2025-03-31"));
        assert!(parse_date("29.02.2024").is_some());
    }

    #[test]
    fn impossible_and_malformed_dates_are_refused() {
        for bad in [
            "31.02.2025",
            "29.02.2025",
            "00.01.2025",
            "1.1.2025",
            "2025-13-01",
            "2025/03/01",
            "31-03-2025",
            "3a.03.2025",
            "",
            "31.03.2025 ",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn bools_are_j_or_n() {
        assert_eq!(parse_bool("J"), Some(true));
        assert_eq!(parse_bool("N"), Some(false));
        assert_eq!(parse_bool("j"), None);
        assert_eq!(parse_bool("true"), None);
    }

    #[test]
    fn check_messages_never_hold_the_value() {
        let schema = Schema::builtin("verbis-vkb").unwrap();
        let check = ColumnCheck::new(schema.column("kundennummer").unwrap());
        assert!(check.check_str("325D123456").is_ok());
        let err = check.check_str("325D12345X").unwrap_err();
        assert!(
            err.contains("pattern") && !err.contains("325D12345X"),
            "{err}"
        );
        let rd = ColumnCheck::new(schema.column("rd").unwrap());
        let err = rd.check_str("Berlin").unwrap_err();
        assert!(err.contains("NORD") && !err.contains("Berlin"), "{err}");
    }
}
