//! Core types of pseudagg.
//!
//! Everything pseudagg does starts from an *input schema*: the columns an extract may have, each with
//! a type, a nullability, an optional pattern or value list and a *class* (identifier, personal, staff,
//! free-text, org, attribute, flag, meta). The class decides what a pipeline may do with a column: only
//! org, attribute and meta columns may ever reach an output. The schemas live as TOML under `schemas/`
//! in the repository and are compiled into the binary.
//!
//! Problems with user input (a malformed row, a bad definition) are collected as [`Problem`]s, so that a
//! user is told every problem at once, and they never carry a value from the data: only the file, the
//! row, the column and how to mend it.
//!
//! ```
//! use pseudagg_core::{Month, Schema, ColumnClass};
//!
//! let schema = Schema::builtin("verbis-vkb").unwrap();
//! let kdnr = schema.column("kundennummer").unwrap();
//! assert_eq!(kdnr.class, ColumnClass::Identifier);
//! assert!(!kdnr.class.may_be_published());
//!
//! let month: Month = "2025-03".parse().unwrap();
//! assert_eq!(month.last_day().to_string(), "2025-03-31");
//! ```

mod definition;
mod error;
mod month;
mod problem;
mod progress;
mod schema;

pub use definition::{check_generated_file, parse_definition, parse_known};
pub use error::{Error, Result};
pub use month::{Month, month_folders};
pub use problem::{Location, Problem, Problems, key_shown};
pub use progress::{Progress, Ticker};
pub use schema::{ColumnClass, ColumnSpec, ColumnType, Schema};

/// The version of pseudagg, written into every manifest.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A key file's path as messages show it. A path that looks like key material (a run of 32 or more
/// hex or base64 characters: someone passed the key itself as `--key-file`) is withheld, so a key
/// never reaches a terminal, a log or a scheduler's mail.
#[must_use]
pub fn key_path_shown(path: &std::path::Path) -> String {
    let text = path.to_string_lossy();
    let mut run = 0usize;
    let mut longest = 0usize;
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'=') {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    if longest >= 32 {
        "(the path is withheld: it looks like key material; give the key file's path, never the key)"
            .to_owned()
    } else {
        text.into_owned()
    }
}

/// Is `name` a plain lower-case ASCII identifier (`[a-z][a-z0-9_]*`, at most 64 characters)?
///
/// Column names from a file are echoed in messages only when they have this form: a header row
/// that is really a data row (a file exported without header) would otherwise leak its values.
#[must_use]
pub fn is_plain_identifier(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}
