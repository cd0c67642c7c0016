use std::fmt;

/// Where a problem is: a file, and within it a row, a line, a column or a key of a definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// 1-based data row (the first row after the header is row 1).
    pub row: Option<u64>,
    /// 1-based line of the file where the row starts (CSV only).
    pub line: Option<u64>,
    /// The column, by name.
    pub column: Option<String>,
    /// A position in a definition file, such as `keep[3]` or `indicator.bestand.where`. Indices
    /// count from 0 here, as in code; they are shown counting from 1, as a person reads a list
    /// (`keep[0]` is shown as `keep[1]`, the first entry).
    pub key: Option<String>,
}

impl Location {
    #[must_use]
    pub fn column(name: impl Into<String>) -> Self {
        Self {
            column: Some(name.into()),
            ..Self::default()
        }
    }

    #[must_use]
    pub fn key(key: impl Into<String>) -> Self {
        Self {
            key: Some(key.into()),
            ..Self::default()
        }
    }

    #[must_use]
    pub fn cell(row: u64, line: Option<u64>, column: impl Into<String>) -> Self {
        Self {
            row: Some(row),
            line,
            column: Some(column.into()),
            key: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(row) = self.row {
            match self.line {
                Some(line) => parts.push(format!("row {row} (line {line})")),
                None => parts.push(format!("row {row}")),
            }
        }
        if let Some(column) = &self.column {
            parts.push(format!("column `{column}`"));
        }
        if let Some(key) = &self.key {
            parts.push(format!("at `{}`", key_shown(key)));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A key path as a person reads it: every list index `[n]` counts from 1.
#[must_use]
pub fn key_shown(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut rest = key;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<u64>() {
            Ok(n) if rest[digits..].starts_with(']') => {
                out.push_str(&(n + 1).to_string());
                rest = &rest[digits..];
            }
            _ => {}
        }
    }
    out.push_str(rest);
    out
}

/// One problem with user input. The message says what is wrong and how to mend it; it never
/// contains a value from the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: Location,
    pub message: String,
}

impl Problem {
    #[must_use]
    pub fn new(location: Location, message: impl Into<String>) -> Self {
        Self {
            location,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.location.to_string();
        if at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{at}: {}", self.message)
        }
    }
}

/// A bounded list of problems: it keeps the first `limit` and counts the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    items: Vec<Problem>,
    total: usize,
    limit: usize,
}

impl Default for Problems {
    fn default() -> Self {
        Self::with_limit(Self::DEFAULT_LIMIT)
    }
}

impl Problems {
    /// How many problems are listed by default before the rest are only counted.
    pub const DEFAULT_LIMIT: usize = 50;

    #[must_use]
    pub fn with_limit(limit: usize) -> Self {
        Self {
            items: Vec::new(),
            total: 0,
            limit: limit.max(1),
        }
    }

    pub fn push(&mut self, problem: Problem) {
        self.total += 1;
        if self.items.len() < self.limit {
            self.items.push(problem);
        }
    }

    /// Adds `other`'s problems, listed and unlisted, after these (up to this list's limit).
    pub fn append(&mut self, other: Self) {
        let unlisted = other.total - other.items.len();
        for p in other.items {
            self.push(p);
        }
        self.count_unlisted(unlisted);
    }

    /// Counts problems that are not listed (found beyond a limit elsewhere).
    pub fn count_unlisted(&mut self, n: usize) {
        self.total += n;
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Has the list reached its limit (further problems are only counted)?
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.limit
    }

    /// All problems found, listed or not.
    #[must_use]
    pub fn total(&self) -> usize {
        self.total
    }

    /// The listed problems.
    #[must_use]
    pub fn items(&self) -> &[Problem] {
        &self.items
    }

    /// Sorts the listed problems by row, then by the given column order, so reports are stable.
    pub fn sort_by_row(&mut self, column_order: impl Fn(&str) -> usize) {
        self.items.sort_by_key(|p| {
            (
                p.location.row.unwrap_or(0),
                p.location.column.as_deref().map_or(0, &column_order),
            )
        });
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  - {p}")?;
        }
        let hidden = self.total - self.items.len();
        if hidden > 0 {
            write!(
                f,
                "\n  ... and {hidden} more (the first {} are listed)",
                self.items.len()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_are_shown_counting_from_one() {
        assert_eq!(key_shown("keep[0]"), "keep[1]");
        assert_eq!(
            key_shown("dimension.categories[9].when"),
            "dimension.categories[10].when"
        );
        assert_eq!(key_shown("a[x]"), "a[x]");
        let p = Problem::new(Location::key("report[1].input"), "is missing");
        assert_eq!(p.to_string(), "at `report[2].input`: is missing");
    }

    #[test]
    fn counts_beyond_the_limit() {
        let mut p = Problems::with_limit(2);
        for row in 1..=5 {
            p.push(Problem::new(Location::cell(row, None, "a"), "bad"));
        }
        assert_eq!(p.total(), 5);
        assert_eq!(p.items().len(), 2);
        assert!(
            p.to_string()
                .ends_with("... and 3 more (the first 2 are listed)")
        );
    }

    #[test]
    fn location_names_row_line_and_column() {
        let loc = Location::cell(3, Some(4), "kundennummer");
        assert_eq!(loc.to_string(), "row 3 (line 4), column `kundennummer`");
    }
}
